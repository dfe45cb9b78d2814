//! The reconciler's view of the state directory: build records typed with [`Phase`], plus the
//! build's event log.

use super::phase::Phase;
use super::state::{BuildId, BuildRecord, Event, StateDir, StateError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the store are the state directory's errors.
pub type StoreError = StateError;

/// A build record as the reconciler uses it.
pub type Build = BuildRecord<Phase>;

/// Shared handle on the open (and locked) state directory.
#[derive(Clone)]
pub struct Store {
    dir: Arc<StateDir>,
}

impl Store {
    /// Wraps an open state directory.
    pub fn new(dir: StateDir) -> Self {
        Store { dir: Arc::new(dir) }
    }

    /// Where private keys of running builds live.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.keys_dir()
    }

    /// The state directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes whenever anything is written (see [`StateDir::commit_seq`]).
    pub fn commit_seq(&self) -> u64 {
        self.dir.commit_seq()
    }

    /// Records a new build (phase `Pending`) from a frozen spec.
    pub fn create(
        &self,
        frozen_spec: serde_json::Value,
        spec_hash: String,
        spec_path: &Path,
    ) -> Result<Build, StoreError> {
        // One write: a kill between two writes left a record whose hash `resume` refused.
        self.dir
            .create_build_with(frozen_spec, Phase::Pending, |b: &mut Build| {
                b.spec_hash = spec_hash;
                b.spec_path = spec_path.display().to_string();
            })
    }

    /// Loads one build.
    pub fn load(&self, id: &BuildId) -> Result<Build, StoreError> {
        self.dir.load_build(id)
    }

    /// Replaces the stored record with `rec` (durable on return).
    pub fn put(&self, rec: &Build) -> Result<Build, StoreError> {
        let rec = rec.clone();
        self.dir
            .update_build(&rec.id.clone(), move |b: &mut Build| *b = rec)
    }

    /// Every build, oldest first.
    pub fn list(&self) -> Result<Vec<Build>, StoreError> {
        self.dir.list_builds()
    }

    /// Appends to a build's history.
    pub fn event(
        &self,
        id: &BuildId,
        kind: &str,
        message: impl Into<String>,
    ) -> Result<(), StoreError> {
        self.dir.append_event(id, &Event::new(kind, message))
    }

    /// A build's history.
    pub fn events(&self, id: &BuildId) -> Result<Vec<Event>, StoreError> {
        self.dir.events(id)
    }

    /// Forgets a build (pruning).
    pub fn delete(&self, id: &BuildId) -> Result<bool, StoreError> {
        self.dir.delete_build(id)
    }
}

/// The build's creation time in Unix seconds: what `{{timestamp}}` means for it, in the image
/// name and description, for the whole build (also across resumes).
pub fn created_secs(rec: &Build) -> u64 {
    u64::try_from(rec.created_at.0 / 1000).unwrap_or(0)
}
