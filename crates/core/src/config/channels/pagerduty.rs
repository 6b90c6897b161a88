//! `kind = "pagerduty"`: PagerDuty's Events API v2.

use super::{Fields, secret, url};
use crate::config::ConfigErrorKind as K;
use crate::config::validate::Ctx;
use crate::inventory::{ChannelKind, MessageKind, Severity};

/// PagerDuty's enqueue URL (the US service region).
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    let routing_key = secret(
        ctx,
        f,
        None,
        ["routing_key_env", "routing_key_file"],
        "`routing_key_env` and `routing_key_file`",
    );
    let target = f
        .string(ctx, "url")
        .map_or_else(|| PAGERDUTY_URL.to_owned(), |u| url(ctx, &u));
    let mut severity = [
        (MessageKind::Unplanned, Severity::Critical),
        (MessageKind::UnknownHost, Severity::Warning),
        (MessageKind::Planned, Severity::Info),
        (MessageKind::ClusterStart, Severity::Info),
        (MessageKind::NotBack, Severity::Warning),
        (MessageKind::Back, Severity::Info),
    ];
    if let Some(t) = f.table(ctx, "severity") {
        for (verdict, value) in *t.get_ref() {
            let Some(slot) = severity.iter_mut().find(|(v, _)| v.as_str() == verdict) else {
                ctx.err(
                    t.span(),
                    K::Verdict {
                        value: verdict.clone(),
                    },
                );
                continue;
            };
            match value.as_str().and_then(Severity::from_name) {
                Some(s) => slot.1 = s,
                None => ctx.err(
                    t.span(),
                    K::Severity {
                        value: value
                            .as_str()
                            .map_or_else(|| value.type_str().to_owned(), str::to_owned),
                    },
                ),
            }
        }
    }
    Some(ChannelKind::PagerDuty {
        routing_key: routing_key?,
        url: target,
        severity,
    })
}
