//! The reconciler: drives one build from its current phase to a terminal one.
//!
//! Guarantees: every cloud call that creates or changes something follows the write-ahead rule
//! ([`Reconciler::once`]): the intent (step name + deterministic ClientToken) is flushed to the
//! state store before the call and the result after it. A build killed at any moment is continued
//! by running the reconciler again on the same record: finished calls are not repeated, an
//! interrupted call is re-issued with the same ClientToken (ECS returns the same resource), and
//! actions without ClientToken are made idempotent by checking the cloud first.
//!
//! Assumptions: one reconciler per build at a time (the state directory lock ensures it).
//!
//! Caveats: every `.await` is a cancellation point; a provisioner that was interrupted runs
//! again from its start on resume (provisioners should be idempotent, as with any image builder).

use super::cloud::{Cloud, CloudError};
use super::crash;
use super::interrupt::{self, StopReason, StopWatch};
use super::output::Output;
use super::phase::Phase;
use super::state::{BuildId, Intent, Timestamp};
use super::store::{Build, Store, StoreError};
use crate::client::timings::{Timings, TIMINGS_FILE};
use crate::spec::Spec;
use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

/// Why a step of a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] super::keys::KeyError),
    #[error("{0}")]
    Ssh(String),
    #[error("provisioner {index} ({kind}) failed: {message}")]
    Provisioner {
        index: usize,
        kind: &'static str,
        message: String,
    },
    #[error(transparent)]
    Verify(Box<super::verify::VerifyError>),
    #[error(transparent)]
    Remote(Box<super::remote::RemoteError>),
    #[error("cannot read {what} {path}: {source}")]
    ReadLocal {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "instance {instance} has {found} data disk(s), the spec lists {listed} under \
         `instance.data_disks`: the image would not carry the disks asked for"
    )]
    DataDiskCount {
        instance: String,
        found: usize,
        listed: usize,
    },
    #[error("build {build} has no snapshot of data disk {device} recorded")]
    DataSnapshotMissing { build: String, device: String },
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// True when trying the same step again may succeed: transient cloud answers (throttling,
    /// 5xx, no answer), waits that timed out or ended in a failed snapshot/image, SSH trouble.
    /// A request the cloud refused (4xx) or a failing provisioner fails the same way again.
    pub fn is_retryable(&self) -> bool {
        use crate::client::ClientError;
        match self {
            BuildError::Cloud(CloudError::Api(ClientError::Api(api))) => {
                api.http_status >= 500 || api.code.contains("Throttling")
            }
            BuildError::Cloud(CloudError::Api(
                ClientError::Transport { .. }
                | ClientError::OutcomeUnknown { .. }
                | ClientError::Unreachable { .. },
            )) => true,
            BuildError::Cloud(CloudError::Wait(_)) | BuildError::Ssh(_) => true,
            _ => false,
        }
    }
}

/// Everything one build needs while it runs.
pub struct Reconciler {
    /// The build's persisted record; saved after every change that matters.
    pub rec: Build,
    /// The frozen spec (parsed back from the record).
    pub spec: Spec,
    /// Where the record is persisted.
    pub store: Store,
    /// The ECS API, bound to the spec's region.
    pub cloud: Cloud,
    /// Progress lines / JSON events.
    pub out: Output,
    /// Directory of the build's local private key file.
    pub keys_dir: PathBuf,
    /// Fires when the build must stop at the next safe point (signal, `cancel` request).
    stop: Option<StopWatch>,
}

impl Reconciler {
    /// Assembles a reconciler for `rec`.
    pub fn new(
        rec: Build,
        spec: Spec,
        store: Store,
        cloud: Cloud,
        out: Output,
        keys_dir: PathBuf,
    ) -> Self {
        let timings = Timings::load(store.path().join(TIMINGS_FILE));
        let cloud = cloud.with_timings(std::sync::Arc::new(timings));
        Reconciler {
            rec,
            spec,
            store,
            cloud,
            out,
            keys_dir,
            stop: None,
        }
    }

    /// Makes [`run`](Self::run) stop at the next safe point once `stop` fires.
    pub fn with_stop(mut self, stop: StopWatch) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The build's id.
    pub fn build_id(&self) -> BuildId {
        self.rec.id.clone()
    }

    /// Appends an event to the build's history (durable on return).
    pub fn event(&self, kind: &str, message: impl Into<String>) -> Result<(), StoreError> {
        self.store.event(&self.rec.id, kind, message)
    }

    /// The id of resource `role`, if the build has one.
    pub fn resource(&self, role: &str) -> Option<&str> {
        self.rec.resources.get(role).map(String::as_str)
    }

    /// Records resource `role` (durable on return).
    pub fn set_resource(&mut self, role: &str, id: &str) -> Result<(), StoreError> {
        if self.resource(role) != Some(id) {
            self.rec.resources.insert(role.to_string(), id.to_string());
            self.save()?;
            self.event("resource", format!("{role} {id}"))?;
        }
        Ok(())
    }

