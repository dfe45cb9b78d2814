//! Typed ECS actions: one request struct per action (its fields are the parameters bakerd uses),
//! its response type, and paging for list actions ([`Paged`], used by `EcsClient::list_all`).

pub mod account;
pub mod assistant;
pub mod eip;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod network;
pub mod regions;
pub mod storage;
pub mod tags;

use super::types::Tag;
use super::{ClientError, EcsClient, Product};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;

/// What a repeated call can do to the cloud; decides whether an unanswered request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// `Describe*`/`List*`: always safe to repeat.
    ReadOnly,
    /// Mutating, and carries a `ClientToken` (the caller must set one): a repeat returns the first
    /// result.
    ClientToken,
    /// Mutating without `ClientToken` support: a lost answer leaves the outcome unknown.
    Unprotected,
}

/// One ECS or VPC action.
pub trait Action: fmt::Debug {
    /// The API name (`RunInstances`).
    const NAME: &'static str;
    /// Retry safety of the action.
    const MUTATION: Mutation;
    /// The success body.
    type Response: DeserializeOwned;
    /// The flattened request parameters.
    fn params(&self) -> Params;
    /// The product that serves this request (ECS unless the action says otherwise; the tag
    /// actions decide by their resource type).
    fn product(&self) -> Product {
        Product::Ecs
    }
    /// The name sent for this request: [`Action::NAME`] unless the product spells it otherwise
    /// (the VPC API's untag action is `UnTagResources`).
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// A list action whose pages `EcsClient::list_all` walks.
pub trait Paged: Action + Clone {
    /// One listed element.
    type Item;
    /// The first page: `Page::Number(1)` or `Page::Token("")`, as the action pages.
    fn first_page() -> Page;
    /// This request, asking for `page`.
    fn at_page(&self, page: &Page) -> Self;
    /// The items of one answer and the page after it.
    fn split(response: Self::Response, current: &Page) -> (Vec<Self::Item>, Page);
}

/// Where a paged listing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `PageNumber` paging (1-based).
    Number(u32),
    /// `NextToken` paging; empty = first page.
    Token(String),
    /// No more pages.
    Done,
}

/// The next page for `PageNumber`/`PageSize`/`TotalCount` answers.
pub fn next_numbered_page(current: &Page, page_size: u32, total: u32, got: usize) -> Page {
    let Page::Number(n) = current else {
        return Page::Done;
    };
    if got == 0 || u64::from(*n) * u64::from(page_size.max(1)) >= u64::from(total) {
        Page::Done
    } else {
        Page::Number(n + 1)
    }
}

/// The next page for `NextToken` answers.
pub fn next_token_page(token: Option<String>) -> Page {
    match token {
        Some(t) if !t.is_empty() => Page::Token(t),
        _ => Page::Done,
    }
}

/// At most this many pages are read by `list_all` (100 000 items at 100 a page): a guard against a
/// server that never says "last page".
const MAX_PAGES: usize = 1000;

impl EcsClient {
    /// Calls a list action page after page and returns every item.
    pub async fn list_all<P: Paged>(&self, request: P) -> Result<Vec<P::Item>, ClientError> {
        let mut page = P::first_page();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            if page == Page::Done {
                break;
            }
            let response = self.call(&request.at_page(&page)).await?;
            let (mut got, next) = P::split(response, &page);
            items.append(&mut got);
            page = next;
        }
        Ok(items)
    }
}

/// An answer that carries nothing but its `RequestId`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ack {
    #[serde(default)]
    pub request_id: String,
}

