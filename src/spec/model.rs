//! The spec's sections (everything except the top level, in `mod.rs`, and provisioners).
//! Every field's doc says why it exists; `docs/spec.md` is the user-facing version of the same.

use super::duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::secret::Secret;

/// Where the access key comes from. The spec names a source; it never has to hold the secret.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "RawCredentials", into = "RawCredentials")]
pub enum Credentials {
    /// No `credentials` section: the client's default chain (`ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`
    /// [+ `_SECURITY_TOKEN`], then `ALIYUN_ACCESS_KEY_ID`/`_SECRET`, then the aliyun CLI profile file).
    #[default]
    Default,
    /// A profile of the aliyun CLI's `~/.aliyun/config.json` (or `config_file`).
    Profile {
        name: String,
        config_file: Option<PathBuf>,
    },
    /// An access key id with its secret read from an environment variable (or, discouraged, inline).
    AccessKey {
        id: String,
        secret: SecretSource,
        /// Environment variable holding an STS security token, for temporary credentials.
        security_token_env: Option<String>,
    },
}

/// Where an access key secret is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable (the recommended way).
    Env(String),
    /// Written in the spec. Works, but the spec then is a secret: bakerd warns.
    Inline(Secret),
}

/// The YAML shape of `credentials`; converted to [`Credentials`] with its combination rules checked.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_token_env: Option<String>,
}

impl TryFrom<RawCredentials> for Credentials {
    type Error = String;
    fn try_from(raw: RawCredentials) -> Result<Self, String> {
        let key_fields = raw.access_key_id.is_some()
            || raw.access_key_secret_env.is_some()
            || raw.access_key_secret.is_some()
            || raw.security_token_env.is_some();
        if let Some(name) = raw.profile {
            if key_fields {
                return Err(
                    "`profile` cannot be combined with access key fields; choose one source".into(),
                );
            }
            return Ok(Credentials::Profile {
                name,
                config_file: raw.config_file,
            });
        }
        if raw.config_file.is_some() {
            return Err(
                "`config_file` needs `profile` (the profile to read from that file)".into(),
            );
        }
        let Some(id) = raw.access_key_id else {
            return Err("set `profile`, or `access_key_id` with `access_key_secret_env`".into());
        };
        let secret = match (raw.access_key_secret_env, raw.access_key_secret) {
            (Some(var), None) => SecretSource::Env(var),
            (None, Some(secret)) => SecretSource::Inline(secret),
            (Some(_), Some(_)) => {
                return Err("set `access_key_secret_env` or `access_key_secret`, not both".into())
            }
            (None, None) => {
                return Err(
                    "`access_key_id` needs `access_key_secret_env` (an environment variable name)"
                        .into(),
                )
            }
        };
        Ok(Credentials::AccessKey {
            id,
            secret,
            security_token_env: raw.security_token_env,
        })
    }
}

impl From<Credentials> for RawCredentials {
    fn from(credentials: Credentials) -> Self {
        match credentials {
            Credentials::Default => RawCredentials::default(),
            Credentials::Profile { name, config_file } => RawCredentials {
                profile: Some(name),
                config_file,
                ..Default::default()
            },
            Credentials::AccessKey {
                id,
                secret,
                security_token_env,
            } => {
                let (access_key_secret_env, access_key_secret) = match secret {
                    SecretSource::Env(var) => (Some(var), None),
                    SecretSource::Inline(secret) => (None, Some(secret)),
                };
                RawCredentials {
                    access_key_id: Some(id),
                    access_key_secret_env,
                    access_key_secret,
                    security_token_env,
                    ..Default::default()
                }
            }
        }
    }
}

/// ECS API signature version. Unset: the client's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// HMAC-SHA1 over the sorted query (`SignatureVersion=1.0`).
    V1,
    /// ACS3-HMAC-SHA256 (the newer header-based scheme).
    V3,
}

/// The image the build instance boots from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSourceImage", into = "RawSourceImage")]
pub enum SourceImage {
    /// An exact image id: reproducible, but goes stale as the vendor publishes updates.
    Id(String),
    /// An image family: the newest Available image in it at build time (RunInstances `ImageFamily`).
    Family(String),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSourceImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
}

impl TryFrom<RawSourceImage> for SourceImage {
    type Error = String;
    fn try_from(raw: RawSourceImage) -> Result<Self, String> {
        match (raw.id, raw.family) {
            (Some(id), None) if !id.trim().is_empty() => Ok(SourceImage::Id(id)),
            (None, Some(family)) if !family.trim().is_empty() => Ok(SourceImage::Family(family)),
            (Some(_), Some(_)) => Err("set `id` or `family`, not both".into()),
            (None, None) => Err("set `id` (an image id) or `family` (an image family)".into()),
            _ => Err("the image id or family is empty".into()),
        }
    }
}

