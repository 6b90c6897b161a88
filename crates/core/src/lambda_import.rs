//! Reads the original Python handler's settings and writes an equivalent inventory.
//!
//! The original defines clusters and patch days as code:
//! ```text
//! varnish = PatchCluster("cluster01-a", "cluster01-b")
//! varnish.setPatching("cluster01-a", 2, 2) # Second Wednesday of the month
//! arn='arn:aws:sns:...'
//! subject='Customer Failover Notification'
//! ```
//! The output keeps the original's exact dates: whole days in UTC, counted with its
//! Monday-started weeks (`calendar = "monday-weeks"`), and shows in a comment the N-th
//! weekday spelling the original's own comments describe.

use std::fmt::Write as _;

use crate::window::WEEKDAY_NAMES;

/// A call argument: a string or an integer literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Str(String),
    Int(i64),
}

/// One `setPatching` call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patching {
    host: String,
    week: i64,
    day: i64,
    comment: Option<String>,
    line: usize,
}

/// What was found in the handler.
#[derive(Debug, Default)]
struct Found {
    /// (variable, nodes)
    clusters: Vec<(String, Vec<String>)>,
    /// (variable, patching)
    patching: Vec<(String, Patching)>,
    arn: Option<String>,
    subject: Option<String>,
}

/// The handler could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No `PatchCluster(...)` line.
    #[error("no `PatchCluster(...)` call found: is this the original handler?")]
    NoClusters,
    /// A call whose arguments are not the expected literals.
    #[error("line {line}: cannot read `{call}(...)`: expected {expected}")]
    Call {
        /// 1-based line.
        line: usize,
        /// `PatchCluster` or `setPatching`.
        call: &'static str,
        /// What the arguments should be.
        expected: &'static str,
    },
    /// `setPatching` on a variable that is no `PatchCluster`.
    #[error("line {line}: `{variable}.setPatching` but `{variable}` is not a PatchCluster")]
    UnknownVariable {
        /// 1-based line.
        line: usize,
        /// The variable.
        variable: String,
    },
    /// `setPatching` for a host its cluster does not have (the original silently ignores it).
    #[error("line {line}: `{host}` is not a node of `{variable}`; the original ignored this line")]
    UnknownHost {
        /// 1-based line.
        line: usize,
        /// The host.
        host: String,
        /// The cluster variable.
        variable: String,
    },
    /// Week or day outside what the original could ever match.
    #[error(
        "line {line}: week {week}, day {day} is out of range (week 1-5, day 0-6 with Monday = 0)"
    )]
    Range {
        /// 1-based line.
        line: usize,
        /// Week.
        week: i64,
        /// Day.
        day: i64,
    },
}

/// Converts the handler source `py` into inventory TOML.
///
/// # Errors
/// [`ImportError`] naming the line that could not be understood.
pub fn convert(py: &str) -> Result<String, ImportError> {
    let found = scan(py)?;
    if found.clusters.is_empty() {
        return Err(ImportError::NoClusters);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Converted by `failover-notify import-lambda` from the original handler."
    );
    let _ = writeln!(
        out,
        "# The original compared the Lambda's UTC date with each node's patch day, counting"
    );
    let _ = writeln!(
        out,
        "# weeks from the month's first Monday (days before it are week 0). These windows keep"
    );
    let _ = writeln!(
        out,
        "# those exact dates: whole days in UTC with calendar = \"monday-weeks\".\n"
    );
    let _ = writeln!(
        out,
        "[defaults]\ntime_zone = \"UTC\"\ngrace = {{ before = \"0m\", after = \"0m\" }}   # the original had none\n"
    );
    let _ = writeln!(
        out,
        "[events]\nfirst_report_is_start = false   # the clusters run already: a first report is a failover\n"
    );
    for (var, nodes) in &found.clusters {
        let list: Vec<String> = nodes
            .iter()
            .map(|n| format!("\"{}\"", toml_escape(n)))
            .collect();
        let _ = writeln!(
            out,
            "[[clusters]]\nname = \"{}\"\nnodes = [{}]\n",
            toml_escape(var),
            list.join(", ")
        );
    }
    for (var, p) in &found.patching {
        let (cluster_nodes, known) = match found.clusters.iter().find(|(v, _)| v == var) {
            Some((_, nodes)) => (nodes, true),
            None => {
                return Err(ImportError::UnknownVariable {
                    line: p.line,
                    variable: var.clone(),
                });
            }
        };
        if known && !cluster_nodes.contains(&p.host) {
            return Err(ImportError::UnknownHost {
                line: p.line,
                host: p.host.clone(),
                variable: var.clone(),
            });
        }
        if !(1..=5).contains(&p.week) || !(0..=6).contains(&p.day) {
            return Err(ImportError::Range {
                line: p.line,
                week: p.week,
                day: p.day,
            });
        }
        let day_name = WEEKDAY_NAMES[p.day as usize];
        let _ = writeln!(
            out,
            "[[windows]]\nname = \"patching\"\nnode = \"{}\"",
            toml_escape(&p.host)
        );
        if let Some(c) = &p.comment {
            let _ = writeln!(out, "# the original's comment: {c}");
        }
        let _ = writeln!(
            out,
            "# the {} {day_name} of the month would be: week = {}, day = \"{day_name}\" (without `calendar`)",
            ordinal(p.week),
            p.week
        );
        let _ = writeln!(
            out,
            "week = {}\nday = {}                     # {day_name} (Monday = 0)\ncalendar = \"monday-weeks\"\n",
            p.week, p.day
        );
    }
    match found.arn.as_deref() {
        Some(arn) if arn.starts_with("arn:aws:sns:") && arn.split(':').count() == 6 => {
            let _ = writeln!(
                out,
                "[[channels]]\nname = \"sns\"\nkind = \"sns\"\ntopic_arn = \"{}\"\n",
                toml_escape(arn)
            );
        }
        other => {
            let _ = writeln!(
                out,
                "# The handler's arn = {:?} is not an SNS topic ARN; messages go to the log",
                other.unwrap_or("")
            );
            let _ = writeln!(out, "# until a channel such as this is added:");
            let _ = writeln!(
                out,
                "# [[channels]]\n# name = \"sns\"\n# kind = \"sns\"\n# topic_arn = \"arn:aws:sns:REGION:ACCOUNT:TOPIC\"\n"
            );
            let _ = writeln!(out, "[[channels]]\nname = \"sns\"\nkind = \"log\"\n");
        }
    }
    let _ = writeln!(out, "[[routes]]\nchannels = [\"sns\"]\n");
    if let Some(subject) = &found.subject {
        let s = toml_escape(subject);
        let _ = writeln!(out, "# The original sent one subject for every message.");
        for verdict in ["planned", "unplanned"] {
            let _ = writeln!(out, "[templates.{verdict}]\nsubject = \"{s}\"\n");
        }
    }
    Ok(out)
}

