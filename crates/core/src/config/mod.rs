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
//! - `channels.rs`: `[[channels]]` → [`Channel`](crate::inventory::Channel)
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
    let file: schema::File = toml::from_str(src).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            span: e.span().unwrap_or(0..0),
            kind: ConfigErrorKind::Syntax {
                message: e.message().trim_end().to_owned(),
            },
        }])
    })?;
    validate::build(file, src)
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
    #[error("`end` must be after the start")]
    EndBeforeStart,
    #[error("unknown channel kind `{value}`: use `sns`, `email`, `webhook` or `log`")]
    ChannelKind { value: String },
    #[error("`{field}` does not apply to a `{kind}` channel")]
    ChannelField {
        field: &'static str,
        kind: &'static str,
    },
    #[error("a `{kind}` channel needs `{field}`")]
    ChannelMissing {
        field: &'static str,
        kind: &'static str,
    },
    #[error("`{value}` is not an http:// or https:// URL")]
    Url { value: String },
    #[error("`{value}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")]
    TopicArn { value: String },
    #[error("`{value}` is not an e-mail address")]
    Email { value: String },
    #[error("unknown webhook format `{value}`: use `slack`, `teams` or `generic`")]
    WebhookFormat { value: String },
    #[error("unknown tls mode `{value}`: use `starttls`, `tls` or `none`")]
    Tls { value: String },
    #[error("port `{value}` is out of range 1-65535")]
    Port { value: i64 },
    #[error("header value for `{name}` must be a string")]
    HeaderValue { name: String },
    #[error("unknown verdict `{value}`: use `planned`, `unplanned` or `unknown-host`")]
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
    #[error("`{field}` must be at least 1, found {value}")]
    Count { field: &'static str, value: i64 },
    #[error("name must not be empty")]
    EmptyName,
}
