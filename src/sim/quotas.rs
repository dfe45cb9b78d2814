//! The simulated account: its quotas (`bakerd sim --quota NAME=VALUE`) and the actions its RAM
//! policy denies (`--deny-action`).
//!
//! Why: `DescribeAccountAttributes` reports the quotas and the creating actions enforce the same
//! numbers with the error codes ECS uses, so a client that checks quotas before building sees the
//! refusal it would otherwise meet halfway through. Names, codes and sources:
//! `docs/quotas.md`.
//!
//! Enforced: `max-postpaid-instance-vcpu-count` (RunInstances/CreateInstance,
//! `QuotaExceed.ElasticQuota`), `max-security-groups` (CreateSecurityGroup,
//! `QuotaExceed.SecurityGroup`), `max-postpaid-yundisk-capacity` (data disks of
//! RunInstances/CreateInstance, per category, `QuotaExceed.DiskCapacity`),
//! `real-name-authentication: none` (RunInstances/CreateInstance in the Chinese mainland,
//! `RealNameAuthenticationError`). The others are reported as configured and not enforced.

use std::collections::BTreeMap;

use super::catalog;
use super::store::State;

/// Every attribute `DescribeAccountAttributes` knows, as ECS names them.
pub const ATTRIBUTE_NAMES: &[&str] = &[
    "instance-network-type",
    "max-security-groups",
    "max-elastic-network-interfaces",
    "max-postpaid-instance-vcpu-count",
    "max-spot-instance-vcpu-count",
    "used-postpaid-instance-vcpu-count",
    "used-spot-instance-vcpu-count",
    "max-postpaid-yundisk-capacity",
    "used-postpaid-yundisk-capacity",
    "max-dedicated-hosts",
    "supported-postpaid-instance-types",
    "max-axt-command-count",
    "max-axt-invocation-daily",
    "real-name-authentication",
    "max-cloud-assistant-activation-count",
];

/// Data disk categories the yundisk capacity quota is reported for, one value each.
pub const DISK_CATEGORIES: &[&str] = &["cloud_efficiency", "cloud_ssd", "cloud_essd"];

/// A `--quota` or `--deny-action` the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("--quota {0}: expected NAME=VALUE, e.g. --quota max-postpaid-instance-vcpu-count=4")]
    Malformed(String),
    #[error("--quota {name}: not a quota the simulator sets; settable: {settable}")]
    UnknownName { name: String, settable: String },
    #[error("--quota {name}={value}: {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
}

/// The account's limits, per region (each region of the simulator has the same ones).
#[derive(Debug, Clone)]
pub struct Quotas {
    /// Settable numeric limits by attribute name (`max-…`).
    limits: BTreeMap<&'static str, u64>,
    /// `real-name-authentication`: `yes`, `none` or `unnecessary`.
    pub real_name_authentication: String,
    /// Actions answered `Forbidden.RAM`, as for a RAM user whose policy lacks them.
    pub denied_actions: Vec<String>,
}

/// Defaults: generous enough that no test or benchmark meets them unless it sets them lower (they
/// are the simulator's, not Alibaba Cloud's defaults for a new account).
const DEFAULT_LIMITS: &[(&str, u64)] = &[
    ("max-security-groups", 1000),
    ("max-elastic-network-interfaces", 1000),
    ("max-postpaid-instance-vcpu-count", 2000),
    ("max-spot-instance-vcpu-count", 2000),
    ("max-postpaid-yundisk-capacity", 1_000_000),
    ("max-dedicated-hosts", 10),
    ("max-axt-command-count", 500),
    ("max-axt-invocation-daily", 10_000),
    ("max-cloud-assistant-activation-count", 1000),
];

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            limits: DEFAULT_LIMITS.iter().copied().collect(),
            real_name_authentication: "yes".into(),
            denied_actions: Vec::new(),
        }
    }
}

