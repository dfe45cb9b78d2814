//! Request parameters: query string and form body merged, with typed accessors that name the
//! parameter in their errors (`MissingParameter`, `InvalidParameter`).

use std::collections::BTreeMap;

use super::error::SimError;

/// Every request parameter by name. Later sources (form body) override earlier ones (query).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// Parameters that carry authentication or transport details, not the action's meaning. They are
/// left out when comparing two requests sharing a ClientToken.
const TRANSPORT_PARAMS: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Format",
    "SecurityToken",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureType",
    "SignatureVersion",
    "Timestamp",
    "Version",
    "ClientToken",
];

impl Params {
    /// Decodes `a=b&c=d` pairs (`+` is a space) and adds them.
    pub fn add_urlencoded(&mut self, raw: &[u8]) {
        for (k, v) in form_urlencoded::parse(raw) {
            self.map.insert(k.into_owned(), v.into_owned());
        }
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.map.insert(name.to_string(), value.to_string());
    }

    /// All parameters as pairs, for signature verification.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The parameters that define what the request asks for (see `TRANSPORT_PARAMS`).
    pub fn meaning(&self) -> BTreeMap<String, String> {
        self.map
            .iter()
            .filter(|(k, _)| !TRANSPORT_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The value if present and not empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn req(&self, name: &str) -> Result<&str, SimError> {
        self.opt(name)
            .ok_or_else(|| SimError::MissingParameter(name.to_string()))
    }

    /// Booleans as any SDK sends them: `true`/`True`/`TRUE`/`false`/...
    pub fn bool(&self, name: &str) -> Result<Option<bool>, SimError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(SimError::invalid(name, format!("{v:?} is not a boolean"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, SimError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| SimError::invalid(name, format!("{v:?} is not an integer"))),
        }
    }

    /// An integer within `min..=max`, `default` when absent.
    pub fn int_in(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, SimError> {
        let v = self.int(name)?.unwrap_or(default);
        if v < min || v > max {
            return Err(SimError::invalid(
                name,
                format!("{v} is outside {min}..={max}"),
            ));
        }
        Ok(v)
    }

    /// A JSON-array-in-a-string parameter such as `InstanceIds=["i-a","i-b"]`.
    pub fn json_list(&self, name: &str) -> Result<Option<Vec<String>>, SimError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<Vec<String>>(v)
                .map(Some)
                .map_err(|_| SimError::invalid(name, "expected a JSON array of strings")),
        }
    }

    /// A repeated `.N` list: `Name.1`, `Name.2`, ... in numeric order.
    pub fn dot_list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((n, v.clone()))
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// Indices `N` present for `Name.N.<field>` structs, sorted.
    pub fn struct_indices(&self, name: &str) -> Vec<u32> {
        let prefix = format!("{name}.");
        let mut idx: Vec<u32> = self
            .map
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix)?.split('.').next()?.parse().ok())
            .collect();
        idx.sort();
        idx.dedup();
        idx
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs (value may be empty).
    pub fn tags(&self) -> Result<Vec<(String, String)>, SimError> {
        let mut out = Vec::new();
        for n in self.struct_indices("Tag") {
            let key_name = format!("Tag.{n}.Key");
            let Some(key) = self.opt(&key_name) else {
                if self.opt(&format!("Tag.{n}.Value")).is_some() {
                    return Err(SimError::MissingParameter(key_name));
                }
                continue;
            };
            let value = self.opt(&format!("Tag.{n}.Value")).unwrap_or("");
            out.push((key.to_string(), value.to_string()));
        }
        Ok(out)
    }

    /// A name that must be in `allowed` (compared case-insensitively); returns the canonical form.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, SimError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v))
                .map(|a| Some(*a))
                .ok_or_else(|| SimError::invalid(name, format!("{v:?} is not one of {allowed:?}"))),
        }
    }
}
