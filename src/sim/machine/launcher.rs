//! The instance launcher: `bakerd __sim-instance <spec-json>`, one process per running instance,
//! started by the simulator. It boots the instance in fresh namespaces, restarts it when the
//! instance reboots itself, and exits when it powers off or when the simulator stops it.
//!
//! One boot, as processes:
//!
//! ```text
//! launcher (host root)            writes the child's uid/gid maps, reports to the simulator
//!  └ boot child (host root → instance root)
//!      unshare(mount) as host root: bind the disk's rootfs (and data disks) privately,
//!      then unshare(user, mount, pid, ipc, uts, net, cgroup) and wait for the maps
//!      └ instance init = PID 1 of the new PID namespace (see `init`)
//! ```
//!
//! Reports on stdout, one line each: `up <init host pid>` once the init is ready, `rebooted`
//! when the instance rebooted itself (a new `up` follows). Exit codes: [`EXIT_STOPPED`] after
//! SIGTERM, [`EXIT_POWEROFF`] when the instance powered itself off, anything else is a failure
//! whose reason went to stderr.
//!
//! Assumptions: runs single-threaded (it forks and unshares user namespaces), as host root.

use super::init;
use super::sys::{self, Pid};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Exit code of the launcher after the simulator stopped the instance.
pub(crate) const EXIT_STOPPED: i32 = 0;
/// Exit code of the launcher after the instance powered itself off (`poweroff`, `halt`).
pub(crate) const EXIT_POWEROFF: i32 = 3;
/// How many ids the instance's user namespace maps (inner 0..65536 to the host's base..).
pub(crate) const ID_RANGE: u32 = 65_536;

/// What the simulator tells the launcher (JSON in argv: nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LaunchSpec {
    /// Instance id, for messages.
    pub instance_id: String,
    /// The system disk's root filesystem.
    pub rootfs: PathBuf,
    /// Host name inside the instance (UTS namespace).
    pub hostname: String,
    /// First host uid/gid of the instance's id range.
    pub uid_base: u32,
    /// Extra disks: (root filesystem of the disk, mount point inside the instance).
    pub data_disks: Vec<(PathBuf, String)>,
}

/// How one boot ended.
enum Outcome {
    Reboot,
    PowerOff,
    Stopped,
}

/// Entry point of `bakerd __sim-instance`.
pub(crate) fn main(spec_json: &str) -> i32 {
    let spec: LaunchSpec = match serde_json::from_str(spec_json) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("bakerd __sim-instance: bad launch spec: {error}");
            return 2;
        }
    };
    if let Err(error) = sys::block_signals(&[libc::SIGTERM, libc::SIGCHLD]) {
        eprintln!("instance {}: blocking signals: {error}", spec.instance_id);
        return 1;
    }
    loop {
        let outcome = boot_once(&spec).and_then(|(child, init)| {
            report(&format!("up {init}"))?;
            supervise(child, init)
        });
        match outcome {
            Ok(Outcome::Reboot) => {
                if report("rebooted").is_err() {
                    return 1;
                }
            }
            Ok(Outcome::PowerOff) => return EXIT_POWEROFF,
            Ok(Outcome::Stopped) => return EXIT_STOPPED,
            Err(error) => {
                eprintln!("instance {}: {error}", spec.instance_id);
                return 1;
            }
        }
    }
}

fn report(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Waits until the boot child exits (the instance's init ended) or SIGTERM (stop: kill the
/// init, which kills every process of the instance, then reap).
fn supervise(child: Pid, init: Pid) -> io::Result<Outcome> {
    loop {
        match sys::wait_signal(&[libc::SIGTERM, libc::SIGCHLD]) {
            libc::SIGTERM => {
                sys::kill(init, libc::SIGKILL);
                sys::wait_for(child)?;
                return Ok(Outcome::Stopped);
            }
            _ => {
                let mut status = 0;
                // SAFETY: status is a valid out-pointer.
                if unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) } == child {
                    return decode(sys::exit_code(status));
                }
            }
        }
    }
}

fn decode(code: i32) -> io::Result<Outcome> {
    match code {
        init::EXIT_REBOOT => Ok(Outcome::Reboot),
        init::EXIT_POWEROFF => Ok(Outcome::PowerOff),
        other => Err(io::Error::other(format!(
            "the instance's init ended unexpectedly (exit {other})"
        ))),
    }
}

/// Starts one boot; returns (boot child, init) host pids once the init is ready.
fn boot_once(spec: &LaunchSpec) -> io::Result<(Pid, Pid)> {
    let (mut from_child, child_end) = sys::pipe()?;
    let (go_read, mut go_write) = sys::pipe()?;
    let (mut ready_read, ready_write) = sys::pipe()?;
    let launcher = sys::getpid();
    let child = sys::fork()?;
    if child == 0 {
        drop(from_child);
        drop(go_write);
        drop(ready_read);
        let pipes = BootPipes {
            to_parent: child_end,
            go: go_read,
            ready: ready_write,
        };
        let code = match boot_child(spec, launcher, pipes) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("instance {}: boot: {error}", spec.instance_id);
                1
            }
        };
        // SAFETY: leaving the forked child without running the launcher's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(child_end);
    drop(go_read);
    drop(ready_write);
    let started = (|| -> io::Result<Pid> {
        sys::read_bytes::<1>(&mut from_child)?;
        write_id_maps(child, spec.uid_base)?;
        sys::write_bytes(&mut go_write, b"m")?;
        let init = Pid::from_ne_bytes(sys::read_bytes::<4>(&mut from_child)?);
        sys::read_bytes::<1>(&mut ready_read)?;
        Ok(init)
    })();
    match started {
        Ok(init) => Ok((child, init)),
        Err(error) => {
            sys::kill(child, libc::SIGKILL);
            let status = sys::wait_for(child).map(sys::exit_code).unwrap_or(-1);
            Err(io::Error::other(format!(
                "the instance did not come up ({error}; boot exit {status})"
            )))
        }
    }
}

