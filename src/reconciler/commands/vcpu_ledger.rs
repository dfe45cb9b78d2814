//! vCPUs promised to the builds of one `apply` whose instances do not exist yet.
//!
//! Why: each build's preflight reads the vCPUs in use from ECS (`DescribeAccountAttributes`). Two
//! builds that start together each see the other's instance missing and would both pass a quota
//! that holds only one of them; the second would then fail at RunInstances, after its network was
//! made. The ledger adds what the other builds of this process will still create.
//!
//! Guarantees: preflights run concurrently; only the final comparison and the recording of the
//! build hold the ledger. A reading of the quota may miss the instance of any build whose
//! instance did not exist yet when the reading was asked for ([`VcpuLedger::before_reading`]),
//! and of every build promised after that moment: all of those count as promised, so each
//! build sees every other build's vCPUs at least once.
//! Caveats: an instance created while the reading was on its way, or promised after it was asked
//! for, may count twice (a stricter check, never a looser one).

use crate::reconciler::phase::Phase;
use crate::reconciler::state::BuildId;
use crate::reconciler::store::Store;

/// One build's promise.
pub(super) struct Promise {
    /// The region whose quota it counts against.
    region: String,
    /// The build, whose recorded phase says whether its instance exists yet.
    build: BuildId,
    /// The instance type's vCPUs.
    vcpus: u32,
}

/// The promises of the builds started by this process.
#[derive(Default)]
pub(super) struct VcpuLedger {
    promises: tokio::sync::Mutex<Vec<Promise>>,
}

/// The ledger, held for the final comparison and the recording of one build.
pub(super) type Held<'a> = tokio::sync::MutexGuard<'a, Vec<Promise>>;

/// The promises a quota reading asked for after this point may not include: those in the region
/// whose instance did not exist yet, and (by position) every promise made later.
pub(super) struct Before {
    region: String,
    pending: Vec<usize>,
    len: usize,
}

impl VcpuLedger {
    pub(super) async fn hold(&self) -> Held<'_> {
        self.promises.lock().await
    }

    /// Call before asking for the quota reading.
    pub(super) async fn before_reading(&self, region: &str, store: &Store) -> Before {
        let held = self.promises.lock().await;
        let pending = held
            .iter()
            .enumerate()
            .filter(|(_, p)| p.region == region)
            .filter(|(_, p)| {
                store
                    .load(&p.build)
                    .is_ok_and(|rec| matches!(rec.phase, Phase::Pending | Phase::Prepared))
            })
            .map(|(i, _)| i)
            .collect();
        Before {
            region: region.to_string(),
            pending,
            len: held.len(),
        }
    }
}

/// vCPUs a reading asked for at `before` may be missing: see [`Before`].
pub(super) fn promised(held: &Held<'_>, before: &Before) -> u64 {
    let pending: u64 = before
        .pending
        .iter()
        .map(|&i| u64::from(held[i].vcpus))
        .sum();
    let later: u64 = held[before.len..]
        .iter()
        .filter(|p| p.region == before.region)
        .map(|p| u64::from(p.vcpus))
        .sum();
    pending + later
}

/// Records that `build` will create an instance of `vcpus` in `region`.
pub(super) fn promise(held: &mut Held<'_>, region: &str, build: &BuildId, vcpus: u32) {
    held.push(Promise {
        region: region.to_string(),
        build: build.clone(),
        vcpus,
    });
}
