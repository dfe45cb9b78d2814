//! Cloud Assistant commands: DescribeCloudAssistantStatus, InstallCloudAssistant, RunCommand,
//! CreateCommand, InvokeCommand, DescribeCommands, DeleteCommand, DescribeInvocations,
//! DescribeInvocationResults, StopInvocation. Limits, defaults and status rules are in
//! `docs/cloud-assistant.md`; the runner (`sim::assistant`) delivers and runs invocations.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

use super::{list_body, paginate, Ctx, Paging};
use crate::sim::assistant::{agent_online, Invocation, SavedCommand, Target};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id};

const COMMAND_TYPES: &[&str] = &["RunShellScript", "RunBatScript", "RunPowerShellScript"];
/// `CommandContent` limit after base64: 24 KB for a one-shot RunCommand…
const RUN_CONTENT_LIMIT: usize = 24 * 1024;
/// …and 18 KB for a command that is kept (`KeepCommand=true`, `CreateCommand`).
const KEPT_CONTENT_LIMIT: usize = 18 * 1024;
/// Instances per RunCommand / InvokeCommand / SendFile call.
pub const MAX_INSTANCES: usize = 100;
const DEFAULT_TIMEOUT_S: i64 = 60;
const MAX_TIMEOUT_S: i64 = 86_400;
const MAX_NAME: usize = 128;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `CommandContent` decoded per `ContentEncoding` (PlainText default for RunCommand, Base64 for
/// CreateCommand), checked against `limit` measured after base64.
fn command_content(ctx: &Ctx<'_>, default_base64: bool, limit: usize) -> Result<Vec<u8>, SimError> {
    let raw = ctx.params.req("CommandContent")?;
    let base64 = match ctx
        .params
        .one_of("ContentEncoding", &["PlainText", "Base64"])?
    {
        Some(e) => e == "Base64",
        None => default_base64,
    };
    let content = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| SimError::invalid("CommandContent", "is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    let encoded = b64(&content).len();
    if encoded > limit {
        return Err(SimError::invalid(
            "CommandContent",
            format!("is {encoded} bytes after base64, more than the limit of {limit}"),
        ));
    }
    Ok(content)
}

/// `InstanceId.N`: 1 to [`MAX_INSTANCES`] live instances of the region.
pub fn target_instances(ctx: &Ctx<'_>, region: &str) -> Result<Vec<String>, SimError> {
    let ids = ctx.params.dot_list("InstanceId");
    if ids.is_empty() {
        return Err(SimError::MissingParameter("InstanceId.1".into()));
    }
    if ids.len() > MAX_INSTANCES {
        return Err(SimError::invalid(
            "InstanceId",
            format!("at most {MAX_INSTANCES} instances"),
        ));
    }
    for id in &ids {
        let live = ctx
            .state
            .instances
            .get(id)
            .is_some_and(|i| i.meta.live() && i.meta.region == region);
        if !live {
            return Err(SimError::not_found(
                "InvalidInstance.NotFound",
                "instance",
                id,
            ));
        }
    }
    Ok(ids)
}

fn timeout(ctx: &Ctx<'_>) -> Result<u64, SimError> {
    Ok(ctx
        .params
        .int_in("Timeout", DEFAULT_TIMEOUT_S, 1, MAX_TIMEOUT_S)? as u64)
}

/// Only one-shot runs as root are simulated; other modes are refused by name, not ignored.
fn check_supported(ctx: &Ctx<'_>) -> Result<String, SimError> {
    if let Some(mode) = ctx.params.opt("RepeatMode").filter(|m| *m != "Once") {
        return Err(SimError::invalid(
            "RepeatMode",
            format!("{mode:?}: the simulator runs commands Once only"),
        ));
    }
    let user = ctx.params.opt("Username").unwrap_or("root");
    if user != "root" {
        return Err(SimError::invalid(
            "Username",
            format!("{user:?}: the simulator runs commands as root only"),
        ));
    }
    Ok(user.to_string())
}

/// `{{name}}` placeholders replaced from the `Parameters` JSON object (EnableParameter=true).
fn substitute(content: Vec<u8>, params: Option<&str>) -> Result<Vec<u8>, SimError> {
    let Some(raw) = params else {
        return Ok(content);
    };
    let map: BTreeMap<String, Value> = serde_json::from_str(raw)
        .map_err(|_| SimError::invalid("Parameters", "expected a JSON object"))?;
    let mut text = String::from_utf8_lossy(&content).into_owned();
    for (key, value) in map {
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        text = text.replace(&format!("{{{{{key}}}}}"), &value);
    }
    Ok(text.into_bytes())
}

/// Records a new invocation of `command` on `instances` and returns its id.
fn start_invocation(
    ctx: &mut Ctx<'_>,
    command: &SavedCommand,
    content: Vec<u8>,
    instances: &[String],
    timeout_s: u64,
    username: String,
) -> Result<String, SimError> {
    let id = new_id("t");
    let meta = ctx.meta(id.clone(), &command.region)?;
    let invocation = Invocation {
        id: id.clone(),
        region: command.region.clone(),
        command_id: command.id.clone(),
        name: command.name.clone(),
        description: command.description.clone(),
        command_type: command.command_type.clone(),
        content,
        working_dir: command.working_dir.clone(),
        timeout_s,
        username,
        created_ms: ctx.now,
        tags: meta.tags,
        client_token: meta.client_token,
        file: None,
        targets: Target::pending_on(instances, ctx.now),
    };
    ctx.state
        .assistant
        .invocations
        .insert(id.clone(), invocation);
    Ok(id)
}

fn new_command(
    ctx: &Ctx<'_>,
    region: &str,
    content: &[u8],
    default_name: &str,
) -> Result<SavedCommand, SimError> {
    let p = ctx.params;
    let name = p.opt("Name").unwrap_or(default_name).to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(SimError::invalid(
            "Name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    let command_type = p
        .one_of("Type", COMMAND_TYPES)?
        .ok_or_else(|| SimError::MissingParameter("Type".into()))?;
    Ok(SavedCommand {
        id: new_id("c"),
        region: region.to_string(),
        name,
        description: p.opt("Description").unwrap_or("").to_string(),
        command_type: command_type.to_string(),
        content: String::from_utf8_lossy(content).into_owned(),
        working_dir: p.opt("WorkingDir").unwrap_or("/root").to_string(),
        timeout_s: timeout(ctx)?,
        enable_parameter: p.bool("EnableParameter")?.unwrap_or(false),
        created_ms: ctx.now,
        deleted_ms: None,
        tags: p.tags()?.into_iter().collect(),
        invoke_times: 0,
    })
}

pub fn run_command(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let keep = ctx.params.bool("KeepCommand")?.unwrap_or(false);
    let limit = if keep {
        KEPT_CONTENT_LIMIT
    } else {
        RUN_CONTENT_LIMIT
    };
    let content = command_content(ctx, false, limit)?;
    let mut command = new_command(ctx, &region, &content, "RunCommand")?;
    let username = check_supported(ctx)?;
    let instances = target_instances(ctx, &region)?;
    ctx.dry_run()?;
    let content = match command.enable_parameter {
        true => substitute(content, ctx.params.opt("Parameters"))?,
        false => content,
    };
    let timeout_s = command.timeout_s;
    command.invoke_times = 1;
    if !keep {
        command.deleted_ms = Some(ctx.now);
    }
    let invoke_id = start_invocation(ctx, &command, content, &instances, timeout_s, username)?;
    let command_id = command.id.clone();
    ctx.state
        .assistant
        .commands
        .insert(command_id.clone(), command);
    Ok(json!({ "CommandId": command_id, "InvokeId": invoke_id }))
}

pub fn create_command(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    ctx.params.req("Name")?;
    let content = command_content(ctx, true, KEPT_CONTENT_LIMIT)?;
    let command = new_command(ctx, &region, &content, "")?;
    let id = command.id.clone();
    ctx.state.assistant.commands.insert(id.clone(), command);
    Ok(json!({ "CommandId": id }))
}

fn live_command(ctx: &Ctx<'_>, region: &str) -> Result<SavedCommand, SimError> {
    let id = ctx.params.req("CommandId")?;
    ctx.state
        .assistant
        .commands
        .get(id)
        .filter(|c| c.deleted_ms.is_none() && c.region == region)
        .cloned()
        .ok_or_else(|| SimError::not_found("InvalidCommandId.NotFound", "command", id))
}

pub fn invoke_command(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let command = live_command(ctx, &region)?;
    let username = check_supported(ctx)?;
    let instances = target_instances(ctx, &region)?;
    ctx.dry_run()?;
    let content = command.content.clone().into_bytes();
    let content = match command.enable_parameter {
        true => substitute(content, ctx.params.opt("Parameters"))?,
        false => content,
    };
    let timeout_s = match ctx.params.opt("Timeout") {
        Some(_) => timeout(ctx)?,
        None => command.timeout_s,
    };
    let id = start_invocation(ctx, &command, content, &instances, timeout_s, username)?;
    if let Some(c) = ctx.state.assistant.commands.get_mut(&command.id) {
        c.invoke_times += 1;
    }
    Ok(json!({ "InvokeId": id }))
}

pub fn delete_command(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let command = live_command(ctx, &region)?;
    let now = ctx.now;
    if let Some(c) = ctx.state.assistant.commands.get_mut(&command.id) {
        c.deleted_ms = Some(now);
    }
    Ok(json!({}))
}

pub fn describe_commands(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let tags = p.tags()?;
    let rows: Vec<Value> = ctx
        .state
        .assistant
        .commands
        .values()
        .filter(|c| c.deleted_ms.is_none() && c.region == region)
        .filter(|c| p.opt("CommandId").is_none_or(|id| id == c.id))
        .filter(|c| p.opt("Name").is_none_or(|n| n == c.name))
        .filter(|c| p.opt("Type").is_none_or(|t| t == c.command_type))
        .filter(|c| super::has_tags(&c.tags, &tags))
        .map(|c| {
            json!({
                "CommandId": c.id, "Name": c.name, "Description": c.description,
                "Type": c.command_type, "CommandContent": b64(c.content.as_bytes()),
                "WorkingDir": c.working_dir, "Timeout": c.timeout_s,
                "EnableParameter": c.enable_parameter, "InvokeTimes": c.invoke_times,
                "CreationTime": iso_time(c.created_ms), "Tags": super::tags_json(&c.tags),
            })
        })
        .collect();
    let (page, paging) = paginate(rows, p, &Paging::with_tokens(10, 50))?;
    Ok(list_body("Commands", "Command", page, paging))
}

pub fn describe_cloud_assistant_status(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let wanted = ctx.params.dot_list("InstanceId");
    let rows: Vec<Value> = ctx
        .state
        .instances
        .values()
        .filter(|i| i.meta.live() && i.meta.region == region)
        .filter(|i| wanted.is_empty() || wanted.contains(&i.meta.id))
        .map(|i| {
            let online = agent_online(ctx.state, i, ctx.latencies, ctx.now);
            let count = ctx
                .state
                .assistant
                .invocations
                .values()
                .filter(|inv| inv.targets.iter().any(|t| t.instance_id == i.meta.id))
                .count();
            json!({
                "InstanceId": i.meta.id, "CloudAssistantStatus": online.to_string(),
                "CloudAssistantVersion": if online { "2.2.3.857" } else { "" },
                "OSType": "Linux", "SupportSessionManager": false,
                "InvocationCount": count, "ActiveTaskCount": 0,
                "LastHeartbeatTime": if online { iso_time(ctx.now) } else { String::new() },
            })
        })
        .collect();
    let (page, paging) = paginate(rows, ctx.params, &Paging::with_tokens(10, 50))?;
    Ok(list_body(
        "InstanceCloudAssistantStatusSet",
        "InstanceCloudAssistantStatus",
        page,
        paging,
    ))
}

pub fn install_cloud_assistant(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let instances = target_instances(ctx, &region)?;
    for id in &instances {
        let status = &ctx.state.instances[id].status;
        if status != "Running" {
            return Err(SimError::forbidden(
                "IncorrectInstanceStatus",
                format!("Instance {id} is {status}; InstallCloudAssistant needs it Running."),
            ));
        }
    }
    ctx.dry_run()?;
    for id in instances {
        let disk = ctx.state.instances[&id].system_disk_id.clone();
        if !crate::sim::assistant::has_agent(ctx.state, &disk) {
            ctx.state.assistant.agents.insert(disk);
            ctx.state.assistant.installs.insert(id, ctx.now);
        }
    }
    Ok(json!({}))
}

/// One target as DescribeInvocationResults / DescribeInvocations show it.
pub fn target_json(inv: &Invocation, t: &Target, plain: bool) -> Value {
    let output = if plain {
        String::from_utf8_lossy(&t.output).into_owned()
    } else {
        b64(&t.output)
    };
    let time = |ms: Option<u64>| ms.map(iso_time).unwrap_or_default();
    json!({
        "InvokeId": inv.id, "CommandId": inv.command_id, "InstanceId": t.instance_id,
        "InvocationStatus": t.status, "InvokeRecordStatus": t.record_status(),
        "InstanceInvokeStatus": t.record_status(),
        "ExitCode": t.exit_code, "Output": output, "Dropped": t.dropped,
        "ErrorCode": t.error_code, "ErrorInfo": t.error_info,
        "StartTime": time(t.start_ms), "FinishedTime": time(t.finish_ms),
        "FinishTime": time(t.finish_ms), "StopTime": time(t.stop_ms),
        "CreationTime": iso_time(t.created_ms), "Repeats": u8::from(t.start_ms.is_some()),
        "Username": inv.username, "Tags": super::tags_json(&inv.tags),
    })
}

/// The region, `InvokeId` and `CommandId` filters both invocation listings share.
fn asked_for(inv: &Invocation, p: &crate::sim::params::Params, region: &str) -> bool {
    inv.region == region
        && p.opt("InvokeId").is_none_or(|id| id == inv.id)
        && p.opt("CommandId").is_none_or(|id| id == inv.command_id)
}

fn plain_output(ctx: &Ctx<'_>) -> Result<bool, SimError> {
    Ok(ctx
        .params
        .one_of("ContentEncoding", &["PlainText", "Base64"])?
        == Some("PlainText"))
}

pub fn describe_invocation_results(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let plain = plain_output(ctx)?;
    let status = p.opt("InvokeRecordStatus");
    let tags = p.tags()?;
    let rows: Vec<Value> = ctx
        .state
        .assistant
        .invocations
        .values()
        .filter(|inv| asked_for(inv, p, &region))
        .filter(|inv| super::has_tags(&inv.tags, &tags))
        .flat_map(|inv| inv.targets.iter().map(move |t| (inv, t)))
        .filter(|(_, t)| p.opt("InstanceId").is_none_or(|id| id == t.instance_id))
        .filter(|(_, t)| status.is_none_or(|s| s == t.record_status()))
        .map(|(inv, t)| target_json(inv, t, plain))
        .collect();
    let (page, paging) = paginate(rows, p, &Paging::with_tokens(10, 50))?;
    let mut inner = paging;
    inner.insert(
        "InvocationResults".into(),
        json!({ "InvocationResult": page }),
    );
    Ok(json!({ "Invocation": Value::Object(inner) }))
}

pub fn describe_invocations(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let plain = plain_output(ctx)?;
    let with_output = p.bool("IncludeOutput")?.unwrap_or(false);
    let tags = p.tags()?;
    let mut rows: Vec<(u64, Value)> = ctx
        .state
        .assistant
        .invocations
        .values()
        .filter(|inv| asked_for(inv, p, &region))
        .filter(|inv| p.opt("CommandName").is_none_or(|n| n == inv.name))
        .filter(|inv| {
            p.opt("InstanceId")
                .is_none_or(|id| inv.targets.iter().any(|t| t.instance_id == id))
        })
        .filter(|inv| {
            p.opt("InvokeStatus")
                .is_none_or(|s| s == inv.invoke_status())
        })
        .filter(|inv| super::has_tags(&inv.tags, &tags))
        .map(|inv| (inv.created_ms, invocation_json(inv, plain, with_output)))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows = rows.into_iter().map(|(_, v)| v).collect();
    let (page, paging) = paginate(rows, p, &Paging::with_tokens(10, 50))?;
    Ok(list_body("Invocations", "Invocation", page, paging))
}

fn invocation_json(inv: &Invocation, plain: bool, with_output: bool) -> Value {
    let instances: Vec<Value> = inv
        .targets
        .iter()
        .map(|t| {
            let mut v = target_json(inv, t, plain);
            if !with_output {
                v["Output"] = json!("");
            }
            v
        })
        .collect();
    let content = if plain {
        String::from_utf8_lossy(&inv.content).into_owned()
    } else {
        b64(&inv.content)
    };
    json!({
        "InvokeId": inv.id, "CommandId": inv.command_id, "CommandName": inv.name,
        "CommandType": inv.command_type, "CommandContent": content, "Timeout": inv.timeout_s,
        "InvocationStatus": inv.overall_status(), "InvokeStatus": inv.invoke_status(),
        "CreationTime": iso_time(inv.created_ms), "RepeatMode": "Once", "Username": inv.username,
        "Tags": super::tags_json(&inv.tags),
        "InvokeInstances": { "InvokeInstance": instances },
    })
}

pub fn stop_invocation(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let id = ctx.params.req("InvokeId")?.to_string();
    let only = ctx.params.dot_list("InstanceId");
    let now = ctx.now;
    let inv = ctx
        .state
        .assistant
        .invocations
        .get_mut(&id)
        .filter(|inv| inv.region == region)
        .ok_or_else(|| SimError::not_found("InvalidInvokeId.NotFound", "invocation", &id))?;
    for t in inv
        .targets
        .iter_mut()
        .filter(|t| only.is_empty() || only.contains(&t.instance_id))
    {
        let ended = match t.status.as_str() {
            "Pending" => "Cancelled",
            "Running" => "Terminated",
            _ => continue,
        };
        t.end(ended, "", "", now);
        t.stop_ms = Some(now);
    }
    Ok(json!({}))
}
