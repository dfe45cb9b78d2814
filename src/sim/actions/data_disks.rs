//! Data disks: `DataDisk.N.*` of RunInstances/CreateInstance, the data disks an image carries
//! (CreateImage `DiskDeviceMapping.N` of data snapshots), and what happens to them with the
//! instance.
//!
//! Each data disk is a directory tree like a system disk (`<data>/disks/<id>/rootfs`): empty when
//! new, a copy of the snapshot when made from one. Devices are named `/dev/vdb`, `/dev/vdc`, … in
//! order, as ECS names them for current instance types.

use super::Ctx;
use crate::sim::error::SimError;
use crate::sim::store::{new_id, DataDiskInfo, Disk, ImageDataDisk};

/// ECS allows at most 16 data disks at creation.
const MAX_DATA_DISKS: usize = 16;

/// One data disk to create.
#[derive(Debug, Clone)]
pub struct DataDiskRequest {
    pub size_gib: i64,
    pub category: String,
    pub snapshot_id: Option<String>,
    pub name: String,
    pub device: Option<String>,
    pub delete_with_instance: bool,
}

/// The request's `DataDisk.N` entries, then the image's data disks not already given for the same
/// device; sizes and snapshots checked as ECS does.
pub fn parse(
    ctx: &Ctx<'_>,
    region: &str,
    image_id: &str,
) -> Result<Vec<DataDiskRequest>, SimError> {
    let p = ctx.params;
    let mut out = Vec::new();
    for n in p.struct_indices("DataDisk") {
        let field = |f: &str| format!("DataDisk.{n}.{f}");
        let snapshot_id = p.opt(&field("SnapshotId")).map(str::to_string);
        let snapshot_size = match &snapshot_id {
            Some(id) => Some(snapshot_size(ctx, region, id)?),
            None => None,
        };
        let size = match (p.int(&field("Size"))?, snapshot_size) {
            (Some(size), _) => size,
            (None, Some(size)) => size,
            (None, None) => return Err(SimError::MissingParameter(field("Size"))),
        };
        if !(20..=32768).contains(&size) || snapshot_size.is_some_and(|s| size < s) {
            return Err(SimError::invalid(
                &field("Size"),
                format!("{size} GiB is outside 20-32768 or smaller than the snapshot"),
            ));
        }
        out.push(DataDiskRequest {
            size_gib: size,
            category: p
                .opt(&field("Category"))
                .unwrap_or("cloud_efficiency")
                .to_string(),
            snapshot_id,
            name: p.opt(&field("DiskName")).unwrap_or("").to_string(),
            device: p.opt(&field("Device")).map(str::to_string),
            delete_with_instance: p.bool(&field("DeleteWithInstance"))?.unwrap_or(true),
        });
    }
    let from_image: Vec<ImageDataDisk> = ctx
        .state
        .images
        .get(image_id)
        .map(|i| i.data_disks.clone())
        .unwrap_or_default();
    for disk in from_image {
        if out
            .iter()
            .any(|r| r.device.as_deref() == Some(disk.device.as_str()))
        {
            continue;
        }
        out.push(DataDiskRequest {
            size_gib: disk.size_gib,
            category: "cloud_efficiency".into(),
            snapshot_id: Some(disk.snapshot_id),
            name: String::new(),
            device: Some(disk.device),
            delete_with_instance: true,
        });
    }
    if out.len() > MAX_DATA_DISKS {
        return Err(SimError::invalid(
            "DataDisk",
            format!("{} data disks; at most {MAX_DATA_DISKS}", out.len()),
        ));
    }
    Ok(out)
}

/// The size of an accomplished snapshot in the region, or the error ECS gives.
fn snapshot_size(ctx: &Ctx<'_>, region: &str, id: &str) -> Result<i64, SimError> {
    let s = ctx
        .state
        .snapshots
        .get(id)
        .filter(|s| s.meta.live() && s.meta.region == region)
        .ok_or_else(|| SimError::not_found("InvalidSnapshotId.NotFound", "SnapshotId", id))?;
    if s.status != "accomplished" {
        return Err(SimError::forbidden(
            "InvalidSnapshotId.NotReady",
            format!("Snapshot {id} is {}, not accomplished.", s.status),
        ));
    }
    Ok(s.source_disk_size)
}

/// Creates the data disks of instance `instance_id`, attached as `/dev/vdb`, `/dev/vdc`, … (a
/// requested device is kept when free).
pub fn create(
    ctx: &mut Ctx<'_>,
    instance_id: &str,
    zone: &str,
    region: &str,
    requests: &[DataDiskRequest],
) -> Result<(), SimError> {
    let mut used: Vec<String> = requests.iter().filter_map(|r| r.device.clone()).collect();
    let mut letters = b'b'..=b'z';
    for request in requests {
        let device = match &request.device {
            Some(device) => device.clone(),
            None => {
                let next = letters
                    .by_ref()
                    .map(|c| format!("/dev/vd{}", c as char))
                    .find(|d| !used.contains(d))
                    .unwrap_or_else(|| "/dev/vdz".into());
                used.push(next.clone());
                next
            }
        };
        let id = new_id("d");
        match &request.snapshot_id {
            Some(snapshot) => ctx.machines.create_disk_from_snapshot(&id, snapshot)?,
            None => ctx.machines.create_empty_disk(&id)?,
        }
        let mut meta = ctx.meta(id.clone(), region)?;
        meta.client_token = None;
        meta.tags.clear();
        let disk = Disk {
            meta,
            zone: zone.to_string(),
            status: "In_use".into(),
            instance_id: Some(instance_id.to_string()),
            image_id: String::new(),
            size_gib: request.size_gib,
            category: request.category.clone(),
            name: request.name.clone(),
            data: Some(DataDiskInfo {
                device,
                delete_with_instance: request.delete_with_instance,
                source_snapshot_id: request.snapshot_id.clone().unwrap_or_default(),
            }),
        };
        ctx.state.disks.insert(id, disk);
    }
    Ok(())
}

/// With the instance deleted: its data disks are deleted (`DeleteWithInstance`, the default) or
/// detached and left `Available`.
pub fn release(ctx: &mut Ctx<'_>, instance_id: &str, now: u64) -> Result<(), SimError> {
    let attached: Vec<(String, bool)> = ctx
        .state
        .disks
        .values()
        .filter(|d| d.meta.live() && d.instance_id.as_deref() == Some(instance_id))
        .filter_map(|d| Some((d.meta.id.clone(), d.data.as_ref()?.delete_with_instance)))
        .collect();
    for (id, delete) in attached {
        if delete {
            ctx.machines.delete_disk(&id)?;
        }
        let disk = ctx.state.disks.get_mut(&id).expect("listed above");
        disk.instance_id = None;
        if delete {
            disk.meta.deleted_ms = Some(now);
        } else {
            disk.status = "Available".into();
        }
    }
    Ok(())
}
