//! Free text from outside (a report's `source`, a window's `reason`): what is refused, and how
//! stored text is shown on a terminal.
//!
//! Control characters (C0, DEL, C1: ESC sequences, CR/LF that forge rows) and the Unicode
//! bidirectional overrides, embeddings and isolates (U+202E turns text around on the
//! dashboard) are refused where text comes in, and escaped wherever stored text is printed,
//! since older rows or the inventory's own text may still hold them.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character no text field may hold.
pub fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The first forbidden character of `s` and its byte offset.
pub fn first_forbidden(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|&(_, c)| forbidden(c))
}

/// A text field holds a control or bidirectional character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{field}` has the control or bidirectional character U+{:04X} at byte {at}; text fields take printable characters only",
    *found as u32
)]
pub struct Forbidden {
    /// Field name.
    pub field: &'static str,
    /// The offending character.
    pub found: char,
    /// Its byte offset.
    pub at: usize,
}

/// Refuses `value` of `field` when it holds a forbidden character.
///
/// # Errors
/// [`Forbidden`] naming the field, the character and where it is.
pub fn check(field: &'static str, value: &str) -> Result<(), Forbidden> {
    match first_forbidden(value) {
        None => Ok(()),
        Some((at, found)) => Err(Forbidden { field, found, at }),
    }
}

/// `s` with every forbidden character written as `\u{…}`, safe to print on a terminal.
///
/// ```
/// use failover_core::text::printable;
/// assert_eq!(printable("ok"), "ok");
/// assert_eq!(printable("a\x1b[31mb\r\n\u{202e}"), "a\\u{1b}[31mb\\u{d}\\u{a}\\u{202e}");
/// ```
pub fn printable(s: &str) -> Cow<'_, str> {
    if first_forbidden(s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if forbidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_and_bidi_but_not_other_text() {
        for s in [
            "\0", "\t", "\n", "\r", "\x1b", "\x7f", "\u{85}", "\u{9b}", "\u{202e}", "\u{2066}",
            "\u{200f}",
        ] {
            assert!(first_forbidden(s).is_some(), "{s:?}");
        }
        for s in [
            "patch night",
            "Wartung für db-1 – Kernel",
            "メンテナンス",
            "emoji 🔧",
            "a\u{200d}b",
        ] {
            assert_eq!(first_forbidden(s), None, "{s:?}");
        }
        assert_eq!(first_forbidden("ab\u{202e}c"), Some((2, '\u{202e}')));
    }
}
