//! `kind = "alertmanager"`: alerts posted to one or more Alertmanagers' `/api/v2/alerts`.

use jiff::SignedDuration;

use super::{Fields, url};
use crate::config::ConfigErrorKind as K;
use crate::config::validate::Ctx;
use crate::inventory::ChannelKind;

/// The labels failover-notify sets on every alert; `labels` cannot replace them.
pub const OWN_LABELS: [&str; 6] = [
    "alertname",
    "cluster",
    "customer",
    "verdict",
    "active",
    "event",
];

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    let urls: Option<Vec<String>> = match f.strings(ctx, "urls") {
        Some((span, list)) if list.is_empty() => {
            ctx.err(
                span,
                K::ChannelMissing {
                    field: "urls",
                    kind: f.kind,
                },
            );
            None
        }
        Some((_, list)) => Some(
            list.iter()
                .map(|u| url(ctx, u).trim_end_matches('/').to_owned())
                .collect(),
        ),
        None => {
            f.missing(ctx, "urls");
            None
        }
    };
    let mut labels = Vec::new();
    if let Some(t) = f.table(ctx, "labels") {
        for (name, value) in *t.get_ref() {
            match value.as_str() {
                Some(v) if label_name(name) && !OWN_LABELS.contains(&name.as_str()) => {
                    labels.push((name.clone(), v.to_owned()));
                }
                _ => ctx.err(t.span(), K::Label { name: name.clone() }),
            }
        }
    }
    let resolve_after = match f.string(ctx, "resolve_after") {
        None => Some(SignedDuration::from_hours(24)),
        Some(d) => ctx.positive_duration(&d),
    };
    Some(ChannelKind::Alertmanager {
        urls: urls?,
        labels,
        resolve_after: resolve_after?,
    })
}

/// Prometheus' label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
