//! The instance's init: PID 1 of the instance's PID namespace, running as the instance's root
//! (an unprivileged host uid) in its own user, mount, IPC, UTS, network and cgroup namespaces.
//!
//! It finishes the instance's file system view (fresh `/proc`, a `/dev` of harmless devices and
//! its own pseudo-terminals, tmpfs `/run`), makes the instance tree the root with `pivot_root`
//! (the host's tree is detached, not just hidden), sets the host name, brings up loopback, sets
//! `no_new_privs`, and then acts as init: it reaps orphans and turns busybox's `reboot`
//! (SIGTERM), `poweroff` (SIGUSR2) and `halt` (SIGUSR1) into its exit status. When it exits, the
//! kernel kills every process of the instance.

use super::launcher::{self, LaunchSpec};
use super::sys;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::convert::Infallible;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Exit code of the init when the instance rebooted itself.
pub(crate) const EXIT_REBOOT: i32 = 10;
/// Exit code of the init when the instance powered itself off or halted.
pub(crate) const EXIT_POWEROFF: i32 = 11;

/// Signals the init handles; everything else sent from inside the instance is ignored, as the
/// kernel does for any PID-namespace init without a handler.
const INIT_SIGNALS: [libc::c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGINT,
    libc::SIGHUP,
];

/// Devices bound from the host into the instance's `/dev`: none of them reaches host data.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Sets the instance up and runs it until it reboots or powers off.
///
/// Assumptions: the working directory is the directory holding the instance's `rootfs`; the
/// caller is inner root in the new namespaces.
pub(crate) fn run(spec: &LaunchSpec, mut ready: File) -> io::Result<Infallible> {
    // The boot child lives outside this PID namespace, so the parent's pid reads as 0 here.
    sys::die_with_parent(0)?;
    sys::block_signals(&INIT_SIGNALS)?;
    enter_own_root_mount().map_err(context("binding the rootfs"))?;
    mount_filesystems()?;
    pivot_into_cwd().map_err(context("pivot_root"))?;
    set_hostname(&spec.hostname).map_err(context("sethostname"))?;
    bring_up_loopback().map_err(context("bringing up lo"))?;
    sys::no_new_privs()?;
    sys::write_bytes(&mut ready, b"r").map_err(context("reporting ready"))?;
    drop(ready);
    redirect_stdio_to_null();
    sys::close_fds_from(3);
    serve()
}

fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |error| io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Reaps orphans until a power signal arrives, then exits with what it means.
fn serve() -> io::Result<Infallible> {
    loop {
        let code = match sys::wait_signal(&INIT_SIGNALS) {
            libc::SIGCHLD => {
                reap_all();
                continue;
            }
            libc::SIGTERM | libc::SIGINT => EXIT_REBOOT,
            libc::SIGUSR1 | libc::SIGUSR2 => EXIT_POWEROFF,
            _ => continue,
        };
        // SAFETY: leaving PID 1 on purpose; the kernel then ends the whole instance.
        unsafe { libc::_exit(code) };
    }
}

fn reap_all() {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// A directory `relative` beneath `root`, created (0755) where missing, opened without
/// following any symlink and without leaving `root`; replaces anything else in the way.
pub(crate) fn dir_beneath(root: &Path, relative: &str) -> io::Result<OwnedFd> {
    let mut dir: OwnedFd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    for part in relative.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = rustix::fs::openat2(&dir, part, flags, Mode::empty(), resolve);
        let next = match opened {
            Ok(fd) => fd,
            Err(_) => {
                let _ = rustix::fs::unlinkat(&dir, part, rustix::fs::AtFlags::empty());
                rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755))?;
                rustix::fs::openat2(&dir, part, flags, Mode::empty(), resolve)?
            }
        };
        dir = next;
    }
    Ok(dir)
}

/// Makes sure `relative` (under the working directory) is a real directory and returns the
/// path to mount on, through the opened fd so no symlink can redirect the mount.
fn mount_point(relative: &str) -> io::Result<(OwnedFd, String)> {
    let fd = dir_beneath(Path::new("."), relative)?;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    Ok((fd, path))
}

