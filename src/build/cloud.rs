//! The reconciler's narrow view of ECS: exactly the operations a build needs, on the typed
//! client, bound to one region. Deletions treat "already gone" as success so that cleanup is
//! idempotent; creations carry the caller's ClientToken and bakerd's tags.

use crate::client::api::images::{
    CopyImage, CreateImage, DeleteImage, DescribeImages, Image, ModifyImageSharePermission,
    ALL_IMAGE_STATUSES,
};
use crate::client::api::instances::{
    AllocatePublicIpAddress, DeleteInstance, DescribeInstances, InstanceSpec, RunInstances,
    StartInstance, StopInstance,
};
use crate::client::api::keypairs::{DeleteKeyPairs, DescribeKeyPairs, ImportKeyPair};
use crate::client::api::network::{
    AuthorizeSecurityGroup, CreateSecurityGroup, CreateVSwitch, CreateVpc, DeleteSecurityGroup,
    DeleteVSwitch, DeleteVpc, DescribeSecurityGroups, DescribeVSwitches, Permission,
};
use crate::client::api::regions::DescribeZones;
use crate::client::api::storage::{
    CreateSnapshot, DeleteSnapshot, DescribeDisks, DescribeSnapshots,
};
use crate::client::wait::{WaitConfig, WaitError};
use crate::client::{
    ClientConfig, ClientError, EcsClient, Env, ExplicitCredentials, InstanceStatus, SignatureStyle,
    Tag,
};
use crate::spec::{Credentials, SecretSource, SignatureVersion, Spec};
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
    pub user_data: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// CreateImage inputs.
