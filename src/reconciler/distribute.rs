//! Distribution-only builds: when a spec differs from an existing image's spec only in
//! `image.copy_regions` / `image.share_accounts`, `apply` records a build that starts at that
//! image (phase `ImageReady`) and only copies, shares and re-tags it — no instance, no
//! snapshot, no rebuild.
//!
//! Guarantees: the image and any copy found in a region are never deleted by this build
//! (not on failure, not on `cancel`); every copy goes through the write-ahead `once` like a
//! normal build's, so a resume never copies twice.
//! Assumptions: copies made since content hashes exist carry `bakerd:content-hash`; a region
//! holding an Available image with the spec's content hash already has its copy.

use super::cloud::CloudError;
use super::provenance::{CONTENT_HASH_TAG, SPEC_HASH_TAG};
use super::reconcile::{BuildError, Reconciler};
use serde_json::{json, Value};

/// Key in a build record's results marking a distribution-only build: `{image, content_hash}`.
pub const DISTRIBUTE_KEY: &str = "distribute_only";

/// The results entry that marks a distribution-only build of `image`.
pub fn marker(image: &str, content_hash: &str) -> Value {
    json!({"image": image, "content_hash": content_hash})
}

impl Reconciler {
    /// True for records that only copy, share and tag an existing image.
    pub fn distribute_only(&self) -> bool {
        self.rec.results.contains_key(DISTRIBUTE_KEY)
    }

    fn distributed_content_hash(&self) -> String {
        self.rec
            .results
            .get(DISTRIBUTE_KEY)
            .and_then(|m| m.get("content_hash"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// ImageReady → Verified for a distribution-only build: reuse the copies regions already
    /// hold, copy to the others, share, then tag the image and its copies with this spec's hash
    /// so the next `apply` finds them up to date.
    pub(super) async fn redistribute(&mut self, image: &str) -> Result<(), BuildError> {
        let content = self.distributed_content_hash();
        for region in self.spec.image.copy_regions.clone() {
            self.adopt_existing_copy(&region, &content).await?;
        }
        let tags = self.image_tags(&self.recorded_verified());
        self.copy_and_share(image, &tags).await?;
        let mut targets = vec![(self.spec.region.clone(), image.to_string())];
        for region in self.spec.image.copy_regions.clone() {
            if let Some(copy) = self.resource(&format!("image_copy_{region}")) {
                targets.push((region, copy.to_string()));
            }
        }
        let (cloud, hash) = (self.cloud.clone(), self.rec.spec_hash.clone());
        self.once("tag-spec-hash", |_| async move {
            let tag = [(SPEC_HASH_TAG.to_string(), hash)];
            for (region, id) in &targets {
                cloud.in_region(region).tag_image(id, &tag).await?;
            }
            Ok::<_, CloudError>("ok".to_string())
        })
        .await?;
        Ok(())
    }

    /// Records a copy of this content that `region` already holds as the build's copy there, so
    /// the copy step finds its result and makes no call.
    async fn adopt_existing_copy(&mut self, region: &str, content: &str) -> Result<(), BuildError> {
        let step = format!("copy-image-{region}");
        if self.rec.results.contains_key(&step) || self.rec.intents.contains_key(&step) {
            return Ok(());
        }
        let found = self
            .cloud
            .in_region(region)
            .images_tagged(CONTENT_HASH_TAG, content)
            .await?;
        let Some(copy) = found.into_iter().next() else {
            return Ok(());
        };
        self.rec
            .results
            .insert(step, Value::String(copy.id.clone()));
        self.set_resource(&format!("image_copy_{region}"), &copy.id)?;
        self.event(
            "distribute",
            format!("{region} already holds image {}; not copied again", copy.id),
        )?;
        Ok(())
    }
}
