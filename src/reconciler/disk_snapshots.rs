//! The snapshot step: the system disk's snapshot and, when the image carries them
//! (`image.data_disks: include`), one per data disk of the build instance.
//!
//! Why one step for all: the image needs every disk's snapshot, taken while the instance is
//! stopped, and waiting for several together (one DescribeSnapshots with their ids per poll)
//! costs no more than waiting for one.
//!
//! Guarantees: each CreateSnapshot has its own write-ahead intent and deterministic ClientToken
//! (`create-snapshot`, `create-data-snapshot-<n>`) and is tagged with the build at creation, so a
//! kill between any two calls resumes without a duplicate, and `gc` finds them by tag. The data
//! disks are looked up once (DescribeDisks) and recorded, so a resume maps the same disks.

use super::cloud::{AttachedDisk, ImageDataDisk};
use super::crash;
use super::reconcile::{BuildError, Reconciler};
use super::steps::map_pairs;
use crate::spec::ImageDataDisks;

/// Where the build record keeps the data disks looked up for the image (a JSON list).
const DATA_DISKS_KEY: &str = "data-disks";

/// Prefix of the record's roles of data disk snapshots.
pub const DATA_SNAPSHOT_PREFIX: &str = "data_snapshot_";

/// The record's role of data disk `index`'s snapshot.
pub fn data_snapshot_role(index: usize) -> String {
    format!("{DATA_SNAPSHOT_PREFIX}{index}")
}

/// One disk to snapshot: its create step, role, disk id and what it is (for the description).
struct DiskToSnapshot {
    step: String,
    role: String,
    disk: String,
    what: String,
}

impl Reconciler {
    /// Whether the image carries the build instance's data disks.
    pub fn image_has_data_disks(&self) -> bool {
        self.spec.image.data_disks == ImageDataDisks::Include && !self.verify_only()
    }

    /// The instance's system disk, looked up once and recorded.
    pub(super) async fn system_disk(&mut self, instance: &str) -> Result<String, BuildError> {
        if let Some(d) = self.resource("system_disk") {
            return Ok(d.to_string());
        }
        let d = self.cloud.system_disk(instance).await?;
        self.set_resource("system_disk", &d)?;
        Ok(d)
    }

    /// The data disks the image carries (none unless `image.data_disks: include`), looked up
    /// once and recorded; every disk the spec lists must be there.
    pub(super) async fn data_disks(
        &mut self,
        instance: &str,
    ) -> Result<Vec<AttachedDisk>, BuildError> {
        if !self.image_has_data_disks() {
            return Ok(Vec::new());
        }
        if let Some(disks) = self.recorded_data_disks() {
            return Ok(disks);
        }
        let disks = self.cloud.data_disks(instance).await?;
        let listed = self.spec.instance.data_disks.len();
        if disks.len() != listed {
            return Err(BuildError::DataDiskCount {
                instance: instance.to_string(),
                found: disks.len(),
                listed,
            });
        }
        let value = serde_json::to_value(&disks).expect("disk list serializes to JSON");
        self.rec.results.insert(DATA_DISKS_KEY.to_string(), value);
        self.save()?;
        crash::point("data-disks:recorded");
        Ok(disks)
    }

    fn recorded_data_disks(&self) -> Option<Vec<AttachedDisk>> {
        let value = self.rec.results.get(DATA_DISKS_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// InstanceStopped → SnapshotReady: snapshot the system disk (and the data disks the image
    /// carries), then wait until all are `accomplished`.
    pub(super) async fn snapshot(&mut self) -> Result<(), BuildError> {
        let instance = self.instance_id()?;
        let mut disks = vec![DiskToSnapshot {
            step: "create-snapshot".into(),
            role: "snapshot".into(),
            disk: self.system_disk(&instance).await?,
            what: "system disk".into(),
        }];
        for (i, d) in self.data_disks(&instance).await?.into_iter().enumerate() {
            disks.push(DiskToSnapshot {
                step: format!("create-data-snapshot-{i}"),
                role: data_snapshot_role(i),
                disk: d.id,
                what: format!("data disk {}", d.device),
            });
        }
        let mut ids = Vec::new();
        for disk in &disks {
            ids.push(self.snapshot_disk(disk).await?);
        }
        let out = self.out.clone();
        let timeout = self.spec.timeouts.snapshot;
        let waited = self
            .cloud
            .wait_snapshots(&ids, timeout, move |p| {
                crash::point("wait-snapshot:poll");
                out.progress("snapshot", p)
            })
            .await;
        self.out.progress_done("snapshot");
        let steps: Vec<(String, String)> = disks.into_iter().map(|d| (d.step, d.role)).collect();
        self.retire_if_dead(&steps, waited).await
    }

    /// One CreateSnapshot under the write-ahead rule; returns the snapshot id.
    async fn snapshot_disk(&mut self, d: &DiskToSnapshot) -> Result<String, BuildError> {
        let name = match d.role.as_str() {
            "snapshot" => self.temp_name(),
            role => format!("{}-{}", self.temp_name(), role.replace('_', "-")),
        };
        let tags = [self.tags(), map_pairs(&self.spec.image.tags)].concat();
        let (cloud, disk, what) = (self.cloud.clone(), d.disk.clone(), d.what.clone());
        let step = self.step_name(&d.step);
        self.create(&step, &d.role, |token| async move {
            cloud
                .create_snapshot(&token, &disk, &what, &name, &tags)
                .await
        })
        .await
    }

    /// The data disks for CreateImage's `DiskDeviceMapping`: each recorded disk with its
    /// snapshot (empty when the image is the system disk only).
    pub(super) fn image_data_disks(&self) -> Result<Vec<ImageDataDisk>, BuildError> {
        if !self.image_has_data_disks() {
            return Ok(Vec::new());
        }
        let disks = self.recorded_data_disks().unwrap_or_default();
        disks
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let snapshot = self.resource(&data_snapshot_role(i)).ok_or_else(|| {
                    BuildError::DataSnapshotMissing {
                        build: self.rec.id.to_string(),
                        device: d.device.clone(),
                    }
                })?;
                Ok(ImageDataDisk {
                    snapshot: snapshot.to_string(),
                    device: d.device,
                    size_gb: d.size_gb,
                })
            })
            .collect()
    }
}
