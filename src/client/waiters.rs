//! The concrete waiters bakerd needs, built on [`Waiter::poll`].

use super::api::images::{DescribeImages, Image, ALL_IMAGE_STATUSES};
use super::api::instances::{DescribeInstances, Instance};
use super::api::network::{DescribeVSwitches, DescribeVpcs, VSwitch, Vpc};
use super::api::storage::{DescribeSnapshots, Snapshot};
use super::types::{parse_percent, ImageStatus, InstanceStatus, NetworkStatus, SnapshotStatus};
use super::wait::{Observation, WaitError, Waited, Waiter};
use super::ClientError;
use std::time::Duration;

impl Waiter<'_> {
    /// Waits until the instance reports `wanted` (e.g. `Running` after RunInstances).
    pub async fn instance_status(
        &self,
        region: &str,
        instance_id: &str,
        wanted: InstanceStatus,
    ) -> Result<Waited<Instance>, WaitError> {
        let resource = format!("instance {instance_id}");
        self.poll(&resource, wanted.as_str(), || async {
            let found = self.describe_instance(region, instance_id).await?;
            Ok(match found {
                None => Observation::NotFound,
                Some(i) if i.status == wanted => Observation::Done(i),
                Some(i) => pending(i.status.as_str(), None, None),
            })
        })
        .await
    }

    /// Waits until the instance is Running or Stopped, whichever comes (resume: the caller starts
    /// a Stopped one). Its key is the `Running` transition: a fresh instance heads there.
    pub async fn instance_settled(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Waited<Instance>, WaitError> {
        let resource = format!("instance {instance_id}");
        self.poll(&resource, InstanceStatus::Running.as_str(), || async {
            let found = self.describe_instance(region, instance_id).await?;
            Ok(match found {
                None => Observation::NotFound,
                Some(i)
                    if matches!(i.status, InstanceStatus::Running | InstanceStatus::Stopped) =>
                {
                    Observation::Done(i)
                }
                Some(i) => pending(i.status.as_str(), None, None),
            })
        })
        .await
    }

    /// Waits until the instance no longer exists (after DeleteInstance).
    pub async fn instance_deleted(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Waited<()>, WaitError> {
        let resource = format!("instance {instance_id}");
        self.poll(&resource, "deleted", || async {
            Ok(match self.describe_instance(region, instance_id).await? {
                None => Observation::Done(()),
                Some(i) => pending(i.status.as_str(), None, None),
            })
        })
        .await
    }

    /// Waits until none of `instance_ids` exists any more (gc deleting many at once): one
    /// DescribeInstances per poll covers them all (the API takes up to 100 ids), instead of one
    /// wait per instance.
    pub async fn instances_deleted(
        &self,
        region: &str,
        instance_ids: &[String],
    ) -> Result<Waited<()>, WaitError> {
        let resource = format!("instances {}", instance_ids.join(","));
        self.poll(&resource, "deleted", || async {
            let mut request = DescribeInstances::in_region(region);
            request.instance_ids = instance_ids.to_vec();
            request.page_size = Some(100);
            let left = self.client().call(&request).await?.instances;
            let left = left
                .iter()
                .filter(|i| instance_ids.contains(&i.instance_id))
                .count();
            Ok(match left {
                0 => Observation::Done(()),
                n => pending(&format!("{n} left"), None, None),
            })
        })
        .await
    }

    async fn describe_instance(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Option<Instance>, ClientError> {
        let mut request = DescribeInstances::in_region(region);
        request.instance_ids = vec![instance_id.to_string()];
        let response = self.client().call(&request).await?;
        Ok(response
            .instances
            .into_iter()
            .find(|i| i.instance_id == instance_id))
    }

    /// Waits until every snapshot of `snapshot_ids` (at most 100) is `accomplished` with
    /// `Progress` 100%; one `failed` ends the wait, naming it. One DescribeSnapshots per poll covers
    /// them all (the API takes a list of ids), so a build's system and data disk snapshots cost
    /// one wait, whose progress is the least advanced snapshot's.
    pub async fn snapshots(
        &self,
        region: &str,
        snapshot_ids: &[String],
    ) -> Result<Waited<Vec<Snapshot>>, WaitError> {
        let resource = format!("snapshot {}", snapshot_ids.join(","));
        self.poll(&resource, "accomplished", || async {
            let request = DescribeSnapshots {
                region_id: region.to_string(),
                snapshot_ids: snapshot_ids.to_vec(),
                page_size: Some(100),
                ..Default::default()
            };
            let found = self.client().call(&request).await?.snapshots;
            Ok(all_snapshots(snapshot_ids, found))
        })
        .await
    }

    /// Waits until the image is `Available`; `CreateFailed`/`UnAvailable` end the wait.
    pub async fn image(&self, region: &str, image_id: &str) -> Result<Waited<Image>, WaitError> {
        let resource = format!("image {image_id}");
        self.poll(&resource, "Available", || async {
            let request = DescribeImages {
                region_id: region.to_string(),
                image_id: Some(image_id.to_string()),
                status: Some(ALL_IMAGE_STATUSES.to_string()),
                ..Default::default()
            };
            let response = self.client().call(&request).await?;
            let found = response.images.into_iter().find(|i| i.image_id == image_id);
            Ok(found.map_or(Observation::NotFound, image_observation))
        })
        .await
    }

    /// Waits until the VPC is `Available`.
    pub async fn vpc(&self, region: &str, vpc_id: &str) -> Result<Waited<Vpc>, WaitError> {
        let resource = format!("VPC {vpc_id}");
        self.poll(&resource, "Available", || async {
            let request = DescribeVpcs {
                region_id: region.to_string(),
                vpc_id: Some(vpc_id.to_string()),
                ..Default::default()
            };
            let response = self.client().call(&request).await?;
            Ok(
                match response.vpcs.into_iter().find(|v| v.vpc_id == vpc_id) {
                    None => Observation::NotFound,
                    Some(v) if network_ready(v.status) => Observation::Done(v),
                    Some(v) => pending(v.status.as_str(), None, None),
                },
            )
        })
        .await
    }

    /// Waits until the vSwitch is `Available`.
    pub async fn vswitch(
        &self,
        region: &str,
        vswitch_id: &str,
    ) -> Result<Waited<VSwitch>, WaitError> {
        let resource = format!("vSwitch {vswitch_id}");
        self.poll(&resource, "Available", || async {
            let request = DescribeVSwitches {
                region_id: region.to_string(),
                vswitch_id: Some(vswitch_id.to_string()),
                ..Default::default()
            };
            let response = self.client().call(&request).await?;
            let found = response
                .vswitches
                .into_iter()
                .find(|v| v.vswitch_id == vswitch_id);
            Ok(match found {
                None => Observation::NotFound,
                Some(v) if network_ready(v.status) => Observation::Done(v),
                Some(v) => pending(v.status.as_str(), None, None),
            })
        })
        .await
    }
}

fn pending<T>(status: &str, percent: Option<u8>, remaining: Option<Duration>) -> Observation<T> {
    Observation::Pending {
        status: status.to_string(),
        percent,
        remaining,
    }
}

fn network_ready(status: NetworkStatus) -> bool {
    matches!(status, NetworkStatus::Available | NetworkStatus::Created)
}

/// Done needs both `accomplished` and 100% (clients disagree on which one to trust, §3.5).
pub fn snapshot_observation(s: Snapshot) -> Observation<Snapshot> {
    let percent = parse_percent(&s.progress);
    match s.status {
        SnapshotStatus::Accomplished if percent.is_none_or(|p| p >= 100) => Observation::Done(s),
        SnapshotStatus::Failed => Observation::Failed {
            status: s.status.to_string(),
            detail: format!(
                " at progress {}",
                if s.progress.is_empty() {
                    "?"
                } else {
                    &s.progress
                }
            ),
        },
        status => {
            let remaining = (s.remain_time > 0).then(|| Duration::from_secs(s.remain_time));
            pending(status.as_str(), percent, remaining)
        }
    }
}

/// The verdict over several snapshots: failed if one failed, not found if one is missing, done
/// when all are, else pending at the least progress (and the longest time left).
fn all_snapshots(ids: &[String], found: Vec<Snapshot>) -> Observation<Vec<Snapshot>> {
    let mut done = Vec::new();
    let mut least: Option<(String, Option<u8>, Option<Duration>)> = None;
    for id in ids {
        let Some(s) = found.iter().find(|s| &s.snapshot_id == id) else {
            return Observation::NotFound;
        };
        match snapshot_observation(s.clone()) {
            Observation::Done(s) => done.push(s),
            Observation::Failed { status, detail } => {
                let detail = format!(" (snapshot {id}){detail}");
                return Observation::Failed { status, detail };
            }
            Observation::NotFound => return Observation::NotFound,
            Observation::Pending {
                status,
                percent,
                remaining,
            } => {
                let behind = least.as_ref().is_none_or(|(_, p, _)| percent < *p);
                let remaining = remaining.max(least.as_ref().and_then(|l| l.2));
                least = Some(match (behind, least) {
                    (false, Some((s, p, _))) => (s, p, remaining),
                    _ => (status, percent, remaining),
                });
            }
        }
    }
    match least {
        None => Observation::Done(done),
        Some((status, percent, remaining)) => pending(&status, percent, remaining),
    }
}

/// `Available` is done; `CreateFailed`/`UnAvailable`/`Deprecated` are terminal failures.
pub fn image_observation(i: Image) -> Observation<Image> {
    match i.status {
        ImageStatus::Available => Observation::Done(i),
        ImageStatus::Creating | ImageStatus::Waiting | ImageStatus::Unknown => {
            pending(i.status.as_str(), parse_percent(&i.progress), None)
        }
        ImageStatus::CreateFailed | ImageStatus::UnAvailable | ImageStatus::Deprecated => {
            Observation::Failed {
                status: i.status.to_string(),
                detail: String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, status: &str, progress: &str) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "SnapshotId": id, "Status": status, "Progress": progress,
        }))
        .unwrap()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn several_snapshots_are_done_only_when_all_are_and_report_the_least_progress() {
        let found = vec![
            snap("s-1", "accomplished", "100%"),
            snap("s-2", "progressing", "30%"),
            snap("s-3", "progressing", "60%"),
        ];
        match all_snapshots(&ids(&["s-1", "s-2", "s-3"]), found) {
            Observation::Pending { percent, .. } => assert_eq!(percent, Some(30)),
            _ => panic!("expected pending"),
        }
        let done = vec![
            snap("s-2", "accomplished", "100%"),
            snap("s-1", "accomplished", "100%"),
        ];
        assert!(matches!(
            all_snapshots(&ids(&["s-1", "s-2"]), done),
            Observation::Done(v) if v.len() == 2
        ));
    }

    #[test]
    fn one_failed_or_missing_snapshot_decides_for_the_batch() {
        let found = vec![
            snap("s-1", "progressing", "50%"),
            snap("s-2", "failed", "10%"),
        ];
        match all_snapshots(&ids(&["s-1", "s-2"]), found) {
            Observation::Failed { detail, .. } => assert!(detail.contains("s-2"), "{detail}"),
            _ => panic!("expected failed"),
        }
        let found = vec![snap("s-1", "accomplished", "100%")];
        assert!(matches!(
            all_snapshots(&ids(&["s-1", "s-2"]), found),
            Observation::NotFound
        ));
    }
}
