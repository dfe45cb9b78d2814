//! Thin, checked wrappers over the Linux calls the instance processes make (fork, pipes, signals,
//! namespaces). Shared by the launcher, the instance's init and the enter helper, which all run
//! single-threaded in their own short-lived processes.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// Process id as the kernel hands it out.
pub(crate) type Pid = libc::pid_t;

/// Turns a `-1` return into the `errno` error.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path as a C string (paths with NUL bytes cannot name a file anyway).
pub(crate) fn cstr(path: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(path.as_ref().as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A close-on-exec pipe as (read end, write end) files.
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    unsafe {
        Ok((
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        ))
    }
}

/// Reads exactly `N` bytes, or fails (EOF included: the other side died).
pub(crate) fn read_bytes<const N: usize>(file: &mut File) -> io::Result<[u8; N]> {
    let mut buf = [0; N];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// Writes all of `bytes`.
pub(crate) fn write_bytes(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)
}

/// `fork(2)`. Returns 0 in the child.
///
/// Assumptions: the calling process is single-threaded (the launcher and helpers are), so the
/// child may allocate freely.
pub(crate) fn fork() -> io::Result<Pid> {
    // SAFETY: callers are single-threaded processes; the child continues normally.
    cvt(unsafe { libc::fork() })
}

/// Waits for `pid` (retrying on EINTR) and returns its raw wait status.
pub(crate) fn wait_for(pid: Pid) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == pid {
            return Ok(status);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Asks for SIGKILL when the parent dies, then checks the parent did not die already (between
/// fork and this call nobody would have sent it).
pub(crate) fn die_with_parent(parent: Pid) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// The calling process's id.
pub(crate) fn getpid() -> Pid {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Sends `signal` to `pid`; a vanished process is not an error.
pub(crate) fn kill(pid: Pid, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A signal set holding `signals`.
pub(crate) fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset only writes into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        set
    }
}

/// Blocks `signals` (so [`wait_signal`] can collect them) and gives each a no-op handler: a
/// PID-namespace init ignores signals whose handler is the default one.
pub(crate) fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    extern "C" fn ignore(_: libc::c_int) {}
    for signal in signals {
        // SAFETY: installing a plain handler that does nothing.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            cvt(libc::sigaction(*signal, &action, std::ptr::null_mut()))?;
        }
    }
    let set = sigset(signals);
    // SAFETY: set is initialised; the old mask is not needed.
    cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    Ok(())
}

/// Restores the default disposition and mask for `signals` (in a child before it execs).
pub(crate) fn unblock_signals(signals: &[libc::c_int]) {
    let set = sigset(signals);
    // SAFETY: resetting dispositions to SIG_DFL and unblocking an initialised set.
    unsafe {
        for signal in signals {
            libc::signal(*signal, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits for one of the blocked `signals`.
pub(crate) fn wait_signal(signals: &[libc::c_int]) -> libc::c_int {
    let set = sigset(signals);
    loop {
        // SAFETY: set is initialised; the info pointer may be null.
        let signal = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if signal > 0 {
            return signal;
        }
    }
}

/// Closes every file descriptor from `first` up (so nothing of the host leaks into an instance).
pub(crate) fn close_fds_from(first: libc::c_int) {
    // SAFETY: close_range only closes descriptors; callers own every fd above `first`.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
    }
}

/// `setgroups([])`, then gid and uid 0 (of the current user namespace).
pub(crate) fn become_root() -> io::Result<()> {
    // SAFETY: plain credential syscalls with integer arguments.
    unsafe {
        cvt(libc::setgroups(0, std::ptr::null()))?;
        cvt(libc::setresgid(0, 0, 0))?;
        cvt(libc::setresuid(0, 0, 0))?;
    }
    Ok(())
}

/// `prctl(PR_SET_NO_NEW_PRIVS)`: no exec can ever grant more privileges than the caller has.
pub(crate) fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(|_| ())
}

/// Exit code of a raw wait status: its exit code, or 128 + signal like a shell.
pub(crate) fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}