/// Maps the child's inner ids 0..65536 to the host's `base..base+65536`.
fn write_id_maps(child: Pid, base: u32) -> io::Result<()> {
    let map = format!("0 {base} {ID_RANGE}\n");
    std::fs::write(format!("/proc/{child}/uid_map"), &map)?;
    std::fs::write(format!("/proc/{child}/gid_map"), &map)
}

/// The boot child's ends of its pipes to the launcher.
struct BootPipes {
    /// `u` once unshared (the launcher then writes the id maps), then the init's pid.
    to_parent: File,
    /// The launcher's `m`: the id maps are written.
    go: File,
    /// Handed to the init, which writes one byte once the instance is set up.
    ready: File,
}

/// The boot child: private mounts as host root, the new namespaces, then the init.
fn boot_child(spec: &LaunchSpec, launcher: Pid, mut pipes: BootPipes) -> io::Result<i32> {
    sys::die_with_parent(launcher)?;
    sys::unblock_signals(&[libc::SIGTERM, libc::SIGCHLD]);
    prepare_mounts(spec)?;
    unshare_instance_namespaces()?;
    sys::write_bytes(&mut pipes.to_parent, b"u")?;
    sys::read_bytes::<1>(&mut pipes.go)?;
    sys::become_root()?;
    sys::die_with_parent(launcher)?;
    let init_pid = sys::fork()?;
    if init_pid == 0 {
        let code = match init::run(spec, pipes.ready) {
            Ok(never) => match never {},
            Err(error) => {
                eprintln!("instance {}: init: {error}", spec.instance_id);
                1
            }
        };
        // SAFETY: leaving the forked init without running destructors.
        unsafe { libc::_exit(code) };
    }
    drop(pipes.ready);
    sys::write_bytes(&mut pipes.to_parent, &init_pid.to_ne_bytes())?;
    let status = sys::wait_for(init_pid)?;
    Ok(init_code(status))
}

/// The boot child's exit code for the init's wait status. `reboot(2)` inside a PID namespace
/// kills its init with SIGHUP (restart) or SIGINT (power off, halt).
fn init_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        match libc::WTERMSIG(status) {
            libc::SIGHUP => return init::EXIT_REBOOT,
            libc::SIGINT => return init::EXIT_POWEROFF,
            _ => {}
        }
    }
    sys::exit_code(status)
}

fn unshare_instance_namespaces() -> io::Result<()> {
    let base = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET;
    // SAFETY: unshare with flags only; the process is single-threaded.
    if sys::cvt(unsafe { libc::unshare(base | libc::CLONE_NEWCGROUP) }).is_ok() {
        return Ok(());
    }
    // SAFETY: as above; kernels without cgroup namespaces.
    sys::cvt(unsafe { libc::unshare(base) }).map(|_| ())
}

/// As host root, in a private mount namespace: binds each data disk onto its mount point in the
/// rootfs and makes the disk's directory (the rootfs's parent, handed to the instance's id range,
/// 0700) the working directory, from which the init binds the rootfs itself (the init cannot walk
/// the host's 0700 data dir, and a mount made here would be locked for it).
///
/// Why safe: the mount points inside the instance tree are resolved without following any
/// symlink and without leaving the tree, so an instance cannot redirect a data disk mount.
fn prepare_mounts(spec: &LaunchSpec) -> io::Result<()> {
    let disk_dir = spec
        .rootfs
        .parent()
        .ok_or_else(|| io::Error::other("the rootfs has no parent directory"))?;
    std::os::unix::fs::chown(disk_dir, Some(spec.uid_base), Some(spec.uid_base))?;
    std::fs::set_permissions(
        disk_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    // SAFETY: unshare with a flag only; the process is single-threaded.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)?;
    for (disk, target) in &spec.data_disks {
        let point = init::dir_beneath(&spec.rootfs, target)?;
        let point = format!("/proc/self/fd/{}", point.as_raw_fd());
        mount(Some(disk), Path::new(&point), None, libc::MS_BIND)?;
    }
    std::env::set_current_dir(disk_dir)
}

/// `mount(2)` with optional source and type and no data.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let source = source.map(sys::cstr).transpose()?;
    let target_c = sys::cstr(target)?;
    let fstype = fstype.map(sys::cstr).transpose()?;
    let ptr = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a valid C string or null, as mount(2) allows.
    sys::cvt(unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            std::ptr::null(),
        )
    })
    .map(|_| ())
    .map_err(|error| io::Error::new(error.kind(), format!("mount {}: {error}", target.display())))
}
