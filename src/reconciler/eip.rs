//! `ssh.address: eip`: the build instance is reached through an elastic IP that the build
//! allocates, tags, associates, and releases in cleanup.
//!
//! Guarantees: each call follows the write-ahead rule ([`Reconciler::once`]). AllocateEipAddress
//! carries the step's deterministic ClientToken, so a re-issued allocation returns the same EIP.
//! The EIP cannot be tagged at creation (the ECS API's AllocateEipAddress has no `Tag.N`), so it is
//! tagged in the next step; until then it is known by the build record alone (its `eip` resource,
//! or the allocation's intent and token, which cleanup re-issues to learn the id).
//! Association has no ClientToken: it looks at the EIP first and only associates what is not.
//!
//! Caveats: a build abandoned between the allocation and its tag leaves an untagged EIP that
//! `gc` finds only through the build's record (its `eip` resource), i.e. only from the state
//! directory the build ran in.

use super::cloud::EipParams;
use super::reconcile::{BuildError, Reconciler};

/// Resource role of the build's EIP (its allocation id).
pub(crate) const ROLE: &str = "eip";
/// Write-ahead step of the allocation.
const ALLOCATE_STEP: &str = "allocate-eip";

impl Reconciler {
    /// Allocates, tags and associates the build's EIP with `instance`; returns its address.
    pub(super) async fn eip_address(&mut self, instance: &str) -> Result<String, BuildError> {
        if self.resource("instance") != Some(instance) {
            return Err(BuildError::Other(format!(
                "instance {instance} is not the build instance: only the build instance gets an \
                 EIP (`ssh.address: eip`)"
            )));
        }
        let eip = self.allocate_eip().await?;
        let (cloud, id, tags) = (self.cloud.clone(), eip.clone(), self.tags());
        self.once("tag-eip", |_| async move {
            cloud.tag_eip(&id, &tags).await.map(|()| "ok".to_string())
        })
        .await?;
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
        let cloud = self.cloud.clone();
        self.create(ALLOCATE_STEP, ROLE, |token| async move {
            cloud.allocate_eip(&token, &params).await
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
