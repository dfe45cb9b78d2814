//! When to retry, how long to wait, and how fast to call each API.
//!
//! - [`classify`] sorts every error code of `docs/ecs-api.md` §2.5 into retry classes.
//! - [`RetryPolicy`] computes exponential backoff with jitter, bounded by a cap, an attempt limit and
//!   a deadline per call.
//! - [`RateLimiter`] paces calls per API (per account, region and action, as ECS throttles, §6) and is
//!   shared by every client in the process: throttling widens the gap between calls, successes
//!   narrow it again (additive-increase / multiplicative-decrease on the interval).

use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How an error answer should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryability {
    /// `Throttling*`: retry after a longer backoff and slow this API down.
    Throttled,
    /// Server-side or transient failure (5xx, `InternalError`, `ServiceUnavailable`, `UnknownError`,
    /// `RequestTimeout`, `SignatureNonceUsed` — every attempt has a fresh nonce anyway).
    Transient,
    /// The cloud is still busy with an earlier request (`IdempotentProcessing`,
    /// `LastTokenProcessing`, `OperationConflict`, `IncorrectInstanceStatus.Initializing`).
    Busy,
    /// The request itself is wrong or not allowed; repeating it cannot help.
    Permanent,
}

impl Retryability {
    pub fn is_retryable(self) -> bool {
        self != Retryability::Permanent
    }
}

/// Classifies an error answer by its `Code` and HTTP status.
pub fn classify(code: &str, http_status: u16) -> Retryability {
    if code.starts_with("Throttling") || code.contains(".Throttling") {
        return Retryability::Throttled;
    }
    match code {
        "InternalError" | "UnknownError" | "RequestTimeout" | "SignatureNonceUsed" => {
            Retryability::Transient
        }
        c if c.starts_with("ServiceUnavailable") || c.starts_with("InternalError.") => {
            Retryability::Transient
        }
        "IdempotentProcessing"
        | "LastTokenProcessing"
        | "OperationConflict"
        | "IncorrectInstanceStatus.Initializing" => Retryability::Busy,
        _ if http_status >= 500 => Retryability::Transient,
        _ => Retryability::Permanent,
    }
}

/// Bounds of the retry loop of one call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// First backoff for transient errors; doubles per attempt.
    pub base_delay: Duration,
    /// First backoff after throttling (longer: the throttle window is a second or more).
    pub throttle_base_delay: Duration,
    /// No single backoff is longer than this.
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// Rides out a throttled minute (§6: throttled in minute T, callable in T+1) without hanging a
    /// build on a dead endpoint for long.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            throttle_base_delay: Duration::from_millis(1000),
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests against the simulator.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(5),
            throttle_base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            deadline: Duration::from_secs(30),
        }
    }

    /// The upper bound of the backoff before retry number `retry` (1 = first retry):
    /// `min(max_delay, base * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32, class: Retryability) -> Duration {
        let base = match class {
            Retryability::Throttled => self.throttle_base_delay,
            _ => self.base_delay,
        };
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(self.max_delay)
    }

    /// The backoff before retry number `retry`: "equal jitter", uniformly in `[ceiling/2, ceiling]`,
    /// so concurrent builds spread out yet never retry immediately.
    pub fn delay(&self, retry: u32, class: Retryability, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry, class);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        half + Duration::from_micros(rng.gen_range(0..=spread))
    }
}

/// The pace of one API.
#[derive(Debug)]
struct Pace {
    /// Gap enforced between two calls' start times; 0 = unthrottled.
    interval: Duration,
    /// When the next call may start.
    next_slot: Instant,
}

/// Per-API pacing shared by all clients of the process (see module docs).
#[derive(Debug)]
pub struct RateLimiter {
    paces: Mutex<HashMap<String, Pace>>,
    /// Gap added on the first throttle of an unthrottled API.
    first_step: Duration,
    /// The gap never grows beyond this.
    max_interval: Duration,
}

impl RateLimiter {
    pub fn new(first_step: Duration, max_interval: Duration) -> Self {
        RateLimiter {
            paces: Mutex::new(HashMap::new()),
            first_step,
            max_interval,
        }
    }

