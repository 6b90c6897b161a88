//! `[[channels]]` → [`Channel`]. One flat table per channel; which fields apply depends on
//! `kind`, and a field that does not apply is an error rather than silently ignored.

use super::ConfigErrorKind as K;
use super::schema::{ChannelSection, S};
use super::validate::{Ctx, Names};
use crate::inventory::{Channel, ChannelKind, Secret, SmtpTls, WebhookFormat};

const KINDS: [&str; 4] = ["sns", "email", "webhook", "log"];

pub(super) fn build<'a>(
    ctx: &mut Ctx,
    sections: &[S<ChannelSection>],
    lines: &'a [usize],
) -> (Vec<Channel>, Names<'a>) {
    let mut names = Names::new("channel", lines);
    let mut out = Vec::new();
    for section in sections {
        let c = section.get_ref();
        if !names.add(ctx, &c.name, out.len() as u32) {
            continue;
        }
        let Some(kind) = KINDS.iter().copied().find(|k| *k == c.kind.get_ref()) else {
            ctx.err(
                c.kind.span(),
                K::ChannelKind {
                    value: c.kind.get_ref().clone(),
                },
            );
            // Keep indexes aligned with `names` so later references resolve.
            out.push(Channel {
                name: c.name.get_ref().clone(),
                kind: ChannelKind::Log { path: None },
            });
            continue;
        };
        // Each optional field and the one kind it belongs to.
        let fields = [
            ("topic_arn", c.topic_arn.as_ref().map(S::span), "sns"),
            ("region", c.region.as_ref().map(S::span), "sns"),
            ("endpoint_url", c.endpoint_url.as_ref().map(S::span), "sns"),
            ("to", c.to.as_ref().map(S::span), "email"),
            ("from", c.from.as_ref().map(S::span), "email"),
            ("smtp_host", c.smtp_host.as_ref().map(S::span), "email"),
            ("smtp_port", c.smtp_port.as_ref().map(S::span), "email"),
            ("tls", c.tls.as_ref().map(S::span), "email"),
            ("username", c.username.as_ref().map(S::span), "email"),
            (
                "password_env",
                c.password_env.as_ref().map(S::span),
                "email",
            ),
            ("ca_file", c.ca_file.as_ref().map(S::span), "email"),
            ("url", c.url.as_ref().map(S::span), "webhook"),
            ("url_env", c.url_env.as_ref().map(S::span), "webhook"),
            ("url_file", c.url_file.as_ref().map(S::span), "webhook"),
            ("format", c.format.as_ref().map(S::span), "webhook"),
            ("headers", c.headers.as_ref().map(S::span), "webhook"),
            ("path", c.path.as_ref().map(S::span), "log"),
        ];
        for (field, span, owner) in fields {
            if let Some(span) = span
                && owner != kind
            {
                ctx.err(span, K::ChannelField { field, kind });
            }
        }
        let required = |ctx: &mut Ctx, v: &Option<S<String>>, field: &'static str| match v {
            Some(v) => Some(v.get_ref().clone()),
            None => {
                ctx.err(c.kind.span(), K::ChannelMissing { field, kind });
                None
            }
        };
        let url = |ctx: &mut Ctx, v: &S<String>| {
            let s = v.get_ref();
            let ok = (s.starts_with("http://") || s.starts_with("https://"))
                && s.len() > "https://".len()
                && !s.contains(char::is_whitespace);
            if !ok {
                ctx.err(v.span(), K::Url { value: s.clone() });
            }
            s.clone()
        };
        let built = match kind {
            "sns" => {
                let arn = required(ctx, &c.topic_arn, "topic_arn");
                if let (Some(a), Some(s)) = (&arn, &c.topic_arn)
                    && !(a.starts_with("arn:")
                        && a.split(':').count() == 6
                        && a.split(':').nth(2) == Some("sns"))
                {
                    ctx.err(s.span(), K::TopicArn { value: a.clone() });
                }
                let endpoint_url = c.endpoint_url.as_ref().map(|e| url(ctx, e));
                arn.map(|topic_arn| ChannelKind::Sns {
                    topic_arn,
                    region: c.region.as_ref().map(|r| r.get_ref().clone()),
                    endpoint_url,
                })
            }
            "email" => email(ctx, c, kind),
            "webhook" => {
                let u = match (&c.url, &c.url_env, &c.url_file) {
                    (Some(u), None, None) => Some(Secret::Inline(url(ctx, u))),
                    (None, Some(e), None) => Some(Secret::Env(e.get_ref().clone())),
                    (None, None, Some(f)) => Some(Secret::File(f.get_ref().clone())),
                    (None, None, None) => {
                        ctx.err(c.kind.span(), K::ChannelMissing { field: "url", kind });
                        None
                    }
                    _ => {
                        ctx.err(c.kind.span(), K::WebhookUrl);
                        None
                    }
                };
                let format = match c.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
                    None | Some((_, "generic")) => Some(WebhookFormat::Generic),
                    Some((_, "slack")) => Some(WebhookFormat::Slack),
                    Some((_, "teams")) => Some(WebhookFormat::Teams),
                    Some((_, "teams-connector")) => Some(WebhookFormat::TeamsConnector),
                    Some((f, other)) => {
                        ctx.err(
                            f.span(),
                            K::WebhookFormat {
                                value: other.to_owned(),
                            },
                        );
                        None
                    }
                };
                let mut headers = Vec::new();
                if let Some(h) = &c.headers {
                    for (name, value) in h.get_ref() {
                        match header_value(value) {
                            Some(v) => headers.push((name.clone(), v)),
                            None => ctx.err(h.span(), K::HeaderValue { name: name.clone() }),
                        }
                    }
                }
                u.zip(format).map(|(url, format)| ChannelKind::Webhook {
                    url,
                    format,
                    headers,
                })
            }
            _ => Some(ChannelKind::Log {
                path: c.path.as_ref().map(|p| p.get_ref().clone()),
            }),
        };
        let kind = built.unwrap_or(ChannelKind::Log { path: None });
        out.push(Channel {
            name: c.name.get_ref().clone(),
            kind,
        });
    }
    (out, names)
}

