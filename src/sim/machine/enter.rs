//! The enter helper: `bakerd __sim-enter <init-pid> exec -- <argv…>` runs a command as the
//! instance's root inside all of the instance's namespaces (SSH sessions: `sshd -i` on the
//! accepted socket; `Machines::exec_in_instance`); `bakerd __sim-enter <init-pid> install` writes
//! the files described by JSON on stdin into the instance (host keys, authorized keys, config).
//!
//! Why a separate process: joining a user namespace needs a single-threaded caller, and every
//! write into an instance's tree must happen as the instance's root, inside its mount namespace,
//! so that no symlink planted by the instance can make the host's root write a host file.
//!
//! Guarantees: refuses to run if `<init-pid>` does not belong to an instance (its user namespace
//! is the helper's own: a recycled pid); the command gets only the helper's environment, no host
//! descriptor beyond stdin/stdout/stderr, `no_new_privs`, and dies when the helper is killed.

use super::sys;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Namespaces joined, in order; the user namespace last, once the others are joined with the
/// host's capabilities. `cgroup` may be missing on old kernels.
const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "uts", "net", "pid", "mnt", "user"];

/// One file for `install`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileToInstall {
    /// Absolute path inside the instance.
    pub path: String,
    /// Permission bits of the file.
    pub mode: u32,
    /// Permission bits of directories created on the way.
    pub dir_mode: u32,
    pub contents: String,
}

/// Entry point of `bakerd __sim-enter`.
pub(crate) fn main(args: &[String]) -> i32 {
    let result = match args {
        [pid, mode, rest @ ..] => match pid.parse::<sys::Pid>() {
            Ok(pid) => enter(pid).and_then(|()| match (mode.as_str(), rest) {
                ("exec", [dashes, argv @ ..]) if dashes == "--" && !argv.is_empty() => run(argv),
                ("install", []) => install(),
                _ => Err(io::Error::other(
                    "usage: __sim-enter <pid> exec -- <argv…> | install",
                )),
            }),
            Err(_) => Err(io::Error::other("bad init pid")),
        },
        _ => Err(io::Error::other(
            "usage: __sim-enter <pid> exec -- <argv…> | install",
        )),
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("bakerd sim: entering the instance: {error}");
            126
        }
    }
}

/// Joins every namespace of the instance whose init is `pid` and becomes its root.
fn enter(pid: sys::Pid) -> io::Result<()> {
    let proc_dir = File::open(format!("/proc/{pid}/ns"))?;
    let own_user = std::fs::metadata("/proc/self/ns/user")?;
    let mut joined = Vec::new();
    for name in NAMESPACES {
        let opened = rustix::fs::openat(
            proc_dir.as_fd(),
            name,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        );
        match opened {
            Ok(fd) => joined.push((name, File::from(fd))),
            Err(_) if name == "cgroup" => continue,
            Err(error) => return Err(error.into()),
        }
    }
    use std::os::unix::fs::MetadataExt;
    let (_, user) = joined.last().expect("user namespace opened last");
    let target_user = user.metadata()?;
    if (target_user.dev(), target_user.ino()) == (own_user.dev(), own_user.ino()) {
        return Err(io::Error::other(format!(
            "process {pid} is not an instance's init"
        )));
    }
    for (name, fd) in &joined {
        use std::os::fd::AsRawFd;
        // SAFETY: setns with an open namespace fd; the process is single-threaded.
        sys::cvt(unsafe { libc::setns(fd.as_raw_fd(), 0) }).map_err(|error| {
            io::Error::new(error.kind(), format!("joining {name} namespace: {error}"))
        })?;
    }
    sys::become_root()?;
    sys::no_new_privs()?;
    std::env::set_current_dir("/root").or_else(|_| std::env::set_current_dir("/"))
}

/// Runs `argv` in the instance (a child, so it is inside the PID namespace) and exits with its
/// status. The child dies if this helper is killed (e.g. on a timeout).
fn run(argv: &[String]) -> io::Result<()> {
    let mut command = std::process::Command::new(&argv[0]);
    command.args(&argv[1..]);
    for (key, value) in [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SHELL", "/bin/sh"),
    ] {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    // SAFETY: the closure only makes async-signal-safe syscalls. This helper is outside the
    // instance's PID namespace, so inside it the parent's pid reads as 0.
    unsafe {
        command.pre_exec(|| sys::die_with_parent(0));
    }
    let status = command.status()?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    std::process::exit(code)
}

/// Writes the files listed as JSON on stdin; each replaces the old one atomically.
fn install() -> io::Result<()> {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input)?;
    let files: Vec<FileToInstall> = serde_json::from_str(&input).map_err(io::Error::other)?;
    for file in files {
        write_file(&file)?;
    }
    Ok(())
}

fn write_file(file: &FileToInstall) -> io::Result<()> {
    let path = Path::new(&file.path);
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(file.dir_mode)
            .create(parent)?;
    }
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(file.dir_mode))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = parent.join(format!(".{name}.bakerd-tmp"));
    let _ = std::fs::remove_file(&temp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .open(&temp)?;
    out.write_all(file.contents.as_bytes())?;
    out.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
    drop(out);
    std::fs::rename(&temp, path)
}
