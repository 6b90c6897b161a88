//! PagerDuty's Events API v2: a failover triggers an alert whose `dedup_key` is the event
//! id; the failback that undoes it resolves that alert instead of opening another.
//!
//! The routing key is a credential: it is read when the channel is built and never appears
//! in an error, a log line, `Debug` or the store. 202 is delivered, 400 (an event PagerDuty
//! rejects) is permanent, 429 and 5xx are retried. PagerDuty deduplicates a repeated trigger
//! or resolve by its key, so the retry of a send that was in flight during a crash is
//! harmless.

use std::time::Duration;

use failover_core::inventory::{MessageKind, Secret, Severity, redact_url};
use serde_json::{Map, Value, json};

use crate::webhook::resolve;
use crate::{DeliveryError, Outgoing, error_chain, outcome_for_status};

/// PagerDuty's limit on a summary, in characters.
const SUMMARY_MAX: usize = 1024;

/// One PagerDuty integration.
pub struct PagerDuty {
    client: reqwest::Client,
    url: String,
    routing_key: String,
    severity: [(MessageKind, Severity); 6],
}

impl std::fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDuty")
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl PagerDuty {
    /// A client for the enqueue `url` with the routing key read from `routing_key`.
    ///
    /// # Errors
    /// A message naming the variable or file when the key cannot be read, or when the
    /// client cannot be built.
    pub fn new(
        routing_key: &Secret,
        url: &str,
        severity: [(MessageKind, Severity); 6],
        timeout: Duration,
    ) -> Result<PagerDuty, String> {
        let routing_key = resolve(routing_key, "the routing key")?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("failover-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PagerDuty {
            client,
            url: url.to_owned(),
            routing_key,
            severity,
        })
    }

    /// Triggers the event's alert, or resolves the one of the failover a failback undoes.
    ///
    /// # Errors
    /// [`DeliveryError`] per [`outcome_for_status`]; network errors are retried.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let body = self.body(msg);
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                DeliveryError::retryable(format!(
                    "{}: {}",
                    redact_url(&self.url),
                    error_chain(&e.without_url())
                ))
            })?;
        let status = response.status().as_u16();
        let detail = if response.status().is_success() {
            String::new()
        } else {
            // PagerDuty explains a 400 in `errors`; a proxy's page is cut short.
            let text = response.text().await.unwrap_or_default();
            text.replace(&self.routing_key, "<routing key>")
                .chars()
                .take(300)
                .collect()
        };
        outcome_for_status(status, detail.trim())
    }

    /// The Events API v2 request for `msg`.
    fn body(&self, msg: &Outgoing) -> Value {
        if let Some((undoes, _)) = msg.resolves() {
            return json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": undoes,
            });
        }
        let ctx = &msg.context;
        let severity = self
            .severity
            .iter()
            .find(|(v, _)| *v == msg.verdict)
            .map_or(Severity::Critical, |(_, s)| *s);
        let mut payload = Map::new();
        payload.insert("summary".into(), summary(&msg.subject).into());
        let source = [&ctx.host, &ctx.cluster]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or("failover-notify", String::as_str);
        payload.insert("source".into(), source.into());
        payload.insert("severity".into(), severity.as_str().into());
        let present = |map: &mut Map<String, Value>, fields: &[(&str, &String)]| {
            for (field, value) in fields {
                if !value.is_empty() {
                    map.insert((*field).into(), value.as_str().into());
                }
            }
        };
        present(
            &mut payload,
            &[
                ("timestamp", &ctx.at_utc),
                ("component", &ctx.cluster),
                ("group", &ctx.customer),
            ],
        );
        payload.insert("class".into(), msg.verdict.as_str().into());
        let mut details = Map::new();
        details.insert("body".into(), msg.body.clone().into());
        details.insert("verdict".into(), msg.verdict.as_str().into());
        details.insert("event".into(), msg.event.clone().into());
        present(
            &mut details,
            &[
                ("cluster", &ctx.cluster),
                ("customer", &ctx.customer),
                ("active", &ctx.host),
                ("previous", &ctx.previous),
                ("at", &ctx.at),
                ("time_zone", &ctx.time_zone),
            ],
        );
        if let Some(w) = &ctx.window {
            details.insert("window".into(), json!(w));
        }
        if ctx.flapping {
            details.insert("flapping".into(), true.into());
        }
        payload.insert("custom_details".into(), details.into());
        let mut body = json!({
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": msg.event,
            "payload": payload,
            "client": "failover-notify",
        });
        if let Some(link) = &msg.link {
            body["client_url"] = link.clone().into();
            body["links"] = json!([{ "href": link, "text": "The event on failover-notify" }]);
        }
        body
    }
}

