//! `ssh.address: eip`: the build instance is reached through an elastic IP that the build
//! allocates (tagged at creation), associates, and releases in cleanup.
//!
//! Guarantees: each call follows the write-ahead rule ([`Reconciler::once`]). AllocateEipAddress
//! goes to the VPC API, carries the step's deterministic ClientToken (a re-issued allocation
//! returns the same EIP) and bakerd's tags, so `gc` finds the EIP from the first moment.
//! Association has no ClientToken: it looks at the EIP first and only associates what is not.
//!
//! Resume of an older build: bakerd before the VPC API allocated through ECS, which takes no
//! tags, and tagged in a separate `tag-eip` step. A build resumed with an allocation recorded by
//! an earlier run therefore runs `tag-eip` once (already recorded: it stays done; a repeat on an
//! EIP tagged at creation is harmless). A fresh allocation needs no tag call.
//!
//! Caveats: an EIP that such an older build allocated and never tagged is found by `gc` only
//! through the build's record (its `eip` resource), i.e. only from the state directory the build
//! ran in.

use super::cloud::EipParams;
use super::reconcile::{BuildError, Reconciler};

/// Resource role of the build's EIP (its allocation id).
pub(crate) const ROLE: &str = "eip";
/// Write-ahead step of the allocation.
const ALLOCATE_STEP: &str = "allocate-eip";
/// Write-ahead step of the separate tag call (resumed builds only; see the module docs).
const TAG_STEP: &str = "tag-eip";

impl Reconciler {
    /// Allocates (tagged) and associates the build's EIP with `instance`; returns its address.
    pub(super) async fn eip_address(&mut self, instance: &str) -> Result<String, BuildError> {
        if self.resource("instance") != Some(instance) {
            return Err(BuildError::Other(format!(
                "instance {instance} is not the build instance: only the build instance gets an \
                 EIP (`ssh.address: eip`)"
            )));
        }
        let allocated_before = self.rec.results.contains_key(ALLOCATE_STEP);
        let eip = self.allocate_eip().await?;
        if allocated_before {
            let (cloud, id, tags) = (self.cloud.clone(), eip.clone(), self.tags());
            self.once(TAG_STEP, |_| async move {
                cloud.tag_eip(&id, &tags).await.map(|()| "ok".to_string())
            })
            .await?;
        }
        let (cloud, id, inst) = (self.cloud.clone(), eip, instance.to_string());
        self.once("associate-eip", |_| async move {
            cloud.associate_eip(&id, &inst).await
        })
        .await
    }

    /// AllocateEipAddress under the write-ahead rule (the recorded id once known).
    async fn allocate_eip(&mut self) -> Result<String, BuildError> {
        let params = EipParams {
            bandwidth: self.spec.eip_bandwidth(),
            internet_charge_type: self.spec.instance.internet_charge_type.clone(),
        };
        let (cloud, name, tags) = (self.cloud.clone(), self.temp_name(), self.tags());
        self.create(ALLOCATE_STEP, ROLE, |token| async move {
            cloud.allocate_eip(&token, &params, &name, &tags).await
        })
        .await
    }

    /// Before cleanup: an allocation whose answer was lost (intent, no result) may have created
    /// an EIP the record does not name. Re-issuing it with the same ClientToken returns that EIP
    /// (or allocates one, which cleanup then releases), so cleanup can release it.
    pub(super) async fn recover_unrecorded_eip(&mut self) -> Result<(), BuildError> {
        let pending = self.rec.intents.contains_key(ALLOCATE_STEP)
            && !self.rec.results.contains_key(ALLOCATE_STEP);
        if pending && self.resource(ROLE).is_none() {
            self.allocate_eip().await?;
        }
        Ok(())
    }
}