/// Flattened request parameters (`Name`, `Name.N`, `Parent.N.Child`, JSON-array strings).
#[derive(Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl fmt::Debug for Params {
    /// Names only: values may include an instance password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    /// Always sent.
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.0.push((name.to_string(), value.to_string()));
        self
    }

    /// Sent when present.
    pub fn opt<T: ToString>(self, name: &str, value: Option<&T>) -> Self {
        match value {
            Some(v) => self.set(name, v.to_string()),
            None => self,
        }
    }

    /// Sent when non-empty.
    pub fn text(self, name: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.set(name, value)
        }
    }

    /// Booleans as `true`/`false`, sent when present.
    pub fn flag(self, name: &str, value: Option<bool>) -> Self {
        self.opt(name, value.as_ref())
    }

    /// `Name.1`, `Name.2`… (repeated list).
    pub fn list(mut self, name: &str, items: &[String]) -> Self {
        for (i, item) in items.iter().enumerate() {
            self.0.push((format!("{name}.{}", i + 1), item.clone()));
        }
        self
    }

    /// One parameter holding a JSON array string (`["a","b"]`), sent when non-empty.
    pub fn json_list(self, name: &str, items: &[String]) -> Self {
        if items.is_empty() {
            return self;
        }
        let json = serde_json::to_string(items).expect("strings always serialize");
        self.set(name, json)
    }

    /// `Tag.N.Key` / `Tag.N.Value`.
    pub fn tags(mut self, tags: &[Tag]) -> Self {
        for (i, tag) in tags.iter().enumerate() {
            self.0.push((format!("Tag.{}.Key", i + 1), tag.key.clone()));
            self.0
                .push((format!("Tag.{}.Value", i + 1), tag.value.clone()));
        }
        self
    }

    /// `PageNumber` or `NextToken` for `page`.
    pub fn page(self, page: &Page, page_size: u32) -> Self {
        match page {
            Page::Number(n) => self.set("PageNumber", n).set("PageSize", page_size),
            Page::Token(t) => self.text("NextToken", t).set("MaxResults", page_size),
            Page::Done => self,
        }
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

/// Implements [`Action`] for a request type in one line; `product = Vpc` for VPC actions.
macro_rules! action {
    ($req:ty, $name:literal, $mutation:ident, $resp:ty, product = $product:ident, |$s:ident| $body:block) => {
        impl $crate::client::api::Action for $req {
            const NAME: &'static str = $name;
            const MUTATION: $crate::client::api::Mutation = $crate::client::api::Mutation::$mutation;
            type Response = $resp;
            fn params(&$s) -> $crate::client::api::Params $body
            fn product(&self) -> $crate::client::Product {
                $crate::client::Product::$product
            }
        }
    };
    ($req:ty, $name:literal, $mutation:ident, $resp:ty, |$s:ident| $body:block) => {
        impl $crate::client::api::Action for $req {
            const NAME: &'static str = $name;
            const MUTATION: $crate::client::api::Mutation = $crate::client::api::Mutation::$mutation;
            type Response = $resp;
            fn params(&$s) -> $crate::client::api::Params $body
        }
    };
}
pub(crate) use action;

/// Implements [`Paged`] for a `PageNumber`/`PageSize` list action whose request has
/// `page_number`/`page_size` fields and whose response has `page_size`, `total_count` and the
/// item list in `$items`. `$default_size` is sent when the caller set no page size.
macro_rules! numbered_paging {
    ($req:ty, $item:ty, $items:ident, $default_size:literal) => {
        impl $crate::client::api::Paged for $req {
            type Item = $item;
            fn first_page() -> $crate::client::api::Page {
                $crate::client::api::Page::Number(1)
            }
            fn at_page(&self, page: &$crate::client::api::Page) -> Self {
                let mut next = self.clone();
                if let $crate::client::api::Page::Number(n) = page {
                    next.page_number = Some(*n);
                    next.page_size = Some(self.page_size.unwrap_or($default_size));
                }
                next
            }
            fn split(
                r: Self::Response,
                current: &$crate::client::api::Page,
            ) -> (Vec<$item>, $crate::client::api::Page) {
                let got = r.$items.len();
                let next = $crate::client::api::next_numbered_page(
                    current,
                    r.page_size,
                    r.total_count,
                    got,
                );
                (r.$items, next)
            }
        }
    };
}
pub(crate) use numbered_paging;

/// Implements [`Paged`] for a `NextToken` list action whose request has a `next_token` field and
/// whose response has `next_token` and the item list in `$items`.
macro_rules! token_paging {
    ($req:ty, $item:ty, $items:ident) => {
        impl $crate::client::api::Paged for $req {
            type Item = $item;
            fn first_page() -> $crate::client::api::Page {
                $crate::client::api::Page::Token(String::new())
            }
            fn at_page(&self, page: &$crate::client::api::Page) -> Self {
                let mut next = self.clone();
                if let $crate::client::api::Page::Token(t) = page {
                    next.next_token = (!t.is_empty()).then(|| t.clone());
                }
                next
            }
            fn split(
                r: Self::Response,
                _current: &$crate::client::api::Page,
            ) -> (Vec<$item>, $crate::client::api::Page) {
                (r.$items, $crate::client::api::next_token_page(r.next_token))
            }
        }
    };
}
pub(crate) use token_paging;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_flatten_lists_tags_and_json_arrays() {
        let p = Params::new()
            .set("RegionId", "cn-hangzhou")
            .text("Empty", "")
            .flag("DryRun", Some(false))
            .list("InstanceId", &["i-1".into(), "i-2".into()])
            .json_list("InstanceIds", &["i-1".into()])
            .json_list("Nothing", &[])
            .tags(&[Tag::new("bakerd:managed", "true")])
            .into_vec();
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "RegionId",
                "DryRun",
                "InstanceId.1",
                "InstanceId.2",
                "InstanceIds",
                "Tag.1.Key",
                "Tag.1.Value"
            ]
        );
        assert_eq!(p[4].1, r#"["i-1"]"#);
        assert_eq!(p[1].1, "false");
    }

    #[test]
    fn numbered_paging_stops_at_the_total_or_an_empty_page() {
        assert_eq!(
            next_numbered_page(&Page::Number(1), 10, 25, 10),
            Page::Number(2)
        );
        assert_eq!(next_numbered_page(&Page::Number(3), 10, 25, 5), Page::Done);
        assert_eq!(next_numbered_page(&Page::Number(1), 10, 100, 0), Page::Done);
        assert_eq!(next_token_page(Some(String::new())), Page::Done);
        assert_eq!(next_token_page(Some("t".into())), Page::Token("t".into()));
    }
}

