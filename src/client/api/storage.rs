//! Disks and snapshots.

use super::{action, numbered_paging, Ack, Params};
use crate::client::types::{
    inner_list, lenient_string, lenient_u64, DiskStatus, SnapshotStatus, Tag,
};
use serde::Deserialize;

/// `DescribeDisks` (PageNumber paging); bakerd finds a system disk by instance + `DiskType=system`.
#[derive(Debug, Clone, Default)]
pub struct DescribeDisks {
    pub region_id: String,
    pub instance_id: Option<String>,
    /// `DiskIds` JSON array.
    pub disk_ids: Vec<String>,
    /// `all|system|data`.
    pub disk_type: Option<String>,
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeDisks,
    "DescribeDisks",
    ReadOnly,
    DescribeDisksResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("InstanceId", self.instance_id.as_ref())
            .json_list("DiskIds", &self.disk_ids)
            .opt("DiskType", self.disk_type.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeDisksResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Disk {
    pub disk_id: String,
    #[serde(default, rename = "Type")]
    pub disk_type: String,
    #[serde(default)]
    pub category: String,
    /// GiB.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: u64,
    pub status: DiskStatus,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub image_id: String,
}

numbered_paging!(DescribeDisks, Disk, disks, 100);

/// `CreateSnapshot` of a disk.
#[derive(Debug, Clone, Default)]
pub struct CreateSnapshot {
    pub disk_id: String,
    pub snapshot_name: Option<String>,
    pub description: Option<String>,
    pub retention_days: Option<u32>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    CreateSnapshot,
    "CreateSnapshot",
    ClientToken,
    CreateSnapshotResponse,
    |self| {
        Params::new()
            .set("DiskId", &self.disk_id)
            .opt("SnapshotName", self.snapshot_name.as_ref())
            .opt("Description", self.description.as_ref())
            .opt("RetentionDays", self.retention_days.as_ref())
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSnapshotResponse {
    pub snapshot_id: String,
    #[serde(default)]
    pub request_id: String,
}

/// `DescribeSnapshots` (PageNumber paging; filters combine with AND).
#[derive(Debug, Clone, Default)]
pub struct DescribeSnapshots {
    pub region_id: String,
    /// `SnapshotIds` JSON array.
    pub snapshot_ids: Vec<String>,
    pub disk_id: Option<String>,
    pub instance_id: Option<String>,
    pub snapshot_name: Option<String>,
    pub status: Option<String>,
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeSnapshots,
    "DescribeSnapshots",
    ReadOnly,
    DescribeSnapshotsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .json_list("SnapshotIds", &self.snapshot_ids)
            .opt("DiskId", self.disk_id.as_ref())
            .opt("InstanceId", self.instance_id.as_ref())
            .opt("SnapshotName", self.snapshot_name.as_ref())
            .opt("Status", self.status.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSnapshotsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    pub snapshot_id: String,
    #[serde(default)]
    pub snapshot_name: String,
    pub status: SnapshotStatus,
    /// Percent string, `"45%"`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub progress: String,
    /// Seconds the cloud expects the snapshot still needs (0 when unknown).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub remain_time: u64,
    #[serde(default)]
    pub source_disk_id: String,
    /// GiB (string in the Tea models, number in some samples).
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_disk_size: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

numbered_paging!(DescribeSnapshots, Snapshot, snapshots, 100);

/// `DeleteSnapshot` (unknown id → success; blocked while an image uses it).
#[derive(Debug, Clone, Default)]
pub struct DeleteSnapshot {
    pub snapshot_id: String,
    pub force: Option<bool>,
}
action!(
    DeleteSnapshot,
    "DeleteSnapshot",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("SnapshotId", &self.snapshot_id)
            .flag("Force", self.force)
    }
);
