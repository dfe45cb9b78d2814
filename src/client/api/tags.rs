//! Tags on existing resources (creation-time tags are fields of the create requests).
//!
//! Both products have TagResources, UntagResources and ListTagResources with the same parameters
//! and answers, but each knows only its own resource types: ECS (`instance`, `image`, …,
//! lowercase) and VPC (`VPC`, `VSWITCH`, `EIP`, uppercase). The request's [`TagType`] picks the
//! product, so a VPC type can never be sent to ECS (which answers `InvalidResourceType.NotFound`).

use super::{token_paging, Ack, Action, Mutation, Params};
use crate::client::types::{inner_list, Tag};
use crate::client::Product;
use serde::Deserialize;

/// A taggable resource type, and with it the product that tags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagType {
    #[default]
    Instance,
    Image,
    Snapshot,
    SecurityGroup,
    KeyPair,
    Vpc,
    VSwitch,
    Eip,
}

impl TagType {
    /// The `ResourceType` value, spelt as the product's API reference lists it.
    pub fn api_name(self) -> &'static str {
        match self {
            TagType::Instance => "instance",
            TagType::Image => "image",
            TagType::Snapshot => "snapshot",
            TagType::SecurityGroup => "securitygroup",
            TagType::KeyPair => "keypair",
            TagType::Vpc => "VPC",
            TagType::VSwitch => "VSWITCH",
            TagType::Eip => "EIP",
        }
    }

    /// The product whose tag actions know this type.
    pub fn product(self) -> Product {
        match self {
            TagType::Vpc | TagType::VSwitch | TagType::Eip => Product::Vpc,
            _ => Product::Ecs,
        }
    }
}

/// Implements [`Action`] for a tag request whose product follows its `resource_type`.
macro_rules! tag_action {
    ($req:ty, $name:literal, $mutation:ident, $resp:ty, name = |$p:ident| $spelt:expr, |$s:ident| $body:block) => {
        impl Action for $req {
            const NAME: &'static str = $name;
            const MUTATION: Mutation = Mutation::$mutation;
            type Response = $resp;
            fn params(&$s) -> Params $body
            fn product(&self) -> Product {
                self.resource_type.product()
            }
            fn name(&self) -> &'static str {
                let $p = self.product();
                $spelt
            }
        }
    };
    ($req:ty, $name:literal, $mutation:ident, $resp:ty, |$s:ident| $body:block) => {
        tag_action!($req, $name, $mutation, $resp, name = |_p| $name, |$s| $body);
    };
}

/// `TagResources` (≤ 50 resources, ≤ 20 tags).
#[derive(Debug, Clone, Default)]
pub struct TagResources {
    pub region_id: String,
    pub resource_type: TagType,
    pub resource_ids: Vec<String>,
    pub tags: Vec<Tag>,
}
tag_action!(TagResources, "TagResources", Unprotected, Ack, |self| {
    Params::new()
        .set("RegionId", &self.region_id)
        .set("ResourceType", self.resource_type.api_name())
        .list("ResourceId", &self.resource_ids)
        .tags(&self.tags)
});

/// `UntagResources` (`All` removes every tag when no key is given); the VPC API names it
/// `UnTagResources` (S-TEAVPC `UnTagResourcesRequest`).
#[derive(Debug, Clone, Default)]
pub struct UntagResources {
    pub region_id: String,
    pub resource_type: TagType,
    pub resource_ids: Vec<String>,
    pub tag_keys: Vec<String>,
    pub all: Option<bool>,
}
tag_action!(
    UntagResources,
    "UntagResources",
    Unprotected,
    Ack,
    name = |product| match product {
        Product::Ecs => "UntagResources",
        Product::Vpc => "UnTagResources",
    },
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ResourceType", self.resource_type.api_name())
            .list("ResourceId", &self.resource_ids)
            .list("TagKey", &self.tag_keys)
            .flag("All", self.all)
    }
);

/// `ListTagResources` (NextToken paging): which resources carry which tags.
#[derive(Debug, Clone, Default)]
pub struct ListTagResources {
    pub region_id: String,
    pub resource_type: TagType,
    pub resource_ids: Vec<String>,
    /// Exact tag filters, ANDed.
    pub tags: Vec<Tag>,
    pub next_token: Option<String>,
}
tag_action!(
    ListTagResources,
    "ListTagResources",
    ReadOnly,
    ListTagResourcesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("ResourceType", self.resource_type.api_name())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_resource_types_are_tagged_through_the_vpc_product() {
        let request = ListTagResources {
            resource_type: TagType::Eip,
            ..Default::default()
        };
        assert_eq!(request.product(), Product::Vpc);
        let sent = request.params().into_vec();
        assert!(
            sent.contains(&("ResourceType".into(), "EIP".into())),
            "{sent:?}"
        );
        let request = TagResources {
            resource_type: TagType::Image,
            ..Default::default()
        };
        assert_eq!(request.product(), Product::Ecs);
        let untag = |resource_type| UntagResources {
            resource_type,
            ..Default::default()
        };
        assert_eq!(untag(TagType::Vpc).name(), "UnTagResources");
        assert_eq!(untag(TagType::Image).name(), "UntagResources");
    }
}
