//! Disks and snapshots: DescribeDisks, CreateSnapshot, DescribeSnapshots, DeleteSnapshot.

use serde_json::{json, Value};

use super::defaults;
use super::{
    csv, has_tags, list_body, mark_deleted, paginate_by_age, refuse_while_used, tags_json, Ctx,
    Order, Paging,
};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id, Disk, Snapshot};

/// Percent done of an operation running from `start` to `done` at `now`, as ECS prints it.
pub fn progress(start: u64, done: u64, now: u64, finished: bool) -> String {
    if finished {
        return "100%".into();
    }
    let span = done.saturating_sub(start).max(1);
    let pct = (now.saturating_sub(start) * 100 / span).min(99);
    format!("{pct}%")
}

/// Snapshots disk `disk_id` now (its filesystem is copied at this moment) and records the snapshot.
pub fn new_snapshot(
    ctx: &mut Ctx<'_>,
    disk_id: &str,
    name: &str,
    description: &str,
) -> Result<String, SimError> {
    let disk = ctx
        .state
        .disks
        .get(disk_id)
        .filter(|d| d.meta.live())
        .ok_or_else(|| SimError::not_found("InvalidDiskId.NotFound", "DiskId", disk_id))?
        .clone();
    if let Some(inst) = disk
        .instance_id
        .as_ref()
        .and_then(|i| ctx.state.instances.get(i))
    {
        if inst.status != "Running" && inst.status != "Stopped" {
            return Err(SimError::bad_request(
                "IncorrectInstanceStatus",
                format!(
                    "Instance {} is {}; snapshots need it Running or Stopped.",
                    inst.meta.id, inst.status
                ),
            ));
        }
    }
    if let Some(s) = ctx
        .state
        .snapshots
        .values()
        .find(|s| s.meta.live() && s.source_disk_id == disk_id && s.status == "progressing")
    {
        return Err(SimError::forbidden(
            "IncorrectDiskStatus.CreatingSnapshot",
            format!("Disk {disk_id} is already creating snapshot {}.", s.meta.id),
        ));
    }
    let id = new_id("s");
    ctx.machines.snapshot_disk(disk_id, &id)?;
    let will_fail = ctx.faults.snapshot_fails();
    let snapshot = Snapshot {
        meta: ctx.meta(id.clone(), &disk.meta.region)?,
        status: "progressing".into(),
        done_ms: ctx.now + ctx.latencies.snapshot_ms,
        will_fail,
        source_disk_id: disk_id.to_string(),
        source_disk_size: disk.size_gib,
        name: name.to_string(),
        description: description.to_string(),
    };
    ctx.state.snapshots.insert(id.clone(), snapshot);
    crate::sim::assistant::inherit_agent(ctx.state, disk_id, &id);
    Ok(id)
}

pub fn create_snapshot(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let disk_id = ctx.params.req("DiskId")?.to_string();
    let name = ctx.params.opt("SnapshotName").unwrap_or("").to_string();
    let description = ctx.params.opt("Description").unwrap_or("").to_string();
    let id = new_snapshot(ctx, &disk_id, &name, &description)?;
    Ok(json!({ "SnapshotId": id }))
}

