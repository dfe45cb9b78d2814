//! What a Packer template means, in bakerd terms, before it becomes a [`crate::spec`] value.
//!
//! Why a separate layer: builder and provisioner mapping (the Packer knowledge) stays independent of
//! the spec's exact field types, and the step to the spec is one small function.

use std::collections::BTreeMap;
use std::fmt;

/// A credential value and the environment variable it came from, if any.
///
/// Guarantees: `Debug` never shows the value (it may be an AccessKey secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub value: String,
    /// Set when the value is exactly an env var (through a `variables` default or a builder
    /// fallback such as `ALIYUN_ACCESS_KEY_SECRET`); written specs reference this name instead.
    pub env: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("value", &"** redacted **")
            .field("env", &self.env)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: Credential,
    pub access_key_secret: Credential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceImage {
    Id(String),
    Family(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshAddress {
    Private,
    /// Packer's `associate_public_ip_address: true`: Packer allocates an EIP for the build.
    Eip,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemDisk {
    pub category: Option<String>,
    pub size_gb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_type: String,
    pub zone: Option<String>,
    pub vswitch_id: Option<String>,
    pub security_group_id: Option<String>,
    pub system_disk: Option<SystemDisk>,
    pub internet_max_bandwidth_out: Option<u64>,
    pub internet_charge_type: Option<String>,
    pub security_enhancement_strategy: Option<String>,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub data_disks: Vec<crate::spec::DataDisk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ssh {
    pub username: Option<String>,
    pub port: Option<u16>,
    pub address: Option<SshAddress>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellSource {
    Inline(Vec<String>),
    Script(String),
    Scripts(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioner {
    Shell {
        source: ShellSource,
        environment: BTreeMap<String, String>,
        expect_disconnect: bool,
        /// Packer's form with `{{.Vars}}` and `{{.Path}}` normalised to exactly those spellings.
        execute_command: Option<String>,
    },
    File {
        source: String,
        destination: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub name: String,
    pub description: Option<String>,
    pub family: Option<String>,
    pub version: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub force: bool,
    pub copy_regions: Vec<String>,
    pub share_accounts: Vec<String>,
    /// The image carries the build instance's data disks (`image.data_disks: include`).
    pub include_data_disks: bool,
}

/// The whole build a template describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials: Credentials,
    pub source_image: SourceImage,
    pub instance: Instance,
    pub ssh: Ssh,
    pub provisioners: Vec<Provisioner>,
    pub image: Image,
    pub stop_before_snapshot: bool,
}

/// Environment variable a written spec names for a secret that did not come from the environment.
pub const DEFAULT_SECRET_ENV: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
