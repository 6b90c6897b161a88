//! A small client of the service's HTTP API, for `events` and `maintenance`.

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the service is and the key to use.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Base URL of `serve`.
    #[arg(
        long,
        env = "FAILOVER_NOTIFY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key (admin, or a customer's).
    #[arg(long, env = "FAILOVER_NOTIFY_KEY", hide_env_values = true)]
    key: String,
}

impl Target {
    /// Sends a request and reads the answer as `T` (one of `failover_app::api`'s bodies).
    ///
    /// # Errors
    /// As [`Target::call`], or the answer is not a `T`.
    pub fn fetch<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let answer = self.call(method, path, query, body)?;
        serde_json::from_value(answer)
            .with_context(|| format!("reading the answer of {path} (is the service this version?)"))
    }

    /// Sends a request and returns the JSON answer (`null` for 204).
    ///
    /// # Errors
    /// The service cannot be reached, or answered with an error (its message is shown).
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        runtime.block_on(async {
            let mut req = reqwest::Client::new()
                .request(method, &url)
                .header("x-api-key", &self.key)
                .query(query);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.with_context(|| format!("calling {url}"))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let json: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if !status.is_success() {
                let msg = json
                    .get("error")
                    .and_then(Value::as_str)
                    .map_or_else(|| json.to_string(), str::to_owned);
                bail!("{url} answered {status}: {msg}");
            }
            Ok(json)
        })
    }
}