/// `data` for a data disk (`DataDisk.N`), else `system`.
fn disk_type(ctx: &Ctx<'_>, disk_id: &str) -> &'static str {
    match ctx.state.disks.get(disk_id).and_then(|d| d.data.as_ref()) {
        Some(_) => "data",
        None => "system",
    }
}

fn snapshot_json(ctx: &Ctx<'_>, s: &Snapshot) -> Value {
    let finished = s.status != "progressing";
    let used_by_image = ctx
        .state
        .images
        .values()
        .any(|i| i.meta.live() && i.snapshot_id.as_deref() == Some(&s.meta.id));
    let mut snapshot = json!({
        "SnapshotId": s.meta.id, "SnapshotName": s.name, "Description": s.description, "Status": s.status,
        "Progress": if s.status == "failed" { progress(s.meta.created_ms, s.done_ms, ctx.now, false) } else { progress(s.meta.created_ms, s.done_ms, ctx.now, finished) },
        "RemainTime": if finished { 0 } else { s.done_ms.saturating_sub(ctx.now).div_ceil(1000) },
        "SourceDiskId": s.source_disk_id, "SourceDiskType": disk_type(ctx, &s.source_disk_id),
        "SourceDiskSize": s.source_disk_size.to_string(), "Usage": if used_by_image { "image" } else { "none" },
        "SnapshotType": "user", "Category": "standard", "Encrypted": false, "Available": s.status == "accomplished",
        "RetentionDays": 0, "CreationTime": iso_time(s.meta.created_ms), "LastModifiedTime": iso_time(s.done_ms.min(ctx.now)),
        "ProductCode": "", "RegionId": s.meta.region, "ResourceGroupId": "", "Tags": tags_json(&s.meta.tags),
    });
    defaults::merge(
        &mut snapshot,
        defaults::snapshot_extras(&s.meta.region, s.source_disk_size),
    );
    snapshot
}

pub fn describe_snapshots(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let ids = p.json_list("SnapshotIds")?;
    let tags = p.tags()?;
    let statuses = p
        .opt("Status")
        .map(csv)
        .filter(|s| !s.iter().any(|x| x == "all"));
    let instance_disks: Option<Vec<String>> = p.opt("InstanceId").map(|i| {
        ctx.state
            .disks
            .values()
            .filter(|d| d.instance_id.as_deref() == Some(i))
            .map(|d| d.meta.id.clone())
            .collect()
    });
    let items: Vec<(u64, Value)> = ctx
        .state
        .snapshots
        .values()
        .filter(|s| s.meta.live() && s.meta.region == region)
        .filter(|s| ids.as_ref().is_none_or(|l| l.contains(&s.meta.id)))
        .filter(|s| p.opt("DiskId").is_none_or(|d| d == s.source_disk_id))
        .filter(|s| {
            instance_disks
                .as_ref()
                .is_none_or(|l| l.contains(&s.source_disk_id))
        })
        .filter(|s| p.opt("SnapshotName").is_none_or(|n| n == s.name))
        .filter(|s| statuses.as_ref().is_none_or(|l| l.contains(&s.status)))
        .filter(|s| {
            p.opt("SourceDiskType")
                .is_none_or(|t| t.eq_ignore_ascii_case(disk_type(ctx, &s.source_disk_id)))
        })
        .filter(|s| has_tags(&s.meta.tags, &tags))
        .map(|s| (s.meta.created_ms, snapshot_json(ctx, s)))
        .collect();
    let paging = Paging::with_tokens(10, 100);
    let (page, fields) = paginate_by_age(items, Order::NewestFirst, p, &paging)?;
    Ok(list_body("Snapshots", "Snapshot", page, fields))
}

pub fn delete_snapshot(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let id = ctx.params.req("SnapshotId")?.to_string();
    ctx.params.bool("Force")?;
    let live = ctx.state.snapshots.get(&id).is_some_and(|s| s.meta.live());
    if !live {
        return Ok(json!({}));
    }
    refuse_while_used(
        &ctx.state.images,
        |i| {
            i.snapshot_id.as_deref() == Some(id.as_str())
                || i.data_disks.iter().any(|d| d.snapshot_id == id)
        },
        "SnapshotCreatedImage",
        |user| format!("Snapshot {id} was used to create image {user}; delete the image first."),
    )?;
    ctx.machines.delete_snapshot(&id)?;
    mark_deleted(&mut ctx.state.snapshots, &id, ctx.now);
    Ok(json!({}))
}

fn disk_json(d: &Disk) -> Value {
    let (kind, device, snapshot, with_instance) = match &d.data {
        Some(data) => (
            "data",
            data.device.as_str(),
            data.source_snapshot_id.as_str(),
            data.delete_with_instance,
        ),
        None => ("system", "/dev/xvda", "", true),
    };
    let attached: Vec<Value> = d.instance_id.iter().map(|i| json!({"InstanceId": i, "Device": device, "AttachedTime": iso_time(d.meta.created_ms)})).collect();
    let mut disk = json!({
        "DiskId": d.meta.id, "DiskName": d.name, "Description": "", "Type": kind, "Category": d.category,
        "Size": d.size_gib, "Status": d.status, "InstanceId": d.instance_id.clone().unwrap_or_default(),
        "Device": if d.instance_id.is_some() { device } else { "" }, "ZoneId": d.zone, "RegionId": d.meta.region,
        "ImageId": d.image_id, "SourceSnapshotId": snapshot, "DeleteWithInstance": with_instance, "DeleteAutoSnapshot": true,
        "Encrypted": false, "Portable": false, "CreationTime": iso_time(d.meta.created_ms),
        "AttachedTime": iso_time(d.meta.created_ms), "Attachments": {"Attachment": attached},
        "Tags": tags_json(&d.meta.tags), "ResourceGroupId": "",
        "EnableAutoSnapshot": false, "ExpiredTime": "2999-09-08T16:00Z",
    });
    defaults::merge(&mut disk, defaults::disk_extras(&d.zone));
    disk
}

pub fn describe_disks(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let ids = p.json_list("DiskIds")?;
    let tags = p.tags()?;
    let disk_type = p
        .one_of("DiskType", &["all", "system", "data"])?
        .unwrap_or("all");
    let status = p.opt("Status").filter(|s| !s.eq_ignore_ascii_case("All"));
    let items: Vec<(u64, Value)> = ctx
        .state
        .disks
        .values()
        .filter(|d| d.meta.live() && d.meta.region == region)
        .filter(|d| disk_type == "all" || (disk_type == "data") == d.data.is_some())
        .filter(|d| ids.as_ref().is_none_or(|l| l.contains(&d.meta.id)))
        .filter(|d| {
            p.opt("InstanceId")
                .is_none_or(|i| d.instance_id.as_deref() == Some(i))
        })
        .filter(|d| p.opt("ZoneId").is_none_or(|z| z == d.zone))
        .filter(|d| status.is_none_or(|s| s == d.status))
        .filter(|d| has_tags(&d.meta.tags, &tags))
        .map(|d| (d.meta.created_ms, disk_json(d)))
        .collect();
    let paging = Paging::with_tokens(10, 100);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, p, &paging)?;
    Ok(list_body("Disks", "Disk", page, fields))
}
