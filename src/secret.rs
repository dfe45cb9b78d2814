//! [`Secret`]: the one type for secret strings (AccessKeySecret, STS token, instance password), used
//! by both the client and the spec.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret string. `Debug` and `Display` print `** redacted **`; only [`Secret::expose`] shows the
/// value, and only the signer and the HTTP layer call that.
///
/// Serde reads and writes it as a plain string: the spec holds an inline secret it was given (and
/// writes it back in `to_yaml`), the aliyun CLI profile file holds one.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where the value must leave the process (signing, request bodies).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_reads_and_writes_as_a_plain_string_but_prints_redacted() {
        let s: Secret = serde_yaml::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_yaml::to_string(&s).unwrap().trim(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "** redacted ** ** redacted **");
    }
}
