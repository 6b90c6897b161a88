//! E-mail over SMTP (lettre): STARTTLS, TLS from the first byte, or plain for a local relay.

use std::time::Duration;

use failover_core::inventory::{ChannelKind, SmtpTls};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{DeliveryError, Outgoing};

/// An SMTP channel.
pub struct Email {
    transport: Result<AsyncSmtpTransport<Tokio1Executor>, String>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds credentials: never print it.
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Builds the transport. The password is read from the configured environment variable.
    ///
    /// # Errors
    /// A message naming the bad address, or an unreadable or empty `ca_file`. A missing password
    /// variable fails each delivery instead, with a message saying so.
    pub fn new(kind: &ChannelKind, timeout: Duration) -> Result<Email, String> {
        let ChannelKind::Email {
            to,
            from,
            smtp_host,
            smtp_port,
            tls,
            username,
            password_env,
            ca_file,
        } = kind
        else {
            return Err("not an e-mail channel".into());
        };
        let mailbox = |a: &String| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("invalid address `{a}`: {e}"))
        };
        let builder = match tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(smtp_host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(smtp_host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                smtp_host,
            )),
        }
        .map_err(|e| format!("SMTP host `{smtp_host}`: {e}"))?;
        let mut builder = builder.port(*smtp_port).timeout(Some(timeout));
        if let Some(path) = ca_file {
            let params = tls_trusting(smtp_host, path)?;
            builder = builder.tls(match tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        // A missing password fails each delivery visibly rather than the whole service.
        let mut transport = Ok(());
        if let Some(user) = username {
            let var = password_env.as_deref().unwrap_or("SMTP_PASSWORD");
            match std::env::var(var) {
                Ok(password) => {
                    builder = builder.credentials(Credentials::new(user.clone(), password))
                }
                Err(_) => {
                    transport = Err(format!(
                        "environment variable `{var}` with the SMTP password is not set"
                    ))
                }
            }
        }
        Ok(Email {
            transport: transport.map(|()| builder.build()),
            from: mailbox(from)?,
            to: to.iter().map(mailbox).collect::<Result<_, _>>()?,
        })
    }

    /// Sends the message to every recipient.
    ///
    /// # Errors
    /// a permanent [`DeliveryError`] for a 5xx answer from the server, else retryable.
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let email = builder
            .body(msg.body.clone())
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        let transport = self
            .transport
            .as_ref()
            .map_err(|e| DeliveryError::permanent(e.clone()))?;
        transport.send(email).await.map(|_| ()).map_err(|e| {
            let text = crate::error_chain(&e);
            if e.is_permanent() {
                DeliveryError::permanent(text)
            } else {
                DeliveryError::retryable(text)
            }
        })
    }
}

/// TLS towards `host` that trusts the certificate authorities in the PEM file `path` as well as
/// the public roots.
fn tls_trusting(host: &str, path: &str) -> Result<TlsParameters, String> {
    let pem = std::fs::read(path).map_err(|e| format!("reading `ca_file` `{path}`: {e}"))?;
    let ca = Certificate::from_pem(&pem)
        .map_err(|e| format!("`ca_file` `{path}` holds no PEM certificate: {e}"))?;
    TlsParameters::builder(host.to_owned())
        .add_root_certificate(ca)
        .build_rustls()
        .map_err(|e| format!("TLS set-up for `{host}` with `ca_file` `{path}`: {e}"))
}
