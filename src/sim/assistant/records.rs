//! Cloud Assistant records, persisted with the rest of the simulator's state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Everything Cloud Assistant remembers. `#[serde(default)]` in `State`, so state files written
/// before it existed still load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssistantState {
    /// Ids of disks, snapshots and images whose filesystem holds the agent (system images are
    /// decided by their creation date, see `has_agent`).
    pub agents: BTreeSet<String>,
    /// Instance id → when `InstallCloudAssistant` ran; the agent answers after the next start.
    pub installs: BTreeMap<String, u64>,
    /// Saved commands (`CreateCommand`, `RunCommand` with `KeepCommand=true`) by id.
    pub commands: BTreeMap<String, SavedCommand>,
    /// Command invocations (`RunCommand`, `InvokeCommand`) by `InvokeId`.
    pub invocations: BTreeMap<String, Invocation>,
    /// File sends (`SendFile`) by `InvokeId`.
    pub file_sends: BTreeMap<String, Invocation>,
}

/// A saved command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedCommand {
    pub id: String,
    pub region: String,
    pub name: String,
    pub description: String,
    /// `RunShellScript`, `RunBatScript` or `RunPowerShellScript`.
    pub command_type: String,
    /// The script, decoded.
    pub content: String,
    pub working_dir: String,
    pub timeout_s: u64,
    pub enable_parameter: bool,
    pub created_ms: u64,
    pub deleted_ms: Option<u64>,
    pub tags: BTreeMap<String, String>,
    pub invoke_times: u64,
}

/// One invocation (or file send) across its instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    pub id: String,
    pub region: String,
    /// The saved command it ran (`RunCommand` without `KeepCommand` still gets an id).
    pub command_id: String,
    /// `Name` of RunCommand / the command, or the file name of a send.
    pub name: String,
    pub description: String,
    pub command_type: String,
    /// The script (after parameter substitution), or the file's bytes for a send.
    #[serde(with = "b64")]
    pub content: Vec<u8>,
    pub working_dir: String,
    pub timeout_s: u64,
    pub username: String,
    pub created_ms: u64,
    pub tags: BTreeMap<String, String>,
    pub client_token: Option<String>,
    /// Set for `SendFile`.
    pub file: Option<FileSpec>,
    /// One per instance, in request order.
    pub targets: Vec<Target>,
}

/// Where and how a sent file lands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSpec {
    pub target_dir: String,
    pub file_mode: String,
    pub owner: String,
    pub group: String,
    pub overwrite: bool,
    /// `PlainText` or `Base64`, as sent (for DescribeSendFileResults).
    pub content_type: String,
}

/// An invocation's state on one instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub instance_id: String,
    /// `Pending`, `Running`, `Success`, `Failed`, `Timeout`, `Aborted`, `Invalid`, `Error`,
    /// `Stopping`, `Cancelled`, `Terminated`.
    pub status: String,
    pub exit_code: Option<i64>,
    /// Output so far, at most `OUTPUT_CAP` bytes.
    #[serde(with = "b64")]
    pub output: Vec<u8>,
    /// Output bytes beyond the cap.
    pub dropped: u64,
    pub error_code: String,
    pub error_info: String,
    pub created_ms: u64,
    pub start_ms: Option<u64>,
    pub finish_ms: Option<u64>,
    pub stop_ms: Option<u64>,
}

impl Target {
    /// A new target waiting for delivery.
    pub fn pending(instance_id: &str, now: u64) -> Target {
        Target {
            instance_id: instance_id.to_string(),
            status: "Pending".into(),
            exit_code: None,
            output: Vec::new(),
            dropped: 0,
            error_code: String::new(),
            error_info: String::new(),
            created_ms: now,
            start_ms: None,
            finish_ms: None,
            stop_ms: None,
        }
    }

    /// One pending target per instance, in request order.
    pub fn pending_on(instances: &[String], now: u64) -> Vec<Target> {
        instances.iter().map(|i| Target::pending(i, now)).collect()
    }

    /// Whether the target reached an end state.
    pub fn finished(&self) -> bool {
        !matches!(self.status.as_str(), "Pending" | "Running" | "Stopping")
    }

    /// Ends the target with `status` and an error code/info (empty for success).
    pub fn end(&mut self, status: &str, code: &str, info: &str, now: u64) {
        self.status = status.to_string();
        self.error_code = code.to_string();
        self.error_info = info.to_string();
        self.finish_ms = Some(now);
    }

    /// `InvokeRecordStatus` of this target: Running, Finished, Failed or Stopped.
    pub fn record_status(&self) -> &'static str {
        match self.status.as_str() {
            "Pending" | "Running" => "Running",
            "Stopping" => "Stopping",
            "Success" => "Finished",
            "Cancelled" | "Terminated" => "Stopped",
            _ => "Failed",
        }
    }
}

impl Invocation {
    /// The overall `InvocationStatus` from the targets' statuses, by the documented rule.
    pub fn overall_status(&self) -> &'static str {
        let has = |s: &str| self.targets.iter().any(|t| t.status == s);
        let stopped = |t: &Target| matches!(t.status.as_str(), "Cancelled" | "Terminated");
        let failed = |t: &Target| {
            matches!(
                t.status.as_str(),
                "Failed" | "Invalid" | "Aborted" | "Timeout" | "Error"
            )
        };
        if has("Pending") {
            "Pending"
        } else if has("Running") {
            "Running"
        } else if has("Stopping") {
            "Stopping"
        } else if self.targets.iter().all(stopped) {
            "Stopped"
        } else if self.targets.iter().all(|t| stopped(t) || failed(t)) {
            "Failed"
        } else if self.targets.iter().any(failed) {
            "PartialFailed"
        } else {
            "Success"
        }
    }

    /// `InvokeStatus` (the older overall field): Running, Finished, Failed, PartialFailed or
    /// Stopped.
    pub fn invoke_status(&self) -> &'static str {
        match self.overall_status() {
            "Pending" | "Running" | "Stopping" => "Running",
            "Success" => "Finished",
            other => other,
        }
    }
}

/// Bytes as base64 text in the state file.
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}
