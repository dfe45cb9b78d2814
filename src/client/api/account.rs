//! `DescribeAccountAttributes`: the account's quotas in a region (read-only).
//!
//! Source: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-describeaccountattributes
//! and the ECS 2014-05-26 SDK models (`AccountAttributeItems.AccountAttributeItem[]`, each with
//! `AttributeValues.ValueItem[]`).

use super::{action, Params};
use crate::client::types::{inner_list, lenient_string};
use serde::Deserialize;

/// `DescribeAccountAttributes`: quotas of `region_id` (of `zone_id` when given).
#[derive(Debug, Clone, Default)]
pub struct DescribeAccountAttributes {
    pub region_id: String,
    pub zone_id: Option<String>,
    /// `AttributeName.N` (at most 8); empty = every attribute.
    pub attribute_names: Vec<String>,
}
action!(
    DescribeAccountAttributes,
    "DescribeAccountAttributes",
    ReadOnly,
    DescribeAccountAttributesResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("ZoneId", self.zone_id.as_ref())
            .list("AttributeName", &self.attribute_names)
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountAttributesResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub account_attribute_items: Vec<AccountAttributeItem>,
}

/// One attribute (`max-security-groups`, …) and its values.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountAttributeItem {
    pub attribute_name: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub attribute_values: Vec<ValueItem>,
}

/// One value of an attribute; the optional fields say what it applies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValueItem {
    /// A number for the `max-*`/`used-*` attributes, a word for the others.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: String,
    #[serde(default)]
    pub zone_id: Option<String>,
    #[serde(default)]
    pub instance_charge_type: Option<String>,
    #[serde(default)]
    pub disk_category: Option<String>,
}

impl DescribeAccountAttributesResponse {
    /// The values of `name` (empty when the answer lacks it).
    pub fn values(&self, name: &str) -> &[ValueItem] {
        self.account_attribute_items
            .iter()
            .find(|i| i.attribute_name == name)
            .map_or(&[], |i| &i.attribute_values)
    }

    /// The number `name` holds, summed over its values for `disk_category` (all values when
    /// `None`, or the values without a category); `None` when the answer has no number for it.
    pub fn number(&self, name: &str, disk_category: Option<&str>) -> Option<u64> {
        let numbers: Vec<u64> = self
            .values(name)
            .iter()
            .filter(|v| match (disk_category, &v.disk_category) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .filter_map(|v| v.value.trim().parse().ok())
            .collect();
        (!numbers.is_empty()).then(|| numbers.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_response_shape_parses_with_numbers_as_strings_or_numbers() {
        let body = r#"{"RequestId":"x","AccountAttributeItems":{"AccountAttributeItem":[
            {"AttributeName":"max-postpaid-instance-vcpu-count","AttributeValues":{"ValueItem":[
                {"Value":"800","ExpiredTime":"2019-01-01T12:30:00Z","ZoneId":"cn-hangzhou-g","InstanceChargeType":"PostPaid","InstanceType":"ecs.g5.large","Count":1,"DiskCategory":""}]}},
            {"AttributeName":"max-postpaid-yundisk-capacity","AttributeValues":{"ValueItem":[
                {"Value":100,"DiskCategory":"cloud_ssd"},{"Value":"300","DiskCategory":"cloud_essd"}]}}]}}"#;
        let r: DescribeAccountAttributesResponse = serde_json::from_str(body).unwrap();
        assert_eq!(
            r.number("max-postpaid-instance-vcpu-count", None),
            Some(800)
        );
        assert_eq!(
            r.number("max-postpaid-yundisk-capacity", Some("cloud_essd")),
            Some(300)
        );
        assert_eq!(r.number("max-postpaid-yundisk-capacity", None), Some(400));
        assert_eq!(r.number("max-security-groups", None), None);
    }
}
