//! The `postgres://` URL: libpq's spelling, with TLS by rustls as libpq's `sslmode` asks.
//!
//! tokio-postgres reads everything but `sslmode` values beyond `require` and `sslrootcert`;
//! those two are taken out here and decide the TLS setup:
//!
//! | `sslmode` | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | |
//! | `prefer` (default) | when the server offers it | not checked (as libpq) |
//! | `require` | always | checked against `sslrootcert` when given, else not (as libpq) |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert`, and for the host name |

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a `postgres://` or `postgresql://` URL.
    #[error("the database URL must start with `postgres://` or `postgresql://`")]
    Scheme,
    /// tokio-postgres refused it (it names the part, never the password).
    #[error("the database URL is not valid: {0}")]
    Invalid(#[source] tokio_postgres::Error),
    /// An `sslmode` libpq does not know.
    #[error(
        "`sslmode` must be disable, allow, prefer, require, verify-ca or verify-full, not `{0}`"
    )]
    SslMode(String),
    /// `verify-ca` or `verify-full` without the CA to check against.
    #[error("`sslmode={0}` needs `sslrootcert=PATH` (the CA certificate, PEM)")]
    NoRootCert(String),
    /// The CA file cannot be read.
    #[error("`sslrootcert` `{path}`: {error}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// A parameter neither libpq's nor supported here.
    #[error("unknown database URL parameter `{0}`")]
    Parameter(String),
    /// rustls cannot be set up (it offers no protocol version with this provider).
    #[error("TLS cannot be set up")]
    Tls(#[source] rustls::Error),
    /// Client certificates are not supported.
    #[error("`{0}` (client certificates) is not supported; use a password")]
    ClientCert(String),
}

/// The parameters tokio-postgres reads itself.
const PASSED: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// How certificates are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Ca,
    Full,
}

/// The connection settings of `url` and the TLS setup it asks for (`None`: no TLS).
pub(crate) fn parse(url: &str) -> Result<(tokio_postgres::Config, Option<ClientConfig>), UrlError> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or(UrlError::Scheme)?;
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mut mode, mut root) = ("prefer".to_owned(), None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = decode(value),
            "sslrootcert" => root = Some(PathBuf::from(decode(value))),
            "sslcert" | "sslkey" => return Err(UrlError::ClientCert(key.to_owned())),
            k if PASSED.contains(&k) => kept.push(pair),
            other => return Err(UrlError::Parameter(decode(other))),
        }
    }
    let mut plain = format!("postgres://{base}");
    if !kept.is_empty() {
        plain.push('?');
        plain.push_str(&kept.join("&"));
    }
    let mut config = tokio_postgres::Config::from_str(&plain).map_err(UrlError::Invalid)?;
    let (ssl, check) = match mode.as_str() {
        "disable" => (SslMode::Disable, Check::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Check::Nothing),
        "require" if root.is_some() => (SslMode::Require, Check::Ca),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" => (SslMode::Require, Check::Ca),
        "verify-full" => (SslMode::Require, Check::Full),
        other => return Err(UrlError::SslMode(other.to_owned())),
    };
    config.ssl_mode(ssl);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("failover-notify");
    }
    if ssl == SslMode::Disable {
        return Ok((config, None));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (check, root) {
        (Check::Nothing, _) => Arc::new(Unchecked(Arc::clone(&provider))),
        (_, None) => return Err(UrlError::NoRootCert(mode)),
        (check, Some(path)) => {
            let webpki = ca(&path)
                .and_then(|roots| {
                    WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        Arc::clone(&provider),
                    )
                    .build()
                    .map_err(|e| e.to_string())
                })
                .map_err(|error| UrlError::RootCert { path, error })?;
            if check == Check::Full {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(UrlError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, Some(tls)))
}

/// The CA certificates in the PEM file `path`.
fn ca(path: &std::path::Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

/// `%XX` decoded (a path in `sslrootcert`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without its password (in the user part or a `password=` parameter), for logs.
pub fn redacted(url: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let Some((scheme, rest)) = head.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", user.split(':').next().unwrap_or_default()),
        None => authority.to_owned(),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("password="))
        .collect();
    let mut out = format!("{scheme}://{authority}{path}");
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out
}

/// libpq's `require` without a CA: encrypted, the certificate not checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: signed by the CA, whatever host name it names.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_reaches_a_log_line() {
        assert_eq!(
            redacted("postgres://fn:s3cret@db.example:5432/fn?sslmode=require"),
            "postgres://fn@db.example:5432/fn?sslmode=require"
        );
        assert_eq!(
            redacted("postgres://db/fn?user=fn&password=s3cret"),
            "postgres://db/fn?user=fn"
        );
        assert!(!redacted("postgres://u:p@ss@h/d").contains("p@ss"));
    }

    #[test]
    fn sslmode_decides_tls_and_bad_values_are_named() {
        let (c, tls) = parse("postgres://u@127.0.0.1/d?sslmode=disable").expect("parses");
        assert!(tls.is_none());
        assert_eq!(c.get_dbname(), Some("d"));
        let (c, tls) = parse("postgresql://u@h/d").expect("parses");
        assert!(tls.is_some());
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
        let (c, _) = parse("postgres://u@h/d?sslmode=require&connect_timeout=3").expect("parses");
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        let e = parse("postgres://h/d?sslmode=always").expect_err("refused");
        assert!(e.to_string().contains("`always`"), "{e}");
        let e = parse("postgres://h/d?sslmode=verify-full").expect_err("refused");
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let e = parse("postgres://h/d?sslmode=verify-ca&sslrootcert=%2Fnone%2Fca.pem")
            .expect_err("refused");
        assert!(e.to_string().contains("/none/ca.pem"), "{e}");
        let e = parse("postgres://h/d?sslcert=c.pem").expect_err("refused");
        assert!(e.to_string().contains("sslcert"), "{e}");
        assert!(matches!(parse("mysql://h/d"), Err(UrlError::Scheme)));
        let e = parse("postgres://h/d?frobnicate=1").expect_err("refused");
        assert!(e.to_string().contains("frobnicate"), "{e}");
    }
}