    /// The process-wide limiter: every build shares each API's budget, as the cloud counts it.
    pub fn shared() -> Arc<RateLimiter> {
        static SHARED: OnceLock<Arc<RateLimiter>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                Arc::new(RateLimiter::new(
                    Duration::from_millis(50),
                    Duration::from_secs(2),
                ))
            })
            .clone()
    }

    /// Waits for this API's next slot and reserves it.
    pub async fn acquire(&self, key: &str) {
        let wait_until = {
            let mut paces = self.paces.lock().expect("rate limiter lock");
            let now = Instant::now();
            let Some(pace) = paces.get_mut(key) else {
                return;
            };
            let slot = pace.next_slot.max(now);
            pace.next_slot = slot + pace.interval;
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    /// The API was throttled: double its gap (at least `first_step`, at most `max_interval`).
    pub fn on_throttled(&self, key: &str) {
        let mut paces = self.paces.lock().expect("rate limiter lock");
        let pace = paces.entry(key.to_string()).or_insert(Pace {
            interval: Duration::ZERO,
            next_slot: Instant::now(),
        });
        pace.interval = (pace.interval * 2)
            .max(self.first_step)
            .min(self.max_interval);
    }

    /// The API answered: shrink its gap by a quarter; forget it once negligible.
    pub fn on_success(&self, key: &str) {
        let mut paces = self.paces.lock().expect("rate limiter lock");
        if let Some(pace) = paces.get_mut(key) {
            pace.interval = pace.interval * 3 / 4;
            if pace.interval < Duration::from_millis(1) {
                paces.remove(key);
            }
        }
    }

    /// The current gap for an API (for tests and diagnostics).
    pub fn interval(&self, key: &str) -> Duration {
        let paces = self.paces.lock().expect("rate limiter lock");
        paces.get(key).map_or(Duration::ZERO, |p| p.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Every code of `docs/ecs-api.md` §2.5 with its documented HTTP status and expected class.
    const TABLE: &[(&str, u16, Retryability)] = &[
        ("MissingParameter", 400, Retryability::Permanent),
        ("MissingParameter.RegionId", 400, Retryability::Permanent),
        ("MissingImageId", 400, Retryability::Permanent),
        ("InvalidParameter", 400, Retryability::Permanent),
        ("InvalidParameter.IsNull", 400, Retryability::Permanent),
        ("IllegalTimestamp", 400, Retryability::Permanent),
        ("InvalidTimeStamp.Format", 400, Retryability::Permanent),
        ("InvalidTimeStamp.Expired", 400, Retryability::Permanent),
        ("SignatureNonceUsed", 400, Retryability::Transient),
        ("IncompleteSignature", 400, Retryability::Permanent),
        ("SignatureDoesNotMatch", 400, Retryability::Permanent),
        ("SignatureDoesNotMatch", 403, Retryability::Permanent),
        ("InvalidAccessKeyId.NotFound", 400, Retryability::Permanent),
        ("InvalidAccessKeyId.NotFound", 404, Retryability::Permanent),
        ("InvalidAccessKeyId.Inactive", 400, Retryability::Permanent),
        ("Throttling", 400, Retryability::Throttled),
        ("Throttling.User", 400, Retryability::Throttled),
        ("Throttling.Api", 400, Retryability::Throttled),
        ("Throttling.Resource", 429, Retryability::Throttled),
        ("Rejected.Throttling", 400, Retryability::Throttled),
        ("IdempotentParameterMismatch", 400, Retryability::Permanent),
        ("IdempotentParameterMismatch", 403, Retryability::Permanent),
        (
            "InvalidIdempotenceParameter.Mismatch",
            403,
            Retryability::Permanent,
        ),
        ("IdempotentProcessing", 403, Retryability::Busy),
        ("LastTokenProcessing", 403, Retryability::Busy),
        ("OperationConflict", 409, Retryability::Busy),
        ("UnknownError", 400, Retryability::Transient),
        ("Forbidden.RAM", 403, Retryability::Permanent),
        ("Forbidden.NotSupportRAM", 403, Retryability::Permanent),
        ("Forbidden.SubUser", 403, Retryability::Permanent),
        ("Forbidden.Unauthorized", 403, Retryability::Permanent),
        ("Forbidden.RiskControl", 403, Retryability::Permanent),
        ("Forbidden.AccessKeyDisabled", 403, Retryability::Permanent),
        ("InvalidAction", 403, Retryability::Permanent),
        ("InvalidApi.NotFound", 404, Retryability::Permanent),
        ("UnsupportedHTTPMethod", 403, Retryability::Permanent),
        ("IncorrectInstanceStatus", 403, Retryability::Permanent),
        ("IncorrectInstanceStatus", 400, Retryability::Permanent),
        (
            "IncorrectInstanceStatus.Initializing",
            403,
            Retryability::Busy,
        ),
        ("InvalidInstanceId.NotFound", 404, Retryability::Permanent),
        ("InvalidImageId.NotFound", 404, Retryability::Permanent),
        ("InvalidSnapshotId.NotFound", 404, Retryability::Permanent),
        ("InvalidDiskId.NotFound", 404, Retryability::Permanent),
        (
            "InvalidSecurityGroupId.NotFound",
            404,
            Retryability::Permanent,
        ),
        ("InvalidRegionId.NotFound", 404, Retryability::Permanent),
        ("InvalidKeyPairName.NotFound", 404, Retryability::Permanent),
        ("InvalidVSwitchId.NotFound", 404, Retryability::Permanent),
        ("InvalidZoneId.NotFound", 404, Retryability::Permanent),
        ("DryRunOperation", 400, Retryability::Permanent),
        ("InternalError", 500, Retryability::Transient),
        ("ServiceUnavailable", 503, Retryability::Transient),
        (
            "ServiceUnavailable.RegionMaintaining",
            503,
            Retryability::Transient,
        ),
        ("RequestTimeout", 504, Retryability::Transient),
        // Action-specific codes of §2.5.
        ("InstanceLockedForSecurity", 403, Retryability::Permanent),
        (
            "InvalidOperation.DeletionProtection",
            403,
            Retryability::Permanent,
        ),
        (
            "DependencyViolation.RouteEntry",
            400,
            Retryability::Permanent,
        ),
        ("InvalidSnapshotId.NotReady", 403, Retryability::Permanent),
        ("InvalidImageName.Duplicated", 400, Retryability::Permanent),
        ("QuotaExceed.Image", 403, Retryability::Permanent),
        (
            "IncorrectDiskStatus.CreatingSnapshot",
            403,
            Retryability::Permanent,
        ),
        ("QuotaExceed.Snapshot", 403, Retryability::Permanent),
        ("QuotaExceed.ElasticQuota", 403, Retryability::Permanent),
        ("QuotaExceed.SecurityGroup", 403, Retryability::Permanent),
        ("QuotaExceed.DiskCapacity", 400, Retryability::Permanent),
        ("SnapshotCreatedImage", 403, Retryability::Permanent),
        ("SnapshotCreatedDisk", 403, Retryability::Permanent),
        ("ImageUsingByInstance", 403, Retryability::Permanent),
        ("ImageUseShared", 403, Retryability::Permanent),
        ("OperationDenied.ImageCopying", 403, Retryability::Permanent),
        ("IncorrectImageStatus", 400, Retryability::Permanent),
        ("IncorrectDestinationRegion", 403, Retryability::Permanent),
        // Unknown codes: decided by the status alone.
        ("SomethingNew", 502, Retryability::Transient),
        ("SomethingNew", 400, Retryability::Permanent),
    ];

    #[test]
    fn every_documented_error_code_is_classified() {
        for &(code, status, want) in TABLE {
            assert_eq!(classify(code, status), want, "{code} (HTTP {status})");
        }
    }

    #[test]
    fn backoff_stays_between_half_the_ceiling_and_the_ceiling_and_under_the_cap() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for class in [Retryability::Transient, Retryability::Throttled] {
            let mut previous_ceiling = Duration::ZERO;
            for retry in 1..=40 {
                let ceiling = policy.ceiling(retry, class);
                assert!(ceiling >= previous_ceiling, "ceiling must not shrink");
                assert!(ceiling <= policy.max_delay);
                for _ in 0..50 {
                    let d = policy.delay(retry, class, &mut rng);
                    assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
                }
                previous_ceiling = ceiling;
            }
        }
        assert_eq!(
            policy.ceiling(1, Retryability::Transient),
            policy.base_delay
        );
        assert_eq!(
            policy.ceiling(3, Retryability::Transient),
            policy.base_delay * 4
        );
        assert_eq!(
            policy.ceiling(1, Retryability::Throttled),
            policy.throttle_base_delay
        );
    }

    #[test]
    fn jitter_actually_varies() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| policy.delay(4, Retryability::Transient, &mut rng))
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_widens_the_gap_and_success_narrows_it() {
        let limiter = RateLimiter::new(Duration::from_millis(50), Duration::from_millis(400));
        let key = "id/cn-hangzhou/DescribeInstances";
        assert_eq!(limiter.interval(key), Duration::ZERO);
        limiter.on_throttled(key);
        assert_eq!(limiter.interval(key), Duration::from_millis(50));
        for _ in 0..10 {
            limiter.on_throttled(key);
        }
        assert_eq!(limiter.interval(key), Duration::from_millis(400));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire(key).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(800));
        assert_eq!(
            limiter.interval("id/cn-hangzhou/RunInstances"),
            Duration::ZERO
        );
        for _ in 0..40 {
            limiter.on_success(key);
        }
        assert_eq!(limiter.interval(key), Duration::ZERO);
    }
}
