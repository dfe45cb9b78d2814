//! Images: DescribeImages, CreateImage, DeleteImage, CopyImage, Modify/DescribeImageSharePermission.

use serde_json::{json, Value};

use super::defaults;
use super::snapshots::{new_snapshot, progress};
use super::{
    csv, has_tags, known_region, list_body, mark_deleted, paginate_by_age, refuse_while_used,
    tags_json, Ctx, Order, Paging,
};
use crate::sim::catalog::{self, SYSTEM_IMAGES};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id, Image, ImageDataDisk, Snapshot, State};

/// What launching needs to know about an image, built-in or custom.
pub struct ImageInfo {
    pub status: String,
    pub size_gib: i64,
    pub os_name: String,
}

/// The image `id` as seen from `region`: built-ins exist everywhere, custom images in their region.
pub fn image_info(state: &State, region: &str, id: &str) -> Option<ImageInfo> {
    if let Some(s) = catalog::system_image(id) {
        return Some(ImageInfo {
            status: "Available".into(),
            size_gib: s.size_gib,
            os_name: s.os_name.into(),
        });
    }
    let i = state
        .images
        .get(id)
        .filter(|i| i.meta.live() && i.meta.region == region)?;
    Some(ImageInfo {
        status: i.status.clone(),
        size_gib: i.size_gib,
        os_name: i.os_name.clone(),
    })
}

/// The newest Available image of `family` in `region`.
pub fn latest_in_family(state: &State, region: &str, family: &str) -> Option<String> {
    let custom = state
        .images
        .values()
        .filter(|i| {
            i.meta.live()
                && i.meta.region == region
                && i.family == family
                && i.status == "Available"
        })
        .max_by_key(|i| i.meta.created_ms)
        .map(|i| i.meta.id.clone());
    custom.or_else(|| {
        SYSTEM_IMAGES
            .iter()
            .rev()
            .find(|s| s.family == family)
            .map(|s| s.id.to_string())
    })
}

fn system_json(s: &catalog::SystemImage, region: &str) -> (String, Value) {
    (
        s.creation_time.to_string(),
        json!({
            "ImageId": s.id, "ImageName": s.id, "ImageFamily": s.family, "ImageVersion": "", "Description": s.os_name,
            "Status": "Available", "Progress": "100%", "Size": s.size_gib, "OSType": "linux", "OSName": s.os_name,
            "OSNameEn": s.os_name, "Platform": "Ubuntu", "Architecture": "x86_64", "ImageOwnerAlias": "system",
            "ImageOwnerId": 0, "IsPublic": true, "IsCopied": false, "IsSelfShared": "", "IsSupportCloudinit": true,
            "IsSupportIoOptimized": true, "Usage": "instance", "CreationTime": s.creation_time, "BootMode": "BIOS",
            "ProductCode": "", "ResourceGroupId": "", "RegionId": region,
            "DetectionOptions": defaults::image_detection(), "Features": defaults::image_features(), "SecureBootOptions": {"SecureBootSupport": "unsupported"},
            "IsSubscribed": false, "LicenseType": "Auto", "LoginAsNonRootSupported": false, "SupplierName": "", "Usable": true,
            "DiskDeviceMappings": {"DiskDeviceMapping": []}, "Tags": {"Tag": []},
        }),
    )
}

