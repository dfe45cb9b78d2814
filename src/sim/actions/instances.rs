//! Instances: CreateInstance, RunInstances, Start/Stop/Reboot/DeleteInstance, DescribeInstances,
//! DescribeInstanceStatus, AllocatePublicIpAddress.

use serde_json::{json, Value};

use super::defaults;
use super::images::image_info;
use super::{has_tags, list_body, name_matches, paginate_by_age, tags_json, Ctx, Order, Paging};
use crate::sim::catalog;
use crate::sim::error::SimError;
use crate::sim::params::Params;
use crate::sim::store::{iso_time, new_id, Disk, Instance};

/// Validated launch parameters shared by CreateInstance and RunInstances.
struct Launch {
    region: String,
    zone: String,
    instance_type: String,
    image_id: String,
    security_group_ids: Vec<String>,
    vpc_id: String,
    vswitch_id: String,
    key_pair_name: Option<String>,
    name: String,
    description: String,
    host_name: String,
    bandwidth_out: i64,
    internet_charge_type: &'static str,
    data_disks: Vec<super::data_disks::DataDiskRequest>,
    disk_size: i64,
    disk_category: String,
    /// SHA-512 crypt hash of `Password`, if given.
    password_hash: Option<String>,
}

/// Characters ECS accepts as the "special" class of an instance password.
const PASSWORD_SPECIALS: &str = "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/";

/// Checks `Password` against ECS's rule (8–30 characters, at least three of upper case, lower case,
/// digits and specials) and returns its SHA-512 crypt hash: the password itself is never stored.
fn parse_password(p: &Params) -> Result<Option<String>, SimError> {
    let Some(password) = p.opt("Password") else {
        return Ok(None);
    };
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| PASSWORD_SPECIALS.contains(c)),
    ];
    let allowed = password
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || PASSWORD_SPECIALS.contains(c));
    let len = password.chars().count();
    if !(8..=30).contains(&len) || !allowed || classes.iter().filter(|c| **c).count() < 3 {
        return Err(SimError::bad_request(
            "InvalidPassword.Malformed",
            "The specified parameter \"Password\" is not valid: 8 to 30 characters with at least three of upper case letters, lower case letters, digits and ()`~!@#$%^&*-_+=|{}[]:;'<>,.?/",
        ));
    }
    sha_crypt::sha512_simple(password, &sha_crypt::Sha512Params::default())
        .map(Some)
        .map_err(|_| SimError::invalid("Password", "could not be hashed"))
}

fn parse_image(ctx: &Ctx<'_>, region: &str) -> Result<(String, i64), SimError> {
    let p = ctx.params;
    let image_id = match (p.opt("ImageId"), p.opt("ImageFamily")) {
        (Some(id), _) => id.to_string(),
        (None, Some(family)) => super::images::latest_in_family(ctx.state, region, family)
            .ok_or_else(|| {
                SimError::not_found("InvalidImageFamily.NotFound", "ImageFamily", family)
            })?,
        (None, None) => return Err(SimError::MissingParameter("ImageId".into())),
    };
    let info = image_info(ctx.state, region, &image_id)
        .ok_or_else(|| SimError::not_found("InvalidImageId.NotFound", "ImageId", &image_id))?;
    if info.status != "Available" {
        return Err(SimError::bad_request(
            "IncorrectImageStatus",
            format!("The image {image_id} is {}, not Available.", info.status),
        ));
    }
    Ok((image_id, info.size_gib))
}

fn parse_security_groups(ctx: &Ctx<'_>, region: &str) -> Result<Vec<String>, SimError> {
    let mut ids = ctx.params.dot_list("SecurityGroupIds");
    if let Some(id) = ctx.params.opt("SecurityGroupId") {
        ids.insert(0, id.to_string());
    }
    if ids.is_empty() {
        return Err(SimError::MissingParameter("SecurityGroupId".into()));
    }
    for id in &ids {
        let live = ctx
            .state
            .security_groups
            .get(id)
            .is_some_and(|g| g.meta.live() && g.meta.region == region);
        if !live {
            return Err(SimError::not_found(
                "InvalidSecurityGroupId.NotFound",
                "SecurityGroupId",
                id,
            ));
        }
    }
    Ok(ids)
}

