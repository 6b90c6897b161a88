//! What arrives over HTTP: a failover report, and its validation.
//!
//! The original's body is `{"hostname": "..."}`; every other field is optional. Validation
//! names the field at fault so the caller can fix its hook.

use jiff::{SignedDuration, Timestamp};

use crate::body::{self, BodyError};

/// The fields of a report body.
const FIELDS: [&str; 7] = [
    "hostname",
    "occurred_at",
    "previous",
    "action",
    "resource",
    "source",
    "id",
];

/// Longest accepted host name, in bytes (DNS's limit).
pub const MAX_HOSTNAME: usize = 253;
/// Longest accepted free-text field (`resource`, `source`, `id`, `previous`), in bytes.
pub const MAX_TEXT: usize = 256;
/// How far in the future `occurred_at` may lie (clock skew between node and server).
pub const MAX_FUTURE: SignedDuration = SignedDuration::from_mins(5);
/// How far in the past `occurred_at` may lie: a spooled report may arrive late, but not
/// from a node whose clock was reset to 1970.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(366 * 24);

/// A report as sent: every field optional so that a missing one gets a clear error (the
/// OpenAPI document says which are required, and their limits).
#[derive(Debug, Default, Clone, utoipa::ToSchema)]
#[schema(example = json!({"hostname": "db1"}))]
pub struct RawReport {
    /// The host that took over (or released, or saw its peer lost).
    #[schema(
        required = true,
        min_length = 1,
        max_length = 253,
        pattern = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )]
    pub hostname: Option<String>,
    /// When it happened, RFC 3339: at most 5 minutes ahead and 366 days back (default: now).
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
    /// The host that was active before.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )]
    pub previous: Option<String>,
    /// `takeover` (default), `release`, `lost` or `fenced` (which needs `previous`).
    #[schema(value_type = Option<Action>)]
    pub action: Option<String>,
    /// The cluster resource concerned.
    #[schema(min_length = 1, max_length = 256)]
    pub resource: Option<String>,
    /// What sent it (`heartbeat`, `keepalived`, `curl`...).
    #[schema(min_length = 1, max_length = 256)]
    pub source: Option<String>,
    /// Client id: a retry with the same id is the same report.
    #[schema(min_length = 1, max_length = 256)]
    pub id: Option<String>,
}

/// What the reporting host says happened.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The host became active.
    Takeover,
    /// The host gave its resources up.
    Release,
    /// The host saw its peer (`previous`) disappear and is taking over; naming no peer, the
    /// host itself cannot serve (keepalived's `FAULT`).
    Lost,
    /// The host saw the cluster fence `previous` (Pacemaker's fencing alert).
    Fenced,
}

impl Action {
    /// The spelling used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Takeover => "takeover",
            Action::Release => "release",
            Action::Lost => "lost",
            Action::Fenced => "fenced",
        }
    }

    /// The action spelled `name` (as [`Action::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Action> {
        [
            Action::Takeover,
            Action::Release,
            Action::Lost,
            Action::Fenced,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }
}

/// A validated report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverReport {
    /// Reporting host, as sent.
    pub hostname: String,
    /// When it happened: `occurred_at`, or the receipt time.
    pub occurred_at: Timestamp,
    /// The previously active host.
    pub previous: Option<String>,
    /// What happened.
    pub action: Action,
    /// Resource name.
    pub resource: Option<String>,
    /// Sender.
    pub source: Option<String>,
    /// Client id.
    pub id: Option<String>,
}

/// Why a report was refused; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not a JSON object of strings, or an unknown or repeated field.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A required field is absent.
    #[error("`{field}` is missing")]
    Missing {
        /// Field name.
        field: &'static str,
    },
    /// A field is present but empty.
    #[error("`{field}` is empty")]
    Empty {
        /// Field name.
        field: &'static str,
    },
    /// A field is longer than allowed.
    #[error("`{field}` is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text field holds a control or bidirectional character (see [`crate::text`]).
    #[error(transparent)]
    Forbidden(#[from] crate::text::Forbidden),
    /// A host name has a character DNS names cannot have.
    #[error(
        "`{field}` has {found:?} at byte {at}; host names use letters, digits, `-`, `_` and dots between non-empty labels"
    )]
    BadHostName {
        /// Field name.
        field: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// `occurred_at` is not an RFC 3339 instant.
    #[error("`occurred_at` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `{value}`")]
    BadTime {
        /// The value sent.
        value: String,
    },
    /// `occurred_at` lies too far in the past.
    #[error("`occurred_at` `{value}` is more than 366 days in the past; check the node's clock")]
    TooOld {
        /// The value sent.
        value: String,
    },
    /// `occurred_at` lies too far in the future.
    #[error("`occurred_at` `{value}` is more than 5 minutes in the future; check the node's clock")]
    Future {
        /// The value sent.
        value: String,
    },
    /// `action` is not one of the known words.
    #[error("`action` must be `takeover`, `release`, `lost` or `fenced`, not `{value}`")]
    BadAction {
        /// The value sent.
        value: String,
    },
    /// `action` is `fenced` without the node fenced.
    #[error("`action` `fenced` needs `previous`: the node that was fenced")]
    FencedWhom,
}