fn custom_json(state: &State, i: &Image, now: u64) -> (String, Value) {
    let finished = i.status != "Creating";
    let used = state
        .instances
        .values()
        .any(|x| x.meta.live() && x.image_id == i.meta.id);
    let system = i
        .snapshot_id
        .iter()
        .map(|s| (s.as_str(), i.size_gib, "/dev/xvda", "system"));
    let data = i.data_disks.iter().map(|d| {
        (
            d.snapshot_id.as_str(),
            d.size_gib,
            d.device.as_str(),
            "data",
        )
    });
    let mappings: Vec<Value> = system.chain(data).map(|(s, size, device, kind)| json!({
        "SnapshotId": s, "Size": size.to_string(), "Device": device, "Type": kind,
        "Format": "", "Progress": progress(i.meta.created_ms, i.done_ms, now, finished), "RemainTime": 0,
        "Encrypted": false, "ImportOSSBucket": "", "ImportOSSObject": "",
    })).collect();
    let created = iso_time(i.meta.created_ms);
    (
        created.clone(),
        json!({
            "ImageId": i.meta.id, "ImageName": i.name, "ImageFamily": i.family, "ImageVersion": i.version,
            "Description": i.description, "Status": i.status, "Progress": progress(i.meta.created_ms, i.done_ms, now, i.status == "Available"),
            "Size": i.size_gib, "OSType": "linux", "OSName": i.os_name, "OSNameEn": i.os_name, "Platform": "Ubuntu",
            "Architecture": "x86_64", "ImageOwnerAlias": "self", "ImageOwnerId": 1, "IsPublic": i.is_public,
            "IsCopied": i.copied_from.is_some(), "IsSelfShared": if i.shared_with.is_empty() { "" } else { "true" },
            "IsSupportCloudinit": true, "IsSupportIoOptimized": true, "Usage": if used { "instance" } else { "none" },
            "CreationTime": created, "BootMode": "BIOS", "ProductCode": "", "ResourceGroupId": "", "RegionId": i.meta.region,
            "DetectionOptions": defaults::image_detection(), "Features": defaults::image_features(), "SecureBootOptions": {"SecureBootSupport": "unsupported"},
            "IsSubscribed": false, "LicenseType": "Auto", "LoginAsNonRootSupported": false, "SupplierName": "", "Usable": true,
            "DiskDeviceMappings": {"DiskDeviceMapping": mappings}, "Tags": tags_json(&i.meta.tags),
        }),
    )
}

pub fn describe_images(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let statuses = p
        .opt("Status")
        .map(csv)
        .unwrap_or_else(|| vec!["Available".into()]);
    let ids = p.opt("ImageId").map(csv);
    let owner = p.one_of(
        "ImageOwnerAlias",
        &["system", "self", "others", "marketplace"],
    )?;
    let tags = p.tags()?;
    let mut items: Vec<(String, Value)> = Vec::new();
    if owner.is_none_or(|o| o == "system") && tags.is_empty() {
        items.extend(SYSTEM_IMAGES.iter().map(|s| system_json(s, &region)));
    }
    if owner.is_none_or(|o| o == "self") {
        for i in
            ctx.state.images.values().filter(|i| {
                i.meta.live() && i.meta.region == region && has_tags(&i.meta.tags, &tags)
            })
        {
            if p.opt("SnapshotId")
                .is_none_or(|s| i.snapshot_id.as_deref() == Some(s))
            {
                items.push(custom_json(ctx.state, i, ctx.now));
            }
        }
    }
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    items.retain(|(_, v)| {
        statuses.contains(&field(v, "Status"))
            && ids
                .as_ref()
                .is_none_or(|l| l.contains(&field(v, "ImageId")))
            && p.opt("ImageName")
                .is_none_or(|n| super::name_matches(n, &field(v, "ImageName")))
            && p.opt("ImageFamily")
                .is_none_or(|f| f == field(v, "ImageFamily"))
            && p.opt("OSType")
                .is_none_or(|o| o.eq_ignore_ascii_case("linux"))
            && (p.opt("SnapshotId").is_none() || field(v, "ImageOwnerAlias") == "self")
    });
    let paging = Paging::numbered(10, 100);
    let (page, mut fields) = paginate_by_age(items, Order::NewestFirst, p, &paging)?;
    fields.insert("RegionId".into(), json!(region));
    Ok(list_body("Images", "Image", page, fields))
}

fn check_image_name(state: &State, region: &str, name: &str, param: &str) -> Result<(), SimError> {
    let starts_ok = name.chars().next().is_some_and(|c| c.is_alphabetic());
    if name.chars().count() < 2
        || name.chars().count() > 128
        || !starts_ok
        || name.starts_with("http://")
        || name.starts_with("https://")
    {
        return Err(SimError::invalid(
            param,
            "2 to 128 characters, starting with a letter",
        ));
    }
    if state
        .images
        .values()
        .any(|i| i.meta.live() && i.meta.region == region && i.name == name)
    {
        return Err(SimError::bad_request(
            "InvalidImageName.Duplicated",
            format!("The image name {name} is already used in {region}."),
        ));
    }
    Ok(())
}