/// Zone, VPC and vSwitch: from the vSwitch if given, else from `ZoneId` or the region's first zone.
fn parse_placement(ctx: &Ctx<'_>, region: &str) -> Result<(String, String, String), SimError> {
    let zones = catalog::region(region).expect("region checked").zones;
    let zone = match ctx.params.opt("ZoneId") {
        Some(z) if zones.contains(&z) => Some(z.to_string()),
        Some(z) => return Err(SimError::not_found("InvalidZoneId.NotFound", "ZoneId", z)),
        None => None,
    };
    let Some(vsw_id) = ctx.params.opt("VSwitchId") else {
        return Ok((
            zone.unwrap_or_else(|| zones[0].to_string()),
            String::new(),
            String::new(),
        ));
    };
    let vsw = ctx
        .state
        .vswitches
        .get(vsw_id)
        .filter(|v| v.meta.live() && v.meta.region == region)
        .ok_or_else(|| SimError::not_found("InvalidVSwitchId.NotFound", "VSwitchId", vsw_id))?;
    if zone.as_ref().is_some_and(|z| *z != vsw.zone) {
        return Err(SimError::invalid(
            "ZoneId",
            format!("vSwitch {vsw_id} is in zone {}", vsw.zone),
        ));
    }
    Ok((vsw.zone.clone(), vsw.vpc_id.clone(), vsw_id.to_string()))
}

fn parse_launch(ctx: &Ctx<'_>) -> Result<Launch, SimError> {
    let p = ctx.params;
    let region = ctx.region()?;
    let instance_type = p.req("InstanceType")?;
    if catalog::instance_type(instance_type).is_none() {
        return Err(SimError::bad_request(
            "InvalidInstanceType.ValueNotSupported",
            format!("The specified InstanceType {instance_type} is not supported."),
        ));
    }
    let (image_id, image_size) = parse_image(ctx, &region)?;
    let security_group_ids = parse_security_groups(ctx, &region)?;
    let (zone, vpc_id, vswitch_id) = parse_placement(ctx, &region)?;
    let key_pair_name = p.opt("KeyPairName").map(str::to_string);
    if let Some(name) = &key_pair_name {
        if !ctx
            .state
            .key_pairs
            .values()
            .any(|k| k.meta.live() && &k.name == name && k.meta.region == region)
        {
            return Err(SimError::not_found(
                "InvalidKeyPairName.NotFound",
                "KeyPairName",
                name,
            ));
        }
    }
    let disk_size = p.int("SystemDisk.Size")?.unwrap_or(image_size.max(20));
    if disk_size < image_size {
        return Err(SimError::bad_request(
            "InvalidSystemDiskSize.LessThanImageSize",
            format!("SystemDisk.Size {disk_size} is smaller than the image size {image_size} GiB."),
        ));
    }
    // Validated as ECS does; the simulator has no security agent to install either way.
    p.one_of("SecurityEnhancementStrategy", &["Active", "Deactive"])?;
    let name = p.opt("InstanceName").unwrap_or("").to_string();
    let data_disks = super::data_disks::parse(ctx, &region, &image_id)?;
    Ok(Launch {
        zone,
        instance_type: instance_type.to_string(),
        image_id,
        security_group_ids,
        vpc_id,
        vswitch_id,
        key_pair_name,
        host_name: p
            .opt("HostName")
            .map(str::to_string)
            .unwrap_or_else(|| name.clone()),
        name,
        description: p.opt("Description").unwrap_or("").to_string(),
        bandwidth_out: p.int_in("InternetMaxBandwidthOut", 0, 0, 1000)?,
        internet_charge_type: p
            .one_of("InternetChargeType", &["PayByTraffic", "PayByBandwidth"])?
            .unwrap_or("PayByTraffic"),
        data_disks,
        disk_size,
        disk_category: p
            .opt("SystemDisk.Category")
            .unwrap_or("cloud_efficiency")
            .to_string(),
        password_hash: parse_password(p)?,
        region,
    })
}

