//! The Cloud Assistant communicator: scripts run as RunCommand invocations whose output is polled
//! and streamed line by line; files go up with SendFile, in chunks of at most 24 KiB (32 KiB
//! after base64, the API's limit) that a command reassembles and checks against their SHA-256.
//!
//! No key pair, no inbound rule, no address: the agent on the instance pulls the work.
//!
//! Guarantees (with the callers in `provision_assistant.rs`): each RunCommand and SendFile has a
//! deterministic ClientToken and carries it as the `bakerd:step` tag, so a retried call returns
//! (or finds) the first invocation instead of running a script twice.

use super::cloud::assistant::CommandParams;
use super::cloud::{Cloud, CloudError};
use super::remote::ScriptDone;
use super::ssh::{RemoteExit, Tail};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Largest raw chunk one SendFile carries: 24 KiB is exactly 32 KiB once base64-encoded.
pub const CHUNK_BYTES: usize = 24 * 1024;
/// How long a provisioner's command may run (RunCommand `Timeout`; the API allows a day).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a Cloud Assistant operation failed (a script that ran and exited non-zero is not an
/// error here: see [`ScriptDone`]).
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(
        "Cloud Assistant did not run invocation {invoke} on instance {instance}: {status} \
         {code} ({info}); check `DescribeCloudAssistantStatus` for the instance"
    )]
    NotRun {
        invoke: String,
        instance: String,
        status: String,
        code: String,
        info: String,
    },
    #[error(
        "Cloud Assistant could not write {path} on instance {instance} (send {invoke}): {status} \
         {code} ({info})"
    )]
    SendFailed {
        invoke: String,
        instance: String,
        path: String,
        status: String,
        code: String,
        info: String,
    },
    #[error("reassembling {path} on instance {instance} from {parts} parts failed: {detail}")]
    Reassembly {
        path: String,
        instance: String,
        parts: usize,
        detail: String,
    },
}

/// Polls an invocation until it ends, passing each new output line to `on_line` (stream `out`:
/// Cloud Assistant merges stdout and stderr).
pub async fn wait_invocation(
    cloud: &Cloud,
    invoke: &str,
    instance: &str,
    on_line: &(dyn Fn(&str, &str) + Send + Sync),
) -> Result<ScriptDone, AssistantError> {
    let mut seen = 0usize;
    let mut partial = String::new();
    let mut lines: Vec<String> = Vec::new();
    loop {
        let r = cloud.invocation_result(invoke, instance).await?;
        let output = base64::engine::general_purpose::STANDARD
            .decode(r.output.trim())
            .unwrap_or_default();
        if output.len() > seen {
            partial.push_str(&String::from_utf8_lossy(&output[seen..]));
            seen = output.len();
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                on_line("out", &line);
                lines.push(line);
            }
        }
        let status = match r.invocation_status.as_str() {
            "Pending" | "Running" | "Stopping" | "Scheduled" => None,
            "Success" | "Failed" => Some(RemoteExit::Code(r.exit_code.unwrap_or(-1) as u32)),
            "Timeout" => Some(RemoteExit::Signal("KILL (Cloud Assistant timeout)".into())),
            "Terminated" | "Cancelled" => Some(RemoteExit::Signal("TERM (stopped)".into())),
            _ => {
                return Err(AssistantError::NotRun {
                    invoke: invoke.into(),
                    instance: instance.into(),
                    status: r.invocation_status,
                    code: r.error_code,
                    info: r.error_info,
                })
            }
        };
        if let Some(status) = status {
            if !partial.is_empty() {
                on_line("out", &partial);
                lines.push(std::mem::take(&mut partial));
            }
            if r.dropped > 0 {
                let note = format!(
                    "({} more bytes of output dropped by Cloud Assistant)",
                    r.dropped
                );
                on_line("info", &note);
                lines.push(note);
            }
            return Ok(ScriptDone {
                status,
                tail: Tail::from_lines(&lines),
            });
        }
        tokio::time::sleep(cloud.poll_interval()).await;
    }
}

/// Polls a file send until it ends.
pub async fn wait_send(
    cloud: &Cloud,
    invoke: &str,
    instance: &str,
    path: &str,
) -> Result<(), AssistantError> {
    loop {
        let r = cloud.send_file_result(invoke, instance).await?;
        match r.invocation_status.as_str() {
            "Pending" | "Running" => tokio::time::sleep(cloud.poll_interval()).await,
            "Success" => return Ok(()),
            _ => {
                return Err(AssistantError::SendFailed {
                    invoke: invoke.into(),
                    instance: instance.into(),
                    path: path.into(),
                    status: r.invocation_status,
                    code: r.error_code,
                    info: r.error_info,
                })
            }
        }
    }
}

/// `dir` and file name of an absolute remote path (`/a/b` → `/a`, `b`).
pub fn split_remote(path: &str) -> (String, String) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((dir, name)) => (dir.into(), name.into()),
        None => ("/root".into(), path.into()),
    }
}