    /// The deterministic ClientToken of `step`: stable across resumes, unique per build,
    /// attempt and step, ASCII and at most 64 characters as ECS requires.
    pub fn client_token(&self, step: &str) -> String {
        let token = format!("bakerd-{}-a{}-{}", self.rec.id, self.rec.attempt, step);
        token.chars().take(64).collect()
    }

    /// Runs steps until the build is terminal, or until a stop is asked (see
    /// [`with_stop`](Self::with_stop)). Returns the phase reached: a failed step has already been
    /// recorded (and cleaned up according to `on_failure`); a non-terminal phase means the build
    /// was interrupted, recorded as such, and `resume` continues it.
    ///
    /// Caveats: a stop abandons the step in flight at its current `.await`; the write-ahead rule
    /// makes that as safe as a crash there, and the state is already flushed.
    pub async fn run(mut self) -> Result<Phase, BuildError> {
        if self.rec.interrupted_at.take().is_some() {
            self.save()?;
        }
        while !self.rec.phase.is_terminal() {
            let phase = self.rec.phase.clone();
            if let Some(reason) = self.stop_requested() {
                self.interrupted(&phase, reason)?;
                break;
            }
            self.out.step_started(self.rec.id.as_str(), &phase);
            let started = Instant::now();
            let outcome = match self.stop.clone() {
                Some(mut stop) => tokio::select! {
                    result = self.step(&phase) => Ok(result),
                    reason = interrupt::stopped(&mut stop) => Err(reason),
                },
                None => Ok(self.step(&phase).await),
            };
            match outcome {
                Ok(Ok(())) => {
                    let next = self.next_phase(phase.clone());
                    self.transition(next, started)?
                }
                Ok(Err(err)) => self.fail(phase, err, started).await?,
                Err(reason) => {
                    self.interrupted(&phase, reason)?;
                    break;
                }
            }
        }
        Ok(self.rec.phase.clone())
    }

    /// The phase after `phase`'s step: the phase order, except that a `bakerd verify` record goes
    /// from its prepared network straight to the image it checks.
    fn next_phase(&self, phase: Phase) -> Phase {
        match phase {
            Phase::Pending if self.verify_only() => Phase::ImageReady,
            other => other.next(),
        }
    }

    /// The stop asked so far, if any.
    fn stop_requested(&self) -> Option<StopReason> {
        self.stop.as_ref().and_then(|s| *s.borrow())
    }

    /// Records that the build stopped before the step starting at `phase` finished.
    fn interrupted(&mut self, phase: &Phase, reason: StopReason) -> Result<(), BuildError> {
        self.out.progress_done("");
        // The record on disk may be newer than ours only through our own saves; reload it so
        // nothing written by the abandoned step is lost.
        self.rec = self.store.load(&self.rec.id)?;
        self.rec.interrupted_at = Some(Timestamp::now());
        self.save()?;
        let message = format!(
            "interrupted at '{}' ({})",
            phase.step_description(),
            reason.describe()
        );
        self.event("interrupted", message.clone())?;
        self.out.interrupted(self.rec.id.as_str(), phase, &message);
        Ok(())
    }

    /// Persists the move to `next`, with an event carrying the step's duration.
    fn transition(&mut self, next: Phase, started: Instant) -> Result<(), BuildError> {
        let secs = started.elapsed().as_secs_f64();
        let name = next.name();
        self.rec.phase = next;
        crash::point(&format!("phase-{name}:before-flush"));
        self.save()?;
        crash::point(&format!("phase-{name}:after-flush"));
        self.event("phase", format!("reached {name} in {secs:.1}s"))?;
        self.out
            .step_done(self.rec.id.as_str(), &self.rec.phase, secs);
        Ok(())
    }

    /// Records a failed step, then cleans up if the spec says so.
    async fn fail(
        &mut self,
        at: Phase,
        err: BuildError,
        started: Instant,
    ) -> Result<(), BuildError> {
        let message = format!("{err}");
        // A failed verification whose image was deleted (`verify.on_failure: delete_image`) is
        // retried from the snapshot when the build instance is kept (`on_failure: keep`); with
        // `cleanup` the next attempt starts over anyway.
        let keep = self.spec.on_failure == crate::spec::OnFailure::Keep;
        let retry_at = match &err {
            BuildError::Verify(v) if v.image_deleted() && keep => Phase::InstanceStopped,
            _ => at.clone(),
        };
        self.rec.phase = retry_at.fail(message.clone());
        self.rec.failure_retryable = err.is_retryable();
        self.save()?;
        self.event(
            "error",
            format!("{} failed: {message}", at.step_description()),
        )?;
        self.out.step_failed(
            self.rec.id.as_str(),
            &at,
            started.elapsed().as_secs_f64(),
            &message,
        );
        if self.spec.on_failure == crate::spec::OnFailure::Cleanup {
            self.out
                .note("cleaning up after failure (on_failure: cleanup)");
            // Once the image is Available it is the build's result: a failure in the final
            // cleanup must not delete it (and start a whole new attempt); `resume` retries
            // only the cleanup.
            let image_done = matches!(at, Phase::ImageReady | Phase::Verified | Phase::CleanedUp);
            let cleaned = match &err {
                BuildError::Verify(_) => self.cleanup_after_verify_failure().await,
                _ => self.cleanup_temporary(!image_done).await,
            };
            if let Err(cleanup_err) = cleaned {
                let message = format!("cleanup after failure incomplete: {cleanup_err}");
                self.out.note(&message);
                self.event("error", message)?;
            }
        }
        Ok(())
    }