#[derive(Debug, Clone)]
pub struct ImageParams {
    pub snapshot: String,
    pub name: String,
    pub description: Option<String>,
    pub family: Option<String>,
    pub version: Option<String>,
    pub tags: Vec<(String, String)>,
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
                SecretSource::Env(var) => env.get(var).map(crate::client::Secret::new),
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
        config.endpoint = spec.effective_endpoint(config.env.get(crate::client::ENDPOINT_ENV));
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
            waits.floor = Duration::from_millis(100);
            waits.cap = Duration::from_secs(2);
        }
        Ok(Cloud {
            region: config.region.clone(),
            client: Arc::new(client),
            waits,
            config,
        })
    }

    /// The same account and endpoint, another region.
    pub fn in_region(&self, region: &str) -> Cloud {
        let mut config = self.config.clone();
        config.region = region.to_string();
        Cloud::from_config(config).unwrap_or_else(|_| self.clone())
    }

    /// The region this handle talks to.
    pub fn region(&self) -> &str {
        &self.region
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
        self.client.waiter().with_config(cfg)
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

impl Cloud {
    /// The newest Available image carrying `bakerd:spec-hash=<hash>`, if any.
    pub async fn image_for_spec_hash(&self, hash: &str) -> Result<Option<FoundImage>> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_owner_alias: Some("self".into()),
            tags: vec![Tag::new("bakerd:spec-hash", hash)],
            ..Default::default()
        };
        let mut images: Vec<Image> = self.client.list_all(request).await?;
        images.sort_by(|a, b| b.creation_time.cmp(&a.creation_time));
        Ok(images.into_iter().next().map(|i| FoundImage {
            id: i.image_id,
            name: i.image_name,
        }))
    }

    /// Resolves a source image family to its newest Available image id.
    pub async fn image_from_family(&self, family: &str) -> Result<String> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_family: Some(family.to_string()),
            ..Default::default()
        };
        let mut images: Vec<Image> = self.client.list_all(request).await?;
        images.sort_by(|a, b| b.creation_time.cmp(&a.creation_time));
        images
            .into_iter()
            .next()
            .map(|i| i.image_id)
            .ok_or_else(|| {
                CloudError::Unexpected(format!(
                    "no Available image in family {family:?} in {}",
                    self.region
                ))
            })
    }

    /// Imports the build's public key; an existing key pair of that name counts as done (a
    /// resume after the call went through).
    pub async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        t: &[(String, String)],
    ) -> Result<()> {
        let request = ImportKeyPair {
            region_id: self.region.clone(),
            key_pair_name: name.to_string(),
            public_key_body: public_key.to_string(),
            tags: tags(t),
        };
        for _ in 0..4 {
            if self.key_pair_exists(name).await? {
                return Ok(());
            }
            match self.client.call(&request).await {
                Ok(_) => return Ok(()),
                // Sent but unanswered: look it up by name before sending again.
                Err(ClientError::OutcomeUnknown { .. }) => continue,
                // A retried import whose first try went through finds its own key pair.
                Err(e)
                    if e.code()
                        .is_some_and(|c| c.contains("AlreadyExist") || c.contains("Duplicate")) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CloudError::Unexpected(format!(
            "ImportKeyPair {name}: no answer after 4 attempts and the key pair does not exist"
        )))
    }

    async fn key_pair_exists(&self, name: &str) -> Result<bool> {
        let existing = DescribeKeyPairs {
            region_id: self.region.clone(),
            key_pair_name: Some(name.to_string()),
            ..Default::default()
        };
        let found = self.client.list_all(existing).await?;
        Ok(found.iter().any(|k| k.key_pair_name == name))
    }

    /// Deletes a key pair (gone is fine).
    pub async fn delete_key_pair(&self, name: &str) -> Result<()> {
        let request = DeleteKeyPairs {
            region_id: self.region.clone(),
            key_pair_names: vec![name.to_string()],
        };
        gone_ok(repeat_if_lost(|| self.client.call(&request)).await)
    }

    /// The VPC of a security group (to place a temporary vSwitch next to a given group).
    pub async fn security_group_vpc(&self, sg: &str) -> Result<Option<String>> {
        let request = DescribeSecurityGroups {
            region_id: self.region.clone(),
            security_group_ids: vec![sg.to_string()],
            ..Default::default()
        };
        let groups = self.client.list_all(request).await?;
        let group = groups
            .into_iter()
            .find(|g| g.security_group_id == sg)
            .ok_or_else(|| {
                CloudError::Unexpected(format!(
                    "security group {sg} does not exist in {}: check `instance.security_group_id`",
                    self.region
                ))
            })?;
        Ok(Some(group.vpc_id).filter(|v| !v.is_empty()))
    }

    /// The VPC of a vSwitch.
    pub async fn vswitch_vpc(&self, vswitch: &str) -> Result<Option<String>> {
        let request = DescribeVSwitches {
            region_id: self.region.clone(),
            vswitch_id: Some(vswitch.to_string()),
            ..Default::default()
        };
        let found = self.client.list_all(request).await?;
        Ok(found
            .into_iter()
            .find(|v| v.vswitch_id == vswitch)
            .map(|v| v.vpc_id))
    }

    /// A zone of the region that offers `instance_type` (first one when none says).
    pub async fn pick_zone(&self, instance_type: &str) -> Result<String> {
        let request = DescribeZones {
            region_id: self.region.clone(),
            verbose: None,
        };
        let zones = self.client.call(&request).await?.zones;
        let offering = zones.iter().find(|z| {
            z.available_instance_types
                .iter()
                .any(|t| t == instance_type)
        });
        offering
            .or(zones.first())
            .map(|z| z.zone_id.clone())
            .ok_or_else(|| CloudError::Unexpected(format!("region {} lists no zones", self.region)))
    }

    pub async fn create_vpc(
        &self,
        token: &str,
        cidr: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CreateVpc {
            region_id: self.region.clone(),
            cidr_block: Some(cidr.to_string()),
            vpc_name: Some(name.to_string()),
            description: Some("temporary VPC of a bakerd build".into()),
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.vpc_id)
    }

    pub async fn wait_vpc_available(&self, vpc: &str) -> Result<()> {
        self.waiter(None).vpc(&self.region, vpc).await?;
        Ok(())
    }

    pub async fn create_vswitch(
        &self,
        token: &str,
        vpc: &str,
        zone: &str,
        cidr: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CreateVSwitch {
            region_id: self.region.clone(),
            vpc_id: vpc.to_string(),
            zone_id: zone.to_string(),
            cidr_block: cidr.to_string(),
            vswitch_name: Some(name.to_string()),
            description: Some("temporary vSwitch of a bakerd build".into()),
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.vswitch_id)
    }

    pub async fn wait_vswitch_available(&self, vswitch: &str) -> Result<()> {
        self.waiter(None).vswitch(&self.region, vswitch).await?;
        Ok(())
    }

    pub async fn create_security_group(
        &self,
        token: &str,
        vpc: Option<&str>,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CreateSecurityGroup {
            region_id: self.region.clone(),
            vpc_id: vpc.map(str::to_string),
            security_group_name: Some(name.to_string()),
            description: Some("temporary SSH-only group of a bakerd build".into()),
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.security_group_id)
    }

    /// Opens tcp/`port` from anywhere (the only rule of a temporary group).
    pub async fn authorize_tcp_ingress(&self, token: &str, sg: &str, port: u16) -> Result<()> {
        let request = AuthorizeSecurityGroup {
            region_id: self.region.clone(),
            security_group_id: sg.to_string(),
            permissions: vec![Permission {
                ip_protocol: "TCP".into(),
                port_range: format!("{port}/{port}"),
                source_cidr_ip: "0.0.0.0/0".into(),
                policy: Some("accept".into()),
                priority: Some(1),
                description: Some("SSH for bakerd provisioning".into()),
            }],
            client_token: Some(token.to_string()),
        };
        self.client.call(&request).await?;
        Ok(())
    }
}

