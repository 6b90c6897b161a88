//! JSON request bodies whose members are all strings (a report, an ad-hoc window): every
//! error names the member at fault, and a member given twice is refused instead of the last
//! one silently winning.

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is not a JSON object.
    #[error("invalid JSON body: {message}")]
    Json {
        /// The parser's message with line and column.
        message: String,
    },
    /// A member this API does not know (often a typo).
    #[error("unknown field `{field}`; known fields are {}", known.join(", "))]
    UnknownField {
        /// The member sent.
        field: String,
        /// The members this body may have.
        known: &'static [&'static str],
    },
    /// A member appears twice; which one was meant is unknown.
    #[error("`{field}` is given more than once")]
    Duplicate {
        /// The repeated member.
        field: String,
    },
    /// A member that must be a string is something else.
    #[error("`{field}` must be a string, not {found}")]
    NotString {
        /// The member.
        field: &'static str,
        /// What was sent instead.
        found: &'static str,
    },
}

impl BodyError {
    /// The member at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            BodyError::Json { .. } => None,
            BodyError::UnknownField { field, .. } | BodyError::Duplicate { field } => Some(field),
            BodyError::NotString { field, .. } => Some(field),
        }
    }
}

/// The string members of a JSON object, in the order of `known`; `null` counts as absent.
///
/// # Errors
/// [`BodyError`] for invalid JSON, a non-object, an unknown, repeated or non-string member.
pub fn strings<const N: usize>(
    body: &[u8],
    known: &'static [&'static str; N],
) -> Result<[Option<String>; N], BodyError> {
    let Members(members) = serde_json::from_slice(body).map_err(|e| BodyError::Json {
        message: e.to_string(),
    })?;
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut seen = [false; N];
    for (key, value) in members {
        let Some(i) = known.iter().position(|k| *k == key) else {
            return Err(BodyError::UnknownField { field: key, known });
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(BodyError::Duplicate { field: key });
        }
        out[i] = match value {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            other => {
                return Err(BodyError::NotString {
                    field: known[i],
                    found: json_type(&other),
                });
            }
        };
    }
    Ok(out)
}

/// A JSON object's members in order, duplicates kept (`serde_json::Value` keeps the last).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an object such as {"hostname": "db1"}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
