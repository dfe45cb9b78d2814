//! Named failpoints at every dangerous moment of a build, for the crash tests.
//!
//! Compiled in only with the `failpoints` feature; without it [`point`] is an empty inline function.
//! With it, two environment variables drive the points (read once by [`setup`]):
//!
//! - `BAKERD_CRASH_AT=<name>[#<n>]`: the process SIGKILLs itself the `n`th time (default 1st) it
//!   reaches the point `name` — a real, uncatchable kill at an exact moment.
//! - `BAKERD_FAILPOINT_LOG=<file>`: every point reached is appended to that file, so a harness can
//!   enumerate the points of a build and then kill at each.
//!
//! Point names are `<step>:<moment>`, e.g. `run-instance:after-call` (see `reconcile::Reconciler::once`).
//! Besides the write-ahead points of `once` and the phase flushes (`phase-<name>:before-flush`,
//! `:after-flush`), there are points between provisioners (`provisioner-<i>:started`, `:finished`),
//! around the waits (`wait-running:before`, `ssh:connected`, `stop-instance:after-call`) and one
//! per poll inside the snapshot and image waits (`wait-snapshot:poll`, `wait-image:poll`).

#[cfg(feature = "failpoints")]
mod imp {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    struct Config {
        crash_at: Option<(String, usize)>,
        log: Option<std::path::PathBuf>,
        hits: AtomicUsize,
    }

    static CONFIG: OnceLock<Config> = OnceLock::new();

    pub fn setup() {
        let crash_at = std::env::var("BAKERD_CRASH_AT")
            .ok()
            .map(|v| match v.split_once('#') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (v, 1),
            });
        let log = std::env::var_os("BAKERD_FAILPOINT_LOG").map(Into::into);
        let _ = CONFIG.set(Config {
            crash_at,
            log,
            hits: AtomicUsize::new(0),
        });
    }

    pub fn point(name: &str) {
        let Some(cfg) = CONFIG.get() else { return };
        if let Some(path) = &cfg.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{name}");
            }
        }
        if let Some((target, n)) = &cfg.crash_at {
            if target == name && cfg.hits.fetch_add(1, Ordering::SeqCst) + 1 == *n {
                // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
        }
    }
}

/// Reads the failpoint configuration from the environment (no-op without the feature).
pub fn setup() {
    #[cfg(feature = "failpoints")]
    imp::setup();
}

/// Marks a dangerous moment named `name`.
#[inline(always)]
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    imp::point(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
