//! Instances: create, run, start, stop, reboot, delete, describe, public IP.

use super::{action, numbered_paging, Ack, Params};
use crate::client::credentials::Secret;
use crate::client::types::{inner_list, InstanceStatus, Tag};
use serde::Deserialize;

/// Fields shared by `RunInstances` and `CreateInstance`.
#[derive(Debug, Clone, Default)]
pub struct InstanceSpec {
    pub region_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub security_group_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub zone_id: Option<String>,
    pub instance_name: Option<String>,
    pub description: Option<String>,
    pub host_name: Option<String>,
    /// Login password; printed redacted.
    pub password: Option<Secret>,
    pub key_pair_name: Option<String>,
    pub internet_charge_type: Option<String>,
    /// `Active` (install the security agent) or `Deactive`.
    pub security_enhancement_strategy: Option<String>,
    /// Mbit/s; > 0 gets a public IP with RunInstances.
    pub internet_max_bandwidth_out: Option<u32>,
    pub system_disk_category: Option<String>,
    /// GiB.
    pub system_disk_size: Option<u32>,
    /// Base64 user data.
    pub user_data: Option<String>,
    pub instance_charge_type: Option<String>,
    pub spot_strategy: Option<String>,
    /// Tags set at creation (bakerd's ownership tags go here).
    pub tags: Vec<Tag>,
    /// `DataDisk.N`: data disks created and attached with the instance.
    pub data_disks: Vec<DataDisk>,
    /// Idempotency token (≤ 64 ASCII chars), deterministic per build step.
    pub client_token: Option<String>,
}

impl InstanceSpec {
    fn params(&self) -> Params {
        Params::new()
            .set("RegionId", &self.region_id)
            .text("ImageId", &self.image_id)
            .text("InstanceType", &self.instance_type)
            .opt("SecurityGroupId", self.security_group_id.as_ref())
            .opt("VSwitchId", self.vswitch_id.as_ref())
            .opt("ZoneId", self.zone_id.as_ref())
            .opt("InstanceName", self.instance_name.as_ref())
            .opt("Description", self.description.as_ref())
            .opt("HostName", self.host_name.as_ref())
            .opt(
                "Password",
                self.password.as_ref().map(Secret::expose).as_ref(),
            )
            .opt("KeyPairName", self.key_pair_name.as_ref())
            .opt("InternetChargeType", self.internet_charge_type.as_ref())
            .opt(
                "SecurityEnhancementStrategy",
                self.security_enhancement_strategy.as_ref(),
            )
            .opt(
                "InternetMaxBandwidthOut",
                self.internet_max_bandwidth_out.as_ref(),
            )
            .opt("SystemDisk.Category", self.system_disk_category.as_ref())
            .opt("SystemDisk.Size", self.system_disk_size.as_ref())
            .opt("UserData", self.user_data.as_ref())
            .opt("InstanceChargeType", self.instance_charge_type.as_ref())
            .opt("SpotStrategy", self.spot_strategy.as_ref())
            .tags(&self.tags)
            .data_disks(&self.data_disks)
            .opt("ClientToken", self.client_token.as_ref())
    }
}

/// One `DataDisk.N` of RunInstances/CreateInstance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDisk {
    /// GiB; unset with a snapshot: the snapshot's size.
    pub size: Option<u32>,
    pub category: Option<String>,
    pub snapshot_id: Option<String>,
    pub disk_name: Option<String>,
    pub device: Option<String>,
    pub delete_with_instance: bool,
}

impl Params {
    /// `DataDisk.N.*` for each disk, numbered from 1.
    fn data_disks(self, disks: &[DataDisk]) -> Self {
        disks.iter().enumerate().fold(self, |params, (i, disk)| {
            let field = |f: &str| format!("DataDisk.{}.{f}", i + 1);
            params
                .opt(&field("Size"), disk.size.as_ref())
                .opt(&field("Category"), disk.category.as_ref())
                .opt(&field("SnapshotId"), disk.snapshot_id.as_ref())
                .opt(&field("DiskName"), disk.disk_name.as_ref())
                .opt(&field("Device"), disk.device.as_ref())
                .set(&field("DeleteWithInstance"), disk.delete_with_instance)
        })
    }
}

/// `RunInstances`: creates and starts instances (Pending → Starting → Running).
#[derive(Debug, Clone, Default)]
pub struct RunInstances {
    pub spec: InstanceSpec,
    /// 1–100, default 1.
    pub amount: Option<u32>,
}
action!(
    RunInstances,
    "RunInstances",
    ClientToken,
    RunInstancesResponse,
    |self| { self.spec.params().opt("Amount", self.amount.as_ref()) }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunInstancesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub instance_id_sets: Vec<String>,
    #[serde(default)]
    pub request_id: String,
}

