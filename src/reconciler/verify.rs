//! The `verify` step (ImageReady → Verified): boot a test instance from the new image, run the
//! spec's checks on it, delete it, tag the image `bakerd:verified=true|false`, then publish
//! (copy, share) only a verified image.
//!
//! Guarantees: the test instance is created under the write-ahead rule (deterministic
//! ClientToken, tags `bakerd:build-id` and `bakerd:role=verify` at creation), so a crash leaves
//! nothing `resume`, `cancel` or `gc` cannot find; it is deleted before the step ends, whatever
//! the outcome. The outcome is recorded before the test instance is deleted, so a resume after
//! a crash never runs the checks against a half-deleted instance. A failed run is retired (its
//! step names get a new suffix), so a resume boots a fresh test instance under a new ClientToken.
//!
//! Caveats: checks run again from the first after a crash mid-check; they should only read.

use super::cloud::InstanceParams;
use super::provenance::VERIFIED_TAG;
use super::reconcile::{BuildError, Reconciler};
use super::remote::Remote;
use crate::spec::{VerifyCheck, VerifyOnFailure, VerifySpec};
use serde_json::{json, Value};

/// Base name of the step that creates the test instance (suffixed `-rN` once retired).
const RUN_STEP: &str = "verify-run-instances";
/// Resource role of the test instance.
pub const ROLE: &str = "verify_instance";
/// Resource role of the test instance's own vSwitch (`verify.instance.zone` in another zone).
pub const VSWITCH_ROLE: &str = "verify_vswitch";
/// Results key marking a verify-only record (`bakerd verify <image>`).
pub const VERIFY_ONLY_KEY: &str = "verify-only";

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A check exited non-zero (or timed out) on the test instance.
    #[error(
        "verify check {index} ({check}) failed on test instance {instance} booted from image \
         {image}: {detail}; {fate}"
    )]
    CheckFailed {
        index: usize,
        check: String,
        instance: String,
        image: String,
        detail: String,
        fate: String,
        image_deleted: bool,
    },
    /// A crash came between deleting the failed image and recording the failure.
    #[error(
        "build {build}'s image was deleted after a failed verification \
         (verify.on_failure: delete_image); `bakerd resume {build}` makes a new one"
    )]
    ImageDeleted { build: String },
}

impl From<VerifyError> for BuildError {
    fn from(e: VerifyError) -> Self {
        BuildError::Verify(Box::new(e))
    }
}

impl VerifyError {
    /// Whether the image is gone, so a retry must make a new one (from the snapshot step).
    pub fn image_deleted(&self) -> bool {
        match self {
            VerifyError::CheckFailed { image_deleted, .. } => *image_deleted,
            VerifyError::ImageDeleted { .. } => true,
        }
    }
}

/// How a run of the checks ended, as recorded before the test instance is deleted.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    /// `None` when every check passed; else the failed check's index and output.
    failed: Option<(usize, String)>,
}

impl Outcome {
    fn to_json(&self) -> Value {
        match &self.failed {
            None => json!({"passed": true}),
            Some((index, detail)) => json!({"passed": false, "index": index, "detail": detail}),
        }
    }

    fn from_json(value: &Value) -> Outcome {
        if value.get("passed").and_then(Value::as_bool) == Some(true) {
            return Outcome { failed: None };
        }
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
        Outcome {
            failed: Some((index, detail.to_string())),
        }
    }
}

impl Reconciler {
    /// True for records made by `bakerd verify <image>`: they never create, copy or delete images.
    pub fn verify_only(&self) -> bool {
        self.rec.results.contains_key(VERIFY_ONLY_KEY)
    }

    /// ImageReady → Verified: run the checks (if any), then copy and share the image.
    pub(super) async fn verify_and_publish(&mut self) -> Result<(), BuildError> {
        let Some(image) = self.resource("image").map(str::to_string) else {
            let build = self.rec.id.to_string();
            return Err(VerifyError::ImageDeleted { build }.into());
        };
        if self.distribute_only() {
            return self.redistribute(&image).await;
        }
        if let Some(verify) = self.spec.verify.clone() {
            self.verify_image(&image, &verify).await?;
        }
        if self.verify_only() {
            return Ok(());
        }
        let tags = self.image_tags(&self.recorded_verified());
        self.copy_and_share(&image, &tags).await
    }

