//! HashiCorp's `alicloud-ecs` builder mapped to a [`Draft`] (see docs/packer-alicloud.md §2).
//!
//! [`SUPPORTED`] options are mapped; [`WARN_ONLY`] options cannot change the image and only warn;
//! every other option is an error naming it. Env fallbacks as in Packer: `ALICLOUD_ACCESS_KEY`,
//! `ALICLOUD_SECRET_KEY`, `ALICLOUD_REGION`.

use super::convert::BuilderInput;
use super::draft::{Credentials, Draft, Image, Instance, SourceImage, Ssh, SshAddress, SystemDisk};
use super::error::PackerError;
use super::options::{check_keys, go_duration_secs, Reader, WarnOnly};
use std::path::Path;

pub const SUPPORTED: &[&str] = &[
    "name",
    "access_key",
    "secret_key",
    "region",
    "source_image",
    "image_family",
    "instance_type",
    "zone_id",
    "vpc_id",
    "vswitch_id",
    "security_group_id",
    "associate_public_ip_address",
    "ssh_private_ip",
    "internet_max_bandwidth_out",
    "internet_charge_type",
    "security_enhancement_strategy",
    "system_disk_mapping",
    "image_disk_mappings",
    "image_name",
    "image_description",
    "image_version",
    "target_image_family",
    "image_copy_regions",
    "image_share_account",
    "image_force_delete",
    "tags",
    "run_tags",
    "disable_stop_instance",
    "user_data",
    "user_data_file",
    "image_ignore_data_disks",
    "image_force_delete_snapshots",
    "custom_endpoint_ecs",
    "ssh_username",
    "ssh_port",
    "ssh_timeout",
    "communicator",
];

const fn warn(option: &'static str, why: &'static str) -> WarnOnly {
    WarnOnly { option, why }
}

/// Options that cannot change the resulting image: checks bakerd makes anyway, timing, and names or
/// keys of throwaway build resources.
pub const WARN_ONLY: &[WarnOnly] = &[
    warn(
        "skip_region_validation",
        "bakerd's API calls fail clearly on a bad region anyway",
    ),
    warn(
        "skip_image_validation",
        "bakerd looks the source image up itself",
    ),
    warn(
        "ssh_handshake_attempts",
        "bakerd retries SSH until ssh.timeout",
    ),
    warn(
        "pause_before_connecting",
        "a pause before SSH cannot change the image",
    ),
    warn(
        "ssh_keep_alive_interval",
        "SSH keep-alives cannot change the image",
    ),
    warn(
        "ssh_read_write_timeout",
        "bakerd uses its own SSH I/O timeouts",
    ),
    warn(
        "ssh_disable_agent_forwarding",
        "bakerd never forwards an SSH agent",
    ),
    warn(
        "ssh_file_transfer_method",
        "bakerd transfers files its own way; the files are the same",
    ),
    warn(
        "wait_snapshot_ready_timeout",
        "bakerd waits for snapshots and images with its own timeouts",
    ),
    warn(
        "wait_copying_image_ready_timeout",
        "bakerd waits for copies with its own timeouts",
    ),
    warn(
        "temporary_key_pair_name",
        "bakerd imports its own per-build key pair",
    ),
    warn(
        "temporary_key_pair_type",
        "bakerd imports its own per-build ed25519 key pair",
    ),
    warn(
        "temporary_key_pair_bits",
        "bakerd imports its own per-build ed25519 key pair",
    ),
    warn(
        "instance_name",
        "the build instance's name does not reach the image",
    ),
    warn("security_group_name", "names a throwaway security group"),
    warn("vpc_name", "names a throwaway VPC"),
    warn("vswitch_name", "names a throwaway vSwitch"),
    warn(
        "description",
        "the alicloud-ecs builder parses it but never uses it",
    ),
    warn(
        "image_force_delete_instances",
        "the alicloud-ecs builder parses it but never uses it",
    ),
    warn(
        "io_optimized",
        "every current instance type is I/O optimized",
    ),
    warn(
        "ssh_password",
        "bakerd logs in with its own per-build key pair and sets no login password on the build \
         instance; the image keeps the source image's password settings",
    ),
    warn(
        "image_copy_names",
        "bakerd's copies (`image_copy_regions`) take the image's own name",
    ),
    warn(
        "force_stop_instance",
        "bakerd stops the instance cleanly (a forced stop can only lose unflushed writes)",
    ),
];

