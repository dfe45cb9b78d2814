//! Group commit of the simulator state (`<data>/state.json`).
//!
//! Why: writing the whole state and fsyncing it once per mutating call, under the state lock, made
//! every concurrent client wait for every other one's disk write. Here a change only bumps a counter
//! under the state lock; the call then waits, without the lock, until a state write that includes its
//! change is on disk. One caller at a time writes; the calls that changed the state meanwhile are all
//! covered by the next write, so N concurrent calls share a handful of writes instead of N.
//!
//! Guarantees: [`Committer::commit`] returns once a write that started after change `upto` was made
//! has been fsynced and renamed into place (so it survives SIGKILL and power loss). Writes are
//! atomic (temp file + fsync + rename): a crash leaves the previous or the next state, never a torn
//! one.
//! Assumptions: callers do not hold the state lock while committing (the writer takes it to
//! serialize the state).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::store::{self, State};

/// Which changes are on disk, and whether a write is under way.
#[derive(Debug, Default)]
struct Progress {
    /// Every change numbered up to this one is on disk.
    durable: u64,
    writing: bool,
}

/// Numbers the state's changes and writes them in groups.
#[derive(Debug)]
pub struct Committer {
    data_dir: PathBuf,
    /// The number of the latest change (bumped under the state lock).
    changes: AtomicU64,
    /// The latest change made by an API call: what every API answer waits for.
    api_changes: AtomicU64,
    progress: Mutex<Progress>,
    written: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Committer {
    pub fn new(data_dir: PathBuf) -> Self {
        Committer {
            data_dir,
            changes: AtomicU64::new(0),
            api_changes: AtomicU64::new(0),
            progress: Mutex::new(Progress::default()),
            written: Condvar::new(),
        }
    }

    /// Records that the state changed (call it with the state lock held); returns the change's number.
    pub fn changed(&self) -> u64 {
        self.changes.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Like [`Committer::changed`], for a change an API call made and is about to acknowledge.
    pub fn api_changed(&self) -> u64 {
        let n = self.changed();
        self.api_changes.fetch_max(n, Ordering::SeqCst);
        n
    }

    /// The latest change made by an API call.
    pub fn api_changes(&self) -> u64 {
        self.api_changes.load(Ordering::SeqCst)
    }

    /// Writes every change made so far, if any is not on disk yet.
    pub fn flush(&self, state: &Mutex<State>) -> std::io::Result<()> {
        self.commit(state, self.changes.load(Ordering::SeqCst))
    }

    /// Returns once change `upto` is on disk: at once if it already is, after the write under way if
    /// that covers it, else after writing the state itself (with every change made until then).
    pub fn commit(&self, state: &Mutex<State>, upto: u64) -> std::io::Result<()> {
        let mut progress = lock(&self.progress);
        loop {
            if progress.durable >= upto {
                return Ok(());
            }
            if progress.writing {
                progress = self
                    .written
                    .wait(progress)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            progress.writing = true;
            drop(progress);
            let written = self.write(state);
            progress = lock(&self.progress);
            progress.writing = false;
            self.written.notify_all();
            match written {
                Ok(covered) => progress.durable = progress.durable.max(covered),
                // The waiters each try again (and fail alike if the disk is at fault).
                Err(e) => return Err(e),
            }
        }
    }

    /// Serializes the state under its lock, then writes it without the lock; returns the number of
    /// the latest change the write holds.
    fn write(&self, state: &Mutex<State>) -> std::io::Result<u64> {
        let (covered, bytes) = {
            let state = lock(state);
            let covered = self.changes.load(Ordering::SeqCst);
            (
                covered,
                serde_json::to_vec(&*state).map_err(std::io::Error::other)?,
            )
        };
        store::write_atomically(&self.data_dir, &bytes)?;
        Ok(covered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_of_many_concurrent_commits_returns_once_its_change_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(Committer::new(dir.path().to_path_buf()));
        let state = Arc::new(Mutex::new(State::new()));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (committer, state) = (committer.clone(), state.clone());
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let n = {
                            let mut s = lock(&state);
                            let id = format!("kp-{i}-{j}");
                            s.tokens.insert(id.clone(), token_entry(&id));
                            committer.api_changed()
                        };
                        committer.commit(&state, n).unwrap();
                        let on_disk = store::load(&committer.data_dir).unwrap();
                        assert!(on_disk.tokens.contains_key(&format!("kp-{i}-{j}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store::load(dir.path()).unwrap().tokens.len(), 16 * 20);
        assert_eq!(lock(&committer.progress).durable, 16 * 20);
    }

    fn token_entry(id: &str) -> super::super::idempotency::TokenEntry {
        super::super::idempotency::TokenEntry {
            params: Default::default(),
            response: serde_json::json!({ "Id": id }),
        }
    }
}
