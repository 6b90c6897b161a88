//! `kind = "email"`: SMTP with STARTTLS, TLS or plain, optional AUTH.

use super::Fields;
use crate::config::ConfigErrorKind as K;
use crate::config::schema::S;
use crate::config::validate::Ctx;
use crate::inventory::{ChannelKind, SmtpTls};

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    let address = |ctx: &mut Ctx, v: &S<String>| {
        let s = v.get_ref();
        let ok = s.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !s.contains(char::is_whitespace)
        });
        if !ok {
            ctx.err(v.span(), K::Email { value: s.clone() });
        }
        s.clone()
    };
    let to: Option<Vec<String>> = match f.strings(ctx, "to") {
        Some((span, list)) if list.is_empty() => {
            ctx.err(
                span,
                K::ChannelMissing {
                    field: "to",
                    kind: f.kind,
                },
            );
            None
        }
        Some((_, list)) => Some(list.iter().map(|a| address(ctx, a)).collect()),
        None => {
            f.missing(ctx, "to");
            None
        }
    };
    let from = f.required(ctx, "from").map(|a| address(ctx, &a));
    let smtp_host = f.string(ctx, "smtp_host");
    let port = f.integer(ctx, "smtp_port");
    let username = f.string(ctx, "username");
    let password_env = f.string(ctx, "password_env");
    let ca_file = f.string(ctx, "ca_file");
    let tls = match f.string(ctx, "tls") {
        None => Some(SmtpTls::Starttls),
        Some(t) => match t.get_ref().as_str() {
            "starttls" => Some(SmtpTls::Starttls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            other => {
                ctx.err(
                    t.span(),
                    K::Tls {
                        value: other.to_owned(),
                    },
                );
                None
            }
        },
    }?;
    if let Some(ca) = &ca_file
        && tls == SmtpTls::None
    {
        ctx.err(ca.span(), K::CaFileWithoutTls);
    }
    let default_port = match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let smtp_port = match &port {
        None => default_port,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => v,
            _ => {
                ctx.err(
                    p.span(),
                    K::Port {
                        value: *p.get_ref(),
                    },
                );
                return None;
            }
        },
    };
    Some(ChannelKind::Email {
        to: to?,
        from: from?,
        smtp_host: smtp_host.map_or_else(|| "localhost".to_owned(), |h| h.into_inner()),
        smtp_port,
        tls,
        username: username.map(|u| u.into_inner()),
        password_env: password_env.map(|p| p.into_inner()),
        ca_file: ca_file.map(|p| p.into_inner()),
    })
}
