//! The simulator's own files about each instance under `<data>/sshd/<instance-id>/` (0700): the
//! SSH host key it generated for the instance (installed into the instance when its SSH opens,
//! kept here so the key a client pinned stays the same across stop/start and so the simulator can
//! report it) and the instance's console log.

use super::rootfs::ensure_dir;
use super::MachineError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files of one instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceFiles {
    /// The instance's directory.
    pub dir: PathBuf,
    /// Private ed25519 host key, generated once; `.pub` next to it.
    pub host_key: PathBuf,
    /// stderr of the launcher, the init and every sshd of the instance.
    pub log: PathBuf,
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MachineError {
    let path = path.to_path_buf();
    move |source| MachineError::Io { what, path, source }
}

impl InstanceFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            host_key: dir.join("ssh_host_ed25519_key"),
            log: dir.join("instance.log"),
            dir,
        }
    }

    /// The public half of the host key, as an OpenSSH public key line; `None` before the
    /// instance's SSH first opened.
    pub(crate) fn host_public_key(&self) -> Result<Option<String>, MachineError> {
        let public = self.host_key.with_extension("pub");
        match fs::read_to_string(&public) {
            Ok(line) => Ok(Some(line.trim().to_string())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error("read host public key", &public)(source)),
        }
    }

    /// The host key pair as (private key file contents, public key line).
    pub(crate) fn host_key_pair(&self) -> Result<(String, String), MachineError> {
        let private = fs::read_to_string(&self.host_key)
            .map_err(io_error("read host key", &self.host_key))?;
        let public = self.host_public_key()?.unwrap_or_default();
        Ok((private, format!("{public}\n")))
    }
}

/// Generates the instance's host key unless it exists.
///
/// Guarantees: the key appears complete or not at all (generated under a temporary name, the
/// private key renamed last); it is never regenerated, so a host key pinned by a client stays
/// valid across stop/start of the same instance.
pub(crate) fn ensure_host_key(files: &InstanceFiles, instance: &str) -> Result<(), MachineError> {
    ensure_dir(&files.dir, 0o700)?;
    if files.host_key.exists() {
        return Ok(());
    }
    let temp = files
        .dir
        .join(format!(".keygen-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("bakerd-sim-{instance}"))
        .arg("-f")
        .arg(&temp)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| MachineError::HostKey {
            instance: instance.to_string(),
            detail: format!("cannot run ssh-keygen (install openssh-client): {source}"),
        })?;
    if !output.status.success() {
        return Err(MachineError::HostKey {
            instance: instance.to_string(),
            detail: format!(
                "ssh-keygen {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let rename = |from: PathBuf, to: &Path| {
        fs::rename(&from, to).map_err(io_error("install host key", &from))
    };
    rename(
        temp.with_extension("pub"),
        &files.host_key.with_extension("pub"),
    )?;
    rename(temp, &files.host_key)
}