impl Cloud {
    /// One RunInstances; returns the instance id.
    pub async fn run_instance(&self, token: &str, p: &InstanceParams) -> Result<String> {
        let spec = InstanceSpec {
            region_id: self.region.clone(),
            image_id: p.source_image_id.clone(),
            instance_type: p.instance_type.clone(),
            security_group_id: Some(p.security_group.clone()),
            vswitch_id: Some(p.vswitch.clone()),
            zone_id: p.zone.clone(),
            instance_name: Some(p.name.clone()),
            description: Some("bakerd build instance".into()),
            key_pair_name: Some(p.key_pair.clone()),
            internet_max_bandwidth_out: Some(p.internet_max_bandwidth_out).filter(|b| *b > 0),
            system_disk_category: p.system_disk_category.clone(),
            system_disk_size: p.system_disk_size_gb,
            user_data: p.user_data.clone(),
            tags: tags(&p.tags),
            client_token: Some(token.to_string()),
            ..Default::default()
        };
        let ids = self
            .client
            .call(&RunInstances {
                spec,
                amount: Some(1),
            })
            .await?
            .instance_id_sets;
        ids.into_iter()
            .next()
            .ok_or_else(|| CloudError::Unexpected("RunInstances returned no instance id".into()))
    }

    /// The instance's status and addresses; `None` once it is deleted.
    pub async fn describe_instance(&self, id: &str) -> Result<Option<InstanceState>> {
        let mut request = DescribeInstances::in_region(&self.region);
        request.instance_ids = vec![id.to_string()];
        let found = self.client.call(&request).await?.instances;
        Ok(found.into_iter().find(|i| i.instance_id == id).map(|i| {
            let private_ip = i
                .vpc_attributes
                .as_ref()
                .and_then(|v| v.private_ip_address.first().cloned())
                .or_else(|| i.inner_ip_address.first().cloned());
            InstanceState {
                status: i.status.as_str().to_string(),
                private_ip,
                public_ip: i.public_ip_address.first().cloned(),
            }
        }))
    }

    pub async fn start_instance(&self, id: &str) -> Result<()> {
        let request = StartInstance {
            instance_id: id.to_string(),
        };
        self.change_state(id, &["Starting", "Running"], || self.client.call(&request))
            .await
    }

    pub async fn stop_instance(&self, id: &str) -> Result<()> {
        let request = StopInstance {
            instance_id: id.to_string(),
            ..Default::default()
        };
        self.change_state(id, &["Stopping", "Stopped"], || self.client.call(&request))
            .await
    }

