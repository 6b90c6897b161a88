//! Webhooks: an HTTP POST shaped for Slack, Microsoft Teams (Workflows: an Adaptive Card;
//! or a retired connector's MessageCard), or the event as generic JSON.
//!
//! The URL is a credential (Slack's path, Teams' `sig=`), and so may header values: they are
//! read from the inventory, a variable or a file when the channel is built, and never
//! appear in an error, a log line or the store; errors show only the scheme and host.
//! Every request carries `Idempotency-Key: <event>-<delivery>`, the same on every attempt,
//! so a receiver can drop the repeat of a send that was in flight during a crash.

use std::time::Duration;

use failover_core::inventory::{Secret, WebhookFormat, redact_url};
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
        let url = resolve(url, "the webhook URL")?;
        let shown = redact_url(&url);
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
                "themeColor": match msg.verdict.as_str() {
                    "planned" => "2EB886",
                    "cluster-start" => "0078D7",
                    _ => "D00000",
                },
            }),
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

/// A Teams Workflows message: an Adaptive Card 1.2 in the `attachments` envelope, its title
/// coloured by verdict (green planned, blue a cluster start, red otherwise), the body one
/// wrapped text block per paragraph.
pub fn adaptive_card(msg: &Outgoing) -> Value {
    let colour = match msg.verdict.as_str() {
        "planned" => "Good",
        "cluster-start" => "Accent",
        _ => "Attention",
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

    #[test]
    fn the_card_title_is_coloured_by_verdict() {
        let colour = |verdict: &str| {
            let card = adaptive_card(&Outgoing {
                delivery: 1,
                event: "1".into(),
                verdict: verdict.into(),
                subject: "s".into(),
                body: "b".into(),
                context: Value::Null,
            });
            card["attachments"][0]["content"]["body"][0]["color"].clone()
        };
        assert_eq!(colour("planned"), "Good");
        assert_eq!(colour("cluster-start"), "Accent");
        assert_eq!(colour("unplanned"), "Attention");
        assert_eq!(colour("unknown-host"), "Attention");
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
