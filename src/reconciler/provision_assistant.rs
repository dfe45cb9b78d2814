//! Provisioning through Cloud Assistant (`communicator: cloud_assistant`): every script is
//! staged with SendFile and run with RunCommand, every upload goes up in checked chunks.
//!
//! Guarantees: each RunCommand / SendFile is a write-ahead step (`once`), keyed by provisioner,
//! script and chunk; on resume a finished invocation is not run again, a running one is waited
//! for, and one whose answer was lost is found by its `bakerd:step` tag. A provisioner that
//! *failed* runs again from its start under fresh step names (as over SSH).

use super::assistant::{
    assemble_command, sha256_hex, wait_invocation, wait_send, AssistantError, CHUNK_BYTES,
    COMMAND_TIMEOUT,
};
use super::cloud::assistant::{CommandParams, FileParams};
use super::reconcile::{BuildError, Reconciler};
use super::remote::ScriptDone;
use super::ssh::shell_quote;
use crate::spec::{FileProvisioner, Provisioner, ShellProvisioner, ShellSource};
use std::path::Path;

impl Reconciler {
    /// InstanceRunning → Provisioned over Cloud Assistant.
    pub(super) async fn provision_with_assistant(&mut self) -> Result<(), BuildError> {
        let instance = self.instance_id()?;
        for (index, provisioner) in self.spec.provisioners.clone().iter().enumerate() {
            if self.provisioner_finished(index) {
                continue;
            }
            self.provisioner_started(index)?;
            super::crash::point(&format!("provisioner-{index}:started"));
            let ran = match provisioner {
                Provisioner::Shell(shell) => self.assistant_shell(&instance, index, shell).await,
                Provisioner::File(file) => self.assistant_file(&instance, index, file).await,
            };
            if let Err(e) = ran {
                self.retry_provisioner_afresh(index)?;
                return Err(e);
            }
            self.provisioner_done(index)?;
            super::crash::point(&format!("provisioner-{index}:finished"));
        }
        Ok(())
    }

    /// Step-name prefix of provisioner `index`: `p<index>`, then `p<index>r<n>` after failures.
    fn provisioner_prefix(&self, index: usize) -> String {
        match self
            .rec
            .results
            .get(&format!("p{index}:retries"))
            .and_then(|v| v.as_u64())
        {
            None | Some(0) => format!("p{index}"),
            Some(n) => format!("p{index}r{n}"),
        }
    }

    fn retry_provisioner_afresh(&mut self, index: usize) -> Result<(), BuildError> {
        let key = format!("p{index}:retries");
        let n = self
            .rec
            .results
            .get(&key)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        self.rec.results.insert(key, serde_json::Value::from(n + 1));
        self.save()?;
        Ok(())
    }

    async fn assistant_shell(
        &mut self,
        instance: &str,
        index: usize,
        shell: &ShellProvisioner,
    ) -> Result<(), BuildError> {
        let bodies: Vec<Vec<u8>> = match shell.source() {
            ShellSource::Inline(lines) => {
                vec![format!("#!/bin/sh -e\n{}\n", lines.join("\n")).into_bytes()]
            }
            ShellSource::Scripts(paths) => paths
                .iter()
                .map(|p| read_local(&self.spec.resolve_path(p), index))
                .collect::<Result<_, _>>()?,
        };
        let prefix = self.provisioner_prefix(index);
        let count = bodies.len();
        for (n, body) in bodies.iter().enumerate() {
            let remote = format!("/tmp/bakerd-{}-{index}-{n}.sh", self.rec.id);
            self.assistant_put(
                instance,
                index,
                &format!("{prefix}-s{n}"),
                body,
                &remote,
                0o700,
            )
            .await?;
            let quoted = shell_quote(&remote);
            let command = format!(
                "{}; rc=$?; rm -f {quoted}; exit $rc",
                shell.command_for(&remote)
            );
            let done = self
                .assistant_exec(instance, index, &format!("{prefix}-s{n}-run"), command)
                .await?;
            if shell.expect_disconnect && n + 1 == count {
                self.out.note(&format!(
                    "[{}] provisioner {index} ended ({}) as it may when it restarts the machine; \
                     waiting for the agent",
                    self.rec.id, done.status
                ));
                self.cloud
                    .wait_assistant(instance, self.spec.ssh.timeout)
                    .await?;
            } else if !done.success() {
                return Err(self.provisioner_failed(index, "shell", done.describe()));
            }
        }
        Ok(())
    }

    async fn assistant_file(
        &mut self,
        instance: &str,
        index: usize,
        file: &FileProvisioner,
    ) -> Result<(), BuildError> {
        let source = self.spec.resolve_path(&file.source);
        let files = local_files(&source, &file.destination)?;
        let prefix = self.provisioner_prefix(index);
        let mut bytes = 0u64;
        for (n, (local, remote, mode)) in files.iter().enumerate() {
            let content = read_local(local, index)?;
            bytes += content.len() as u64;
            self.assistant_put(
                instance,
                index,
                &format!("{prefix}-f{n}"),
                &content,
                remote,
                *mode,
            )
            .await?;
        }
        let line = format!(
            "uploaded {} ({bytes} bytes) to {}",
            file.source, file.destination
        );
        self.out
            .provisioner_line(self.rec.id.as_str(), index, "info", &line);
        Ok(())
    }

