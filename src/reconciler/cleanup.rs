//! Deleting what a build created, in reverse dependency order (instance before the key pair and
//! security group it uses, vSwitch before its VPC, image before its snapshot).
//!
//! Guarantees: every deletion is idempotent (a resource already gone counts as deleted), so a
//! cleanup interrupted at any moment is finished by running it again.

use super::disk_snapshots::DATA_SNAPSHOT_PREFIX;
use super::reconcile::{BuildError, Reconciler};

/// Temporary resources, in the order they are deleted.
const TEMPORARY_ROLES: &[&str] = &[
    super::verify::ROLE,
    "instance",
    super::eip::ROLE,
    "key_pair",
    "security_group",
    super::verify::VSWITCH_ROLE,
    "vswitch",
    "vpc",
];

/// The recorded resources that cleanup or `cancel` would delete (the roles [`Reconciler::delete_role`]
/// knows), as `role=id`: what a failed build still holds in the cloud.
pub fn deletable_resources(resources: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    resources
        .iter()
        .filter(|(role, _)| {
            TEMPORARY_ROLES.contains(&role.as_str())
                || ["image", "snapshot"].contains(&role.as_str())
                || role.starts_with("image_copy_")
                || role.starts_with(DATA_SNAPSHOT_PREFIX)
        })
        .map(|(role, id)| format!("{role}={id}"))
        .collect()
}

impl Reconciler {
    /// Deletes the build's temporary resources. After a failure (`including_outputs`) the
    /// unfinished outputs go too: an image that never became the build's result, and its
    /// snapshot. Then the build starts a new attempt, so a later `resume` creates fresh
    /// resources under fresh ClientTokens instead of being handed the deleted ones back.
    pub async fn cleanup_temporary(&mut self, including_outputs: bool) -> Result<(), BuildError> {
        // `bakerd verify` checks an image it did not make, and a distribution-only build copies
        // one: never theirs to delete.
        let including_outputs = including_outputs && !self.verify_only() && !self.distribute_only();
        let mut roles: Vec<String> = Vec::new();
        if including_outputs {
            roles.extend(self.copy_roles());
            roles.extend(["image".to_string(), "snapshot".to_string()]);
            roles.extend(self.data_snapshot_roles());
        }
        roles.extend(TEMPORARY_ROLES.iter().map(|r| r.to_string()));
        // ImportKeyPair has no ClientToken: if its answer was lost the key pair may exist
        // unrecorded. Its name is deterministic, so delete it by name (gone is fine); else the
        // next attempt would find it by name and launch with the old public key.
        if self.resource("key_pair").is_none() && self.rec.intents.contains_key("import-key-pair") {
            let name = self.temp_name();
            self.set_resource("key_pair", &name)?;
        }
        self.recover_unrecorded_eip().await?;
        for role in roles {
            self.delete_role(&role).await?;
        }
        self.remove_local_key()?;
        if including_outputs {
            self.start_new_attempt()?;
        }
        Ok(())
    }

    /// Whether the instance and the temporary network may go while the image is created, once
    /// the snapshots are accomplished: the image is made from the snapshots (manual snapshots
    /// outlive the instance's disks, docs/ecs-api.md, DeleteInstance), so nothing later needs
    /// them, except:
    /// - `verify`: its test instance uses the build's vSwitch, security group and key pair,
    ///   and a failed check retried with `on_failure: keep` snapshots the build instance again;
    /// - `on_failure: keep`: a build whose image fails keeps its instance for inspection.
    pub(super) fn cleans_up_during_image_wait(&self) -> bool {
        self.spec.verify.is_none()
            && self.spec.on_failure == crate::spec::OnFailure::Cleanup
            && !self.verify_only()
            && !self.distribute_only()
    }

    /// Deletes the temporary resources while the image is being created ([`TEMPORARY_ROLES`],
    /// in their order). Each deletion is recorded as usual, so the final cleanup step finds
    /// them done and makes no call.
    ///
    /// Caveats: a failure here does not fail the build (the image may well become Available):
    /// it is noted, and the final cleanup step retries what is left.
    pub(super) async fn cleanup_during_image_wait(&mut self) {
        for role in TEMPORARY_ROLES {
            if let Err(e) = self.delete_role(role).await {
                let message =
                    format!("deleting the {role} early failed ({e}); the final cleanup retries it");
                self.out.note(&message);
                if let Err(e) = self.event("error", message) {
                    tracing::warn!(error = %e, "event not recorded");
                }
                return;
            }
        }
    }

    /// Roles of the image's copies in other regions.
    fn copy_roles(&self) -> Vec<String> {
        self.rec
            .resources
            .keys()
            .filter(|k| k.starts_with("image_copy_"))
            .cloned()
            .collect()
    }

    /// Roles of the data disks' snapshots (`image.data_disks: include`).
    fn data_snapshot_roles(&self) -> Vec<String> {
        self.rec
            .resources
            .keys()
            .filter(|k| k.starts_with(DATA_SNAPSHOT_PREFIX))
            .cloned()
            .collect()
    }

    /// Deletes the resource recorded under `role`, if any, and records that it is gone.
    pub(super) async fn delete_role(&mut self, role: &str) -> Result<(), BuildError> {
        let Some(id) = self.resource(role).map(str::to_string) else {
            return Ok(());
        };
        let step = delete_step(role);
        let cloud = self.cloud.clone();
        let role_owned = role.to_string();
        self.once(&step, |_| async move {
            match role_owned.as_str() {
                "instance" | super::verify::ROLE => cloud.delete_instance_and_wait(&id).await?,
                "key_pair" => cloud.delete_key_pair(&id).await?,
                super::eip::ROLE => cloud.release_eip(&id).await?,
                "security_group" => cloud.delete_security_group(&id).await?,
                "vswitch" | super::verify::VSWITCH_ROLE => cloud.delete_vswitch(&id).await?,
                "vpc" => cloud.delete_vpc(&id).await?,
                "image" => cloud.delete_image_and_snapshots(&id).await?,
                "snapshot" => cloud.delete_snapshot(&id).await?,
                data if data.starts_with(DATA_SNAPSHOT_PREFIX) => {
                    cloud.delete_snapshot(&id).await?
                }
                copy => {
                    let region = copy.trim_start_matches("image_copy_");
                    cloud
                        .in_region(region)
                        .delete_image_and_snapshots(&id)
                        .await?
                }
            }
            Ok("deleted".to_string())
        })
        .await?;
        Ok(())
    }

    /// Moves the record to a fresh attempt: resources and intents of the cleaned-up attempt are
    /// kept in the history (events) but no longer drive the steps.
    pub(super) fn start_new_attempt(&mut self) -> Result<(), BuildError> {
        let old: Vec<String> = self
            .rec
            .resources
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.event(
            "cleanup",
            format!("attempt {} cleaned up: {}", self.rec.attempt, old.join(" ")),
        )?;
        self.rec.attempt += 1;
        self.rec.resources.clear();
        self.rec.intents.clear();
        self.rec.results.clear();
        self.rec.provisioners.clear();
        self.rec.host_key = None;
        // `phase` keeps the step that failed (for messages); with no intents left, `resume`
        // starts the new attempt from the beginning.
        self.save()?;
        Ok(())
    }
}

/// The step that deletes the resource recorded under `role`.
pub(super) fn delete_step(role: &str) -> String {
    format!("delete-{role}")
}
