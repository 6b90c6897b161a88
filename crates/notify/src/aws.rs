//! The AWS SDK set-up shared by the SNS channel and the Lambda deployment's DynamoDB store.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// An SDK configuration for `endpoint_url` (AWS's own endpoint when `None`) in `region` (the
/// usual chain when `None`, `us-east-1` when it finds nothing), with `timeout` per operation.
/// Credentials come from the usual chain (environment, profile, instance role).
pub async fn sdk_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    timeout: Duration,
) -> SdkConfig {
    let http = match endpoint_url {
        // A local emulator over plain HTTP: no TLS set-up (it reads every system CA
        // certificate, about 4 ms of a cold start).
        Some(url) if url.starts_with("http://") => {
            aws_smithy_http_client::Builder::new().build_http()
        }
        _ => aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build());
    let region_in_env = std::env::var_os("AWS_REGION").is_some()
        || std::env::var_os("AWS_DEFAULT_REGION").is_some();
    match region {
        Some(r) => loader = loader.region(Region::new(r.to_owned())),
        None if !region_in_env => loader = loader.region(Region::new("us-east-1")),
        None => {}
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some()
    {
        // What the default chain would pick first (and always there on Lambda), taken
        // directly: the rest of the chain is not built (an STS client for web identity, an
        // IMDS client): a tenth of a cold start's instructions (callgrind).
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
