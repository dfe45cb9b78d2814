//! The state directory: builds, their phases, resources, intents and events, persisted in sled.
//!
//! Layout of a state directory (mode 0700):
//! - `lock`: flock'ed by the one bakerd process using the directory; holds `<pid> <command>`.
//! - `db/`: the sled database (trees `builds`, `events`, `meta`).
//! - `committed`: the number of the last committed write, to detect a database that lost writes.
//! - `keys/`: per-build private SSH keys (see [`crate::reconciler::keys`]), never inside sled.
//!
//! Guarantees: every write method flushes sled before returning, so a write that returned `Ok`
//! survives SIGKILL or power loss (the write-ahead rule relies on this). Writes by one process are
//! serialized, so `update_build` is an atomic read-modify-write.
//! Assumptions: one process per directory, enforced by [`StateDir::open`].
//! Caveats: flushing is synchronous disk I/O (milliseconds); call from async code is acceptable for
//! the handful of writes per phase but not in tight loops.

mod journal;
mod lock;
mod record;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use journal::COMMITTED_FILE;
pub use lock::{LockHolder, StateLock, LOCK_FILE};
pub use record::{
    spec_hash, BuildId, BuildRecord, CredentialsUsed, Event, Intent, ProvisionerCheckpoint,
    Timestamp,
};

/// Subdirectory holding the sled database.
pub const DB_DIR: &str = "db";
/// Subdirectory holding per-build private keys.
pub const KEYS_DIR: &str = "keys";

const BUILDS_TREE: &str = "builds";
const EVENTS_TREE: &str = "events";
const META_TREE: &str = "meta";
/// Key in the meta tree: number of the last committed write (u64 big-endian).
const COMMIT_SEQ_KEY: &str = "commit_seq";

/// What to tell the user when the directory cannot be read.
const DAMAGED_ADVICE: &str = "move the directory aside (keep it for inspection) and run \
    `bakerd gc`, which finds this state's cloud resources from their bakerd tags alone; builds \
    recorded in it cannot be resumed";

/// Errors of the state store. Each names the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state dir {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot restrict state dir {path} to mode 0700: {source}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock state dir {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state dir {path} is locked by pid {pid} ({command}): wait for it to finish, or stop \
         that process (its lock is released when it exits), or use another --state-dir"
    )]
    Locked {
        path: PathBuf,
        pid: u32,
        command: String,
    },
    #[error("state dir {path} is damaged ({detail}): {DAMAGED_ADVICE}")]
    Damaged { path: PathBuf, detail: String },
    #[error("state dir {path}: record {key} is damaged ({source}): {DAMAGED_ADVICE}")]
    CorruptRecord {
        path: PathBuf,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state dir {path}: cannot {operation}: {source}")]
    Storage {
        path: PathBuf,
        operation: String,
        #[source]
        source: sled::Error,
    },
    #[error(
        "state dir {path}: the write was flushed but recording it in {COMMITTED_FILE} failed: \
         {source}"
    )]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode build {id} for the state dir: {source}")]
    Encode {
        id: BuildId,
        #[source]
        source: serde_json::Error,
    },
    #[error("build {id} not found in state dir {path}: `bakerd list` shows the known builds")]
    NotFound { path: PathBuf, id: BuildId },
}

/// An open, locked state directory.
pub struct StateDir {
    /// The directory, for messages and for the key store.
    path: PathBuf,
    /// Kept alive so the directory stays ours; released on drop.
    _lock: StateLock,
    /// Kept so `flush` covers every tree.
    db: sled::Db,
    /// Build id → JSON `BuildRecord`.
    builds: sled::Tree,
    /// `<build id>/<u64 BE sequence>` → JSON `Event`; the sequence orders events.
    events: sled::Tree,
    /// Holds the commit counter (see the `journal` module).
    meta: sled::Tree,
    /// Detects lost writes across restarts.
    journal: journal::CommitJournal,
    /// Serializes read-modify-write cycles within this process; holds the last commit number.
    write_guard: Mutex<u64>,
}

impl std::fmt::Debug for StateDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDir")
            .field("path", &self.path)
            .finish()
    }
}

