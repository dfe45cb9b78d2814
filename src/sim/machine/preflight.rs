//! Checks that the simulator can run instances at all, made once at start so that a missing
//! privilege or package fails `bakerd sim` at once with the fix, instead of every SSH connection
//! timing out later; and the instances' host id range.

use super::launcher::ID_RANGE;
use super::{openssh, MachineError};
use std::path::Path;

/// Why the simulator cannot run instances on this machine; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("bakerd sim must run as root: each instance is a user namespace mapping 65,536 host ids, which only root may set up (rootless is not supported); run it with sudo")]
    NotRoot,
    #[error("{HOST_SSHD} is missing: install the openssh-server package (instances run their own copy of it)", HOST_SSHD = openssh::HOST_SSHD)]
    NoSshd,
    #[error(
        "no static busybox at /bin/busybox or /usr/bin/busybox: install the busybox-static package"
    )]
    NoBusybox,
    #[error("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0): enable them with `sysctl -w user.max_user_namespaces=15000`")]
    UserNamespacesDisabled,
    #[error("cannot create an instance's namespaces here ({detail}); run bakerd sim on a Linux host or a privileged container")]
    Namespaces { detail: String },
}

/// Runs every check; `exe` is the bakerd executable (probed with `__sim-probe`).
pub fn check(exe: &Path) -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(PreflightError::NotRoot);
    }
    if !Path::new(openssh::HOST_SSHD).is_file() {
        return Err(PreflightError::NoSshd);
    }
    if !["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .any(|p| Path::new(p).is_file())
    {
        return Err(PreflightError::NoBusybox);
    }
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err(PreflightError::UserNamespacesDisabled);
    }
    let probe = std::process::Command::new(exe)
        .arg("__sim-probe")
        .output()
        .map_err(|error| PreflightError::Namespaces {
            detail: format!("running {}: {error}", exe.display()),
        })?;
    if !probe.status.success() {
        return Err(PreflightError::Namespaces {
            detail: String::from_utf8_lossy(&probe.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Entry point of `bakerd __sim-probe`: creates the namespaces an instance gets, then exits.
pub(crate) fn probe() -> i32 {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET;
    // SAFETY: unshare with flags only in a single-threaded process that exits right after.
    if unsafe { libc::unshare(flags) } != 0 {
        eprintln!("unshare: {}", std::io::Error::last_os_error());
        return 1;
    }
    0
}

/// The first host uid/gid of the instances' id range, chosen at random (a multiple of 65,536
/// from 1,048,576 up, far from ordinary users and subuid ranges) and kept in `<data>/uid-base`,
/// because the disks on the data dir are owned by it.
pub(crate) fn uid_base(data_dir: &Path) -> Result<u32, MachineError> {
    let path = data_dir.join("uid-base");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(base) = text.trim().parse::<u32>() {
            return Ok(base);
        }
    }
    let slot: u32 = rand::Rng::gen_range(&mut rand::thread_rng(), 16..60_000);
    let base = slot * ID_RANGE;
    std::fs::write(&path, format!("{base}\n")).map_err(|source| MachineError::Io {
        what: "record the instances' uid base in",
        path,
        source,
    })?;
    Ok(base)
}