/// Refuses a launch of `count` instances that would pass the account's vCPU or data disk quota.
fn check_quotas(ctx: &Ctx<'_>, l: &Launch, count: i64) -> Result<(), SimError> {
    let disks: Vec<(String, i64)> = l
        .data_disks
        .iter()
        .map(|d| (d.category.clone(), d.size_gib))
        .collect();
    super::account::check_launch(
        ctx,
        &l.region,
        &l.instance_type,
        count.max(0) as u64,
        &disks,
    )
}

/// Creates one instance and its system disk (a copy of the image's filesystem).
fn create_one(
    ctx: &mut Ctx<'_>,
    l: &Launch,
    target: &str,
    public_ip: bool,
) -> Result<String, SimError> {
    let id = new_id("i");
    let disk_id = new_id("d");
    ctx.machines.create_disk_from_image(&disk_id, &l.image_id)?;
    let mut disk_meta = ctx.meta(disk_id.clone(), &l.region)?;
    disk_meta.client_token = None;
    disk_meta.tags.clear();
    ctx.state.disks.insert(
        disk_id.clone(),
        Disk {
            meta: disk_meta,
            zone: l.zone.clone(),
            status: "In_use".into(),
            instance_id: Some(id.clone()),
            image_id: l.image_id.clone(),
            size_gib: l.disk_size,
            category: l.disk_category.clone(),
            name: String::new(),
            data: None,
        },
    );
    crate::sim::assistant::inherit_agent(ctx.state, &l.image_id, &disk_id);
    super::data_disks::create(ctx, &id, &l.zone, &l.region, &l.data_disks)?;
    let private_ip = ctx.state.net.next_private_ip();
    let public_ip = public_ip.then(|| ctx.state.net.next_public_ip());
    let instance = Instance {
        meta: ctx.meta(id.clone(), &l.region)?,
        zone: l.zone.clone(),
        status: "Pending".into(),
        target: Some(target.to_string()),
        next_ms: ctx.now + ctx.latencies.instance_step_ms,
        running_since_ms: None,
        instance_type: l.instance_type.clone(),
        image_id: l.image_id.clone(),
        name: if l.name.is_empty() {
            id.clone()
        } else {
            l.name.clone()
        },
        description: l.description.clone(),
        host_name: if l.host_name.is_empty() {
            id.clone()
        } else {
            l.host_name.clone()
        },
        key_pair_name: l.key_pair_name.clone(),
        security_group_ids: l.security_group_ids.clone(),
        vpc_id: l.vpc_id.clone(),
        vswitch_id: l.vswitch_id.clone(),
        private_ip,
        public_ip,
        internet_max_bandwidth_out: l.bandwidth_out,
        internet_charge_type: l.internet_charge_type.to_string(),
        system_disk_id: disk_id,
        stopped_mode: "Not-applicable".into(),
        released_ms: None,
        password_hash: l.password_hash.clone(),
    };
    ctx.state.instances.insert(id.clone(), instance);
    Ok(id)
}

pub fn create_instance(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let launch = parse_launch(ctx)?;
    ctx.dry_run()?;
    check_quotas(ctx, &launch, 1)?;
    let id = create_one(ctx, &launch, "Stopped", false)?;
    Ok(json!({ "InstanceId": id, "OrderId": "", "TradePrice": 0.0 }))
}

