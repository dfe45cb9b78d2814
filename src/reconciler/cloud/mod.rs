//! The reconciler's narrow view of ECS: exactly the operations a build needs, on the typed
//! client, bound to one region. Deletions treat "already gone" as success so that cleanup is
//! idempotent; creations carry the caller's ClientToken and bakerd's tags.

use crate::client::api::images::{
    CopyImage, CreateImage, DeleteImage, DescribeImages, Image, ImageDiskMapping,
    ModifyImageSharePermission, ALL_IMAGE_STATUSES,
};
use crate::client::api::instances::{
    AllocatePublicIpAddress, DeleteInstance, DescribeInstances, Instance, InstanceSpec,
    RunInstances, StartInstance, StopInstance,
};
use crate::client::api::keypairs::{DeleteKeyPairs, DescribeKeyPairs, ImportKeyPair};
use crate::client::api::network::{
    AuthorizeSecurityGroup, CreateSecurityGroup, CreateVSwitch, CreateVpc, DeleteSecurityGroup,
    DeleteVSwitch, DeleteVpc, DescribeSecurityGroups, DescribeVSwitches, Permission, VSwitch,
};
use crate::client::api::regions::{DescribeZones, Zone};
use crate::client::api::storage::{
    CreateSnapshot, DeleteSnapshot, DescribeDisks, DescribeSnapshots,
};
use crate::client::api::tags::{TagResources, TagType};
use crate::client::timings::Timings;
use crate::client::wait::{WaitConfig, WaitError};
use crate::client::{
    ClientConfig, ClientError, EcsClient, Env, ExplicitCredentials, InstanceStatus, SignatureStyle,
    Tag,
};
use crate::spec::{Credentials, SecretSource, SignatureVersion, Spec};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A failed cloud operation.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("{0}")]
    Unexpected(String),
}

type Result<T> = std::result::Result<T, CloudError>;

/// What a build needs to know about its instance.
#[derive(Debug, Clone)]
pub struct InstanceState {
    pub status: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

/// An image found by the up-to-date check.
#[derive(Debug, Clone)]
pub struct FoundImage {
    pub id: String,
    pub name: String,
    /// The source image it was built on (its `bakerd:source-image` tag; older images lack it).
    pub source_image: Option<String>,
    /// The spec it was built from (or last distributed for): its `bakerd:spec-hash` tag.
    pub spec_hash: Option<String>,
}

/// RunInstances inputs, from the spec and the build's prepared resources.
#[derive(Debug, Clone)]
pub struct InstanceParams {
    pub source_image_id: String,
    pub instance_type: String,
    pub zone: Option<String>,
    pub security_group: String,
    pub vswitch: String,
    pub key_pair: String,
    pub name: String,
    pub system_disk_category: Option<String>,
    pub system_disk_size_gb: Option<u32>,
    pub internet_max_bandwidth_out: u32,
    pub internet_charge_type: Option<String>,
    pub security_enhancement_strategy: Option<String>,
    pub user_data: Option<String>,
    /// Data disks of the build instance, deleted with it.
    pub data_disks: Vec<crate::spec::DataDisk>,
    pub tags: Vec<(String, String)>,
}

/// CreateImage inputs.
#[derive(Debug, Clone)]
pub struct ImageParams {
    /// The system disk's snapshot.
    pub snapshot: String,
    /// Data disks the image carries (empty: the image is the system disk only).
    pub data_disks: Vec<ImageDataDisk>,
    pub name: String,
    pub description: Option<String>,
    pub family: Option<String>,
    pub version: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A data disk of the build instance, as DescribeDisks lists it: what CreateSnapshot needs (the
/// id) and what the image's `DiskDeviceMapping` keeps (device and size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedDisk {
    pub id: String,
    pub device: String,
    pub size_gb: u64,
}

/// A data disk in an image: its snapshot, with the device and size it had on the build instance.
#[derive(Debug, Clone)]
pub struct ImageDataDisk {
    pub snapshot: String,
    pub device: String,
    pub size_gb: u64,
}

/// The ECS API bound to a region. Cheap to clone.
#[derive(Clone)]
pub struct Cloud {
    client: Arc<EcsClient>,
    region: String,
    /// Poll bounds; a local endpoint (the simulator) gets a short floor.
    waits: WaitConfig,
    /// Everything needed to build a client for another region (image copies).
    config: ClientConfig,
    /// Learned durations that time the waits' first polls (shared by clones).
    timings: Arc<Timings>,
    /// The region's zones, once asked (shared by clones; zones do not change during a build).
    zones: Arc<tokio::sync::OnceCell<Vec<Zone>>>,
}

fn tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(k, v)).collect()
}