pub fn convert(input: &BuilderInput<'_>, warnings: &mut Vec<String>) -> Result<Draft, PackerError> {
    check_keys(&input.owner, input.config, SUPPORTED, WARN_ONLY, warnings)?;
    let reader = input.reader();
    check_communicator(&reader, input.has_provisioners, warnings)?;
    let region = match reader.string("region")? {
        Some(region) => region,
        None => input.env_value("ALICLOUD_REGION").ok_or_else(|| {
            reader.missing("region", " (or environment variable ALICLOUD_REGION)")
        })?,
    };
    Ok(Draft {
        region,
        endpoint: reader.string("custom_endpoint_ecs")?,
        credentials: Credentials {
            access_key_id: input.required_credential("access_key", "ALICLOUD_ACCESS_KEY")?,
            access_key_secret: input.required_credential("secret_key", "ALICLOUD_SECRET_KEY")?,
        },
        source_image: source_image(&reader)?,
        instance: instance(&reader, input.base_dir, warnings)?,
        ssh: ssh(&reader)?,
        provisioners: Vec::new(),
        image: image(&reader)?,
        stop_before_snapshot: !reader.bool("disable_stop_instance")?.unwrap_or(false),
    })
}

fn check_communicator(
    reader: &Reader<'_>,
    has_provisioners: bool,
    warnings: &mut Vec<String>,
) -> Result<(), PackerError> {
    match reader.string("communicator")?.as_deref() {
        None | Some("ssh") => Ok(()),
        Some("none") if !has_provisioners => {
            warnings.push(format!(
                "option `communicator` `none` in {}: bakerd still waits for SSH before the snapshot",
                reader.owner
            ));
            Ok(())
        }
        Some("none") => Err(reader.invalid(
            "communicator",
            "`none` cannot run the template's provisioners",
        )),
        Some(other) => Err(reader.unsupported(
            "communicator",
            format!(" with value `{other}`: bakerd supports ssh only"),
        )),
    }
}

fn source_image(reader: &Reader<'_>) -> Result<SourceImage, PackerError> {
    match (
        reader.string("source_image")?,
        reader.string("image_family")?,
    ) {
        (Some(id), None) => Ok(SourceImage::Id(id)),
        (None, Some(family)) => Ok(SourceImage::Family(family)),
        (Some(_), Some(_)) => Err(reader.invalid(
            "source_image",
            "give `source_image` or `image_family`, not both",
        )),
        (None, None) => Err(reader.missing("source_image", " (or `image_family`)")),
    }
}

