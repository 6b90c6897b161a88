//! Compiler-style rendering of config errors:
//!
//! ```text
//! config.toml:3:13: failed to find time zone `Europe/Pariss` in time zone database
//!    |
//!  3 | time_zone = "Europe/Pariss"
//!    |             ^^^^^^^^^^^^^^^
//! ```

use std::fmt::Write as _;

use super::ConfigErrors;

/// 1-based line and column (in characters) of byte offset `at` in `src`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = floor_char_boundary(src, at.min(src.len()));
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, src[line_start..at].chars().count() + 1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders every error of `errors` against `src`, with `file` as the name shown, sorted by
/// position.
pub fn render_errors(file: &str, src: &str, errors: &ConfigErrors) -> String {
    let mut sorted: Vec<_> = errors.0.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = String::new();
    for (i, err) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (line, col) = line_col(src, err.span.start);
        let _ = writeln!(out, "{file}:{line}:{col}: {}", err.message());
        let Some(text) = src.lines().nth(line - 1) else {
            continue;
        };
        let gutter = line.to_string().len() + 1;
        let line_start_byte = src.len().min(
            src.split_inclusive('\n')
                .take(line - 1)
                .map(str::len)
                .sum::<usize>(),
        );
        let span_end = floor_char_boundary(src, err.span.end.min(line_start_byte + text.len()));
        let start = floor_char_boundary(src, err.span.start.min(span_end));
        let width = src[start..span_end].chars().count().max(1);
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line:>gutter$} | {}", masked(text));
        let _ = writeln!(
            out,
            "{:gutter$} | {:pad$}{}",
            "",
            "",
            "^".repeat(width),
            pad = col - 1
        );
    }
    out
}

/// A config line as a snippet shows it: the values of `url`, `urls`, `password`,
/// `routing_key` and `headers` lines (credentials: a webhook URL's path, a header's token, a
/// routing key given inline by mistake) masked with `*`, one for each
/// character so the caret still points at the right column. A URL keeps its scheme and host.
fn masked(text: &str) -> String {
    let key = text
        .trim_start()
        .split(['=', ' '])
        .next()
        .unwrap_or_default();
    if !["url", "urls", "password", "routing_key", "headers"].contains(&key) {
        return text.to_owned();
    }
    // In a list every string is a value; in a table only those after an `=`.
    let list = key == "urls";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Only strings after an `=` are values (a header's name is a string too).
    let mut after_equals = false;
    while let Some(open) = rest.find(['"', '=', '{', ',']) {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        if let Some(c) = from.chars().next().filter(|c| *c != '"') {
            out.push(c);
            after_equals = c == '=';
            rest = &from[1..];
            continue;
        }
        let body = &from[1..];
        let close = body.find('"').unwrap_or(body.len());
        let value = &body[..close];
        out.push('"');
        if after_equals || list {
            let keep = value.find("://").map_or(0, |i| {
                i + 3
                    + value[i + 3..]
                        .find(['/', '?', '#'])
                        .unwrap_or(value.len() - i - 3)
            });
            let kept = &value[..keep];
            // A user and password before the host are masked too.
            let kept_shown = match kept.rfind('@') {
                Some(at) => {
                    let scheme = kept.find("://").map_or(0, |i| i + 3);
                    format!(
                        "{}{}{}",
                        &kept[..scheme],
                        "*".repeat(kept[scheme..=at].chars().count()),
                        &kept[at + 1..]
                    )
                }
                None => kept.to_owned(),
            };
            out.push_str(&kept_shown);
            out.push_str(&"*".repeat(value[keep..].chars().count()));
        } else {
            out.push_str(value);
        }
        after_equals = false;
        rest = &body[close..];
        if let Some(tail) = rest.strip_prefix('"') {
            out.push('"');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_mask_credentials_and_keep_columns() {
        assert_eq!(
            masked(r#"url = "https://hooks.slack.com/services/T0/B0/XYZ""#),
            r#"url = "https://hooks.slack.com*******************""#
        );
        assert_eq!(
            masked(r#"url = "ftp://user:pw@files.example/S?sig=S""#),
            r#"url = "ftp://********files.example********""#
        );
        assert_eq!(
            masked(r#"headers = { "X-Token" = "abc", "X-Src" = { env = "T" } }"#),
            r#"headers = { "X-Token" = "***", "X-Src" = { env = "*" } }"#
        );
        assert_eq!(
            masked(r#"urls = ["http://am1:9093", "http://u:pw@am2/x"]"#),
            r#"urls = ["http://am1:9093", "http://*****am2**"]"#
        );
        assert_eq!(
            masked(r#"routing_key = "R0UTINGKEY""#),
            r#"routing_key = "**********""#
        );
        assert_eq!(masked(r#"name = "hook""#), r#"name = "hook""#);
        let line = r#"url = "https://h.example/secret""#;
        assert_eq!(masked(line).chars().count(), line.chars().count());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = "a = 1\nname = \"Zürich\" # ü\nx = 2";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        let x = src.find("x =").expect("x is in the source");
        assert_eq!(line_col(src, x), (3, 1));
        let hash = src.find('#').expect("# is in the source");
        assert_eq!(line_col(src, hash), (2, 17));
    }
}
