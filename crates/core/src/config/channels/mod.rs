//! `[[channels]]` → [`Channel`]. A channel is a `name`, a `kind`, and the settings of that
//! kind; each kind is one file here that reads and checks its own settings, registered in
//! [`KINDS`]. A setting the kind does not read is an error rather than silently ignored.

mod alertmanager;
mod email;
mod log;
mod pagerduty;
mod sns;
mod webhook;

use std::ops::Range;

use super::ConfigErrorKind as K;
use super::schema::{ChannelSection, ChannelValue, S};
use super::validate::{Ctx, Names};
use crate::inventory::{Channel, ChannelKind, Secret};

/// Reads a kind's settings from `fields`, taking each one it knows; `None` after an error.
type Build = fn(&mut Ctx, &mut Fields<'_>) -> Option<ChannelKind>;

/// Every channel kind: its name in `kind = "..."` and how its settings are read. A new
/// kind is a file here and one line in this list (and its sender in `failover-channels`).
const KINDS: &[(&str, Build)] = &[
    ("sns", sns::build),
    ("email", email::build),
    ("webhook", webhook::build),
    ("pagerduty", pagerduty::build),
    ("alertmanager", alertmanager::build),
    ("log", log::build),
];

/// The kinds for an error message: "`sns`, `email`, `webhook` or `log`".
pub(crate) fn kind_names() -> String {
    let names: Vec<String> = KINDS.iter().map(|(k, _)| format!("`{k}`")).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

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
        let kind = KINDS
            .iter()
            .find(|(k, _)| *k == c.kind.get_ref())
            .map(|&(name, build)| (name, build));
        let built = match kind {
            None => {
                ctx.err(
                    c.kind.span(),
                    K::ChannelKind {
                        value: c.kind.get_ref().clone(),
                    },
                );
                None
            }
            Some((kind, build)) => {
                let mut fields = Fields {
                    kind,
                    kind_span: c.kind.span(),
                    fields: c
                        .fields
                        .iter()
                        .map(|(k, v)| (k.as_str(), v, false))
                        .collect(),
                };
                let built = build(ctx, &mut fields);
                for (field, value, _) in fields.fields.iter().filter(|(_, _, taken)| !taken) {
                    ctx.err(
                        value.span(),
                        K::ChannelField {
                            field: (*field).to_owned(),
                            kind,
                        },
                    );
                }
                built
            }
        };
        // Keep indexes aligned with `names` so later references resolve.
        out.push(Channel {
            name: c.name.get_ref().clone(),
            kind: built.unwrap_or(ChannelKind::Log { path: None }),
        });
    }
    (out, names)
}

/// A channel's settings, as a kind's [`Build`] takes them.
pub(super) struct Fields<'a> {
    /// The kind being read.
    pub(super) kind: &'static str,
    /// Where `kind = "..."` is (for a missing setting).
    kind_span: Range<usize>,
    /// Each setting, and whether the kind took it.
    fields: Vec<(&'a str, &'a S<ChannelValue>, bool)>,
}

