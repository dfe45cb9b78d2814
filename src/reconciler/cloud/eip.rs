//! The build's elastic IP (`ssh.address: eip`), through the VPC API: allocate (ClientToken, tags
//! at creation), associate, and release. Association and release have no ClientToken, so each
//! looks at the EIP first and does only what is left: a repeat after a lost answer or a crash is
//! harmless.

use super::*;
use crate::client::api::eip::{
    AllocateEipAddress, AssociateEipAddress, DescribeEipAddresses, EipAddress, EipBinding,
    ReleaseEipAddress, UnassociateEipAddress,
};
use crate::client::wait::Observation;

/// AllocateEipAddress inputs.
#[derive(Debug, Clone)]
pub struct EipParams {
    /// Mbit/s.
    pub bandwidth: u32,
    pub internet_charge_type: Option<String>,
}

impl Cloud {
    /// One AllocateEipAddress, named and tagged at creation (the tags are how `gc` finds an EIP
    /// a build left behind); returns the allocation id (`eip-…`). The same token returns the
    /// same EIP.
    pub async fn allocate_eip(
        &self,
        token: &str,
        p: &EipParams,
        name: &str,
        t: &[(String, String)],
    ) -> Result<String> {
        let request = AllocateEipAddress {
            region_id: self.region.clone(),
            bandwidth: Some(p.bandwidth),
            internet_charge_type: p.internet_charge_type.clone(),
            name: Some(name.to_string()),
            tags: tags(t),
            client_token: Some(token.to_string()),
        };
        Ok(self.client.call(&request).await?.allocation_id)
    }

    /// Tags the EIP after the fact: only for an EIP that a build of an older bakerd allocated
    /// without tags (see `reconciler::eip`).
    pub async fn tag_eip(&self, id: &str, t: &[(String, String)]) -> Result<()> {
        let request = TagResources {
            region_id: self.region.clone(),
            resource_type: TagType::Eip,
            resource_ids: vec![id.to_string()],
            tags: tags(t),
        };
        repeat_if_lost(|| self.client.call(&request)).await?;
        Ok(())
    }

    /// The EIP as DescribeEipAddresses shows it; `None` once released.
    pub async fn describe_eip(&self, id: &str) -> Result<Option<EipAddress>> {
        describe_eip(&self.client, &self.region, id)
            .await
            .map_err(Into::into)
    }

    /// Associates the EIP with `instance` (unless it already is) and waits until it is `InUse`;
    /// returns its address.
    pub async fn associate_eip(&self, id: &str, instance: &str) -> Result<String> {
        let eip = self.eip_settled(id).await?;
        if eip.instance_id != instance {
            let request = AssociateEipAddress(self.eip_binding(id, instance));
            match self.client.call(&request).await {
                Ok(_) => {}
                // Lost answer: the wait below tells whether it took.
                Err(ClientError::OutcomeUnknown { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let in_use = self.wait_eip(id, "InUse").await?;
        if in_use.instance_id != instance {
            return Err(CloudError::Unexpected(format!(
                "EIP {id} is associated with {} instead of {instance}",
                in_use.instance_id
            )));
        }
        Ok(in_use.ip_address)
    }

    /// Unassociates the EIP if it is in use, waits until it is `Available`, and releases it.
    /// An EIP already released counts as released.
    pub async fn release_eip(&self, id: &str) -> Result<()> {
        if self.describe_eip(id).await?.is_none() {
            return Ok(());
        }
        let eip = self.eip_settled(id).await?;
        if eip.status == "InUse" {
            let request = UnassociateEipAddress(self.eip_binding(id, &eip.instance_id));
            match repeat_if_lost(|| self.client.call(&request)).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                // Freed meanwhile (its instance was released): the wait below sees it.
                Err(e) if e.code().is_some_and(is_freed_meanwhile) => {}
                Err(e) => return Err(e.into()),
            }
            self.wait_eip(id, "Available").await?;
        }
        let request = ReleaseEipAddress {
            region_id: self.region.clone(),
            allocation_id: id.to_string(),
        };
        gone_ok(repeat_if_lost(|| self.client.call(&request)).await)
    }

    fn eip_binding(&self, id: &str, instance: &str) -> EipBinding {
        EipBinding {
            region_id: self.region.clone(),
            allocation_id: id.to_string(),
            instance_id: instance.to_string(),
        }
    }

    /// Waits until the EIP is in a settled status (`Available` or `InUse`) and returns it.
    async fn eip_settled(&self, id: &str) -> Result<EipAddress> {
        self.wait_eip(id, "Available|InUse").await
    }

    /// Waits until the EIP's status is one of `wanted` (`|`-separated).
    async fn wait_eip(&self, id: &str, wanted: &str) -> Result<EipAddress> {
        let resource = format!("EIP {id}");
        let waited = self
            .waiter(None)
            .poll(&resource, wanted, || async {
                Ok(match describe_eip(&self.client, &self.region, id).await? {
                    None => Observation::NotFound,
                    Some(e) if wanted.split('|').any(|w| w == e.status) => Observation::Done(e),
                    Some(e) => Observation::Pending {
                        status: e.status,
                        percent: None,
                        remaining: None,
                    },
                })
            })
            .await?;
        Ok(waited.value)
    }
}

/// Unassociate answers meaning the EIP is no longer (or no longer only) on that instance.
fn is_freed_meanwhile(code: &str) -> bool {
    code.starts_with("IncorrectEipStatus") || code == "InvalidInstanceId.NotAssociated"
}

async fn describe_eip(
    client: &EcsClient,
    region: &str,
    id: &str,
) -> std::result::Result<Option<EipAddress>, ClientError> {
    let request = DescribeEipAddresses {
        region_id: region.to_string(),
        allocation_id: Some(id.to_string()),
        ..Default::default()
    };
    let found = client.call(&request).await?.eip_addresses;
    Ok(found.into_iter().find(|e| e.allocation_id == id))
}
