//! Types shared by many actions: tags, status enums, and lenient deserializers for the ECS JSON
//! shapes (`{"Instances":{"Instance":[…]}}` wrappers, numbers sent as strings and vice versa).

use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::fmt;

/// A resource tag. Request side: `Tag.N.Key/Value`; responses use `TagKey/TagValue` (ECS) or
/// `Key/Value` (VPC), both accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    #[serde(alias = "TagKey", alias = "Key")]
    pub key: String,
    #[serde(alias = "TagValue", alias = "Value", default)]
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Finds a tag's value in a list.
pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
            /// A status this client does not know yet (newer API); treated as "not done".
            #[serde(other)]
            Unknown,
        }

        impl $name {
            /// The status as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown => "Unknown",
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum!(
    /// Instance `Status` (`docs/ecs-api.md` §4.1).
    InstanceStatus {
        Pending = "Pending",
        Starting = "Starting",
        Running = "Running",
        Stopping = "Stopping",
        Stopped = "Stopped",
    }
);

status_enum!(
    /// Snapshot `Status` (§4.3).
    SnapshotStatus {
        Progressing = "progressing",
        Accomplished = "accomplished",
        Failed = "failed",
    }
);

status_enum!(
    /// Image `Status` (§4.2).
    ImageStatus {
        Creating = "Creating",
        Waiting = "Waiting",
        Available = "Available",
        UnAvailable = "UnAvailable",
        CreateFailed = "CreateFailed",
        Deprecated = "Deprecated",
    }
);

status_enum!(
    /// VPC and vSwitch `Status` (§4.5).
    NetworkStatus {
        Pending = "Pending",
        Available = "Available",
        Creating = "Creating",
        Created = "Created",
    }
);

status_enum!(
    /// Disk `Status` (§4.4).
    DiskStatus {
        InUse = "In_use",
        Available = "Available",
        Attaching = "Attaching",
        Detaching = "Detaching",
        Creating = "Creating",
        ReIniting = "ReIniting",
    }
);

/// Deserializes a wrapper object `{"Singular": [..]}` (or `null`, `{}`, `""`) into the list.
pub fn inner_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wrapper<T> {
        Map(HashMap<String, Vec<T>>),
        List(Vec<T>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Wrapper<T>>::deserialize(d)? {
        Some(Wrapper::Map(m)) => m.into_values().next().unwrap_or_default(),
        Some(Wrapper::List(l)) => l,
        Some(Wrapper::Other(_)) | None => Vec::new(),
    })
}

/// A string field that some servers send as a number.
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    })
}

/// A number field that some servers send as a string; unparsable → 0.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// Parses a percent string (`"45%"`, `"45"`) to 0..=100.
pub fn parse_percent(s: &str) -> Option<u8> {
    let n: f64 = s.trim().trim_end_matches('%').trim().parse().ok()?;
    Some(n.clamp(0.0, 100.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "inner_list")]
        list: Vec<Tag>,
        #[serde(default, deserialize_with = "lenient_string")]
        size: String,
        #[serde(default, deserialize_with = "lenient_u64")]
        count: u64,
    }

    #[test]
    fn wrappers_numbers_and_tags_deserialize_leniently() {
        let h: Holder = serde_json::from_str(
            r#"{"list":{"Tag":[{"TagKey":"a","TagValue":"1"},{"Key":"b","Value":"2"}]},
                "size":40,"count":"7"}"#,
        )
        .unwrap();
        assert_eq!(h.list, vec![Tag::new("a", "1"), Tag::new("b", "2")]);
        assert_eq!(h.size, "40");
        assert_eq!(h.count, 7);
        let h: Holder = serde_json::from_str(r#"{"list":{"Tag":[]}}"#).unwrap();
        assert!(h.list.is_empty());
        let h: Holder = serde_json::from_str(r#"{"list":""}"#).unwrap();
        assert!(h.list.is_empty());
    }

    #[test]
    fn statuses_parse_as_the_api_spells_them() {
        let s: SnapshotStatus = serde_json::from_str(r#""accomplished""#).unwrap();
        assert_eq!(s, SnapshotStatus::Accomplished);
        let i: ImageStatus = serde_json::from_str(r#""CreateFailed""#).unwrap();
        assert_eq!(i, ImageStatus::CreateFailed);
        let d: DiskStatus = serde_json::from_str(r#""In_use""#).unwrap();
        assert_eq!(d, DiskStatus::InUse);
        let u: InstanceStatus = serde_json::from_str(r#""Hibernated""#).unwrap();
        assert_eq!(u, InstanceStatus::Unknown);
        assert_eq!(parse_percent("45%"), Some(45));
        assert_eq!(parse_percent("100"), Some(100));
        assert_eq!(parse_percent("x"), None);
    }
}
