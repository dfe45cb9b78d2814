//! A communicator-neutral handle on an instance: run a script with live output, close. The
//! `verify` checks use it, so they run the same over SSH and over Cloud Assistant.

use super::keys::KeyStore;
use super::reconcile::{BuildError, Reconciler};
use super::ssh::{self, HostKey, RemoteExit, SshError, SshSession, Tail};
use std::net::SocketAddr;

/// Errors of a remote operation, by communicator.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Assistant(#[from] super::assistant::AssistantError),
}

impl From<RemoteError> for BuildError {
    fn from(e: RemoteError) -> Self {
        BuildError::Remote(Box::new(e))
    }
}

/// How a script ended.
#[derive(Debug, Clone)]
pub struct ScriptDone {
    /// Exit code or signal.
    pub status: RemoteExit,
    /// Last output lines, for messages.
    pub tail: Tail,
}

impl ScriptDone {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.status == RemoteExit::Code(0)
    }

    /// `exit code 3; last output: …`.
    pub fn describe(&self) -> String {
        format!("{}{}", self.status, self.tail)
    }
}

/// An open connection to an instance.
pub enum Remote {
    Ssh(SshSession),
    Assistant(Box<super::assistant::AssistantSession>),
}

impl Remote {
    /// Puts `body` on the instance at `remote_path` (mode 0700), runs it with `env_prefix`
    /// (`NAME='v' …`, may be empty) and removes it; every output line goes to `on_line(stream,
    /// line)` as it arrives.
    pub async fn run_script(
        &mut self,
        body: &[u8],
        remote_path: &str,
        env_prefix: &str,
        on_line: impl Fn(&str, &str) + Send + Sync,
    ) -> Result<ScriptDone, RemoteError> {
        match self {
            Remote::Ssh(session) => {
                session.upload_bytes(body, remote_path, 0o700).await?;
                let quoted = ssh::shell_quote(remote_path);
                let command = format!("{env_prefix} {quoted}; rc=$?; rm -f {quoted}; exit $rc")
                    .trim_start()
                    .to_string();
                let done = session
                    .exec(&command, &[], |stream, line| {
                        on_line(&stream.to_string(), line)
                    })
                    .await?;
                Ok(ScriptDone {
                    status: done.status,
                    tail: done.tail,
                })
            }
            // RunCommand carries the script itself (≤ 24 KB after base64); nothing to stage.
            Remote::Assistant(session) => {
                let _ = remote_path;
                Ok(session.run(body, env_prefix, &on_line).await?)
            }
        }
    }

    /// Ends the connection.
    pub async fn close(self) {
        match self {
            Remote::Ssh(session) => session.close().await,
            Remote::Assistant(_) => {}
        }
    }
}

impl Reconciler {
    /// Connects to the test instance with the spec's communicator; over SSH, its host key is
    /// pinned in the record on first contact (per test instance).
    pub(super) async fn connect_test_instance(
        &mut self,
        instance: &str,
        running: super::cloud::InstanceState,
    ) -> Result<Remote, BuildError> {
        if !self.uses_ssh() {
            self.cloud
                .wait_assistant(instance, self.spec.ssh.timeout)
                .await?;
            return Ok(Remote::Assistant(Box::new(
                super::assistant::AssistantSession {
                    cloud: self.cloud.clone(),
                    instance: instance.to_string(),
                    token_prefix: self.client_token(&format!("verify-{instance}")),
                    tags: self.tags(),
                    runs: 0,
                },
            )));
        }
        let address = self.ssh_address(instance, running).await?;
        let addr: SocketAddr = format!("{address}:{}", self.spec.ssh.port)
            .parse()
            .map_err(|_| BuildError::Other(format!("bad SSH address {address:?}")))?;
        let key = KeyStore::new(self.keys_dir.clone()).load(&self.build_id())?;
        let pin_key = format!("verify-host-key:{instance}");
        let pinned: Option<HostKey> = self
            .rec
            .results
            .get(&pin_key)
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let (session, host_key) = ssh::connect_with_retry(
            addr,
            &self.spec.ssh.username,
            &key,
            pinned.as_ref(),
            self.spec.ssh.timeout,
        )
        .await
        .map_err(|e| BuildError::from(RemoteError::from(e)))?;
        if pinned.is_none() {
            let value = serde_json::to_value(&host_key).unwrap_or_default();
            self.rec.results.insert(pin_key, value);
            self.save()?;
        }
        Ok(Remote::Ssh(session))
    }
}