pub fn run_instances(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let launch = parse_launch(ctx)?;
    let amount = ctx.params.int_in("Amount", 1, 1, 100)?;
    ctx.dry_run()?;
    check_quotas(ctx, &launch, amount)?;
    let mut ids = Vec::new();
    for _ in 0..amount {
        ids.push(create_one(
            ctx,
            &launch,
            "Running",
            launch.bandwidth_out > 0,
        )?);
    }
    Ok(json!({ "InstanceIdSets": { "InstanceIdSet": ids }, "OrderId": "", "TradePrice": 0.0 }))
}

/// The live instance named by `InstanceId`.
fn instance_mut<'s>(ctx: &'s mut Ctx<'_>) -> Result<&'s mut Instance, SimError> {
    let id = ctx.params.req("InstanceId")?.to_string();
    let region = ctx.params.opt("RegionId").map(str::to_string);
    ctx.state
        .instances
        .get_mut(&id)
        .filter(|i| i.meta.live() && region.as_ref().is_none_or(|r| *r == i.meta.region))
        .ok_or_else(|| SimError::not_found("InvalidInstanceId.NotFound", "InstanceId", &id))
}

fn incorrect_status(inst: &Instance, action: &str) -> SimError {
    SimError::forbidden(
        "IncorrectInstanceStatus",
        format!("The current status of the resource does not support this operation: instance {} is {}, {action} is not allowed.", inst.meta.id, inst.status),
    )
}

/// Starts a transition `from` → `via` heading to `target`.
fn transition(
    ctx: &mut Ctx<'_>,
    action: &str,
    from: &str,
    via: &str,
    target: &str,
) -> Result<Value, SimError> {
    let step = ctx.latencies.instance_step_ms;
    let now = ctx.now;
    let dry = ctx.params.bool("DryRun")? == Some(true);
    let inst = instance_mut(ctx)?;
    if inst.status != from || inst.target.is_some() {
        return Err(incorrect_status(inst, action));
    }
    if dry {
        return ctx.dry_run().map(|_| json!({}));
    }
    let inst = instance_mut(ctx)?;
    inst.status = via.to_string();
    inst.target = Some(target.to_string());
    inst.next_ms = now + step;
    if via != "Running" {
        inst.running_since_ms = None;
    }
    Ok(json!({}))
}

pub fn start_instance(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    transition(ctx, "StartInstance", "Stopped", "Starting", "Running")
}

pub fn stop_instance(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    ctx.params.bool("ForceStop")?;
    transition(ctx, "StopInstance", "Running", "Stopping", "Stopped")
}

pub fn reboot_instance(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    ctx.params.bool("ForceStop")?;
    transition(ctx, "RebootInstance", "Running", "Stopping", "Running")
}

pub fn delete_instance(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let force = ctx.params.bool("Force")?.unwrap_or(false);
    ctx.params.bool("ForceStop")?;
    let now = ctx.now;
    let inst = instance_mut(ctx)?;
    if inst.status == "Pending" {
        return Err(SimError::forbidden(
            "IncorrectInstanceStatus.Initializing",
            format!(
                "Instance {} is still initializing; retry shortly.",
                inst.meta.id
            ),
        ));
    }
    if !force && inst.status != "Stopped" {
        return Err(incorrect_status(inst, "DeleteInstance without Force=true"));
    }
    let (id, disk_id) = (inst.meta.id.clone(), inst.system_disk_id.clone());
    ctx.dry_run()?;
    ctx.machines.forget_instance(&id)?;
    ctx.machines.delete_disk(&disk_id)?;
    let release_ms = ctx.latencies.release_ms;
    let inst = ctx.state.instances.get_mut(&id).expect("found above");
    inst.meta.deleted_ms = Some(now);
    inst.released_ms = Some(now + release_ms);
    inst.target = None;
    super::eip::unassociate_from_deleted(ctx.state, &id, now);
    if let Some(d) = ctx.state.disks.get_mut(&disk_id) {
        d.meta.deleted_ms = Some(now);
        d.instance_id = None;
    }
    super::data_disks::release(ctx, &id, now)?;
    Ok(json!({}))
}

