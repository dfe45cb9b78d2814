//! Images: describe, create, delete, copy, share.

use super::{action, numbered_paging, Ack, Params};
use crate::client::types::{inner_list, lenient_string, ImageStatus, Tag};
use serde::Deserialize;

/// Every image status; `DescribeImages` returns only `Available` ones unless asked (§4.2).
pub const ALL_IMAGE_STATUSES: &str =
    "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated";

/// `DescribeImages` (PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeImages {
    pub region_id: String,
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    pub image_family: Option<String>,
    /// `system|self|others|marketplace`.
    pub image_owner_alias: Option<String>,
    /// Comma-separated statuses; `None` = the API default (Available only). See [`ALL_IMAGE_STATUSES`].
    pub status: Option<String>,
    pub snapshot_id: Option<String>,
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    /// ≤ 100.
    pub page_size: Option<u32>,
}
action!(
    DescribeImages,
    "DescribeImages",
    ReadOnly,
    DescribeImagesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("ImageId", self.image_id.as_ref())
            .opt("ImageName", self.image_name.as_ref())
            .opt("ImageFamily", self.image_family.as_ref())
            .opt("ImageOwnerAlias", self.image_owner_alias.as_ref())
            .opt("Status", self.status.as_ref())
            .opt("SnapshotId", self.snapshot_id.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeImagesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub images: Vec<Image>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    pub image_id: String,
    #[serde(default)]
    pub image_name: String,
    #[serde(default)]
    pub image_family: String,
    pub status: ImageStatus,
    /// Percent string, e.g. `"100%"`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub progress: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, rename = "OSType")]
    pub os_type: String,
    #[serde(default, rename = "OSName")]
    pub os_name: String,
    #[serde(default)]
    pub image_owner_alias: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub disk_device_mappings: Vec<DiskDeviceMapping>,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskDeviceMapping {
    #[serde(default)]
    pub snapshot_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub size: String,
    #[serde(default)]
    pub device: String,
    #[serde(default, rename = "Type")]
    pub disk_type: String,
}

numbered_paging!(DescribeImages, Image, images, 100);

/// `CreateImage` from a snapshot (or an instance).
#[derive(Debug, Clone, Default)]
pub struct CreateImage {
    pub region_id: String,
    pub snapshot_id: Option<String>,
    pub instance_id: Option<String>,
    pub image_name: Option<String>,
    pub image_family: Option<String>,
    pub image_version: Option<String>,
    pub description: Option<String>,
    pub architecture: Option<String>,
    pub platform: Option<String>,
    /// `DiskDeviceMapping.N`: the image's disks, each from a snapshot (one system disk, up to 16
    /// data disks). Outranks `SnapshotId` when both are given, so send one or the other.
    pub disk_device_mappings: Vec<ImageDiskMapping>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// One `DiskDeviceMapping.N` of CreateImage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDiskMapping {
    pub snapshot_id: String,
    /// `system` or `data`.
    pub disk_type: String,
    /// GiB; unset: the snapshot's source disk size.
    pub size: Option<u64>,
    /// Device name in the image (`/dev/vdb`, …); unset: ECS assigns one.
    pub device: Option<String>,
}

impl Params {
    /// `DiskDeviceMapping.N.*` for each mapping, numbered from 1.
    fn disk_device_mappings(self, mappings: &[ImageDiskMapping]) -> Self {
        mappings.iter().enumerate().fold(self, |params, (i, m)| {
            let field = |f: &str| format!("DiskDeviceMapping.{}.{f}", i + 1);
            params
                .set(&field("SnapshotId"), &m.snapshot_id)
                .set(&field("DiskType"), &m.disk_type)
                .opt(&field("Size"), m.size.as_ref())
                .opt(&field("Device"), m.device.as_ref())
        })
    }
}
action!(
    CreateImage,
    "CreateImage",
    ClientToken,
    CreateImageResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("SnapshotId", self.snapshot_id.as_ref())
            .opt("InstanceId", self.instance_id.as_ref())
            .opt("ImageName", self.image_name.as_ref())
            .opt("ImageFamily", self.image_family.as_ref())
            .opt("ImageVersion", self.image_version.as_ref())
            .opt("Description", self.description.as_ref())
            .opt("Architecture", self.architecture.as_ref())
            .opt("Platform", self.platform.as_ref())
            .disk_device_mappings(&self.disk_device_mappings)
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateImageResponse {
    pub image_id: String,
    #[serde(default)]
    pub request_id: String,
}

/// `DeleteImage` (unknown custom image → success).
#[derive(Debug, Clone, Default)]
pub struct DeleteImage {
    pub region_id: String,
    pub image_id: String,
    pub force: Option<bool>,
}
action!(DeleteImage, "DeleteImage", Unprotected, Ack, |self| {
    Params::new()
        .set("RegionId", &self.region_id)
        .set("ImageId", &self.image_id)
        .flag("Force", self.force)
});

/// `CopyImage` to another region; the answer carries the new image's id.
#[derive(Debug, Clone, Default)]
pub struct CopyImage {
    /// Source region.
    pub region_id: String,
    pub image_id: String,
    pub destination_region_id: String,
    pub destination_image_name: Option<String>,
    pub destination_description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    CopyImage,
    "CopyImage",
    ClientToken,
    CopyImageResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ImageId", &self.image_id)
            .set("DestinationRegionId", &self.destination_region_id)
            .opt("DestinationImageName", self.destination_image_name.as_ref())
            .opt(
                "DestinationDescription",
                self.destination_description.as_ref(),
            )
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyImageResponse {
    pub image_id: String,
}

/// `ModifyImageSharePermission` (≤ 10 accounts per call are processed).
#[derive(Debug, Clone, Default)]
pub struct ModifyImageSharePermission {
    pub region_id: String,
    pub image_id: String,
    pub add_accounts: Vec<String>,
    pub remove_accounts: Vec<String>,
}
action!(
    ModifyImageSharePermission,
    "ModifyImageSharePermission",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ImageId", &self.image_id)
            .list("AddAccount", &self.add_accounts)
            .list("RemoveAccount", &self.remove_accounts)
    }
);

/// `DescribeImageSharePermission`: the accounts an image is shared with.
#[derive(Debug, Clone, Default)]
pub struct DescribeImageSharePermission {
    pub region_id: String,
    pub image_id: String,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeImageSharePermission,
    "DescribeImageSharePermission",
    ReadOnly,
    DescribeImageSharePermissionResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ImageId", &self.image_id)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeImageSharePermissionResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub accounts: Vec<ShareAccount>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShareAccount {
    #[serde(deserialize_with = "lenient_string")]
    pub aliyun_id: String,
}

numbered_paging!(DescribeImageSharePermission, ShareAccount, accounts, 100);