impl Quotas {
    /// The defaults with each `NAME=VALUE` of `--quota` applied.
    pub fn parse(settings: &[String], denied_actions: &[String]) -> Result<Quotas, QuotaError> {
        let mut quotas = Quotas {
            denied_actions: denied_actions.to_vec(),
            ..Quotas::default()
        };
        for setting in settings {
            let (name, value) = setting
                .split_once('=')
                .ok_or_else(|| QuotaError::Malformed(setting.clone()))?;
            quotas.set(name.trim(), value.trim())?;
        }
        Ok(quotas)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), QuotaError> {
        let bad = |expected| QuotaError::BadValue {
            name: name.into(),
            value: value.into(),
            expected,
        };
        if name == "real-name-authentication" {
            if !["yes", "none", "unnecessary"].contains(&value) {
                return Err(bad("one of yes, none, unnecessary"));
            }
            self.real_name_authentication = value.into();
            return Ok(());
        }
        let Some(slot) = self.limits.iter_mut().find(|(k, _)| **k == name) else {
            let mut settable: Vec<&str> = DEFAULT_LIMITS.iter().map(|(k, _)| *k).collect();
            settable.push("real-name-authentication");
            return Err(QuotaError::UnknownName {
                name: name.into(),
                settable: settable.join(", "),
            });
        };
        *slot.1 = value
            .parse()
            .map_err(|_| bad("expected a whole number ≥ 0"))?;
        Ok(())
    }

    /// The limit named `name` (one of [`DEFAULT_LIMITS`]).
    pub fn limit(&self, name: &str) -> u64 {
        self.limits.get(name).copied().unwrap_or(0)
    }

    /// Whether the account's policy denies `action`.
    pub fn denies(&self, action: &str) -> bool {
        self.denied_actions.iter().any(|a| a == action)
    }
}

/// Regions of the Chinese mainland, where instances need a real-name verified account.
pub fn is_mainland(region: &str) -> bool {
    region.starts_with("cn-") && region != "cn-hongkong"
}

/// vCPUs of the live instances of `region` (every simulated instance is pay-as-you-go).
pub fn used_postpaid_vcpus(state: &State, region: &str) -> u64 {
    state
        .instances
        .values()
        .filter(|i| i.meta.live() && i.meta.region == region)
        .filter_map(|i| catalog::instance_type(&i.instance_type))
        .map(|t| t.cpus.max(0) as u64)
        .sum()
}

/// GiB of the live data disks of `region` in `category`.
pub fn used_data_disk_gib(state: &State, region: &str, category: &str) -> u64 {
    state
        .disks
        .values()
        .filter(|d| d.meta.live() && d.meta.region == region && d.data.is_some())
        .filter(|d| d.category == category)
        .map(|d| d.size_gib.max(0) as u64)
        .sum()
}

/// Live security groups of `region`.
pub fn security_groups(state: &State, region: &str) -> u64 {
    state
        .security_groups
        .values()
        .filter(|g| g.meta.live() && g.meta.region == region)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_setting_replaces_the_default_and_bad_ones_name_the_option() {
        let q = Quotas::parse(&["max-postpaid-instance-vcpu-count=4".into()], &[]).unwrap();
        assert_eq!(q.limit("max-postpaid-instance-vcpu-count"), 4);
        assert_eq!(q.limit("max-security-groups"), 1000);
        let unknown = Quotas::parse(&["max-cats=3".into()], &[]).unwrap_err();
        assert!(unknown.to_string().contains("max-cats"), "{unknown}");
        assert!(unknown.to_string().contains("max-security-groups"));
        let bad = Quotas::parse(&["max-security-groups=-1".into()], &[]).unwrap_err();
        assert!(bad.to_string().contains("whole number"), "{bad}");
        assert!(Quotas::parse(&["max-security-groups".into()], &[]).is_err());
        let rn = Quotas::parse(&["real-name-authentication=none".into()], &[]).unwrap();
        assert_eq!(rn.real_name_authentication, "none");
    }
}
