//! SSH to build instances with thrussh: connect with retry and host-key pinning, run commands with
//! live output, upload files and directories.
//!
//! Works against OpenSSH 9.x sshd (real cloud instances and the simulator's chrooted sshd's). Remote
//! commands use only POSIX `sh` and coreutils/busybox tools (`mkdir`, `cat`, `chmod`, `mv`, `wc`).
//!
//! Typical use by the phase machine:
//! ```text
//! let (mut ssh, host_key) = connect_with_retry(addr, "root", &key, pinned.as_ref(), timeout).await?;
//! // first contact: persist host_key in the build record before running anything
//! let out = ssh.exec("apt-get install -y nginx", &env, |stream, line| println!("{stream} | {line}")).await?;
//! out.check(&addr, "provisioner 1")?;           // non-zero exit → SshError::CommandFailed with the tail
//! ssh.upload_file(Path::new("app.tar"), "/opt/app.tar", 0o644).await?;
//! ssh.exec_expect_disconnect("reboot", &[], |_, _| {}).await?;   // then connect_with_retry again
//! ```

mod connect;
mod exec;
mod host_key;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use connect::{connect_with_retry, SshSession};
pub use exec::{env_exports, shell_quote, DisconnectOutcome, ExecOutput, RemoteExit, Stream, Tail};
pub use host_key::HostKey;
pub use upload::UploadSummary;

/// Errors of SSH operations, one variant per failed operation. None contains key material or the
/// values of environment variables.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "SSH to {addr} did not succeed within {waited_secs}s ({attempts} attempts; last error: \
         {last_error}). Likely causes: the security group does not allow inbound tcp/{port} from \
         this machine; the wrong IP is used (private vs public: check the spec's ssh IP choice); \
         the instance has not finished booting (raise the ssh timeout); or the key pair was not \
         installed for user '{user}'"
    )]
    ConnectTimeout {
        addr: SocketAddr,
        port: u16,
        user: String,
        waited_secs: u64,
        attempts: u32,
        last_error: String,
    },
    #[error(
        "host key of {addr} changed: expected {expected}, got {got}. Refused before \
         authenticating or running anything. Either the IP now belongs to another machine (check \
         the instance id and IP in `bakerd show`) or someone is intercepting the connection; if \
         the instance was legitimately re-created, cancel this build and apply again"
    )]
    HostKeyMismatch {
        addr: SocketAddr,
        expected: String,
        got: String,
    },
    #[error("SSH {addr}: cannot open a session channel: {source}")]
    OpenChannel {
        addr: SocketAddr,
        #[source]
        source: thrussh::Error,
    },
    #[error("SSH {addr}: cannot send command `{command}`: {source}")]
    SendCommand {
        addr: SocketAddr,
        command: String,
        #[source]
        source: thrussh::Error,
    },
    #[error(
        "SSH {addr}: connection lost while running `{command}` (no exit status){tail}; if the \
         command reboots the machine, mark the provisioner expect_disconnect"
    )]
    Disconnected {
        addr: SocketAddr,
        command: String,
        tail: Tail,
    },
    #[error("SSH {addr}: `{command}` failed with {status}{tail}")]
    CommandFailed {
        addr: SocketAddr,
        command: String,
        status: RemoteExit,
        tail: Tail,
    },
    #[error(
        "environment variable name {name:?} is not a valid shell name ([A-Za-z_][A-Za-z0-9_]*)"
    )]
    InvalidEnvName { name: String },
    #[error("environment variable {name} contains a NUL byte, which a shell command cannot carry")]
    InvalidEnvValue { name: String },
    #[error("cannot read local {path} for upload: {source}")]
    ReadLocal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("local {path} is not a regular file or directory, cannot upload it")]
    UnsupportedLocalFile { path: PathBuf },
    #[error("SSH {addr}: cannot send data for {remote}: {source}")]
    SendData {
        addr: SocketAddr,
        remote: String,
        #[source]
        source: thrussh::Error,
    },
    #[error("SSH {addr}: upload of {local} to {remote} failed: {detail}{tail}")]
    UploadFailed {
        addr: SocketAddr,
        local: PathBuf,
        remote: String,
        detail: String,
        tail: Tail,
    },
}

/// Shortens a command for error messages: first line, at most 120 characters.
fn short_command(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    let mut short: String = first.chars().take(120).collect();
    if short.len() < command.len() {
        short.push('…');
    }
    short
}