/// `CreateInstance`: creates one Stopped instance without public IP.
#[derive(Debug, Clone, Default)]
pub struct CreateInstance {
    pub spec: InstanceSpec,
}
action!(
    CreateInstance,
    "CreateInstance",
    ClientToken,
    CreateInstanceResponse,
    |self| { self.spec.params() }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateInstanceResponse {
    pub instance_id: String,
    #[serde(default)]
    pub request_id: String,
}

/// `StartInstance` (instance must be Stopped).
#[derive(Debug, Clone)]
pub struct StartInstance {
    pub instance_id: String,
}
action!(StartInstance, "StartInstance", Unprotected, Ack, |self| {
    Params::new().set("InstanceId", &self.instance_id)
});

/// `StopInstance` (instance should be Running).
#[derive(Debug, Clone, Default)]
pub struct StopInstance {
    pub instance_id: String,
    /// Power off instead of a clean shutdown.
    pub force_stop: Option<bool>,
    /// `StopCharging` | `KeepCharging`.
    pub stopped_mode: Option<String>,
}
action!(StopInstance, "StopInstance", Unprotected, Ack, |self| {
    Params::new()
        .set("InstanceId", &self.instance_id)
        .flag("ForceStop", self.force_stop)
        .opt("StoppedMode", self.stopped_mode.as_ref())
});

/// `RebootInstance` (Running → Stopping → Starting → Running).
#[derive(Debug, Clone, Default)]
pub struct RebootInstance {
    pub instance_id: String,
    pub force_stop: Option<bool>,
}
action!(
    RebootInstance,
    "RebootInstance",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("InstanceId", &self.instance_id)
            .flag("ForceStop", self.force_stop)
    }
);

/// `DeleteInstance` (Stopped, or any state with `force`).
#[derive(Debug, Clone, Default)]
pub struct DeleteInstance {
    pub instance_id: String,
    pub force: Option<bool>,
}
action!(
    DeleteInstance,
    "DeleteInstance",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("InstanceId", &self.instance_id)
            .flag("Force", self.force)
    }
);

/// `AllocatePublicIpAddress` (Running or Stopped; a repeat returns the same address).
#[derive(Debug, Clone)]
pub struct AllocatePublicIpAddress {
    pub instance_id: String,
}
action!(
    AllocatePublicIpAddress,
    "AllocatePublicIpAddress",
    Unprotected,
    AllocatePublicIpAddressResponse,
    |self| { Params::new().set("InstanceId", &self.instance_id) }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatePublicIpAddressResponse {
    pub ip_address: String,
}

/// `DescribeInstances` with the filters bakerd uses (PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeInstances {
    pub region_id: String,
    /// `InstanceIds` JSON array (≤ 100).
    pub instance_ids: Vec<String>,
    pub instance_name: Option<String>,
    pub status: Option<InstanceStatus>,
    /// Every tag must match.
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    /// 1–100.
    pub page_size: Option<u32>,
}

impl DescribeInstances {
    pub fn in_region(region_id: impl Into<String>) -> Self {
        DescribeInstances {
            region_id: region_id.into(),
            ..Default::default()
        }
    }
}
action!(
    DescribeInstances,
    "DescribeInstances",
    ReadOnly,
    DescribeInstancesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .json_list("InstanceIds", &self.instance_ids)
            .opt("InstanceName", self.instance_name.as_ref())
            .opt("Status", self.status.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstancesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub instances: Vec<Instance>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    pub instance_id: String,
    #[serde(default)]
    pub instance_name: String,
    pub status: InstanceStatus,
    #[serde(default)]
    pub region_id: String,
    #[serde(default)]
    pub zone_id: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub image_id: String,
    #[serde(default)]
    pub key_pair_name: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub public_ip_address: Vec<String>,
    #[serde(default, deserialize_with = "inner_list")]
    pub inner_ip_address: Vec<String>,
    #[serde(default)]
    pub vpc_attributes: Option<VpcAttributes>,
    #[serde(default, deserialize_with = "inner_list")]
    pub security_group_ids: Vec<String>,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

impl Instance {
    /// The address to reach the instance on: public IP, else VPC private IP, else inner IP.
    pub fn reachable_ip(&self) -> Option<&str> {
        self.public_ip_address
            .first()
            .or_else(|| {
                self.vpc_attributes
                    .as_ref()
                    .and_then(|v| v.private_ip_address.first())
            })
            .or_else(|| self.inner_ip_address.first())
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcAttributes {
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default, rename = "VSwitchId")]
    pub vswitch_id: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub private_ip_address: Vec<String>,
}

numbered_paging!(DescribeInstances, Instance, instances, 100);

/// `DescribeInstanceStatus`: cheap status poll (`InstanceId.N`, PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeInstanceStatus {
    pub region_id: String,
    pub instance_ids: Vec<String>,
    pub page_number: Option<u32>,
    /// 1–50.
    pub page_size: Option<u32>,
}
action!(
    DescribeInstanceStatus,
    "DescribeInstanceStatus",
    ReadOnly,
    DescribeInstanceStatusResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .list("InstanceId", &self.instance_ids)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstanceStatusResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub instance_statuses: Vec<InstanceStatusEntry>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceStatusEntry {
    pub instance_id: String,
    pub status: InstanceStatus,
}

numbered_paging!(
    DescribeInstanceStatus,
    InstanceStatusEntry,
    instance_statuses,
    50
);
