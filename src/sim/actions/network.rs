//! Security groups, VPCs and vSwitches.

use serde_json::{json, Value};

use super::{
    has_tags, known_region, list_body, mark_deleted, name_matches, paginate_by_age,
    refuse_while_used, tags_json, vpc_tags_json, Ctx, Order, Paging,
};
use crate::sim::catalog;
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id, SecurityGroup, VSwitch, Vpc};

fn live_vpc<'s>(ctx: &'s Ctx<'_>, id: &str) -> Result<&'s Vpc, SimError> {
    ctx.state
        .vpcs
        .get(id)
        .filter(|v| v.meta.live())
        .ok_or_else(|| SimError::not_found("InvalidVpcId.NotFound", "VpcId", id))
}

pub fn create_security_group(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let vpc_id = p.opt("VpcId").unwrap_or("").to_string();
    if !vpc_id.is_empty() && live_vpc(ctx, &vpc_id)?.meta.region != region {
        return Err(SimError::not_found(
            "InvalidVpcId.NotFound",
            "VpcId",
            &vpc_id,
        ));
    }
    let group_type = p
        .one_of("SecurityGroupType", &["normal", "enterprise"])?
        .unwrap_or("normal");
    super::account::check_security_group(ctx, &region)?;
    let id = new_id("sg");
    let group = SecurityGroup {
        meta: ctx.meta(id.clone(), &region)?,
        name: p.opt("SecurityGroupName").unwrap_or("").to_string(),
        description: p.opt("Description").unwrap_or("").to_string(),
        vpc_id,
        group_type: group_type.to_string(),
        rules: Vec::new(),
    };
    ctx.dry_run()?;
    ctx.state.security_groups.insert(id.clone(), group);
    Ok(json!({ "SecurityGroupId": id }))
}

pub(super) fn group_in_use(ctx: &Ctx<'_>, id: &str) -> usize {
    ctx.state
        .instances
        .values()
        .filter(|i| i.holds_network(ctx.now) && i.security_group_ids.iter().any(|g| g == id))
        .count()
}

pub fn delete_security_group(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let id = ctx.params.req("SecurityGroupId")?.to_string();
    let live = ctx
        .state
        .security_groups
        .get(&id)
        .is_some_and(|g| g.meta.live() && g.meta.region == region);
    if !live {
        return Err(SimError::not_found(
            "InvalidSecurityGroupId.NotFound",
            "SecurityGroupId",
            &id,
        ));
    }
    let users = group_in_use(ctx, &id);
    if users > 0 {
        return Err(SimError::forbidden(
            "DependencyViolation",
            format!("Security group {id} is still used by {users} instance(s); delete them first (a deleted instance is released asynchronously)."),
        ));
    }
    mark_deleted(&mut ctx.state.security_groups, &id, ctx.now);
    Ok(json!({}))
}

fn group_json(ctx: &Ctx<'_>, g: &SecurityGroup) -> Value {
    json!({
        "SecurityGroupId": g.meta.id, "SecurityGroupName": g.name, "Description": g.description,
        "VpcId": g.vpc_id, "SecurityGroupType": g.group_type, "CreationTime": iso_time(g.meta.created_ms),
        "ResourceGroupId": "", "Tags": tags_json(&g.meta.tags), "EcsCount": group_in_use(ctx, &g.meta.id),
        "AvailableInstanceAmount": 2000, "RuleCount": g.rules.len(), "ServiceManaged": false,
        "GroupToGroupRuleCount": 0, "ServiceID": 0,
    })
}

pub fn describe_security_groups(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let ids = p.json_list("SecurityGroupIds")?;
    let tags = p.tags()?;
    let items: Vec<(u64, Value)> = ctx
        .state
        .security_groups
        .values()
        .filter(|g| g.meta.live() && g.meta.region == region)
        .filter(|g| ids.as_ref().is_none_or(|l| l.contains(&g.meta.id)))
        .filter(|g| p.opt("SecurityGroupId").is_none_or(|s| s == g.meta.id))
        .filter(|g| p.opt("VpcId").is_none_or(|v| v == g.vpc_id))
        .filter(|g| {
            p.opt("SecurityGroupName")
                .is_none_or(|n| name_matches(n, &g.name))
        })
        .filter(|g| has_tags(&g.meta.tags, &tags))
        .map(|g| (g.meta.created_ms, group_json(ctx, g)))
        .collect();
    let paging = Paging::with_tokens(10, 100);
    let (page, mut fields) = paginate_by_age(items, Order::OldestFirst, p, &paging)?;
    fields.insert("RegionId".into(), json!(region));
    Ok(list_body("SecurityGroups", "SecurityGroup", page, fields))
}

pub fn create_vpc(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let id = new_id("vpc");
    let vpc = Vpc {
        meta: ctx.network_meta(id.clone(), &region)?,
        status: "Pending".into(),
        next_ms: ctx.now + ctx.latencies.network_ms,
        name: ctx.params.opt("VpcName").unwrap_or("").to_string(),
        description: ctx.params.opt("Description").unwrap_or("").to_string(),
        cidr_block: ctx
            .params
            .opt("CidrBlock")
            .unwrap_or("172.16.0.0/12")
            .to_string(),
    };
    ctx.dry_run()?;
    ctx.state.vpcs.insert(id.clone(), vpc);
    Ok(
        json!({ "VpcId": id, "VRouterId": format!("vrt-{}", &id[4..]), "RouteTableId": format!("vtb-{}", &id[4..]), "ResourceGroupId": "" }),
    )
}

