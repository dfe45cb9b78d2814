//! Credentials that have to be fetched: STS `AssumeRole` (RamRoleArn, ChainableRamRoleArn),
//! `AssumeRoleWithOIDC` (OIDC) and the instance metadata service (EcsRamRole).
//!
//! Guarantees: fetched once, on the first call that needs them, and again when less than
//! [`REFRESH_BEFORE`] of their lifetime is left; a failed fetch is an error naming the endpoint,
//! the STS Code and RequestId, never the secret. Caveat: the metadata service is plain HTTP by
//! design (link-local address); the optional IMDSv2 token is asked for and used when offered.

use super::{CredentialSource, Credentials, Secret};
use crate::client::transport::{self, SignInput, SignatureStyle};
use serde::Deserialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use time::OffsetDateTime;

/// The STS API version (`docs/credentials.md`).
const STS_API_VERSION: &str = "2015-04-01";
/// Fetched credentials are renewed when they have less than this left.
const REFRESH_BEFORE: Duration = Duration::from_secs(180);
/// The metadata path of an instance's RAM role credentials.
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// Where credentials come from, once the chain has been resolved.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Keys known now.
    Static(Credentials),
    /// Keys fetched on first use.
    Fetch {
        fetch: Box<Fetch>,
        source: CredentialSource,
    },
}

impl Plan {
    /// Where these credentials come from (for `show` and errors).
    pub fn source(&self) -> &CredentialSource {
        match self {
            Plan::Static(c) => &c.source,
            Plan::Fetch { source, .. } => source,
        }
    }
}

/// How to fetch temporary credentials.
#[derive(Debug, Clone)]
pub enum Fetch {
    /// STS `AssumeRole`, signed with the `base` credentials.
    AssumeRole {
        base: Box<Plan>,
        role_arn: String,
        session_name: String,
        duration_secs: u64,
        sts_endpoint: String,
    },
    /// The instance metadata service; `None` asks it which role is attached.
    EcsRamRole {
        role: Option<String>,
        metadata_endpoint: String,
    },
    /// STS `AssumeRoleWithOIDC` with the token read from `token_file` (anonymous call).
    Oidc {
        role_arn: String,
        provider_arn: String,
        token_file: PathBuf,
        session_name: String,
        duration_secs: u64,
        sts_endpoint: String,
    },
}

/// A failed fetch of temporary credentials.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "STS {action} at {endpoint}: no answer ({source}); check network access, or point \
         BAKERD_STS_ENDPOINT (or the profile's sts_region) at a reachable STS endpoint"
    )]
    StsUnreachable {
        action: &'static str,
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "STS {action} failed: {code} (HTTP {status}, RequestId {request_id}) at {endpoint}: \
         {message}. Hint: check the profile's ram_role_arn and that its keys may assume that role"
    )]
    StsRejected {
        action: &'static str,
        endpoint: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("STS {action} at {endpoint} answered without credentials; body starts: {body_start}")]
    StsDecode {
        action: &'static str,
        endpoint: String,
        body_start: String,
    },
    #[error(
        "instance metadata {url}: no answer ({source}); EcsRamRole profiles work on an ECS \
         instance (or with BAKERD_METADATA_ENDPOINT pointing at `bakerd sim`)"
    )]
    MetadataUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "instance metadata {url} answered HTTP {status}: no RAM role by that name is attached; \
         check the profile's ram_role_name"
    )]
    MetadataRefused { url: String, status: u16 },
    #[error("instance metadata {url} answered without credentials; body starts: {body_start}")]
    MetadataDecode { url: String, body_start: String },
    #[error("cannot read the OIDC token file {path} (the profile's oidc_token_file): {source}")]
    OidcTokenUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Keys with their expiry, as STS and the metadata service return them.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemporaryKeys {
    access_key_id: String,
    access_key_secret: Secret,
    security_token: Secret,
    #[serde(default)]
    expiration: String,
}

type Fetched = (Credentials, Option<OffsetDateTime>);
type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send + 'a>>;

