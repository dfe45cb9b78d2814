//! Elastic IP addresses through the VPC API (2016-04-28): the temporary public address of a build
//! with `ssh.address: eip` (see `docs/sim-packer-actions.md` for the facts and their sources).
//! ECS's 2014-05-26 copies of these actions (which Packer 1.6.6 uses) take no tags.

use super::{action, numbered_paging, Ack, Params};
use crate::client::types::{inner_list, Tag};
use serde::Deserialize;

/// `AllocateEipAddress`: carries a ClientToken, a name and tags at creation (≤ 20).
#[derive(Debug, Clone, Default)]
pub struct AllocateEipAddress {
    pub region_id: String,
    /// Mbit/s (sent as a string, as the API's model has it; default 5).
    pub bandwidth: Option<u32>,
    /// `PayByBandwidth` (the API's default) or `PayByTraffic`.
    pub internet_charge_type: Option<String>,
    /// ≤ 128 characters.
    pub name: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    AllocateEipAddress,
    "AllocateEipAddress",
    ClientToken,
    AllocateEipAddressResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("Bandwidth", self.bandwidth.as_ref())
            .opt("InternetChargeType", self.internet_charge_type.as_ref())
            .opt("Name", self.name.as_ref())
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateEipAddressResponse {
    pub allocation_id: String,
    #[serde(default)]
    pub eip_address: String,
}

/// `DescribeEipAddresses` (PageNumber paging, ≤ 100 a page).
#[derive(Debug, Clone, Default)]
pub struct DescribeEipAddresses {
    pub region_id: String,
    pub allocation_id: Option<String>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeEipAddresses,
    "DescribeEipAddresses",
    ReadOnly,
    DescribeEipAddressesResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("AllocationId", self.allocation_id.as_ref())
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEipAddressesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub eip_addresses: Vec<EipAddress>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}
numbered_paging!(DescribeEipAddresses, EipAddress, eip_addresses, 100);

/// One EIP as DescribeEipAddresses lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EipAddress {
    pub allocation_id: String,
    #[serde(default)]
    pub ip_address: String,
    /// `Associating`, `InUse`, `Unassociating`, `Available`.
    #[serde(default)]
    pub status: String,
    /// The associated instance; empty when none.
    #[serde(default)]
    pub instance_id: String,
    /// When it was allocated (ISO 8601 UTC): gc's age of an EIP.
    #[serde(default)]
    pub allocation_time: String,
    /// `{Key, Value}` pairs (the VPC spelling).
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

/// Which EIP and which ECS instance an (un)association is about.
#[derive(Debug, Clone, Default)]
pub struct EipBinding {
    pub region_id: String,
    pub allocation_id: String,
    pub instance_id: String,
}

impl EipBinding {
    fn params(&self) -> Params {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("AllocationId", &self.allocation_id)
            .set("InstanceId", &self.instance_id)
            .set("InstanceType", "EcsInstance")
    }
}

/// `AssociateEipAddress` with an ECS instance (the EIP must be `Available`).
#[derive(Debug, Clone, Default)]
pub struct AssociateEipAddress(pub EipBinding);
action!(
    AssociateEipAddress,
    "AssociateEipAddress",
    Unprotected,
    Ack,
    product = Vpc,
    |self| { self.0.params() }
);

/// `UnassociateEipAddress` (the EIP must be `InUse` on that instance).
#[derive(Debug, Clone, Default)]
pub struct UnassociateEipAddress(pub EipBinding);
action!(
    UnassociateEipAddress,
    "UnassociateEipAddress",
    Unprotected,
    Ack,
    product = Vpc,
    |self| { self.0.params() }
);

/// `ReleaseEipAddress` (only an `Available` EIP).
#[derive(Debug, Clone, Default)]
pub struct ReleaseEipAddress {
    pub region_id: String,
    pub allocation_id: String,
}
action!(
    ReleaseEipAddress,
    "ReleaseEipAddress",
    Unprotected,
    Ack,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("AllocationId", &self.allocation_id)
    }
);
