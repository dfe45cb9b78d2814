//! The records a state directory stores: one [`BuildRecord`] per build plus its ordered [`Event`]s.
//!
//! Everything here is plain serde data. The phase type `P` is the phase machine's own enum; the store
//! never looks inside it.

use std::collections::BTreeMap;
use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reconciler::ssh::HostKey;

/// A build's identifier: `b-` followed by 10 lowercase hex characters, generated once at creation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuildId(String);

impl BuildId {
    /// A fresh random id (40 bits: collisions are checked at insertion anyway).
    pub fn generate() -> BuildId {
        let mut bytes = [0u8; 5];
        rand::thread_rng().fill_bytes(&mut bytes);
        BuildId(format!("b-{}", hex::encode(bytes)))
    }

    /// Parses a user-given id, checking its shape so a typo gives a clear error instead of "not found".
    pub fn parse(text: &str) -> Option<BuildId> {
        let hex_part = text.strip_prefix("b-")?;
        let well_formed = hex_part.len() == 10
            && hex_part
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        well_formed.then(|| BuildId(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch. Milliseconds keep records small and make
/// durations (`show`) a subtraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `2025-01-02T03:04:05.678Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => match t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            )) {
                Ok(text) => f.write_str(&text),
                Err(_) => write!(f, "{}ms", self.0),
            },
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

/// A cloud call about to be made: written and flushed before the call (the write-ahead rule), so a
/// resume re-issues it with the same ClientToken instead of creating a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The deterministic ClientToken the call uses (empty for actions that have none).
    pub client_token: String,
    /// When the intent was recorded.
    pub started_at: Timestamp,
}

/// Progress of one provisioner, keyed by its index in the spec.
///
/// `finished_at == None` means it started and was interrupted: it may have run partly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerCheckpoint {
    /// When it was (last) started.
    pub started_at: Timestamp,
    /// When it completed successfully.
    pub finished_at: Option<Timestamp>,
}

/// Everything bakerd knows about one build. Stored as JSON under the build id.
///
/// Caveat: never put secrets here (access key secrets, private keys): state files are not encrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord<P> {
    /// Stable id, also the `bakerd:build-id` tag value on every cloud resource.
    pub id: BuildId,
    /// The spec as frozen at `apply`: resume uses this, never the file on disk that may have changed.
    pub spec: serde_json::Value,
    /// [`spec_hash`] of `spec`: identifies "the same spec" for up-to-date checks.
    pub spec_hash: String,
    /// The phase machine's position (opaque to the store).
    pub phase: P,
    /// Attempt number: grows when a failed build is cleaned up (`on_failure: cleanup`), so that a
    /// resume creates fresh resources under fresh ClientTokens instead of being handed back the
    /// deleted ones.
    #[serde(default)]
    pub attempt: u32,
    /// The spec file the build came from (for `status`, and to re-read inline credentials).
    #[serde(default)]
    pub spec_path: String,
    /// Where the credentials of the latest run came from (`bakerd show`: which account built
    /// this). A description of the source, never a secret.
    #[serde(default)]
    pub credentials: Option<CredentialsUsed>,
    /// Every cloud resource the build created, by role name (`instance`, `key_pair`, …) → id.
    pub resources: BTreeMap<String, String>,
    /// Intents by step name; a step with an intent and no result was interrupted mid-call.
    pub intents: BTreeMap<String, Intent>,
    /// Results by step name (opaque JSON).
    pub results: BTreeMap<String, serde_json::Value>,
    /// Per-provisioner checkpoints, by provisioner index.
    pub provisioners: BTreeMap<u32, ProvisionerCheckpoint>,
    /// SSH host key pinned on first contact.
    pub host_key: Option<HostKey>,
    /// When `apply` created the build.
    pub created_at: Timestamp,
    /// Last successful `update_build`.
    pub updated_at: Timestamp,
    /// Set when a signal or a `cancel` request stopped the build at a safe point; cleared when
    /// a reconciler picks it up again. `status` shows such a build as interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_at: Option<Timestamp>,
    /// For a failed build: whether the failure may pass on a second try (throttling, 5xx, lost
    /// connections, a failed snapshot), so `apply` of the same spec retries it instead of
    /// starting over. A refused request (bad image id) or a failing script is not.
    #[serde(default)]
    pub failure_retryable: bool,
}

impl<P> BuildRecord<P> {
    /// A new record with nothing created yet.
    pub fn new(id: BuildId, spec: serde_json::Value, phase: P) -> BuildRecord<P> {
        let now = Timestamp::now();
        BuildRecord {
            id,
            spec_hash: spec_hash(&spec),
            spec,
            phase,
            attempt: 0,
            spec_path: String::new(),
            credentials: None,
            resources: BTreeMap::new(),
            intents: BTreeMap::new(),
            results: BTreeMap::new(),
            provisioners: BTreeMap::new(),
            host_key: None,
            created_at: now,
            updated_at: now,
            interrupted_at: None,
            failure_retryable: false,
        }
    }

    /// True when `step` has an intent but no result: the call may or may not have happened.
    pub fn intent_pending(&self, step: &str) -> bool {
        self.intents.contains_key(step) && !self.results.contains_key(step)
    }
}

/// Which credential source a build ran with, as `show` and `--json` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsUsed {
    /// Stable short name (`spec`, `env:ALIBABA_CLOUD_ACCESS_KEY_ID`, `cli-profile`, …).
    pub kind: String,
    /// The source in words (profile name, mode, file); never the secret.
    pub source: String,
    /// The AccessKeyId of static keys (not secret; sent with every request). Temporary keys are
    /// not shown: they change with every fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
}

/// One line of a build's history. Events are append-only and ordered by insertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: Timestamp,
    /// Machine-readable kind, e.g. `phase`, `intent`, `result`, `ssh`, `error`.
    pub kind: String,
    /// Human-readable text.
    pub message: String,
    /// Optional structured details (`Null` when none).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Event {
    /// An event stamped now, without structured details.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Event {
        Event {
            at: Timestamp::now(),
            kind: kind.into(),
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }
}

/// SHA-256 (hex) of the spec's canonical JSON: object keys sorted at every level, no whitespace, so
/// the hash does not depend on key order or formatting of the YAML it came from.
pub fn spec_hash(spec: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(spec, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = BuildId::generate();
        assert_eq!(id.as_str().len(), 12);
        assert_eq!(BuildId::parse(id.as_str()), Some(id));
        assert!(BuildId::parse("b-12345").is_none());
        assert!(BuildId::parse("x-0123456789").is_none());
        assert!(BuildId::parse("b-0123456789").is_some());
    }

    #[test]
    fn spec_hash_ignores_key_order_but_not_values() {
        let a = json!({"region": "cn-hangzhou", "image": {"name": "x", "tags": [1, 2]}});
        let b = json!({"image": {"tags": [1, 2], "name": "x"}, "region": "cn-hangzhou"});
        let c = json!({"image": {"tags": [2, 1], "name": "x"}, "region": "cn-hangzhou"});
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(spec_hash(&a), spec_hash(&c));
    }

    #[test]
    fn timestamps_print_as_rfc3339() {
        assert_eq!(
            Timestamp(1_700_000_000_123).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
