//! Scalar types as the user wrote them.
//!
//! Why: serde_yaml gives any scalar to a string field as its text, so `instance: {type: null}`
//! builds with instance type "null", and `name: 42` or `username: true` pass unnoticed. After
//! typed deserialization, every string the spec holds is compared with what the YAML wrote at
//! that path: an unquoted null, boolean or number that became a string is an error naming the
//! field, its line and the fix. serde's own wording (`expected u16`) is also put into words here.
//!
//! Caveats: only strings equal to the written text are checked, so fields that parse a string
//! into something else (durations) keep their own errors.

use serde_json::Value;

/// What an unquoted YAML scalar is when it is not a string (YAML 1.2 core schema, as
/// serde_yaml reads it), or `None` for a string.
pub(crate) fn plain_kind(text: &str) -> Option<&'static str> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some("an empty value (null)"),
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Some("a boolean"),
        ".inf" | "-.inf" | "+.inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN" => {
            return Some("a number")
        }
        _ => {}
    }
    let digits = text.trim_start_matches(['-', '+']);
    let radix = digits
        .strip_prefix("0x")
        .map(|d| (d, 16))
        .or_else(|| digits.strip_prefix("0o").map(|d| (d, 8)));
    let number = match radix {
        Some((d, radix)) => !d.is_empty() && u64::from_str_radix(d, radix).is_ok(),
        None => {
            digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                && digits.chars().any(|c| c.is_ascii_digit())
                && text.parse::<f64>().is_ok()
        }
    };
    number.then_some("a number")
}

/// A string field that the YAML wrote as an unquoted non-string.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Coerced {
    /// Field path (`instance.type`).
    pub path: String,
    /// What was written (`null`, `42`).
    pub text: String,
    /// What it is in YAML (`a number`).
    pub kind: &'static str,
}

impl Coerced {
    /// What to tell the user.
    pub fn message(&self) -> String {
        if self.kind.starts_with("an empty") {
            return "expected a string, found an empty value (null); write a value or remove the \
                    key"
            .into();
        }
        format!(
            "expected a string, found {} `{}`; quote it (\"{}\") if the text is meant",
            self.kind, self.text, self.text
        )
    }
}

/// The first string in `value` (the deserialized spec, as JSON) whose path holds an unquoted
/// non-string scalar of the same text in the YAML; `plain` looks up the written text by path.
pub(crate) fn first_coerced<'a>(
    value: &Value,
    plain: &dyn Fn(&str) -> Option<&'a str>,
) -> Option<Coerced> {
    let mut stack: Vec<(String, &Value)> = vec![(String::new(), value)];
    while let Some((path, node)) = stack.pop() {
        match node {
            Value::String(s) => {
                let written = plain(&path).filter(|text| *text == s.as_str());
                if let Some(kind) = written.and_then(plain_kind) {
                    return Some(Coerced {
                        path,
                        text: s.clone(),
                        kind,
                    });
                }
            }
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| (format!("{path}[{i}]"), v)),
            ),
            Value::Object(map) => stack.extend(map.iter().rev().map(|(k, v)| {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                (child, v)
            })),
            _ => {}
        }
    }
    None
}

/// serde's type names in words: `expected u16` → `expected a whole number from 0 to 65535`.
pub(crate) fn in_words(message: &str) -> String {
    const NAMES: [(&str, &str); 10] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut text = message.to_string();
    for (rust, words) in NAMES {
        if let Some(at) = text.find(rust) {
            let end = at + rust.len();
            let whole_word = !text[end..].starts_with(|c: char| c.is_ascii_alphanumeric());
            if whole_word {
                text.replace_range(at..end, words);
            }
        }
    }
    if let Some(at) = text.find("expected struct ") {
        text.replace_range(at.., "expected a mapping of fields");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unquoted_nulls_booleans_and_numbers_are_not_strings() {
        for text in [
            "null", "~", "", "true", "False", "42", "-7", "1.5", "1e3", "0x1F", ".inf",
        ] {
            assert!(plain_kind(text).is_some(), "{text}");
        }
        for text in [
            "ecs.s2.large",
            "cn-hangzhou",
            "1.2.3",
            "inf",
            "nan",
            "0xZZ",
            "v1",
            "-",
        ] {
            assert_eq!(plain_kind(text), None, "{text}");
        }
    }

    #[test]
    fn a_string_written_as_an_unquoted_number_is_found_with_its_path() {
        let spec = json!({"instance": {"type": "42"}, "image": {"name": "n", "tags": {"v": "1"}}});
        let written = |path: &str| match path {
            "instance.type" => Some("42"),
            "image.name" => Some("n"),
            _ => None,
        };
        let found = first_coerced(&spec, &written).expect("found");
        assert_eq!(found.path, "instance.type");
        assert!(found.message().contains("quote it (\"42\")"));
    }

    #[test]
    fn a_quoted_number_is_a_string() {
        let spec = json!({"image": {"tags": {"v": "1"}}});
        assert_eq!(first_coerced(&spec, &|_| None), None);
    }

    #[test]
    fn rust_type_names_become_words() {
        assert_eq!(
            in_words("invalid type: string \"22\", expected u16"),
            "invalid type: string \"22\", expected a whole number from 0 to 65535"
        );
        assert_eq!(
            in_words("invalid type: sequence, expected struct RawCredentials"),
            "invalid type: sequence, expected a mapping of fields"
        );
        assert_eq!(in_words("expected u160"), "expected u160");
    }
}
