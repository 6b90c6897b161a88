//! The inventory file: parse, validate and report every problem with its line and column.
//!
//! [`parse`] is pure (the caller reads the file). Phase 1 is TOML syntax and field names
//! (`deny_unknown_fields` everywhere); phase 2 checks meaning (zones exist, references
//! resolve, lengths fit their periods, templates render) and collects **all** problems.
//!
//! # Layout
//! - `schema.rs`: serde types as written, every value `Spanned`
//! - `validate.rs`: customers, clusters, routes, keys, templates → [`Inventory`]
//! - `windows.rs`: `[[windows]]` → [`MaintenanceWindow`](crate::window::MaintenanceWindow)
//! - `channels/`: `[[channels]]` → [`Channel`](crate::inventory::Channel), one file per kind
//! - `render.rs`: `FILE:LINE:COL: message` plus a caret snippet

mod channels;
mod render;
mod schema;
mod validate;
mod windows;

use std::ops::Range;

pub use render::{line_col, render_errors};
pub use validate::valid_host_name;
pub use windows::friendly as friendly_duration;

use crate::cron::CronError;
use crate::inventory::Inventory;
use crate::keys::KeyHashError;
use crate::template::TemplateError;

/// The example inventory shipped with the project (`validate --example` prints it).
pub const EXAMPLE: &str = include_str!("../../../../examples/inventory.toml");

/// Parses and validates an inventory.
///
/// # Errors
/// Every problem found, each with the byte range of the value it is about.
pub fn parse(src: &str) -> Result<Inventory, ConfigErrors> {
    let mut file = schema::File::default();
    let mut padded = String::new();
    for piece in pieces(src) {
        // Spaces in place of the pieces before keep every span an offset into `src`.
        padded.clear();
        padded.extend(std::iter::repeat_n(' ', piece.start));
        padded.push_str(&src[piece]);
        let part: schema::File = toml::from_str(&padded)
            .map_err(|e| single(e.span().unwrap_or(0..0), e.message().trim_end().to_owned()))?;
        file.absorb(part).map_err(|(key, span)| {
            single(
                span,
                format!("duplicate key `{key}`: the table is defined twice"),
            )
        })?;
    }
    validate::build(file, src)
}

fn single(span: Range<usize>, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        span,
        kind: ConfigErrorKind::Syntax { message },
    }])
}

/// About this many bytes of TOML are parsed at a time.
const PIECE: usize = 256 * 1024;

