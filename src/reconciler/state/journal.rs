//! Detects a database that silently lost committed writes.
//!
//! Why: sled treats a damaged log tail as an interrupted write and recovers by dropping it, so a
//! truncated or corrupted `db` file opens "fine" with recent builds or events missing. A resume would
//! then say "build not found" or, worse, redo work. So every commit also bumps a counter inside sled
//! and, after sled's flush, records it in a separate small file. On open, a counter in the file that
//! is ahead of sled's means sled lost writes: the directory is reported damaged.
//!
//! Guarantees: the file is written after sled's flush, so a crash can only leave it behind sled
//! (never ahead), which is not an error.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StateError;

/// File in the state directory holding the number of the last committed write.
pub const COMMITTED_FILE: &str = "committed";

/// Reader and writer of [`COMMITTED_FILE`].
#[derive(Debug)]
pub(super) struct CommitJournal {
    /// `<state>/committed`.
    path: PathBuf,
}

impl CommitJournal {
    pub(super) fn new(state_dir: &Path) -> CommitJournal {
        CommitJournal {
            path: state_dir.join(COMMITTED_FILE),
        }
    }

    /// The last recorded commit number; 0 when the file does not exist yet.
    pub(super) fn read(&self, state_dir: &Path) -> Result<u64, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.damaged(state_dir, format!("cannot read it: {e}"))),
        };
        text.trim()
            .parse()
            .map_err(|_| self.damaged(state_dir, format!("unreadable content {:?}", text.trim())))
    }

    /// Records `seq` durably: one write of a fixed-width line over the file's start, then an
    /// fdatasync (and, when the file is new, an fsync of the directory).
    ///
    /// Why in place rather than temp file + rename: that allocated and freed an inode per commit,
    /// and with many builds in one process (every event is a commit) inode allocation became most
    /// of bakerd's CPU time. Why it cannot tear: the line is 21 bytes at offset 0, so one
    /// `write(2)` (which a SIGKILL cannot split) inside one disk sector (which disks write whole);
    /// it is always as long as any earlier content, which it covers entirely.
    pub(super) fn record(&self, seq: u64) -> std::io::Result<()> {
        let existed = self.path.exists();
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        file.write_all_at(format!("{seq:020}\n").as_bytes(), 0)?;
        file.sync_data()?;
        if !existed {
            if let Some(dir) = self.path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Fails when the database holds fewer commits than were recorded as durable.
    pub(super) fn check(&self, state_dir: &Path, in_db: u64) -> Result<(), StateError> {
        let recorded = self.read(state_dir)?;
        if recorded > in_db {
            return Err(StateError::Damaged {
                path: state_dir.to_path_buf(),
                detail: format!(
                    "the database lost committed writes: it holds write #{in_db} but write \
                     #{recorded} was committed; its files were truncated or corrupted"
                ),
            });
        }
        Ok(())
    }

    fn damaged(&self, state_dir: &Path, what: String) -> StateError {
        StateError::Damaged {
            path: state_dir.to_path_buf(),
            detail: format!("{}: {what}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_replaces_the_last_whatever_its_length_and_keeps_the_same_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = CommitJournal::new(dir.path());
        // A file written by an older bakerd: a short line.
        fs::write(dir.path().join(COMMITTED_FILE), "42\n").unwrap();
        let inode = fs::metadata(dir.path().join(COMMITTED_FILE)).unwrap().ino();
        for seq in [43, 123_456_789, 7, u64::MAX] {
            journal.record(seq).unwrap();
            assert_eq!(journal.read(dir.path()).unwrap(), seq);
        }
        let meta = fs::metadata(dir.path().join(COMMITTED_FILE)).unwrap();
        assert_eq!(meta.ino(), inode, "a new file per commit");
        assert_eq!(meta.len(), 21);
    }
}
