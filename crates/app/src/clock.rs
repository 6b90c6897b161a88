//! The only place that reads the clock.

use jiff::Timestamp;

/// The current instant.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Timestamp {
    Timestamp::now()
}
