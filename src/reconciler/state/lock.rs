//! The exclusive lock that makes a state directory single-process.
//!
//! Why flock(2) and not sled's own lock: sled's lock error says nothing about who holds it. Our lock file
//! carries the holder's pid and command so the second process can name it, and the kernel releases an
//! flock when its holder dies (even on SIGKILL), so a crashed bakerd never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::StateError;

/// Name of the lock file inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// An exclusive flock on `<state>/lock`, held for the lifetime of this value.
///
/// Guarantees: while it lives, no other process (and no other `StateLock` in this process) can lock the
/// same directory. Dropping it, or the process dying, releases the lock.
#[derive(Debug)]
pub struct StateLock {
    /// Kept open because closing the descriptor releases the flock.
    _file: File,
}

/// Who holds a lock, as written in the lock file: `<pid> <command>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Process id of the holder (0 if the file could not be read yet).
    pub pid: u32,
    /// What the holder is doing, e.g. `bakerd apply`.
    pub command: String,
}

impl StateLock {
    /// Takes the lock without waiting, recording `command` as the holder's description.
    pub fn acquire(dir: &Path, command: &str) -> Result<StateLock, StateError> {
        let path = dir.join(LOCK_FILE);
        let mut file = open_lock_file(&path)?;
        // SAFETY: flock on a valid descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = read_holder(&mut file);
                return Err(StateError::Locked {
                    path: dir.to_path_buf(),
                    pid: holder.pid,
                    command: holder.command,
                });
            }
            return Err(StateError::Lock { path, source: err });
        }
        write_holder(&mut file, command).map_err(|source| StateError::Lock {
            path: path.clone(),
            source,
        })?;
        Ok(StateLock { _file: file })
    }
}

fn open_lock_file(path: &PathBuf) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| StateError::Lock {
            path: path.clone(),
            source,
        })
}

fn write_holder(file: &mut File, command: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{} {}", std::process::id(), command)?;
    file.sync_all()
}

/// Reads the holder line. The holder writes it right after locking, so an empty file means we raced
/// with that write: retry briefly rather than report pid 0.
fn read_holder(file: &mut File) -> LockHolder {
    for _ in 0..10 {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        if let (Ok(_), Some(holder)) = (read, parse_holder(&text)) {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    LockHolder {
        pid: 0,
        command: "unknown command".into(),
    }
}

fn parse_holder(text: &str) -> Option<LockHolder> {
    let line = text.lines().next()?;
    let (pid, command) = line.split_once(' ').unwrap_or((line, ""));
    Some(LockHolder {
        pid: pid.trim().parse().ok()?,
        command: command.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_line_parses_pid_and_command() {
        let h = parse_holder("4242 bakerd apply\n").unwrap();
        assert_eq!(h.pid, 4242);
        assert_eq!(h.command, "bakerd apply");
        assert!(parse_holder("").is_none());
        assert!(parse_holder("garbage here").is_none());
    }
}
