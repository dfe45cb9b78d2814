//! The build instance: run, describe, start/stop, public IP, delete, system disk.

use super::*;

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
            key_pair_name: Some(p.key_pair.clone()).filter(|k| !k.is_empty()),
            internet_max_bandwidth_out: Some(p.internet_max_bandwidth_out).filter(|b| *b > 0),
            internet_charge_type: p.internet_charge_type.clone(),
            security_enhancement_strategy: p.security_enhancement_strategy.clone(),
            data_disks: p
                .data_disks
                .iter()
                .map(|d| crate::client::api::instances::DataDisk {
                    size: d.size_gb,
                    category: d.category.clone(),
                    snapshot_id: d.snapshot_id.clone(),
                    disk_name: d.name.clone(),
                    device: d.device.clone(),
                    // The build's disks go with the build instance: nothing is left to pay for.
                    delete_with_instance: true,
                })
                .collect(),
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
        Ok(found
            .into_iter()
            .find(|i| i.instance_id == id)
            .map(instance_state))
    }

    pub async fn start_instance(&self, id: &str) -> Result<()> {
        let request = StartInstance {
            instance_id: id.to_string(),
        };
        self.change_state(id, &["Starting", "Running"], || self.client.call(&request))
            .await
    }

    /// Stops the instance. One that is still starting (a resume right after RunInstances) is
    /// waited for until Running first; one already stopping or stopped counts as done. No
    /// Describe precedes the call: the answer to StopInstance tells all three cases apart.
    pub async fn stop_instance(&self, id: &str, deadline: Duration) -> Result<()> {
        let request = StopInstance {
            instance_id: id.to_string(),
            ..Default::default()
        };
        let stop =
            || self.change_state(id, &["Stopping", "Stopped"], || self.client.call(&request));
        match stop().await {
            Err(CloudError::Api(e)) if is_incorrect_status(&e) => {
                self.wait_instance_status(id, "Running", deadline).await?;
                stop().await
            }
            other => other,
        }
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
            if !lost && !is_incorrect_status(&err) {
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

    /// Waits for `Running` or `Stopped` (the instance timeout of the spec applies) and returns
    /// the instance as the last poll described it.
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
        let waited = self
            .waiter(Some(deadline))
            .instance_status(&self.region, id, status)
            .await?;
        Ok(instance_state(waited.value))
    }

    /// Waits until the instance is Running, starting it first if it is Stopped (a resume of a
    /// build whose instance was stopped); the wait's own polls tell which, so no Describe
    /// precedes it.
    pub async fn wait_running(&self, id: &str, deadline: Duration) -> Result<InstanceState> {
        let settled = self
            .waiter(Some(deadline))
            .instance_settled(&self.region, id)
            .await?;
        if settled.value.status != InstanceStatus::Stopped {
            return Ok(instance_state(settled.value));
        }
        self.start_instance(id).await?;
        self.wait_instance_status(id, "Running", deadline).await
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

    /// Deletes instances (forced) and waits until they are all gone, polling them together (at
    /// most 100 per DescribeInstances, as ECS allows). Returns each instance's outcome.
    pub async fn delete_instances_and_wait(&self, ids: &[String]) -> Vec<(String, Result<()>)> {
        let mut outcomes = Vec::new();
        for id in ids {
            let request = DeleteInstance {
                instance_id: id.clone(),
                force: Some(true),
            };
            let deleted = gone_ok(repeat_if_lost(|| self.client.call(&request)).await);
            outcomes.push((id.clone(), deleted));
        }
        let sent: Vec<String> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in sent.chunks(100) {
            if let Err(e) = self
                .waiter(None)
                .instances_deleted(&self.region, chunk)
                .await
            {
                let message = e.to_string();
                for (id, outcome) in outcomes.iter_mut().filter(|(id, _)| chunk.contains(id)) {
                    *outcome = Err(CloudError::Unexpected(format!("instance {id}: {message}")));
                }
            }
        }
        outcomes
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

    /// The instance's data disks, ordered by device (`/dev/vdb` first).
    pub async fn data_disks(&self, instance: &str) -> Result<Vec<AttachedDisk>> {
        let request = DescribeDisks {
            region_id: self.region.clone(),
            instance_id: Some(instance.to_string()),
            disk_type: Some("data".into()),
            ..Default::default()
        };
        let mut disks: Vec<AttachedDisk> = self
            .client
            .list_all(request)
            .await?
            .into_iter()
            .map(|d| AttachedDisk {
                id: d.disk_id,
                device: d.device,
                size_gb: d.size,
            })
            .collect();
        disks.sort_by(|a, b| (&a.device, &a.id).cmp(&(&b.device, &b.id)));
        Ok(disks)
    }
}

/// What a build needs of a described instance.
fn instance_state(i: Instance) -> InstanceState {
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
}

/// ECS refused a Start/Stop because of the instance's current status.
fn is_incorrect_status(e: &ClientError) -> bool {
    e.code()
        .is_some_and(|c| c.starts_with("IncorrectInstanceStatus"))
}
