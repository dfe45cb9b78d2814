//! Reading a state directory while another bakerd runs builds in it.
//!
//! Why: sled admits one process per database, and a build holds the state directory for 10–30
//! minutes. So the process holding it publishes what it knows — every build record and its
//! events — as `snapshot.json` next to the database, and `status`, `show` and `gc` (dry run)
//! read that file when they find the directory locked. `bakerd cancel` of a running build drops
//! a request file in `requests/`, which the running process picks up.
//!
//! Guarantees: the snapshot is written to a temporary file (mode 0600) and renamed over the old
//! one, so a reader sees one whole snapshot, never a torn one; each build record in it is one
//! record as it was stored. Like the database, it never holds secrets.
//! Caveats: it lags the database by up to [`PUBLISH_EVERY`]; the database stays the truth.

use super::interrupt::Stops;
use super::state::{BuildId, Event, StateDir, StateError, Timestamp};
use super::store::{Build, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The published snapshot's file name, in the state directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// Where `bakerd cancel` leaves requests for the process running a build.
pub const REQUESTS_DIR: &str = "requests";
/// How often the running process republishes (when something changed) and reads requests.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Version of the snapshot's layout.
const SNAPSHOT_VERSION: u32 = 1;

/// Failures of publishing or reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the state dir to publish it: {0}")]
    Read(#[from] StateError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the published state: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(
        "state dir {} is locked by pid {pid} ({command}), which has not published its state \
         ({reason}); retry in a moment",
        dir.display()
    )]
    Unavailable {
        dir: PathBuf,
        pid: u32,
        command: String,
        reason: String,
    },
}

/// What a running bakerd publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version, for readers of other versions.
    pub version: u32,
    /// The publishing process.
    pub pid: u32,
    /// When it was written.
    pub written_at: Timestamp,
    /// The builds the publishing process is driving now.
    pub running: Vec<BuildId>,
    /// Every build record, oldest first.
    pub builds: Vec<Build>,
    /// Each build's events, by build id.
    pub events: BTreeMap<BuildId, Vec<Event>>,
}

impl Snapshot {
    /// Reads the state of `store` as it is now.
    pub fn capture(store: &Store, running: Vec<BuildId>) -> Result<Snapshot, SnapshotError> {
        let builds = store.list()?;
        let mut events = BTreeMap::new();
        for b in &builds {
            events.insert(b.id.clone(), store.events(&b.id)?);
        }
        Ok(Snapshot {
            version: SNAPSHOT_VERSION,
            pid: std::process::id(),
            written_at: Timestamp::now(),
            running,
            builds,
            events,
        })
    }

    /// Writes the snapshot atomically into `dir` (see the module docs).
    pub fn publish(&self, dir: &Path) -> Result<(), SnapshotError> {
        let path = dir.join(SNAPSHOT_FILE);
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(SnapshotError::Encode)?;
        let write = |p: &Path| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)?;
            f.write_all(&bytes)?;
            f.sync_data()
        };
        write(&tmp)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| SnapshotError::Write { path, source })
    }

    /// Reads the snapshot of the process `holder` that locks `dir`.
    fn read(dir: &Path, pid: u32, command: &str) -> Result<Snapshot, SnapshotError> {
        let unavailable = |reason: String| SnapshotError::Unavailable {
            dir: dir.to_path_buf(),
            pid,
            command: command.to_string(),
            reason,
        };
        let bytes = std::fs::read(dir.join(SNAPSHOT_FILE))
            .map_err(|e| unavailable(format!("{SNAPSHOT_FILE}: {e}")))?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("{SNAPSHOT_FILE} unreadable: {e}")))?;
        if snapshot.pid != pid {
            return Err(unavailable(format!(
                "{SNAPSHOT_FILE} is from an earlier process, pid {}",
                snapshot.pid
            )));
        }
        Ok(snapshot)
    }
}

/// A state directory opened for reading: the database itself, or the running process's snapshot.
pub enum StateView {
    /// This process holds the directory.
    Live(Store),
    /// Another process holds it; this is what it published.
    Published { snapshot: Snapshot, command: String },
}

