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
        let _ = writeln!(out, "{line:>gutter$} | {text}");
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

#[cfg(test)]
mod tests {
    use super::*;

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
