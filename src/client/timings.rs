//! Typical durations of cloud transitions (a VPC becoming Available, an instance Running, …),
//! learned from earlier waits, so that a wait's first poll happens when the transition is likely
//! done instead of polling from the first millisecond.
//!
//! Why learned: how long a transition takes depends on the cloud (real ECS, or a simulator with
//! its `fast` or `realistic` profile), the region and the instance type. Each finished wait
//! narrows the transition's duration to an interval (after the last poll that saw it pending, at
//! or before the poll that saw it done), and the estimate moves halfway towards that interval's
//! middle; a wait whose first poll already found it done moves the estimate a little earlier, so
//! an estimate that is too late corrects itself.
//!
//! Guarantees: estimates are keyed by endpoint, region and transition, so one cloud's timings never
//! steer another's waits. The file is a cache: missing, unreadable or damaged means "no estimate",
//! never an error; it holds no secrets (durations only) and is written atomically, mode 0600.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Name of the file, in the state directory, that keeps the estimates between runs.
pub const TIMINGS_FILE: &str = "timings.json";

/// A wait that found its resource first pending, then done: `done` is the elapsed time at the
/// poll that saw it done, `last_pending` at the last poll before (none: the first poll saw it
/// done).
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pub last_pending: Option<Duration>,
    pub done: Duration,
}

impl Observed {
    /// The duration this wait suggests.
    fn sample(self) -> Duration {
        match self.last_pending {
            Some(pending) => (pending + self.done) / 2,
            // Done at the first poll: it may have been done well before; probe earlier, so an
            // estimate that is far too late comes down within a few waits.
            None => self.done.mul_f64(0.8),
        }
    }
}

/// Learned estimates, in memory and (optionally) in a file.
#[derive(Debug, Default)]
pub struct Timings {
    /// Estimate in milliseconds per `<endpoint> <region> <transition>`.
    estimates: Mutex<BTreeMap<String, u64>>,
    /// Where to keep them between runs; `None`: this process only.
    path: Option<PathBuf>,
}

impl Timings {
    /// Estimates kept in memory only.
    pub fn in_memory() -> Self {
        Timings::default()
    }

    /// Estimates read from (and saved to) `path`; a missing or damaged file starts empty.
    pub fn load(path: PathBuf) -> Self {
        let estimates = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Timings {
            estimates: Mutex::new(estimates),
            path: Some(path),
        }
    }

    /// The learned duration of `key`, if any.
    pub fn typical(&self, key: &str) -> Option<Duration> {
        self.lock().get(key).map(|ms| Duration::from_millis(*ms))
    }

    /// Moves `key`'s estimate halfway towards what a finished wait observed, and saves.
    pub fn learn(&self, key: &str, observed: Observed) {
        let sample = observed.sample().as_millis() as u64;
        let snapshot = {
            let mut estimates = self.lock();
            let next = match estimates.get(key) {
                Some(old) => (old + sample) / 2,
                None => sample,
            };
            estimates.insert(key.to_string(), next);
            estimates.clone()
        };
        if let Some(path) = &self.path {
            if let Err(e) = save(path, &snapshot) {
                tracing::debug!(path = %path.display(), error = %e, "timings not saved");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.estimates.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes the estimates atomically (a unique temporary file, then rename), mode 0600.
fn save(path: &std::path::Path, estimates: &BTreeMap<String, u64>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec_pretty(estimates).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Documented or commonly observed durations on Alibaba Cloud, used until a transition has been
/// seen once: `vpc`/`vswitch` become Available within seconds (docs: CreateVpc/CreateVSwitch are
/// asynchronous, Pending → Available), an instance is Running ~20-30 s after RunInstances and
/// Stopped ~10 s after StopInstance (Packer's alicloud builder waits with the same orders of
/// magnitude). Snapshots and images report progress, which the estimator follows instead.
pub fn documented(transition: &str) -> Option<Duration> {
    let secs = match transition {
        "VPC Available" | "vSwitch Available" => 2,
        "instance Running" => 20,
        "instance Stopped" => 8,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(pending: Option<u64>, done: u64) -> Observed {
        Observed {
            last_pending: pending.map(Duration::from_millis),
            done: Duration::from_millis(done),
        }
    }

    #[test]
    fn estimates_converge_on_a_steady_duration_from_either_side() {
        // A transition that takes 600 ms, polled at the estimate, then every 100 ms.
        for start in [50u64, 3_000] {
            let timings = Timings::in_memory();
            timings.learn("t", observed(None, start));
            for _ in 0..20 {
                let first = timings.typical("t").unwrap().as_millis() as u64;
                let seen = if first >= 600 {
                    observed(None, first)
                } else {
                    let done = first + (600 - first).div_ceil(100) * 100;
                    observed(Some(done - 100), done)
                };
                timings.learn("t", seen);
            }
            let settled = timings.typical("t").unwrap().as_millis() as u64;
            assert!((520..=720).contains(&settled), "from {start}: {settled} ms");
        }
    }

    #[test]
    fn estimates_survive_in_the_file_and_a_damaged_file_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TIMINGS_FILE);
        Timings::load(path.clone()).learn("k", observed(Some(400), 600));
        assert_eq!(
            Timings::load(path.clone()).typical("k"),
            Some(Duration::from_millis(500))
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(Timings::load(path).typical("k"), None);
    }
}
