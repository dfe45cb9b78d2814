//! DescribeAccountAttributes: the account's quotas in a region, and the checks the creating
//! actions make against the same numbers (see [`crate::sim::quotas`]).

use serde_json::{json, Value};

use super::Ctx;
use crate::sim::catalog;
use crate::sim::error::SimError;
use crate::sim::quotas::{self, ATTRIBUTE_NAMES, DISK_CATEGORIES};

/// Quota Center pages where the owner of a real account raises these quotas.
const ECS_QUOTA_CENTER: &str = "https://quotas.console.aliyun.com/products/ecs/quotas";
const DISK_QUOTA_CENTER: &str = "https://quotas.console.aliyun.com/products/disk/quotas";

pub fn describe_account_attributes(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let zone = ctx.params.opt("ZoneId").map(str::to_string);
    if let Some(z) = &zone {
        let zones = catalog::region(&region).expect("region checked").zones;
        if !zones.contains(&z.as_str()) {
            return Err(SimError::not_found("InvalidZoneId.NotFound", "ZoneId", z));
        }
    }
    let asked = ctx.params.dot_list("AttributeName");
    let items: Vec<Value> = ATTRIBUTE_NAMES
        .iter()
        .filter(|name| asked.is_empty() || asked.iter().any(|a| a == *name))
        .map(|name| {
            let values: Vec<Value> = values_of(ctx, &region, name)
                .into_iter()
                .map(|v| complete(v, zone.as_deref()))
                .collect();
            json!({"AttributeName": name, "AttributeValues": {"ValueItem": values}})
        })
        .collect();
    Ok(json!({ "AccountAttributeItems": { "AccountAttributeItem": items } }))
}

/// Every field the SDK models declare for a `ValueItem`, empty where it does not apply (`Count`:
/// one value; `ExpiredTime`: these quotas do not expire; `ZoneId`: the zone asked, if any).
fn complete(mut value: Value, zone: Option<&str>) -> Value {
    let fields = value.as_object_mut().expect("value items are objects");
    fields.insert("ZoneId".into(), json!(zone.unwrap_or("")));
    for (name, empty) in [
        ("Count", json!(1)),
        ("ExpiredTime", json!("")),
        ("InstanceType", json!("")),
        ("InstanceChargeType", json!("")),
        ("DiskCategory", json!("")),
    ] {
        fields.entry(name).or_insert(empty);
    }
    value
}

/// The `ValueItem`s of one attribute (`Value` is a string, as ECS sends it).
fn values_of(ctx: &Ctx<'_>, region: &str, name: &str) -> Vec<Value> {
    let q = ctx.quotas;
    let postpaid = |n: u64| json!({"Value": n.to_string(), "InstanceChargeType": "PostPaid"});
    match name {
        "instance-network-type" => vec![json!({"Value": "vpc"})],
        "real-name-authentication" => vec![json!({"Value": q.real_name_authentication})],
        "supported-postpaid-instance-types" => catalog::INSTANCE_TYPES
            .iter()
            .map(|t| json!({"Value": t.id, "InstanceChargeType": "PostPaid"}))
            .collect(),
        "max-postpaid-instance-vcpu-count" => vec![postpaid(q.limit(name))],
        "used-postpaid-instance-vcpu-count" => {
            vec![postpaid(quotas::used_postpaid_vcpus(ctx.state, region))]
        }
        "max-spot-instance-vcpu-count" => vec![postpaid(q.limit(name))],
        "used-spot-instance-vcpu-count" => vec![postpaid(0)],
        "max-postpaid-yundisk-capacity" => DISK_CATEGORIES
            .iter()
            .map(|c| json!({"Value": q.limit(name).to_string(), "DiskCategory": c}))
            .collect(),
        "used-postpaid-yundisk-capacity" => DISK_CATEGORIES
            .iter()
            .map(|c| {
                let used = quotas::used_data_disk_gib(ctx.state, region, c);
                json!({"Value": used.to_string(), "DiskCategory": c})
            })
            .collect(),
        other => vec![json!({"Value": q.limit(other).to_string()})],
    }
}

/// RunInstances/CreateInstance of `count` instances of `instance_type` with these data disks
/// (`(category, GiB)` of one instance): refused as ECS refuses a launch past a quota.
pub fn check_launch(
    ctx: &Ctx<'_>,
    region: &str,
    instance_type: &str,
    count: u64,
    data_disks: &[(String, i64)],
) -> Result<(), SimError> {
    if ctx.quotas.real_name_authentication == "none" && quotas::is_mainland(region) {
        return Err(SimError::forbidden(
            "RealNameAuthenticationError",
            "Your account has not passed the real-name authentication yet.",
        ));
    }
    let cpus = catalog::instance_type(instance_type).map_or(0, |t| t.cpus.max(0) as u64);
    let max = ctx.quotas.limit("max-postpaid-instance-vcpu-count");
    let used = quotas::used_postpaid_vcpus(ctx.state, region);
    if used + cpus * count > max {
        return Err(SimError::forbidden(
            "QuotaExceed.ElasticQuota",
            format!("The number of vCPUs assigned to the ECS instances has exceeded the quota in the zone: {used} in use, {} more asked, quota max-postpaid-instance-vcpu-count {max}. Request a quota increase at {ECS_QUOTA_CENTER}.", cpus * count),
        ));
    }
    let max = ctx.quotas.limit("max-postpaid-yundisk-capacity");
    for category in DISK_CATEGORIES {
        let asked: u64 = data_disks
            .iter()
            .filter(|(c, _)| c == category)
            .map(|(_, gib)| (*gib).max(0) as u64)
            .sum::<u64>()
            * count;
        let used = quotas::used_data_disk_gib(ctx.state, region, category);
        if asked > 0 && used + asked > max {
            return Err(SimError::bad_request(
                "QuotaExceed.DiskCapacity",
                format!("The used capacity of disk type has exceeded the quota in the zone, {category}: {used} GiB in use, {asked} GiB more asked, quota max-postpaid-yundisk-capacity {max} GiB. Request a quota increase at {DISK_QUOTA_CENTER}."),
            ));
        }
    }
    Ok(())
}

/// CreateSecurityGroup: refused once the region holds `max-security-groups` groups.
pub fn check_security_group(ctx: &Ctx<'_>, region: &str) -> Result<(), SimError> {
    let max = ctx.quotas.limit("max-security-groups");
    if quotas::security_groups(ctx.state, region) >= max {
        return Err(SimError::forbidden(
            "QuotaExceed.SecurityGroup",
            format!("The maximum number of security groups is reached: quota max-security-groups {max}. Request a quota increase at {ECS_QUOTA_CENTER}."),
        ));
    }
    Ok(())
}