impl ReportError {
    /// The JSON field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ReportError::Body(e) => e.field(),
            ReportError::Missing { field }
            | ReportError::Empty { field }
            | ReportError::TooLong { field, .. }
            | ReportError::Forbidden(crate::text::Forbidden { field, .. })
            | ReportError::BadHostName { field, .. } => Some(field),
            ReportError::BadTime { .. }
            | ReportError::Future { .. }
            | ReportError::TooOld { .. } => Some("occurred_at"),
            ReportError::BadAction { .. } => Some("action"),
            ReportError::FencedWhom => Some("previous"),
        }
    }
}

/// Parses and validates a report body received at `now`.
///
/// # Errors
/// [`ReportError`] naming the first field at fault.
pub fn parse(body: &[u8], now: Timestamp) -> Result<FailoverReport, ReportError> {
    let [
        hostname,
        occurred_at,
        previous,
        action,
        resource,
        source,
        id,
    ] = body::strings(body, &FIELDS)?;
    RawReport {
        hostname,
        occurred_at,
        previous,
        action,
        resource,
        source,
        id,
    }
    .validate(now)
}

impl RawReport {
    /// Checks every field against the rules above.
    ///
    /// # Errors
    /// [`ReportError`] naming the first field at fault.
    pub fn validate(self, now: Timestamp) -> Result<FailoverReport, ReportError> {
        let hostname = self
            .hostname
            .ok_or(ReportError::Missing { field: "hostname" })?;
        host_name("hostname", &hostname)?;
        if let Some(p) = &self.previous {
            host_name("previous", p)?;
        }
        for (field, value) in [
            ("resource", &self.resource),
            ("source", &self.source),
            ("id", &self.id),
        ] {
            if let Some(v) = value {
                text(field, v)?;
            }
        }
        let occurred_at = match self.occurred_at {
            None => now,
            Some(value) => {
                let at: Timestamp = value.parse().map_err(|_| ReportError::BadTime {
                    value: value.clone(),
                })?;
                if at.duration_since(now) > MAX_FUTURE {
                    return Err(ReportError::Future { value });
                }
                if now.duration_since(at) > MAX_AGE {
                    return Err(ReportError::TooOld { value });
                }
                at
            }
        };
        let action = match self.action.as_deref() {
            None | Some("takeover") => Action::Takeover,
            Some("release") => Action::Release,
            Some("lost") => Action::Lost,
            Some("fenced") if self.previous.is_none() => return Err(ReportError::FencedWhom),
            Some("fenced") => Action::Fenced,
            Some(other) => {
                return Err(ReportError::BadAction {
                    value: other.to_owned(),
                });
            }
        };
        Ok(FailoverReport {
            hostname,
            occurred_at,
            previous: self.previous,
            action,
            resource: self.resource,
            source: self.source,
            id: self.id,
        })
    }
}

fn text(field: &'static str, v: &str) -> Result<(), ReportError> {
    if v.is_empty() {
        return Err(ReportError::Empty { field });
    }
    if v.len() > MAX_TEXT {
        return Err(ReportError::TooLong {
            field,
            len: v.len(),
            max: MAX_TEXT,
        });
    }
    crate::text::check(field, v)?;
    Ok(())
}

