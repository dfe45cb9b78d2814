//! The ECS actions, and the VPC product's (2016-04-28) versions of the VPC, vSwitch, EIP and tag
//! actions. Each takes the request context and returns the success body (without `RequestId`,
//! which the server adds) or a [`SimError`].

mod account;
mod assistant;
mod data_disks;
mod defaults;
mod eip;
mod images;
mod instances;
mod keypairs;
mod network;
mod regions;
mod rules;
mod send_file;
mod snapshots;
mod tags;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::catalog;
use super::error::SimError;
use super::faults::Faults;
use super::lifecycle::Latencies;
use super::machine::Machines;
use super::params::Params;
use super::quotas::Quotas;
use super::store::{Meta, Resource, State};

/// Which product a request called, by its `Version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// ECS, 2014-05-26 (also every request with another or no `Version`, as before the VPC API
    /// was simulated).
    Ecs,
    /// VPC, 2016-04-28.
    Vpc,
}

impl Api {
    /// The VPC API's version string.
    pub const VPC_VERSION: &'static str = "2016-04-28";

    pub fn of_version(version: Option<&str>) -> Api {
        match version {
            Some(Api::VPC_VERSION) => Api::Vpc,
            _ => Api::Ecs,
        }
    }

    /// The error envelope's `HostId` product prefix and troubleshooting product name.
    pub fn host_and_product(self) -> (&'static str, &'static str) {
        match self {
            Api::Ecs => ("ecs", "Ecs"),
            Api::Vpc => ("vpc", "Vpc"),
        }
    }
}

/// Everything an action may read or change.
pub struct Ctx<'a> {
    pub api: Api,
    pub state: &'a mut State,
    pub machines: &'a Machines,
    pub latencies: &'a Latencies,
    pub faults: &'a mut Faults,
    /// The account's quotas, which the creating actions enforce.
    pub quotas: &'a Quotas,
    pub params: &'a Params,
    pub now: u64,
}

impl Ctx<'_> {
    /// The required `RegionId`, checked against the catalog.
    pub fn region(&self) -> Result<String, SimError> {
        let id = self.params.req("RegionId")?;
        known_region(id)
    }

    /// A fresh `Meta` for a resource created by this request (tags from `Tag.N`).
    pub fn meta(&self, id: String, region: &str) -> Result<Meta, SimError> {
        Ok(Meta {
            id,
            region: region.to_string(),
            created_ms: self.now,
            deleted_ms: None,
            tags: self.params.tags()?.into_iter().collect(),
            client_token: self.params.opt("ClientToken").map(str::to_string),
        })
    }

    /// Like [`Ctx::meta`] for a VPC, vSwitch or EIP: only the VPC API takes `Tag.N` at creation;
    /// ECS's deprecated copies of these actions have no such parameter, so their tags are lost, as
    /// on Alibaba Cloud.
    pub fn network_meta(&self, id: String, region: &str) -> Result<Meta, SimError> {
        let meta = self.meta(id, region)?;
        match self.api {
            Api::Vpc if meta.tags.len() > 20 => {
                Err(SimError::invalid("Tag.N", "at most 20 tags per resource"))
            }
            Api::Vpc => Ok(meta),
            Api::Ecs => Ok(Meta {
                tags: Default::default(),
                ..meta
            }),
        }
    }

    /// `DryRun=true` ends a request that passed its checks with `DryRunOperation`.
    pub fn dry_run(&self) -> Result<(), SimError> {
        if self.params.bool("DryRun")? == Some(true) {
            return Err(SimError::bad_request(
                "DryRunOperation",
                "Request validation has been passed with DryRun flag set.",
            ));
        }
        Ok(())
    }
}

pub fn known_region(id: &str) -> Result<String, SimError> {
    catalog::region(id)
        .map(|r| r.id.to_string())
        .ok_or_else(|| SimError::not_found("InvalidRegionId.NotFound", "RegionId", id))
}

/// Whether an action only reads (no state write needed).
pub fn is_read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("List")
}

/// Runs `action` of the request's product.
pub fn dispatch(action: &str, ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    if let Some(run) = shared_action(action) {
        return run(ctx);
    }
    match (ctx.api, action) {
        (Api::Ecs, "UntagResources") | (Api::Vpc, "UnTagResources") => tags::untag_resources(ctx),
        (Api::Ecs, _) => dispatch_ecs(action, ctx),
        (Api::Vpc, _) => Err(SimError::InvalidAction(action.to_string())),
    }
}

