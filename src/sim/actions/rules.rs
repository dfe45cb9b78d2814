//! Security group rules: AuthorizeSecurityGroup (ingress), AuthorizeSecurityGroupEgress, their
//! Revoke* counterparts and DescribeSecurityGroupAttribute (see `docs/sim-packer-actions.md`).
//!
//! A rule is given either as `Permissions.N.<Field>` or, in the older form Packer 1.6.6 sends, as
//! top-level `<Field>` parameters. Ingress rules name their peer with `SourceCidrIp`/`SourceGroupId`,
//! egress rules with `DestCidrIp`/`DestGroupId`.

use serde_json::{json, Value};

use super::Ctx;
use crate::sim::error::SimError;
use crate::sim::params::Params;
use crate::sim::store::{iso_time, Rule, SecurityGroup};

/// Which way a rule points; decides the peer's parameter names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The CIDR and group parameters naming the rule's peer.
    fn peer_params(self) -> (&'static str, &'static str) {
        match self {
            Direction::Ingress => ("SourceCidrIp", "SourceGroupId"),
            Direction::Egress => ("DestCidrIp", "DestGroupId"),
        }
    }
}

fn valid_port_range(range: &str) -> bool {
    match range.split_once('/') {
        Some(("-1", "-1")) => true,
        Some((a, b)) => {
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if (1..=65535).contains(&a) && (a..=65535).contains(&b))
        }
        None => false,
    }
}

/// One rule from `<prefix>IpProtocol`, `<prefix>PortRange`, ...
fn parse_rule(p: &Params, prefix: &str, direction: Direction) -> Result<Rule, SimError> {
    let name = |f: &str| format!("{prefix}{f}");
    let proto = p
        .one_of(
            &name("IpProtocol"),
            &["TCP", "UDP", "ICMP", "GRE", "ALL", "ICMPv6"],
        )?
        .ok_or_else(|| SimError::MissingParameter(name("IpProtocol")))?;
    let port_range = p.req(&name("PortRange"))?.to_string();
    if !valid_port_range(&port_range) {
        return Err(SimError::invalid(
            &name("PortRange"),
            "expected start/end within 1..65535, or -1/-1",
        ));
    }
    let (cidr, group) = direction.peer_params();
    let peer = p
        .opt(&name(cidr))
        .or(p.opt(&name(group)))
        .unwrap_or("0.0.0.0/0")
        .to_string();
    let (source_cidr_ip, dest_cidr_ip) = match direction {
        Direction::Ingress => (peer, String::new()),
        Direction::Egress => (String::new(), peer),
    };
    Ok(Rule {
        direction: direction.name().into(),
        ip_protocol: proto.to_string(),
        port_range,
        source_cidr_ip,
        dest_cidr_ip,
        policy: p
            .one_of(&name("Policy"), &["accept", "drop"])?
            .unwrap_or("accept")
            .to_string(),
        priority: p.int_in(&name("Priority"), 1, 1, 100)?,
        nic_type: p
            .one_of(&name("NicType"), &["internet", "intranet"])?
            .unwrap_or("intranet")
            .to_string(),
        description: p.opt(&name("Description")).unwrap_or("").to_string(),
    })
}

/// The rules of a request: every `Permissions.N`, or the one top-level rule.
fn parse_rules(p: &Params, direction: Direction) -> Result<Vec<Rule>, SimError> {
    let mut rules = Vec::new();
    for n in p.struct_indices("Permissions") {
        rules.push(parse_rule(p, &format!("Permissions.{n}."), direction)?);
    }
    if rules.is_empty() {
        rules.push(parse_rule(p, "", direction)?);
    }
    Ok(rules)
}