/// `subject` cut to PagerDuty's limit on a character boundary, an ellipsis marking the cut.
fn summary(subject: &str) -> String {
    if subject.chars().count() <= SUMMARY_MAX {
        return subject.to_owned();
    }
    let mut s: String = subject.chars().take(SUMMARY_MAX - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Intent;
    use failover_core::template::MessageContext;

    fn pd() -> PagerDuty {
        PagerDuty::new(
            &Secret::Inline("R0UTINGKEY0000000000000000000000".into()),
            "http://127.0.0.1:9/v2/enqueue",
            [
                (MessageKind::Unplanned, Severity::Critical),
                (MessageKind::UnknownHost, Severity::Warning),
                (MessageKind::Planned, Severity::Info),
                (MessageKind::ClusterStart, Severity::Error),
                (MessageKind::NotBack, Severity::Warning),
                (MessageKind::Back, Severity::Info),
            ],
            Duration::from_secs(1),
        )
        .expect("builds")
    }

    fn msg(verdict: &str, subject: &str, context: Value) -> Outgoing {
        let context: MessageContext = serde_json::from_value(context).unwrap_or_default();
        Outgoing {
            delivery: 3,
            event: "41".into(),
            verdict: MessageKind::from_name(verdict).expect("a kind"),
            intent: Intent::of_event(&context),
            subject: subject.into(),
            body: "b".into(),
            sms: String::new(),
            context,
            link: None,
        }
    }

    #[test]
    fn a_failover_triggers_and_its_failback_resolves_the_same_key() {
        let pd = pd();
        let trigger = pd.body(&msg(
            "cluster-start",
            "s",
            json!({ "host": "db2", "cluster": "db", "customer": "", "at_utc": "2026-12-09T21:14:03Z" }),
        ));
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "41");
        assert_eq!(
            trigger["payload"]["severity"], "error",
            "configured per verdict"
        );
        assert_eq!(trigger["payload"]["source"], "db2");
        assert!(trigger["payload"].get("group").is_none(), "no empty group");
        assert!(trigger.get("links").is_none(), "no link without public_url");
        let resolve = pd.body(&msg("unplanned", "s", json!({ "failback_of_event": "12" })));
        assert_eq!(
            resolve,
            json!({ "routing_key": "R0UTINGKEY0000000000000000000000", "event_action": "resolve", "dedup_key": "12" })
        );
        // A message with no context at all (an unknown host's) still has a source.
        let bare = pd.body(&msg("unknown-host", "s", Value::Null));
        assert_eq!(bare["payload"]["source"], "failover-notify");
        assert_eq!(bare["payload"]["severity"], "warning");
        assert!(!format!("{pd:?}").contains("R0UTING"), "{pd:?}");
    }

    #[test]
    fn a_long_summary_is_cut_on_a_character_boundary() {
        assert_eq!(summary("short"), "short");
        let long = "é".repeat(5000);
        let cut = summary(&long);
        assert_eq!(cut.chars().count(), SUMMARY_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(
            summary(&"x".repeat(SUMMARY_MAX)).chars().count(),
            SUMMARY_MAX
        );
    }
}
