//! The Alibaba Cloud products bakerd calls and where each one answers.
//!
//! ECS (2014-05-26) hosts instances, disks, images, key pairs and security groups. VPCs, vSwitches
//! and EIPs belong to the VPC product (2016-04-28): ECS still answers its deprecated CreateVpc,
//! but without `Tag.N`, and ECS's TagResources/ListTagResources know no VPC, vSwitch or EIP type,
//! so tags at creation and gc's tag listing of those only work through the VPC endpoint
//! (`docs/sim-packer-actions.md`, "The VPC product").

use super::error::ClientError;
use super::Env;
use std::fmt;

/// Environment variable that points the client's ECS calls at another endpoint (e.g. `bakerd sim`).
pub const ENDPOINT_ENV: &str = "BAKERD_ECS_ENDPOINT";

/// Environment variable that points the client's VPC calls at another endpoint. Unset, VPC calls
/// follow the ECS override (one URL serves both products in `bakerd sim`).
pub const VPC_ENDPOINT_ENV: &str = "BAKERD_VPC_ENDPOINT";

/// API version of the ECS actions.
pub const ECS_API_VERSION: &str = "2014-05-26";

/// API version of the VPC actions (VPCs, vSwitches, EIPs and their tags).
pub const VPC_API_VERSION: &str = "2016-04-28";

/// Regions whose VPC API answers at the central `vpc.aliyuncs.com`; every other region has
/// `vpc.<region>.aliyuncs.com`. Source: the endpoint tables of the official SDKs
/// (alibaba-cloud-sdk-go `services/vpc/endpoint.go`, Python `alibabacloud_vpc20160428` client,
/// endpoint rule `regional`).
const CENTRAL_VPC_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hongkong",
    "ap-southeast-1",
    "us-east-1",
    "us-west-1",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
    "cn-north-2-gov-1",
];

/// Which API an action belongs to: picks the endpoint, the `Version` and the error's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Product {
    /// Elastic Compute Service, 2014-05-26.
    #[default]
    Ecs,
    /// Virtual Private Cloud, 2016-04-28.
    Vpc,
}

impl Product {
    /// The `Version` parameter of every call to this product.
    pub fn version(self) -> &'static str {
        match self {
            Product::Ecs => ECS_API_VERSION,
            Product::Vpc => VPC_API_VERSION,
        }
    }

    /// The public endpoint of this product in `region`.
    pub fn default_url(self, region: &str) -> String {
        match self {
            Product::Ecs => format!("https://ecs.{region}.aliyuncs.com"),
            Product::Vpc if CENTRAL_VPC_REGIONS.contains(&region) => {
                "https://vpc.aliyuncs.com".to_string()
            }
            Product::Vpc => format!("https://vpc.{region}.aliyuncs.com"),
        }
    }

    /// The settings that point this product elsewhere, for error hints.
    pub fn endpoint_settings(self) -> &'static str {
        match self {
            Product::Ecs => "the spec's `endpoint` or BAKERD_ECS_ENDPOINT",
            Product::Vpc => {
                "the spec's `vpc_endpoint` or BAKERD_VPC_ENDPOINT (default: the ECS endpoint \
                 override, else the region's VPC endpoint)"
            }
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Product::Ecs => "ECS",
            Product::Vpc => "VPC",
        })
    }
}