impl From<SourceImage> for RawSourceImage {
    fn from(source: SourceImage) -> Self {
        match source {
            SourceImage::Id(id) => RawSourceImage {
                id: Some(id),
                family: None,
            },
            SourceImage::Family(family) => RawSourceImage {
                id: None,
                family: Some(family),
            },
        }
    }
}

/// Default CIDR of the temporary VPC bakerd creates when no `vswitch_id` is given.
pub const DEFAULT_VPC_CIDR: &str = "172.16.0.0/16";
/// Default CIDR of the temporary vSwitch (inside the temporary VPC).
pub const DEFAULT_VSWITCH_CIDR: &str = "172.16.0.0/24";
/// Outbound bandwidth (Mbit/s) used when a public IP is needed and none is given: a public IP needs > 0.
pub const DEFAULT_PUBLIC_BANDWIDTH_MBPS: u32 = 10;

/// The build instance: what it is and where it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// ECS instance type (`ecs.g7.large`). Required: there is no type that suits every image.
    #[serde(rename = "type")]
    pub instance_type: String,
    /// Zone. Unset: the vSwitch's zone when one is given, else a zone that offers the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// An existing vSwitch. Unset: bakerd creates a temporary VPC + vSwitch and deletes them afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vswitch_id: Option<String>,
    /// CIDR of the temporary VPC; only used without `vswitch_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_cidr: Option<String>,
    /// CIDR of the temporary vSwitch; only used without `vswitch_id`; must lie inside `vpc_cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vswitch_cidr: Option<String>,
    /// An existing security group. Unset: a temporary one that opens only tcp/22, deleted afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// The system disk, which becomes the image.
    #[serde(default, skip_serializing_if = "SystemDisk::is_default")]
    pub system_disk: SystemDisk,
    /// Outbound bandwidth in Mbit/s. Unset: 0, or [`DEFAULT_PUBLIC_BANDWIDTH_MBPS`] with `ssh.address: public`.
    /// With `ssh.address: eip` it is the EIP's bandwidth (the instance itself gets none: an
    /// instance with a public IP of its own cannot take an EIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<u32>,
    /// How the instance's public traffic is billed (RunInstances `InternetChargeType`):
    /// `PayByTraffic` or `PayByBandwidth`. Unset: ECS's default. Not in the spec hash: billing
    /// cannot change the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<String>,
    /// RunInstances `SecurityEnhancementStrategy`: `Active` installs Alibaba Cloud's security agent
    /// on the build instance (so it ends up in the image), `Deactive` does not. Unset: ECS's
    /// default. In the spec hash, since it changes the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_enhancement_strategy: Option<String>,
    /// cloud-init user data (plain text; the client base64-encodes it). Part of the spec hash: it can
    /// change what ends up on the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Tags on the build instance (and the resources bakerd creates for it), besides bakerd's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Data disks attached to the build instance (RunInstances `DataDisk.N`) and deleted with it:
    /// scratch space or inputs (from a snapshot) for the provisioners. The image is made of the
    /// system disk only (Packer's `image_ignore_data_disks: true`) unless `image.data_disks` is
    /// `include`: then each is snapshotted and carried by the image, and every instance launched
    /// from it gets the disk with what the provisioners wrote there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<DataDisk>,
}

/// A data disk of the build instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDisk {
    /// Size in GiB (20–32768). Unset: the snapshot's size (then `snapshot_id` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// Disk category (`cloud_essd`, …). Unset: ECS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Create the disk from this snapshot (its files are then on the disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Device name (`/dev/vdb`, …). Unset: ECS assigns the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Disk name (ECS `DiskName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl InstanceSpec {
    /// CIDR for the temporary VPC.
    pub fn vpc_cidr(&self) -> &str {
        self.vpc_cidr.as_deref().unwrap_or(DEFAULT_VPC_CIDR)
    }
    /// CIDR for the temporary vSwitch.
    pub fn vswitch_cidr(&self) -> &str {
        self.vswitch_cidr.as_deref().unwrap_or(DEFAULT_VSWITCH_CIDR)
    }
    /// CIDR of the temporary vSwitch a test instance in another zone (`verify.instance.zone`)
    /// gets: the block of the build vSwitch's size right after it, or else right before it,
    /// inside the VPC. `None` when neither fits (the vSwitch fills the VPC) or a CIDR is invalid.
    pub fn verify_vswitch_cidr(&self) -> Option<String> {
        let (vpc, vpc_prefix) = parse_cidr(self.vpc_cidr())?;
        let (vsw, prefix) = parse_cidr(self.vswitch_cidr())?;
        let size = 1u64 << (32 - prefix);
        let vpc_end = u64::from(vpc) + (1u64 << (32 - vpc_prefix));
        let after = u64::from(vsw) + size;
        let start = if after + size <= vpc_end {
            after
        } else if u64::from(vsw) >= u64::from(vpc) + size {
            u64::from(vsw) - size
        } else {
            return None;
        };
        let address = std::net::Ipv4Addr::from(u32::try_from(start).ok()?);
        Some(format!("{address}/{prefix}"))
    }
}