type ActionFn = fn(&mut Ctx<'_>) -> Result<Value, SimError>;

/// The VPC, vSwitch, EIP and tag actions, which both products answer on the same resources
/// (untagging too, spelt `UntagResources` by ECS and `UnTagResources` by the VPC API):
/// the VPC API (2016-04-28) as bakerd calls them, ECS's deprecated copies (2014-05-26) as Packer
/// does. The actions read [`Ctx::api`] where the two differ (tags at creation, tag types).
fn shared_action(action: &str) -> Option<ActionFn> {
    Some(match action {
        "CreateVpc" => network::create_vpc,
        "CreateVSwitch" => network::create_vswitch,
        "DescribeVpcs" => network::describe_vpcs,
        "DescribeVSwitches" => network::describe_vswitches,
        "DeleteVpc" => network::delete_vpc,
        "DeleteVSwitch" => network::delete_vswitch,
        "AllocateEipAddress" => eip::allocate_eip_address,
        "DescribeEipAddresses" => eip::describe_eip_addresses,
        "AssociateEipAddress" => eip::associate_eip_address,
        "UnassociateEipAddress" => eip::unassociate_eip_address,
        "ReleaseEipAddress" => eip::release_eip_address,
        "TagResources" => tags::tag_resources,
        "ListTagResources" => tags::list_tag_resources,
        _ => return None,
    })
}

/// The ECS-only actions (2014-05-26).
fn dispatch_ecs(action: &str, ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    match action {
        "DescribeRegions" => regions::describe_regions(ctx),
        "DescribeAccountAttributes" => account::describe_account_attributes(ctx),
        "DescribeZones" => regions::describe_zones(ctx),
        "DescribeInstanceTypes" => regions::describe_instance_types(ctx),
        "CreateInstance" => instances::create_instance(ctx),
        "RunInstances" => instances::run_instances(ctx),
        "StartInstance" => instances::start_instance(ctx),
        "StopInstance" => instances::stop_instance(ctx),
        "RebootInstance" => instances::reboot_instance(ctx),
        "DeleteInstance" => instances::delete_instance(ctx),
        "DescribeInstances" => instances::describe_instances(ctx),
        "DescribeInstanceStatus" => instances::describe_instance_status(ctx),
        "AllocatePublicIpAddress" => instances::allocate_public_ip(ctx),
        "ImportKeyPair" => keypairs::import_key_pair(ctx),
        "CreateKeyPair" => keypairs::create_key_pair(ctx),
        "DescribeKeyPairs" => keypairs::describe_key_pairs(ctx),
        "DeleteKeyPairs" => keypairs::delete_key_pairs(ctx),
        "AttachKeyPair" => keypairs::attach_key_pair(ctx),
        "DetachKeyPair" => keypairs::detach_key_pair(ctx),
        "CreateSecurityGroup" => network::create_security_group(ctx),
        "AuthorizeSecurityGroup" => rules::authorize_security_group(ctx),
        "AuthorizeSecurityGroupEgress" => rules::authorize_security_group_egress(ctx),
        "RevokeSecurityGroup" => rules::revoke_security_group(ctx),
        "RevokeSecurityGroupEgress" => rules::revoke_security_group_egress(ctx),
        "DescribeSecurityGroups" => network::describe_security_groups(ctx),
        "DescribeSecurityGroupAttribute" => rules::describe_security_group_attribute(ctx),
        "DeleteSecurityGroup" => network::delete_security_group(ctx),
        "DescribeDisks" => snapshots::describe_disks(ctx),
        "CreateSnapshot" => snapshots::create_snapshot(ctx),
        "DescribeSnapshots" => snapshots::describe_snapshots(ctx),
        "DeleteSnapshot" => snapshots::delete_snapshot(ctx),
        "DescribeImages" => images::describe_images(ctx),
        "CreateImage" => images::create_image(ctx),
        "DeleteImage" => images::delete_image(ctx),
        "CopyImage" => images::copy_image(ctx),
        "ModifyImageSharePermission" => images::modify_image_share_permission(ctx),
        "DescribeImageSharePermission" => images::describe_image_share_permission(ctx),
        "DescribeCloudAssistantStatus" => assistant::describe_cloud_assistant_status(ctx),
        "InstallCloudAssistant" => assistant::install_cloud_assistant(ctx),
        "RunCommand" => assistant::run_command(ctx),
        "CreateCommand" => assistant::create_command(ctx),
        "InvokeCommand" => assistant::invoke_command(ctx),
        "DescribeCommands" => assistant::describe_commands(ctx),
        "DeleteCommand" => assistant::delete_command(ctx),
        "DescribeInvocations" => assistant::describe_invocations(ctx),
        "DescribeInvocationResults" => assistant::describe_invocation_results(ctx),
        "StopInvocation" => assistant::stop_invocation(ctx),
        "SendFile" => send_file::send_file(ctx),
        "DescribeSendFileResults" => send_file::describe_send_file_results(ctx),
        "AddTags" => tags::add_tags(ctx),
        "RemoveTags" => tags::remove_tags(ctx),
        "DescribeTags" => tags::describe_tags(ctx),
        other => Err(SimError::InvalidAction(other.to_string())),
    }
}

/// `{"Tag":[{"TagKey":..,"TagValue":..}]}` as ECS lists a resource's tags.
pub fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    let list: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect();
    json!({ "Tag": list })
}

/// `{"Tag":[{"Key":..,"Value":..}]}`, the VPC spelling.
pub fn vpc_tags_json(tags: &BTreeMap<String, String>) -> Value {
    let list: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    json!({ "Tag": list })
}