    /// RunCommand as write-ahead step `step`, then waits for it, streaming its output.
    async fn assistant_exec(
        &mut self,
        instance: &str,
        index: usize,
        step: &str,
        script: String,
    ) -> Result<ScriptDone, BuildError> {
        let params = CommandParams {
            instance: instance.to_string(),
            script,
            timeout: COMMAND_TIMEOUT,
            tags: self.tags(),
        };
        let cloud = self.cloud.clone();
        let invoke = self
            .once(step, |token| async move {
                cloud.run_command(&token, &params).await
            })
            .await?;
        super::crash::point(&format!("{step}:waiting"));
        let (out, build) = (self.out.clone(), self.rec.id.to_string());
        let on_line =
            move |stream: &str, line: &str| out.provisioner_line(&build, index, stream, line);
        wait_invocation(&self.cloud, &invoke, instance, &on_line)
            .await
            .map_err(|e| self.provisioner_failed(index, "shell", e.to_string()))
    }

    /// Puts `content` at `remote`: one SendFile when it fits, else chunks into a staging
    /// directory that a command joins, checks (SHA-256) and moves into place.
    async fn assistant_put(
        &mut self,
        instance: &str,
        index: usize,
        step: &str,
        content: &[u8],
        remote: &str,
        mode: u32,
    ) -> Result<(), BuildError> {
        let (dir, name) = super::assistant::split_remote(remote);
        if content.len() <= CHUNK_BYTES {
            let step = format!("{step}-put");
            let sent = self
                .send_one(instance, &step, (&dir, &name), content, mode)
                .await?;
            return self.wait_sent(instance, index, &[sent]).await;
        }
        // Every chunk is sent (and recorded) before any is waited for: the agent writes them
        // side by side.
        let staging = format!("/tmp/bakerd-{}-{step}.parts", self.rec.id);
        let parts = content.len().div_ceil(CHUNK_BYTES);
        let mut sent = Vec::with_capacity(parts);
        for (n, chunk) in content.chunks(CHUNK_BYTES).enumerate() {
            let (step, part) = (format!("{step}-c{n}"), format!("part-{n:05}"));
            let one = self
                .send_one(instance, &step, (&staging, &part), chunk, 0o600)
                .await?;
            sent.push(one);
        }
        self.wait_sent(instance, index, &sent).await?;
        let join = assemble_command(&staging, parts, remote, &sha256_hex(content), mode);
        let done = self
            .assistant_exec(instance, index, &format!("{step}-join"), join)
            .await?;
        if done.success() {
            return Ok(());
        }
        let e = AssistantError::Reassembly {
            path: remote.into(),
            instance: instance.into(),
            parts,
            detail: done.describe(),
        };
        Err(self.provisioner_failed(index, "file", e.to_string()))
    }

    /// SendFile as write-ahead step `step`; returns (send id, remote path) to wait for.
    async fn send_one(
        &mut self,
        instance: &str,
        step: &str,
        (dir, name): (&str, &str),
        content: &[u8],
        mode: u32,
    ) -> Result<(String, String), BuildError> {
        let params = FileParams {
            instance: instance.to_string(),
            target_dir: dir.to_string(),
            name: name.to_string(),
            content: content.to_vec(),
            mode,
            tags: self.tags(),
        };
        let cloud = self.cloud.clone();
        let invoke = self
            .once(step, |token| async move {
                cloud.send_file(&token, &params).await
            })
            .await?;
        Ok((invoke, format!("{dir}/{name}")))
    }

    /// Waits until every send succeeded.
    async fn wait_sent(
        &self,
        instance: &str,
        index: usize,
        sent: &[(String, String)],
    ) -> Result<(), BuildError> {
        for (invoke, path) in sent {
            wait_send(&self.cloud, invoke, instance, path)
                .await
                .map_err(|e| self.provisioner_failed(index, "file", e.to_string()))?;
        }
        Ok(())
    }

    fn provisioner_failed(&self, index: usize, kind: &'static str, message: String) -> BuildError {
        BuildError::Provisioner {
            index,
            kind,
            message,
        }
    }
}

fn read_local(path: &Path, index: usize) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::ReadLocal {
        what: format!("provisioner {index} file"),
        path: path.to_path_buf(),
        source,
    })
}

/// The (local file, remote path, mode) triples a file provisioner uploads: a file goes to
/// `destination` (into it when it ends with `/`); a directory's files keep their relative paths
/// under `destination`. Symlinks are followed like the SSH upload does.
fn local_files(
    source: &Path,
    destination: &str,
) -> Result<Vec<(std::path::PathBuf, String, u32)>, BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let mode_of = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644)
    };
    if !source.is_dir() {
        let remote = match (destination.ends_with('/'), source.file_name()) {
            (true, Some(name)) => format!("{destination}{}", name.to_string_lossy()),
            _ => destination.to_string(),
        };
        return Ok(vec![(source.to_path_buf(), remote, mode_of(source))]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(
        source.to_path_buf(),
        destination.trim_end_matches('/').to_string(),
    )];
    while let Some((dir, remote_dir)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|source| BuildError::ReadLocal {
                what: "upload directory".into(),
                path: dir.clone(),
                source,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let remote = format!(
                "{remote_dir}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            if path.is_dir() {
                stack.push((path, remote));
            } else {
                let mode = mode_of(&path);
                out.push((path, remote, mode));
            }
        }
    }
    Ok(out)
}
