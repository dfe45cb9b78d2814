//! DescribeRegions, DescribeZones, DescribeInstanceTypes: the static catalog.

use serde_json::{json, Value};

use super::{list_body, paginate, Ctx, Paging};
use crate::sim::catalog::{self, INSTANCE_TYPES, REGIONS};
use crate::sim::error::SimError;

pub fn describe_regions(_ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let regions: Vec<Value> = REGIONS
        .iter()
        .map(|r| {
            json!({
                "RegionId": r.id,
                "LocalName": r.local_name,
                "RegionEndpoint": format!("ecs.{}.aliyuncs.com", r.id),
                "Status": "available",
            })
        })
        .collect();
    Ok(json!({ "Regions": { "Region": regions } }))
}

pub fn describe_zones(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let info = catalog::region(&region).expect("region checked");
    let types: Vec<&str> = INSTANCE_TYPES.iter().map(|t| t.id).collect();
    let zones: Vec<Value> = info
        .zones
        .iter()
        .map(|z| {
            json!({
                "ZoneId": z,
                "LocalName": z,
                "ZoneType": "AvailabilityZone",
                "AvailableInstanceTypes": { "InstanceTypes": types },
                "AvailableDiskCategories": { "DiskCategories": ["cloud_efficiency", "cloud_ssd", "cloud_essd"] },
                "AvailableResourceCreation": { "ResourceTypes": ["Instance", "Disk", "VSwitch"] },
                "AvailableVolumeCategories": { "VolumeCategories": [] },
                "AvailableDedicatedHostTypes": { "DedicatedHostType": [] },
                "DedicatedHostGenerations": { "DedicatedHostGeneration": [] },
                "AvailableResources": { "ResourcesInfo": [{
                    "IoOptimized": true,
                    "InstanceTypes": { "supportedInstanceType": types },
                    "SystemDiskCategories": { "supportedSystemDiskCategory": ["cloud_efficiency", "cloud_ssd", "cloud_essd"] },
                    "DataDiskCategories": { "supportedDataDiskCategory": ["cloud_efficiency", "cloud_ssd", "cloud_essd"] },
                    "NetworkTypes": { "supportedNetworkCategory": ["vpc"] },
                    "InstanceTypeFamilies": { "supportedInstanceTypeFamily": [] },
                    "InstanceGenerations": { "supportedInstanceGeneration": [] },
                }]},
            })
        })
        .collect();
    Ok(json!({ "Zones": { "Zone": zones } }))
}

pub fn describe_instance_types(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let wanted = ctx.params.dot_list("InstanceTypes");
    let family = ctx.params.opt("InstanceTypeFamily");
    let items: Vec<Value> = INSTANCE_TYPES
        .iter()
        .filter(|t| wanted.is_empty() || wanted.iter().any(|w| w == t.id))
        .filter(|t| family.is_none_or(|f| f == t.family))
        .map(|t| {
            json!({
                "InstanceTypeId": t.id,
                "InstanceTypeFamily": t.family,
                "CpuCoreCount": t.cpus,
                "MemorySize": t.memory_gib,
                "GPUAmount": 0,
                "GPUSpec": "",
                "EniQuantity": 2,
                "LocalStorageCategory": "",
            })
        })
        .collect();
    let paging = Paging::with_tokens(1600, 1600);
    let (page, mut fields) = paginate(items, ctx.params, &paging)?;
    fields.remove("TotalCount");
    fields.remove("PageNumber");
    fields.remove("PageSize");
    fields.entry("NextToken").or_insert(json!(""));
    Ok(list_body("InstanceTypes", "InstanceType", page, fields))
}