    /// Sends a Start/Stop call. Start and Stop have no ClientToken, so when the answer is lost
    /// (or the call is refused because of the instance's state) the instance is looked at: if
    /// it is already on its way to the wanted state the call counts as done.
    async fn change_state<T, F, Fut>(&self, id: &str, heading: &[&str], mut call: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ClientError>>,
    {
        for _ in 0..4 {
            let err = match call().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let lost = matches!(err, ClientError::OutcomeUnknown { .. });
            if !lost
                && !err
                    .code()
                    .is_some_and(|c| c.starts_with("IncorrectInstanceStatus"))
            {
                return Err(err.into());
            }
            let status = self.describe_instance(id).await?.map(|s| s.status);
            if status.as_deref().is_some_and(|s| heading.contains(&s)) {
                return Ok(());
            }
            if !lost {
                return Err(err.into());
            }
        }
        Err(CloudError::Unexpected(format!(
            "instance {id}: no answer to 4 attempts to move it to {}",
            heading.last().unwrap_or(&"?")
        )))
    }

    /// Waits for `Running` or `Stopped` (the instance timeout of the spec applies).
    pub async fn wait_instance_status(
        &self,
        id: &str,
        wanted: &str,
        deadline: Duration,
    ) -> Result<InstanceState> {
        let status = match wanted {
            "Stopped" => InstanceStatus::Stopped,
            _ => InstanceStatus::Running,
        };
        self.waiter(Some(deadline))
            .instance_status(&self.region, id, status)
            .await?;
        self.describe_instance(id).await?.ok_or_else(|| {
            CloudError::Unexpected(format!(
                "instance {id} vanished right after becoming {wanted}"
            ))
        })
    }

    /// Allocates (or returns the already allocated) public IP.
    pub async fn allocate_public_ip(&self, id: &str) -> Result<String> {
        let request = AllocatePublicIpAddress {
            instance_id: id.to_string(),
        };
        Ok(repeat_if_lost(|| self.client.call(&request))
            .await?
            .ip_address)
    }

    /// Deletes the instance (forced: it may be running) and waits until it is gone.
    pub async fn delete_instance_and_wait(&self, id: &str) -> Result<()> {
        let request = DeleteInstance {
            instance_id: id.to_string(),
            force: Some(true),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&request)).await)?;
        self.waiter(None).instance_deleted(&self.region, id).await?;
        Ok(())
    }

    /// The instance's system disk.
    pub async fn system_disk(&self, instance: &str) -> Result<String> {
        let request = DescribeDisks {
            region_id: self.region.clone(),
            instance_id: Some(instance.to_string()),
            disk_type: Some("system".into()),
            ..Default::default()
        };
        let disks = self.client.list_all(request).await?;
        disks.into_iter().next().map(|d| d.disk_id).ok_or_else(|| {
            CloudError::Unexpected(format!("instance {instance} has no system disk"))
        })
    }
}

impl Cloud {
    pub async fn create_snapshot(
        &self,
        token: &str,
        disk: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CreateSnapshot {
            disk_id: disk.to_string(),
            snapshot_name: Some(name.to_string()),
            description: Some("system disk of a bakerd build".into()),
            tags: tags(t),
            client_token: Some(token.to_string()),
            ..Default::default()
        };
        Ok(self.client.call(&request).await?.snapshot_id)
    }

    /// Waits for `accomplished` (a `failed` snapshot ends the wait at once), reporting percent.
    pub async fn wait_snapshot(
        &self,
        id: &str,
        deadline: Duration,
        progress: impl Fn(u32) + Send + Sync,
    ) -> Result<()> {
        self.waiter(Some(deadline))
            .on_progress(move |p| progress(p.percent.unwrap_or(0) as u32))
            .snapshot(&self.region, id)
            .await?;
        Ok(())
    }

