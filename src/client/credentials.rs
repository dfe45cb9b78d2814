//! Access keys and where they come from.
//!
//! The chain, first hit wins (issue 3):
//! 1. explicit keys (the spec);
//! 2. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (+ `ALIBABA_CLOUD_SECURITY_TOKEN`);
//! 3. `ALIYUN_ACCESS_KEY_ID` / `ALIYUN_ACCESS_KEY_SECRET` (the seed's variables);
//! 4. the aliyun CLI profile file `~/.aliyun/config.json`, profile from the spec, else
//!    `ALIBABA_CLOUD_PROFILE`, else the file's `current`.
//!
//! The environment is passed in as an [`Env`] so tests never mutate the process environment.
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `** redacted **`.

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

pub use crate::secret::Secret;

/// Where a credential was found; named in errors (e.g. `InvalidAccessKeyId.NotFound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Given explicitly (the spec's `access_key` / `secret_key`).
    Explicit,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` and friends.
    AlibabaCloudEnv,
    /// `ALIYUN_ACCESS_KEY_ID` and friends.
    AliyunEnv,
    /// A profile of the aliyun CLI configuration file.
    CliProfile { path: PathBuf, profile: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Explicit => f.write_str("the spec (explicit access key)"),
            CredentialSource::AlibabaCloudEnv => f.write_str(
                "environment ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            ),
            CredentialSource::AliyunEnv => {
                f.write_str("environment ALIYUN_ACCESS_KEY_ID / ALIYUN_ACCESS_KEY_SECRET")
            }
            CredentialSource::CliProfile { path, profile } => {
                write!(f, "aliyun CLI profile '{profile}' in {}", path.display())
            }
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

/// Credentials the caller (the spec) may give explicitly; all optional.
#[derive(Debug, Clone, Default)]
pub struct ExplicitCredentials {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    pub security_token: Option<Secret>,
    /// aliyun CLI profile name to use instead of `ALIBABA_CLOUD_PROFILE`.
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

/// Why no credentials could be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no Alibaba Cloud credentials found; tried, in order:\n{}\nSet access_key/secret_key in the spec, \
         export ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure`",
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
        "aliyun CLI profile '{profile}' in {path} has no access key (mode {mode}); bakerd supports AK and \
         StsToken profiles — pick another profile with ALIBABA_CLOUD_PROFILE"
    )]
    CliProfileUnusable {
        path: PathBuf,
        profile: String,
        mode: String,
    },
}

/// One profile of `~/.aliyun/config.json` (fields as the aliyun CLI writes them).
#[derive(Debug, Deserialize)]
struct CliProfile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: Secret,
    #[serde(default)]
    sts_token: Secret,
}

#[derive(Debug, Deserialize)]
struct CliConfig {
    #[serde(default)]
    current: String,
    #[serde(default)]
    profiles: Vec<CliProfile>,
}

/// Resolves credentials through the chain described in the module docs.
pub fn resolve(explicit: &ExplicitCredentials, env: &Env) -> Result<Credentials, CredentialsError> {
    let mut tried = Vec::new();
    if let Some(c) = from_explicit(explicit)? {
        return Ok(c);
    }
    tried.push("the spec (access_key / secret_key): not set".to_string());
    let env_sources = [
        (
            CredentialSource::AlibabaCloudEnv,
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            Some("ALIBABA_CLOUD_SECURITY_TOKEN"),
        ),
        (
            CredentialSource::AliyunEnv,
            "ALIYUN_ACCESS_KEY_ID",
            "ALIYUN_ACCESS_KEY_SECRET",
            None,
        ),
    ];
    for (source, id_var, secret_var, token_var) in env_sources {
        if let Some(c) = from_env(env, source, id_var, secret_var, token_var)? {
            return Ok(c);
        }
        tried.push(format!("environment {id_var} / {secret_var}: not set"));
    }
    match from_cli_profile(explicit, env)? {
        CliLookup::Found(c) => Ok(c),
        CliLookup::Missing(why) => {
            tried.push(why);
            Err(CredentialsError::NotFound { tried })
        }
    }
}