/// The snapshot an image is made from: taken now from an instance's system disk, or an existing one.
fn source_snapshot(ctx: &mut Ctx<'_>, region: &str, image_id: &str) -> Result<String, SimError> {
    let p = ctx.params;
    if let Some(instance_id) = p.opt("InstanceId") {
        let inst = ctx
            .state
            .instances
            .get(instance_id)
            .filter(|i| i.meta.live() && i.meta.region == region)
            .ok_or_else(|| {
                SimError::not_found("InvalidInstanceId.NotFound", "InstanceId", instance_id)
            })?;
        if inst.status != "Running" && inst.status != "Stopped" {
            return Err(SimError::bad_request(
                "IncorrectInstanceStatus",
                format!(
                    "Instance {instance_id} is {}; CreateImage needs it Running or Stopped.",
                    inst.status
                ),
            ));
        }
        let disk = inst.system_disk_id.clone();
        return new_snapshot(ctx, &disk, &format!("CreatedByImage_{image_id}"), "");
    }
    let mapped =
        system_mapping(p).and_then(|n| p.opt(&format!("DiskDeviceMapping.{n}.SnapshotId")));
    let snapshot_id = mapped
        .or(p.opt("SnapshotId"))
        .ok_or_else(|| SimError::MissingParameter("SnapshotId".into()))?;
    let s = ctx
        .state
        .snapshots
        .get(snapshot_id)
        .filter(|s| s.meta.live() && s.meta.region == region)
        .ok_or_else(|| {
            SimError::not_found("InvalidSnapshotId.NotFound", "SnapshotId", snapshot_id)
        })?;
    if s.status != "accomplished" {
        return Err(SimError::forbidden(
            "InvalidSnapshotId.NotReady",
            format!("Snapshot {snapshot_id} is {}, not accomplished.", s.status),
        ));
    }
    Ok(snapshot_id.to_string())
}

/// Which `DiskDeviceMapping.N` is the system disk: `DiskType=system` or device `/dev/xvda`/`/dev/vda`,
/// else the first.
fn system_mapping(p: &crate::sim::params::Params) -> Option<u32> {
    let indices = p.struct_indices("DiskDeviceMapping");
    let is_system = |n: &u32| {
        let field = |f: &str| p.opt(&format!("DiskDeviceMapping.{n}.{f}"));
        field("DiskType") == Some("system")
            || matches!(field("Device"), Some("/dev/xvda" | "/dev/vda"))
    };
    indices
        .iter()
        .copied()
        .find(is_system)
        .or(indices.first().copied())
}

/// The data disks of a CreateImage: every `DiskDeviceMapping.N` but the system one, each an
/// accomplished snapshot; devices default to `/dev/vdb`, `/dev/vdc`, … in order.
fn data_mappings(ctx: &Ctx<'_>, region: &str) -> Result<Vec<ImageDataDisk>, SimError> {
    let p = ctx.params;
    let system = system_mapping(p);
    let mut out = Vec::new();
    for n in p.struct_indices("DiskDeviceMapping") {
        if Some(n) == system {
            continue;
        }
        let field = |f: &str| format!("DiskDeviceMapping.{n}.{f}");
        let snapshot_id = p.req(&field("SnapshotId"))?.to_string();
        let snapshot = ctx
            .state
            .snapshots
            .get(&snapshot_id)
            .filter(|s| s.meta.live() && s.meta.region == region && s.status == "accomplished")
            .ok_or_else(|| {
                SimError::not_found("InvalidSnapshotId.NotFound", "SnapshotId", &snapshot_id)
            })?;
        let device = match p.opt(&field("Device")) {
            Some(device) => device.to_string(),
            None => format!("/dev/vd{}", (b'b' + out.len() as u8) as char),
        };
        out.push(ImageDataDisk {
            size_gib: p.int(&field("Size"))?.unwrap_or(snapshot.source_disk_size),
            snapshot_id,
            device,
        });
    }
    Ok(out)
}