    /// Deletes a snapshot (gone is fine).
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let request = DeleteSnapshot {
            snapshot_id: id.to_string(),
            force: Some(true),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&request)).await)
    }

    /// Snapshots tagged as belonging to `build` (found by tag, for cleanup after a crash).
    pub async fn snapshots_of_build(&self, build: &str) -> Result<Vec<String>> {
        let request = DescribeSnapshots {
            region_id: self.region.clone(),
            tags: vec![Tag::new("bakerd:build-id", build)],
            ..Default::default()
        };
        Ok(self
            .client
            .list_all(request)
            .await?
            .into_iter()
            .map(|s| s.snapshot_id)
            .collect())
    }

    pub async fn create_image(&self, token: &str, p: &ImageParams) -> Result<String> {
        let request = CreateImage {
            region_id: self.region.clone(),
            snapshot_id: Some(p.snapshot.clone()),
            image_name: Some(p.name.clone()),
            image_family: p.family.clone(),
            image_version: p.version.clone(),
            description: p.description.clone(),
            tags: tags(&p.tags),
            client_token: Some(token.to_string()),
            ..Default::default()
        };
        Ok(self.client.call(&request).await?.image_id)
    }

    /// Waits for `Available` (`CreateFailed` ends the wait at once), reporting percent.
    pub async fn wait_image(
        &self,
        id: &str,
        deadline: Duration,
        progress: impl Fn(u32) + Send + Sync,
    ) -> Result<()> {
        self.waiter(Some(deadline))
            .on_progress(move |p| progress(p.percent.unwrap_or(0) as u32))
            .image(&self.region, id)
            .await?;
        Ok(())
    }

    /// Ids of own images named `name`, in any status.
    pub async fn images_named(&self, name: &str) -> Result<Vec<String>> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_name: Some(name.to_string()),
            image_owner_alias: Some("self".into()),
            status: Some(ALL_IMAGE_STATUSES.into()),
            ..Default::default()
        };
        let images = self.client.list_all(request).await?;
        Ok(images
            .into_iter()
            .filter(|i| i.image_name == name)
            .map(|i| i.image_id)
            .collect())
    }

    /// Deletes an image, then the snapshots behind it (gone is fine).
    pub async fn delete_image_and_snapshots(&self, id: &str) -> Result<()> {
        let request = DescribeImages {
            region_id: self.region.clone(),
            image_id: Some(id.to_string()),
            status: Some(ALL_IMAGE_STATUSES.into()),
            ..Default::default()
        };
        let snapshots: Vec<String> = self
            .client
            .list_all(request)
            .await?
            .into_iter()
            .flat_map(|i| i.disk_device_mappings)
            .map(|m| m.snapshot_id)
            .filter(|s| !s.is_empty())
            .collect();
        let delete = DeleteImage {
            region_id: self.region.clone(),
            image_id: id.to_string(),
            force: Some(true),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&delete)).await)?;
        for snapshot in snapshots {
            self.delete_snapshot(&snapshot).await?;
        }
        Ok(())
    }

    /// Copies an image to `region`; returns the copy's id there.
    pub async fn copy_image(
        &self,
        token: &str,
        image: &str,
        region: &str,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = CopyImage {
            region_id: self.region.clone(),
            image_id: image.to_string(),
            destination_region_id: region.to_string(),
            destination_image_name: Some(name.to_string()),
            destination_description: None,
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.image_id)
    }

    /// Shares an image with other accounts (at most 10 per call, as ECS allows).
    pub async fn share_image(&self, image: &str, accounts: &[String]) -> Result<()> {
        for chunk in accounts.chunks(10) {
            let request = ModifyImageSharePermission {
                region_id: self.region.clone(),
                image_id: image.to_string(),
                add_accounts: chunk.to_vec(),
                remove_accounts: Vec::new(),
            };
            repeat_if_lost(|| self.client.call(&request)).await?;
        }
        Ok(())
    }
}

impl Cloud {
    /// Retries a deletion while the resource is still held by something being deleted
    /// (`DependencyViolation`, `IncorrectStatus`, …) for up to a minute.
    async fn delete_with_dependency_retry<F, Fut>(
        &self,
        what: &str,
        pause: Duration,
        mut call: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), ClientError>>,
    {
        let started = std::time::Instant::now();
        loop {
            match call().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(ClientError::OutcomeUnknown { .. }) => continue,
                Err(e) if is_dependency(&e) && started.elapsed() < Duration::from_secs(60) => {
                    tracing::debug!(%what, error = %e, "still in use; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn delete_security_group(&self, sg: &str, pause: Duration) -> Result<()> {
        self.delete_with_dependency_retry(sg, pause, || async {
            let request = DeleteSecurityGroup {
                region_id: self.region.clone(),
                security_group_id: sg.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }

    pub async fn delete_vswitch(&self, vswitch: &str, pause: Duration) -> Result<()> {
        self.delete_with_dependency_retry(vswitch, pause, || async {
            let request = DeleteVSwitch {
                region_id: self.region.clone(),
                vswitch_id: vswitch.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }

    pub async fn delete_vpc(&self, vpc: &str, pause: Duration) -> Result<()> {
        self.delete_with_dependency_retry(vpc, pause, || async {
            let request = DeleteVpc {
                region_id: self.region.clone(),
                vpc_id: vpc.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }
}

/// Errors meaning "still referenced by something that is going away".
fn is_dependency(e: &ClientError) -> bool {
    e.code().is_some_and(|c| {
        c.starts_with("DependencyViolation")
            || c.starts_with("IncorrectStatus")
            || c.starts_with("IncorrectInstanceStatus")
            || c == "InvalidOperation.ResourceInUse"
    })
}
