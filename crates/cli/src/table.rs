//! The tables `events`, `maintenance list` and `windows` print: each column as wide as its
//! widest cell, two spaces apart, no borders, nothing wrapped, no trailing spaces.

use comfy_table::{ContentArrangement, Table, presets};

/// `rows` under `header`, one line each, ending in a newline.
pub fn render(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied())
        .add_rows(rows);
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let out = render(
            &["ID", "CLUSTER", "WHEN"],
            [
                vec!["7".into(), "db".into(), "now".into()],
                vec!["1234".into(), "a-much-longer-name".into(), "".into()],
                vec!["é".into(), "x".into(), "later".into()],
            ],
        );
        assert_eq!(
            out,
            "ID    CLUSTER             WHEN\n\
             7     db                  now\n\
             1234  a-much-longer-name\n\
             é     x                   later\n"
        );
        assert_eq!(render(&["A", "B"], []), "A  B\n");
    }
}