impl StateView {
    /// Opens `dir` for reading; when another bakerd holds it, reads its published snapshot.
    pub fn open(dir: &Path, command: &str) -> Result<StateView, SnapshotError> {
        match StateDir::open_as(dir, command) {
            Ok(state) => Ok(StateView::Live(Store::new(state))),
            Err(StateError::Locked { pid, command, .. }) => Ok(StateView::Published {
                snapshot: Snapshot::read(dir, pid, &command)?,
                command,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Every build, oldest first.
    pub fn list(&self) -> Result<Vec<Build>, StateError> {
        match self {
            StateView::Live(store) => store.list(),
            StateView::Published { snapshot, .. } => Ok(snapshot.builds.clone()),
        }
    }

    /// One build; `NotFound` names the state directory.
    pub fn load(&self, dir: &Path, id: &BuildId) -> Result<Build, StateError> {
        match self {
            StateView::Live(store) => store.load(id),
            StateView::Published { snapshot, .. } => snapshot
                .builds
                .iter()
                .find(|b| &b.id == id)
                .cloned()
                .ok_or_else(|| StateError::NotFound {
                    path: dir.to_path_buf(),
                    id: id.clone(),
                }),
        }
    }

    /// One build's events.
    pub fn events(&self, id: &BuildId) -> Result<Vec<Event>, StateError> {
        match self {
            StateView::Live(store) => store.events(id),
            StateView::Published { snapshot, .. } => {
                Ok(snapshot.events.get(id).cloned().unwrap_or_default())
            }
        }
    }

    /// Whether the build is being driven right now, and by whom, for display.
    pub fn activity(&self, build: &Build) -> Activity {
        match self {
            StateView::Published { snapshot, command } if snapshot.running.contains(&build.id) => {
                Activity::Running {
                    pid: snapshot.pid,
                    command: command.clone(),
                }
            }
            _ if build.phase.is_terminal() => Activity::Ended,
            _ if build.interrupted_at.is_some() => Activity::Interrupted,
            _ => Activity::Stopped,
        }
    }

    /// A note for the reader when the view is a snapshot.
    pub fn source_note(&self) -> Option<String> {
        match self {
            StateView::Live(_) => None,
            StateView::Published { snapshot, command } => Some(format!(
                "(state dir in use by pid {} ({command}); read from its snapshot of {})",
                snapshot.pid, snapshot.written_at
            )),
        }
    }
}

/// What is happening to a build right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A live bakerd process is driving it.
    Running { pid: u32, command: String },
    /// Stopped at a safe point by a signal or a cancel request; `resume` continues it.
    Interrupted,
    /// Not terminal and nobody drives it: the process that ran it died (killed, crashed).
    Stopped,
    /// Terminal.
    Ended,
}

impl Activity {
    /// Suffix shown after the phase in `status` and `show` (empty for ended builds).
    pub fn label(&self) -> &'static str {
        match self {
            Activity::Running { .. } => "running",
            Activity::Interrupted => "interrupted",
            Activity::Stopped => "stopped",
            Activity::Ended => "",
        }
    }
}

/// Asks the process holding `dir` to cancel build `id` (see [`take_cancel_requests`]).
pub fn request_cancel(dir: &Path, id: &BuildId) -> std::io::Result<()> {
    let requests = dir.join(REQUESTS_DIR);
    std::fs::create_dir_all(&requests)?;
    let tmp = requests.join(format!(".cancel-{id}.tmp"));
    std::fs::write(&tmp, b"cancel\n")?;
    std::fs::rename(&tmp, requests.join(format!("cancel-{id}")))
}

/// The cancel requests waiting in `dir`; each is removed as it is read.
pub fn take_cancel_requests(dir: &Path) -> Vec<BuildId> {
    let Ok(entries) = std::fs::read_dir(dir.join(REQUESTS_DIR)) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(id) = name.strip_prefix("cancel-").and_then(BuildId::parse) {
            let _ = std::fs::remove_file(entry.path());
            ids.push(id);
        }
    }
    ids
}

/// Keeps the snapshot of a running process fresh and hands `cancel` requests to its builds.
pub struct Publisher {
    task: tokio::task::JoinHandle<()>,
    store: Store,
}

impl Publisher {
    /// Publishes now, then every [`PUBLISH_EVERY`] when something changed.
    pub fn spawn(store: Store, stops: Stops) -> Publisher {
        let looping = store.clone();
        let task = tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = (looping.commit_seq(), stops.running());
                if last.as_ref() != Some(&now) {
                    match Snapshot::capture(&looping, now.1.clone())
                        .and_then(|s| s.publish(looping.path()))
                    {
                        Ok(()) => last = Some(now),
                        Err(e) => tracing::warn!("state snapshot not published: {e}"),
                    }
                }
                for id in take_cancel_requests(looping.path()) {
                    stops.request_cancel(&id);
                }
                tokio::time::sleep(PUBLISH_EVERY).await;
            }
        });
        Publisher { task, store }
    }

    /// Stops publishing; the last snapshot shows every build as it ended, none running.
    pub fn finish(self) {
        self.task.abort();
        if let Err(e) =
            Snapshot::capture(&self.store, Vec::new()).and_then(|s| s.publish(self.store.path()))
        {
            tracing::warn!("state snapshot not published: {e}");
        }
    }
}
