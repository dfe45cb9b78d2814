//! Listing bakerd's resources in one region, from their tags.

use super::GcError;
use crate::client::api::eip::DescribeEipAddresses;
use crate::client::api::images::{DescribeImages, Image, ALL_IMAGE_STATUSES};
use crate::client::api::instances::DescribeInstances;
use crate::client::api::keypairs::DescribeKeyPairs;
use crate::client::api::network::{DescribeSecurityGroups, DescribeVSwitches, DescribeVpcs};
use crate::client::api::storage::DescribeSnapshots;
use crate::client::api::tags::{ListTagResources, TagType};
use crate::client::{ClientError, Tag};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::store::Build;
use std::collections::{BTreeMap, HashMap};

/// Tag every bakerd resource carries.
const MANAGED_TAG: (&str, &str) = ("bakerd:managed", "true");
/// Tag naming the build that created a resource.
const BUILD_TAG: &str = "bakerd:build-id";

/// Kinds of resources, in deletion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    Instance,
    Eip,
    KeyPair,
    SecurityGroup,
    VSwitch,
    Vpc,
    Image,
    Snapshot,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::Eip => "eip",
            Kind::KeyPair => "key-pair",
            Kind::SecurityGroup => "security-group",
            Kind::VSwitch => "vswitch",
            Kind::Vpc => "vpc",
            Kind::Image => "image",
            Kind::Snapshot => "snapshot",
        }
    }
}

/// What an image needs for the decision.
#[derive(Debug, Clone, Default)]
pub(super) struct ImageFacts {
    pub(super) family: String,
    pub(super) created: String,
    pub(super) available: bool,
    pub(super) snapshots: Vec<String>,
}

/// One bakerd-tagged resource found in the cloud.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) kind: Kind,
    pub(super) id: String,
    pub(super) region: String,
    pub(super) build: String,
    /// The resource's own `CreationTime` as the cloud reports it (empty when it has none).
    pub(super) created: String,
    pub(super) image: Option<ImageFacts>,
}

/// Everything gc learnt about one region.
#[derive(Debug, Default)]
pub(super) struct RegionInventory {
    pub(super) found: Vec<Found>,
    /// Every own image (tagged or not) → the snapshots it is made from.
    pub(super) image_snapshots: HashMap<String, Vec<String>>,
    /// Every live VPC, vSwitch and EIP of the region (tagged or not) → its creation time.
    pub(super) network_created: HashMap<String, String>,
}

/// The bakerd build id on a tagged resource, if it is bakerd's.
pub(super) fn bakerd_build(tags: &[Tag]) -> Option<String> {
    let managed = tags
        .iter()
        .any(|t| t.key == MANAGED_TAG.0 && t.value == MANAGED_TAG.1);
    let build = tags.iter().find(|t| t.key == BUILD_TAG)?;
    (managed && !build.value.is_empty()).then(|| build.value.clone())
}

pub(super) fn managed_filter() -> Vec<Tag> {
    vec![Tag::new(MANAGED_TAG.0, MANAGED_TAG.1)]
}

impl RegionInventory {
    /// Adds the live EIPs that recorded builds of this region name but that carry no tags (a
    /// build killed between AllocateEipAddress and its tag): the record is all that knows them.
    pub(super) fn add_recorded_eips(&mut self, builds: &[Build], region: &str) {
        let in_region = |b: &&Build| super::spec_body(b)["region"].as_str() == Some(region);
        for b in builds.iter().filter(in_region) {
            let Some(id) = b.resources.get(crate::reconciler::eip::ROLE) else {
                continue;
            };
            let Some(created) = self.network_created.get(id) else {
                continue;
            };
            if !self.found.iter().any(|f| &f.id == id) {
                self.found.push(Found {
                    kind: Kind::Eip,
                    id: id.clone(),
                    region: region.to_string(),
                    build: b.id.to_string(),
                    created: created.clone(),
                    image: None,
                });
            }
        }
    }

    fn push(&mut self, kind: Kind, id: String, created: String, region: &str, tags: &[Tag]) {
        if let Some(build) = bakerd_build(tags) {
            self.found.push(Found {
                kind,
                id,
                region: region.to_string(),
                build,
                created,
                image: None,
            });
        }
    }
}