fn ordinal(n: i64) -> &'static str {
    ["first", "second", "third", "fourth", "fifth"]
        .get((n - 1) as usize)
        .copied()
        .unwrap_or("n-th")
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn scan(py: &str) -> Result<Found, ImportError> {
    let mut found = Found::default();
    for (i, raw) in py.lines().enumerate() {
        let line_no = i + 1;
        let (code, comment) = split_comment(raw);
        let code = code.trim();
        if let Some(pos) = code.find("PatchCluster(")
            && !code.starts_with("class ")
        {
            let var = code[..pos].trim().trim_end_matches('=').trim();
            let args = call_args(&code[pos + "PatchCluster(".len()..]);
            let nodes: Option<Vec<String>> = args.and_then(|a| {
                a.into_iter()
                    .map(|x| if let Arg::Str(s) = x { Some(s) } else { None })
                    .collect()
            });
            match nodes {
                Some(nodes) if nodes.len() >= 2 && !var.is_empty() => {
                    found.clusters.push((var.to_owned(), nodes))
                }
                _ => {
                    return Err(ImportError::Call {
                        line: line_no,
                        call: "PatchCluster",
                        expected: "two quoted host names",
                    });
                }
            }
        } else if let Some(pos) = code.find(".setPatching(")
            && !code.starts_with("def ")
        {
            let var = code[..pos].trim().to_owned();
            let args = call_args(&code[pos + ".setPatching(".len()..]);
            match args.as_deref() {
                Some([Arg::Str(host), Arg::Int(week), Arg::Int(day)]) => found.patching.push((
                    var,
                    Patching {
                        host: host.clone(),
                        week: *week,
                        day: *day,
                        comment: comment
                            .map(|c| c.trim().to_owned())
                            .filter(|c| !c.is_empty()),
                        line: line_no,
                    },
                )),
                _ => {
                    return Err(ImportError::Call {
                        line: line_no,
                        call: "setPatching",
                        expected: "a quoted host name, a week number and a day number",
                    });
                }
            }
        } else if let Some(v) = assignment(code, "arn") {
            found.arn = Some(v);
        } else if let Some(v) = assignment(code, "subject") {
            found.subject = Some(v);
        }
    }
    Ok(found)
}

/// `name = 'value'` or `name="value"` → value.
fn assignment(code: &str, name: &str) -> Option<String> {
    let rest = code
        .strip_prefix(name)?
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    match call_args(&format!("{rest})"))?.as_slice() {
        [Arg::Str(s)] => Some(s.clone()),
        _ => None,
    }
}

/// Splits a line at a `#` that is not inside a string.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return (&line[..i], Some(&line[i + 1..])),
            _ => {}
        }
    }
    (line, None)
}

/// Parses literal arguments up to the closing parenthesis: `"a", 2, 'b')`.
fn call_args(s: &str) -> Option<Vec<Arg>> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek().copied()? {
            ')' => return Some(args),
            q @ ('"' | '\'') => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next()? {
                        c if c == q => break,
                        '\\' => value.push(chars.next()?),
                        c => value.push(c),
                    }
                }
                args.push(Arg::Str(value));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut num = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_digit() || *c == '-') {
                    num.push(c);
                }
                args.push(Arg::Int(num.parse().ok()?));
            }
            _ => return None,
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next()? {
            ',' => continue,
            ')' => return Some(args),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_literal_arguments() {
        assert_eq!(
            call_args(r#""a-1", 2, 'b')"#),
            Some(vec![
                Arg::Str("a-1".into()),
                Arg::Int(2),
                Arg::Str("b".into())
            ])
        );
        assert_eq!(call_args("x, 2)"), None);
        assert_eq!(
            split_comment(r##"f("#a") # c"##),
            (r##"f("#a") "##, Some(" c"))
        );
    }
}