impl StateDir {
    /// Opens (creating if needed) the state directory at `path`, describing the holder as the
    /// current process's subcommand (`bakerd apply`, …) in the lock file.
    pub fn open(path: impl AsRef<Path>) -> Result<StateDir, StateError> {
        StateDir::open_as(path, &current_command())
    }

    /// Opens the state directory, recording `command` as what the holder does.
    ///
    /// Guarantees: the directory exists with mode 0700 (looser modes are tightened); this process
    /// holds its exclusive lock, or the call fails at once with [`StateError::Locked`] naming the
    /// holder's pid and command. A damaged database gives [`StateError::Damaged`], never a panic.
    pub fn open_as(path: impl AsRef<Path>, command: &str) -> Result<StateDir, StateError> {
        let path = path.as_ref().to_path_buf();
        create_private_dir(&path)?;
        let lock = StateLock::acquire(&path, command)?;
        let db = open_sled(&path)?;
        let open_tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| damaged_or_storage(&path, e, "open tree"))
        };
        let builds = open_tree(BUILDS_TREE)?;
        let events = open_tree(EVENTS_TREE)?;
        let meta = open_tree(META_TREE)?;
        let committed = read_commit_seq(&path, &meta)?;
        let journal = journal::CommitJournal::new(&path);
        journal.check(&path, committed)?;
        Ok(StateDir {
            path,
            _lock: lock,
            db,
            builds,
            events,
            meta,
            journal,
            write_guard: Mutex::new(committed),
        })
    }

    /// The state directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<state>/keys`, where [`crate::reconciler::keys::KeyStore`] keeps private keys.
    pub fn keys_dir(&self) -> PathBuf {
        self.path.join(KEYS_DIR)
    }

    /// Stores a new build with a fresh id and flushes.
    ///
    /// Guarantees: the id is unique in this directory; the record is durable on return.
    pub fn create_build<P: Serialize>(
        &self,
        spec: serde_json::Value,
        phase: P,
    ) -> Result<BuildRecord<P>, StateError> {
        self.create_build_with(spec, phase, |_| {})
    }

    /// [`Self::create_build`], with `init` filling in fields before the first write, so a kill
    /// right after creation never leaves a record without them (e.g. the spec hash that `resume`
    /// compares the spec's files against).
    pub fn create_build_with<P: Serialize>(
        &self,
        spec: serde_json::Value,
        phase: P,
        init: impl FnOnce(&mut BuildRecord<P>),
    ) -> Result<BuildRecord<P>, StateError> {
        let mut guard = self.lock_writes();
        let id = loop {
            // Ids are 40 random bits; under the write guard (and the directory lock) a free id stays free.
            let candidate = BuildId::generate();
            let taken = self
                .builds
                .contains_key(candidate.as_str())
                .map_err(|e| self.storage(e, format!("read build {candidate}")))?;
            if !taken {
                break candidate;
            }
        };
        let mut record = BuildRecord::new(id, spec, phase);
        init(&mut record);
        self.builds
            .insert(record.id.as_str(), encode(&record)?)
            .map_err(|e| self.storage(e, format!("create build {}", record.id)))?;
        self.commit(&mut guard)?;
        Ok(record)
    }

    /// Loads one build.
    pub fn load_build<P: DeserializeOwned>(
        &self,
        id: &BuildId,
    ) -> Result<BuildRecord<P>, StateError> {
        let bytes = self
            .builds
            .get(id.as_str())
            .map_err(|e| self.storage(e, format!("read build {id}")))?
            .ok_or_else(|| StateError::NotFound {
                path: self.path.clone(),
                id: id.clone(),
            })?;
        self.decode(id.as_str(), &bytes)
    }

    /// Every build, oldest first. Fails on the first damaged record, naming it.
    pub fn list_builds<P: DeserializeOwned>(&self) -> Result<Vec<BuildRecord<P>>, StateError> {
        let mut builds = Vec::new();
        for entry in self.builds.iter() {
            let (key, bytes) = entry.map_err(|e| self.storage(e, "list builds".into()))?;
            builds.push(self.decode(&String::from_utf8_lossy(&key), &bytes)?);
        }
        builds.sort_by(|a: &BuildRecord<P>, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(builds)
    }

    /// Builds whose frozen spec has hash `hash`, newest first.
    pub fn find_builds_by_spec_hash<P: DeserializeOwned>(
        &self,
        hash: &str,
    ) -> Result<Vec<BuildRecord<P>>, StateError> {
        let mut found: Vec<BuildRecord<P>> = self
            .list_builds()?
            .into_iter()
            .filter(|b: &BuildRecord<P>| b.spec_hash == hash)
            .collect();
        found.reverse();
        Ok(found)
    }

    /// Atomically applies `change` to the stored build, stamps `updated_at`, writes and flushes.
    ///
    /// Guarantees: concurrent calls in this process never lose each other's changes; on `Ok` the new
    /// record is durable and returned. On `Err` nothing was written.
    /// Caveats: `change` must not call back into this `StateDir` (it runs under the write guard).
    pub fn update_build<P, F>(&self, id: &BuildId, change: F) -> Result<BuildRecord<P>, StateError>
    where
        P: Serialize + DeserializeOwned,
        F: FnOnce(&mut BuildRecord<P>),
    {
        let mut guard = self.lock_writes();
        let mut record: BuildRecord<P> = self.load_build(id)?;
        change(&mut record);
        record.id = id.clone();
        record.updated_at = Timestamp::now();
        let bytes = encode(&record)?;
        self.builds
            .insert(id.as_str(), bytes)
            .map_err(|e| self.storage(e, format!("write build {id}")))?;
        self.commit(&mut guard)?;
        Ok(record)
    }

    /// Appends an event to a build's history and flushes. Events keep insertion order.
    pub fn append_event(&self, id: &BuildId, event: &Event) -> Result<(), StateError> {
        let mut guard = self.lock_writes();
        if !self
            .builds
            .contains_key(id.as_str())
            .map_err(|e| self.storage(e, format!("read build {id}")))?
        {
            return Err(StateError::NotFound {
                path: self.path.clone(),
                id: id.clone(),
            });
        }
        let seq = self
            .db
            .generate_id()
            .map_err(|e| self.storage(e, "allocate event sequence".into()))?;
        let mut key = event_prefix(id);
        key.extend_from_slice(&seq.to_be_bytes());
        let bytes = serde_json::to_vec(event).map_err(|source| StateError::Encode {
            id: id.clone(),
            source,
        })?;
        self.events
            .insert(key, bytes)
            .map_err(|e| self.storage(e, format!("append event to build {id}")))?;
        self.commit(&mut guard)
    }

    /// A build's events in the order they were appended.
    pub fn events(&self, id: &BuildId) -> Result<Vec<Event>, StateError> {
        let mut events = Vec::new();
        for entry in self.events.scan_prefix(event_prefix(id)) {
            let (key, bytes) =
                entry.map_err(|e| self.storage(e, format!("read events of {id}")))?;
            events.push(self.decode(&String::from_utf8_lossy(&key), &bytes)?);
        }
        Ok(events)
    }

    /// Removes a build and its events (pruning). Returns whether it existed.
    ///
    /// Caveats: does not touch the cloud nor the build's key file; the caller deletes those first.
    pub fn delete_build(&self, id: &BuildId) -> Result<bool, StateError> {
        let mut guard = self.lock_writes();
        let mut batch = sled::Batch::default();
        for entry in self.events.scan_prefix(event_prefix(id)).keys() {
            batch.remove(entry.map_err(|e| self.storage(e, format!("read events of {id}")))?);
        }
        self.events
            .apply_batch(batch)
            .map_err(|e| self.storage(e, format!("delete events of {id}")))?;
        let existed = self
            .builds
            .remove(id.as_str())
            .map_err(|e| self.storage(e, format!("delete build {id}")))?
            .is_some();
        self.commit(&mut guard)?;
        Ok(existed)
    }

    /// Makes every write so far durable: bumps the commit counter, flushes sled, then records the
    /// counter in the journal file (see the `journal` module).
    fn commit(&self, last: &mut MutexGuard<'_, u64>) -> Result<(), StateError> {
        let next = **last + 1;
        self.meta
            .insert(COMMIT_SEQ_KEY, &next.to_be_bytes())
            .map_err(|e| self.storage(e, "write the commit counter".into()))?;
        self.db
            .flush()
            .map_err(|e| self.storage(e, "flush to disk".into()))?;
        **last = next;
        self.journal
            .record(next)
            .map_err(|source| StateError::Journal {
                path: self.path.clone(),
                source,
            })
    }

    /// The number of the last committed write: changes whenever anything was written, so a
    /// publisher of the state can tell whether it has news.
    pub fn commit_seq(&self) -> u64 {
        *self.lock_writes()
    }

    fn lock_writes(&self) -> MutexGuard<'_, u64> {
        // A panic elsewhere while holding the guard cannot leave sled half-written (each write is one
        // insert), so a poisoned guard is safe to reuse.
        self.write_guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(bytes).map_err(|source| StateError::CorruptRecord {
            path: self.path.clone(),
            key: key.to_string(),
            source,
        })
    }

    fn storage(&self, error: sled::Error, operation: String) -> StateError {
        damaged_or_storage(&self.path, error, &operation)
    }
}

