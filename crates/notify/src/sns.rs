//! AWS SNS: publish the subject and body to a topic; with `sms = true` as a JSON message
//! structure whose `sms` entry (one short segment) goes to phones and whose `default` (the
//! body) to every other protocol.

use std::time::Duration;

use aws_sdk_sns::error::SdkError;

use crate::{DeliveryError, Outgoing, error_chain, outcome_for_status};

/// SNS limits subjects to 100 printable ASCII characters on one line.
const MAX_SUBJECT: usize = 100;

/// An SNS topic.
#[derive(Debug)]
pub struct Sns {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    sms: bool,
}

impl Sns {
    /// A client for the topic. The region comes from `region` or the ARN; credentials from
    /// the usual AWS chain (environment, profile, instance role).
    pub async fn new(
        topic_arn: &str,
        region: Option<&str>,
        endpoint_url: Option<&str>,
        sms: bool,
        timeout: Duration,
    ) -> Sns {
        let region = region
            .map(str::to_owned)
            .or_else(|| topic_arn.split(':').nth(3).map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let config = crate::aws::sdk_config(Some(&region), endpoint_url, timeout).await;
        Sns {
            client: aws_sdk_sns::Client::new(&config),
            topic_arn: topic_arn.to_owned(),
            sms,
        }
    }

    /// Publishes the message.
    ///
    /// # Errors
    /// Permanent for 4xx answers (unknown topic, no permission), retryable otherwise.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&msg.subject));
        let publish = if self.sms {
            publish
                .message_structure("json")
                .message(serde_json::json!({ "default": msg.body, "sms": msg.sms }).to_string())
        } else {
            publish.message(&msg.body)
        };
        let result = publish.send().await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let status = e.raw().status().as_u16();
                let detail = aws_sdk_sns::error::ProvideErrorMetadata::message(e.err())
                    .unwrap_or_default()
                    .to_owned();
                outcome_for_status(status, &detail)
            }
            Err(e @ SdkError::ConstructionFailure(_)) => {
                Err(DeliveryError::permanent(error_chain(&e)))
            }
            Err(e) => Err(DeliveryError::retryable(error_chain(&e))),
        }
    }
}

/// The subject as SNS accepts it: printable ASCII, one line, at most 100 characters.
fn subject(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT)
        .collect()
}
