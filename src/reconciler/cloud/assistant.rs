//! Cloud Assistant: agent status, one-shot commands, file sends, and finding an invocation whose
//! answer was lost (by its tag, which carries the deterministic step token).

use super::*;
use crate::client::api::assistant::{
    DescribeCloudAssistantStatus, DescribeInvocationResults, DescribeInvocations,
    DescribeSendFileResults, InvocationResult, RunCommand, SendFile, SendFileInstance,
};

/// Tag key carrying the ClientToken of the step that made an invocation or a file send.
pub const STEP_TAG: &str = "bakerd:step";

/// A script to run through RunCommand.
#[derive(Debug, Clone)]
pub struct CommandParams {
    pub instance: String,
    pub script: String,
    pub timeout: Duration,
    pub tags: Vec<(String, String)>,
}

/// A file to send through SendFile (content ≤ 32 KB after base64).
#[derive(Debug, Clone)]
pub struct FileParams {
    pub instance: String,
    pub target_dir: String,
    pub name: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub tags: Vec<(String, String)>,
}

impl Cloud {
    /// Whether the instance's agent answers (`CloudAssistantStatus == "true"`).
    pub async fn assistant_online(&self, instance: &str) -> Result<bool> {
        let request = DescribeCloudAssistantStatus {
            region_id: self.region.clone(),
            instance_ids: vec![instance.to_string()],
        };
        let answer = self.client.call(&request).await?;
        Ok(answer
            .instance_cloud_assistant_status_set
            .iter()
            .any(|s| s.instance_id == instance && s.cloud_assistant_status == "true"))
    }

    /// Waits until the agent answers, as the docs ask before the first command.
    pub async fn wait_assistant(&self, instance: &str, deadline: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            if self.assistant_online(instance).await? {
                return Ok(());
            }
            if started.elapsed() > deadline {
                return Err(CloudError::Unexpected(format!(
                    "the Cloud Assistant agent of instance {instance} did not come online within \
                     {}s: use an image with the agent (public images since December 2017 have \
                     it), or `aliyun ecs InstallCloudAssistant` and restart the instance",
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(self.waits.floor.max(Duration::from_millis(200))).await;
        }
    }

    /// RunCommand with `token`; if an invocation tagged with this token exists (the answer to
    /// an earlier try was lost), that one is returned instead of running the script again.
    pub async fn run_command(&self, token: &str, p: &CommandParams) -> Result<String> {
        if let Some(found) = self.invocation_tagged(token, &p.instance).await? {
            return Ok(found);
        }
        let mut t = p.tags.clone();
        t.push((STEP_TAG.into(), token.into()));
        let request = RunCommand {
            region_id: self.region.clone(),
            instance_ids: vec![p.instance.clone()],
            script: p.script.clone(),
            name: token.to_string(),
            timeout_secs: p.timeout.as_secs().max(10),
            working_dir: Some("/root".into()),
            tags: tags(&t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.invoke_id)
    }

    async fn invocation_tagged(&self, token: &str, instance: &str) -> Result<Option<String>> {
        let request = DescribeInvocations {
            region_id: self.region.clone(),
            command_name: None,
            instance_id: Some(instance.to_string()),
            tags: vec![Tag::new(STEP_TAG, token)],
        };
        let found = self.client.call(&request).await?.invocations;
        Ok(found.into_iter().next().map(|i| i.invoke_id))
    }

    /// The invocation's state on the instance (output base64, at most 24 KB).
    pub async fn invocation_result(
        &self,
        invoke: &str,
        instance: &str,
    ) -> Result<InvocationResult> {
        let request = DescribeInvocationResults {
            region_id: self.region.clone(),
            invoke_id: invoke.to_string(),
            instance_id: instance.to_string(),
        };
        let results = self
            .client
            .call(&request)
            .await?
            .invocation
            .invocation_results;
        results
            .into_iter()
            .find(|r| r.instance_id == instance)
            .ok_or_else(|| {
                CloudError::Unexpected(format!(
                    "invocation {invoke} has no result for instance {instance}"
                ))
            })
    }

    /// SendFile with `token` (overwriting); an earlier send tagged with the token is reused.
    pub async fn send_file(&self, token: &str, p: &FileParams) -> Result<String> {
        let mut t = p.tags.clone();
        t.push((STEP_TAG.into(), token.into()));
        let request = SendFile {
            region_id: self.region.clone(),
            instance_ids: vec![p.instance.clone()],
            name: p.name.clone(),
            target_dir: p.target_dir.clone(),
            content: p.content.clone(),
            file_mode: format!("{:04o}", p.mode & 0o7777),
            overwrite: true,
            timeout_secs: 60,
            tags: tags(&t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.invoke_id)
    }

    /// The send's state on the instance.
    pub async fn send_file_result(&self, invoke: &str, instance: &str) -> Result<SendFileInstance> {
        let request = DescribeSendFileResults {
            region_id: self.region.clone(),
            invoke_id: invoke.to_string(),
        };
        let sends = self.client.call(&request).await?.invocations;
        sends
            .into_iter()
            .flat_map(|s| s.invoke_instances)
            .find(|i| i.instance_id == instance)
            .ok_or_else(|| {
                CloudError::Unexpected(format!(
                    "file send {invoke} has no result for instance {instance}"
                ))
            })
    }
}
