//! The quota part of the preflight: read the account's quotas once (`DescribeAccountAttributes`)
//! and refuse, before anything is created, a build that cannot fit.
//!
//! Why: a build past its vCPU quota is refused only at RunInstances, after the key pair, VPC,
//! vSwitch and security group were made; a security group quota that is full fails the build's
//! first steps. Both are known beforehand to anyone who asks.
//!
//! Guarantees: read-only calls; each refusal names the quota, the numbers and a fix that exists.
//! Assumptions: a RAM user may lack `ecs:DescribeAccountAttributes`; that must not block a build,
//! so any error answer turns into a warning and the build goes on (ECS still enforces the quotas).
//! Caveats: the VPC quota is not an ECS attribute (it lives in the VPC product and Quota Center);
//! bakerd counts the region's VPCs against Alibaba Cloud's documented default of 10 and only warns.
//! Facts and sources: `docs/quotas.md`.

use super::cloud::{Cloud, CloudError};
use super::preflight::{Finding, Report};
use crate::client::api::account::{DescribeAccountAttributes, DescribeAccountAttributesResponse};
use crate::client::api::network::{DescribeSecurityGroups, DescribeVpcs};
use crate::client::ClientError;
use crate::spec::Spec;

/// Where the owner of the account raises ECS quotas (vCPUs, security groups).
pub const ECS_QUOTA_CENTER: &str = "https://quotas.console.aliyun.com/products/ecs/quotas";
/// Where disk capacity quotas are raised.
const DISK_QUOTA_CENTER: &str = "https://quotas.console.aliyun.com/products/disk/quotas";
/// Where the VPC quota is raised.
const VPC_QUOTA_CENTER: &str = "https://quotas.console.aliyun.com/products/vpc/quotas";
/// Alibaba Cloud's documented default VPC quota per region (`vpc_quota_instances_num`).
const DOCUMENTED_DEFAULT_VPCS: u32 = 10;
/// Data disks without a category get ECS's default one.
const DEFAULT_DATA_DISK_CATEGORY: &str = "cloud_efficiency";

/// The attributes read, in one call (the API takes at most 8).
const ATTRIBUTES: &[&str] = &[
    "max-postpaid-instance-vcpu-count",
    "used-postpaid-instance-vcpu-count",
    "max-security-groups",
    "max-postpaid-yundisk-capacity",
    "used-postpaid-yundisk-capacity",
    "real-name-authentication",
];

/// Checks the quotas a build of `spec` on an instance type of `cpus` vCPUs needs, with
/// `promised` vCPUs that other builds of this process will still create counted as in use.
pub async fn check(
    cloud: &Cloud,
    spec: &Spec,
    cpus: u32,
    promised: u64,
) -> Result<Report, CloudError> {
    let mut report = Report::default();
    let request = DescribeAccountAttributes {
        region_id: spec.region.clone(),
        zone_id: spec.instance.zone.clone(),
        attribute_names: ATTRIBUTES.iter().map(|a| a.to_string()).collect(),
    };
    match cloud.client().call(&request).await {
        Ok(quotas) => {
            report.findings.extend(check_real_name(spec, &quotas));
            if let Some(max) = quotas.number("max-postpaid-instance-vcpu-count", None) {
                let used = quotas
                    .number("used-postpaid-instance-vcpu-count", None)
                    .unwrap_or(0);
                report.findings.extend(vcpu_finding(spec, max, used, cpus, promised));
                report.vcpu_quota = Some(VcpuQuota { max, used });
            }
            report.vcpus = Some(cpus);
            report.findings.extend(check_data_disks(spec, &quotas));
            report
                .findings
                .extend(check_security_groups(cloud, spec, &quotas).await?);
        }
        Err(ClientError::Api(e)) => report.warnings.push(format!(
            "quotas not checked: ECS {} refused DescribeAccountAttributes ({}, RequestId {}); going on (ECS still enforces them). Grant the RAM permission ecs:DescribeAccountAttributes to have them checked before anything is created",
            spec.region, e.code, e.request_id
        )),
        Err(e) => return Err(e.into()),
    }
    report.warnings.extend(check_vpcs(cloud, spec).await?);
    Ok(report)
}

/// Instances in the Chinese mainland need a real-name verified account.
fn check_real_name(spec: &Spec, quotas: &DescribeAccountAttributesResponse) -> Option<Finding> {
    let verified = quotas.values("real-name-authentication").first()?;
    let mainland = spec.region.starts_with("cn-") && spec.region != "cn-hongkong";
    (mainland && verified.value == "none").then(|| Finding {
        field: "region".into(),
        problem: format!(
            "{} is in the Chinese mainland and this account has not completed real-name verification (real-name-authentication: none); RunInstances would fail with RealNameAuthenticationError. Complete the verification in the Account Center (https://account.console.aliyun.com), or build in a region outside the mainland",
            spec.region
        ),
    })
}

