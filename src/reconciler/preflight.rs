//! Preflight: ask the cloud, read-only, whether a spec can be built before anything is created.
//!
//! Why: without it a bad source image id or instance type is found only at RunInstances, after
//! the key pair, VPC, vSwitch and security group were made, and a bad copy region only at the very
//! end. `bakerd validate --remote` and `bakerd apply` (before recording a new build) run the same
//! checks.
//!
//! Guarantees: only read-only calls; each problem names the spec field and says what to do.
//! Quotas the account can read are checked too ([`super::quota_check`]); what cannot be read or
//! is only a documented default becomes a warning, never a refusal.

use super::cloud::{Cloud, CloudError};
use crate::client::api::images::{DescribeImages, ALL_IMAGE_STATUSES};
use crate::client::api::regions::{DescribeInstanceTypes, DescribeRegions};
use crate::spec::{SourceImage, Spec};

/// One thing the cloud would refuse, by spec field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The spec field at fault, as written in the YAML (`source_image.id`, `instance.type`, …).
    pub field: String,
    /// What is wrong and what to do.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn finding(field: &str, problem: String) -> Finding {
    Finding {
        field: field.to_string(),
        problem,
    }
}

/// What the preflight found: problems the cloud would refuse, and warnings that do not stop a build.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
    /// The instance type's vCPUs, when they were counted against the account's quota.
    pub vcpus: Option<u32>,
    /// The vCPU quota as read, for a check that also counts other builds' promises.
    pub vcpu_quota: Option<super::quota_check::VcpuQuota>,
}

/// Runs every check; `image_name` is the name the image would get now; `promised_vcpus` are
/// vCPUs that other builds of this process will still create in the region (counted as in use).
pub async fn check(
    cloud: &Cloud,
    spec: &Spec,
    image_name: &str,
    promised_vcpus: u64,
) -> Result<Report, CloudError> {
    let regions = match known_regions(cloud, spec).await? {
        Some(regions) if !regions.contains(&spec.region) => {
            let findings = vec![finding(
                "region",
                format!(
                    "{} is not a region of this account/endpoint (regions: {})",
                    spec.region,
                    regions.join(", ")
                ),
            )];
            return Ok(Report {
                findings,
                ..Report::default()
            });
        }
        Some(regions) => regions,
        None => Vec::new(),
    };
    let mut report = match check_instance_type(cloud, spec).await? {
        Err(problem) => Report {
            findings: vec![problem],
            ..Report::default()
        },
        Ok(cpus) => super::quota_check::check(cloud, spec, cpus, promised_vcpus).await?,
    };
    let found = &mut report.findings;
    found.extend(check_source_image(cloud, spec).await?);
    found.extend(check_image_name(cloud, spec, image_name).await?);
    for region in &spec.image.copy_regions {
        if !regions.contains(region) || *region == spec.region {
            found.push(finding(
                "image.copy_regions",
                format!(
                    "{region} is not another region of this account (regions: {})",
                    regions.join(", ")
                ),
            ));
        }
    }
    Ok(report)
}

/// The account's regions, when the checks need them: to name the valid ones for a region that
/// does not exist, and to check `image.copy_regions`. Otherwise `None`, without a call: the
/// zones (asked anyway, for the instance type and the vSwitch) answer whether the region exists,
/// since ECS refuses DescribeZones of an unknown region with `InvalidRegionId.NotFound`
/// (docs/api-calls.md).
async fn known_regions(cloud: &Cloud, spec: &Spec) -> Result<Option<Vec<String>>, CloudError> {
    if spec.image.copy_regions.is_empty() {
        match cloud.zones().await {
            Ok(_) => return Ok(None),
            Err(CloudError::Api(e))
                if e.code().is_some_and(|c| c.starts_with("InvalidRegionId")) => {}
            Err(e) => return Err(e),
        }
    }
    let regions = cloud
        .client()
        .call(&DescribeRegions::default())
        .await?
        .regions
        .into_iter()
        .map(|r| r.region_id)
        .collect();
    Ok(Some(regions))
}