fn host_name(field: &'static str, v: &str) -> Result<(), ReportError> {
    if v.is_empty() {
        return Err(ReportError::Empty { field });
    }
    if v.len() > MAX_HOSTNAME {
        return Err(ReportError::TooLong {
            field,
            len: v.len(),
            max: MAX_HOSTNAME,
        });
    }
    if crate::config::valid_host_name(v) {
        return Ok(());
    }
    // Name the first offending character: a bad byte, or the dot that ends an empty or
    // over-long label.
    let mut label_start = 0;
    for (at, c) in v.char_indices() {
        let bad = match c {
            '.' => at == label_start || at - label_start > 63,
            c => !(c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        };
        if bad {
            return Err(ReportError::BadHostName {
                field,
                found: c,
                at,
            });
        }
        if c == '.' {
            label_start = at + 1;
        }
    }
    Err(ReportError::BadHostName {
        field,
        found: v.chars().last().unwrap_or('.'),
        at: v.len().saturating_sub(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-09T21:14:03Z".parse().expect("test instant")
    }

    fn err(body: &str) -> String {
        let e = parse(body.as_bytes(), now()).expect_err("should be refused");
        format!("{}: {e}", e.field().unwrap_or("-"))
    }

    #[test]
    fn the_originals_body_is_a_takeover_now() {
        let r = parse(br#"{"hostname":"cluster01-b"}"#, now()).expect("valid");
        assert_eq!(r.hostname, "cluster01-b");
        assert_eq!(r.occurred_at, now());
        assert_eq!(r.action, Action::Takeover);
    }

    #[test]
    fn bad_reports_name_the_field() {
        insta::assert_snapshot!(err(r#"{"hostname":"#), @"-: invalid JSON body: EOF while parsing a value at line 1 column 12");
        insta::assert_snapshot!(err(r#"["db1"]"#), @r#"-: invalid JSON body: invalid type: sequence, expected an object such as {"hostname": "db1"} at line 1 column 0"#);
        insta::assert_snapshot!(err(r#"{}"#), @"hostname: `hostname` is missing");
        insta::assert_snapshot!(err(r#"{"hostname":""}"#), @"hostname: `hostname` is empty");
        insta::assert_snapshot!(err(r#"{"hostname":"db 1"}"#), @r#"hostname: `hostname` has ' ' at byte 2; host names use letters, digits, `-`, `_` and dots between non-empty labels"#);
        insta::assert_snapshot!(err(r#"{"hostname":"db1..x"}"#), @r#"hostname: `hostname` has '.' at byte 4; host names use letters, digits, `-`, `_` and dots between non-empty labels"#);
        insta::assert_snapshot!(err(&format!(r#"{{"hostname":"{}"}}"#, "a".repeat(254))), @"hostname: `hostname` is 254 bytes long; at most 253 are allowed");
        insta::assert_snapshot!(err(r#"{"hostname":7}"#), @"hostname: `hostname` must be a string, not a number");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occured_at":"x"}"#), @"occured_at: unknown field `occured_at`; known fields are hostname, occurred_at, previous, action, resource, source, id");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"yesterday"}"#), @"occurred_at: `occurred_at` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `yesterday`");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"2026-12-09T21:19:04Z"}"#), @"occurred_at: `occurred_at` `2026-12-09T21:19:04Z` is more than 5 minutes in the future; check the node's clock");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","action":"failover"}"#), @"action: `action` must be `takeover`, `release`, `lost` or `fenced`, not `failover`");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","action":"fenced"}"#), @"previous: `action` `fenced` needs `previous`: the node that was fenced");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","id":""}"#), @"id: `id` is empty");
        insta::assert_snapshot!(err(r#"{"hostname":"a","hostname":"b"}"#), @"hostname: `hostname` is given more than once");
        insta::assert_snapshot!(err(r#"{"hostname":"a","id":"1","id":null}"#), @"id: `id` is given more than once");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"-009999-01-01T00:00:00Z"}"#), @"occurred_at: `occurred_at` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `-009999-01-01T00:00:00Z`");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"9999-12-31T23:59:59Z"}"#), @"occurred_at: `occurred_at` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `9999-12-31T23:59:59Z`");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"0000-01-01T00:00:00Z"}"#), @"occurred_at: `occurred_at` `0000-01-01T00:00:00Z` is more than 366 days in the past; check the node's clock");
        insta::assert_snapshot!(err(r#"{"hostname":"db1","occurred_at":"2025-12-01T00:00:00Z"}"#), @"occurred_at: `occurred_at` `2025-12-01T00:00:00Z` is more than 366 days in the past; check the node's clock");
    }

    #[test]
    fn late_and_slightly_early_instants_are_accepted() {
        let r = parse(
            br#"{"hostname":"db1","occurred_at":"2026-12-09T21:19:03Z","action":"lost","previous":"db2.example.com"}"#,
            now(),
        )
        .expect("valid");
        assert_eq!(r.action, Action::Lost);
        let old = parse(
            br#"{"hostname":"db1","occurred_at":"2026-12-01T00:00:00+01:00"}"#,
            now(),
        );
        assert!(old.is_ok());
    }
}
