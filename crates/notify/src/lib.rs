//! failover-notify's delivery channels: one file per kind, all behind [`Notifier`].
//!
//! A channel sends one rendered message and says whether a failure is worth retrying
//! (a retryable [`DeliveryError`]) or not (a permanent [`DeliveryError`]); the outbox worker
//! in `app` decides when to try again. Depends on `core` only for channel settings.
//!
//! # Layout
//! - [`aws`]: the AWS SDK set-up (also used by the Lambda deployment's DynamoDB store)
//! - [`sns`]: AWS SNS publish (aws-sdk-sns, rustls with ring)
//! - [`email`]: SMTP with STARTTLS, TLS or plain, optional AUTH (lettre)
//! - [`webhook`]: HTTP POST shaped for Slack, Teams, or the event as JSON (reqwest)
//! - [`pagerduty`]: PagerDuty's Events API v2, trigger and resolve (reqwest)
//! - [`alertmanager`]: Alertmanager's `/api/v2/alerts`, firing and resolved (reqwest)
//! - [`log`]: a JSON line to stdout or to a file, fsynced, deduplicated after a crash

pub mod alertmanager;
#[cfg(feature = "aws")]
pub mod aws;
pub mod email;
pub mod log;
pub mod pagerduty;
#[cfg(feature = "sns")]
pub mod sns;
pub mod webhook;

use failover_core::inventory::{Channel, ChannelKind, MessageKind};
use failover_core::template::MessageContext;
use jiff::Timestamp;
use serde::Serialize;

/// One message to send. Serialized, it is the body of a `generic` webhook and a `log`
/// channel's line: `delivery`, `event`, `verdict`, `subject`, `body`, `context`, `link`.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    /// Delivery id (a log line carries it so a restart can tell it was written).
    pub delivery: i64,
    /// Event id.
    pub event: String,
    /// What the message is about: the event's verdict, or `not-back` for its reminder.
    pub verdict: MessageKind,
    /// What a channel that raises alerts does with it.
    #[serde(skip)]
    pub intent: Intent,
    /// Rendered subject.
    pub subject: String,
    /// Rendered body.
    pub body: String,
    /// Rendered SMS text (one segment), for SNS channels with `sms = true`.
    #[serde(skip)]
    pub sms: String,
    /// The template context: cluster, nodes, window, times.
    pub context: MessageContext,
    /// The event's page on the dashboard, when `[server] public_url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What a message asks of a channel that raises alerts (a pager, an Alertmanager); the
/// others send every message alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// An event's own message: raise an alert keyed by the event.
    Alert,
    /// A failback's message: end the alert of the event it undoes, at the failback's time.
    Failback {
        /// The event the failback undoes.
        undoes: String,
    },
    /// The `not-back` reminder of the event: raise the alert again.
    Reminder,
    /// End the event's own alert at `at` (an ad-hoc window explained it after the fact; a
    /// test alert).
    Resolve {
        /// When the alert ends.
        at: Timestamp,
    },
}

impl Intent {
    /// The intent of an event's own message: a failback's ends the alert of the event it
    /// undoes (the context's `failback_of_event`), any other raises one.
    pub fn of_event(context: &MessageContext) -> Intent {
        if context.failback_of_event.is_empty() {
            Intent::Alert
        } else {
            Intent::Failback {
                undoes: context.failback_of_event.clone(),
            }
        }
    }
}

impl Outgoing {
    /// The event whose alert this message ends, and when, or `None` when it raises one. A
    /// failback ends its undone event's alert at the failback's time (`at_utc`); `None`
    /// for the time when the context has none.
    pub fn resolves(&self) -> Option<(&str, Option<Timestamp>)> {
        match &self.intent {
            Intent::Failback { undoes } => Some((undoes, self.at())),
            Intent::Resolve { at } => Some((&self.event, Some(*at))),
            Intent::Alert | Intent::Reminder => None,
        }
    }

    /// When the event happened (the context's `at_utc`), `None` for a test message.
    pub fn at(&self) -> Option<Timestamp> {
        self.context.at_utc.parse().ok()
    }
}

/// A failed attempt: whether trying again may help, and why, with every URL in the message
/// cut to its host (a webhook's path and query are its credential). The message is what
/// the store keeps as the delivery's last error and the API shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    retryable: bool,
    message: String,
}

impl DeliveryError {
    /// Worth trying again later (timeouts, 5xx, 429, connection refused).
    pub fn retryable(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retryable: true,
            message: redact_urls(&message.into()),
        }
    }

    /// Trying again will not help (4xx, invalid topic, rejected recipient).
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retryable: false,
            message: redact_urls(&message.into()),
        }
    }

    /// Trying again may help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Why it failed, redacted.
    pub fn into_message(self) -> String {
        self.message
    }
}

/// `text` with each `scheme://...` word cut to `scheme://host/<redacted>`.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters right before `://`.
        let start = rest[..at]
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+' && c != '.' && c != '-')
            .map_or(0, |i| i + 1);
        let mut end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .map_or(rest.len(), |i| at + i);
        // A URL redacted already (a channel's own error names it so) keeps its one `>`.
        if rest[..end].ends_with("/<redacted") && rest[end..].starts_with('>') {
            end += 1;
        }
        out.push_str(&rest[..start]);
        out.push_str(&failover_core::inventory::redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Maps an HTTP status of a failed request: 408, 429 and 5xx are retryable, other 4xx are
/// permanent (as Alertmanager does).
pub fn outcome_for_status(status: u16, detail: &str) -> Result<(), DeliveryError> {
    let msg = || {
        if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        }
    };
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(DeliveryError::retryable(msg())),
        _ => Err(DeliveryError::permanent(msg())),
    }
}