pub fn create_image(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let name = p.opt("ImageName").map(str::to_string);
    if let Some(n) = &name {
        check_image_name(ctx.state, &region, n, "ImageName")?;
    }
    let family = p.opt("ImageFamily").unwrap_or("").to_string();
    if family.starts_with("aliyun") || family.starts_with("acs:") {
        return Err(SimError::invalid(
            "ImageFamily",
            "must not start with aliyun or acs:",
        ));
    }
    let id = new_id("m");
    let data_disks = data_mappings(ctx, &region)?;
    let snapshot_id = source_snapshot(ctx, &region, &id)?;
    let snap = ctx
        .state
        .snapshots
        .get(&snapshot_id)
        .expect("source exists")
        .clone();
    let os_name = ctx
        .state
        .disks
        .get(&snap.source_disk_id)
        .and_then(|d| image_info(ctx.state, &region, &d.image_id))
        .map(|i| i.os_name)
        .unwrap_or_default();
    ctx.machines.image_from_snapshot(&snapshot_id, &id)?;
    let will_fail = ctx.faults.image_fails() || snap.will_fail;
    let image = Image {
        meta: ctx.meta(id.clone(), &region)?,
        status: "Creating".into(),
        done_ms: snap.done_ms.max(ctx.now) + ctx.latencies.image_ms,
        will_fail,
        name: name.unwrap_or_else(|| id.clone()),
        description: p.opt("Description").unwrap_or("").to_string(),
        family,
        version: p.opt("ImageVersion").unwrap_or("").to_string(),
        owner_alias: "self".into(),
        os_name,
        size_gib: snap.source_disk_size,
        snapshot_id: Some(snapshot_id),
        data_disks,
        copied_from: None,
        shared_with: Vec::new(),
        is_public: false,
    };
    let from = image.snapshot_id.clone().unwrap_or_default();
    ctx.state.images.insert(id.clone(), image);
    crate::sim::assistant::inherit_agent(ctx.state, &from, &id);
    Ok(json!({ "ImageId": id }))
}

/// The live custom image `ImageId` in the request's region.
fn custom_image<'s>(ctx: &'s mut Ctx<'_>, region: &str) -> Result<Option<&'s mut Image>, SimError> {
    let id = ctx.params.req("ImageId")?;
    Ok(ctx
        .state
        .images
        .get_mut(id)
        .filter(|i| i.meta.live() && i.meta.region == region))
}

pub fn delete_image(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let force = ctx.params.bool("Force")?.unwrap_or(false);
    let id = ctx.params.req("ImageId")?.to_string();
    if catalog::system_image(&id).is_some() {
        return Err(SimError::forbidden(
            "InvalidImageId.NotSupported",
            format!("Image {id} is a system image and cannot be deleted."),
        ));
    }
    let Some(image) = ctx
        .state
        .images
        .get(&id)
        .filter(|i| i.meta.live() && i.meta.region == region)
    else {
        return Ok(json!({}));
    };
    if image.copied_from.is_some() && image.status == "Creating"
        || ctx.state.images.values().any(|c| {
            c.meta.live() && c.copied_from.as_deref() == Some(id.as_str()) && c.status == "Creating"
        })
    {
        return Err(SimError::forbidden(
            "OperationDenied.ImageCopying",
            format!("Image {id} is being copied; wait or cancel the copy."),
        ));
    }
    if !image.shared_with.is_empty() {
        return Err(SimError::forbidden(
            "ImageUseShared",
            format!("Image {id} is shared with other accounts; unshare it first."),
        ));
    }
    if !force {
        refuse_while_used(
            &ctx.state.instances,
            |i| i.image_id == id,
            "ImageUsingByInstance",
            |user| format!("Image {id} is used by instance {user}; delete it or pass Force=true."),
        )?;
    }
    ctx.dry_run()?;
    ctx.machines.delete_image(&id)?;
    mark_deleted(&mut ctx.state.images, &id, ctx.now);
    Ok(json!({}))
}

