//! Key pairs, zones, VPCs, vSwitches and security groups: creating and deleting the build's temporary network.

use super::*;
use crate::client::wait::Observation;

impl Cloud {
    /// Imports the build's public key; an existing key pair of that name counts as done (a
    /// resume after the call went through). ImportKeyPair has no ClientToken, so the key pair is
    /// looked up by its name only when the answer says it may exist (`KeyPair.AlreadyExist`) or
    /// was lost: a first import costs one call.
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
            match self.client.call(&request).await {
                Ok(_) => return Ok(()),
                // Sent but unanswered, or a retried import whose first try went through.
                Err(e) if may_exist(&e) => {
                    if self.key_pair_exists(name).await? {
                        return Ok(());
                    }
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
        Ok(self.vswitch(vswitch).await?.map(|v| v.vpc_id))
    }

    /// A vSwitch of the region (its VPC, zone, CIDR), if it exists.
    pub async fn vswitch(&self, vswitch: &str) -> Result<Option<VSwitch>> {
        let request = DescribeVSwitches {
            region_id: self.region.clone(),
            vswitch_id: Some(vswitch.to_string()),
            ..Default::default()
        };
        let found = self.client.list_all(request).await?;
        Ok(found.into_iter().find(|v| v.vswitch_id == vswitch))
    }

    /// A zone of the region that offers `instance_type` (first one when none says).
    pub async fn pick_zone(&self, instance_type: &str) -> Result<String> {
        let zones = self.zones().await?;
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

    /// The region's zones, asked once per process: the preflight and the vSwitch's zone choice
    /// want the same fact moments apart.
    pub async fn zones(&self) -> Result<Vec<Zone>> {
        let zones = self
            .zones
            .get_or_try_init(|| async {
                let request = DescribeZones {
                    region_id: self.region.clone(),
                    verbose: None,
                };
                self.client.call(&request).await.map(|r| r.zones)
            })
            .await?;
        Ok(zones.clone())
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
    /// Deletes `kind id`, retrying while it is still held by something being deleted
    /// (`DependencyViolation`, `IncorrectStatus`, …: ECS releases a deleted instance's security
    /// groups and vSwitch asynchronously, for seconds) for up to [`DEPENDENCY_DEADLINE`].
    ///
    /// Why a waiter: the deletion *is* the poll. The first attempt comes when the release is
    /// likely done, after the learned time it took in earlier builds (`<kind> deletable` in
    /// `timings.json`), and later attempts follow the waiter's schedule; a first build on an
    /// endpoint tries at once and backs off from [`DEPENDENCY_FLOOR`]. An error other than a
    /// dependency (or a lost answer, tried again) ends the wait with that error unchanged.
    async fn delete_with_dependency_retry<F, Fut>(
        &self,
        kind: &str,
        id: &str,
        mut call: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), ClientError>>,
    {
        let mut config = self.waits.clone();
        config.floor = config.floor.max(DEPENDENCY_FLOOR);
        config.deadline = DEPENDENCY_DEADLINE;
        let waiter = self
            .client
            .waiter()
            .with_config(config)
            .with_timings(self.timings.clone());
        let resource = format!("{kind} {id}");
        let deleted = waiter
            .poll(&resource, "deletable", || {
                let (attempt, resource) = (call(), &resource);
                async move {
                    Ok(match attempt.await {
                        Ok(()) => Observation::Done(()),
                        Err(e) if e.is_not_found() => Observation::Done(()),
                        Err(ClientError::OutcomeUnknown { .. }) => still_held("answer lost"),
                        Err(e) if is_dependency(&e) => {
                            tracing::debug!(%resource, error = %e, "still in use; retrying");
                            still_held(e.code().unwrap_or("in use"))
                        }
                        Err(e) => return Err(e),
                    })
                }
            })
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(WaitError::Client { source, .. }) => Err(source.into()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_security_group(&self, sg: &str) -> Result<()> {
        self.delete_with_dependency_retry("security_group", sg, || async {
            let request = DeleteSecurityGroup {
                region_id: self.region.clone(),
                security_group_id: sg.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }

    pub async fn delete_vswitch(&self, vswitch: &str) -> Result<()> {
        self.delete_with_dependency_retry("vSwitch", vswitch, || async {
            let request = DeleteVSwitch {
                region_id: self.region.clone(),
                vswitch_id: vswitch.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }

    pub async fn delete_vpc(&self, vpc: &str) -> Result<()> {
        self.delete_with_dependency_retry("VPC", vpc, || async {
            let request = DeleteVpc {
                region_id: self.region.clone(),
                vpc_id: vpc.to_string(),
            };
            self.client.call(&request).await.map(|_| ())
        })
        .await
    }
}

/// A deletion refused for now: the resource is still held, `status` says by what.
fn still_held(status: &str) -> Observation<()> {
    Observation::Pending {
        status: status.to_string(),
        percent: None,
        remaining: None,
    }
}

/// Answers after which an imported key pair may exist: lost, or refused as a duplicate.
fn may_exist(e: &ClientError) -> bool {
    matches!(e, ClientError::OutcomeUnknown { .. })
        || e.code()
            .is_some_and(|c| c.contains("AlreadyExist") || c.contains("Duplicate"))
}

/// The shortest pause between two attempts to delete a resource still in use (on the simulator,
/// whose waits otherwise poll every 50 ms): a release takes seconds, not milliseconds.
const DEPENDENCY_FLOOR: Duration = Duration::from_millis(500);

/// How long a deletion may be refused as "in use" before it fails: a deleted instance lets go
/// of its security groups and vSwitch within seconds.
const DEPENDENCY_DEADLINE: Duration = Duration::from_secs(60);

/// Errors meaning "still referenced by something that is going away", or "still settling": the
/// VPC API answers a DeleteVSwitch/DeleteVpc on a resource that is not yet `Available` with
/// `IncorrectVSwitchStatus`/`IncorrectVpcStatus`, and one too soon after another with
/// `TaskConflict` (VPC API reference, DeleteVSwitch and DeleteVpc error codes).
fn is_dependency(e: &ClientError) -> bool {
    e.code().is_some_and(is_dependency_code)
}

fn is_dependency_code(c: &str) -> bool {
    c.starts_with("DependencyViolation")
        || c.starts_with("IncorrectStatus")
        || c.starts_with("IncorrectInstanceStatus")
        || matches!(
            c,
            "InvalidOperation.ResourceInUse"
                | "IncorrectVSwitchStatus"
                | "IncorrectVpcStatus"
                | "TaskConflict"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_api_answers_of_a_resource_still_settling_are_retried_deletions() {
        for code in [
            "DependencyViolation.VSwitch",
            "IncorrectVSwitchStatus",
            "IncorrectVpcStatus",
            "TaskConflict",
        ] {
            assert!(is_dependency_code(code), "{code}");
        }
        assert!(!is_dependency_code("InvalidVpcId.NotFound"));
    }
}