fn email(ctx: &mut Ctx, c: &ChannelSection, kind: &'static str) -> Option<ChannelKind> {
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
    let to: Option<Vec<String>> = match &c.to {
        Some(list) if list.get_ref().is_empty() => {
            ctx.err(list.span(), K::ChannelMissing { field: "to", kind });
            None
        }
        Some(list) => Some(list.get_ref().iter().map(|a| address(ctx, a)).collect()),
        None => {
            ctx.err(c.kind.span(), K::ChannelMissing { field: "to", kind });
            None
        }
    };
    let from = match &c.from {
        Some(f) => Some(address(ctx, f)),
        None => {
            ctx.err(
                c.kind.span(),
                K::ChannelMissing {
                    field: "from",
                    kind,
                },
            );
            None
        }
    };
    let tls = match c.tls.as_ref().map(|t| (t, t.get_ref().as_str())) {
        None | Some((_, "starttls")) => Some(SmtpTls::Starttls),
        Some((_, "tls")) => Some(SmtpTls::Tls),
        Some((_, "none")) => Some(SmtpTls::None),
        Some((t, other)) => {
            ctx.err(
                t.span(),
                K::Tls {
                    value: other.to_owned(),
                },
            );
            None
        }
    }?;
    if let Some(ca) = &c.ca_file
        && tls == SmtpTls::None
    {
        ctx.err(ca.span(), K::CaFileWithoutTls);
    }
    let default_port = match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let smtp_port = match &c.smtp_port {
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
        smtp_host: c
            .smtp_host
            .as_ref()
            .map_or_else(|| "localhost".to_owned(), |h| h.get_ref().clone()),
        smtp_port,
        tls,
        username: c.username.as_ref().map(|u| u.get_ref().clone()),
        password_env: c.password_env.as_ref().map(|p| p.get_ref().clone()),
        ca_file: c.ca_file.as_ref().map(|p| p.get_ref().clone()),
    })
}

/// A header value: a string, `{ env = "VARIABLE" }` or `{ file = "/path" }`.
fn header_value(value: &toml::Value) -> Option<Secret> {
    if let Some(v) = value.as_str() {
        return Some(Secret::Inline(v.to_owned()));
    }
    let table = value.as_table()?;
    match (table.len(), table.get("env"), table.get("file")) {
        (1, Some(toml::Value::String(e)), None) => Some(Secret::Env(e.clone())),
        (1, None, Some(toml::Value::String(f))) => Some(Secret::File(f.clone())),
        _ => None,
    }
}