/// An endpoint the user gave, and where it came from (for errors).
type Given = (String, &'static str);

/// The ECS base URL: `explicit`, else `BAKERD_ECS_ENDPOINT`, else the region's public endpoint.
pub(super) fn ecs_url(
    explicit: Option<&str>,
    env: &Env,
    region: &str,
) -> Result<String, ClientError> {
    match ecs_override(explicit, env) {
        Some(given) => checked(given),
        None => Ok(Product::Ecs.default_url(region)),
    }
}

/// The VPC base URL: `explicit`, else `BAKERD_VPC_ENDPOINT`, else the ECS override unless that is
/// an Alibaba Cloud host (`ecs-cn-hangzhou.aliyuncs.com` has no VPC API behind it), else the
/// region's VPC endpoint.
pub(super) fn vpc_url(
    explicit: Option<&str>,
    ecs_explicit: Option<&str>,
    env: &Env,
    region: &str,
) -> Result<String, ClientError> {
    let own = match explicit {
        Some(e) => Some((e.to_string(), "the spec's `vpc_endpoint`")),
        None => env_value(env, VPC_ENDPOINT_ENV),
    };
    if let Some(given) = own {
        return checked(given);
    }
    match ecs_override(ecs_explicit, env) {
        Some(given) => {
            let url = checked(given)?;
            if is_alibaba_cloud_host(&url) {
                Ok(Product::Vpc.default_url(region))
            } else {
                Ok(url)
            }
        }
        None => Ok(Product::Vpc.default_url(region)),
    }
}

fn ecs_override(explicit: Option<&str>, env: &Env) -> Option<Given> {
    match explicit {
        Some(e) => Some((e.to_string(), "the spec's `endpoint` (or --endpoint)")),
        None => env_value(env, ENDPOINT_ENV),
    }
}

fn env_value(env: &Env, name: &'static str) -> Option<Given> {
    env.get(name)
        .filter(|e| !e.trim().is_empty())
        .map(|e| (e.to_string(), name))
}

/// An endpoint given by the user must carry its scheme: guessing `https://` for
/// `127.0.0.1:8086` would turn a typo into a TLS error on a plain port.
fn checked((raw, from): Given) -> Result<String, ClientError> {
    let raw = raw.trim();
    if !(raw.starts_with("http://") || raw.starts_with("https://")) {
        return Err(ClientError::EndpointScheme {
            endpoint: raw.to_string(),
            from,
        });
    }
    Ok(raw.trim_end_matches('/').to_string())
}

fn is_alibaba_cloud_host(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h.ends_with(".aliyuncs.com"))
}

/// Where one product answers.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) base_url: String,
    /// `host[:port]` as the `Host` header (and the V3 signature) carries it.
    pub(super) host: String,
}

impl Endpoint {
    pub(super) fn parse(base_url: String) -> Result<Endpoint, ClientError> {
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| ClientError::Config(format!("endpoint {base_url:?} is not a URL: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(ClientError::Config(format!(
                    "endpoint {base_url:?} has no host"
                )))
            }
        };
        Ok(Endpoint { base_url, host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_defaults_follow_the_sdk_endpoint_tables() {
        let env = Env::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(
            vpc_url(None, None, &env, "cn-hangzhou").unwrap(),
            "https://vpc.aliyuncs.com"
        );
        assert_eq!(
            vpc_url(None, None, &env, "eu-central-1").unwrap(),
            "https://vpc.eu-central-1.aliyuncs.com"
        );
    }

    #[test]
    fn vpc_calls_follow_a_local_ecs_override_but_not_a_cloud_one() {
        let env = Env::from_pairs([(ENDPOINT_ENV, "http://127.0.0.1:8086/")]);
        assert_eq!(
            vpc_url(None, None, &env, "cn-hangzhou").unwrap(),
            "http://127.0.0.1:8086"
        );
        let cloud = Some("https://ecs-vpc.cn-hangzhou.aliyuncs.com");
        assert_eq!(
            vpc_url(None, cloud, &env, "cn-hangzhou").unwrap(),
            "https://vpc.aliyuncs.com"
        );
        let env = Env::from_pairs([(VPC_ENDPOINT_ENV, "http://127.0.0.1:9000")]);
        assert_eq!(
            vpc_url(None, cloud, &env, "cn-hangzhou").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            vpc_url(Some("https://vpc.example.com"), cloud, &env, "x").unwrap(),
            "https://vpc.example.com"
        );
    }

    #[test]
    fn a_vpc_endpoint_without_a_scheme_names_its_source() {
        let env = Env::from_pairs([(VPC_ENDPOINT_ENV, "127.0.0.1:9000")]);
        let err = vpc_url(None, None, &env, "cn-hangzhou")
            .unwrap_err()
            .to_string();
        assert!(err.contains(VPC_ENDPOINT_ENV), "{err}");
    }
}
