//! Access keys and where they come from.
//!
//! One documented order, first hit wins (README "Credentials"):
//! 1. **the spec**: `credentials.access_key_id` with `access_key_secret_env`, or
//!    `credentials.profile` (+ `config_file`). When the spec names a source, only that source is
//!    used: a missing profile or an unset variable is an error, never a silent fall-through to
//!    keys that happen to be in the environment (that would build in the wrong account);
//! 2. `ALIBABA_CLOUD_PROFILE`: a profile named explicitly in the environment;
//! 3. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (+ `ALIBABA_CLOUD_SECURITY_TOKEN`);
//! 4. `ALICLOUD_ACCESS_KEY` / `ALICLOUD_SECRET_KEY` (+ `ALICLOUD_SECURITY_TOKEN`): Terraform's and
//!    Packer's names;
//! 5. `ALIYUN_ACCESS_KEY_ID` / `ALIYUN_ACCESS_KEY_SECRET` (the seed plugin's names);
//! 6. the `current` profile of the aliyun CLI file `~/.aliyun/config.json`.
//!
//! Profiles may be `AK`, `StsToken`, `RamRoleArn`, `ChainableRamRoleArn`, `EcsRamRole` or `OIDC`;
//! the last four are fetched lazily by [`provider::CredentialProvider`] (STS `AssumeRole`,
//! `AssumeRoleWithOIDC`, the instance metadata service).
//!
//! The environment is passed in as an [`Env`] so tests never mutate the process environment.
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `** redacted **`.

mod profile;
pub mod provider;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

pub use crate::secret::Secret;
pub use provider::{CredentialProvider, Fetch, Plan};

/// Environment variable pointing at the STS endpoint (`bakerd sim` serves STS too).
pub const STS_ENDPOINT_ENV: &str = "BAKERD_STS_ENDPOINT";
/// Environment variable pointing at the instance metadata service (default `http://100.100.100.200`).
pub const METADATA_ENDPOINT_ENV: &str = "BAKERD_METADATA_ENDPOINT";

/// Where a credential was found; shown by `bakerd show` and named in errors. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The spec's `credentials.access_key_id` with its secret from `secret_from`.
    Explicit,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` and friends.
    AlibabaCloudEnv,
    /// `ALICLOUD_ACCESS_KEY` and friends (Terraform, Packer).
    AlicloudEnv,
    /// `ALIYUN_ACCESS_KEY_ID` and friends.
    AliyunEnv,
    /// A profile of the aliyun CLI configuration file.
    CliProfile {
        path: PathBuf,
        profile: String,
        /// The profile's `mode` (`AK`, `RamRoleArn`, …).
        mode: String,
        /// Who named the profile: "the spec", "ALIBABA_CLOUD_PROFILE" or "the file's current".
        named_by: &'static str,
    },
}

impl CredentialSource {
    /// A short stable name for `--json` (`spec`, `env:ALIBABA_CLOUD`, `profile`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSource::Explicit => "spec",
            CredentialSource::AlibabaCloudEnv => "env:ALIBABA_CLOUD_ACCESS_KEY_ID",
            CredentialSource::AlicloudEnv => "env:ALICLOUD_ACCESS_KEY",
            CredentialSource::AliyunEnv => "env:ALIYUN_ACCESS_KEY_ID",
            CredentialSource::CliProfile { .. } => "cli-profile",
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Explicit => f.write_str("the spec (credentials.access_key_id)"),
            CredentialSource::AlibabaCloudEnv => f.write_str(
                "environment ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            ),
            CredentialSource::AlicloudEnv => {
                f.write_str("environment ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY")
            }
            CredentialSource::AliyunEnv => {
                f.write_str("environment ALIYUN_ACCESS_KEY_ID / ALIYUN_ACCESS_KEY_SECRET")
            }
            CredentialSource::CliProfile {
                path,
                profile,
                mode,
                named_by,
            } => write!(
                f,
                "aliyun CLI profile '{profile}' (mode {mode}) in {}, named by {named_by}",
                path.display()
            ),
        }
    }
}

/// An access key pair, optionally with an STS token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The AccessKeyId; not secret, it is sent in every request.
    pub access_key_id: String,
    /// The AccessKeySecret; only the signer sees it.
    pub access_key_secret: Secret,
    /// STS token for temporary credentials (`SecurityToken` / `x-acs-security-token`).
    pub security_token: Option<Secret>,
    /// Which source of the chain produced these keys.
    pub source: CredentialSource,
}

/// Credentials the caller (the spec) gives explicitly; all optional.
#[derive(Debug, Clone, Default)]
pub struct ExplicitCredentials {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    /// The environment variable the secret was read from (named when it is unset).
    pub access_key_secret_var: Option<String>,
    pub security_token: Option<Secret>,
    /// aliyun CLI profile named by the spec; wins over every other source.
    pub profile: Option<String>,
    /// aliyun CLI config file instead of `~/.aliyun/config.json`.
    pub cli_config_path: Option<PathBuf>,
}

/// The environment as seen by the credential chain; injectable for tests.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    /// Names only: the environment holds secrets (`*_ACCESS_KEY_SECRET`, tokens).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// A snapshot of the process environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment holding exactly `pairs` (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A non-empty variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Why no credentials could be resolved or fetched.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no Alibaba Cloud credentials found; tried, in order:\n{}\nSet `credentials.profile` (or \
         `credentials.access_key_id` with `credentials.access_key_secret_env`) in the spec, export \
         ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure`",
        .tried.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n")
    )]
    NotFound { tried: Vec<String> },
    #[error(
        "{source_name} sets only half of a key pair ({missing} is missing); set both or neither"
    )]
    Incomplete {
        source_name: String,
        missing: &'static str,
    },
    #[error(
        "the spec's credentials.access_key_secret_env names environment variable {var}, which is \
         not set (or empty); export {var}=<AccessKeySecret>"
    )]
    SecretVarUnset { var: String },
    #[error("cannot read aliyun CLI config {path}: {source}")]
    CliConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("aliyun CLI config {path} is not valid JSON: {source}")]
    CliConfigInvalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "aliyun CLI profile '{profile}', named by {named_by}, is not in {path} (profiles there: \
         {known}); fix the name or run `aliyun configure --profile {profile}`"
    )]
    ProfileNotFound {
        path: PathBuf,
        profile: String,
        named_by: &'static str,
        known: String,
    },
    #[error(
        "aliyun CLI config {path} (for profile '{profile}', named by {named_by}) does not exist; \
         run `aliyun configure --profile {profile}` or set credentials.config_file in the spec"
    )]
    CliConfigMissing {
        path: PathBuf,
        profile: String,
        named_by: &'static str,
    },
    #[error(
        "aliyun CLI profile '{profile}' in {path} (mode {mode}) lacks `{field}`; run `aliyun \
         configure --profile {profile} --mode {mode}`"
    )]
    ProfileIncomplete {
        path: PathBuf,
        profile: String,
        mode: String,
        field: &'static str,
    },
    #[error(
        "aliyun CLI profile '{profile}' in {path} has mode {mode}, which bakerd does not support \
         (AK, StsToken, RamRoleArn, ChainableRamRoleArn, EcsRamRole, OIDC); pick another profile \
         with credentials.profile"
    )]
    ProfileModeUnsupported {
        path: PathBuf,
        profile: String,
        mode: String,
    },
    #[error(
        "aliyun CLI profile '{profile}' in {path}: source_profile chain is a loop or deeper than 8"
    )]
    ProfileChainTooDeep { path: PathBuf, profile: String },
    /// Boxed: STS errors carry several strings, and every client error carries this type.
    #[error(transparent)]
    Fetch(Box<provider::FetchError>),
}

