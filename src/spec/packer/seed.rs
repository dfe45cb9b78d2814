//! The seed's `aliyun` builder (archcentric/packer-builder-aliyun) mapped to a [`Draft`].
//!
//! Options (README "模板配置参考"): `access_key_id`, `access_key_secret`, `security_group_id`,
//! `region_id`, `base_image_id`, `instance_type` (required; the first three fall back to
//! `ALIYUN_ACCESS_KEY_ID`, `ALIYUN_ACCESS_KEY_SECRET`, `ALIYUN_SECURITY_GROUP_ID`), `image_name`
//! (default `packer-{{timestamp}}`), `image_description` (default `Created by Packer for Aliyun`).
//! Every other option is an error: the seed builder knew no others.
//! The seed connects over the instance's private IP as `root` (README TODO), so the draft does too.

use super::convert::BuilderInput;
use super::draft::{Credentials, Draft, Image, Instance, SourceImage, Ssh, SshAddress};
use super::error::PackerError;
use super::funcs;
use super::options::check_keys;

const SUPPORTED: &[&str] = &[
    "name",
    "access_key_id",
    "access_key_secret",
    "security_group_id",
    "region_id",
    "base_image_id",
    "instance_type",
    "image_name",
    "image_description",
];

const DEFAULT_IMAGE_NAME: &str = "packer-{{timestamp}}";
const DEFAULT_IMAGE_DESCRIPTION: &str = "Created by Packer for Aliyun";

pub fn convert(input: &BuilderInput<'_>, warnings: &mut Vec<String>) -> Result<Draft, PackerError> {
    check_keys(&input.owner, input.config, SUPPORTED, &[], warnings)?;
    let reader = input.reader();
    let credentials = Credentials {
        access_key_id: input.required_credential("access_key_id", "ALIYUN_ACCESS_KEY_ID")?,
        access_key_secret: input
            .required_credential("access_key_secret", "ALIYUN_ACCESS_KEY_SECRET")?,
    };
    let security_group_id = match reader.string("security_group_id")? {
        Some(id) => id,
        None => input
            .env_value("ALIYUN_SECURITY_GROUP_ID")
            .ok_or_else(|| reader.missing("security_group_id", " (or environment variable ALIYUN_SECURITY_GROUP_ID): the seed builder needs an existing security group"))?,
    };
    Ok(Draft {
        region: reader.required_string("region_id", " (e.g. cn-shanghai)")?,
        endpoint: None,
        credentials,
        source_image: SourceImage::Id(
            reader.required_string("base_image_id", " (the image to start from)")?,
        ),
        instance: Instance {
            instance_type: reader.required_string("instance_type", " (e.g. ecs.s2.large)")?,
            zone: None,
            vswitch_id: None,
            security_group_id: Some(security_group_id),
            system_disk: None,
            internet_max_bandwidth_out: None,
            data_disks: Vec::new(),
            internet_charge_type: None,
            security_enhancement_strategy: None,
            user_data: None,
            tags: Default::default(),
        },
        ssh: Ssh {
            username: Some("root".to_string()),
            port: None,
            address: Some(SshAddress::Private),
            timeout_secs: None,
        },
        provisioners: Vec::new(),
        image: image(input)?,
        stop_before_snapshot: true,
    })
}

/// `image_name` and `image_description` with the seed's defaults.
fn image(input: &BuilderInput<'_>) -> Result<Image, PackerError> {
    let reader = input.reader();
    let name = match reader.string("image_name")? {
        Some(name) => name,
        None => funcs::render(DEFAULT_IMAGE_NAME, &input.ctx).map_err(|source| {
            PackerError::Function {
                location: "builders[0].image_name (default)".to_string(),
                source,
            }
        })?,
    };
    let description = reader
        .string("image_description")?
        .unwrap_or_else(|| DEFAULT_IMAGE_DESCRIPTION.to_string());
    Ok(Image {
        name,
        description: Some(description),
        ..Image::default()
    })
}
