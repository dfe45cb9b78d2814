//! Typed reading of a rendered builder/provisioner config, and the check that every key is known.
//!
//! Values are read the way Packer's weakly typed decoding does: `"true"` is a bool, `"22"` a number,
//! because templates often pass such values through `{{user}}` strings. An empty string is unset, as
//! Packer's env-var fallbacks treat it.

use super::error::PackerError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What bakerd does with an option it does not map: nothing, because the option cannot change the
/// image (only timing, names of throwaway resources, or checks bakerd makes anyway).
pub struct WarnOnly {
    pub option: &'static str,
    pub why: &'static str,
}

/// Checks every key of `config`: supported keys pass, warn-only keys add a warning, anything else
/// is [`PackerError::UnsupportedOption`]. Guarantees: nothing is silently ignored.
pub fn check_keys(
    owner: &str,
    config: &Map<String, Value>,
    supported: &[&str],
    warn_only: &[WarnOnly],
    warnings: &mut Vec<String>,
) -> Result<(), PackerError> {
    for key in config.keys() {
        if supported.contains(&key.as_str()) {
            continue;
        }
        match warn_only.iter().find(|w| w.option == key) {
            Some(w) => warnings.push(format!("option `{key}` in {owner} ignored: {}", w.why)),
            None => {
                return Err(PackerError::UnsupportedOption {
                    option: key.clone(),
                    owner: owner.to_string(),
                    hint: String::new(),
                })
            }
        }
    }
    Ok(())
}

/// Reads typed options out of a rendered config, naming the option and its owner in errors.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub owner: &'a str,
    pub config: &'a Map<String, Value>,
    /// Prefix for nested objects (`system_disk_mapping.`), so errors name the full option.
    pub prefix: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(owner: &'a str, config: &'a Map<String, Value>) -> Self {
        Reader {
            owner,
            config,
            prefix: "",
        }
    }

    pub fn invalid(&self, key: &str, detail: impl Into<String>) -> PackerError {
        PackerError::InvalidOption {
            option: format!("{}{key}", self.prefix),
            owner: self.owner.to_string(),
            detail: detail.into(),
        }
    }

    pub fn missing(&self, key: &str, hint: impl Into<String>) -> PackerError {
        PackerError::MissingOption {
            option: format!("{}{key}", self.prefix),
            owner: self.owner.to_string(),
            hint: hint.into(),
        }
    }

    pub fn unsupported(&self, key: &str, hint: impl Into<String>) -> PackerError {
        PackerError::UnsupportedOption {
            option: format!("{}{key}", self.prefix),
            owner: self.owner.to_string(),
            hint: hint.into(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.config.contains_key(key)
    }

    /// A string option; numbers and bools are accepted as their text; empty means unset.
    pub fn string(&self, key: &str) -> Result<Option<String>, PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.invalid(key, "expected a string")),
        }
    }

    pub fn required_string(&self, key: &str, hint: &str) -> Result<String, PackerError> {
        self.string(key)?.ok_or_else(|| self.missing(key, hint))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(self.invalid(key, format!("expected true or false, got `{s}`"))),
            },
            Some(_) => Err(self.invalid(key, "expected true or false")),
        }
    }

    pub fn number(&self, key: &str) -> Result<Option<u64>, PackerError> {
        let not_a_number = |shown: &str| {
            self.invalid(key, format!("expected a non-negative integer, got {shown}"))
        };
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| not_a_number(&n.to_string())),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| not_a_number(&format!("`{s}`"))),
            Some(other) => Err(not_a_number(&other.to_string())),
        }
    }

    /// A list of strings; a single string counts as a one-element list (Packer's weak decoding).
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.invalid(key, "expected a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.invalid(key, "expected a list of strings")),
        }
    }

    /// A map of string to string (tags); numbers and bools are taken as text.
    pub fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(self.invalid(key, format!("value of `{k}` must be a string"))),
                })
                .collect(),
            Some(_) => Err(self.invalid(key, "expected an object of string values")),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(self.invalid(key, "expected an object")),
        }
    }

    pub fn list(&self, key: &str) -> Result<&'a [Value], PackerError> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.invalid(key, "expected a list")),
        }
    }
}

/// Parses a Go duration (`5m`, `1h30m`, `90s`, `1.5h`) into whole seconds, rounding up.
pub fn go_duration_secs(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::go_duration_secs;

    #[test]
    fn go_durations_parse_to_seconds() {
        assert_eq!(go_duration_secs("5m"), Some(300));
        assert_eq!(go_duration_secs("1h30m"), Some(5400));
        assert_eq!(go_duration_secs("1.5s"), Some(2));
        assert_eq!(go_duration_secs("10"), None);
        assert_eq!(go_duration_secs("5 minutes"), None);
    }
}