/// Hands out current credentials, fetching and renewing temporary ones.
#[derive(Debug)]
pub struct CredentialProvider {
    plan: Plan,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Fetched>>,
}

impl CredentialProvider {
    pub fn new(plan: Plan, http: reqwest::Client) -> Self {
        CredentialProvider {
            plan,
            http,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Where the credentials come from; known without fetching.
    pub fn source(&self) -> &CredentialSource {
        self.plan.source()
    }

    /// The AccessKeyId of static keys (not secret); `None` for temporary ones.
    pub fn static_access_key_id(&self) -> Option<&str> {
        match &self.plan {
            Plan::Static(c) => Some(&c.access_key_id),
            Plan::Fetch { .. } => None,
        }
    }

    /// Current credentials: static ones at once, temporary ones fetched or renewed as needed.
    pub async fn get(&self) -> Result<Credentials, FetchError> {
        if let Plan::Static(c) = &self.plan {
            return Ok(c.clone());
        }
        let mut cache = self.cache.lock().await;
        if let Some((creds, expires)) = cache.as_ref() {
            if !expiring(*expires) {
                return Ok(creds.clone());
            }
        }
        let fetched = fetch(&self.http, &self.plan).await?;
        let creds = fetched.0.clone();
        *cache = Some(fetched);
        Ok(creds)
    }
}

fn expiring(expires: Option<OffsetDateTime>) -> bool {
    expires.is_some_and(|at| at - OffsetDateTime::now_utc() < REFRESH_BEFORE)
}

/// Fetches the credentials of `plan` (recursively for chained roles).
fn fetch<'a>(http: &'a reqwest::Client, plan: &'a Plan) -> FetchFuture<'a> {
    Box::pin(async move {
        let (fetch, source) = match plan {
            Plan::Static(c) => return Ok((c.clone(), None)),
            Plan::Fetch { fetch, source } => (fetch.as_ref(), source.clone()),
        };
        let keys = match fetch {
            Fetch::AssumeRole {
                base,
                role_arn,
                session_name,
                duration_secs,
                sts_endpoint,
            } => {
                let (base, _) = self::fetch(http, base).await?;
                let params = vec![
                    ("RoleArn".to_string(), role_arn.clone()),
                    ("RoleSessionName".to_string(), session_name.clone()),
                    ("DurationSeconds".to_string(), duration_secs.to_string()),
                ];
                assume_role(http, sts_endpoint, &base, params).await?
            }
            Fetch::Oidc { .. } => assume_role_with_oidc(http, fetch).await?,
            Fetch::EcsRamRole {
                role,
                metadata_endpoint,
            } => from_metadata(http, metadata_endpoint, role.as_deref()).await?,
        };
        let expires = OffsetDateTime::parse(
            &keys.expiration,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        let creds = Credentials {
            access_key_id: keys.access_key_id,
            access_key_secret: keys.access_key_secret,
            security_token: Some(keys.security_token),
            source,
        };
        Ok((creds, expires))
    })
}

/// STS `AssumeRole`, signed like an ECS call.
async fn assume_role(
    http: &reqwest::Client,
    endpoint: &str,
    base: &Credentials,
    params: Vec<(String, String)>,
) -> Result<TemporaryKeys, FetchError> {
    const ACTION: &str = "AssumeRole";
    let url = reqwest::Url::parse(endpoint).ok();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(|h| (h.to_string(), u.port())))
        .map(|(h, p)| p.map_or(h.clone(), |p| format!("{h}:{p}")))
        .unwrap_or_default();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let timestamp = crate::client::utc_timestamp();
    let request = transport::sign_request(
        SignatureStyle::V3,
        &SignInput {
            action: ACTION,
            version: STS_API_VERSION,
            params: &params,
            credentials: base,
            host: &host,
            nonce: &nonce,
            timestamp: &timestamp,
        },
    );
    let raw = transport::send(http, endpoint, &request)
        .await
        .map_err(|failure| FetchError::StsUnreachable {
            action: ACTION,
            endpoint: endpoint.to_string(),
            source: match failure {
                transport::SendFailure::NotSent(e) | transport::SendFailure::MaybeSent(e) => e,
            },
        })?;
    sts_keys(ACTION, endpoint, raw.status, &raw.body)
}

/// STS `AssumeRoleWithOIDC`: anonymous, the OIDC token is the proof.
async fn assume_role_with_oidc(
    http: &reqwest::Client,
    fetch: &Fetch,
) -> Result<TemporaryKeys, FetchError> {
    const ACTION: &str = "AssumeRoleWithOIDC";
    let Fetch::Oidc {
        role_arn,
        provider_arn,
        token_file,
        session_name,
        duration_secs,
        sts_endpoint,
    } = fetch
    else {
        unreachable!("called for OIDC plans only");
    };
    let token =
        std::fs::read_to_string(token_file).map_err(|source| FetchError::OidcTokenUnreadable {
            path: token_file.clone(),
            source,
        })?;
    let form = [
        ("Action", ACTION),
        ("Format", "JSON"),
        ("Version", STS_API_VERSION),
        ("Timestamp", &crate::client::utc_timestamp()),
        ("RoleArn", role_arn),
        ("OIDCProviderArn", provider_arn),
        ("OIDCToken", token.trim()),
        ("RoleSessionName", session_name),
        ("DurationSeconds", &duration_secs.to_string()),
    ];
    let response = http
        .post(format!("{sts_endpoint}/"))
        .form(&form)
        .send()
        .await
        .map_err(|source| FetchError::StsUnreachable {
            action: ACTION,
            endpoint: sts_endpoint.clone(),
            source,
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    sts_keys(ACTION, sts_endpoint, status, &body)
}

/// Reads STS's answer: `Credentials` on success, the error envelope otherwise.
fn sts_keys(
    action: &'static str,
    endpoint: &str,
    status: u16,
    body: &str,
) -> Result<TemporaryKeys, FetchError> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if !(200..300).contains(&status) {
        let field = |n: &str| value[n].as_str().unwrap_or("-").to_string();
        return Err(FetchError::StsRejected {
            action,
            endpoint: endpoint.to_string(),
            status,
            code: field("Code"),
            message: field("Message"),
            request_id: field("RequestId"),
        });
    }
    serde_json::from_value(value["Credentials"].clone()).map_err(|_| FetchError::StsDecode {
        action,
        endpoint: endpoint.to_string(),
        body_start: body.chars().take(120).collect(),
    })
}

/// The instance metadata service: the role's credentials (IMDSv2 token when offered).
async fn from_metadata(
    http: &reqwest::Client,
    endpoint: &str,
    role: Option<&str>,
) -> Result<TemporaryKeys, FetchError> {
    let token = http
        .put(format!("{endpoint}/latest/api/token"))
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "300")
        .send()
        .await
        .ok()
        .filter(|r| r.status().is_success());
    let token = match token {
        Some(r) => r.text().await.ok(),
        None => None,
    };
    let get = |url: String| {
        let mut req = http.get(url);
        if let Some(t) = &token {
            req = req.header("X-aliyun-ecs-metadata-token", t.as_str());
        }
        req
    };
    let role = match role {
        Some(r) => r.to_string(),
        None => {
            let url = format!("{endpoint}{ROLE_PATH}");
            let body = metadata_text(get(url.clone()), &url).await?;
            body.lines().next().unwrap_or_default().trim().to_string()
        }
    };
    let url = format!("{endpoint}{ROLE_PATH}{role}");
    let body = metadata_text(get(url.clone()), &url).await?;
    serde_json::from_str(&body).map_err(|_| FetchError::MetadataDecode {
        url,
        body_start: body.chars().take(80).collect(),
    })
}

async fn metadata_text(req: reqwest::RequestBuilder, url: &str) -> Result<String, FetchError> {
    let unreachable = |source| FetchError::MetadataUnreachable {
        url: url.to_string(),
        source,
    };
    let response = req.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(FetchError::MetadataRefused {
            url: url.to_string(),
            status,
        });
    }
    response.text().await.map_err(unreachable)
}