pub fn copy_image(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let dest = known_region(ctx.params.opt("DestinationRegionId").unwrap_or(&region))?;
    let source = custom_image(ctx, &region)?
        .map(|i| i.clone())
        .ok_or_else(|| {
            SimError::not_found(
                "InvalidImageId.NotFound",
                "ImageId",
                ctx.params.opt("ImageId").unwrap_or(""),
            )
        })?;
    if source.status != "Available" {
        return Err(SimError::bad_request(
            "IncorrectImageStatus",
            format!(
                "Image {} is {}, only Available images can be copied.",
                source.meta.id, source.status
            ),
        ));
    }
    let name = ctx
        .params
        .opt("DestinationImageName")
        .map(str::to_string)
        .unwrap_or_else(|| source.name.clone());
    check_image_name(ctx.state, &dest, &name, "DestinationImageName")?;
    ctx.dry_run()?;
    let id = new_id("m");
    ctx.machines.copy_image(&source.meta.id, &id)?;
    let done_ms = ctx.now + ctx.latencies.copy_image_ms;
    let snapshot_id = new_id("s");
    let mut snap_meta = ctx.meta(snapshot_id.clone(), &dest)?;
    snap_meta.client_token = None;
    ctx.state.snapshots.insert(
        snapshot_id.clone(),
        Snapshot {
            meta: snap_meta,
            status: "progressing".into(),
            done_ms,
            will_fail: false,
            source_disk_id: String::new(),
            source_disk_size: source.size_gib,
            name: format!("CreatedByCopyImage_{id}"),
            description: String::new(),
        },
    );
    let image = Image {
        meta: ctx.meta(id.clone(), &dest)?,
        status: "Creating".into(),
        done_ms,
        will_fail: false,
        name,
        description: ctx
            .params
            .opt("DestinationDescription")
            .unwrap_or(&source.description)
            .to_string(),
        family: source.family.clone(),
        version: source.version.clone(),
        owner_alias: "self".into(),
        os_name: source.os_name.clone(),
        size_gib: source.size_gib,
        snapshot_id: Some(snapshot_id),
        // Copies carry the system disk only: data snapshots stay in the source region.
        data_disks: Vec::new(),
        copied_from: Some(source.meta.id.clone()),
        shared_with: Vec::new(),
        is_public: false,
    };
    ctx.state.images.insert(id.clone(), image);
    crate::sim::assistant::inherit_agent(ctx.state, &source.meta.id, &id);
    Ok(json!({ "ImageId": id }))
}

pub fn modify_image_share_permission(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let add = ctx.params.dot_list("AddAccount");
    let remove = ctx.params.dot_list("RemoveAccount");
    let public = ctx.params.bool("IsPublic")?;
    let id = ctx.params.req("ImageId")?.to_string();
    let image = custom_image(ctx, &region)?
        .ok_or_else(|| SimError::not_found("InvalidImageId.NotFound", "ImageId", &id))?;
    for a in add.into_iter().take(10) {
        if !image.shared_with.contains(&a) {
            image.shared_with.push(a);
        }
    }
    image.shared_with.retain(|a| !remove.contains(a));
    if let Some(p) = public {
        image.is_public = p;
    }
    Ok(json!({}))
}

pub fn describe_image_share_permission(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let id = ctx.params.req("ImageId")?.to_string();
    let image = custom_image(ctx, &region)?
        .ok_or_else(|| SimError::not_found("InvalidImageId.NotFound", "ImageId", &id))?;
    let accounts: Vec<Value> = image
        .shared_with
        .iter()
        .map(|a| json!({"AliyunId": a, "SharedTime": iso_time(image.meta.created_ms)}))
        .collect();
    let groups: Vec<Value> = if image.is_public {
        vec![json!({"Group": "all"})]
    } else {
        vec![]
    };
    let total = accounts.len();
    Ok(json!({
        "ImageId": id, "RegionId": region, "Accounts": {"Account": accounts}, "ShareGroups": {"ShareGroup": groups},
        "TotalCount": total, "PageNumber": 1, "PageSize": 100,
    }))
}