/// The command that joins `parts` chunk files from `staging` into `dest`, checks the SHA-256,
/// sets the mode and moves the result into place (then removes the chunks).
pub fn assemble_command(
    staging: &str,
    parts: usize,
    dest: &str,
    sha256: &str,
    mode: u32,
) -> String {
    let q = super::ssh::shell_quote;
    let list: Vec<String> = (0..parts)
        .map(|n| q(&format!("{staging}/part-{n:05}")))
        .collect();
    let tmp = format!("{dest}.bakerd-upload");
    format!(
        "set -e\nmkdir -p \"$(dirname {dest_q})\"\ncat {list} > {tmp_q}\n\
         got=$(sha256sum {tmp_q} | cut -d' ' -f1)\n\
         if [ \"$got\" != {sha} ]; then rm -f {tmp_q}; echo \"checksum mismatch: got $got, want {sha}\" >&2; exit 3; fi\n\
         chmod {mode:o} {tmp_q}\nmv -f {tmp_q} {dest_q}\nrm -rf {staging_q}\necho assembled {parts} parts\n",
        dest_q = q(dest),
        list = list.join(" "),
        tmp_q = q(&tmp),
        sha = q(sha256),
        staging_q = q(staging),
    )
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A session for scripts that need no write-ahead record (the `verify` checks): each run gets a
/// deterministic token `<prefix>-<n>`, so a retried call still returns its first invocation.
pub struct AssistantSession {
    pub cloud: Cloud,
    pub instance: String,
    pub token_prefix: String,
    pub tags: Vec<(String, String)>,
    pub runs: usize,
}

impl AssistantSession {
    /// Runs `script` (with `env_prefix` before it) and waits for it, streaming its output.
    pub async fn run(
        &mut self,
        script: &[u8],
        env_prefix: &str,
        on_line: &(dyn Fn(&str, &str) + Send + Sync),
    ) -> Result<ScriptDone, AssistantError> {
        self.runs += 1;
        let token: String = format!("{}-{}", self.token_prefix, self.runs)
            .chars()
            .take(64)
            .collect();
        let body = String::from_utf8_lossy(script);
        let script = if env_prefix.is_empty() {
            body.into_owned()
        } else {
            format!("export {env_prefix}\n{body}")
        };
        let params = CommandParams {
            instance: self.instance.clone(),
            script,
            timeout: COMMAND_TIMEOUT,
            tags: self.tags.clone(),
        };
        let invoke = self.cloud.run_command(&token, &params).await?;
        wait_invocation(&self.cloud, &invoke, &self.instance, on_line).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_split_into_directory_and_name() {
        assert_eq!(split_remote("/etc/motd"), ("/etc".into(), "motd".into()));
        assert_eq!(split_remote("/motd"), ("/".into(), "motd".into()));
    }

    #[test]
    fn the_assembly_command_checks_the_checksum_before_moving_into_place() {
        let cmd = assemble_command("/tmp/s", 2, "/opt/a b", "abc", 0o644);
        let check = cmd.find("sha256sum").unwrap();
        let mv = cmd.find("mv -f").unwrap();
        assert!(check < mv, "{cmd}");
        assert!(
            cmd.contains("'/tmp/s/part-00000' '/tmp/s/part-00001'"),
            "{cmd}"
        );
        assert!(cmd.contains("chmod 644"), "{cmd}");
        assert!(cmd.contains("'/opt/a b'"), "{cmd}");
    }

    /// Runs the assembly script with `/bin/sh` over chunks of `content` written to a staging
    /// directory; `corrupt` flips a byte of the second chunk first. Returns (exit code, stderr).
    fn assemble_locally(dir: &std::path::Path, content: &[u8], corrupt: bool) -> (i32, String) {
        let staging = dir.join("staging");
        std::fs::create_dir_all(&staging).unwrap();
        let parts: Vec<&[u8]> = content.chunks(CHUNK_BYTES).collect();
        for (n, part) in parts.iter().enumerate() {
            let mut part = part.to_vec();
            if corrupt && n == 1 {
                part[0] ^= 1;
            }
            std::fs::write(staging.join(format!("part-{n:05}")), part).unwrap();
        }
        let dest = dir.join("out dir/file.bin");
        let cmd = assemble_command(
            staging.to_str().unwrap(),
            parts.len(),
            dest.to_str().unwrap(),
            &sha256_hex(content),
            0o640,
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), stderr)
    }

    #[test]
    fn chunks_are_joined_in_order_and_a_corrupted_chunk_is_caught_by_the_checksum() {
        use std::os::unix::fs::PermissionsExt;
        let content: Vec<u8> = (0..CHUNK_BYTES * 2 + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        let good = tempfile::tempdir().unwrap();
        let (code, stderr) = assemble_locally(good.path(), &content, false);
        assert_eq!(code, 0, "{stderr}");
        let dest = good.path().join("out dir/file.bin");
        assert_eq!(std::fs::read(&dest).unwrap(), content);
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(!good.path().join("staging").exists(), "staging left behind");

        let bad = tempfile::tempdir().unwrap();
        let (code, stderr) = assemble_locally(bad.path(), &content, true);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("checksum mismatch"), "{stderr}");
        let out_dir = bad.path().join("out dir");
        assert_eq!(
            std::fs::read_dir(&out_dir).unwrap().count(),
            0,
            "nothing moved into place"
        );
    }

    #[test]
    fn a_full_chunk_is_exactly_the_send_file_limit_after_base64() {
        let chunk = vec![0u8; CHUNK_BYTES];
        let encoded = base64::engine::general_purpose::STANDARD.encode(chunk);
        assert_eq!(encoded.len(), 32 * 1024);
    }
}