pub fn create_vswitch(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let vpc_id = ctx.params.req("VpcId")?.to_string();
    let zone = ctx.params.req("ZoneId")?.to_string();
    let cidr = ctx.params.req("CidrBlock")?.to_string();
    let region = live_vpc(ctx, &vpc_id)?.meta.region.clone();
    if let Some(r) = ctx.params.opt("RegionId") {
        if known_region(r)? != region {
            return Err(SimError::not_found(
                "InvalidVpcId.NotFound",
                "VpcId",
                &vpc_id,
            ));
        }
    }
    if !catalog::region(&region).is_some_and(|r| r.zones.contains(&zone.as_str())) {
        return Err(SimError::not_found(
            "InvalidZoneId.NotFound",
            "ZoneId",
            &zone,
        ));
    }
    let id = new_id("vsw");
    let vsw = VSwitch {
        meta: ctx.network_meta(id.clone(), &region)?,
        status: "Pending".into(),
        next_ms: ctx.now + ctx.latencies.network_ms,
        vpc_id,
        zone,
        name: ctx.params.opt("VSwitchName").unwrap_or("").to_string(),
        description: ctx.params.opt("Description").unwrap_or("").to_string(),
        cidr_block: cidr,
    };
    ctx.dry_run()?;
    ctx.state.vswitches.insert(id.clone(), vsw);
    Ok(json!({ "VSwitchId": id }))
}

pub fn describe_vpcs(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let tags = p.tags()?;
    let items: Vec<(u64, Value)> = ctx
        .state
        .vpcs
        .values()
        .filter(|v| v.meta.live() && v.meta.region == region)
        .filter(|v| p.opt("VpcId").is_none_or(|id| id == v.meta.id))
        .filter(|v| p.opt("VpcName").is_none_or(|n| n == v.name))
        .filter(|v| has_tags(&v.meta.tags, &tags))
        .map(|v| {
            let vsws: Vec<&String> = ctx.state.vswitches.values().filter(|s| s.meta.live() && s.vpc_id == v.meta.id).map(|s| &s.meta.id).collect();
            (v.meta.created_ms, json!({
                "VpcId": v.meta.id, "VpcName": v.name, "Description": v.description, "CidrBlock": v.cidr_block,
                "Status": v.status, "IsDefault": false, "RegionId": v.meta.region, "CreationTime": iso_time(v.meta.created_ms),
                "VRouterId": format!("vrt-{}", &v.meta.id[4..]), "VSwitchIds": {"VSwitchId": vsws},
                "RouterTableIds": {"RouterTableIds": [format!("vtb-{}", &v.meta.id[4..])]},
                "UserCidrs": {"UserCidr": []}, "SecondaryCidrBlocks": {"SecondaryCidrBlock": []},
                "ResourceGroupId": "", "Tags": vpc_tags_json(&v.meta.tags),
            }))
        })
        .collect();
    let paging = Paging::numbered(10, 50);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, p, &paging)?;
    Ok(list_body("Vpcs", "Vpc", page, fields))
}

pub fn describe_vswitches(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.params.opt("RegionId").map(known_region).transpose()?;
    let p = ctx.params;
    let items: Vec<(u64, Value)> = ctx
        .state
        .vswitches
        .values()
        .filter(|v| v.meta.live() && region.as_ref().is_none_or(|r| *r == v.meta.region))
        .filter(|v| p.opt("VpcId").is_none_or(|id| id == v.vpc_id))
        .filter(|v| p.opt("VSwitchId").is_none_or(|id| id == v.meta.id))
        .filter(|v| p.opt("ZoneId").is_none_or(|z| z == v.zone))
        .map(|v| (v.meta.created_ms, json!({
            "VSwitchId": v.meta.id, "VSwitchName": v.name, "Description": v.description, "VpcId": v.vpc_id,
            "ZoneId": v.zone, "CidrBlock": v.cidr_block, "Status": v.status, "AvailableIpAddressCount": 252,
            "IsDefault": false, "CreationTime": iso_time(v.meta.created_ms), "RegionId": v.meta.region,
            "ResourceGroupId": "", "Tags": vpc_tags_json(&v.meta.tags),
        })))
        .collect();
    let paging = Paging::numbered(10, 50);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, p, &paging)?;
    Ok(list_body("VSwitches", "VSwitch", page, fields))
}

pub fn delete_vpc(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let id = ctx.params.req("VpcId")?.to_string();
    live_vpc(ctx, &id)?;
    refuse_while_used(
        &ctx.state.vswitches,
        |s| s.vpc_id == id,
        "DependencyViolation.VSwitch",
        |user| format!("VPC {id} still has vSwitch {user}; delete it first."),
    )?;
    refuse_while_used(
        &ctx.state.security_groups,
        |g| g.vpc_id == id,
        "DependencyViolation.SecurityGroup",
        |user| format!("VPC {id} still has security group {user}; delete it first."),
    )?;
    mark_deleted(&mut ctx.state.vpcs, &id, ctx.now);
    Ok(json!({}))
}

pub fn delete_vswitch(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let id = ctx.params.req("VSwitchId")?.to_string();
    let live = ctx.state.vswitches.get(&id).is_some_and(|v| v.meta.live());
    if !live {
        return Err(SimError::not_found(
            "InvalidVSwitchId.NotFound",
            "VSwitchId",
            &id,
        ));
    }
    let now = ctx.now;
    if let Some(user) = ctx
        .state
        .instances
        .values()
        .find(|i| i.vswitch_id == id && i.holds_network(now))
    {
        return Err(SimError::forbidden(
            "DependencyViolation",
            format!(
                "vSwitch {id} is still used by instance {}; delete it first (a deleted instance is released asynchronously).",
                user.meta.id
            ),
        ));
    }
    mark_deleted(&mut ctx.state.vswitches, &id, ctx.now);
    Ok(json!({}))
}