#[cfg(test)]
mod decode_tests {
    use super::images::DescribeImagesResponse;
    use super::instances::{DescribeInstancesResponse, RunInstancesResponse};
    use super::network::DescribeVSwitchesResponse;
    use super::storage::DescribeSnapshotsResponse;
    use crate::client::types::{ImageStatus, InstanceStatus, NetworkStatus, SnapshotStatus};
    use serde_json::json;

    #[test]
    fn documented_response_shapes_decode() {
        let r: DescribeInstancesResponse = serde_json::from_value(json!({
            "RequestId": "R", "TotalCount": 1, "PageNumber": 1, "PageSize": 10,
            "Instances": {"Instance": [{
                "InstanceId": "i-1", "Status": "Running", "CreationTime": "2017-12-10T04:04Z",
                "PublicIpAddress": {"IpAddress": []}, "InnerIpAddress": {"IpAddress": []},
                "VpcAttributes": {"VpcId": "v", "VSwitchId": "vsw", "PrivateIpAddress": {"IpAddress": ["10.0.0.5"]}},
                "SecurityGroupIds": {"SecurityGroupId": ["sg-1"]},
                "Tags": {"Tag": [{"TagKey": "bakerd:managed", "TagValue": "true"}]}
            }]}
        }))
        .unwrap();
        let i = &r.instances[0];
        assert_eq!(i.status, InstanceStatus::Running);
        assert_eq!(i.reachable_ip(), Some("10.0.0.5"));
        assert_eq!(i.security_group_ids, ["sg-1"]);
        let r: RunInstancesResponse = serde_json::from_value(
            json!({"RequestId": "R", "InstanceIdSets": {"InstanceIdSet": ["i-1", "i-2"]}}),
        )
        .unwrap();
        assert_eq!(r.instance_id_sets, ["i-1", "i-2"]);
        let r: DescribeSnapshotsResponse = serde_json::from_value(json!({
            "Snapshots": {"Snapshot": [{"SnapshotId": "s-1", "Status": "progressing",
                "Progress": "45%", "RemainTime": 12, "SourceDiskSize": 40}]}
        }))
        .unwrap();
        assert_eq!(r.snapshots[0].status, SnapshotStatus::Progressing);
        assert_eq!(
            (
                r.snapshots[0].remain_time,
                r.snapshots[0].source_disk_size.as_str()
            ),
            (12, "40")
        );
        let r: DescribeImagesResponse = serde_json::from_value(json!({
            "Images": {"Image": [{"ImageId": "m-1", "Status": "Creating", "Progress": "0%",
                "OSType": "linux", "DiskDeviceMappings": {"DiskDeviceMapping": [{"SnapshotId": "s-1", "Size": "40", "Type": "system"}]}}]}
        }))
        .unwrap();
        assert_eq!(r.images[0].status, ImageStatus::Creating);
        assert_eq!(r.images[0].disk_device_mappings[0].snapshot_id, "s-1");
        let r: DescribeVSwitchesResponse = serde_json::from_value(json!({
            "VSwitches": {"VSwitch": [{"VSwitchId": "vsw-1", "Status": "Available",
                "Tags": {"Tag": [{"Key": "k", "Value": "v"}]}}]}
        }))
        .unwrap();
        assert_eq!(r.vswitches[0].status, NetworkStatus::Available);
        assert_eq!(r.vswitches[0].tags[0].key, "k");
    }
}
