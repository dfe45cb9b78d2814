//! Key pairs (bakerd imports a locally generated ed25519 public key).

use super::{action, numbered_paging, Ack, Params};
use crate::client::types::{inner_list, Tag};
use serde::Deserialize;

/// `ImportKeyPair`. No ClientToken: a lost answer is resolved by `DescribeKeyPairs` on the name.
#[derive(Debug, Clone, Default)]
pub struct ImportKeyPair {
    pub region_id: String,
    pub key_pair_name: String,
    /// OpenSSH public key line.
    pub public_key_body: String,
    pub tags: Vec<Tag>,
}
action!(
    ImportKeyPair,
    "ImportKeyPair",
    Unprotected,
    ImportKeyPairResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("KeyPairName", &self.key_pair_name)
            .set("PublicKeyBody", &self.public_key_body)
            .tags(&self.tags)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyPairResponse {
    pub key_pair_name: String,
    #[serde(default)]
    pub key_pair_finger_print: String,
}

/// `DescribeKeyPairs` (PageNumber paging; name supports `*`).
#[derive(Debug, Clone, Default)]
pub struct DescribeKeyPairs {
    pub region_id: String,
    pub key_pair_name: Option<String>,
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    /// ≤ 50.
    pub page_size: Option<u32>,
}
action!(
    DescribeKeyPairs,
    "DescribeKeyPairs",
    ReadOnly,
    DescribeKeyPairsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("KeyPairName", self.key_pair_name.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeKeyPairsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub key_pairs: Vec<KeyPair>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyPair {
    pub key_pair_name: String,
    #[serde(default)]
    pub key_pair_finger_print: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

numbered_paging!(DescribeKeyPairs, KeyPair, key_pairs, 50);

/// `DeleteKeyPairs` (`KeyPairNames` JSON array, ≤ 100).
#[derive(Debug, Clone, Default)]
pub struct DeleteKeyPairs {
    pub region_id: String,
    pub key_pair_names: Vec<String>,
}
action!(
    DeleteKeyPairs,
    "DeleteKeyPairs",
    Unprotected,
    Ack,
    |self| {
        Params::new().set("RegionId", &self.region_id).set(
            "KeyPairNames",
            serde_json::to_string(&self.key_pair_names).expect("strings always serialize"),
        )
    }
);