impl From<provider::FetchError> for CredentialsError {
    fn from(e: provider::FetchError) -> Self {
        CredentialsError::Fetch(Box::new(e))
    }
}

/// Resolves the chain described in the module docs into a [`Plan`]; fetching (STS, metadata)
/// happens later, on first use, in [`CredentialProvider`].
pub fn resolve(explicit: &ExplicitCredentials, env: &Env) -> Result<Plan, CredentialsError> {
    if let Some(c) = from_explicit(explicit)? {
        return Ok(Plan::Static(c));
    }
    if let Some(name) = &explicit.profile {
        return profile::named(explicit, env, name, "the spec");
    }
    if let Some(name) = env.get("ALIBABA_CLOUD_PROFILE") {
        return profile::named(explicit, env, name, "ALIBABA_CLOUD_PROFILE");
    }
    let mut tried = vec![
        "the spec (credentials): not set".to_string(),
        "ALIBABA_CLOUD_PROFILE: not set".to_string(),
    ];
    for (source, id_var, secret_var, token_var) in ENV_SOURCES {
        if let Some(c) = from_env(env, source, id_var, secret_var, token_var)? {
            return Ok(Plan::Static(c));
        }
        tried.push(format!("environment {id_var} / {secret_var}: not set"));
    }
    match profile::current(explicit, env)? {
        Ok(plan) => Ok(plan),
        Err(why) => {
            tried.push(why);
            Err(CredentialsError::NotFound { tried })
        }
    }
}

/// The environment key pairs, in the chain's order.
const ENV_SOURCES: [(CredentialSource, &str, &str, &str); 3] = [
    (
        CredentialSource::AlibabaCloudEnv,
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ),
    (
        CredentialSource::AlicloudEnv,
        "ALICLOUD_ACCESS_KEY",
        "ALICLOUD_SECRET_KEY",
        "ALICLOUD_SECURITY_TOKEN",
    ),
    (
        CredentialSource::AliyunEnv,
        "ALIYUN_ACCESS_KEY_ID",
        "ALIYUN_ACCESS_KEY_SECRET",
        "ALIYUN_SECURITY_TOKEN",
    ),
];

fn from_explicit(explicit: &ExplicitCredentials) -> Result<Option<Credentials>, CredentialsError> {
    match (&explicit.access_key_id, &explicit.access_key_secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(match &explicit.access_key_secret_var {
            Some(var) => CredentialsError::SecretVarUnset { var: var.clone() },
            None => CredentialsError::Incomplete {
                source_name: CredentialSource::Explicit.to_string(),
                missing: "credentials.access_key_secret_env",
            },
        }),
        (None, Some(_)) => Err(CredentialsError::Incomplete {
            source_name: CredentialSource::Explicit.to_string(),
            missing: "credentials.access_key_id",
        }),
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.clone(),
            access_key_secret: secret.clone(),
            security_token: explicit.security_token.clone(),
            source: CredentialSource::Explicit,
        })),
    }
}

fn from_env(
    env: &Env,
    source: CredentialSource,
    id_var: &'static str,
    secret_var: &'static str,
    token_var: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    match (env.get(id_var), env.get(secret_var)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::Incomplete {
            source_name: source.to_string(),
            missing: secret_var,
        }),
        (None, Some(_)) => Err(CredentialsError::Incomplete {
            source_name: source.to_string(),
            missing: id_var,
        }),
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.to_string(),
            access_key_secret: Secret::new(secret),
            security_token: env.get(token_var).map(Secret::new),
            source,
        })),
    }
}

#[cfg(test)]
mod tests;
