//! Tags on existing resources (creation-time tags are fields of the create requests).

use super::{action, token_paging, Ack, Params};
use crate::client::types::{inner_list, Tag};
use serde::Deserialize;

/// `TagResources` (≤ 50 resources, ≤ 20 tags).
#[derive(Debug, Clone, Default)]
pub struct TagResources {
    pub region_id: String,
    /// `instance|disk|snapshot|image|securitygroup|keypair|…`.
    pub resource_type: String,
    pub resource_ids: Vec<String>,
    pub tags: Vec<Tag>,
}
action!(TagResources, "TagResources", Unprotected, Ack, |self| {
    Params::new()
        .set("RegionId", &self.region_id)
        .set("ResourceType", &self.resource_type)
        .list("ResourceId", &self.resource_ids)
        .tags(&self.tags)
});

/// `UntagResources` (`All` removes every tag when no key is given).
#[derive(Debug, Clone, Default)]
pub struct UntagResources {
    pub region_id: String,
    pub resource_type: String,
    pub resource_ids: Vec<String>,
    pub tag_keys: Vec<String>,
    pub all: Option<bool>,
}
action!(
    UntagResources,
    "UntagResources",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ResourceType", &self.resource_type)
            .list("ResourceId", &self.resource_ids)
            .list("TagKey", &self.tag_keys)
            .flag("All", self.all)
    }
);

/// `ListTagResources` (NextToken paging): which resources carry which tags.
#[derive(Debug, Clone, Default)]
pub struct ListTagResources {
    pub region_id: String,
    pub resource_type: String,
    pub resource_ids: Vec<String>,
    /// Exact tag filters, ANDed.
    pub tags: Vec<Tag>,
    pub next_token: Option<String>,
}
action!(
    ListTagResources,
    "ListTagResources",
    ReadOnly,
    ListTagResourcesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ResourceType", &self.resource_type)
            .list("ResourceId", &self.resource_ids)
            .tags(&self.tags)
            .opt("NextToken", self.next_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagResourcesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub tag_resources: Vec<TagResource>,
    #[serde(default)]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResource {
    pub resource_id: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub tag_key: String,
    #[serde(default)]
    pub tag_value: String,
}

token_paging!(ListTagResources, TagResource, tag_resources);