/// Lists every bakerd resource of one region, plus every own image's snapshots.
pub(super) async fn list_region(cloud: &Cloud) -> Result<RegionInventory, GcError> {
    let region = cloud.region().to_string();
    let client = cloud.client();
    let fail = |kind| {
        let region = region.clone();
        move |source: ClientError| GcError::List {
            kind,
            region,
            source: Box::new(source),
        }
    };
    let mut inv = RegionInventory::default();
    let mut req = DescribeInstances::in_region(&region);
    req.tags = managed_filter();
    for i in client.list_all(req).await.map_err(fail("instance"))? {
        inv.push(
            Kind::Instance,
            i.instance_id,
            i.creation_time,
            &region,
            &i.tags,
        );
    }
    let req = DescribeKeyPairs {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for k in client.list_all(req).await.map_err(fail("key pair"))? {
        inv.push(
            Kind::KeyPair,
            k.key_pair_name,
            k.creation_time,
            &region,
            &k.tags,
        );
    }
    let req = DescribeSecurityGroups {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for g in client.list_all(req).await.map_err(fail("security group"))? {
        let (id, created) = (g.security_group_id, g.creation_time);
        inv.push(Kind::SecurityGroup, id, created, &region, &g.tags);
    }
    let created = network_creation_times(cloud).await.map_err(fail("vpc"))?;
    let tagged = [
        (Kind::Eip, TagType::Eip),
        (Kind::VSwitch, TagType::VSwitch),
        (Kind::Vpc, TagType::Vpc),
    ];
    for (kind, rtype) in tagged {
        for (id, tags) in list_tagged(cloud, rtype).await.map_err(fail(kind.name()))? {
            let when = created.get(&id).cloned().unwrap_or_default();
            inv.push(kind, id, when, &region, &tags);
        }
    }
    inv.network_created = created;
    let req = DescribeSnapshots {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for s in client.list_all(req).await.map_err(fail("snapshot"))? {
        inv.push(
            Kind::Snapshot,
            s.snapshot_id,
            s.creation_time,
            &region,
            &s.tags,
        );
    }
    list_images(cloud, &mut inv).await.map_err(fail("image"))?;
    Ok(inv)
}

/// Resources of `rtype` carrying the managed tag, with all their tags (the VPC product's
/// ListTagResources: one call lists a type's tagged resources with their tags, where its
/// Describe actions would list every VPC, vSwitch or EIP of the account).
pub(super) async fn list_tagged(
    cloud: &Cloud,
    rtype: TagType,
) -> Result<BTreeMap<String, Vec<Tag>>, ClientError> {
    let req = ListTagResources {
        region_id: cloud.region().to_string(),
        resource_type: rtype,
        tags: managed_filter(),
        ..Default::default()
    };
    let mut by_id: BTreeMap<String, Vec<Tag>> = BTreeMap::new();
    for row in cloud.client().list_all(req).await? {
        by_id
            .entry(row.resource_id)
            .or_default()
            .push(Tag::new(row.tag_key, row.tag_value));
    }
    Ok(by_id)
}

/// VPC and vSwitch id → CreationTime (ListTagResources, which finds them, reports no times).
async fn network_creation_times(cloud: &Cloud) -> Result<HashMap<String, String>, ClientError> {
    let region = cloud.region().to_string();
    let vpcs = DescribeVpcs {
        region_id: region.clone(),
        ..Default::default()
    };
    let mut times: HashMap<String, String> = HashMap::new();
    for v in cloud.client().list_all(vpcs).await? {
        times.insert(v.vpc_id, v.creation_time);
    }
    let vswitches = DescribeVSwitches {
        region_id: region,
        ..Default::default()
    };
    for v in cloud.client().list_all(vswitches).await? {
        times.insert(v.vswitch_id, v.creation_time);
    }
    let eips = DescribeEipAddresses {
        region_id: cloud.region().to_string(),
        ..Default::default()
    };
    for e in cloud.client().list_all(eips).await? {
        times.insert(e.allocation_id, e.allocation_time);
    }
    Ok(times)
}

/// Every own image in any status: bakerd's go into `found`, all into `image_snapshots`.
pub(super) async fn list_images(
    cloud: &Cloud,
    inv: &mut RegionInventory,
) -> Result<(), ClientError> {
    let req = DescribeImages {
        region_id: cloud.region().to_string(),
        image_owner_alias: Some("self".into()),
        status: Some(ALL_IMAGE_STATUSES.into()),
        ..Default::default()
    };
    let images: Vec<Image> = cloud.client().list_all(req).await?;
    for image in images {
        let snapshots: Vec<String> = image
            .disk_device_mappings
            .iter()
            .map(|m| m.snapshot_id.clone())
            .filter(|s| !s.is_empty())
            .collect();
        inv.image_snapshots
            .insert(image.image_id.clone(), snapshots.clone());
        if let Some(build) = bakerd_build(&image.tags) {
            inv.found.push(Found {
                kind: Kind::Image,
                id: image.image_id.clone(),
                region: cloud.region().to_string(),
                build,
                created: image.creation_time.clone(),
                image: Some(ImageFacts {
                    family: image.image_family.clone(),
                    created: image.creation_time.clone(),
                    available: image.status.as_str() == "Available",
                    snapshots,
                }),
            });
        }
    }
    Ok(())
}