fn from_explicit(explicit: &ExplicitCredentials) -> Result<Option<Credentials>, CredentialsError> {
    match (&explicit.access_key_id, &explicit.access_key_secret) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::Incomplete {
            source_name: CredentialSource::Explicit.to_string(),
            missing: "secret_key",
        }),
        (None, Some(_)) => Err(CredentialsError::Incomplete {
            source_name: CredentialSource::Explicit.to_string(),
            missing: "access_key",
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
    token_var: Option<&str>,
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
            security_token: token_var.and_then(|v| env.get(v)).map(Secret::new),
            source,
        })),
    }
}

enum CliLookup {
    Found(Credentials),
    /// Why this source gave nothing (for the "every source tried" list).
    Missing(String),
}

fn cli_config_path(explicit: &ExplicitCredentials, env: &Env) -> Option<PathBuf> {
    explicit.cli_config_path.clone().or_else(|| {
        env.get("HOME")
            .map(|h| PathBuf::from(h).join(".aliyun/config.json"))
    })
}

fn from_cli_profile(
    explicit: &ExplicitCredentials,
    env: &Env,
) -> Result<CliLookup, CredentialsError> {
    let Some(path) = cli_config_path(explicit, env) else {
        return Ok(CliLookup::Missing(
            "aliyun CLI config ~/.aliyun/config.json: HOME is not set".into(),
        ));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CliLookup::Missing(format!(
                "aliyun CLI config {}: file not found",
                path.display()
            )))
        }
        Err(source) => return Err(CredentialsError::CliConfigUnreadable { path, source }),
    };
    let config: CliConfig =
        serde_json::from_str(&text).map_err(|source| CredentialsError::CliConfigInvalid {
            path: path.clone(),
            source,
        })?;
    let wanted = explicit
        .profile
        .clone()
        .or_else(|| env.get("ALIBABA_CLOUD_PROFILE").map(str::to_string))
        .unwrap_or_else(|| config.current.clone());
    let Some(profile) = config.profiles.into_iter().find(|p| p.name == wanted) else {
        return Ok(CliLookup::Missing(format!(
            "aliyun CLI config {}: no profile named '{wanted}'",
            path.display()
        )));
    };
    profile_credentials(path, profile).map(CliLookup::Found)
}

