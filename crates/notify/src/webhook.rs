//! Webhooks: an HTTP POST shaped for Slack, Microsoft Teams (Workflows: an Adaptive Card;
//! or a retired connector's MessageCard), Mattermost, Google Chat (text or a `cardsV2` card,
//! threaded per cluster), or the event as generic JSON.
//!
//! The URL is a credential (Slack's path, Teams' `sig=`), and so may header values: they are
//! read from the inventory, a variable or a file when the channel is built, and never
//! appear in an error, a log line or the store; errors show only the scheme and host.
//! Every request carries `Idempotency-Key: <event>-<delivery>`, the same on every attempt,
//! so a receiver can drop the repeat of a send that was in flight during a crash.

use std::time::Duration;

use failover_core::inventory::{MessageKind, Secret, WebhookFormat, redact_url};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::{DeliveryError, Outgoing, error_chain, outcome_for_status};

/// A webhook target.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    /// What errors show of `url`.
    shown: String,
    format: WebhookFormat,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.shown)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The value of a secret: inline, from the environment or from a file.
///
/// # Errors
/// A message naming the variable or file (never the value) when it cannot be read.
pub fn resolve(secret: &Secret, what: &str) -> Result<String, String> {
    let value = match secret {
        Secret::Inline(v) => v.clone(),
        Secret::Env(name) => std::env::var(name)
            .map_err(|_| format!("{what}: environment variable `{name}` is not set"))?,
        Secret::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{what}: cannot read `{path}`: {e}"))?
            .trim()
            .to_owned(),
    };
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(value)
}

impl Webhook {
    /// A client for `url` with the extra `headers`.
    ///
    /// # Errors
    /// A message when a secret cannot be read, a header is not valid HTTP, the URL is not
    /// http(s), or the client cannot be built.
    pub fn new(
        url: &Secret,
        format: WebhookFormat,
        headers: &[(String, Secret)],
        timeout: Duration,
    ) -> Result<Webhook, String> {
        let mut url = resolve(url, "the webhook URL")?;
        let shown = redact_url(&url);
        if matches!(
            format,
            WebhookFormat::GoogleChat | WebhookFormat::GoogleChatCard
        ) {
            url = threaded(&url);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "the webhook URL `{shown}` is not http:// or https://"
            ));
        }
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::try_from(k).map_err(|_| format!("invalid header name `{k}`"))?;
            let v = resolve(v, &format!("header `{k}`"))?;
            let mut value =
                HeaderValue::try_from(v).map_err(|_| format!("invalid value for header `{k}`"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(map)
            .timeout(timeout)
            .user_agent(concat!("failover-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Webhook {
            client,
            url,
            shown,
            format,
        })
    }

    /// Posts the message; 2xx is delivered, 408/429/5xx and network errors are retried.
    ///
    /// # Errors
    /// [`DeliveryError`] per [`outcome_for_status`].
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let body = match self.format {
            WebhookFormat::Slack => json!({ "text": format!("*{}*\n{}", msg.subject, msg.body) }),
            WebhookFormat::Teams => adaptive_card(msg),
            WebhookFormat::TeamsConnector => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": msg.subject,
                "title": msg.subject,
                "text": msg.body,
                "themeColor": colour_hex(msg.verdict),
            }),
            WebhookFormat::Mattermost => json!({
                "attachments": [{
                    "fallback": msg.subject,
                    "color": format!("#{}", colour_hex(msg.verdict)),
                    "title": msg.subject,
                    "text": msg.body,
                }],
            }),
            WebhookFormat::GoogleChat => json!({
                "text": format!("*{}*\n{}", msg.subject, msg.body),
                "thread": { "threadKey": thread_key(msg) },
            }),
            WebhookFormat::GoogleChatCard => google_chat_card(msg),
            WebhookFormat::Generic => {
                serde_json::to_value(msg).map_err(|e| DeliveryError::permanent(e.to_string()))?
            }
        };
        let response = self
            .client
            .post(&self.url)
            .header("idempotency-key", format!("{}-{}", msg.event, msg.delivery))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                DeliveryError::retryable(format!(
                    "{}: {}",
                    self.shown,
                    error_chain(&e.without_url())
                ))
            })?;
        let status = response.status().as_u16();
        let detail = if response.status().is_success() {
            String::new()
        } else {
            let text = response.text().await.unwrap_or_default();
            text.chars().take(200).collect()
        };
        outcome_for_status(status, detail.trim())
    }
}

/// The colour of a verdict, as hex RGB: green planned or back, blue a cluster start, amber
/// a not-back reminder, red otherwise.
fn colour_hex(verdict: MessageKind) -> &'static str {
    match verdict {
        MessageKind::Planned | MessageKind::Back => "2EB886",
        MessageKind::ClusterStart => "0078D7",
        MessageKind::NotBack => "E8A317",
        MessageKind::Unplanned | MessageKind::UnknownHost => "D00000",
    }
}