fn mount_at(
    relative: &str,
    source: Option<&str>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let (_fd, path) = mount_point(relative).map_err(context("preparing a mount point"))?;
    launcher::mount(source.map(Path::new), Path::new(&path), fstype, flags)
}

/// `mount` with data options (tmpfs modes, devpts instance options).
fn mount_with_data(
    relative: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (_fd, path) = mount_point(relative).map_err(context("preparing a mount point"))?;
    let target = sys::cstr(&path)?;
    let fstype_c = sys::cstr(fstype)?;
    let data_c = sys::cstr(data)?;
    // SAFETY: all pointers are valid C strings.
    sys::cvt(unsafe {
        libc::mount(
            fstype_c.as_ptr(),
            target.as_ptr(),
            fstype_c.as_ptr(),
            flags,
            data_c.as_ptr().cast(),
        )
    })
    .map(|_| ())
    .map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("mount {fstype} on /{relative}: {error}"),
        )
    })
}

const SAFE: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// `/proc` (this PID namespace only), `/sys` (read-only, best effort), `/dev`, `/run`.
fn mount_filesystems() -> io::Result<()> {
    mount_at("proc", Some("proc"), Some("proc"), SAFE | libc::MS_NOEXEC)?;
    if let Err(error) = mount_at(
        "sys",
        Some("sysfs"),
        Some("sysfs"),
        SAFE | libc::MS_NOEXEC | libc::MS_RDONLY,
    ) {
        eprintln!("instance init: /sys not mounted: {error}");
    }
    mount_with_data(
        "dev",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=755,size=1m",
    )?;
    for device in DEVICES {
        let node = format!("dev/{device}");
        // Fresh tmpfs: nothing in it can be a symlink planted by the instance.
        File::create(&node)?;
        let source = format!("/dev/{device}");
        launcher::mount(
            Some(Path::new(&source)),
            Path::new(&node),
            None,
            libc::MS_BIND,
        )
        .or_else(|error| if device == "tty" { Ok(()) } else { Err(error) })?;
    }
    mount_with_data(
        "dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )?;
    mount_with_data("dev/shm", "tmpfs", SAFE, "mode=1777")?;
    for (link, target) in [
        ("dev/ptmx", "pts/ptmx"),
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, link)?;
    }
    mount_with_data("run", "tmpfs", SAFE, "mode=755")?;
    std::fs::create_dir("run/sshd")?;
    Ok(())
}

/// Binds `rootfs` (with the data disks the boot child mounted in it) onto itself and enters it:
/// a mount made in this namespace, which `pivot_root` accepts (inherited ones are locked).
fn enter_own_root_mount() -> io::Result<()> {
    let rootfs = Path::new("rootfs");
    if rootfs.symlink_metadata()?.file_type().is_symlink() {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    launcher::mount(Some(rootfs), rootfs, None, libc::MS_BIND | libc::MS_REC)?;
    std::env::set_current_dir(rootfs)
}

/// Makes the working directory (a mount) the root and detaches the old root entirely.
fn pivot_into_cwd() -> io::Result<()> {
    let dot = sys::cstr(".")?;
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one; both pointers are valid.
    sys::cvt(
        unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } as libc::c_int,
    )?;
    // SAFETY: detaching the old root, now mounted on top of ".".
    sys::cvt(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
    std::env::set_current_dir("/")
}

fn set_hostname(name: &str) -> io::Result<()> {
    let name = if name.is_empty() { "localhost" } else { name };
    // SAFETY: the pointer and length describe `name`'s bytes.
    sys::cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(|_| ())
}

/// `ip link set lo up` in the instance's network namespace.
fn bring_up_loopback() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let sock =
        sys::cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data; the name fits; ioctls read and write only the struct.
    let result = unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let got = sys::cvt(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut request));
        got.and_then(|_| {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            sys::cvt(libc::ioctl(sock, libc::SIOCSIFFLAGS, &request))
        })
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    result.map(|_| ())
}

fn redirect_stdio_to_null() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}
