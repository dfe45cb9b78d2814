//! Profiles of the aliyun CLI file (`~/.aliyun/config.json`), turned into a [`Plan`].
//!
//! Field names are the ones `aliyun configure` writes: `mode`, `access_key_id`,
//! `access_key_secret`, `sts_token`, `ram_role_arn`, `ram_session_name`, `expired_seconds`,
//! `source_profile`, `ram_role_name`, `oidc_provider_arn`, `oidc_token_file`, `sts_region`.

use super::provider::{Fetch, Plan};
use super::{
    CredentialSource, Credentials, CredentialsError, Env, ExplicitCredentials, Secret,
    METADATA_ENDPOINT_ENV, STS_ENDPOINT_ENV,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `source_profile` chains longer than this are refused (they are loops in practice).
const MAX_CHAIN: usize = 8;
/// Session name when the profile gives none (it shows in the cloud's audit trail).
const DEFAULT_SESSION_NAME: &str = "bakerd";
/// Lifetime asked of STS when the profile gives none.
const DEFAULT_DURATION_SECS: u64 = 3600;
/// The instance metadata service of ECS.
const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";

/// One profile, fields as the aliyun CLI writes them.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(default)]
struct CliProfile {
    name: String,
    mode: String,
    access_key_id: String,
    access_key_secret: Secret,
    sts_token: Secret,
    ram_role_arn: String,
    ram_session_name: String,
    expired_seconds: u64,
    source_profile: String,
    ram_role_name: String,
    oidc_provider_arn: String,
    oidc_token_file: String,
    sts_region: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct CliConfig {
    current: String,
    profiles: Vec<CliProfile>,
}

fn config_path(explicit: &ExplicitCredentials, env: &Env) -> Option<PathBuf> {
    explicit.cli_config_path.clone().or_else(|| {
        env.get("HOME")
            .map(|h| PathBuf::from(h).join(".aliyun/config.json"))
    })
}

/// Reads the file; `Ok(None)` when it does not exist.
fn read(path: &Path) -> Result<Option<CliConfig>, CredentialsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::CliConfigUnreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| CredentialsError::CliConfigInvalid {
            path: path.to_path_buf(),
            source,
        })
}

/// A profile named explicitly (by the spec or `ALIBABA_CLOUD_PROFILE`): it must exist.
pub(super) fn named(
    explicit: &ExplicitCredentials,
    env: &Env,
    name: &str,
    named_by: &'static str,
) -> Result<Plan, CredentialsError> {
    let path = config_path(explicit, env).unwrap_or_else(|| PathBuf::from("~/.aliyun/config.json"));
    let Some(config) = read(&path)? else {
        return Err(CredentialsError::CliConfigMissing {
            path,
            profile: name.to_string(),
            named_by,
        });
    };
    let ctx = Ctx {
        path: &path,
        config: &config,
        env,
        named_by,
    };
    ctx.plan(name, 0)
}

/// The file's `current` profile (the chain's last source); `Ok(Err(why))` when there is none.
pub(super) fn current(
    explicit: &ExplicitCredentials,
    env: &Env,
) -> Result<Result<Plan, String>, CredentialsError> {
    let Some(path) = config_path(explicit, env) else {
        return Ok(Err(
            "aliyun CLI config ~/.aliyun/config.json: HOME is not set".into(),
        ));
    };
    let Some(config) = read(&path)? else {
        return Ok(Err(format!(
            "aliyun CLI config {}: file not found",
            path.display()
        )));
    };
    if !config.profiles.iter().any(|p| p.name == config.current) {
        return Ok(Err(format!(
            "aliyun CLI config {}: no current profile ('{}')",
            path.display(),
            config.current
        )));
    }
    let ctx = Ctx {
        path: &path,
        config: &config,
        env,
        named_by: "the file's `current`",
    };
    ctx.plan(&config.current, 0).map(Ok)
}

/// What every profile lookup needs.
struct Ctx<'a> {
    path: &'a Path,
    config: &'a CliConfig,
    env: &'a Env,
    named_by: &'static str,
}

