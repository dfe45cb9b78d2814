//! vCPUs promised to the builds of one `apply` whose instances do not exist yet.
//!
//! Why: each build's preflight reads the vCPUs in use from ECS (`DescribeAccountAttributes`). Two
//! builds that start together each see the other's instance missing and would both pass a quota
//! that holds only one of them; the second would then fail at RunInstances, after its network was
//! made. The ledger adds what the other builds of this process will still create.
//!
//! Guarantees: preflights of one process run one at a time while they hold the ledger (a short
//! read-only check, not the build), so each sees every earlier build's promise.
//! Caveats: a promise counts while its build's record is `Pending` or `Prepared`; in the moment
//! between RunInstances' answer and the record moving on, an instance counts twice (a stricter
//! check, never a looser one).

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

/// The ledger, held for one preflight and the recording of its build.
pub(super) type Held<'a> = tokio::sync::MutexGuard<'a, Vec<Promise>>;

impl VcpuLedger {
    pub(super) async fn hold(&self) -> Held<'_> {
        self.promises.lock().await
    }
}

/// vCPUs promised in `region` to builds whose instance is not created yet.
pub(super) fn promised(held: &Held<'_>, region: &str, store: &Store) -> u64 {
    held.iter()
        .filter(|p| p.region == region)
        .filter(|p| {
            store
                .load(&p.build)
                .is_ok_and(|rec| matches!(rec.phase, Phase::Pending | Phase::Prepared))
        })
        .map(|p| u64::from(p.vcpus))
        .sum()
}

/// Records that `build` will create an instance of `vcpus` in `region`.
pub(super) fn promise(held: &mut Held<'_>, region: &str, build: &BuildId, vcpus: u32) {
    held.push(Promise {
        region: region.to_string(),
        build: build.clone(),
        vcpus,
    });
}
