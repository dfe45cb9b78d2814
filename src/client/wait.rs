//! Waiters: poll an asynchronous resource until it is ready, no faster than needed and no slower.
//!
//! The interval adapts to what the cloud reports ([`Estimator`]): a `RemainTime`, or the rate at
//! which `Progress` has risen since the first poll, gives an estimate of the time left, and the next
//! poll happens when the resource should be ready. With no estimate, the interval grows with the
//! elapsed time (half of it), so a wait of T seconds costs O(log T) polls. Every interval stays
//! between a floor and a cap.
//!
//! The first poll happens when the transition is likely done: after its learned typical duration
//! ([`super::timings`]), or its documented one on a remote cloud, or at once when neither is known.
//! Past that moment, and until twice it, polls come at a twentieth of the typical duration, so the
//! reaction to a resource becoming ready stays short without polling throughout the wait.
//!
//! Guarantees: a terminal failure (`failed` snapshot, `CreateFailed` image) ends the wait at the poll
//! that sees it; a deadline ends it with [`WaitError::Timeout`] naming the resource and its last
//! status. Caveats: every `.await` is a cancellation point; dropping the future just stops polling.

use super::timings::{self, Observed, Timings};
pub use super::waiters::{image_observation, snapshot_observation};
use super::{ClientError, EcsClient};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Bounds of one wait.
#[derive(Debug, Clone)]
pub struct WaitConfig {
    /// Never poll more often than this.
    pub floor: Duration,
    /// Never sleep longer than this between polls.
    pub cap: Duration,
    /// Give up after this long.
    pub deadline: Duration,
    /// Polls that may find nothing before the resource counts as gone (listing lag after create).
    pub not_found_grace: u32,
    /// Whether to assume documented real-ECS durations for transitions never seen before (off
    /// for a local simulator, whose profile decides its timings).
    pub documented_durations: bool,
}

impl Default for WaitConfig {
    /// Real ECS: instances start in ~30 s, snapshots and images take minutes to tens of minutes.
    fn default() -> Self {
        WaitConfig {
            floor: Duration::from_secs(2),
            cap: Duration::from_secs(30),
            deadline: Duration::from_secs(3600),
            not_found_grace: 3,
            documented_durations: true,
        }
    }
}

/// What a progress callback sees after each poll.
#[derive(Debug, Clone)]
pub struct WaitProgress {
    /// `snapshot s-123`.
    pub resource: String,
    /// Status as the cloud spells it.
    pub status: String,
    /// Percent done, when the cloud reports it.
    pub percent: Option<u8>,
    pub elapsed: Duration,
    /// Polls so far, this one included.
    pub polls: u32,
    /// Sleep before the next poll.
    pub next_poll_in: Duration,
}

/// A finished wait.
#[derive(Debug, Clone)]
pub struct Waited<T> {
    /// The resource as last described.
    pub value: T,
    /// How many Describe calls the wait made.
    pub polls: u32,
    pub elapsed: Duration,
}

/// Why a wait ended without the resource becoming ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("{resource} failed: status {status}{detail}")]
    Failed {
        resource: String,
        status: String,
        detail: String,
    },
    #[error(
        "timed out after {elapsed:?} waiting for {resource} to become {wanted}; last status {last_status} \
         ({polls} polls). It may still finish: bakerd resume continues the wait"
    )]
    Timeout {
        resource: String,
        wanted: String,
        last_status: String,
        elapsed: Duration,
        polls: u32,
    },
    #[error("{resource} no longer exists (not found in {polls} polls)")]
    Vanished { resource: String, polls: u32 },
    #[error("polling {resource} failed: {source}")]
    Client {
        resource: String,
        #[source]
        source: ClientError,
    },
}

/// One poll's verdict.
pub enum Observation<T> {
    Done(T),
    Pending {
        status: String,
        percent: Option<u8>,
        /// The cloud's own estimate of the time left (e.g. snapshot `RemainTime`).
        remaining: Option<Duration>,
    },
    Failed {
        status: String,
        detail: String,
    },
    NotFound,
}

/// Estimates when to poll next from the progress seen so far (pure; see module docs).
#[derive(Debug, Default)]
pub struct Estimator {
    /// First poll that reported a percentage: (elapsed, percent).
    first: Option<(Duration, u8)>,
    /// The transition's typical duration, when known.
    expected: Option<Duration>,
}

impl Estimator {
    /// An estimator for a transition that typically takes `expected`.
    pub fn expecting(expected: Option<Duration>) -> Self {
        Estimator {
            first: None,
            expected,
        }
    }