/// The commit counter stored in sled (0 for a new database).
fn read_commit_seq(path: &Path, meta: &sled::Tree) -> Result<u64, StateError> {
    let stored = meta
        .get(COMMIT_SEQ_KEY)
        .map_err(|e| damaged_or_storage(path, e, "read the commit counter"))?;
    match stored {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StateError::Damaged {
                path: path.to_path_buf(),
                detail: "the commit counter in the database is malformed".into(),
            })?;
            Ok(u64::from_be_bytes(array))
        }
    }
}

fn event_prefix(id: &BuildId) -> Vec<u8> {
    let mut key = id.as_str().as_bytes().to_vec();
    key.push(b'/');
    key
}

fn encode<P: Serialize>(record: &BuildRecord<P>) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(record).map_err(|source| StateError::Encode {
        id: record.id.clone(),
        source,
    })
}

/// `bakerd <subcommand>` from argv, for the lock file. Only the subcommand word: other arguments may
/// carry secrets.
fn current_command() -> String {
    let sub = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| {
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    match sub {
        Some(sub) => format!("bakerd {sub}"),
        None => "bakerd".to_string(),
    }
}

/// Creates `path` (and parents) and makes it 0700, tightening a looser existing mode.
fn create_private_dir(path: &Path) -> Result<(), StateError> {
    fs::create_dir_all(path).map_err(|source| StateError::CreateDir {
        path: path.to_path_buf(),
        source,
    })?;
    let set = |mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    let mode = fs::metadata(path)
        .map_err(|source| StateError::Permissions {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o777 != 0o700 {
        set(0o700).map_err(|source| StateError::Permissions {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Opens sled, turning its errors and panics on damaged files into [`StateError::Damaged`].
fn open_sled(path: &Path) -> Result<sled::Db, StateError> {
    let db_path = path.join(DB_DIR);
    let config = sled::Config::new().path(&db_path);
    // sled 0.34 can panic on some corrupted files instead of returning an error.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(damaged_or_storage(path, e, "open the database")),
        Err(panic) => Err(StateError::Damaged {
            path: path.to_path_buf(),
            detail: format!(
                "the database in {} cannot be read: {}",
                db_path.display(),
                panic_text(&panic)
            ),
        }),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "sled panicked".to_string())
}

/// Corruption, an unreadable format and truncated files are damage the user must act on; other
/// errors (permissions, disk full, …) are plain storage failures with their own cause.
fn damaged_or_storage(path: &Path, error: sled::Error, operation: &str) -> StateError {
    use std::io::ErrorKind;
    let damaged = match &error {
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_) => true,
        sled::Error::Io(io) => {
            matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData)
        }
        _ => false,
    };
    if damaged {
        return StateError::Damaged {
            path: path.to_path_buf(),
            detail: format!("{operation}: {error}"),
        };
    }
    StateError::Storage {
        path: path.to_path_buf(),
        operation: operation.to_string(),
        source: error,
    }
}