async fn check_source_image(cloud: &Cloud, spec: &Spec) -> Result<Option<Finding>, CloudError> {
    match &spec.source_image {
        SourceImage::Id(id) => {
            let request = DescribeImages {
                region_id: spec.region.clone(),
                image_id: Some(id.clone()),
                ..Default::default()
            };
            let images = cloud.client().call(&request).await?.images;
            Ok((!images.iter().any(|i| &i.image_id == id)).then(|| {
                finding(
                    "source_image.id",
                    format!("no Available image {id} in {}; `aliyun ecs DescribeImages --RegionId {}` lists the images you can use", spec.region, spec.region),
                )
            }))
        }
        SourceImage::Family(family) => match cloud.image_from_family(family).await {
            Ok(_) => Ok(None),
            Err(CloudError::Unexpected(message)) => {
                Ok(Some(finding("source_image.family", message)))
            }
            Err(e) => Err(e),
        },
    }
}

/// The instance type's vCPU count, or why the type cannot be used here.
async fn check_instance_type(
    cloud: &Cloud,
    spec: &Spec,
) -> Result<Result<u32, Finding>, CloudError> {
    let wanted = &spec.instance.instance_type;
    let request = DescribeInstanceTypes {
        instance_types: vec![wanted.clone()],
        ..Default::default()
    };
    let types = cloud.client().list_all(request).await?;
    let Some(found) = types.iter().find(|t| &t.instance_type_id == wanted) else {
        return Ok(Err(finding(
            "instance.type",
            format!("{wanted} is not an instance type of {}; `aliyun ecs DescribeInstanceTypes` lists them", spec.region),
        )));
    };
    let cpus = found.cpu_core_count;
    let zones = cloud.zones().await?;
    let offers = |z: &crate::client::api::regions::Zone| {
        z.available_instance_types.is_empty() || z.available_instance_types.contains(wanted)
    };
    let problem = match &spec.instance.zone {
        Some(zone) => match zones.iter().find(|z| &z.zone_id == zone) {
            None => Some((
                "instance.zone",
                format!("{zone} is not a zone of {}", spec.region),
            )),
            Some(z) if !offers(z) => Some((
                "instance.type",
                format!("{wanted} is not offered in zone {zone}; pick another type or zone"),
            )),
            Some(_) => None,
        },
        None if !zones.iter().any(offers) => Some((
            "instance.type",
            format!("no zone of {} offers {wanted} now", spec.region),
        )),
        None => None,
    };
    match problem {
        Some((field, text)) => Ok(Err(finding(field, text))),
        None => Ok(Ok(cpus)),
    }
}

/// Whether the image name carries the build's start second (`{{timestamp}}`): then no image
/// can hold it before the build is recorded, and the lookup is left out (docs/api-calls.md).
/// CreateImage still refuses a duplicate name, as it does for two builds started in the same
/// second, which no lookup before either build could see.
fn name_changes_every_second(spec: &Spec) -> bool {
    let at = 1_700_000_000;
    spec.image_name_at(at) != spec.image_name_at(at + 1)
}

async fn check_image_name(
    cloud: &Cloud,
    spec: &Spec,
    name: &str,
) -> Result<Option<Finding>, CloudError> {
    if spec.image.force || name_changes_every_second(spec) {
        return Ok(None);
    }
    let request = DescribeImages {
        region_id: spec.region.clone(),
        image_name: Some(name.to_string()),
        image_owner_alias: Some("self".into()),
        status: Some(ALL_IMAGE_STATUSES.into()),
        ..Default::default()
    };
    let clash: Vec<String> = cloud
        .client()
        .list_all(request)
        .await?
        .into_iter()
        .filter(|i| i.image_name == name)
        .map(|i| i.image_id)
        .collect();
    Ok((!clash.is_empty()).then(|| {
        finding(
            "image.name",
            format!("an image named {name} already exists ({}); add {{{{timestamp}}}} to the name, or set image.force: true to replace it", clash.join(", ")),
        )
    }))
}
