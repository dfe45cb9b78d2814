//! Provisioning over SSH: connecting with the pinned host key, and running the spec's
//! provisioners one by one, each checkpointed on its own.
//!
//! Guarantees: a provisioner recorded as finished never runs again for this build; the host key
//! seen at first contact is pinned in the state and any other key is refused before a command is
//! sent, also after a resume.
//!
//! Caveats: a provisioner interrupted mid-way (crash, lost connection) runs again from its start.

use super::keys::KeyStore;
use super::reconcile::{BuildError, Reconciler};
use super::ssh::{self, DisconnectOutcome, HostKey, SshSession};
use crate::spec::{FileProvisioner, Provisioner, ShellProvisioner, ShellSource, SshAddress};
use std::net::SocketAddr;

impl Reconciler {
    /// Connects over SSH to the build's address, pinning the host key on first contact.
    pub(super) async fn connect_ssh(&mut self) -> Result<SshSession, BuildError> {
        let address = self.resource("ssh_address").unwrap_or_default().to_string();
        let addr: SocketAddr = format!("{address}:{}", self.spec.ssh.port)
            .parse()
            .map_err(|_| BuildError::Other(format!("bad SSH address {address:?}")))?;
        let key = KeyStore::new(self.keys_dir.clone()).load(&self.build_id())?;
        let pinned = self.rec.host_key.clone();
        let timeout = self.spec.ssh.timeout;
        let (session, host_key) = ssh::connect_with_retry(
            addr,
            &self.spec.ssh.username,
            &key,
            pinned.as_ref(),
            timeout,
        )
        .await
        .map_err(|e| BuildError::Ssh(self.explain_ssh(e)))?;
        if pinned.is_none() {
            self.pin_host_key(host_key)?;
        }
        Ok(session)
    }

    /// Adds what bakerd knows about the network to an SSH error.
    fn explain_ssh(&self, err: ssh::SshError) -> String {
        match err {
            ssh::SshError::ConnectTimeout { .. } => format!(
                "{err}; check that security group {} allows tcp/{} from this machine and that \
                 `ssh.address: {}` is reachable from here",
                self.resource("ssh_security_group").unwrap_or("?"),
                self.spec.ssh.port,
                match self.spec.ssh.address {
                    SshAddress::Public => "public",
                    SshAddress::Eip => "eip",
                    SshAddress::Private => "private",
                },
            ),
            other => other.to_string(),
        }
    }

    fn pin_host_key(&mut self, host_key: HostKey) -> Result<(), BuildError> {
        let fingerprint = host_key.fingerprint.clone();
        self.rec.host_key = Some(host_key);
        self.save()?;
        self.event("ssh", format!("pinned SSH host key {fingerprint}"))?;
        Ok(())
    }

    /// InstanceRunning → Provisioned: runs every provisioner not yet recorded as finished.
    pub(super) async fn provision(&mut self) -> Result<(), BuildError> {
        if self.spec.communicator == crate::spec::Communicator::CloudAssistant {
            return self.provision_with_assistant().await;
        }
        let provisioners = self.spec.provisioners.clone();
        let mut session = None;
        for (index, provisioner) in provisioners.iter().enumerate() {
            if self.provisioner_finished(index) {
                continue;
            }
            let mut s = match session.take() {
                Some(s) => s,
                None => self.connect_ssh().await?,
            };
            self.provisioner_started(index)?;
            crate::reconciler::crash::point(&format!("provisioner-{index}:started"));
            let keep = self.run_provisioner(&mut s, index, provisioner).await?;
            self.provisioner_done(index)?;
            crate::reconciler::crash::point(&format!("provisioner-{index}:finished"));
            session = keep.then_some(s);
        }
        if let Some(s) = session {
            s.close().await;
        }
        Ok(())
    }

    /// Runs one provisioner; returns whether the session is still usable.
    async fn run_provisioner(
        &mut self,
        session: &mut SshSession,
        index: usize,
        provisioner: &Provisioner,
    ) -> Result<bool, BuildError> {
        match provisioner {
            Provisioner::Shell(shell) => self.run_shell(session, index, shell).await,
            Provisioner::File(file) => {
                self.upload(session, index, file).await?;
                Ok(true)
            }
        }
    }