/// The live group named by `SecurityGroupId` in the request's region.
fn group_mut<'s>(ctx: &'s mut Ctx<'_>) -> Result<&'s mut SecurityGroup, SimError> {
    let region = ctx.region()?;
    let id = ctx.params.req("SecurityGroupId")?.to_string();
    ctx.state
        .security_groups
        .get_mut(&id)
        .filter(|g| g.meta.live() && g.meta.region == region)
        .ok_or_else(|| {
            SimError::not_found("InvalidSecurityGroupId.NotFound", "SecurityGroupId", &id)
        })
}

/// Adds the request's rules; a rule already present is not added twice (ECS answers success).
fn authorize(ctx: &mut Ctx<'_>, direction: Direction) -> Result<Value, SimError> {
    let rules = parse_rules(ctx.params, direction)?;
    group_mut(ctx)?;
    ctx.dry_run()?;
    let group = group_mut(ctx)?;
    for rule in rules {
        if !group.rules.contains(&rule) {
            group.rules.push(rule);
        }
    }
    Ok(json!({}))
}

/// Removes the request's rules, matched on direction, protocol, ports, peer, policy and NIC type; a
/// rule that is not there is ignored, as on ECS.
fn revoke(ctx: &mut Ctx<'_>, direction: Direction) -> Result<Value, SimError> {
    let gone = parse_rules(ctx.params, direction)?;
    group_mut(ctx)?;
    ctx.dry_run()?;
    let same = |a: &Rule, b: &Rule| {
        a.direction == b.direction
            && a.ip_protocol.eq_ignore_ascii_case(&b.ip_protocol)
            && a.port_range == b.port_range
            && a.source_cidr_ip == b.source_cidr_ip
            && a.dest_cidr_ip == b.dest_cidr_ip
            && a.policy == b.policy
            && a.nic_type == b.nic_type
    };
    group_mut(ctx)?
        .rules
        .retain(|r| !gone.iter().any(|g| same(r, g)));
    Ok(json!({}))
}

pub fn authorize_security_group(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    authorize(ctx, Direction::Ingress)
}

pub fn authorize_security_group_egress(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    authorize(ctx, Direction::Egress)
}

pub fn revoke_security_group(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    revoke(ctx, Direction::Ingress)
}

pub fn revoke_security_group_egress(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    revoke(ctx, Direction::Egress)
}

fn permission_json(r: &Rule, created_ms: u64) -> Value {
    json!({
        "Direction": r.direction, "IpProtocol": r.ip_protocol, "PortRange": r.port_range,
        "SourceCidrIp": r.source_cidr_ip, "DestCidrIp": r.dest_cidr_ip,
        "SourceGroupId": "", "DestGroupId": "", "SourceGroupName": "", "DestGroupName": "",
        "SourceGroupOwnerAccount": "", "DestGroupOwnerAccount": "",
        "SourcePortRange": "", "SourcePrefixListId": "", "SourcePrefixListName": "",
        "DestPrefixListId": "", "DestPrefixListName": "", "Ipv6SourceCidrIp": "", "Ipv6DestCidrIp": "",
        "Policy": r.policy, "Priority": r.priority.to_string(), "NicType": r.nic_type,
        "Description": r.description, "CreateTime": iso_time(created_ms),
        "SecurityGroupRuleId": "", "PortRangeListId": "", "PortRangeListName": "",
    })
}

pub fn describe_security_group_attribute(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let wanted = ctx
        .params
        .one_of("Direction", &["all", "ingress", "egress"])?
        .unwrap_or("all")
        .to_string();
    let region = ctx.region()?;
    let g = group_mut(ctx)?;
    let perms: Vec<Value> = g
        .rules
        .iter()
        .filter(|r| wanted == "all" || r.direction == wanted)
        .map(|r| permission_json(r, g.meta.created_ms))
        .collect();
    Ok(json!({
        "SecurityGroupId": g.meta.id, "SecurityGroupName": g.name, "Description": g.description,
        "VpcId": g.vpc_id, "RegionId": region, "InnerAccessPolicy": "Accept",
        "Permissions": {"Permission": perms}, "NextToken": "",
        "SnapshotPolicyIds": {"SnapshotPolicyId": []},
    }))
}
