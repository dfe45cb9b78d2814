//! Snapshots and images: create, wait, find, delete, copy, share.

use super::*;
use crate::reconciler::provenance::{
    CONTENT_HASH_TAG, SOURCE_IMAGE_TAG, SPEC_HASH_TAG, VERIFIED_TAG,
};
use crate::spec::SourceImage;

/// Whether the image a spec describes exists.
#[derive(Debug, Clone)]
pub enum Freshness {
    /// An image of this spec (and, for a family, on the family's newest image) exists.
    UpToDate(FoundImage),
    /// No image of this spec; `base` is the family's newest image when the spec names a family.
    Missing { base: Option<String> },
    /// Images of this spec exist, but none on the family's newest image `base`.
    BaseChanged {
        family: String,
        previous: FoundImage,
        base: String,
    },
    /// No image of this spec, but `image` holds the same content (same spec apart from
    /// `image.copy_regions` / `image.share_accounts`): copy and share it, don't rebuild.
    DistributionChanged { image: FoundImage },
}

impl Freshness {
    /// Why the spec is out of date, in words (`status`, `validate`, `apply`); `None` when up to date.
    pub fn why_out_of_date(&self) -> Option<String> {
        match self {
            Freshness::UpToDate(_) => None,
            Freshness::Missing { .. } => Some("no image built from this spec exists".into()),
            Freshness::BaseChanged {
                family,
                previous,
                base,
            } => {
                Some(format!(
                "source family {family} now resolves to {base}; the newest image of this spec, {} \
                 ({}), was built on {}",
                previous.id,
                previous.name,
                previous.source_image.as_deref().unwrap_or("an unrecorded base image")
            ))
            }
            Freshness::DistributionChanged { image } => Some(format!(
                "image {} ({}) has this spec's content, but `image.copy_regions` or \
                 `image.share_accounts` changed",
                image.id, image.name
            )),
        }
    }

    /// The source image id the check resolved (family specs), to pin in the new build.
    pub fn resolved_base(&self) -> Option<&str> {
        match self {
            Freshness::Missing { base } => base.as_deref(),
            Freshness::BaseChanged { base, .. } => Some(base),
            Freshness::UpToDate(_) | Freshness::DistributionChanged { .. } => None,
        }
    }
}

impl Cloud {
    /// The newest Available image carrying `bakerd:spec-hash=<hash>`, if any; an image that
    /// failed its `verify` checks (`bakerd:verified=false`) does not count.
    pub async fn image_for_spec_hash(&self, hash: &str) -> Result<Option<FoundImage>> {
        Ok(self.images_for_spec_hash(hash).await?.into_iter().next())
    }

    /// Every Available image carrying `bakerd:spec-hash=<hash>`, newest first.
    async fn images_for_spec_hash(&self, hash: &str) -> Result<Vec<FoundImage>> {
        self.images_tagged(SPEC_HASH_TAG, hash).await
    }

