//! Alertmanager's API v2: a failover is posted as an alert to `/api/v2/alerts` of every
//! configured Alertmanager, so teams reuse their routing, silences, inhibitions and
//! receivers; the failback that undoes it resolves that alert.
//!
//! An alert is labelled `alertname="ClusterFailover"`, `cluster`, `customer`, `verdict`,
//! `active` (the node now active) and `event` (the event id), plus the channel's own
//! `labels`; its annotations are the rendered `summary` (subject) and `description`
//! (body). It is posted once, with `endsAt` = `startsAt` + `resolve_after`, so it stays
//! firing though nothing re-sends it. A failback finds the alerts of the event it undoes
//! (`filter=event="ID"`) on each Alertmanager and posts them again with `endsAt` = the
//! failback's time, which resolves them there.
//!
//! Delivered when at least one Alertmanager took the alert, as Prometheus counts it (the
//! members of an HA pair share their notification log, so one copy notifies once); 400 is
//! permanent, 408/429/5xx and network errors are retried. Posting an alert again only
//! updates it, so a retry is harmless.

use std::time::Duration;

use failover_core::inventory::redact_url;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::{DeliveryError, Outgoing, error_chain, outcome_for_status};

/// The `alertname` of every alert.
pub const ALERTNAME: &str = "ClusterFailover";

/// The Alertmanagers of one channel.
#[derive(Debug)]
pub struct Alertmanager {
    client: reqwest::Client,
    urls: Vec<String>,
    labels: Vec<(String, String)>,
    resolve_after: SignedDuration,
}

impl Alertmanager {
    /// A client for the Alertmanagers at `urls` (base URLs).
    ///
    /// # Errors
    /// A message when the client cannot be built.
    pub fn new(
        urls: &[String],
        labels: &[(String, String)],
        resolve_after: SignedDuration,
        timeout: Duration,
    ) -> Result<Alertmanager, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("failover-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Alertmanager {
            client,
            urls: urls.to_vec(),
            labels: labels.to_vec(),
            resolve_after,
        })
    }

    /// Posts the event's alert, or resolves those of the event a failback undoes, on every
    /// Alertmanager.
    ///
    /// # Errors
    /// [`DeliveryError`] when no Alertmanager took it: retryable when one of them may yet.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let resolves = msg.resolves();
        let mut errors = Vec::new();
        for url in &self.urls {
            let sent = match resolves {
                None => self.post(url, &json!([self.alert(msg)])).await,
                Some((undoes, ends)) => self.resolve(url, undoes, ends).await,
            };
            if let Err(e) = sent {
                errors.push(e);
            }
        }
        if errors.len() < self.urls.len() {
            Ok(())
        } else {
            Err(worst(errors))
        }
    }

    /// The alert of a failover.
    fn alert(&self, msg: &Outgoing) -> Value {
        let mut labels = Map::new();
        labels.insert("alertname".into(), ALERTNAME.into());
        for (label, value) in [
            ("cluster", &msg.context.cluster),
            ("customer", &msg.context.customer),
            ("active", &msg.context.host),
        ] {
            // Alertmanager takes an empty label as no label; leave it out.
            if !value.is_empty() {
                labels.insert(label.into(), value.as_str().into());
            }
        }
        labels.insert("verdict".into(), msg.verdict.as_str().into());
        labels.insert("event".into(), msg.event.clone().into());
        for (k, v) in &self.labels {
            labels.insert(k.clone(), v.clone().into());
        }
        let mut alert = json!({
            "labels": labels,
            "annotations": { "summary": msg.subject, "description": msg.body },
        });
        // Without a time (never so for an event), Alertmanager stamps its own and ends the
        // alert after its `resolve_timeout`.
        if let Some(starts) = msg.at() {
            let ends = starts
                .checked_add(self.resolve_after)
                .unwrap_or(Timestamp::MAX);
            alert["startsAt"] = starts.to_string().into();
            alert["endsAt"] = ends.to_string().into();
        }
        if let Some(link) = &msg.link {
            alert["generatorURL"] = link.clone().into();
        }
        alert
    }

    /// Ends, on the Alertmanager at `url`, the alerts of event `undoes` at `ends` (the
    /// failback's time, or when the resolve was added).
    async fn resolve(
        &self,
        url: &str,
        undoes: &str,
        ends: Option<Timestamp>,
    ) -> Result<(), DeliveryError> {
        let response = self
            .client
            .get(format!("{url}/api/v2/alerts"))
            .query(&[
                ("filter", format!("alertname=\"{ALERTNAME}\"")),
                ("filter", format!("event=\"{undoes}\"")),
            ])
            .send()
            .await
            .map_err(|e| network(url, e))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let detail = response.text().await.unwrap_or_default();
            return outcome_for_status(status, short(&detail).trim());
        }
        let found: Vec<Value> = response.json().await.map_err(|e| {
            DeliveryError::retryable(format!("{}: its alerts: {e}", redact_url(url)))
        })?;
        if found.is_empty() {
            // Resolved already, expired, or never taken by this one: nothing to end.
            return Ok(());
        }
        let Some(ends) = ends.map(|t| t.to_string()) else {
            return Err(DeliveryError::permanent(
                "the failback has no time to end its alert at",
            ));
        };
        let ended: Vec<Value> = found
            .into_iter()
            .map(|a| {
                let mut alert = json!({
                    "labels": a["labels"],
                    "annotations": a["annotations"],
                    "startsAt": a["startsAt"],
                    "endsAt": ends,
                });
                if let Some(g) = a
                    .get("generatorURL")
                    .filter(|g| g.as_str().is_some_and(|g| !g.is_empty()))
                {
                    alert["generatorURL"] = g.clone();
                }
                alert
            })
            .collect();
        self.post(url, &Value::from(ended)).await
    }

    async fn post(&self, url: &str, alerts: &Value) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(format!("{url}/api/v2/alerts"))
            .json(alerts)
            .send()
            .await
            .map_err(|e| network(url, e))?;
        let status = response.status().as_u16();
        let detail = if response.status().is_success() {
            String::new()
        } else {
            short(&response.text().await.unwrap_or_default())
        };
        outcome_for_status(status, detail.trim())
    }
}

