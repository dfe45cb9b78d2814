//! Elastic IP addresses through the ECS API (2014-05-26, as Packer 1.6.6 calls them) and the VPC API
//! (2016-04-28, as bakerd does): AllocateEipAddress, DescribeEipAddresses, AssociateEipAddress,
//! UnassociateEipAddress, ReleaseEipAddress (see `docs/sim-packer-actions.md`). Only the VPC
//! version takes `Name` and `Tag.N` at allocation and lists `Name` and `Tags`.
//!
//! An EIP is a loopback address from the simulator's public range; once `InUse`, the instance's
//! sshd also listens on it (the lifecycle ticker adds it, as it does the public IP). Association and
//! disassociation are asynchronous (`Associating`/`Unassociating` for the profile's `eip_ms`).
//! Releasing an instance disassociates its EIP; the EIP itself lives on until released.

use serde_json::{json, Value};

use super::{list_body, paginate_by_age, vpc_tags_json, Api, Ctx, Order, Paging};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id, Eip, State};

/// The live EIP named by `AllocationId` in the request's region.
fn eip_mut<'s>(ctx: &'s mut Ctx<'_>) -> Result<&'s mut Eip, SimError> {
    let region = ctx.region()?;
    let id = ctx.params.req("AllocationId")?.to_string();
    ctx.state
        .eips
        .get_mut(&id)
        .filter(|e| e.meta.live() && e.meta.region == region)
        .ok_or_else(|| SimError::not_found("InvalidAllocationId.NotFound", "AllocationId", &id))
}

fn incorrect_eip_status(e: &Eip, action: &str) -> SimError {
    SimError::forbidden(
        "IncorrectEipStatus",
        format!(
            "The current status of the EIP does not support this operation: {} is {}, {action} is not allowed.",
            e.meta.id, e.status
        ),
    )
}

pub fn allocate_eip_address(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let bandwidth = p.int_in("Bandwidth", 5, 1, 500)?;
    let charge = p
        .one_of("InternetChargeType", &["PayByBandwidth", "PayByTraffic"])?
        .unwrap_or("PayByBandwidth");
    let name = match ctx.api {
        Api::Vpc => p.opt("Name").unwrap_or("").to_string(),
        Api::Ecs => String::new(),
    };
    if name.chars().count() > 128 {
        return Err(SimError::invalid("Name", "at most 128 characters"));
    }
    let id = new_id("eip");
    let meta = ctx.network_meta(id.clone(), &region)?;
    ctx.dry_run()?;
    let ip = ctx.state.net.next_public_ip();
    ctx.state.eips.insert(
        id.clone(),
        Eip {
            meta,
            ip,
            status: "Available".into(),
            next_ms: ctx.now,
            instance_id: None,
            bandwidth: bandwidth.to_string(),
            internet_charge_type: charge.to_string(),
            name,
        },
    );
    Ok(json!({ "AllocationId": id, "EipAddress": ip.to_string() }))
}

/// `InstanceType` of Associate/Unassociate: only ECS instances are simulated.
fn check_instance_type(ctx: &Ctx<'_>) -> Result<(), SimError> {
    match ctx.params.opt("InstanceType") {
        None | Some("EcsInstance") => Ok(()),
        Some(other) => Err(SimError::invalid(
            "InstanceType",
            format!("{other:?}: the simulator associates EIPs with EcsInstance only"),
        )),
    }
}

pub fn associate_eip_address(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    check_instance_type(ctx)?;
    let instance_id = ctx.params.req("InstanceId")?.to_string();
    let region = ctx.region()?;
    let inst = ctx
        .state
        .instances
        .get(&instance_id)
        .filter(|i| i.meta.live() && i.meta.region == region)
        .ok_or_else(|| {
            SimError::not_found("InvalidInstanceId.NotFound", "InstanceId", &instance_id)
        })?;
    if inst.status != "Running" && inst.status != "Stopped" {
        return Err(SimError::forbidden(
            "IncorrectInstanceStatus",
            format!(
                "The current status of the resource does not support this operation: instance {instance_id} is {}.",
                inst.status
            ),
        ));
    }
    if inst.vpc_id.is_empty() || inst.public_ip.is_some() {
        return Err(SimError::forbidden(
            "InvalidAssociation.Duplicated",
            format!("Instance {instance_id} already has a public IP address or is not in a VPC."),
        ));
    }
    let taken = ctx
        .state
        .eips
        .values()
        .any(|e| e.meta.live() && e.instance_id.as_deref() == Some(instance_id.as_str()));
    let (now, delay) = (ctx.now, ctx.latencies.eip_ms);
    let eip = eip_mut(ctx)?;
    if eip.status != "Available" {
        return Err(incorrect_eip_status(eip, "AssociateEipAddress"));
    }
    if taken {
        return Err(SimError::forbidden(
            "InvalidAssociation.Duplicated",
            format!("Instance {instance_id} already has an EIP."),
        ));
    }
    ctx.dry_run()?;
    let eip = eip_mut(ctx)?;
    eip.status = "Associating".into();
    eip.instance_id = Some(instance_id);
    eip.next_ms = now + delay;
    Ok(json!({}))
}