    /// Every Available image of this account in the region tagged `key=value`, newest first;
    /// images that failed their `verify` checks (`bakerd:verified=false`) do not count.
    pub async fn images_tagged(&self, key: &str, value: &str) -> Result<Vec<FoundImage>> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_owner_alias: Some("self".into()),
            tags: vec![Tag::new(key, value)],
            ..Default::default()
        };
        let mut images: Vec<Image> = self.client.list_all(request).await?;
        images.retain(|i| {
            !i.tags
                .iter()
                .any(|t| t.key == VERIFIED_TAG && t.value == "false")
        });
        images.sort_by(|a, b| b.creation_time.cmp(&a.creation_time));
        Ok(images
            .into_iter()
            .map(|i| {
                let tag = |key: &str| {
                    i.tags
                        .iter()
                        .find(|t| t.key == key)
                        .map(|t| t.value.clone())
                };
                FoundImage {
                    source_image: tag(SOURCE_IMAGE_TAG),
                    spec_hash: tag(SPEC_HASH_TAG),
                    id: i.image_id,
                    name: i.image_name,
                }
            })
            .collect())
    }

    /// Whether an image for this exact spec exists — for a family-sourced spec, one built on the
    /// family's newest image *now*: a newer base image makes the spec out of date. With no such
    /// image, an image of the same content (see [`Spec::content_hash`]) means only its
    /// distribution changed.
    ///
    /// One DescribeImages answers both: every image bakerd makes carries its content hash next
    /// to its spec hash, and an image of this spec has this spec's content, so the images of
    /// this content include those of this spec (told apart by their spec-hash tag). Images made
    /// before content hashes existed are not found, hence rebuilt once (docs/api-calls.md).
    pub async fn freshness(&self, spec: &Spec, hash: &str) -> Result<Freshness> {
        let newest = match &spec.source_image {
            SourceImage::Family(family) => Some(self.image_from_family(family).await?),
            SourceImage::Id(_) => None,
        };
        let on_base = |images: &[FoundImage]| -> Option<FoundImage> {
            images
                .iter()
                .find(|i| newest.is_none() || i.source_image == newest)
                .cloned()
        };
        let (same_spec, same_content) = match spec.content_hash() {
            Ok(content) => {
                let same_content = self.images_tagged(CONTENT_HASH_TAG, &content).await?;
                let same_spec: Vec<FoundImage> = same_content
                    .iter()
                    .filter(|i| i.spec_hash.as_deref() == Some(hash))
                    .cloned()
                    .collect();
                (same_spec, same_content)
            }
            Err(_) => (self.images_for_spec_hash(hash).await?, Vec::new()),
        };
        if let Some(image) = on_base(&same_spec) {
            return Ok(Freshness::UpToDate(image));
        }
        if let (SourceImage::Family(family), Some(previous), Some(base)) =
            (&spec.source_image, same_spec.first(), &newest)
        {
            return Ok(Freshness::BaseChanged {
                family: family.clone(),
                previous: previous.clone(),
                base: base.clone(),
            });
        }
        if let Some(image) = on_base(&same_content) {
            return Ok(Freshness::DistributionChanged { image });
        }
        Ok(Freshness::Missing { base: newest })
    }

    /// Resolves a source image family to its newest Available image id.
    pub async fn image_from_family(&self, family: &str) -> Result<String> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_family: Some(family.to_string()),
            ..Default::default()
        };
        let mut images: Vec<Image> = self.client.list_all(request).await?;
        images.sort_by(|a, b| b.creation_time.cmp(&a.creation_time));
        images
            .into_iter()
            .next()
            .map(|i| i.image_id)
            .ok_or_else(|| {
                CloudError::Unexpected(format!(
                    "no Available image in family {family:?} in {}",
                    self.region
                ))
            })
    }

    /// One CreateSnapshot of `disk`; `what` says which disk it is, for the description.
    pub async fn create_snapshot(
        &self,
        token: &str,
        disk: &str,
        what: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CreateSnapshot {
            disk_id: disk.to_string(),
            snapshot_name: Some(name.to_string()),
            description: Some(format!("{what} of a bakerd build")),
            tags: tags(t),
            client_token: Some(token.to_string()),
            ..Default::default()
        };
        Ok(self.client.call(&request).await?.snapshot_id)
    }

    /// Waits until every snapshot in `ids` is `accomplished` (one `failed` ends the wait at once),
    /// polling them together and reporting the least advanced one's percent.
    pub async fn wait_snapshots(
        &self,
        ids: &[String],
        deadline: Duration,
        progress: impl Fn(u32) + Send + Sync,
    ) -> Result<()> {
        self.waiter(Some(deadline))
            .on_progress(move |p| progress(p.percent.unwrap_or(0) as u32))
            .snapshots(&self.region, ids)
            .await?;
        Ok(())
    }

    /// Deletes a snapshot (gone is fine).
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let request = DeleteSnapshot {
            snapshot_id: id.to_string(),
            force: Some(true),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&request)).await)
    }

    /// Snapshots tagged as belonging to `build` (found by tag, for cleanup after a crash).
    pub async fn snapshots_of_build(&self, build: &str) -> Result<Vec<String>> {
        let request = DescribeSnapshots {
            region_id: self.region.clone(),
            tags: vec![Tag::new("bakerd:build-id", build)],
            ..Default::default()
        };
        Ok(self
            .client
            .list_all(request)
            .await?
            .into_iter()
            .map(|s| s.snapshot_id)
            .collect())
    }

    pub async fn create_image(&self, token: &str, p: &ImageParams) -> Result<String> {
        // With data disks, every disk goes in `DiskDeviceMapping.N` (which outranks `SnapshotId`).
        let (snapshot_id, disk_device_mappings) = match p.data_disks.is_empty() {
            true => (Some(p.snapshot.clone()), Vec::new()),
            false => (None, disk_mappings(p)),
        };
        let request = CreateImage {
            region_id: self.region.clone(),
            snapshot_id,
            disk_device_mappings,
            image_name: Some(p.name.clone()),
            image_family: p.family.clone(),
            image_version: p.version.clone(),
            description: p.description.clone(),
            tags: tags(&p.tags),
            client_token: Some(token.to_string()),
            ..Default::default()
        };
        Ok(self.client.call(&request).await?.image_id)
    }

    /// Waits for `Available` (`CreateFailed` ends the wait at once), reporting percent.
    pub async fn wait_image(
        &self,
        id: &str,
        deadline: Duration,
        progress: impl Fn(u32) + Send + Sync,
    ) -> Result<()> {
        self.waiter(Some(deadline))
            .on_progress(move |p| progress(p.percent.unwrap_or(0) as u32))
            .image(&self.region, id)
            .await?;
        Ok(())
    }

    /// The status of image `id` (`Available`, `Creating`, …), `None` when there is no such image.
    pub async fn image_status(&self, id: &str) -> Result<Option<String>> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_id: Some(id.to_string()),
            status: Some(ALL_IMAGE_STATUSES.into()),
            ..Default::default()
        };
        let images: Vec<Image> = self.client.list_all(request).await?;
        Ok(images
            .into_iter()
            .find(|i| i.image_id == id)
            .map(|i| i.status.as_str().to_string()))
    }

    /// Ids of own images named `name`, in any status.
    pub async fn images_named(&self, name: &str) -> Result<Vec<String>> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_name: Some(name.to_string()),
            image_owner_alias: Some("self".into()),
            status: Some(ALL_IMAGE_STATUSES.into()),
            ..Default::default()
        };
        let images = self.client.list_all(request).await?;
        Ok(images
            .into_iter()
            .filter(|i| i.image_name == name)
            .map(|i| i.image_id)
            .collect())
    }

    /// Deletes an image, then the snapshots behind it (gone is fine).
    /// Deletes one image and keeps its snapshots (a failed image of a build whose snapshot the
    /// next image is made from).
    pub async fn delete_image(&self, id: &str) -> Result<()> {
        let delete = DeleteImage {
            region_id: self.region.clone(),
            image_id: id.to_string(),
            force: Some(true),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&delete)).await)
    }

    pub async fn delete_image_and_snapshots(&self, id: &str) -> Result<()> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_id: Some(id.to_string()),
            status: Some(ALL_IMAGE_STATUSES.into()),
            ..Default::default()
        };
        let snapshots: Vec<String> = self
            .client
            .list_all(request)
            .await?
            .into_iter()
            .flat_map(|i| i.disk_device_mappings)
            .map(|m| m.snapshot_id)
            .filter(|s| !s.is_empty())
            .collect();
        self.delete_image(id).await?;
        for snapshot in snapshots {
            self.delete_snapshot(&snapshot).await?;
        }
        Ok(())
    }

    /// Copies an image to `region`; returns the copy's id there.
    pub async fn copy_image(
        &self,
        token: &str,
        image: &str,
        region: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CopyImage {
            region_id: self.region.clone(),
            image_id: image.to_string(),
            destination_region_id: region.to_string(),
            destination_image_name: Some(name.to_string()),
            destination_description: None,
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.image_id)
    }

    /// Adds or overwrites tags on an image (`TagResources`; repeating it is harmless).
    pub async fn tag_image(&self, image: &str, t: &[(String, String)]) -> Result<()> {
        let request = TagResources {
            region_id: self.region.clone(),
            resource_type: TagType::Image,
            resource_ids: vec![image.to_string()],
            tags: tags(t),
        };
        repeat_if_lost(|| self.client.call(&request)).await?;
        Ok(())
    }

    /// Shares an image with other accounts (at most 10 per call, as ECS allows).
    pub async fn share_image(&self, image: &str, accounts: &[String]) -> Result<()> {
        for chunk in accounts.chunks(10) {
            let request = ModifyImageSharePermission {
                region_id: self.region.clone(),
                image_id: image.to_string(),
                add_accounts: chunk.to_vec(),
                remove_accounts: Vec::new(),
            };
            repeat_if_lost(|| self.client.call(&request)).await?;
        }
        Ok(())
    }
}

/// The image's disks for CreateImage: the system disk's snapshot first, then each data disk's.
fn disk_mappings(p: &ImageParams) -> Vec<ImageDiskMapping> {
    let system = ImageDiskMapping {
        snapshot_id: p.snapshot.clone(),
        disk_type: "system".into(),
        size: None,
        device: None,
    };
    let data = p.data_disks.iter().map(|d| ImageDiskMapping {
        snapshot_id: d.snapshot.clone(),
        disk_type: "data".into(),
        size: Some(d.size_gb),
        device: Some(d.device.clone()).filter(|d| !d.is_empty()),
    });
    std::iter::once(system).chain(data).collect()
}