/// Maps a spec's credentials onto the client's credential chain.
fn explicit_credentials(spec: &Spec, env: &Env) -> ExplicitCredentials {
    let mut explicit = ExplicitCredentials::default();
    match &spec.credentials {
        Credentials::Default => {}
        Credentials::Profile { name, config_file } => {
            explicit.profile = Some(name.clone());
            explicit.cli_config_path = config_file.clone();
        }
        Credentials::AccessKey {
            id,
            secret,
            security_token_env,
        } => {
            explicit.access_key_id = Some(id.clone());
            explicit.access_key_secret = match secret {
                SecretSource::Env(var) => {
                    explicit.access_key_secret_var = Some(var.clone());
                    env.get(var).map(crate::client::Secret::new)
                }
                SecretSource::Inline(s) => Some(s.clone()),
            };
            explicit.security_token = security_token_env
                .as_ref()
                .and_then(|var| env.get(var))
                .map(crate::client::Secret::new);
        }
    }
    explicit
}

impl Cloud {
    /// A client for the spec's region, endpoint, signature style and credentials.
    pub fn connect(spec: &Spec) -> Result<Cloud> {
        let mut config = ClientConfig::new(spec.region.clone());
        // The environment's endpoint is left to the client, so its errors name where it came from.
        config.endpoint = spec.endpoint.clone();
        config.vpc_endpoint = spec.vpc_endpoint.clone();
        config.credentials = explicit_credentials(spec, &config.env);
        if let Some(sig) = &spec.signature {
            config.signature_style = match sig {
                SignatureVersion::V1 => SignatureStyle::V1,
                SignatureVersion::V3 => SignatureStyle::V3,
            };
        }
        Self::from_config(config)
    }

    /// A client from an explicit configuration (gc, tests).
    pub fn from_config(config: ClientConfig) -> Result<Cloud> {
        let client = EcsClient::new(config.clone())?;
        let mut waits = WaitConfig::default();
        if is_local(client.base_url()) {
            waits.floor = Duration::from_millis(50);
            waits.cap = Duration::from_secs(2);
            waits.documented_durations = false;
        }
        Ok(Cloud {
            region: config.region.clone(),
            client: Arc::new(client),
            waits,
            config,
            timings: Arc::new(Timings::in_memory()),
            zones: Arc::default(),
        })
    }

    /// The same handle, learning transition durations into `timings` (the state directory's
    /// file, so that every build makes the next one's waits cheaper).
    pub fn with_timings(mut self, timings: Arc<Timings>) -> Cloud {
        self.timings = timings;
        self
    }

    /// The same account and endpoint, another region.
    pub fn in_region(&self, region: &str) -> Cloud {
        let mut config = self.config.clone();
        config.region = region.to_string();
        Cloud::from_config(config)
            .map(|c| c.with_timings(self.timings.clone()))
            .unwrap_or_else(|_| self.clone())
    }

    /// Which credentials this handle uses, for the build record (never the secret).
    pub fn credentials_used(&self) -> crate::reconciler::state::CredentialsUsed {
        let source = self.client.credential_source();
        crate::reconciler::state::CredentialsUsed {
            kind: source.kind().to_string(),
            source: source.to_string(),
            access_key_id: self.client.static_access_key_id().map(str::to_string),
        }
    }

    /// The region this handle talks to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// How often to poll something that has no waiter (Cloud Assistant results).
    pub fn poll_interval(&self) -> Duration {
        self.waits.floor.max(Duration::from_millis(200))
    }

    /// The underlying client (gc lists resources with it).
    pub fn client(&self) -> &EcsClient {
        &self.client
    }

    fn waiter(&self, deadline: Option<Duration>) -> crate::client::wait::Waiter<'_> {
        let mut cfg = self.waits.clone();
        if let Some(d) = deadline {
            cfg.deadline = d;
        }
        self.client
            .waiter()
            .with_config(cfg)
            .with_timings(self.timings.clone())
    }
}

/// True for loopback endpoints, where polling fast costs nothing.
fn is_local(base_url: &str) -> bool {
    let host = base_url.split("://").nth(1).unwrap_or(base_url);
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}

/// Repeats a call whose answer was lost (`OutcomeUnknown`). Only for calls where running twice
/// equals running once: deletions (a second delete finds nothing), AllocatePublicIpAddress (a
/// repeat returns the same address), share permissions (adding an account twice is a no-op).
async fn repeat_if_lost<T, F, Fut>(mut call: F) -> std::result::Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, ClientError>>,
{
    for _ in 0..4 {
        match call().await {
            Err(ClientError::OutcomeUnknown { action, .. }) => {
                tracing::debug!(%action, "answer lost; repeating an idempotent call");
            }
            other => return other,
        }
    }
    call().await
}

/// Treats a NotFound answer as success (the resource is already gone).
fn gone_ok(r: std::result::Result<impl Sized, ClientError>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub mod assistant;
mod eip;
mod images;

pub use images::Freshness;
mod instances;
mod network;
pub use eip::EipParams;
