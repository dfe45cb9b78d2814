//! Cloud Assistant file delivery: SendFile and DescribeSendFileResults (limits and error codes in
//! `docs/cloud-assistant.md`). The runner (`sim::assistant`) writes the file inside the instance.

use base64::Engine;
use serde_json::{json, Value};

use super::assistant::target_instances;
use super::{list_body, paginate, Ctx, Paging};
use crate::sim::assistant::{FileSpec, Invocation, Target};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id};

/// `Content` limit, measured after base64.
const CONTENT_LIMIT: usize = 32 * 1024;
const DEFAULT_TIMEOUT_S: i64 = 60;
const MIN_TIMEOUT_S: i64 = 10;
const MAX_NAME: usize = 255;

fn content(ctx: &Ctx<'_>) -> Result<(Vec<u8>, &'static str), SimError> {
    let raw = ctx.params.req("Content")?;
    let kind = ctx
        .params
        .one_of("ContentType", &["PlainText", "Base64"])?
        .unwrap_or("PlainText");
    let bytes = if kind == "Base64" {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| SimError::invalid("Content", "is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(&bytes)
        .len();
    if encoded > CONTENT_LIMIT {
        return Err(SimError::invalid(
            "Content",
            format!("is {encoded} bytes after base64, more than the limit of {CONTENT_LIMIT}"),
        ));
    }
    Ok((bytes, kind))
}

fn file_spec(ctx: &Ctx<'_>, content_type: &str) -> Result<FileSpec, SimError> {
    let p = ctx.params;
    let target_dir = p.req("TargetDir")?.to_string();
    if !target_dir.starts_with('/') {
        return Err(SimError::invalid("TargetDir", "must be an absolute path"));
    }
    let file_mode = p.opt("FileMode").unwrap_or("0644").to_string();
    let octal =
        (3..=4).contains(&file_mode.len()) && file_mode.chars().all(|c| ('0'..='7').contains(&c));
    if !octal {
        return Err(SimError::invalid(
            "FileMode",
            format!("{file_mode:?} is not an octal mode like 0644"),
        ));
    }
    Ok(FileSpec {
        target_dir,
        file_mode,
        owner: p.opt("FileOwner").unwrap_or("root").to_string(),
        group: p.opt("FileGroup").unwrap_or("root").to_string(),
        overwrite: p.bool("Overwrite")?.unwrap_or(false),
        content_type: content_type.to_string(),
    })
}

pub fn send_file(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let name = ctx.params.req("Name")?.to_string();
    if name.len() > MAX_NAME || name.contains('/') || name == "." || name == ".." {
        return Err(SimError::invalid(
            "Name",
            "must be a file name (no '/'), at most 255 bytes",
        ));
    }
    let (bytes, kind) = content(ctx)?;
    let file = file_spec(ctx, kind)?;
    let timeout_s = ctx
        .params
        .int_in("Timeout", DEFAULT_TIMEOUT_S, MIN_TIMEOUT_S, 86_400)? as u64;
    let instances = target_instances(ctx, &region)?;
    ctx.dry_run()?;
    let id = new_id("f");
    let meta = ctx.meta(id.clone(), &region)?;
    let invocation = Invocation {
        id: id.clone(),
        region,
        command_id: String::new(),
        name,
        description: ctx.params.opt("Description").unwrap_or("").to_string(),
        command_type: String::new(),
        content: bytes,
        working_dir: String::new(),
        timeout_s,
        username: file.owner.clone(),
        created_ms: ctx.now,
        tags: meta.tags,
        client_token: meta.client_token,
        file: Some(file),
        targets: Target::pending_on(&instances, ctx.now),
    };
    ctx.state
        .assistant
        .file_sends
        .insert(id.clone(), invocation);
    Ok(json!({ "InvokeId": id }))
}

pub fn describe_send_file_results(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let tags = p.tags()?;
    let mut rows: Vec<(u64, Value)> = ctx
        .state
        .assistant
        .file_sends
        .values()
        .filter(|inv| inv.region == region)
        .filter(|inv| p.opt("InvokeId").is_none_or(|id| id == inv.id))
        .filter(|inv| p.opt("Name").is_none_or(|n| n == inv.name))
        .filter(|inv| {
            p.opt("InstanceId")
                .is_none_or(|id| inv.targets.iter().any(|t| t.instance_id == id))
        })
        .filter(|inv| super::has_tags(&inv.tags, &tags))
        .map(|inv| (inv.created_ms, send_json(inv)))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows = rows.into_iter().map(|(_, v)| v).collect();
    let (page, paging) = paginate(rows, p, &Paging::with_tokens(10, 50))?;
    Ok(list_body("Invocations", "Invocation", page, paging))
}

fn send_json(inv: &Invocation) -> Value {
    let file = inv.file.clone().unwrap_or_else(|| FileSpec {
        target_dir: String::new(),
        file_mode: String::new(),
        owner: String::new(),
        group: String::new(),
        overwrite: false,
        content_type: String::new(),
    });
    let time = |ms: Option<u64>| ms.map(iso_time).unwrap_or_default();
    let instances: Vec<Value> = inv
        .targets
        .iter()
        .map(|t| {
            json!({
                "InstanceId": t.instance_id, "InvocationStatus": t.status,
                "ErrorCode": t.error_code, "ErrorInfo": t.error_info,
                "CreationTime": iso_time(t.created_ms), "StartTime": time(t.start_ms),
                "FinishTime": time(t.finish_ms), "UpdateTime": time(t.finish_ms.or(t.start_ms)),
            })
        })
        .collect();
    json!({
        "InvokeId": inv.id, "Name": inv.name, "Description": inv.description,
        "ContentType": file.content_type, "TargetDir": file.target_dir,
        "FileMode": file.file_mode, "FileOwner": file.owner, "FileGroup": file.group,
        "Overwrite": file.overwrite, "CreationTime": iso_time(inv.created_ms),
        "InvocationStatus": inv.overall_status(), "VmCount": inv.targets.len(),
        "Tags": super::tags_json(&inv.tags),
        "InvokeInstances": { "InvokeInstance": instances },
    })
}
