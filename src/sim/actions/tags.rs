//! Tags: TagResources, UntagResources, ListTagResources, and the older single-resource AddTags,
//! RemoveTags and DescribeTags that Packer 1.6.6 uses.
//!
//! Each product tags its own resources: ECS's tag actions know instances, disks, snapshots,
//! images, security groups and key pairs; the VPC API's (2016-04-28) know VPCs, vSwitches and
//! EIPs (`VPC`, `VSWITCH`, `EIP`). Another product's type is refused with 404
//! `InvalidResourceType.NotFound`, the code ECS documents for a ResourceType it does not know.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{has_tags, list_body, paginate, Api, Ctx, Paging};
use crate::sim::error::SimError;
use crate::sim::store::{Meta, Resource, State};

/// ECS's taggable types that the simulator keeps (lowercase, as ECS spells them).
const ECS_RESOURCE_TYPES: &[&str] = &[
    "instance",
    "disk",
    "snapshot",
    "image",
    "securitygroup",
    "keypair",
];

/// The VPC API's taggable types that the simulator keeps (compared in lowercase; answered as
/// the API reference spells them: `VPC`, `VSWITCH`, `EIP`).
const VPC_RESOURCE_TYPES: &[&str] = &["vpc", "vswitch", "eip"];

fn resource_types(api: Api) -> &'static [&'static str] {
    match api {
        Api::Ecs => ECS_RESOURCE_TYPES,
        Api::Vpc => VPC_RESOURCE_TYPES,
    }
}

/// `rtype` as the product's answers spell it.
fn answered_type(api: Api, rtype: &str) -> String {
    match api {
        Api::Ecs => rtype.to_string(),
        Api::Vpc => rtype.to_ascii_uppercase(),
    }
}

/// Every live resource's metadata of `rtype` in `region`; key pairs are also known by name.
fn metas_mut<'s>(state: &'s mut State, rtype: &str) -> Vec<(Option<String>, &'s mut Meta)> {
    match rtype {
        "instance" => unnamed(&mut state.instances),
        "disk" => unnamed(&mut state.disks),
        "snapshot" => unnamed(&mut state.snapshots),
        "image" => unnamed(&mut state.images),
        "securitygroup" => unnamed(&mut state.security_groups),
        "keypair" => state
            .key_pairs
            .values_mut()
            .map(|r| (Some(r.name.clone()), &mut r.meta))
            .collect(),
        "vpc" => unnamed(&mut state.vpcs),
        "vswitch" => unnamed(&mut state.vswitches),
        "eip" => unnamed(&mut state.eips),
        _ => Vec::new(),
    }
}

/// The metadata of every record of `table`, none known by a name.
fn unnamed<R: Resource>(table: &mut BTreeMap<String, R>) -> Vec<(Option<String>, &mut Meta)> {
    table.values_mut().map(|r| (None, r.meta_mut())).collect()
}

fn resource_type(ctx: &Ctx<'_>) -> Result<String, SimError> {
    let given = ctx.params.req("ResourceType")?;
    let t = given.to_ascii_lowercase();
    if !resource_types(ctx.api).contains(&t.as_str()) {
        return Err(SimError::not_found(
            "InvalidResourceType.NotFound",
            "ResourceType",
            given,
        ));
    }
    Ok(t)
}

/// Applies `f` to the tags of each resource in `ResourceId.N`; unknown ids fail before any change.
fn with_tags(ctx: &mut Ctx<'_>, f: impl Fn(&mut BTreeMap<String, String>)) -> Result<(), SimError> {
    let ids = ctx.params.dot_list("ResourceId");
    if ids.is_empty() {
        return Err(SimError::MissingParameter("ResourceId.1".into()));
    }
    with_tags_of(ctx, &ids, f)
}

/// Applies `f` to the tags of each resource of `ids` (of the request's `ResourceType`).
fn with_tags_of(
    ctx: &mut Ctx<'_>,
    ids: &[String],
    f: impl Fn(&mut BTreeMap<String, String>),
) -> Result<(), SimError> {
    let region = ctx.region()?;
    let rtype = resource_type(ctx)?;
    let mut metas = metas_mut(ctx.state, &rtype);
    let mut targets = Vec::new();
    for id in ids {
        let pos = metas.iter().position(|(name, m)| {
            m.live() && m.region == region && (&m.id == id || name.as_deref() == Some(id))
        });
        targets.push(
            pos.ok_or_else(|| SimError::not_found("InvalidResourceId.NotFound", "ResourceId", id))?,
        );
    }
    for pos in targets {
        f(&mut metas[pos].1.tags);
    }
    Ok(())
}

pub fn tag_resources(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let tags = tags_to_add(ctx)?;
    with_tags(ctx, |t| t.extend(tags.iter().cloned()))?;
    Ok(json!({}))
}

