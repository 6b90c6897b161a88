//! HTTPS for `serve`: rustls with ring, TLS 1.3 and 1.2 with ring's suites only (ECDHE with
//! AES-GCM or ChaCha20-Poly1305), the certificate re-read in place when its files change.
//!
//! [`Tls::new`] reads `[server] tls_cert` and `tls_key` (PEM) and, when set, `tls_client_ca`
//! (clients must then present a certificate it signed). Each error names the file: missing or
//! unreadable, no certificate or key in it, a certificate outside its validity period, a key
//! that is not the certificate's. [`Tls::reload`] reads the pair again (certbot and
//! cert-manager renew in place): a good pair serves every new handshake from then on while
//! open connections carry on; a bad one is refused and the old pair kept.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use failover_core::inventory::TlsFiles;
use jiff::Timestamp;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// Why a certificate pair (or the client CA) cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The TLS side of `serve`: the acceptor's configuration and the pair it serves.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    pair: Arc<Pair>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.pair.files)
            .finish_non_exhaustive()
    }
}

/// The pair served now, and what its files looked like when read.
#[derive(Debug)]
struct Pair {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<[Option<(SystemTime, u64)>; 2]>,
}

impl ResolvesServerCert for Pair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Reads the files of `files`, checked as of now.
    ///
    /// # Errors
    /// [`TlsError`] naming the file at fault.
    pub fn new(files: &TlsFiles) -> Result<Tls, TlsError> {
        let seen = stamps(files);
        let pair = Arc::new(Pair {
            current: RwLock::new(load(files, crate::clock::now())?),
            files: files.clone(),
            seen: Mutex::new(seen),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert).map_err(|e| {
                        TlsError(format!(
                            "`{}` is not a usable CA certificate: {e}",
                            ca.display()
                        ))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                        .build()
                        .map_err(|e| TlsError(format!("`{}`: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder.with_cert_resolver(Arc::clone(&pair) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            pair,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// Reads the pair again if either file changed since it was read, or always when
    /// `forced` (SIGHUP); a pair that cannot be used keeps the old one, and the log says why.
    pub fn reload(&self, forced: bool) {
        let stamps = stamps(&self.pair.files);
        {
            let mut seen = self.pair.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !forced && *seen == stamps {
                return;
            }
            *seen = stamps;
        }
        match load(&self.pair.files, crate::clock::now()) {
            Ok(pair) => {
                *self.pair.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
                tracing::info!(cert = %self.pair.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the old one");
            }
        }
    }
}

/// When each file was last changed, and its length.
fn stamps(files: &TlsFiles) -> [Option<(SystemTime, u64)>; 2] {
    [&files.cert, &files.key].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read `{}`: {e}", path.display())))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("`{}` is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The pair of `files`, checked: both readable PEM, the leaf valid at `now`, the key its own.
fn load(files: &TlsFiles, now: Timestamp) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| {
        TlsError(format!(
            "`{}` holds no PEM private key: {e}",
            files.key.display()
        ))
    })?;
    match validity(&chain[0]) {
        Some((_, not_after)) if now > not_after => {
            return Err(TlsError(format!(
                "the certificate in `{}` expired at {not_after}",
                files.cert.display()
            )));
        }
        Some((not_before, _)) if now < not_before => {
            return Err(TlsError(format!(
                "the certificate in `{}` is not valid before {not_before}",
                files.cert.display()
            )));
        }
        Some(_) => {}
        None => {
            return Err(TlsError(format!(
                "`{}` does not hold an X.509 certificate",
                files.cert.display()
            )));
        }
    }
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| {
            TlsError(format!(
                "the key in `{}` is not the key of the certificate in `{}`: {e}",
                files.key.display(),
                files.cert.display()
            ))
        })
}

/// One DER element at the start of `der`: its tag, its content, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The leaf's `notBefore` and `notAfter` (RFC 5280 §4.1.2.5).
fn validity(cert: &[u8]) -> Option<(Timestamp, Timestamp)> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2; // [0] version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serialNumber, signature, issuer
    }
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (tag, before, rest) = element(validity)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = element(rest)?;
    Some((not_before, time(tag, after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, value: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    let full = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: u16 = s[..2].parse().ok()?;
            format!("{}{s}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => s.to_owned(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let f = &full;
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &f[0..4],
        &f[4..6],
        &f[6..8],
        &f[8..10],
        &f[10..12],
        &f[12..14]
    )
    .parse()
    .ok()
    // RFC 5280's "no well-defined expiration date", 99991231235959Z, lies past jiff's last
    // instant (9999-12-30T22:00Z): it is that last instant.
    .or_else(|| f.starts_with("9999").then_some(Timestamp::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_and_their_edges() {
        let utc = |s: &str| time(0x17, s.as_bytes()).map(|t| t.to_string());
        let generalized = |s: &str| time(0x18, s.as_bytes()).map(|t| t.to_string());
        assert_eq!(
            utc("491231235959Z").as_deref(),
            Some("2049-12-31T23:59:59Z")
        );
        assert_eq!(
            utc("500101000000Z").as_deref(),
            Some("1950-01-01T00:00:00Z")
        );
        assert_eq!(
            generalized("99991231235959Z"),
            Some(Timestamp::MAX.to_string()),
            "RFC 5280's no expiry"
        );
        assert_eq!(
            generalized("99991230120000Z").as_deref(),
            Some("9999-12-30T12:00:00Z")
        );
        assert_eq!(
            generalized("00000101000000Z").as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        for bad in [
            "",
            "Z",
            "4912312359Z",
            "491231235959",
            "49123123595aZ",
            "491331235959Z",
        ] {
            assert_eq!(utc(bad), None, "{bad:?}");
        }
        assert_eq!(time(0x02, b"491231235959Z"), None);
    }

    #[test]
    fn truncated_or_hostile_der_is_no_certificate() {
        for der in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x82, 0xff, 0xff],
            &[0x30, 0x02, 0x30, 0x00],
            &[0x02, 0x01, 0x00],
        ] {
            assert_eq!(validity(der), None, "{der:?}");
        }
    }
}