/// Google Chat threads messages with one `threadKey` when the URL asks it to reply in a
/// thread (and to start one when it does not exist yet): `url` with that parameter, unless
/// it already says how to reply.
pub fn threaded(url: &str) -> String {
    if url.contains("messageReplyOption=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
}

/// One thread per cluster (an unknown host's message threads with its event).
fn thread_key(msg: &Outgoing) -> String {
    match msg.context.cluster.as_str() {
        "" => format!("failover-notify-event-{}", msg.event),
        c => format!("failover-notify-{c}"),
    }
}

/// A Google Chat `cardsV2` message: the subject as the header, the body as one paragraph
/// (Chat's small HTML subset: text escaped, lines broken with `<br>`), in the cluster's
/// thread.
pub fn google_chat_card(msg: &Outgoing) -> Value {
    let escaped = msg
        .body
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>");
    json!({
        "cardsV2": [{
            "cardId": format!("failover-{}", msg.event),
            "card": {
                "header": {
                    "title": msg.subject,
                    "subtitle": format!("{} · event {}", msg.verdict.as_str(), msg.event),
                },
                "sections": [{ "widgets": [{ "textParagraph": { "text": escaped } }] }],
            },
        }],
        "thread": { "threadKey": thread_key(msg) },
    })
}

/// A Teams Workflows message: an Adaptive Card 1.2 in the `attachments` envelope, its title
/// coloured by verdict (green planned or back, blue a cluster start, amber a not-back
/// reminder, red otherwise), the body one wrapped text block per paragraph.
pub fn adaptive_card(msg: &Outgoing) -> Value {
    let colour = match msg.verdict {
        MessageKind::Planned | MessageKind::Back => "Good",
        MessageKind::ClusterStart => "Accent",
        MessageKind::NotBack => "Warning",
        MessageKind::Unplanned | MessageKind::UnknownHost => "Attention",
    };
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": msg.subject,
        "weight": "Bolder",
        "size": "Medium",
        "color": colour,
        "wrap": true,
    })];
    body.extend(
        msg.body
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| json!({ "type": "TextBlock", "text": p, "wrap": true })),
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.2",
                "body": body,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Intent;
    use failover_core::template::MessageContext;

    fn outgoing(verdict: &str, cluster: Option<&str>) -> Outgoing {
        Outgoing {
            delivery: 7,
            event: "42".into(),
            verdict: MessageKind::from_name(verdict).expect("a kind"),
            intent: Intent::Alert,
            subject: "UNPLANNED failover: db".into(),
            body: "db1 <failed>\nover & out".into(),
            sms: String::new(),
            context: MessageContext {
                cluster: cluster.unwrap_or_default().to_owned(),
                ..MessageContext::default()
            },
            link: None,
        }
    }

    #[test]
    fn google_chat_replies_in_the_clusters_thread() {
        assert_eq!(
            threaded("https://chat.googleapis.com/v1/spaces/S/messages?key=K&token=T"),
            "https://chat.googleapis.com/v1/spaces/S/messages?key=K&token=T&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
        assert_eq!(
            threaded("http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook?messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
        let own = "https://chat.example/m?messageReplyOption=REPLY_MESSAGE_OR_FAIL";
        assert_eq!(threaded(own), own, "the URL's own choice stays");
        let card = google_chat_card(&outgoing("unplanned", Some("db")));
        assert_eq!(card["thread"]["threadKey"], "failover-notify-db");
        assert_eq!(
            card["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"],
            "db1 &lt;failed&gt;<br>over &amp; out"
        );
        assert_eq!(card["cardsV2"][0]["cardId"], "failover-42");
        let unknown = google_chat_card(&outgoing("unknown-host", None));
        assert_eq!(unknown["thread"]["threadKey"], "failover-notify-event-42");
    }

    #[test]
    fn the_card_title_is_coloured_by_verdict() {
        let colour = |verdict: &str| {
            let card = adaptive_card(&Outgoing {
                delivery: 1,
                event: "1".into(),
                verdict: MessageKind::from_name(verdict).expect("a kind"),
                intent: Intent::Alert,
                subject: "s".into(),
                body: "b".into(),
                sms: String::new(),
                context: MessageContext::default(),
                link: None,
            });
            card["attachments"][0]["content"]["body"][0]["color"].clone()
        };
        assert_eq!(colour("planned"), "Good");
        assert_eq!(colour("cluster-start"), "Accent");
        assert_eq!(colour("unplanned"), "Attention");
        assert_eq!(colour("unknown-host"), "Attention");
        assert_eq!(colour("not-back"), "Warning");
        assert_eq!(colour("back"), "Good");
    }

    #[test]
    fn secret_errors_name_the_source_never_the_value() {
        let e = resolve(
            &Secret::Env("FAILOVER_TEST_SURELY_UNSET".into()),
            "the webhook URL",
        );
        assert_eq!(
            e.expect_err("unset"),
            "the webhook URL: environment variable `FAILOVER_TEST_SURELY_UNSET` is not set"
        );
        let e = resolve(
            &Secret::File("/nonexistent/hook".into()),
            "header `X-Token`",
        );
        assert!(
            e.expect_err("missing")
                .starts_with("header `X-Token`: cannot read `/nonexistent/hook`")
        );
        let e = resolve(&Secret::Inline(String::new()), "the webhook URL");
        assert_eq!(e.expect_err("empty"), "the webhook URL is empty");
        let e = Webhook::new(
            &Secret::Inline("ftp://files.example/T0KEN-s3cr3t".into()),
            WebhookFormat::Generic,
            &[("X-Token".into(), Secret::Inline("bad\nvalue-s3cr3t".into()))],
            Duration::from_secs(1),
        )
        .expect_err("not http");
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = Webhook::new(
            &Secret::Inline("https://hooks.example/T0KEN-s3cr3t".into()),
            WebhookFormat::Generic,
            &[("X-Token".into(), Secret::Inline("bad\nvalue-s3cr3t".into()))],
            Duration::from_secs(1),
        )
        .expect_err("bad header value");
        assert_eq!(e, "invalid value for header `X-Token`");
        let w = Webhook::new(
            &Secret::Inline("https://hooks.example/T0KEN-s3cr3t".into()),
            WebhookFormat::Teams,
            &[],
            Duration::from_secs(1),
        )
        .expect("valid");
        assert!(!format!("{w:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", Secret::Inline("s3cr3t".into())).contains("s3cr3t"));
    }
}