/// Splits a large file before top-level `[[name]]` headers into pieces of about [`PIECE`]
/// bytes, each a TOML document of its own.
///
/// The TOML parser holds about 30 bytes per byte of input until it is done; parsing a
/// 25,000-node inventory at once peaked above 100 MB, and glibc kept most of it after the
/// parse. Splitting only before a top-level array-of-tables header keeps every table and
/// its sub-tables in one piece; the pieces' arrays are concatenated (`schema::File::absorb`).
fn pieces(src: &str) -> Vec<Range<usize>> {
    use toml_parser::lexer::TokenKind as T;
    if src.len() < PIECE {
        return std::iter::once(0..src.len()).collect(); // no cut is possible: spare the lexing
    }
    let mut cuts = vec![0];
    let mut depth = 0usize; // open `[` / `{` inside values
    let mut line_start = true;
    let mut in_header = false;
    for token in toml_parser::Source::new(src).lex() {
        let start = token.span().start();
        match token.kind() {
            T::Newline => {
                line_start = true;
                in_header = false;
                continue;
            }
            T::Whitespace | T::Comment => continue,
            T::LeftSquareBracket if depth == 0 && (line_start || in_header) => {
                if line_start
                    && start - cuts[cuts.len() - 1] >= PIECE
                    && top_level_array_header(&src[start..])
                {
                    cuts.push(start);
                }
                in_header = true;
            }
            T::RightSquareBracket if in_header => {}
            T::LeftSquareBracket | T::LeftCurlyBracket => depth += 1,
            T::RightSquareBracket | T::RightCurlyBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
        line_start = false;
    }
    cuts.push(src.len());
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// `[[name]]` with a bare key, then only whitespace or a comment on the line.
fn top_level_array_header(line: &str) -> bool {
    let line = line.lines().next().unwrap_or_default();
    let Some(rest) = line.strip_prefix("[[") else {
        return false;
    };
    let Some((name, after)) = rest.split_once("]]") else {
        return false;
    };
    let after = after.trim_start();
    !name.trim().is_empty()
        && name
            .trim()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && (after.is_empty() || after.starts_with('#'))
}

/// All problems of one file.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the inventory", .0.len())]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// One problem at one place.
#[derive(Debug)]
pub struct ConfigError {
    /// Byte range in the source.
    pub span: Range<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// The message with its causes, `a: b: c`.
    pub fn message(&self) -> String {
        let mut msg = self.kind.to_string();
        let mut source = std::error::Error::source(&self.kind);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    }
}

/// What is wrong with a value.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's message is its documentation
pub enum ConfigErrorKind {
    #[error("{message}")]
    Syntax { message: String },
    #[error("failed to find time zone `{name}` in time zone database")]
    UnknownTimeZone { name: String },
    #[error("invalid duration `{value}` (write e.g. `90m`, `4h`, `1d 2h`)")]
    Duration { value: String, source: jiff::Error },
    #[error("duration `{value}` must be longer than zero")]
    ZeroDuration { value: String },
    #[error("duration `{value}` must not be negative")]
    NegativeDuration { value: String },
    #[error("`{value}` is not a time of day (write `HH:MM`, e.g. `22:00`)")]
    TimeOfDay { value: String, source: jiff::Error },
    #[error("`{value}` is not a date (write `YYYY-MM-DD`)")]
    Date { value: String, source: jiff::Error },
    #[error("`{value}` is not a local date and time (write `YYYY-MM-DD HH:MM`)")]
    DateTime { value: String, source: jiff::Error },
    #[error("week `{value}` is out of range: use 1 to 5, or -1 for the last")]
    Week { value: i64 },
    #[error("`week = -1` (last) cannot be combined with `calendar = \"monday-weeks\"`")]
    LastWithMondayWeeks,
    #[error(
        "unknown weekday `{value}` (use a name like `wednesday` or `wed`, or 0-6 with Monday = 0)"
    )]
    DayName { value: String },
    #[error(
        "day `{value}` is out of range: use 0-6 (Monday = 0, as in the original handler) or a name"
    )]
    DayNumber { value: i64 },
    #[error("offset_days `{value}` is out of range -27 to 27")]
    OffsetDays { value: i64 },
    #[error(
        "day of month `{value}` is out of range: use 1 to 31, or -1 to -31 counting from the end"
    )]
    DayOfMonth { value: i64 },
    #[error("unknown calendar `{value}`: use `nth-weekday` or `monday-weeks`")]
    Calendar { value: String },
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error(
        "window `{window}` needs a schedule: one of `week` + `day`, `days`, `day_of_month`, `cron`, `date`"
    )]
    NoSchedule { window: String },
    #[error("window `{window}` has more than one schedule ({fields}); keep one")]
    ManySchedules { window: String, fields: String },
    #[error("`{field}` needs `{needs}`{hint}")]
    Requires {
        field: &'static str,
        needs: &'static str,
        hint: &'static str,
    },
    #[error("`{field}` cannot be used with `{with}`{hint}")]
    NotWith {
        field: &'static str,
        with: &'static str,
        hint: &'static str,
    },
    #[error("window `{window}` needs exactly one owner: `node`, `cluster` or `customer`")]
    Owner { window: String },
    #[error("unknown {what} `{name}`")]
    Unknown { what: &'static str, name: String },
    #[error("{what} `{name}` is defined twice (first on line {first_line})")]
    Duplicate {
        what: &'static str,
        name: String,
        first_line: usize,
    },
    #[error("node `{node}` is already in cluster `{cluster}`; a node belongs to one cluster")]
    NodeInTwoClusters { node: String, cluster: String },
    #[error("cluster `{cluster}` needs at least two nodes, found {found}")]
    TooFewNodes { cluster: String, found: usize },
    #[error("`preferred = \"{node}\"` is not a node of cluster `{cluster}` (its nodes: {nodes})")]
    PreferredNotANode {
        cluster: String,
        node: String,
        nodes: String,
    },
    #[error(
        "`{value}` is not a valid host name (letters, digits, `-`, `_` and `.`, at most 253 bytes)"
    )]
    HostName { value: String },
    #[error(
        "window `{window}` lasts `{length}`, too long for the {period} between its occurrences (a timed window must end 2h before the next one starts, to survive clock changes)"
    )]
    LongerThanPeriod {
        window: String,
        length: String,
        period: String,
    },
    #[error("a whole-day window (no `start`) lasts whole days, found `{value}`")]
    WholeDays { value: String },
    #[error("window `{window}` needs `duration`{hint}")]
    MissingDuration { window: String, hint: &'static str },
    #[error(
        "`{value}` is not a network (write an address or a CIDR such as `10.0.0.0/8` or `2001:db8::/32`)"
    )]
    Network { value: String },
    #[error("`{field}` must be at least {min}, not `{value}`")]
    TooShort {
        field: &'static str,
        value: String,
        min: &'static str,
    },
    #[error("`{field}` must be an absolute path, not `{value}`")]
    NotAbsolute { field: &'static str, value: String },
    #[error("`end` must be after the start")]
    EndBeforeStart,
    #[error("unknown channel kind `{value}`: use {}", channels::kind_names())]
    ChannelKind { value: String },
    #[error("`{field}` does not apply to `kind = \"{kind}\"`")]
    ChannelField { field: String, kind: &'static str },
    #[error("`{field}` must be {expected}, not {found}")]
    ChannelFieldType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`kind = \"{kind}\"` needs `{field}`")]
    ChannelMissing {
        field: &'static str,
        kind: &'static str,
    },
    #[error(
        "`{}` is not an http:// or https:// URL",
        crate::inventory::redact_url(value)
    )]
    Url { value: String },
    #[error("`{value}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")]
    TopicArn { value: String },
    #[error("`{value}` is not an e-mail address")]
    Email { value: String },
    #[error(
        "unknown webhook format `{value}`: use `slack`, `teams`, `teams-connector`, `mattermost`, `googlechat`, `googlechat-card` or `generic`"
    )]
    WebhookFormat { value: String },
    #[error("unknown tls mode `{value}`: use `starttls`, `tls` or `none`")]
    Tls { value: String },
    #[error(
        "`ca_file` needs `tls = \"starttls\"` or `tls = \"tls\"`: with `none` nothing is verified"
    )]
    CaFileWithoutTls,
    #[error("port `{value}` is out of range 1-65535")]
    Port { value: i64 },
    #[error(
        "header value for `{name}` must be a string, `{{ env = \"VARIABLE\" }}` or `{{ file = \"/path\" }}`"
    )]
    HeaderValue { name: String },
    #[error("give exactly one of {fields}")]
    OneOf { fields: &'static str },
    #[error(
        "label `{name}`: a label name is letters, digits and `_`, not starting with a digit, and not one failover-notify sets (`alertname`, `cluster`, `customer`, `verdict`, `active`, `event`); its value is a string"
    )]
    Label { name: String },
    #[error("unknown severity `{value}`: use `critical`, `error`, `warning` or `info`")]
    Severity { value: String },
    #[error(
        "unknown verdict `{value}`: use `planned`, `unplanned`, `unknown-host`, `cluster-start`, `not-back` or `back`"
    )]
    Verdict { value: String },
    #[error("a route needs at least one channel")]
    NoChannels,
    #[error(
        "route names both `customer` and `cluster`; cluster `{cluster}` belongs to customer `{owner}`, not `{customer}`"
    )]
    RouteMismatch {
        cluster: String,
        owner: String,
        customer: String,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    KeyHash(#[from] KeyHashError),
    #[error("key `{name}` needs `customer = \"...\"` or `admin = true`, not both and not neither")]
    KeyOwner { name: String },
    #[error("unknown key role `{value}`: use `operator` (the default) or `viewer`")]
    KeyRole { value: String },
    #[error("`{field}` must be at least 1, found {value}")]
    Count { field: &'static str, value: i64 },
    #[error("name must not be empty")]
    EmptyName,
    #[error("`{field}` `{value}` is longer than the largest allowed, {max}")]
    TooLong {
        field: &'static str,
        value: String,
        max: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filler just short of a piece, then `tail`: the first possible cut lies in `tail`.
    fn after_a_piece(tail: &str) -> String {
        let mut s = String::new();
        while s.len() + 40 < PIECE {
            s.push_str("[[customers]]\nname = \"filler\"\n\n");
        }
        s.push_str(tail);
        s
    }

    fn cuts(src: &str) -> Vec<usize> {
        pieces(src).iter().map(|p| p.start).skip(1).collect()
    }

    #[test]
    fn cuts_only_before_top_level_array_headers() {
        let tail = concat!(
            "[[customers]]\nname = \"x\"\n",
            "[customers.templates.planned]\n",
            "body = \"\"\"\n[[clusters]]\n\"\"\"\n",
            "nodes = [\n[[\"a\"]],\n]\n",
            "[[windows.nested]]\n",
            "[[ \"quoted\" ]]\n",
            "[[clusters]] # the first real one\n",
        );
        let src = after_a_piece(tail);
        let real = src.rfind("[[clusters]] #").expect("header");
        assert_eq!(cuts(&src), vec![real]);
    }

    #[test]
    fn small_files_are_one_piece() {
        assert_eq!(pieces(EXAMPLE), vec![0..EXAMPLE.len()]);
    }
}
