//! The steps of a build, one per phase transition. Each step is idempotent: it may run again
//! after a crash or a `resume`, and then finds in the record (or in the cloud) what it already did.

use super::cloud::{CloudError, ImageParams, InstanceParams, InstanceState};
use super::crash;
use super::reconcile::{BuildError, Reconciler};
use crate::client::wait::WaitError;
use crate::spec::{SourceImage, SshAddress};

impl Reconciler {
    /// Tags bakerd puts on everything it creates, at creation time.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            ("bakerd:managed".to_string(), "true".to_string()),
            ("bakerd:build-id".to_string(), self.rec.id.to_string()),
        ]
    }

    /// The image name, `{{timestamp}}` rendered as the build's creation time: the same on every
    /// resume.
    pub fn image_name(&self) -> String {
        self.spec
            .image_name_at(super::store::created_secs(&self.rec))
    }

    /// Name of the build's temporary key pair, security group, VPC and vSwitch.
    /// Later attempts (after a cleanup) get their own names, so nothing left of an earlier
    /// attempt can be mistaken for this one's.
    pub fn temp_name(&self) -> String {
        match self.rec.attempt {
            0 => format!("bakerd-{}", self.rec.id),
            n => format!("bakerd-{}-a{n}", self.rec.id),
        }
    }

    /// Whether bakerd reaches instances over SSH (else Cloud Assistant: no key pair, no inbound
    /// rule, no address).
    pub fn uses_ssh(&self) -> bool {
        self.spec.communicator == crate::spec::Communicator::Ssh
    }

    /// Pending → Prepared: import the build's key pair; find or create the network.
    pub(super) async fn prepare(&mut self) -> Result<(), BuildError> {
        // The image name was checked by the preflight of `apply`, moments before this build was
        // recorded (CreateImage refuses a duplicate name in any case).
        if !self.verify_only() {
            self.resolve_source_image().await?;
        }
        if self.uses_ssh() {
            let public_key = self.ensure_local_key()?;
            let (cloud, name, tags) = (self.cloud.clone(), self.temp_name(), self.tags());
            self.create("import-key-pair", "key_pair", |_| async move {
                cloud
                    .import_key_pair(&name, &public_key, &tags)
                    .await
                    .map(|()| name)
            })
            .await?;
        }
        let given_sg = self.spec.instance.security_group_id.clone();
        let sg_vpc = match &given_sg {
            Some(sg) => self.cloud.security_group_vpc(sg).await?,
            None => None,
        };
        let given_vswitch = self.spec.instance.vswitch_id.clone();
        let vswitch = match &given_vswitch {
            Some(v) => v.clone(),
            None => self.create_temp_network(sg_vpc.clone()).await?,
        };
        self.set_resource("ssh_vswitch", &vswitch)?;
        let sg = match given_sg {
            Some(sg) => sg,
            None => self.create_temp_security_group().await?,
        };
        self.set_resource("ssh_security_group", &sg)?;
        // A new vSwitch is Pending for a moment; the security group calls above overlap with
        // that, and RunInstances needs it Available.
        if given_vswitch.is_none() {
            self.cloud.wait_vswitch_available(&vswitch).await?;
        }
        Ok(())
    }

    /// Pins the source image id (a family is resolved once, so a resume uses the same image).
    async fn resolve_source_image(&mut self) -> Result<(), BuildError> {
        if self.resource("source_image").is_some() {
            return Ok(());
        }
        let id = match &self.spec.source_image {
            SourceImage::Id(id) => id.clone(),
            SourceImage::Family(family) => self.cloud.image_from_family(family).await?,
        };
        self.set_resource("source_image", &id)?;
        Ok(())
    }

    /// Creates the temporary VPC (unless `vpc` is given) and vSwitch; returns the vSwitch id,
    /// which may still be Pending (the caller waits, after work that overlaps with it).
    async fn create_temp_network(&mut self, vpc: Option<String>) -> Result<String, BuildError> {
        let (cloud, name, tags) = (self.cloud.clone(), self.temp_name(), self.tags());
        let (vpc, created) = match vpc {
            Some(vpc) => (vpc, false),
            None => {
                let (c, n, t) = (cloud.clone(), name.clone(), tags.clone());
                let cidr = self.spec.instance.vpc_cidr().to_string();
                let vpc = self
                    .create("create-vpc", "vpc", |token| async move {
                        c.create_vpc(&token, &cidr, &n, &t).await
                    })
                    .await?;
                (vpc, true)
            }
        };
        // Picking the zone overlaps with the new VPC's Pending moment.
        let zone = match &self.spec.instance.zone {
            Some(zone) => zone.clone(),
            None => cloud.pick_zone(&self.spec.instance.instance_type).await?,
        };
        if created {
            cloud.wait_vpc_available(&vpc).await?;
        }
        let c = cloud.clone();
        let cidr = self.spec.instance.vswitch_cidr().to_string();
        let vswitch = self
            .create("create-vswitch", "vswitch", |token| async move {
                c.create_vswitch(&token, &vpc, &zone, &cidr, &name, &tags)
                    .await
            })
            .await?;
        Ok(vswitch)
    }

    /// Creates the temporary security group, open only on the SSH port.
    async fn create_temp_security_group(&mut self) -> Result<String, BuildError> {
        let (cloud, name, tags) = (self.cloud.clone(), self.temp_name(), self.tags());
        let vpc = match self.resource("vpc") {
            Some(vpc) => Some(vpc.to_string()),
            None => match self.resource("ssh_vswitch") {
                Some(vsw) => self.cloud.vswitch_vpc(vsw).await?,
                None => None,
            },
        };
        let c = cloud.clone();
        let sg = self
            .create(
                "create-security-group",
                "security_group",
                |token| async move {
                    c.create_security_group(&token, vpc.as_deref(), &name, &tags)
                        .await
                },
            )
            .await?;
        if !self.uses_ssh() {
            return Ok(sg);
        }
        let (port, sg2) = (self.spec.ssh.port, sg.clone());
        self.once("authorize-ssh", |token| async move {
            cloud
                .authorize_tcp_ingress(&token, &sg2, port)
                .await
                .map(|()| "ok".to_string())
        })
        .await?;
        Ok(sg)
    }

    /// Prepared → InstanceCreated: one RunInstances with a deterministic ClientToken.
    pub(super) async fn create_instance(&mut self) -> Result<(), BuildError> {
        let params = InstanceParams {
            source_image_id: self
                .resource("source_image")
                .unwrap_or_default()
                .to_string(),
            instance_type: self.spec.instance.instance_type.clone(),
            zone: self.spec.instance.zone.clone(),
            security_group: self
                .resource("ssh_security_group")
                .unwrap_or_default()
                .to_string(),
            vswitch: self.resource("ssh_vswitch").unwrap_or_default().to_string(),
            key_pair: self.resource("key_pair").unwrap_or_default().to_string(),
            name: self.temp_name(),
            system_disk_category: self.spec.instance.system_disk.category.clone(),
            system_disk_size_gb: self.spec.instance.system_disk.size_gb,
            internet_max_bandwidth_out: self.spec.internet_max_bandwidth_out(),
            internet_charge_type: self.spec.instance.internet_charge_type.clone(),
            security_enhancement_strategy: self.spec.instance.security_enhancement_strategy.clone(),
            data_disks: self.spec.instance.data_disks.clone(),
            user_data: self.spec.instance.user_data.as_ref().map(|text| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(text)
            }),
            tags: [self.tags(), map_pairs(&self.spec.instance.tags)].concat(),
        };
        let cloud = self.cloud.clone();
        self.create("run-instances", "instance", |token| async move {
            cloud.run_instance(&token, &params).await
        })
        .await?;
        Ok(())
    }

    /// InstanceCreated → InstanceRunning: wait for Running, pick the SSH address (allocating a
    /// public IP when asked), connect and pin the host key.
    pub(super) async fn start_and_connect(&mut self) -> Result<(), BuildError> {
        let instance = self.instance_id()?;
        crash::point("wait-running:before");
        let running = self
            .cloud
            .wait_running(&instance, self.spec.timeouts.instance)
            .await?;
        if !self.uses_ssh() {
            self.cloud
                .wait_assistant(&instance, self.spec.ssh.timeout)
                .await?;
            crash::point("assistant:online");
            return Ok(());
        }
        let address = self.ssh_address(&instance, running).await?;
        self.set_resource("ssh_address", &address)?;
        let session = self.connect_ssh().await?;
        crash::point("ssh:connected");
        drop(session);
        Ok(())
    }

    /// The address bakerd connects to: the private IP, a public one (allocated on demand), or
    /// the build's EIP.
    pub(super) async fn ssh_address(
        &mut self,
        instance: &str,
        state: InstanceState,
    ) -> Result<String, BuildError> {
        let step = match self.resource("instance") {
            Some(build_instance) if build_instance != instance => "verify-allocate-public-ip",
            _ => "allocate-public-ip",
        };
        match self.spec.ssh.address {
            SshAddress::Public => {}
            SshAddress::Eip => return self.eip_address(instance).await,
            SshAddress::Private => {
                return state.private_ip.ok_or_else(|| {
                    BuildError::Other(format!("instance {instance} has no private IP address"))
                })
            }
        }
        if let Some(ip) = state.public_ip {
            return Ok(ip);
        }
        let (cloud, id) = (self.cloud.clone(), instance.to_string());
        let ip = self
            .once(step, |_| async move { cloud.allocate_public_ip(&id).await })
            .await?;
        Ok(ip)
    }

    /// Provisioned → InstanceStopped: stop the instance for a consistent snapshot.
    pub(super) async fn stop_instance(&mut self) -> Result<(), BuildError> {
        if !self.spec.stop_before_snapshot {
            return Ok(());
        }
        let instance = self.instance_id()?;
        let deadline = self.spec.timeouts.instance;
        self.cloud.stop_instance(&instance, deadline).await?;
        crash::point("stop-instance:after-call");
        // The snapshot step needs the disks; looking them up while the instance stops takes
        // those calls off the critical path.
        self.system_disk(&instance).await?;
        self.data_disks(&instance).await?;
        self.cloud
            .wait_instance_status(&instance, "Stopped", deadline)
            .await?;
        Ok(())
    }

    /// The image's tags: bakerd's own, the provenance (with `verified` as given), the spec's.
    pub(super) fn image_tags(&self, verified: &str) -> Vec<(String, String)> {
        let mut tags = vec![("bakerd:managed".to_string(), "true".to_string())];
        tags.extend(self.provenance_tags(verified));
        tags.extend(map_pairs(&self.spec.image.tags));
        tags
    }

    /// SnapshotReady → ImageReady: replace a same-named image if `force`, create the image
    /// (tagged with its provenance) and wait for Available.
    pub(super) async fn create_image(&mut self) -> Result<(), BuildError> {
        if self.spec.image.force {
            self.replace_existing_image().await?;
        }
        let verified = self.recorded_verified();
        self.record_provenance(&verified)?;
        let tags = self.image_tags(&verified);
        let params = ImageParams {
            snapshot: self.resource("snapshot").unwrap_or_default().to_string(),
            data_disks: self.image_data_disks()?,
            name: self.image_name(),
            description: self
                .spec
                .image_description_at(super::store::created_secs(&self.rec)),
            family: self.spec.image.family.clone(),
            version: self.spec.image.version.clone(),
            tags: tags.clone(),
        };
        let cloud = self.cloud.clone();
        let step = self.step_name("create-image");
        let image = self
            .create(&step, "image", |token| async move {
                cloud.create_image(&token, &params).await
            })
            .await?;
        let (cloud, out) = (self.cloud.clone(), self.out.clone());
        let timeout = self.spec.timeouts.image;
        let wait = async move {
            cloud
                .wait_image(&image, timeout, move |p| {
                    crash::point("wait-image:poll");
                    out.progress("image", p)
                })
                .await
        };
        // The image is made from the snapshot: the instance and the temporary network can go
        // meanwhile instead of after it (ECS releases them slowly: seconds to tens of seconds).
        let waited = if self.cleans_up_during_image_wait() {
            tokio::join!(wait, self.cleanup_during_image_wait()).0
        } else {
            wait.await
        };
        self.out.progress_done("image");
        let step = [("create-image".to_string(), "image".to_string())];
        self.retire_if_dead(&step, waited).await
    }

    /// The current name of a create step that may have been retired (see
    /// [`retire_if_dead`](Self::retire_if_dead)): `create-snapshot`, then `create-snapshot-r1`, …
    pub(super) fn step_name(&self, base: &str) -> String {
        match self.retired(base) {
            0 => base.to_string(),
            n => format!("{base}-r{n}"),
        }
    }

    fn retired(&self, base: &str) -> u64 {
        let key = format!("{base}:retired");
        self.rec
            .results
            .get(&key)
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }

    /// When a wait ended because the resource itself failed (`failed` snapshot, `CreateFailed`
    /// image) or vanished, re-issuing its create with the same ClientToken would only hand the
    /// dead resource back. So the step is retired: the dead resource is deleted, and the next
    /// run of the step (a `resume`) uses a new step name and therefore a new ClientToken.
    pub(super) async fn retire_if_dead(
        &mut self,
        steps: &[(String, String)],
        waited: Result<(), CloudError>,
    ) -> Result<(), BuildError> {
        let dead = matches!(
            &waited,
            Err(CloudError::Wait(
                WaitError::Failed { .. } | WaitError::Vanished { .. }
            ))
        );
        if dead {
            for (base, role) in steps {
                self.retire_dead(base, role).await?;
            }
        }
        waited.map_err(Into::into)
    }

    /// Deletes the dead resource `role` of create step `base` and retires the step.
    async fn retire_dead(&mut self, base: &str, role: &str) -> Result<(), BuildError> {
        if let Some(id) = self.resource(role).map(str::to_string) {
            let deleted = match role {
                // The build's snapshots stay: the next image is made from them.
                "image" => self.cloud.delete_image(&id).await,
                _ => self.cloud.delete_snapshot(&id).await,
            };
            if let Err(e) = deleted {
                tracing::warn!(%id, error = %e, "could not delete a failed {role}; gc will");
            }
            self.event(
                "retire",
                format!("{role} {id} failed; the next try creates a new one"),
            )?;
        }
        self.retire(base, role)
    }

    /// Forgets the current run of create step `base` and its resource `role` (durable on
    /// return): the next run uses a new step name, hence a new ClientToken. The role's recorded
    /// deletion goes too: it was about the resource just forgotten, and kept it would make the
    /// next run's resource of that role look deleted already (and leak).
    pub(super) fn retire(&mut self, base: &str, role: &str) -> Result<(), BuildError> {
        let step = self.step_name(base);
        self.rec.intents.remove(&step);
        self.rec.results.remove(&step);
        self.rec.resources.remove(role);
        let delete = super::cleanup::delete_step(role);
        self.rec.intents.remove(&delete);
        self.rec.results.remove(&delete);
        let key = format!("{base}:retired");
        let next = self.retired(base) + 1;
        self.rec.results.insert(key, serde_json::Value::from(next));
        self.save()?;
        Ok(())
    }

    /// Deletes images with the build's image name that this build did not create (`force`).
    async fn replace_existing_image(&mut self) -> Result<(), BuildError> {
        let (cloud, name) = (self.cloud.clone(), self.image_name());
        let ours = self.resource("image").map(str::to_string);
        self.once("replace-image", |_| async move {
            let mut removed = Vec::new();
            for image in cloud.images_named(&name).await? {
                if Some(&image) != ours.as_ref() {
                    cloud.delete_image_and_snapshots(&image).await?;
                    removed.push(image);
                }
            }
            Ok(if removed.is_empty() {
                "none".into()
            } else {
                removed.join(",")
            })
        })
        .await?;
        Ok(())
    }

    /// Copies the image to each `copy_regions` entry and shares it with `share_accounts`.
    pub(super) async fn copy_and_share(
        &mut self,
        image: &str,
        tags: &[(String, String)],
    ) -> Result<(), BuildError> {
        for region in self.spec.image.copy_regions.clone() {
            let (cloud, img, name, t) = (
                self.cloud.clone(),
                image.to_string(),
                self.image_name(),
                tags.to_vec(),
            );
            let r = region.clone();
            let copy = self
                .create(
                    &format!("copy-image-{region}"),
                    &format!("image_copy_{region}"),
                    |token| async move { cloud.copy_image(&token, &img, &r, &name, &t).await },
                )
                .await?;
            self.cloud
                .in_region(&region)
                .wait_image(&copy, self.spec.timeouts.image, |_| {})
                .await?;
        }
        let accounts = self.spec.image.share_accounts.clone();
        if !accounts.is_empty() {
            let (cloud, img) = (self.cloud.clone(), image.to_string());
            self.once("share-image", |_| async move {
                cloud
                    .share_image(&img, &accounts)
                    .await
                    .map(|()| "ok".into())
            })
            .await?;
        }
        Ok(())
    }

    /// The build's instance id, which every step after `InstanceCreated` needs.
    pub fn instance_id(&self) -> Result<String, BuildError> {
        self.resource("instance")
            .map(str::to_string)
            .ok_or_else(|| {
                BuildError::Other(format!("build {} has no instance recorded", self.rec.id))
            })
    }
}

/// A tag map as (key, value) pairs.
pub(super) fn map_pairs(map: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