fn network(url: &str, e: reqwest::Error) -> DeliveryError {
    DeliveryError::retryable(format!(
        "{}: {}",
        redact_url(url),
        error_chain(&e.without_url())
    ))
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The error of a delivery no Alertmanager took: retryable when any failure was, and
/// naming each.
fn worst(errors: Vec<DeliveryError>) -> DeliveryError {
    let retryable = errors.iter().any(DeliveryError::is_retryable);
    let message = errors
        .into_iter()
        .map(DeliveryError::into_message)
        .collect::<Vec<_>>()
        .join("; ");
    if retryable {
        DeliveryError::retryable(message)
    } else {
        DeliveryError::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Intent;
    use failover_core::inventory::MessageKind;
    use failover_core::template::MessageContext;

    fn am() -> Alertmanager {
        Alertmanager::new(
            &["http://127.0.0.1:9".into()],
            &[("team".into(), "dba".into())],
            SignedDuration::from_hours(24),
            Duration::from_secs(1),
        )
        .expect("builds")
    }

    fn msg(context: Value) -> Outgoing {
        let context: MessageContext = serde_json::from_value(context).unwrap_or_default();
        Outgoing {
            delivery: 1,
            event: "7".into(),
            verdict: MessageKind::Unplanned,
            intent: Intent::of_event(&context),
            subject: "s".into(),
            body: "b".into(),
            sms: String::new(),
            context,
            link: None,
        }
    }

    #[test]
    fn an_alert_ends_after_resolve_after_and_has_no_empty_labels() {
        let a = am().alert(&msg(json!({
            "cluster": "db", "customer": "", "host": "db2", "at_utc": "2026-12-09T21:14:03.5Z"
        })));
        assert_eq!(
            a["labels"],
            json!({ "alertname": "ClusterFailover", "cluster": "db", "active": "db2",
                    "verdict": "unplanned", "event": "7", "team": "dba" })
        );
        assert_eq!(a["startsAt"], "2026-12-09T21:14:03.5Z");
        assert_eq!(a["endsAt"], "2026-12-10T21:14:03.5Z");
        assert!(a.get("generatorURL").is_none());
        // At the end of time the alert ends at the last instant, not in an overflow.
        let late = am().alert(&msg(json!({ "at_utc": "9999-12-30T21:00:00Z" })));
        assert_eq!(late["endsAt"], Timestamp::MAX.to_string());
        // No time (a test message): Alertmanager stamps its own.
        let bare = am().alert(&msg(Value::Null));
        assert!(bare.get("startsAt").is_none() && bare.get("endsAt").is_none());
    }
}