/// `a.b.c.d/n` as (address, prefix), or `None` (validation reports bad CIDRs by field).
fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = text.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
    Some((u32::from(address), prefix))
}

/// The system disk of the build instance.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemDisk {
    /// Disk category (`cloud_essd`, `cloud_efficiency`, `cloud_ssd`, `cloud_auto`, …). Unset: ECS's default
    /// for the instance type — the choice that works with every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Size in GiB (20–2048). Unset: the source image's size. The image inherits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
}

impl SystemDisk {
    fn is_default(&self) -> bool {
        self == &SystemDisk::default()
    }
}

/// How bakerd reaches the build instance over SSH.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// Login user; the temporary key pair is installed for it. Most public images: `root`.
    #[serde(default = "default_ssh_username")]
    pub username: String,
    /// sshd port on the instance.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Which address to connect to: `private` (bakerd runs inside the VPC), `public` (allocates
    /// one) or `eip` (allocates an elastic IP for the build and releases it in cleanup).
    #[serde(default)]
    pub address: SshAddress,
    /// How long to keep trying to connect (with backoff) before failing with the likely cause.
    #[serde(default = "default_ssh_timeout", with = "duration")]
    pub timeout: Duration,
}

impl Default for SshSpec {
    fn default() -> Self {
        SshSpec {
            username: default_ssh_username(),
            port: default_ssh_port(),
            address: SshAddress::default(),
            timeout: default_ssh_timeout(),
        }
    }
}

fn default_ssh_username() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_ssh_timeout() -> Duration {
    Duration::from_secs(300)
}

/// Which of the instance's addresses SSH uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshAddress {
    /// The VPC address: no public exposure, but bakerd must run where it can reach the VPC.
    #[default]
    Private,
    /// A public address, allocated for the build (`AllocatePublicIpAddress`) and gone with the instance.
    Public,
    /// An elastic IP allocated for the build, associated with the instance and released in
    /// cleanup: for accounts or networks where instances get no public IP of their own (what
    /// Packer's `associate_public_ip_address` does).
    Eip,
}

/// The image to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image name; may contain `{{timestamp}}` (Unix seconds at build time). 2–128 characters after
    /// rendering, starting with a letter, not with `http://`/`https://`.
    pub name: String,
    /// Image description (may contain `{{timestamp}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Image family, so users can launch "the newest image of family X".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Image version label (CreateImage `ImageVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Tags on the image and its snapshot, besides bakerd's own (which carry the spec hash).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Replace an existing image of the same name (deleted only after the new one is Available).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Regions to copy the finished image to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_regions: Vec<String>,
    /// Alibaba Cloud account ids to share the image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share_accounts: Vec<String>,
    /// Whether the image carries the build instance's data disks (`instance.data_disks`).
    #[serde(default, skip_serializing_if = "ImageDataDisks::is_ignore")]
    pub data_disks: ImageDataDisks,
}

/// What the image makes of the build instance's data disks.
///
/// Why a choice: a data disk is either scratch space for the build (left out, the default, as
/// Packer's `image_ignore_data_disks`) or content every instance of the image needs (a data
/// volume with an application's files), which Packer puts in the image when the template has
/// `image_disk_mappings` without `image_ignore_data_disks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDataDisks {
    /// The image holds the system disk only; the data disks go with the build instance.
    #[default]
    Ignore,
    /// Each data disk is snapshotted with the system disk; the image maps them
    /// (CreateImage `DiskDeviceMapping.N`), so instances launched from it get them.
    Include,
}

impl ImageDataDisks {
    fn is_ignore(&self) -> bool {
        *self == ImageDataDisks::Ignore
    }
}

/// What happens to the build's resources when a build fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Delete what the build created (instance, key pair, temporary network): nothing keeps costing money.
    #[default]
    Cleanup,
    /// Keep the instance running for debugging; `bakerd cancel <id>` cleans up later.
    Keep,
}

/// How long bakerd waits for the cloud's slow operations before failing the step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Instance reaching Running / Stopped.
    #[serde(default = "default_instance_timeout", with = "duration")]
    pub instance: Duration,
    /// Snapshot reaching `accomplished` (Status and Progress).
    #[serde(default = "default_long_timeout", with = "duration")]
    pub snapshot: Duration,
    /// Image reaching `Available`.
    #[serde(default = "default_long_timeout", with = "duration")]
    pub image: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            instance: default_instance_timeout(),
            snapshot: default_long_timeout(),
            image: default_long_timeout(),
        }
    }
}

fn default_instance_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_long_timeout() -> Duration {
    Duration::from_secs(3600)
}