pub fn allocate_public_ip(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let inst = instance_mut(ctx)?;
    if inst.status != "Running" && inst.status != "Stopped" {
        return Err(incorrect_status(inst, "AllocatePublicIpAddress"));
    }
    if let Some(ip) = inst.public_ip {
        return Ok(json!({ "IpAddress": ip.to_string() }));
    }
    let id = inst.meta.id.clone();
    let ip = ctx.state.net.next_public_ip();
    ctx.state
        .instances
        .get_mut(&id)
        .expect("found above")
        .public_ip = Some(ip);
    Ok(json!({ "IpAddress": ip.to_string() }))
}

fn matches_filters(
    ctx: &Ctx<'_>,
    i: &Instance,
    ids: &Option<Vec<String>>,
) -> Result<bool, SimError> {
    let p = ctx.params;
    let eq = |name: &str, have: &str| p.opt(name).is_none_or(|v| v == have);
    let in_json = |list: Option<Vec<String>>, have: Option<String>| {
        list.is_none_or(|l| have.is_some_and(|h| l.contains(&h)))
    };
    Ok(ids.as_ref().is_none_or(|l| l.contains(&i.meta.id))
        && eq("Status", &i.status)
        && eq("ZoneId", &i.zone)
        && eq("VpcId", &i.vpc_id)
        && eq("VSwitchId", &i.vswitch_id)
        && eq("ImageId", &i.image_id)
        && eq("InstanceType", &i.instance_type)
        && eq("KeyPairName", i.key_pair_name.as_deref().unwrap_or(""))
        && p.opt("SecurityGroupId")
            .is_none_or(|s| i.security_group_ids.iter().any(|g| g == s))
        && p.opt("InstanceName")
            .is_none_or(|n| name_matches(n, &i.name))
        && in_json(
            p.json_list("PrivateIpAddresses")?,
            Some(i.private_ip.to_string()),
        )
        && in_json(
            p.json_list("PublicIpAddresses")?,
            i.public_ip.map(|x| x.to_string()),
        )
        && has_tags(&i.meta.tags, &p.tags()?))
}