impl<'a> Fields<'a> {
    /// Takes setting `name`, if given.
    fn take(&mut self, name: &str) -> Option<&'a S<ChannelValue>> {
        let (_, value, taken) = self.fields.iter_mut().find(|(f, _, _)| *f == name)?;
        *taken = true;
        Some(*value)
    }

    fn wrong_type(
        &self,
        ctx: &mut Ctx,
        name: &'static str,
        v: &S<ChannelValue>,
        want: &'static str,
    ) {
        ctx.err(
            v.span(),
            K::ChannelFieldType {
                field: name,
                expected: want,
                found: v.get_ref().type_name(),
            },
        );
    }

    /// A string setting.
    pub(super) fn string(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<S<String>> {
        let v = self.take(name)?;
        match v.get_ref() {
            ChannelValue::String(s) => Some(S::new(v.span(), s.clone())),
            _ => {
                self.wrong_type(ctx, name, v, "a string");
                None
            }
        }
    }

    /// Setting `name` is given (of whatever type).
    pub(super) fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(f, _, _)| *f == name)
    }

    /// A string setting the kind cannot do without.
    pub(super) fn required(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<S<String>> {
        if !self.has(name) {
            self.missing(ctx, name);
        }
        self.string(ctx, name)
    }

    /// Says that the kind needs `name`.
    pub(super) fn missing(&self, ctx: &mut Ctx, name: &'static str) {
        self.error(
            ctx,
            K::ChannelMissing {
                field: name,
                kind: self.kind,
            },
        );
    }

    /// An error about the channel as a whole, at its `kind`.
    pub(super) fn error(&self, ctx: &mut Ctx, kind: K) {
        ctx.err(self.kind_span.clone(), kind);
    }

    /// A boolean setting.
    pub(super) fn boolean(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<bool> {
        let v = self.take(name)?;
        match v.get_ref() {
            ChannelValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(ctx, name, v, "a boolean");
                None
            }
        }
    }

    /// An integer setting.
    pub(super) fn integer(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<S<i64>> {
        let v = self.take(name)?;
        match v.get_ref() {
            ChannelValue::Integer(i) => Some(S::new(v.span(), *i)),
            _ => {
                self.wrong_type(ctx, name, v, "an integer");
                None
            }
        }
    }

    /// An array of strings; `Some(span, [])` when given empty.
    pub(super) fn strings(
        &mut self,
        ctx: &mut Ctx,
        name: &'static str,
    ) -> Option<(Range<usize>, Vec<S<String>>)> {
        let v = self.take(name)?;
        let ChannelValue::Array(items) = v.get_ref() else {
            self.wrong_type(ctx, name, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                ChannelValue::String(s) => out.push(S::new(item.span(), s.clone())),
                _ => self.wrong_type(ctx, name, item, "a string"),
            }
        }
        Some((v.span(), out))
    }

    /// A table setting.
    pub(super) fn table(
        &mut self,
        ctx: &mut Ctx,
        name: &'static str,
    ) -> Option<S<&'a toml::Table>> {
        let v = self.take(name)?;
        match v.get_ref() {
            ChannelValue::Table(t) => Some(S::new(v.span(), t)),
            _ => {
                self.wrong_type(ctx, name, v, "a table");
                None
            }
        }
    }
}

/// An inline credential's field and the function that checks and keeps its value.
type Inline = (&'static str, fn(&mut Ctx, &S<String>) -> String);

/// A credential given as exactly one of `inline` (checked and kept by its function), `env`
/// (a variable's name) or `file` (a path); `fields` names them all for the error.
pub(super) fn secret(
    ctx: &mut Ctx,
    f: &mut Fields<'_>,
    inline: Option<Inline>,
    [env, file]: [&'static str; 2],
    fields: &'static str,
) -> Option<Secret> {
    let named = inline
        .iter()
        .map(|(name, _)| *name)
        .chain([env, file])
        .filter(|s| f.has(s))
        .count();
    let given = (
        inline.and_then(|(name, check)| f.string(ctx, name).map(|v| check(ctx, &v))),
        f.string(ctx, env),
        f.string(ctx, file),
    );
    match given {
        (Some(v), None, None) => Some(Secret::Inline(v)),
        (None, Some(e), None) => Some(Secret::Env(e.into_inner())),
        (None, None, Some(p)) => Some(Secret::File(p.into_inner())),
        _ if named > 1 => {
            f.error(ctx, K::OneOf { fields });
            None
        }
        // Given, but not as a string: said already.
        _ if named == 1 => None,
        _ => {
            match inline {
                Some((name, _)) => f.missing(ctx, name),
                None => f.error(ctx, K::OneOf { fields }),
            }
            None
        }
    }
}

/// An http:// or https:// URL, or an error at its span (the value is kept either way).
pub(super) fn url(ctx: &mut Ctx, v: &S<String>) -> String {
    let s = v.get_ref();
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > "https://".len()
        && !s.contains(char::is_whitespace);
    if !ok {
        ctx.err(v.span(), K::Url { value: s.clone() });
    }
    s.clone()
}