    /// Uploads and runs each script of a `shell` provisioner (inline commands form one script).
    async fn run_shell(
        &mut self,
        session: &mut SshSession,
        index: usize,
        shell: &ShellProvisioner,
    ) -> Result<bool, BuildError> {
        let scripts: Vec<Script> = match shell.source() {
            ShellSource::Inline(lines) => vec![Script::Inline(format!(
                "#!/bin/sh -e\n{}\n",
                lines.join("\n")
            ))],
            ShellSource::Scripts(paths) => paths
                .iter()
                .map(|p| Script::File(self.spec.resolve_path(p)))
                .collect(),
        };
        let count = scripts.len();
        for (n, script) in scripts.into_iter().enumerate() {
            let remote = format!("/tmp/bakerd-{}-{index}-{n}.sh", self.rec.id);
            self.stage_script(session, index, &script, &remote).await?;
            let quoted = ssh::shell_quote(&remote);
            let command = format!(
                "{}; rc=$?; rm -f {quoted}; exit $rc",
                shell.command_for(&remote)
            );
            if shell.expect_disconnect && n + 1 == count {
                return self
                    .run_expecting_disconnect(session, index, &command)
                    .await;
            }
            let (out, build) = (self.out.clone(), self.rec.id.to_string());
            let result = session
                .exec(&command, &[], |stream, line| {
                    out.provisioner_line(&build, index, &stream.to_string(), line)
                })
                .await
                .map_err(|e| self.provisioner_error(index, "shell", e.to_string()))?;
            if !result.success() {
                let message = format!("{}{}", result.status, result.tail);
                return Err(self.provisioner_error(index, "shell", message));
            }
        }
        Ok(true)
    }

    /// Puts a script on the instance, executable.
    async fn stage_script(
        &mut self,
        session: &mut SshSession,
        index: usize,
        script: &Script,
        remote: &str,
    ) -> Result<(), BuildError> {
        let uploaded = match script {
            Script::Inline(body) => session.upload_bytes(body.as_bytes(), remote, 0o700).await,
            Script::File(path) => session.upload_file(path, remote, 0o700).await,
        };
        uploaded.map_err(|e| self.provisioner_error(index, "shell", e.to_string()))?;
        Ok(())
    }

    /// Runs a command that is expected to end the connection (a reboot), then reconnects.
    async fn run_expecting_disconnect(
        &mut self,
        session: &mut SshSession,
        index: usize,
        command: &str,
    ) -> Result<bool, BuildError> {
        let (out, build) = (self.out.clone(), self.rec.id.to_string());
        let outcome = session
            .exec_expect_disconnect(command, &[], |stream, line| {
                out.provisioner_line(&build, index, &stream.to_string(), line)
            })
            .await
            .map_err(|e| self.provisioner_error(index, "shell", e.to_string()))?;
        if let DisconnectOutcome::Exited(result) = outcome {
            if !result.success() {
                let message = format!("{}{}", result.status, result.tail);
                return Err(self.provisioner_error(index, "shell", message));
            }
        }
        self.out.note(&format!(
            "[{}] provisioner {index} disconnected as expected; reconnecting",
            self.rec.id
        ));
        Ok(false)
    }

    /// Runs a `file` provisioner: a file or a whole directory.
    async fn upload(
        &mut self,
        session: &mut SshSession,
        index: usize,
        file: &FileProvisioner,
    ) -> Result<(), BuildError> {
        let source = self.spec.resolve_path(&file.source);
        let result = if source.is_dir() {
            session
                .upload_dir(&source, &file.destination)
                .await
                .map(|s| s.bytes)
        } else {
            let mode = file_mode(&source);
            let destination = match (file.destination.ends_with('/'), source.file_name()) {
                (true, Some(name)) => format!("{}{}", file.destination, name.to_string_lossy()),
                _ => file.destination.clone(),
            };
            session.upload_file(&source, &destination, mode).await
        };
        let bytes = result.map_err(|e| self.provisioner_error(index, "file", e.to_string()))?;
        self.out.provisioner_line(
            self.rec.id.as_str(),
            index,
            "info",
            &format!(
                "uploaded {} ({bytes} bytes) to {}",
                file.source, file.destination
            ),
        );
        Ok(())
    }

    fn provisioner_error(&self, index: usize, kind: &'static str, message: String) -> BuildError {
        BuildError::Provisioner {
            index,
            kind,
            message,
        }
    }
}

/// A script to stage on the instance.
enum Script {
    /// Inline commands, as a script body with a `/bin/sh -e` shebang (as Packer does).
    Inline(String),
    /// A local script file.
    File(std::path::PathBuf),
}

/// Permission bits of a local file, so executables stay executable on the instance.
fn file_mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}
