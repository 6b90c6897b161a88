//! `kind = "webhook"`: an HTTP POST, shaped for Slack, Teams, or the event as JSON.

use super::{Fields, secret, url};
use crate::config::ConfigErrorKind as K;
use crate::config::validate::Ctx;
use crate::inventory::{ChannelKind, Secret, WebhookFormat};

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    let u = secret(
        ctx,
        f,
        Some(("url", url)),
        ["url_env", "url_file"],
        "`url`, `url_env` and `url_file`",
    );
    let format = match f.string(ctx, "format") {
        None => Some(WebhookFormat::Generic),
        Some(v) => match v.get_ref().as_str() {
            "generic" => Some(WebhookFormat::Generic),
            "slack" => Some(WebhookFormat::Slack),
            "teams" => Some(WebhookFormat::Teams),
            "teams-connector" => Some(WebhookFormat::TeamsConnector),
            "mattermost" => Some(WebhookFormat::Mattermost),
            "googlechat" => Some(WebhookFormat::GoogleChat),
            "googlechat-card" => Some(WebhookFormat::GoogleChatCard),
            other => {
                ctx.err(
                    v.span(),
                    K::WebhookFormat {
                        value: other.to_owned(),
                    },
                );
                None
            }
        },
    };
    let mut headers = Vec::new();
    if let Some(h) = f.table(ctx, "headers") {
        for (name, value) in *h.get_ref() {
            match header_value(value) {
                Some(v) => headers.push((name.clone(), v)),
                None => ctx.err(h.span(), K::HeaderValue { name: name.clone() }),
            }
        }
    }
    Some(ChannelKind::Webhook {
        url: u?,
        format: format?,
        headers,
    })
}

/// A header value: a string, `{ env = "VARIABLE" }` or `{ file = "/path" }`.
fn header_value(value: &toml::Value) -> Option<Secret> {
    if let Some(v) = value.as_str() {
        return Some(Secret::Inline(v.to_owned()));
    }
    let table = value.as_table()?;
    match (table.len(), table.get("env"), table.get("file")) {
        (1, Some(toml::Value::String(e)), None) => Some(Secret::Env(e.clone())),
        (1, None, Some(toml::Value::String(f))) => Some(Secret::File(f.clone())),
        _ => None,
    }
}
