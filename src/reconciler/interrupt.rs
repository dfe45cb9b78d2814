//! Stopping builds on request: SIGINT/SIGTERM for every build of the process, `bakerd cancel`
//! from another terminal for one build.
//!
//! Why: a build runs for minutes and holds billed resources; Ctrl-C or a CI runner's SIGTERM must
//! leave it resumable (or cleaned up) and say how to go on, instead of dying silently.
//!
//! Guarantees: the first signal asks every registered build to stop at its next safe point (the
//! reconciler abandons the step in flight at an `.await`, where the write-ahead rule already keeps
//! the state consistent); a second signal ends the process at once with exit code 130, after
//! saying which builds were left and how to resume them.
//! Assumptions: one [`Stops`] per process, created inside the tokio runtime.

use super::state::BuildId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Exit code of a second signal: the shell's convention for "killed by SIGINT".
pub const SECOND_SIGNAL_EXIT: i32 = 130;

/// Why a build was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM (the name is kept for messages and events).
    Signal(&'static str),
    /// `bakerd cancel <id>` from another process: stop and delete what the build created.
    CancelRequested,
}

impl StopReason {
    /// Short text for messages and events.
    pub fn describe(self) -> String {
        match self {
            StopReason::Signal(name) => format!("{name} received"),
            StopReason::CancelRequested => "`bakerd cancel` requested".to_string(),
        }
    }
}

/// The receiving side a reconciler watches: `None` until a stop is asked.
pub type StopWatch = watch::Receiver<Option<StopReason>>;

/// Waits until a stop is asked (forever if the sender is gone without asking).
pub async fn stopped(watch: &mut StopWatch) -> StopReason {
    loop {
        if let Some(reason) = *watch.borrow_and_update() {
            return reason;
        }
        if watch.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The builds of this process that can be asked to stop.
#[derive(Clone, Default)]
pub struct Stops {
    /// One sender per running build.
    builds: Arc<Mutex<BTreeMap<BuildId, watch::Sender<Option<StopReason>>>>>,
    /// The first signal, once received: builds registered later stop at once.
    signalled: Arc<Mutex<Option<StopReason>>>,
}

impl Stops {
    /// A registry with SIGINT and SIGTERM handlers installed (see the module docs).
    pub fn with_signal_handlers() -> Stops {
        let stops = Stops::default();
        for (kind, name) in [
            (tokio::signal::unix::SignalKind::interrupt(), "SIGINT"),
            (tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
        ] {
            match tokio::signal::unix::signal(kind) {
                Ok(stream) => {
                    tokio::spawn(stops.clone().listen(stream, name));
                }
                Err(e) => tracing::warn!("cannot listen for {name}: {e}"),
            }
        }
        stops
    }

    async fn listen(self, mut stream: tokio::signal::unix::Signal, name: &'static str) {
        while stream.recv().await.is_some() {
            self.signal(name);
        }
    }

    /// Handles one signal: the first stops every build, the next ends the process.
    fn signal(&self, name: &'static str) {
        let first = {
            let mut signalled = self.signalled.lock().unwrap_or_else(|e| e.into_inner());
            let first = signalled.is_none();
            signalled.get_or_insert(StopReason::Signal(name));
            first
        };
        if !first {
            self.exit_now(name);
        }
        eprintln!(
            "bakerd: {name} received: stopping at the next safe point (send it again to exit at once)"
        );
        for sender in self.lock().values() {
            sender.send_if_modified(|current| {
                current.get_or_insert(StopReason::Signal(name));
                true
            });
        }
    }

    fn exit_now(&self, name: &str) -> ! {
        let ids: Vec<String> = self.lock().keys().map(|id| id.to_string()).collect();
        eprintln!("bakerd: second {name}: exiting now; the state on disk is consistent");
        for id in ids {
            eprintln!("  build {id}: `bakerd resume {id}` continues it, `bakerd cancel {id}` deletes what it created");
        }
        std::process::exit(SECOND_SIGNAL_EXIT);
    }

    /// Registers a build; the watch fires when it is asked to stop.
    pub fn register(&self, id: &BuildId) -> StopWatch {
        let initial = *self.signalled.lock().unwrap_or_else(|e| e.into_inner());
        let (sender, receiver) = watch::channel(initial);
        self.lock().insert(id.clone(), sender);
        receiver
    }

    /// Forgets a build that ended.
    pub fn unregister(&self, id: &BuildId) {
        self.lock().remove(id);
    }

    /// Asks one build to stop and clean up; false if this process does not run it.
    pub fn request_cancel(&self, id: &BuildId) -> bool {
        match self.lock().get(id) {
            Some(sender) => {
                sender.send_replace(Some(StopReason::CancelRequested));
                true
            }
            None => false,
        }
    }

    /// The builds currently registered.
    pub fn running(&self) -> Vec<BuildId> {
        self.lock().keys().cloned().collect()
    }

    /// The signal received, if any.
    pub fn signalled(&self) -> Option<StopReason> {
        *self.signalled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<BuildId, watch::Sender<Option<StopReason>>>> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }
}