    /// The sleep before the next poll. The cloud's `RemainTime` is whole seconds, so a finer
    /// estimate from the progress rate wins when it is shorter. An estimate of the time left
    /// gets one floor on top: the status changes a moment after the progress reaches 100 %, and
    /// a poll right at that moment would only buy a second one a floor later.
    pub fn next_interval(
        &mut self,
        elapsed: Duration,
        percent: Option<u8>,
        remaining: Option<Duration>,
        config: &WaitConfig,
    ) -> Duration {
        let from_progress = self.estimate_from_progress(elapsed, percent);
        let estimate = match (remaining.filter(|r| !r.is_zero()), from_progress) {
            (Some(r), Some(p)) => r.min(p) + config.floor,
            (Some(r), None) | (None, Some(r)) => r + config.floor,
            (None, None) => self.without_progress(elapsed),
        };
        estimate.clamp(config.floor, config.cap.max(config.floor))
    }

    /// Overdue by less than the typical duration: it should be done any moment, so look often;
    /// otherwise (unknown, or far overdue) back off with the elapsed time.
    fn without_progress(&self, elapsed: Duration) -> Duration {
        match self.expected {
            Some(typical) if elapsed < typical * 2 => typical / 20,
            _ => elapsed / 2,
        }
    }

    fn estimate_from_progress(
        &mut self,
        elapsed: Duration,
        percent: Option<u8>,
    ) -> Option<Duration> {
        let p = percent?;
        let (t0, p0) = *self.first.get_or_insert((elapsed, p));
        if p >= 100 {
            return Some(Duration::ZERO);
        }
        // Rate since the first sighting; before that, assume progress started with the wait.
        let (dt, dp) = if p > p0 && elapsed > t0 {
            (elapsed - t0, p - p0)
        } else if p > 0 && !elapsed.is_zero() {
            (elapsed, p)
        } else {
            return None;
        };
        let per_percent = dt.as_secs_f64() / f64::from(dp);
        Some(Duration::from_secs_f64(per_percent * f64::from(100 - p)))
    }
}

#[derive(Default)]
struct PollCount {
    polls: u32,
    not_found: u32,
    /// Elapsed time at the last poll that found the resource not ready (for learning).
    last_pending: Option<Duration>,
}

enum Settled<T> {
    Done(Waited<T>),
    /// Status, percent, the cloud's estimate of the time left.
    Pending((String, Option<u8>, Option<Duration>)),
}

/// A progress callback.
pub type ProgressFn<'a> = Box<dyn Fn(&WaitProgress) + Send + Sync + 'a>;

/// Polls resources through one client; see the module docs.
pub struct Waiter<'a> {
    client: &'a EcsClient,
    config: WaitConfig,
    on_progress: Option<ProgressFn<'a>>,
    /// Learned typical durations: read for the first poll, updated when a wait ends.
    timings: Option<Arc<Timings>>,
}

impl EcsClient {
    /// A waiter with default bounds.
    pub fn waiter(&self) -> Waiter<'_> {
        Waiter {
            client: self,
            config: WaitConfig::default(),
            on_progress: None,
            timings: None,
        }
    }
}