fn profile_credentials(path: PathBuf, p: CliProfile) -> Result<Credentials, CredentialsError> {
    let usable = matches!(p.mode.as_str(), "" | "AK" | "StsToken");
    if !usable || p.access_key_id.is_empty() || p.access_key_secret.expose().is_empty() {
        return Err(CredentialsError::CliProfileUnusable {
            path,
            profile: p.name,
            mode: p.mode,
        });
    }
    let token = (p.mode == "StsToken" && !p.sts_token.expose().is_empty()).then_some(p.sts_token);
    Ok(Credentials {
        access_key_id: p.access_key_id,
        access_key_secret: p.access_key_secret,
        security_token: token,
        source: CredentialSource::CliProfile {
            path,
            profile: p.name,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-s3cr3t-5f0e";

    fn no_home() -> Env {
        Env::from_pairs([("HOME", "/nonexistent-bakerd-home")])
    }

    #[test]
    fn secret_never_prints_itself() {
        let s = Secret::new(CANARY);
        assert_eq!(format!("{s:?}"), "** redacted **");
        assert_eq!(format!("{s}"), "** redacted **");
        assert_eq!(s.expose(), CANARY);
    }

    #[test]
    fn explicit_keys_win_over_every_other_source() {
        let explicit = ExplicitCredentials {
            access_key_id: Some("spec-id".into()),
            access_key_secret: Some(Secret::new(CANARY)),
            ..Default::default()
        };
        let env = Env::from_pairs([
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "a"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "b"),
        ]);
        let c = resolve(&explicit, &env).unwrap();
        assert_eq!(c.access_key_id, "spec-id");
        assert_eq!(c.source, CredentialSource::Explicit);
        assert!(!format!("{c:?}").contains(CANARY));
    }

    #[test]
    fn alibaba_cloud_env_comes_before_aliyun_env_and_carries_the_sts_token() {
        let env = Env::from_pairs([
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ali-id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ali-secret"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
            ("ALIYUN_ACCESS_KEY_ID", "yun-id"),
            ("ALIYUN_ACCESS_KEY_SECRET", "yun-secret"),
        ]);
        let c = resolve(&ExplicitCredentials::default(), &env).unwrap();
        assert_eq!(c.access_key_id, "ali-id");
        assert_eq!(c.source, CredentialSource::AlibabaCloudEnv);
        assert_eq!(c.security_token.unwrap().expose(), "tok");
    }

    #[test]
    fn aliyun_env_is_used_when_alibaba_cloud_env_is_absent() {
        let env = Env::from_pairs([
            ("ALIYUN_ACCESS_KEY_ID", "yun-id"),
            ("ALIYUN_ACCESS_KEY_SECRET", "yun-secret"),
            ("HOME", "/nonexistent"),
        ]);
        let c = resolve(&ExplicitCredentials::default(), &env).unwrap();
        assert_eq!(c.access_key_id, "yun-id");
        assert_eq!(c.source, CredentialSource::AliyunEnv);
        assert!(c.security_token.is_none());
    }

    #[test]
    fn half_a_key_pair_is_an_error_not_a_silent_fallthrough() {
        let env = Env::from_pairs([("ALIYUN_ACCESS_KEY_ID", "yun-id")]);
        let err = resolve(&ExplicitCredentials::default(), &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("ALIYUN_ACCESS_KEY_SECRET is missing"),
            "{err}"
        );
    }

    fn write_cli_config(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("config.json");
        let json = serde_json::json!({
            "current": "default",
            "profiles": [
                {"name": "default", "mode": "AK", "access_key_id": "cli-default",
                 "access_key_secret": CANARY},
                {"name": "ci", "mode": "StsToken", "access_key_id": "cli-ci",
                 "access_key_secret": "x", "sts_token": "sts"},
                {"name": "ram", "mode": "RamRoleArn"}
            ]
        });
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    #[test]
    fn cli_profile_is_chosen_by_explicit_name_then_env_then_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_cli_config(dir.path());
        let mut explicit = ExplicitCredentials {
            cli_config_path: Some(path.clone()),
            ..Default::default()
        };
        let c = resolve(&explicit, &Env::default()).unwrap();
        assert_eq!(c.access_key_id, "cli-default");
        let env = Env::from_pairs([("ALIBABA_CLOUD_PROFILE", "ci")]);
        let c = resolve(&explicit, &env).unwrap();
        assert_eq!(c.access_key_id, "cli-ci");
        assert_eq!(c.security_token.unwrap().expose(), "sts");
        explicit.profile = Some("default".into());
        let c = resolve(&explicit, &env).unwrap();
        assert_eq!(c.access_key_id, "cli-default");
        assert!(c.source.to_string().contains("profile 'default'"));
        explicit.profile = Some("ram".into());
        let err = resolve(&explicit, &env).unwrap_err();
        assert!(err.to_string().contains("RamRoleArn"), "{err}");
    }

    #[test]
    fn missing_credentials_error_lists_every_source_tried() {
        let err = resolve(&ExplicitCredentials::default(), &no_home()).unwrap_err();
        let text = err.to_string();
        for needle in [
            "the spec",
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIYUN_ACCESS_KEY_ID",
            "/nonexistent-bakerd-home/.aliyun/config.json: file not found",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let first = text.find("the spec").unwrap();
        let last = text.find(".aliyun/config.json").unwrap();
        assert!(first < last, "sources listed out of order:\n{text}");
    }
}
