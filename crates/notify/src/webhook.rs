//! Webhooks: an HTTP POST shaped for Slack, Microsoft Teams, or the event as generic JSON.

use std::time::Duration;

use failover_core::inventory::WebhookFormat;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::{DeliveryError, Outgoing, error_chain, outcome_for_status};

/// A webhook target.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    format: WebhookFormat,
}

impl Webhook {
    /// A client for `url` with the extra `headers`.
    ///
    /// # Errors
    /// A message when a header is not valid HTTP or the client cannot be built.
    pub fn new(
        url: &str,
        format: WebhookFormat,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Webhook, String> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::try_from(k).map_err(|_| format!("invalid header name `{k}`"))?;
            let value =
                HeaderValue::try_from(v).map_err(|_| format!("invalid value for header `{k}`"))?;
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
            url: url.to_owned(),
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
            WebhookFormat::Teams => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": msg.subject,
                "title": msg.subject,
                "text": msg.body,
                "themeColor": if msg.verdict == "planned" { "2EB886" } else { "D00000" },
            }),
            WebhookFormat::Generic => {
                serde_json::to_value(msg).map_err(|e| DeliveryError::Permanent(e.to_string()))?
            }
        };
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| DeliveryError::Retryable(format!("{}: {}", self.url, error_chain(&e))))?;
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