impl<'a> Waiter<'a> {
    /// The client the waiter polls with.
    pub fn client(&self) -> &'a EcsClient {
        self.client
    }

    pub fn with_config(mut self, config: WaitConfig) -> Self {
        self.config = config;
        self
    }

    /// Learns from (and times its first poll by) these estimates.
    pub fn with_timings(mut self, timings: Arc<Timings>) -> Self {
        self.timings = Some(timings);
        self
    }

    /// Called after every poll (the reconciler draws progress bars with it).
    pub fn on_progress(mut self, f: impl Fn(&WaitProgress) + Send + Sync + 'a) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Polls `probe` until it reports done, failed, gone, or the deadline passes. The first poll
    /// waits for the transition's typical duration when one is known (see the module docs).
    pub async fn poll<T, F, Fut>(
        &self,
        resource: &str,
        wanted: &str,
        mut probe: F,
    ) -> Result<Waited<T>, WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Observation<T>, ClientError>>,
    {
        let started = Instant::now();
        let key = self.timings_key(resource, wanted);
        let expected = self.expected(&key, resource, wanted);
        let mut estimator = Estimator::expecting(expected);
        let mut count = PollCount::default();
        if let Some(first) = expected {
            tokio::time::sleep(first.min(self.config.deadline)).await;
        }
        loop {
            count.polls += 1;
            let observed = probe().await.map_err(|source| WaitError::Client {
                resource: resource.to_string(),
                source,
            })?;
            let elapsed = started.elapsed();
            let (status, percent, remaining) =
                match self.settle(resource, observed, &mut count, elapsed)? {
                    Settled::Done(waited) => {
                        self.learn(&key, count.last_pending, elapsed);
                        return Ok(waited);
                    }
                    Settled::Pending(p) => p,
                };
            count.last_pending = Some(elapsed);
            if elapsed >= self.config.deadline {
                return Err(WaitError::Timeout {
                    resource: resource.to_string(),
                    wanted: wanted.to_string(),
                    last_status: status,
                    elapsed,
                    polls: count.polls,
                });
            }
            let next = estimator
                .next_interval(elapsed, percent, remaining, &self.config)
                .min(self.config.deadline - elapsed);
            self.report(resource, &status, percent, elapsed, count.polls, next);
            tokio::time::sleep(next).await;
        }
    }

    /// `<endpoint> <kind> <wanted>`, e.g. `http://127.0.0.1:8086 instance Running`: one cloud's
    /// timings never steer another's waits.
    fn timings_key(&self, resource: &str, wanted: &str) -> String {
        let kind = resource.split(' ').next().unwrap_or(resource);
        format!("{} {kind} {wanted}", self.client.base_url())
    }

    /// When to poll first: the learned duration, else the documented one (remote clouds only).
    fn expected(&self, key: &str, resource: &str, wanted: &str) -> Option<Duration> {
        let learned = self.timings.as_ref().and_then(|t| t.typical(key));
        let kind = resource.split(' ').next().unwrap_or(resource);
        let documented = self
            .config
            .documented_durations
            .then(|| timings::documented(&format!("{kind} {wanted}")))
            .flatten();
        learned.or(documented)
    }

    fn learn(&self, key: &str, last_pending: Option<Duration>, done: Duration) {
        if let Some(timings) = &self.timings {
            timings.learn(key, Observed { last_pending, done });
        }
    }

    /// Ends the wait on done, failure or vanishing; otherwise returns what to report.
    fn settle<T>(
        &self,
        resource: &str,
        observed: Observation<T>,
        count: &mut PollCount,
        elapsed: Duration,
    ) -> Result<Settled<T>, WaitError> {
        let resource = resource.to_string();
        match observed {
            Observation::Done(value) => Ok(Settled::Done(Waited {
                value,
                polls: count.polls,
                elapsed,
            })),
            Observation::Failed { status, detail } => Err(WaitError::Failed {
                resource,
                status,
                detail,
            }),
            Observation::NotFound => {
                count.not_found += 1;
                if count.not_found > self.config.not_found_grace {
                    let polls = count.polls;
                    return Err(WaitError::Vanished { resource, polls });
                }
                Ok(Settled::Pending(("not found".into(), None, None)))
            }
            Observation::Pending {
                status,
                percent,
                remaining,
            } => Ok(Settled::Pending((status, percent, remaining))),
        }
    }

    fn report(
        &self,
        resource: &str,
        status: &str,
        percent: Option<u8>,
        elapsed: Duration,
        polls: u32,
        next_poll_in: Duration,
    ) {
        tracing::debug!(resource, status, ?percent, polls, ?next_poll_in, "waiting");
        if let Some(f) = &self.on_progress {
            f(&WaitProgress {
                resource: resource.to_string(),
                status: status.to_string(),
                percent,
                elapsed,
                polls,
                next_poll_in,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConfig, Env};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn config() -> WaitConfig {
        WaitConfig {
            floor: Duration::from_secs(2),
            cap: Duration::from_secs(30),
            deadline: Duration::from_secs(3600),
            not_found_grace: 2,
            documented_durations: false,
        }
    }

    fn client() -> EcsClient {
        let mut c = ClientConfig::new("cn-hangzhou");
        c.env = Env::from_pairs([
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret"),
        ]);
        c.endpoint = Some("http://127.0.0.1:9".into());
        EcsClient::new(c).unwrap()
    }

    #[test]
    fn estimate_stays_between_floor_and_cap() {
        let c = config();
        let mut e = Estimator::default();
        assert_eq!(e.next_interval(Duration::ZERO, None, None, &c), c.floor);
        assert_eq!(
            e.next_interval(Duration::from_secs(20), None, None, &c),
            Duration::from_secs(10)
        );
        assert_eq!(
            e.next_interval(Duration::from_secs(500), None, None, &c),
            c.cap
        );
        let remain = Some(Duration::from_secs(7));
        assert_eq!(
            e.next_interval(Duration::from_secs(1), None, remain, &c),
            Duration::from_secs(7) + c.floor
        );
    }

    #[test]
    fn estimate_follows_the_progress_rate() {
        let c = config();
        let mut e = Estimator::default();
        // 10% at 0 s, 30% at 4 s: 5%/s, 70% left → 14 s, and one floor for the status to flip.
        e.next_interval(Duration::ZERO, Some(10), None, &c);
        let next = e.next_interval(Duration::from_secs(4), Some(30), None, &c);
        assert_eq!(next, Duration::from_secs(14) + c.floor);
        assert_eq!(
            e.next_interval(Duration::from_secs(5), Some(100), None, &c),
            c.floor
        );
    }

    /// A snapshot whose progress rises linearly over `total`, as the simulator reports it.
    fn linear_snapshot(total: Duration, started: Instant) -> Observation<u8> {
        let elapsed = started.elapsed().as_secs_f64();
        let p = ((elapsed / total.as_secs_f64()) * 100.0).min(100.0) as u8;
        if p >= 100 {
            Observation::Done(p)
        } else {
            Observation::Pending {
                status: "progressing".into(),
                percent: Some(p),
                remaining: None,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn poll_count_for_a_snapshot_taking_n_seconds_stays_small() {
        let client = client();
        for secs in [5u64, 30, 120, 600, 1800] {
            let total = Duration::from_secs(secs);
            let started = Instant::now();
            let reports = AtomicU32::new(0);
            let waiter = client.waiter().with_config(config()).on_progress(|_| {
                reports.fetch_add(1, Ordering::Relaxed);
            });
            let done = waiter
                .poll("snapshot s-test", "accomplished", || async {
                    Ok(linear_snapshot(total, started))
                })
                .await
                .unwrap();
            let c = config();
            let bound = (secs / c.cap.as_secs()) as u32 + 8;
            println!(
                "snapshot of {secs:>5} s: {:>3} polls (bound {bound}), finished after {:?}",
                done.polls, done.elapsed
            );
            assert!(done.polls <= bound, "{} polls for {secs} s", done.polls);
            assert!(
                done.elapsed <= total + c.cap,
                "{:?} overshoots {total:?}",
                done.elapsed
            );
            assert_eq!(reports.load(Ordering::Relaxed), done.polls - 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_snapshot_ends_the_wait_at_once() {
        let client = client();
        let polls = AtomicU32::new(0);
        let err = client
            .waiter()
            .with_config(config())
            .poll("snapshot s-9", "accomplished", || async {
                let n = polls.fetch_add(1, Ordering::Relaxed) + 1;
                Ok::<Observation<()>, ClientError>(if n < 3 {
                    Observation::Pending {
                        status: "progressing".into(),
                        percent: Some(10),
                        remaining: None,
                    }
                } else {
                    Observation::Failed {
                        status: "failed".into(),
                        detail: " at progress 10%".into(),
                    }
                })
            })
            .await
            .unwrap_err();
        assert_eq!(polls.load(Ordering::Relaxed), 3);
        assert_eq!(
            err.to_string(),
            "snapshot s-9 failed: status failed at progress 10%"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_names_the_resource_and_its_last_status() {
        let client = client();
        let mut c = config();
        c.deadline = Duration::from_secs(60);
        let err = client
            .waiter()
            .with_config(c)
            .poll("image m-1", "Available", || async {
                Ok::<Observation<()>, ClientError>(Observation::Pending {
                    status: "Creating".into(),
                    percent: None,
                    remaining: None,
                })
            })
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("image m-1") && text.contains("last status Creating"),
            "{text}"
        );
        assert!(
            matches!(err, WaitError::Timeout { elapsed, .. } if elapsed == Duration::from_secs(60))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_missing_beyond_the_grace_polls_has_vanished() {
        let client = client();
        let err = client
            .waiter()
            .with_config(config())
            .poll("instance i-1", "Running", || async {
                Ok::<Observation<()>, ClientError>(Observation::NotFound)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, WaitError::Vanished { polls: 3, .. }), "{err}");
    }

    #[test]
    fn terminal_image_and_snapshot_states_are_failures() {
        let image: crate::client::api::images::Image = serde_json::from_value(
            serde_json::json!({"ImageId": "m-1", "Status": "CreateFailed", "Progress": "40%"}),
        )
        .unwrap();
        assert!(matches!(
            image_observation(image),
            Observation::Failed { .. }
        ));
        let snap: crate::client::api::storage::Snapshot = serde_json::from_value(
            serde_json::json!({"SnapshotId": "s-1", "Status": "accomplished", "Progress": "99%"}),
        )
        .unwrap();
        assert!(matches!(
            snapshot_observation(snap),
            Observation::Pending { .. }
        ));
    }
}