impl Ctx<'_> {
    fn find(&self, name: &str) -> Result<&CliProfile, CredentialsError> {
        self.config
            .profiles
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| CredentialsError::ProfileNotFound {
                path: self.path.to_path_buf(),
                profile: name.to_string(),
                named_by: self.named_by,
                known: self
                    .config
                    .profiles
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn source(&self, p: &CliProfile) -> CredentialSource {
        CredentialSource::CliProfile {
            path: self.path.to_path_buf(),
            profile: p.name.clone(),
            mode: mode_of(p).to_string(),
            named_by: self.named_by,
        }
    }

    fn require<'p>(
        &self,
        p: &'p CliProfile,
        field: &'static str,
        value: &'p str,
    ) -> Result<&'p str, CredentialsError> {
        if value.is_empty() {
            return Err(CredentialsError::ProfileIncomplete {
                path: self.path.to_path_buf(),
                profile: p.name.clone(),
                mode: mode_of(p).to_string(),
                field,
            });
        }
        Ok(value)
    }

    /// The plan for profile `name`; `depth` counts `source_profile` hops.
    fn plan(&self, name: &str, depth: usize) -> Result<Plan, CredentialsError> {
        if depth > MAX_CHAIN {
            return Err(CredentialsError::ProfileChainTooDeep {
                path: self.path.to_path_buf(),
                profile: name.to_string(),
            });
        }
        let p = self.find(name)?;
        let source = self.source(p);
        let fetch = match mode_of(p) {
            "AK" | "StsToken" => return self.access_key(p).map(Plan::Static),
            "RamRoleArn" => self.assume_role(p, Plan::Static(self.access_key(p)?))?,
            "ChainableRamRoleArn" => {
                let base = self.require(p, "source_profile", &p.source_profile)?;
                let base = self.plan(base, depth + 1)?;
                self.assume_role(p, base)?
            }
            "EcsRamRole" => Fetch::EcsRamRole {
                role: Some(p.ram_role_name.clone()).filter(|r| !r.is_empty()),
                metadata_endpoint: self
                    .env
                    .get(METADATA_ENDPOINT_ENV)
                    .unwrap_or(DEFAULT_METADATA_ENDPOINT)
                    .trim_end_matches('/')
                    .to_string(),
            },
            "OIDC" => Fetch::Oidc {
                role_arn: self
                    .require(p, "ram_role_arn", &p.ram_role_arn)?
                    .to_string(),
                provider_arn: self
                    .require(p, "oidc_provider_arn", &p.oidc_provider_arn)?
                    .to_string(),
                token_file: PathBuf::from(self.require(
                    p,
                    "oidc_token_file",
                    &p.oidc_token_file,
                )?),
                session_name: session_name(p),
                duration_secs: duration(p),
                sts_endpoint: self.sts_endpoint(p),
            },
            other => {
                return Err(CredentialsError::ProfileModeUnsupported {
                    path: self.path.to_path_buf(),
                    profile: p.name.clone(),
                    mode: other.to_string(),
                })
            }
        };
        Ok(Plan::Fetch {
            fetch: Box::new(fetch),
            source,
        })
    }

    /// An `AK` / `StsToken` profile's keys (also the base keys of a `RamRoleArn` profile).
    fn access_key(&self, p: &CliProfile) -> Result<Credentials, CredentialsError> {
        let id = self.require(p, "access_key_id", &p.access_key_id)?;
        self.require(p, "access_key_secret", p.access_key_secret.expose())?;
        let token = Some(p.sts_token.clone()).filter(|t| !t.expose().is_empty());
        if mode_of(p) == "StsToken" && token.is_none() {
            self.require(p, "sts_token", "")?;
        }
        Ok(Credentials {
            access_key_id: id.to_string(),
            access_key_secret: p.access_key_secret.clone(),
            security_token: token,
            source: self.source(p),
        })
    }

    fn assume_role(&self, p: &CliProfile, base: Plan) -> Result<Fetch, CredentialsError> {
        Ok(Fetch::AssumeRole {
            base: Box::new(base),
            role_arn: self
                .require(p, "ram_role_arn", &p.ram_role_arn)?
                .to_string(),
            session_name: session_name(p),
            duration_secs: duration(p),
            sts_endpoint: self.sts_endpoint(p),
        })
    }

    /// `BAKERD_STS_ENDPOINT`, else the profile's `sts_region`, else the central endpoint.
    fn sts_endpoint(&self, p: &CliProfile) -> String {
        if let Some(url) = self.env.get(STS_ENDPOINT_ENV) {
            return url.trim_end_matches('/').to_string();
        }
        match p.sts_region.as_str() {
            "" => "https://sts.aliyuncs.com".to_string(),
            region => format!("https://sts.{region}.aliyuncs.com"),
        }
    }
}

/// An empty mode is what old CLI versions wrote for access keys.
fn mode_of(p: &CliProfile) -> &str {
    if p.mode.is_empty() {
        "AK"
    } else {
        &p.mode
    }
}

fn session_name(p: &CliProfile) -> String {
    if p.ram_session_name.is_empty() {
        DEFAULT_SESSION_NAME.to_string()
    } else {
        p.ram_session_name.clone()
    }
}

fn duration(p: &CliProfile) -> u64 {
    if p.expired_seconds == 0 {
        DEFAULT_DURATION_SECS
    } else {
        p.expired_seconds
    }
}
