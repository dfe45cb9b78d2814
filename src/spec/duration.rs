//! Human durations in the spec: `90s`, `5m`, `1h30m`, `2h`. Used as `#[serde(with = "duration")]`.
//!
//! Why not seconds as integers: `timeout: 300` is ambiguous to a reader (seconds? minutes?); a unit is not.

use serde::{de, Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses `1h30m`, `5m`, `90s`, `1h2m3s`. A unit is required; the result must be positive.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let explain = || {
        format!("invalid duration `{text}`: use a number with a unit, like `90s`, `5m` or `1h30m`")
    };
    if text.is_empty() {
        return Err(explain());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(explain()),
        };
        let amount: u64 = digits.parse().map_err(|_| explain())?;
        total = amount
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(explain)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(explain());
    }
    if total == 0 {
        return Err(format!("duration `{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds back to the shortest unit form: 5400 s → `1h30m`.
pub fn format(duration: &Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, suffix) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&format!("{}{suffix}", secs / unit));
            secs %= unit;
        }
    }
    out
}

pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(duration))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn refuses_missing_units_zero_and_garbage() {
        for bad in ["", "300", "5x", "m", "0s", "99999999999999999999h", "-5m"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [1, 59, 60, 61, 3600, 5400, 86_400 + 1] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(&d)).unwrap(), d);
        }
    }
}
