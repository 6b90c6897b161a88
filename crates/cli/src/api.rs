//! A small client of the service's HTTP API, for `events` and `maintenance`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

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
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

/// How to trust an HTTPS service signed by an internal CA, and the client certificate for
/// one that asks for it (`[server] tls_client_ca`).
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CA that signed the service's certificate, trusted besides the
    /// system's (`https://` URLs only).
    #[arg(long, env = "FAILOVER_NOTIFY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM file with this node's client certificate and its private key, for a service
    /// that requires one.
    #[arg(long, env = "FAILOVER_NOTIFY_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
}

impl TlsArgs {
    /// An HTTP client that gives up after `timeout`, trusting `--ca-file` and presenting
    /// `--client-cert`.
    ///
    /// # Errors
    /// A file is unreadable or holds no usable PEM.
    pub fn client(&self, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --ca-file `{}`", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .with_context(|| {
                    format!("--ca-file `{}` holds no PEM certificate", path.display())
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(path) = &self.client_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --client-cert `{}`", path.display()))?;
            let identity = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "--client-cert `{}` must hold a PEM certificate and its private key",
                    path.display()
                )
            })?;
            builder = builder.identity(identity);
        }
        builder.build().context("building the HTTP client")
    }
}

/// The API key: given directly, or in a private file (the way cluster nodes keep it).
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// API key (admin, or a customer's; a customer's is enough for reports).
    #[arg(
        long,
        env = "FAILOVER_NOTIFY_KEY",
        hide_env_values = true,
        conflicts_with = "key_file"
    )]
    pub key: Option<String>,
    /// File holding the API key; it must not be readable by others (chmod 600 or 640).
    #[arg(long, env = "FAILOVER_NOTIFY_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The key given, or read from its file.
    ///
    /// # Errors
    /// Neither is given, or the file is unreadable, readable by everyone, or empty.
    pub fn read(&self) -> anyhow::Result<String> {
        read_key(self.key.as_deref(), self.key_file.as_deref())
    }
}

fn read_key(key: Option<&str>, key_file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(k) = key {
        return Ok(k.trim().to_owned());
    }
    let Some(path) = key_file else {
        bail!("give the API key with --key, FAILOVER_NOTIFY_KEY or --key-file");
    };
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading key file `{}`", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        bail!(
            "key file `{}` is readable by everyone; run `chmod o-r {}`",
            path.display(),
            path.display()
        );
    }
    let key = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file `{}`", path.display()))?;
    let key = key.trim();
    if key.is_empty() {
        bail!("key file `{}` is empty", path.display());
    }
    Ok(key.to_owned())
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
        let key = self.key.read()?;
        runtime.block_on(async {
            // A hook calls this too: it must not hang on a service that does not answer.
            let client = self.tls.client(std::time::Duration::from_secs(10))?;
            let mut req = client
                .request(method, &url)
                .header("x-api-key", key)
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