/// Marks the record `id` of `table` deleted at `now`.
///
/// Assumptions: the caller has checked that `id` is in `table` (panics otherwise).
pub fn mark_deleted<R: Resource>(table: &mut BTreeMap<String, R>, id: &str, now: u64) {
    table.get_mut(id).expect("checked").meta_mut().deleted_ms = Some(now);
}

/// Refuses a deletion (403 `code`) while a live record of `table` still `uses` the resource; the
/// message, from `message(<user id>)`, names the first such user.
pub fn refuse_while_used<R: Resource>(
    table: &BTreeMap<String, R>,
    uses: impl Fn(&R) -> bool,
    code: &'static str,
    message: impl FnOnce(&str) -> String,
) -> Result<(), SimError> {
    match table.values().find(|r| r.meta().live() && uses(r)) {
        Some(user) => Err(SimError::forbidden(code, message(&user.meta().id))),
        None => Ok(()),
    }
}

/// Whether `tags` has every `(key, value)` asked for (an empty value matches any value).
pub fn has_tags(tags: &BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|have| v.is_empty() || have == v))
}

/// Paging of a Describe* list: either `PageNumber`/`PageSize` or `NextToken`/`MaxResults`.
pub struct Paging {
    pub default_size: i64,
    pub max_size: i64,
    /// Whether the action supports `NextToken`/`MaxResults`.
    pub tokens: bool,
}

impl Paging {
    /// `PageNumber`/`PageSize` only.
    pub fn numbered(default_size: i64, max_size: i64) -> Self {
        Paging {
            default_size,
            max_size,
            tokens: false,
        }
    }

    /// `PageNumber`/`PageSize`, or `NextToken`/`MaxResults` when the caller sends either.
    pub fn with_tokens(default_size: i64, max_size: i64) -> Self {
        Paging {
            default_size,
            max_size,
            tokens: true,
        }
    }
}

/// In which creation order a Describe* action lists its resources.
#[derive(Clone, Copy)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// Sorts `(creation time, item)` rows (stable: rows created at the same time keep their order) and
/// cuts the requested page, as [`paginate`] does.
pub fn paginate_by_age<K: Ord>(
    mut rows: Vec<(K, Value)>,
    order: Order,
    params: &Params,
    paging: &Paging,
) -> Result<(Vec<Value>, Map<String, Value>), SimError> {
    match order {
        Order::OldestFirst => rows.sort_by(|a, b| a.0.cmp(&b.0)),
        Order::NewestFirst => rows.sort_by(|a, b| b.0.cmp(&a.0)),
    }
    let items = rows.into_iter().map(|(_, v)| v).collect();
    paginate(items, params, paging)
}

/// Cuts `items` into the requested page and returns it with the paging fields to add to the body.
pub fn paginate<T>(
    items: Vec<T>,
    params: &Params,
    paging: &Paging,
) -> Result<(Vec<T>, Map<String, Value>), SimError> {
    let total = items.len();
    let mut fields = Map::new();
    fields.insert("TotalCount".into(), json!(total));
    let token_mode =
        paging.tokens && (params.opt("NextToken").is_some() || params.opt("MaxResults").is_some());
    if token_mode {
        let start: usize = match params.opt("NextToken") {
            None => 0,
            Some(t) => t
                .parse()
                .map_err(|_| SimError::invalid("NextToken", "not a token this API returned"))?,
        };
        let size = params
            .int("MaxResults")?
            .unwrap_or(paging.default_size)
            .clamp(1, paging.max_size.max(1)) as usize;
        let end = (start + size).min(total);
        let next = if end < total {
            end.to_string()
        } else {
            String::new()
        };
        fields.insert("NextToken".into(), json!(next));
        fields.insert("MaxResults".into(), json!(size));
        let page = items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect();
        return Ok((page, fields));
    }
    let number = params.int_in("PageNumber", 1, 1, i64::from(i32::MAX))?;
    let size = params.int_in("PageSize", paging.default_size, 1, paging.max_size)?;
    let start = ((number - 1) * size) as usize;
    fields.insert("PageNumber".into(), json!(number));
    fields.insert("PageSize".into(), json!(size));
    if paging.tokens {
        let next = if start + (size as usize) < total {
            (start + size as usize).to_string()
        } else {
            String::new()
        };
        fields.insert("NextToken".into(), json!(next));
    }
    let page = items.into_iter().skip(start).take(size as usize).collect();
    Ok((page, fields))
}

/// Builds a body from a list wrapper plus paging fields: `{"<outer>":{"<inner>":[..]}, ..paging}`.
pub fn list_body(outer: &str, inner: &str, items: Vec<Value>, paging: Map<String, Value>) -> Value {
    let mut body = paging;
    body.insert(outer.into(), json!({ inner: items }));
    Value::Object(body)
}

/// A `*` wildcard match (ECS name filters), otherwise exact.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// A comma-separated filter value as a list.
pub fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