    /// Runs the checks on a test instance (or takes the recorded outcome), deletes the test
    /// instance, tags the image, and applies `verify.on_failure` when a check failed.
    async fn verify_image(&mut self, image: &str, verify: &VerifySpec) -> Result<(), BuildError> {
        let outcome_key = format!("{}:outcome", self.step_name(RUN_STEP));
        let outcome = match self.rec.results.get(&outcome_key) {
            Some(recorded) => Outcome::from_json(recorded),
            None => {
                let ran = self.run_on_test_instance(image, verify).await;
                let outcome = match ran {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        self.discard_test_instance().await?;
                        return Err(err);
                    }
                };
                self.rec.results.insert(outcome_key, outcome.to_json());
                self.save()?;
                outcome
            }
        };
        crate::reconciler::crash::point("verify:outcome-recorded");
        let instance = self.resource(ROLE).unwrap_or("?").to_string();
        self.delete_role(ROLE).await?;
        let passed = outcome.failed.is_none();
        self.tag_verified(image, passed).await?;
        let Some((index, detail)) = outcome.failed else {
            self.event("verify", format!("image {image} passed every check"))?;
            return Ok(());
        };
        self.retire(RUN_STEP, ROLE)?;
        let deleted = self.apply_failure_policy(image, verify).await?;
        let fate = if deleted {
            format!("image {image} and its snapshot were deleted (verify.on_failure: delete_image)")
        } else {
            format!("image {image} is kept, tagged {VERIFIED_TAG}=false")
        };
        Err(VerifyError::CheckFailed {
            index,
            check: verify.checks[index.min(verify.checks.len() - 1)].describe(),
            instance,
            image: image.to_string(),
            detail,
            fate,
            image_deleted: deleted,
        }
        .into())
    }

    /// Starts the test instance, waits for it, connects and runs every check.
    async fn run_on_test_instance(
        &mut self,
        image: &str,
        verify: &VerifySpec,
    ) -> Result<Outcome, BuildError> {
        let instance = self.create_test_instance(image, verify).await?;
        crate::reconciler::crash::point("verify:instance-created");
        let running = self
            .cloud
            .wait_instance_status(&instance, "Running", self.spec.timeouts.instance)
            .await?;
        let mut remote = self.connect_test_instance(&instance, running).await?;
        crate::reconciler::crash::point("verify:connected");
        for (index, check) in verify.checks.iter().enumerate() {
            self.out.verify_line(
                self.rec.id.as_str(),
                index,
                "info",
                &format!("check {}", check.describe()),
            );
            let result = self
                .run_check(&mut remote, index, check, verify.timeout)
                .await?;
            if let Some(detail) = result {
                remote.close().await;
                return Ok(Outcome {
                    failed: Some((index, detail)),
                });
            }
        }
        remote.close().await;
        Ok(Outcome { failed: None })
    }

    /// One RunInstances from the image, in the build's network, under the write-ahead rule.
    async fn create_test_instance(
        &mut self,
        image: &str,
        verify: &VerifySpec,
    ) -> Result<String, BuildError> {
        let (zone, vswitch) = self.test_placement(verify).await?;
        let mut tags = self.tags();
        tags.push(("bakerd:role".into(), "verify".into()));
        let params = InstanceParams {
            source_image_id: image.to_string(),
            instance_type: verify
                .instance
                .instance_type
                .clone()
                .unwrap_or_else(|| self.spec.instance.instance_type.clone()),
            zone,
            security_group: self
                .resource("ssh_security_group")
                .unwrap_or_default()
                .into(),
            vswitch,
            key_pair: self.resource("key_pair").unwrap_or_default().into(),
            name: format!("{}-verify", self.temp_name()),
            system_disk_category: self.spec.instance.system_disk.category.clone(),
            system_disk_size_gb: self.spec.instance.system_disk.size_gb,
            internet_max_bandwidth_out: self.spec.internet_max_bandwidth_out(),
            user_data: None,
            // The image brings its own data disks (its disk mappings); none are added.
            data_disks: Vec::new(),
            internet_charge_type: self.spec.instance.internet_charge_type.clone(),
            security_enhancement_strategy: self.spec.instance.security_enhancement_strategy.clone(),
            tags,
        };
        let cloud = self.cloud.clone();
        let step = self.step_name(RUN_STEP);
        self.create(&step, ROLE, |token| async move {
            cloud.run_instance(&token, &params).await
        })
        .await
    }

    /// The test instance's zone and vSwitch: the build's, unless `verify.instance.zone` names
    /// another zone; then a temporary vSwitch of its own there, in the build's VPC, created
    /// under the write-ahead rule and deleted with the build's other temporary resources.
    async fn test_placement(
        &mut self,
        verify: &VerifySpec,
    ) -> Result<(Option<String>, String), BuildError> {
        let build_vswitch = self.resource("ssh_vswitch").unwrap_or_default().to_string();
        let Some(zone) = verify.instance.zone.clone() else {
            return Ok((self.spec.instance.zone.clone(), build_vswitch));
        };
        if let Some(vswitch) = self.resource(VSWITCH_ROLE) {
            return Ok((Some(zone), vswitch.to_string()));
        }
        let build = self.cloud.vswitch(&build_vswitch).await?;
        let Some(build) = build.filter(|v| v.zone_id != zone) else {
            return Ok((Some(zone), build_vswitch));
        };
        // Validation made sure there is room for it (`verify.instance.zone`).
        let cidr = self.spec.instance.verify_vswitch_cidr().unwrap_or_default();
        let (cloud, tags) = (self.cloud.clone(), self.tags());
        let name = format!("{}-verify", self.temp_name());
        let z = zone.clone();
        let vswitch = self
            .create("verify-create-vswitch", VSWITCH_ROLE, |token| async move {
                cloud
                    .create_vswitch(&token, &build.vpc_id, &z, &cidr, &name, &tags)
                    .await
            })
            .await?;
        self.cloud.wait_vswitch_available(&vswitch).await?;
        Ok((Some(zone), vswitch))
    }

    /// Runs one check; `Ok(None)` when it passed, `Ok(Some(output))` when it failed.
    async fn run_check(
        &mut self,
        remote: &mut Remote,
        index: usize,
        check: &VerifyCheck,
        timeout: std::time::Duration,
    ) -> Result<Option<String>, BuildError> {
        let body = match check {
            VerifyCheck::Script(path) => {
                let local = self.spec.resolve_path(path);
                std::fs::read(&local).map_err(|source| BuildError::ReadLocal {
                    what: format!("verify check {index} script"),
                    path: local,
                    source,
                })?
            }
            builtin => builtin.builtin_script().unwrap_or_default().into_bytes(),
        };
        let remote_path = format!("/tmp/bakerd-{}-verify-{index}.sh", self.rec.id);
        let (out, build) = (self.out.clone(), self.rec.id.to_string());
        let on_line = move |stream: &str, line: &str| out.verify_line(&build, index, stream, line);
        let ran =
            tokio::time::timeout(timeout, remote.run_script(&body, &remote_path, "", on_line))
                .await;
        match ran {
            Err(_) => Ok(Some(format!(
                "did not finish within {}s (verify.timeout)",
                timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(done)) if done.success() => Ok(None),
            Ok(Ok(done)) => Ok(Some(done.describe())),
        }
    }

    /// After an error (not a failed check): the test instance goes, and the run is retired so a
    /// resume boots a fresh one.
    async fn discard_test_instance(&mut self) -> Result<(), BuildError> {
        if self.resource(ROLE).is_some() || self.rec.intents.contains_key(&self.step_name(RUN_STEP))
        {
            self.delete_role(ROLE).await?;
            self.retire(RUN_STEP, ROLE)?;
        }
        Ok(())
    }

    /// Sets `bakerd:verified` on the image (and in the record's provenance).
    async fn tag_verified(&mut self, image: &str, passed: bool) -> Result<(), BuildError> {
        let value = if passed { "true" } else { "false" };
        self.cloud
            .tag_image(image, &[(VERIFIED_TAG.to_string(), value.to_string())])
            .await?;
        if !self.verify_only() {
            self.record_provenance(value)?;
        }
        self.event(
            "verify",
            format!("image {image} tagged {VERIFIED_TAG}={value}"),
        )?;
        Ok(())
    }

    /// `delete_image`: deletes the image and its snapshot and retires both create steps, so a
    /// resume makes new ones. Returns whether the image was deleted. Never for `bakerd verify`.
    async fn apply_failure_policy(
        &mut self,
        image: &str,
        verify: &VerifySpec,
    ) -> Result<bool, BuildError> {
        if verify.on_failure != VerifyOnFailure::DeleteImage || self.verify_only() {
            return Ok(false);
        }
        self.cloud.delete_image_and_snapshots(image).await?;
        self.event(
            "verify",
            format!("image {image} and its snapshot deleted (verify.on_failure: delete_image)"),
        )?;
        self.retire("create-image", "image")?;
        self.retire("create-snapshot", "snapshot")?;
        Ok(true)
    }

    /// After a failed verification with `on_failure: cleanup`: the temporary resources go; a
    /// build's image stays or went per `verify.on_failure`; the next `resume` starts a new
    /// attempt. A `bakerd verify` record keeps everything but its temporary resources.
    pub(super) async fn cleanup_after_verify_failure(&mut self) -> Result<(), BuildError> {
        if self.verify_only() {
            return self.cleanup_temporary(false).await;
        }
        self.cleanup_temporary(false).await?;
        self.start_new_attempt()
    }
}