    /// Writes the record and flushes it to disk.
    pub fn save(&mut self) -> Result<(), StoreError> {
        self.rec = self.store.put(&self.rec)?;
        Ok(())
    }

    /// Runs the step that starts at `phase`.
    async fn step(&mut self, phase: &Phase) -> Result<(), BuildError> {
        match phase {
            Phase::Pending => self.prepare().await,
            Phase::Prepared => self.create_instance().await,
            Phase::InstanceCreated => self.start_and_connect().await,
            Phase::InstanceRunning => self.provision().await,
            Phase::Provisioned => self.stop_instance().await,
            Phase::InstanceStopped => self.snapshot().await,
            Phase::SnapshotReady => self.create_image().await,
            Phase::ImageReady => self.verify_and_publish().await,
            Phase::Verified => self.cleanup_temporary(false).await,
            Phase::CleanedUp => Ok(()),
            Phase::Succeeded | Phase::Failed { .. } | Phase::Cancelled => Ok(()),
        }
    }

    /// Makes one cloud call under the write-ahead rule and returns its result.
    ///
    /// Guarantees: the intent for `step` (with its deterministic token) is durable before `call`
    /// runs; the result is durable before this returns. If a result is already recorded the call
    /// is not made again. If only the intent is recorded (killed mid-call), `call` runs again
    /// with the same token.
    pub async fn once<F, Fut>(&mut self, step: &str, call: F) -> Result<String, BuildError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<String, CloudError>>,
    {
        if let Some(result) = self.rec.results.get(step).and_then(|v| v.as_str()) {
            return Ok(result.to_string());
        }
        let token = match self.rec.intents.get(step) {
            Some(intent) => intent.client_token.clone(),
            None => {
                let intent = Intent {
                    client_token: self.client_token(step),
                    started_at: Timestamp::now(),
                };
                crash::point(&format!("{step}:before-intent"));
                self.rec.intents.insert(step.to_string(), intent.clone());
                self.save()?;
                crash::point(&format!("{step}:after-intent"));
                intent.client_token
            }
        };
        let result = call(token).await?;
        crash::point(&format!("{step}:after-call"));
        self.rec
            .results
            .insert(step.to_string(), serde_json::Value::String(result.clone()));
        self.save()?;
        crash::point(&format!("{step}:after-result"));
        Ok(result)
    }

    /// Like [`once`](Self::once), and also records the result as resource `role`.
    pub async fn create<F, Fut>(
        &mut self,
        step: &str,
        role: &str,
        call: F,
    ) -> Result<String, BuildError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<String, CloudError>>,
    {
        let id = self.once(step, call).await?;
        self.set_resource(role, &id)?;
        Ok(id)
    }
}

/// Local key and provisioner checkpoints.
impl Reconciler {
    /// Creates (or, on resume, reloads) the build's private key and returns its public half.
    pub fn ensure_local_key(&mut self) -> Result<String, BuildError> {
        let keys = super::keys::KeyStore::new(self.keys_dir.clone());
        Ok(keys.load_or_create(&self.rec.id)?.public_openssh())
    }

    /// Removes the build's private key file (cleanup).
    pub fn remove_local_key(&mut self) -> Result<(), BuildError> {
        super::keys::KeyStore::new(self.keys_dir.clone()).delete(&self.rec.id)?;
        Ok(())
    }

    /// True if provisioner `index` is recorded as finished.
    pub fn provisioner_finished(&self, index: usize) -> bool {
        self.rec
            .provisioners
            .get(&(index as u32))
            .is_some_and(|c| c.finished_at.is_some())
    }

    /// Records that provisioner `index` starts (durable before it runs).
    pub fn provisioner_started(&mut self, index: usize) -> Result<(), BuildError> {
        let checkpoint = super::state::ProvisionerCheckpoint {
            started_at: Timestamp::now(),
            finished_at: None,
        };
        self.rec.provisioners.insert(index as u32, checkpoint);
        self.save()?;
        Ok(())
    }

    /// Records that provisioner `index` finished (durable before the next one starts).
    pub fn provisioner_done(&mut self, index: usize) -> Result<(), BuildError> {
        if let Some(c) = self.rec.provisioners.get_mut(&(index as u32)) {
            c.finished_at = Some(Timestamp::now());
        }
        self.save()?;
        self.event("provisioner", format!("provisioner {index} finished"))?;
        Ok(())
    }

    /// `bakerd cancel`: deletes everything the build created (outputs included) and marks it
    /// cancelled. Idempotent: a cancel interrupted at any moment can be run again.
    pub async fn cancel(&mut self) -> Result<(), BuildError> {
        self.cleanup_temporary(true).await?;
        self.rec.phase = Phase::Cancelled;
        self.save()?;
        self.event("phase", "cancelled; resources deleted")?;
        Ok(())
    }
}