/// `user_data`, or the text of `user_data_file` (relative to the template's directory).
fn user_data(reader: &Reader<'_>, base_dir: &Path) -> Result<Option<String>, PackerError> {
    match (
        reader.string("user_data")?,
        reader.string("user_data_file")?,
    ) {
        (Some(_), Some(_)) => Err(reader.invalid(
            "user_data",
            "give `user_data` or `user_data_file`, not both",
        )),
        (Some(text), None) => Ok(Some(text)),
        (None, Some(file)) => {
            let path = base_dir.join(&file);
            std::fs::read_to_string(&path).map(Some).map_err(|e| {
                reader.invalid(
                    "user_data_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        }
        (None, None) => Ok(None),
    }
}

/// `image_ignore_data_disks` (image the system disk only) and `image_force_delete_snapshots` ask
/// for what bakerd does anyway; a `false` that bakerd cannot honour is said plainly.
fn image_disk_flags(reader: &Reader<'_>, warnings: &mut Vec<String>) -> Result<(), PackerError> {
    if reader.bool("image_force_delete_snapshots")? == Some(false)
        && reader.bool("image_force_delete")? == Some(true)
    {
        warnings.push(format!(
            "option `image_force_delete_snapshots` false in {}: when bakerd replaces an image \
             (`image_force_delete`) it deletes the old image's snapshots too, so none are left orphaned",
            reader.owner
        ));
    }
    Ok(())
}

fn instance(
    reader: &Reader<'_>,
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Instance, PackerError> {
    image_disk_flags(reader, warnings)?;
    let vswitch_id = reader.string("vswitch_id")?;
    if reader.string("vpc_id")?.is_some() && vswitch_id.is_none() {
        return Err(reader.unsupported(
            "vpc_id",
            " without `vswitch_id`: give the vSwitch to use (it determines the VPC)",
        ));
    }
    let data_disks = data_disks(reader, warnings)?;
    Ok(Instance {
        instance_type: reader.required_string("instance_type", " (e.g. ecs.g6.large)")?,
        zone: reader.string("zone_id")?,
        vswitch_id,
        security_group_id: reader.string("security_group_id")?,
        system_disk: system_disk(reader, warnings)?,
        internet_max_bandwidth_out: reader.number("internet_max_bandwidth_out")?,
        internet_charge_type: reader.string("internet_charge_type")?,
        security_enhancement_strategy: reader.string("security_enhancement_strategy")?,
        user_data: user_data(reader, base_dir)?,
        tags: reader.string_map("run_tags")?,
        data_disks,
    })
}

/// `image_disk_mappings` (HCL2: `image_disk_mapping` blocks) become data disks of the build
/// instance. Whether the image carries them is [`image_carries_data_disks`]'s decision.
fn data_disks(
    reader: &Reader<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<crate::spec::DataDisk>, PackerError> {
    const DISK_WARN_ONLY: &[WarnOnly] = &[
        warn(
            "disk_description",
            "describes a build disk, which is deleted with the build",
        ),
        warn(
            "disk_delete_with_instance",
            "bakerd always deletes the build instance's data disks with it",
        ),
    ];
    let mappings = reader.list("image_disk_mappings")?;
    if mappings.is_empty() {
        return Ok(Vec::new());
    }
    let owner = format!("{} (image_disk_mappings)", reader.owner);
    let mut out = Vec::new();
    for (i, mapping) in mappings.iter().enumerate() {
        let prefix = format!("image_disk_mappings[{i}].");
        let serde_json::Value::Object(mapping) = mapping else {
            return Err(reader.invalid(&prefix, "expected an object"));
        };
        const KEYS: &[&str] = &[
            "disk_name",
            "disk_category",
            "disk_size",
            "disk_snapshot_id",
            "disk_device",
        ];
        check_keys(&owner, mapping, KEYS, DISK_WARN_ONLY, warnings)?;
        let disk = Reader {
            owner: reader.owner,
            config: mapping,
            prefix: &prefix,
        };
        let size = disk.number("disk_size")?.filter(|size| *size > 0);
        out.push(crate::spec::DataDisk {
            size_gb: size
                .map(|size| u32::try_from(size).map_err(|_| disk.invalid("disk_size", "too large")))
                .transpose()?,
            category: disk.string("disk_category")?,
            snapshot_id: disk.string("disk_snapshot_id")?,
            device: disk.string("disk_device")?,
            name: disk.string("disk_name")?,
        });
    }
    Ok(out)
}

fn system_disk(
    reader: &Reader<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<SystemDisk>, PackerError> {
    const DISK_WARN_ONLY: &[WarnOnly] = &[
        warn(
            "disk_name",
            "names the build instance's disk, not the image",
        ),
        warn(
            "disk_description",
            "describes the build instance's disk, not the image",
        ),
    ];
    let Some(mapping) = reader.object("system_disk_mapping")? else {
        return Ok(None);
    };
    let owner = format!("{} (system_disk_mapping)", reader.owner);
    check_keys(
        &owner,
        mapping,
        &["disk_category", "disk_size"],
        DISK_WARN_ONLY,
        warnings,
    )?;
    let disk = Reader {
        owner: reader.owner,
        config: mapping,
        prefix: "system_disk_mapping.",
    };
    Ok(Some(SystemDisk {
        category: disk.string("disk_category")?,
        size_gb: disk.number("disk_size")?.filter(|size| *size > 0),
    }))
}

fn ssh(reader: &Reader<'_>) -> Result<Ssh, PackerError> {
    let address = if reader.bool("ssh_private_ip")?.unwrap_or(false) {
        Some(SshAddress::Private)
    } else if reader.bool("associate_public_ip_address")?.unwrap_or(false) {
        Some(SshAddress::Eip)
    } else {
        None
    };
    let port = reader
        .number("ssh_port")?
        .map(|port| {
            u16::try_from(port)
                .map_err(|_| reader.invalid("ssh_port", format!("{port} is not a TCP port")))
        })
        .transpose()?;
    let timeout_secs = reader
        .string("ssh_timeout")?
        .map(|text| {
            go_duration_secs(&text).ok_or_else(|| {
                reader.invalid(
                    "ssh_timeout",
                    format!("`{text}` is not a duration like 5m or 1h30m"),
                )
            })
        })
        .transpose()?;
    Ok(Ssh {
        username: reader.string("ssh_username")?,
        port,
        address,
        timeout_secs,
    })
}

fn image(reader: &Reader<'_>) -> Result<Image, PackerError> {
    Ok(Image {
        name: reader.required_string("image_name", " (the name of the image to build)")?,
        description: reader.string("image_description")?,
        family: reader.string("target_image_family")?,
        version: reader.string("image_version")?,
        tags: reader.string_map("tags")?,
        force: reader.bool("image_force_delete")?.unwrap_or(false),
        copy_regions: reader.string_list("image_copy_regions")?,
        share_accounts: reader.string_list("image_share_account")?,
        include_data_disks: image_carries_data_disks(reader)?,
    })
}

/// As in Packer, data disks of the build (`image_disk_mappings`) go into the image unless
/// `image_ignore_data_disks` is true.
fn image_carries_data_disks(reader: &Reader<'_>) -> Result<bool, PackerError> {
    Ok(!reader.list("image_disk_mappings")?.is_empty()
        && reader.bool("image_ignore_data_disks")? != Some(true))
}