/// The pay-as-you-go vCPU quota of a region as read: its maximum and what was in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuQuota {
    pub max: u64,
    pub used: u64,
}

/// The refusal when `cpus` more vCPUs, besides `used` and `promised` (about to be used by the
/// other builds of this process), do not fit `max`.
pub fn vcpu_finding(spec: &Spec, max: u64, used: u64, cpus: u32, promised: u64) -> Option<Finding> {
    let needed = u64::from(cpus);
    let others = match promised {
        0 => String::new(),
        n => format!(" and {n} more about to be used by the other builds of this apply"),
    };
    (used + promised + needed > max).then(|| Finding {
        field: "instance.type".into(),
        problem: format!(
            "{} needs {needed} vCPUs, but the pay-as-you-go vCPU quota of {} (max-postpaid-instance-vcpu-count) is {max} with {used} in use{others}; RunInstances would fail with QuotaExceed.ElasticQuota. Pick a smaller instance type, stop using some (`bakerd gc` lists instances bakerd left behind), or raise the quota in Quota Center: {ECS_QUOTA_CENTER}",
            spec.instance.instance_type, spec.region
        ),
    })
}

fn check_data_disks(spec: &Spec, quotas: &DescribeAccountAttributesResponse) -> Vec<Finding> {
    let mut asked: std::collections::BTreeMap<&str, u64> = Default::default();
    for disk in &spec.instance.data_disks {
        let category = disk
            .category
            .as_deref()
            .unwrap_or(DEFAULT_DATA_DISK_CATEGORY);
        *asked.entry(category).or_default() += u64::from(disk.size_gb.unwrap_or(0));
    }
    asked
        .into_iter()
        .filter_map(|(category, gib)| {
            let max = quotas.number("max-postpaid-yundisk-capacity", Some(category))?;
            let used = quotas
                .number("used-postpaid-yundisk-capacity", Some(category))
                .unwrap_or(0);
            (gib > 0 && used + gib > max).then(|| Finding {
                field: "instance.data_disks".into(),
                problem: format!(
                    "{gib} GiB of {category} data disks asked, but the pay-as-you-go {category} capacity quota of {} (max-postpaid-yundisk-capacity) is {max} GiB with {used} GiB in use; RunInstances would fail with QuotaExceed.DiskCapacity. Use smaller disks or another category, or raise the quota in Quota Center: {DISK_QUOTA_CENTER}",
                    spec.region
                ),
            })
        })
        .collect()
}

/// Only when the build makes its own security group.
async fn check_security_groups(
    cloud: &Cloud,
    spec: &Spec,
    quotas: &DescribeAccountAttributesResponse,
) -> Result<Option<Finding>, CloudError> {
    let Some(max) = quotas.number("max-security-groups", None) else {
        return Ok(None);
    };
    if spec.instance.security_group_id.is_some() {
        return Ok(None);
    }
    let request = DescribeSecurityGroups {
        region_id: spec.region.clone(),
        page_size: Some(1),
        ..Default::default()
    };
    let held = u64::from(cloud.client().call(&request).await?.total_count);
    Ok((held >= max).then(|| Finding {
        field: "instance.security_group_id".into(),
        problem: format!(
            "{} holds {held} security groups and its quota (max-security-groups) is {max}, so bakerd's temporary group would be refused (QuotaExceed.SecurityGroup). Set instance.security_group_id to an existing group, delete unused groups (`bakerd gc` lists those bakerd left behind), or raise the quota in Quota Center: {ECS_QUOTA_CENTER}",
            spec.region
        ),
    }))
}

/// Only when the build makes its own VPC: a warning, since the real quota cannot be read here.
async fn check_vpcs(cloud: &Cloud, spec: &Spec) -> Result<Option<String>, CloudError> {
    if spec.instance.vswitch_id.is_some() {
        return Ok(None);
    }
    let request = DescribeVpcs {
        region_id: spec.region.clone(),
        page_size: Some(50),
        ..Default::default()
    };
    let page = cloud.client().call(&request).await?;
    let defaults = page.vpcs.iter().filter(|v| v.is_default).count() as u32;
    let custom = page.total_count.saturating_sub(defaults);
    Ok((custom >= DOCUMENTED_DEFAULT_VPCS).then(|| format!(
        "{} already has {custom} VPCs and Alibaba Cloud's documented default VPC quota is {DOCUMENTED_DEFAULT_VPCS} per region (bakerd cannot read your account's own VPC quota): the temporary VPC may be refused with QuotaExceeded.Vpc. If it is, set instance.vswitch_id to an existing vSwitch, delete unused VPCs (`bakerd gc` lists those bakerd left behind), or raise the quota in Quota Center: {VPC_QUOTA_CENTER}",
        spec.region
    )))
}