pub fn unassociate_eip_address(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    check_instance_type(ctx)?;
    let instance_id = ctx.params.req("InstanceId")?.to_string();
    let (now, delay) = (ctx.now, ctx.latencies.eip_ms);
    let eip = eip_mut(ctx)?;
    if eip.status != "InUse" {
        return Err(incorrect_eip_status(eip, "UnassociateEipAddress"));
    }
    if eip.instance_id.as_deref() != Some(instance_id.as_str()) {
        return Err(SimError::forbidden(
            "InvalidInstanceId.NotAssociated",
            format!(
                "EIP {} is not associated with instance {instance_id}.",
                eip.meta.id
            ),
        ));
    }
    ctx.dry_run()?;
    let eip = eip_mut(ctx)?;
    eip.status = "Unassociating".into();
    eip.next_ms = now + delay;
    Ok(json!({}))
}

pub fn release_eip_address(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let now = ctx.now;
    let eip = eip_mut(ctx)?;
    if eip.status != "Available" {
        return Err(incorrect_eip_status(eip, "ReleaseEipAddress"));
    }
    ctx.dry_run()?;
    eip_mut(ctx)?.meta.deleted_ms = Some(now);
    Ok(json!({}))
}

/// Releasing an instance frees its EIP at once (the EIP stays allocated, `Available`).
pub(super) fn unassociate_from_deleted(state: &mut State, instance_id: &str, now: u64) {
    for e in state.eips.values_mut() {
        if e.meta.live() && e.instance_id.as_deref() == Some(instance_id) {
            e.status = "Available".into();
            e.instance_id = None;
            e.next_ms = now;
        }
    }
}

/// One EIP as DescribeEipAddresses lists it; the VPC version adds its name and tags.
fn eip_json(e: &Eip, api: Api) -> Value {
    let mut v = json!({
        "AllocationId": e.meta.id, "IpAddress": e.ip.to_string(), "Status": e.status,
        "InstanceId": e.instance_id.clone().unwrap_or_default(),
        "InstanceType": if e.instance_id.is_some() { "EcsInstance" } else { "" },
        "Bandwidth": e.bandwidth, "EipBandwidth": e.bandwidth,
        "InternetChargeType": e.internet_charge_type, "ChargeType": "PostPaid",
        "AllocationTime": iso_time(e.meta.created_ms), "ExpiredTime": "",
        "RegionId": e.meta.region, "OperationLocks": { "LockReason": [] },
    });
    if api == Api::Vpc {
        v["Name"] = json!(e.name);
        v["Tags"] = vpc_tags_json(&e.meta.tags);
    }
    v
}

pub fn describe_eip_addresses(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let (p, api) = (ctx.params, ctx.api);
    if let Some(t) = p.opt("AssociatedInstanceType") {
        if t != "EcsInstance" {
            return Err(SimError::invalid(
                "AssociatedInstanceType",
                format!("{t:?}: only EcsInstance is simulated"),
            ));
        }
    }
    let eq = |name: &str, have: &str| p.opt(name).is_none_or(|v| v == have);
    let items: Vec<(u64, Value)> = ctx
        .state
        .eips
        .values()
        .filter(|e| e.meta.live() && e.meta.region == region)
        .filter(|e| eq("AllocationId", &e.meta.id) && eq("EipAddress", &e.ip.to_string()))
        .filter(|e| eq("Status", &e.status))
        .filter(|e| {
            eq(
                "AssociatedInstanceId",
                e.instance_id.as_deref().unwrap_or(""),
            )
        })
        .map(|e| (e.meta.created_ms, eip_json(e, api)))
        .collect();
    let paging = Paging::numbered(10, 100);
    let (page, fields) = paginate_by_age(items, Order::NewestFirst, p, &paging)?;
    Ok(list_body("EipAddresses", "EipAddress", page, fields))
}
