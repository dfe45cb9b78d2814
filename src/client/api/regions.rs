//! Regions, zones and instance types (read-only discovery).

use super::{action, token_paging, Params};
use crate::client::types::inner_list;
use serde::Deserialize;

/// `DescribeRegions`: every region the account can use.
#[derive(Debug, Clone, Default)]
pub struct DescribeRegions {
    /// Language of `LocalName` (`en-US`, `zh-CN`).
    pub accept_language: Option<String>,
}
action!(
    DescribeRegions,
    "DescribeRegions",
    ReadOnly,
    DescribeRegionsResponse,
    |self| { Params::new().opt("AcceptLanguage", self.accept_language.as_ref()) }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeRegionsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub regions: Vec<Region>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Region {
    pub region_id: String,
    #[serde(default)]
    pub local_name: String,
    #[serde(default)]
    pub region_endpoint: String,
    #[serde(default)]
    pub status: String,
}

/// `DescribeZones`: the zones of a region.
#[derive(Debug, Clone)]
pub struct DescribeZones {
    pub region_id: String,
    pub verbose: Option<bool>,
}
action!(
    DescribeZones,
    "DescribeZones",
    ReadOnly,
    DescribeZonesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .flag("Verbose", self.verbose)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeZonesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub zones: Vec<Zone>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Zone {
    pub zone_id: String,
    #[serde(default)]
    pub local_name: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub available_instance_types: Vec<String>,
    #[serde(default, deserialize_with = "inner_list")]
    pub available_disk_categories: Vec<String>,
    #[serde(default, deserialize_with = "inner_list")]
    pub available_resource_creation: Vec<String>,
}

/// `DescribeInstanceTypes`: instance type specs (NextToken paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeInstanceTypes {
    /// Only these types (`InstanceTypes.N`); empty = all.
    pub instance_types: Vec<String>,
    pub instance_type_family: Option<String>,
    /// Page cursor; set by `list_all`.
    pub next_token: Option<String>,
}
action!(
    DescribeInstanceTypes,
    "DescribeInstanceTypes",
    ReadOnly,
    DescribeInstanceTypesResponse,
    |self| {
        Params::new()
            .list("InstanceTypes", &self.instance_types)
            .opt("InstanceTypeFamily", self.instance_type_family.as_ref())
            .opt("NextToken", self.next_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstanceTypesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub instance_types: Vec<InstanceType>,
    #[serde(default)]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceType {
    pub instance_type_id: String,
    #[serde(default)]
    pub instance_type_family: String,
    #[serde(default)]
    pub cpu_core_count: u32,
    /// GiB.
    #[serde(default)]
    pub memory_size: f64,
}

token_paging!(DescribeInstanceTypes, InstanceType, instance_types);