/// A channel ready to send.
#[derive(Debug)]
pub enum Notifier {
    /// AWS SNS.
    #[cfg(feature = "sns")]
    Sns(Box<sns::Sns>),
    /// SMTP.
    Email(Box<email::Email>),
    /// HTTP POST.
    Webhook(webhook::Webhook),
    /// PagerDuty Events API v2.
    PagerDuty(pagerduty::PagerDuty),
    /// Alertmanager API v2.
    Alertmanager(alertmanager::Alertmanager),
    /// JSON lines.
    Log(log::Log),
}

/// A channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("channel `{channel}`: {problem}")]
pub struct SetupError {
    /// Channel name.
    pub channel: String,
    /// What is wrong.
    pub problem: String,
}

impl Notifier {
    /// Builds the sender for one configured channel. `timeout` bounds each attempt.
    ///
    /// # Errors
    /// [`SetupError`] when a file cannot be opened or a client cannot be built.
    pub async fn build(
        channel: &Channel,
        timeout: std::time::Duration,
    ) -> Result<Notifier, SetupError> {
        let err = |problem: String| SetupError {
            channel: channel.name.clone(),
            problem,
        };
        Ok(match &channel.kind {
            #[cfg(not(feature = "sns"))]
            ChannelKind::Sns { .. } => {
                return Err(err(
                    "this build has no SNS channel (failover-notify was built without the `sns` feature)"
                        .into(),
                ));
            }
            #[cfg(feature = "sns")]
            ChannelKind::Sns {
                topic_arn,
                region,
                endpoint_url,
                sms,
            } => Notifier::Sns(Box::new(
                sns::Sns::new(
                    topic_arn,
                    region.as_deref(),
                    endpoint_url.as_deref(),
                    *sms,
                    timeout,
                )
                .await,
            )),
            ChannelKind::Email { .. } => Notifier::Email(Box::new(
                email::Email::new(&channel.kind, timeout).map_err(err)?,
            )),
            ChannelKind::Webhook {
                url,
                format,
                headers,
            } => Notifier::Webhook(
                webhook::Webhook::new(url, *format, headers, timeout).map_err(err)?,
            ),
            ChannelKind::PagerDuty {
                routing_key,
                url,
                severity,
            } => Notifier::PagerDuty(
                pagerduty::PagerDuty::new(routing_key, url, *severity, timeout).map_err(err)?,
            ),
            ChannelKind::Alertmanager {
                urls,
                labels,
                resolve_after,
            } => Notifier::Alertmanager(
                alertmanager::Alertmanager::new(urls, labels, *resolve_after, timeout)
                    .map_err(err)?,
            ),
            ChannelKind::Log { path } => {
                Notifier::Log(log::Log::open(path.as_deref()).map_err(|e| err(e.to_string()))?)
            }
        })
    }

    /// Sends one message.
    ///
    /// # Errors
    /// [`DeliveryError`] saying whether to retry.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        match self {
            #[cfg(feature = "sns")]
            Notifier::Sns(c) => c.send(msg).await,
            Notifier::Email(c) => c.send(msg).await,
            Notifier::Webhook(c) => c.send(msg).await,
            Notifier::PagerDuty(c) => c.send(msg).await,
            Notifier::Alertmanager(c) => c.send(msg).await,
            Notifier::Log(c) => c.send(msg).await,
        }
    }
}

/// An error and its sources, `outer: inner: innermost`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::DeliveryError;

    #[test]
    fn a_delivery_error_never_carries_a_url_path_or_query() {
        let e = DeliveryError::retryable(
            "error sending request for url (https://hooks.slack.com/services/T0/B0/SECRET?x=1): connection refused",
        );
        assert!(e.is_retryable());
        assert_eq!(
            e.into_message(),
            "error sending request for url (https://hooks.slack.com/<redacted>): connection refused"
        );
        let e =
            DeliveryError::permanent("HTTP 400 from http://user:pw@10.0.0.1:8080/x and ftp://y/z.");
        assert!(!e.is_retryable());
        assert_eq!(
            e.into_message(),
            "HTTP 400 from http://10.0.0.1:8080/<redacted> and ftp://y/<redacted>"
        );
        // Redacted once already (a webhook's error names its URL so): unchanged.
        let once = "https://hooks.slack.example/<redacted>: error sending request";
        assert_eq!(DeliveryError::retryable(once).into_message(), once);
        // Nothing to cut, and edges.
        for plain in ["smtp down", "", "://", "a://"] {
            let m = DeliveryError::permanent(plain).into_message();
            assert!(
                !m.contains("pw") && m.len() <= plain.len().max(20),
                "{plain:?} -> {m:?}"
            );
        }
        assert_eq!(
            DeliveryError::permanent("smtp down").into_message(),
            "smtp down"
        );
    }
}
