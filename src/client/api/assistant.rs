//! Cloud Assistant: agent status, one-shot commands and their results, file sends. Facts and
//! limits: `docs/cloud-assistant.md`.

use super::{action, Params};
use crate::client::types::{inner_list, Tag};
use serde::Deserialize;

/// `DescribeCloudAssistantStatus` for some instances.
#[derive(Debug, Clone, Default)]
pub struct DescribeCloudAssistantStatus {
    pub region_id: String,
    pub instance_ids: Vec<String>,
}
action!(
    DescribeCloudAssistantStatus,
    "DescribeCloudAssistantStatus",
    ReadOnly,
    DescribeCloudAssistantStatusResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .list("InstanceId", &self.instance_ids)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCloudAssistantStatusResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub instance_cloud_assistant_status_set: Vec<AssistantStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssistantStatus {
    pub instance_id: String,
    /// `"true"` once the agent answers.
    #[serde(default)]
    pub cloud_assistant_status: String,
}

/// `RunCommand`: a one-shot shell script on instances. `ClientToken` makes a retry return the
/// first invocation.
#[derive(Debug, Clone, Default)]
pub struct RunCommand {
    pub region_id: String,
    pub instance_ids: Vec<String>,
    /// The script (sent base64-encoded).
    pub script: String,
    pub name: String,
    pub timeout_secs: u64,
    pub working_dir: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    RunCommand,
    "RunCommand",
    ClientToken,
    RunCommandResponse,
    |self| {
        use base64::Engine;
        Params::new()
            .set("RegionId", &self.region_id)
            .set("Type", "RunShellScript")
            .set(
                "CommandContent",
                base64::engine::general_purpose::STANDARD.encode(&self.script),
            )
            .set("ContentEncoding", "Base64")
            .set("Name", &self.name)
            .set("Timeout", self.timeout_secs)
            .opt("WorkingDir", self.working_dir.as_ref())
            .list("InstanceId", &self.instance_ids)
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunCommandResponse {
    pub invoke_id: String,
    #[serde(default)]
    pub command_id: String,
}

/// `DescribeInvocations` by name or tag: finds an invocation whose RunCommand answer was lost.
#[derive(Debug, Clone, Default)]
pub struct DescribeInvocations {
    pub region_id: String,
    pub command_name: Option<String>,
    pub instance_id: Option<String>,
    pub tags: Vec<Tag>,
}
action!(
    DescribeInvocations,
    "DescribeInvocations",
    ReadOnly,
    DescribeInvocationsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("CommandName", self.command_name.as_ref())
            .opt("InstanceId", self.instance_id.as_ref())
            .tags(&self.tags)
            .set("PageSize", 50)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInvocationsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub invocations: Vec<InvocationSummary>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationSummary {
    pub invoke_id: String,
    #[serde(default)]
    pub creation_time: String,
}

/// `DescribeInvocationResults` of one invocation on one instance (output base64-encoded).
#[derive(Debug, Clone, Default)]
pub struct DescribeInvocationResults {
    pub region_id: String,
    pub invoke_id: String,
    pub instance_id: String,
}
action!(
    DescribeInvocationResults,
    "DescribeInvocationResults",
    ReadOnly,
    DescribeInvocationResultsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("InvokeId", &self.invoke_id)
            .set("InstanceId", &self.instance_id)
            .set("ContentEncoding", "Base64")
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInvocationResultsResponse {
    pub invocation: InvocationResults,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResults {
    #[serde(default, deserialize_with = "inner_list")]
    pub invocation_results: Vec<InvocationResult>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InvocationResult {
    pub invoke_id: String,
    pub instance_id: String,
    /// Pending, Running, Success, Failed, Timeout, Aborted, Cancelled, Terminated, …
    pub invocation_status: String,
    pub exit_code: Option<i64>,
    /// Base64 of the output so far (at most 24 KB).
    pub output: String,
    /// Output bytes the cloud dropped beyond its cap.
    pub dropped: u64,
    pub error_code: String,
    pub error_info: String,
}

/// `SendFile`: one file (≤ 32 KB after base64) to a directory on instances.
#[derive(Debug, Clone, Default)]
pub struct SendFile {
    pub region_id: String,
    pub instance_ids: Vec<String>,
    pub name: String,
    pub target_dir: String,
    pub content: Vec<u8>,
    /// Octal, e.g. `0644`.
    pub file_mode: String,
    pub overwrite: bool,
    pub timeout_secs: u64,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    SendFile,
    "SendFile",
    ClientToken,
    SendFileResponse,
    |self| {
        use base64::Engine;
        Params::new()
            .set("RegionId", &self.region_id)
            .list("InstanceId", &self.instance_ids)
            .set("Name", &self.name)
            .set("TargetDir", &self.target_dir)
            .set(
                "Content",
                base64::engine::general_purpose::STANDARD.encode(&self.content),
            )
            .set("ContentType", "Base64")
            .set("FileMode", &self.file_mode)
            .set("Overwrite", self.overwrite)
            .set("Timeout", self.timeout_secs)
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendFileResponse {
    pub invoke_id: String,
}

/// `DescribeSendFileResults` of one send.
#[derive(Debug, Clone, Default)]
pub struct DescribeSendFileResults {
    pub region_id: String,
    pub invoke_id: String,
}
action!(
    DescribeSendFileResults,
    "DescribeSendFileResults",
    ReadOnly,
    DescribeSendFileResultsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("InvokeId", &self.invoke_id)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSendFileResultsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub invocations: Vec<SendFileInvocation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendFileInvocation {
    pub invoke_id: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub invoke_instances: Vec<SendFileInstance>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SendFileInstance {
    pub instance_id: String,
    pub invocation_status: String,
    pub error_code: String,
    pub error_info: String,
}
