//! Tags: TagResources, UntagResources, ListTagResources.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{has_tags, paginate, Ctx, Paging};
use crate::sim::error::SimError;
use crate::sim::store::{Meta, Resource, State};

const RESOURCE_TYPES: &[&str] = &[
    "instance",
    "disk",
    "snapshot",
    "image",
    "securitygroup",
    "keypair",
    "vpc",
    "vswitch",
];

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
        _ => Vec::new(),
    }
}

/// The metadata of every record of `table`, none known by a name.
fn unnamed<R: Resource>(table: &mut BTreeMap<String, R>) -> Vec<(Option<String>, &mut Meta)> {
    table.values_mut().map(|r| (None, r.meta_mut())).collect()
}

fn resource_type(ctx: &Ctx<'_>) -> Result<String, SimError> {
    let t = ctx.params.req("ResourceType")?.to_ascii_lowercase();
    if !RESOURCE_TYPES.contains(&t.as_str()) {
        return Err(SimError::invalid(
            "ResourceType",
            format!("{t} is not one of {RESOURCE_TYPES:?}"),
        ));
    }
    Ok(t)
}

/// Applies `f` to the tags of each resource in `ResourceId.N`; unknown ids fail before any change.
fn with_tags(ctx: &mut Ctx<'_>, f: impl Fn(&mut BTreeMap<String, String>)) -> Result<(), SimError> {
    let region = ctx.region()?;
    let rtype = resource_type(ctx)?;
    let ids = ctx.params.dot_list("ResourceId");
    if ids.is_empty() {
        return Err(SimError::MissingParameter("ResourceId.1".into()));
    }
    let mut metas = metas_mut(ctx.state, &rtype);
    let mut targets = Vec::new();
    for id in &ids {
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
    let tags = ctx.params.tags()?;
    if tags.is_empty() {
        return Err(SimError::MissingParameter("Tag.1.Key".into()));
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
    with_tags(ctx, |t| t.extend(tags.iter().cloned()))?;
    Ok(json!({}))
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
                json!({"ResourceId": meta.id, "ResourceType": rtype, "TagKey": k, "TagValue": v}),
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