/// The tags of an AddTags/TagResources request: at least one, at most 20, no reserved prefix.
fn tags_to_add(ctx: &Ctx<'_>) -> Result<Vec<(String, String)>, SimError> {
    let tags = ctx.params.tags()?;
    if tags.is_empty() {
        return Err(SimError::MissingParameter("Tag.1.Key".into()));
    }
    if tags.len() > 20 {
        return Err(SimError::invalid("Tag.N", "at most 20 tags per request"));
    }
    if let Some((k, _)) = tags
        .iter()
        .find(|(k, _)| k.starts_with("acs:") || k.starts_with("aliyun"))
    {
        return Err(SimError::invalid(
            "Tag.N.Key",
            format!("{k} starts with a reserved prefix"),
        ));
    }
    Ok(tags)
}

/// AddTags: `Tag.N.Key/Value` on the one resource `ResourceId` (the pre-TagResources API).
pub fn add_tags(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let tags = tags_to_add(ctx)?;
    let id = ctx.params.req("ResourceId")?.to_string();
    with_tags_of(ctx, &[id], |t| t.extend(tags.iter().cloned()))?;
    Ok(json!({}))
}

/// RemoveTags: removes each `Tag.N.Key` (only when its `Tag.N.Value`, if given, matches); without
/// any `Tag.N`, every tag of the resource.
pub fn remove_tags(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let tags = ctx.params.tags()?;
    let id = ctx.params.req("ResourceId")?.to_string();
    with_tags_of(ctx, &[id], |t| {
        if tags.is_empty() {
            t.clear();
        }
        for (k, v) in &tags {
            if v.is_empty() || t.get(k) == Some(v) {
                t.remove(k);
            }
        }
    })?;
    Ok(json!({}))
}

/// DescribeTags: the distinct (key, value) pairs on the matching resources, each with how many
/// resources of each type carry it.
pub fn describe_tags(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let types: Vec<String> = match ctx.params.opt("ResourceType") {
        Some(_) => vec![resource_type(ctx)?],
        None => ECS_RESOURCE_TYPES.iter().map(|t| t.to_string()).collect(),
    };
    let id = ctx.params.opt("ResourceId").map(str::to_string);
    let wanted = ctx.params.tags()?;
    let mut counts: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for rtype in &types {
        for (name, meta) in metas_mut(ctx.state, rtype) {
            let named = id
                .as_ref()
                .is_none_or(|i| *i == meta.id || name.as_ref() == Some(i));
            if !meta.live() || meta.region != region || !named {
                continue;
            }
            for (k, v) in &meta.tags {
                if wanted.is_empty() || has_tags(&BTreeMap::from([(k.clone(), v.clone())]), &wanted)
                {
                    *counts
                        .entry((k.clone(), v.clone()))
                        .or_default()
                        .entry(rtype.clone())
                        .or_default() += 1;
                }
            }
        }
    }
    let rows: Vec<Value> = counts
        .into_iter()
        .map(|((k, v), by_type)| {
            let count = |t: &str| by_type.get(t).copied().unwrap_or(0);
            json!({"TagKey": k, "TagValue": v, "ResourceTypeCount": {
                "Instance": count("instance"), "Disk": count("disk"), "Snapshot": count("snapshot"),
                "Image": count("image"), "Securitygroup": count("securitygroup"), "KeyPair": count("keypair"),
                "Volume": 0, "Ddh": 0, "Eni": 0, "LaunchTemplate": 0, "ReservedInstance": 0, "SnapshotPolicy": 0,
            }})
        })
        .collect();
    let paging = Paging::numbered(50, 100);
    let (page, fields) = paginate(rows, ctx.params, &paging)?;
    Ok(list_body("Tags", "Tag", page, fields))
}

pub fn untag_resources(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let keys = ctx.params.dot_list("TagKey");
    let all = ctx.params.bool("All")?.unwrap_or(false);
    with_tags(ctx, |t| {
        if keys.is_empty() && all {
            t.clear();
        } else {
            t.retain(|k, _| !keys.contains(k));
        }
    })?;
    Ok(json!({}))
}

pub fn list_tag_resources(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let rtype = resource_type(ctx)?;
    let answered = answered_type(ctx.api, &rtype);
    let ids = ctx.params.dot_list("ResourceId");
    let wanted = ctx.params.tags()?;
    let mut rows = Vec::new();
    for (name, meta) in metas_mut(ctx.state, &rtype) {
        let named = ids.is_empty()
            || ids.contains(&meta.id)
            || name.as_ref().is_some_and(|n| ids.contains(n));
        if !meta.live() || meta.region != region || !named || !has_tags(&meta.tags, &wanted) {
            continue;
        }
        for (k, v) in &meta.tags {
            rows.push(
                json!({"ResourceId": meta.id, "ResourceType": answered, "TagKey": k, "TagValue": v}),
            );
        }
    }
    let mut params = ctx.params.clone();
    params.insert("MaxResults", "50");
    let paging = Paging::with_tokens(50, 50);
    let (page, fields) = paginate(rows, &params, &paging)?;
    Ok(
        json!({ "TagResources": { "TagResource": page }, "NextToken": fields.get("NextToken").cloned().unwrap_or(json!("")) }),
    )
}