/// The instance's `EipAddress` block: its associated EIP, or empty fields.
fn eip_of(ctx: &Ctx<'_>, i: &Instance) -> Value {
    let eip = ctx.state.eips.values().find(|e| {
        e.meta.live() && e.status == "InUse" && e.instance_id.as_deref() == Some(i.meta.id.as_str())
    });
    match eip {
        Some(e) => json!({ "AllocationId": e.meta.id, "IpAddress": e.ip.to_string(),
            "Bandwidth": e.bandwidth.parse::<i64>().unwrap_or(5), "InternetChargeType": e.internet_charge_type,
            "IsSupportUnassociate": true }),
        None => {
            json!({ "AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "", "IsSupportUnassociate": false })
        }
    }
}

fn instance_json(ctx: &Ctx<'_>, i: &Instance) -> Value {
    let t = catalog::instance_type(&i.instance_type);
    let os_name = image_info(ctx.state, &i.meta.region, &i.image_id)
        .map(|x| x.os_name)
        .unwrap_or_default();
    let public: Vec<String> = i.public_ip.iter().map(|x| x.to_string()).collect();
    let mut base = json!({
        "InstanceId": i.meta.id, "InstanceName": i.name, "Description": i.description,
        "HostName": i.host_name, "Status": i.status, "RegionId": i.meta.region, "ZoneId": i.zone,
        "InstanceType": i.instance_type, "InstanceTypeFamily": t.map(|t| t.family).unwrap_or(""),
        "Cpu": t.map(|t| t.cpus).unwrap_or(2), "Memory": t.map(|t| (t.memory_gib * 1024.0) as i64).unwrap_or(4096),
        "ImageId": i.image_id, "OSType": "linux", "OSName": os_name, "OSNameEn": os_name,
        "InstanceNetworkType": if i.vpc_id.is_empty() { "classic" } else { "vpc" },
        "InstanceChargeType": "PostPaid", "InternetChargeType": i.internet_charge_type,
        "InternetMaxBandwidthOut": i.internet_max_bandwidth_out, "InternetMaxBandwidthIn": 200,
        "IoOptimized": true, "KeyPairName": i.key_pair_name.clone().unwrap_or_default(),
        "CreationTime": iso_time(i.meta.created_ms), "StartTime": i.running_since_ms.map(iso_time).unwrap_or_default(),
        "ExpiredTime": "2099-12-31T15:59Z", "AutoReleaseTime": "", "StoppedMode": i.stopped_mode,
        "DeletionProtection": false, "ResourceGroupId": "", "SerialNumber": i.meta.id,
    });
    let network = json!({
        "SecurityGroupIds": { "SecurityGroupId": i.security_group_ids },
        "PublicIpAddress": { "IpAddress": public },
        "InnerIpAddress": { "IpAddress": if i.vpc_id.is_empty() { vec![i.private_ip.to_string()] } else { vec![] } },
        "VpcAttributes": { "VpcId": i.vpc_id, "VSwitchId": i.vswitch_id, "NatIpAddress": "",
            "PrivateIpAddress": { "IpAddress": [i.private_ip.to_string()] } },
        "EipAddress": eip_of(ctx, i),
        "NetworkInterfaces": { "NetworkInterface": [{ "NetworkInterfaceId": format!("eni-{}", &i.meta.id[2..]), "Type": "Primary",
            "MacAddress": "00:16:3e:00:00:01", "PrimaryIpAddress": i.private_ip.to_string(),
            "PrivateIpSets": { "PrivateIpSet": [{ "PrivateIpAddress": i.private_ip.to_string(), "Primary": true, "PrivateDnsName": "" }] },
            "Ipv4PrefixSets": { "Ipv4PrefixSet": [] }, "Ipv6PrefixSets": { "Ipv6PrefixSet": [] }, "Ipv6Sets": { "Ipv6Set": [] } }] },
        "OperationLocks": { "LockReason": [] },
        "Tags": tags_json(&i.meta.tags),
        "MetadataOptions": { "HttpEndpoint": "enabled", "HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "disabled" },
    });
    defaults::merge(&mut base, network);
    defaults::merge(
        &mut base,
        defaults::instance_extras(t.map(|t| t.cpus).unwrap_or(2)),
    );
    base
}

pub fn describe_instances(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let ids = ctx.params.json_list("InstanceIds")?;
    let mut items = Vec::new();
    for i in ctx
        .state
        .instances
        .values()
        .filter(|i| i.meta.live() && i.meta.region == region)
    {
        if matches_filters(ctx, i, &ids)? {
            items.push((i.meta.created_ms, instance_json(ctx, i)));
        }
    }
    let paging = Paging::with_tokens(10, 100);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, ctx.params, &paging)?;
    Ok(list_body("Instances", "Instance", page, fields))
}

pub fn describe_instance_status(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let ids = ctx.params.dot_list("InstanceId");
    let zone = ctx.params.opt("ZoneId");
    let items: Vec<(u64, Value)> = ctx
        .state
        .instances
        .values()
        .filter(|i| i.meta.live() && i.meta.region == region)
        .filter(|i| ids.is_empty() || ids.contains(&i.meta.id))
        .filter(|i| zone.is_none_or(|z| z == i.zone))
        .map(|i| {
            (
                i.meta.created_ms,
                json!({ "InstanceId": i.meta.id, "Status": i.status }),
            )
        })
        .collect();
    let paging = Paging::numbered(10, 50);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, ctx.params, &paging)?;
    Ok(list_body(
        "InstanceStatuses",
        "InstanceStatus",
        page,
        fields,
    ))
}
