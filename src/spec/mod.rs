//! The bakerd spec (YAML): its types, validation with located errors, canonical hash, and rendering.
//! (Packer template conversion lives in `packer*` files of this module.)
//!
//! Loading runs, in order, before anything touches the cloud:
//! 1. a size limit ([`MAX_SPEC_BYTES`]);
//! 2. an event pre-pass ([`locate`]) that enforces the nesting ([`MAX_NESTING_DEPTH`]) and alias
//!    expansion ([`MAX_EXPANDED_NODES`]) limits and records the line of every field path;
//! 3. typed deserialization (`serde_yaml` + `serde_path_to_error`): unknown fields (with a suggestion),
//!    wrong types, missing fields;
//! 4. semantic checks ([`validate`]): ECS naming rules, one-of choices, local files that must exist.
//!
//! Every error is a [`SpecError`] naming the file, line, column and field path.
//! `docs/spec.md` is the field-by-field reference for users.

mod duration;
mod error;
mod frozen;
mod hash;
mod locate;
mod model;
pub mod packer;
mod provisioner;
mod scalars;
pub mod source;
mod template;
mod validate;
pub mod vars;
mod verify;

pub use error::{Location, SourcePos, SpecError};
pub use frozen::FROZEN_FORMAT;
pub use hash::{FileUse, ReferencedFile};
pub use model::{
    Credentials, DataDisk, ImageDataDisks, ImageSpec, InstanceSpec, OnFailure, Secret,
    SecretSource, SignatureVersion, SourceImage, SshAddress, SshSpec, SystemDisk, Timeouts,
    DEFAULT_PUBLIC_BANDWIDTH_MBPS, DEFAULT_VPC_CIDR, DEFAULT_VSWITCH_CIDR,
};
pub use provisioner::{
    shell_quote, Direction, FileProvisioner, Provisioner, ShellProvisioner, ShellSource,
    DEFAULT_EXECUTE_COMMAND,
};
pub use source::{SourceError, SourceKind, SpecSource};
pub use template::render as render_template;
pub use verify::{Communicator, VerifyCheck, VerifyInstance, VerifyOnFailure, VerifySpec};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Specs larger than this (1 MiB) are refused unread; real specs are a few KiB.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// Collections nested deeper than this are refused; the spec's own depth is about 6.
pub const MAX_NESTING_DEPTH: usize = 64;
/// Node count (aliases counted at every use) above which a spec is refused as an alias bomb.
pub const MAX_EXPANDED_NODES: u64 = 100_000;

/// Environment variable that overrides the ECS endpoint when the spec has no `endpoint`.
pub const ENDPOINT_ENV: &str = "BAKERD_ECS_ENDPOINT";

/// Label used in errors for specs not read from a file.
const INLINE_LABEL: &str = "<spec>";

/// A validated bakerd spec: which image should exist and how to build it.
///
/// Invariant: a `Spec` obtained from [`Spec::from_yaml_str`] or [`Spec::load`] passed every check.
/// Defaults are filled in, so two specs that mean the same compare (and hash) equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Region the build runs in and the image is created in (`cn-hangzhou`).
    pub region: String,
    /// ECS API endpoint (`http://127.0.0.1:8086` for `bakerd sim`). Unset: `BAKERD_ECS_ENDPOINT`, else
    /// the real cloud's regional endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// VPC API endpoint (VPCs, vSwitches, EIPs). Unset: `BAKERD_VPC_ENDPOINT`, else `endpoint` /
    /// `BAKERD_ECS_ENDPOINT` when that is not an Alibaba Cloud host (one URL serves both in
    /// `bakerd sim`), else the region's VPC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint: Option<String>,
    /// Where the access key comes from. Unset: the client's default chain (environment, CLI profile).
    #[serde(default, skip_serializing_if = "is_default_credentials")]
    pub credentials: Credentials,
    /// Force a signature version. Unset: the client's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureVersion>,
    /// The image the build instance starts from.
    pub source_image: SourceImage,
    /// The build instance.
    pub instance: InstanceSpec,
    /// How bakerd runs commands and copies files on the instances: `ssh` (default) or
    /// `cloud_assistant` (no key pair, no inbound rule, no address).
    #[serde(default, skip_serializing_if = "Communicator::is_ssh")]
    pub communicator: Communicator,
    /// How bakerd connects to the build instance.
    #[serde(default)]
    pub ssh: SshSpec,
    /// Steps run on the instance, in order; each is checkpointed, so a resumed build skips finished ones.
    #[serde(
        default,
        with = "serde_yaml::with::singleton_map_recursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub provisioners: Vec<Provisioner>,
    /// The image to create.
    pub image: ImageSpec,
    /// Checks run on a fresh instance started from the image before it is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    /// Stop the instance before the snapshot, so the file system is consistent. Default true; turn off
    /// only when the image tolerates a crash-consistent snapshot and speed matters.
    #[serde(default = "default_true")]
    pub stop_before_snapshot: bool,
    /// Delete (`cleanup`, default) or keep (`keep`, for debugging) the build's resources on failure.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// How long to wait for the instance, the snapshot and the image.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Directory that relative paths (scripts, uploads) are resolved against: the spec file's directory.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_true() -> bool {
    true
}

fn is_default_credentials(credentials: &Credentials) -> bool {
    *credentials == Credentials::Default
}

/// Something legal but worth telling the user about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecWarning {
    /// Field path the warning is about.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for SpecWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "warning: `{}`: {}", self.path, self.message)
    }
}

impl Spec {
    /// Parses and validates `text`; relative paths in it are resolved against `base_dir`.
    pub fn from_yaml_str(text: &str, base_dir: impl AsRef<Path>) -> Result<Spec, SpecError> {
        parse(text, base_dir.as_ref(), INLINE_LABEL)
    }

    /// Reads, parses and validates the spec file at `path`; relative paths resolve against its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let read_error = |source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_SPEC_BYTES as u64 {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            return Err(SpecError::TooLarge {
                file: label,
                size,
                limit: MAX_SPEC_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        parse(&text, &base_dir, &label)
    }

    /// The spec as YAML, defaults written out; parsing it back gives an equal spec (for `bakerd convert`
    /// and for freezing the spec in a build's state).
    pub fn to_yaml(&self) -> String {
        // Serializing plain structs, strings and maps to YAML cannot fail.
        serde_yaml::to_string(self).expect("spec serializes to YAML")
    }

    /// The spec as the reconciler stores it in a build's state: JSON, **without any inline secret**
    /// (removed, with `credentials_withheld: true`), with `base_dir` made absolute. See [`frozen`].
    ///
    /// Guarantees: no inline access key secret appears anywhere in the value;
    /// `Spec::from_frozen(&spec.frozen())` equals `spec` except that withheld credentials become
    /// [`Credentials::Default`] and `base_dir` is absolute.
    pub fn frozen(&self) -> serde_json::Value {
        frozen::freeze(self)
    }

    /// Reads back a [`Spec::frozen`] value. Withheld credentials come back as [`Credentials::Default`]
    /// (the environment chain); when [`Spec::frozen_withholds_credentials`] says so, the reconciler
    /// should load the original spec file again and use its `credentials`.
    ///
    /// Assumptions: the value was produced by [`Spec::frozen`] from a validated spec, so the semantic
    /// checks are not repeated (scripts are read, and fail clearly, when used).
    pub fn from_frozen(frozen: &serde_json::Value) -> Result<Spec, SpecError> {
        frozen::thaw(frozen)
    }

    /// Whether [`Spec::frozen`] removed an inline secret from this frozen value.
    pub fn frozen_withholds_credentials(frozen: &serde_json::Value) -> bool {
        frozen::withheld(frozen)
    }

    /// The canonical JSON form the hash is computed from (see [`hash`] for what is included).
    /// Reads every referenced script and upload.
    pub fn canonical_json(&self) -> Result<String, SpecError> {
        hash::canonical_json(self)
    }

    /// SHA-256 hex of [`Spec::canonical_json`]: equal for specs that build the same image, different when a
    /// field that shapes the image or the contents of a referenced file changes.
    pub fn hash(&self) -> Result<String, SpecError> {
        let canonical = self.canonical_json()?;
        Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
    }

    /// The hash of what the image holds: [`Spec::hash`] without where the image is distributed
    /// (`image.copy_regions`, `image.share_accounts`). Images carry it, so a spec whose only
    /// change is its distribution copies or shares the existing image instead of rebuilding.
    pub fn content_hash(&self) -> Result<String, SpecError> {
        let mut content = self.clone();
        content.image.copy_regions.clear();
        content.image.share_accounts.clear();
        content.hash()
    }

    /// Every local file and directory the spec names (scripts, upload sources), in document order.
    pub fn referenced_files(&self) -> Vec<ReferencedFile> {
        hash::referenced_files(self)
    }

    /// `written` resolved against the spec's directory (absolute paths are kept).
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        self.base_dir.join(written)
    }

    /// The ECS endpoint to use: the spec's `endpoint`, else `env_endpoint` (the value of
    /// [`ENDPOINT_ENV`], passed in to keep this pure), else `None` for the real cloud.
    pub fn effective_endpoint(&self, env_endpoint: Option<&str>) -> Option<String> {
        let env = env_endpoint.filter(|value| !value.trim().is_empty());
        self.endpoint.as_deref().or(env).map(str::to_string)
    }

    /// Outbound bandwidth for the instance: as given, else enough for a public IP when SSH uses one.
    /// None with `ssh.address: eip`: the bandwidth is the EIP's ([`Spec::eip_bandwidth`]).
    pub fn internet_max_bandwidth_out(&self) -> u32 {
        match (self.instance.internet_max_bandwidth_out, self.ssh.address) {
            (_, SshAddress::Eip) => 0,
            (Some(mbps), _) => mbps,
            (None, SshAddress::Public) => DEFAULT_PUBLIC_BANDWIDTH_MBPS,
            (None, SshAddress::Private) => 0,
        }
    }

    /// The EIP's bandwidth with `ssh.address: eip`: `instance.internet_max_bandwidth_out`, else
    /// the default for a public address.
    pub fn eip_bandwidth(&self) -> u32 {
        self.instance
            .internet_max_bandwidth_out
            .unwrap_or(DEFAULT_PUBLIC_BANDWIDTH_MBPS)
    }

    /// The image name for a build started at `unix_seconds` (`{{timestamp}}` rendered).
    pub fn image_name_at(&self, unix_seconds: u64) -> String {
        template::render(&self.image.name, unix_seconds)
    }

    /// The image description for a build started at `unix_seconds`.
    pub fn image_description_at(&self, unix_seconds: u64) -> Option<String> {
        self.image
            .description
            .as_deref()
            .map(|d| template::render(d, unix_seconds))
    }

    /// Legal but risky choices, for the CLI to print before building.
    pub fn warnings(&self) -> Vec<SpecWarning> {
        let mut warnings = Vec::new();
        if let Credentials::AccessKey {
            secret: SecretSource::Inline(_),
            ..
        } = &self.credentials
        {
            warnings.push(SpecWarning {
                path: "credentials.access_key_secret".into(),
                message: "the access key secret is written in the spec; anyone who can read the spec can use \
                          it. Use `access_key_secret_env` or `profile` for real keys"
                    .into(),
            });
        }
        warnings
    }
}

fn parse(text: &str, base_dir: &Path, label: &str) -> Result<Spec, SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            file: label.into(),
            size: text.len(),
            limit: MAX_SPEC_BYTES,
        });
    }
    let at = |location| SourcePos {
        file: label.to_string(),
        location: Some(location),
    };
    let index =
        locate::scan(text, MAX_NESTING_DEPTH, MAX_EXPANDED_NODES).map_err(
            |refusal| match refusal {
                locate::ScanRefusal::TooDeep(l) => SpecError::TooDeep {
                    at: at(l),
                    limit: MAX_NESTING_DEPTH,
                },
                locate::ScanRefusal::TooManyNodes(l) => SpecError::TooManyNodes {
                    at: at(l),
                    limit: MAX_EXPANDED_NODES,
                },
                locate::ScanRefusal::Syntax(l, message) if message.contains("recursion limit") => {
                    SpecError::TooDeep {
                        at: at(l),
                        limit: MAX_NESTING_DEPTH,
                    }
                }
                locate::ScanRefusal::Syntax(l, message) => SpecError::Syntax {
                    at: at(l),
                    message: format!("YAML syntax: {message}"),
                },
            },
        )?;
    if index.node("").is_none() {
        let message = "the spec is empty; see docs/spec.md for the fields".to_string();
        return Err(SpecError::Syntax {
            at: SourcePos {
                file: label.into(),
                location: None,
            },
            message,
        });
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let mut spec: Spec = serde_path_to_error::deserialize(deserializer)
        .map_err(|error| deserialize_error(error, &index, label))?;
    spec.base_dir = base_dir.to_path_buf();
    check_scalar_types(&spec, &index, label)?;
    validate::check(&spec).map_err(|problem| problem_error(problem, &index, label))?;
    Ok(spec)
}

/// A string field written as an unquoted null, boolean or number is an error (see [`scalars`]).
fn check_scalar_types(
    spec: &Spec,
    index: &locate::LocationIndex,
    label: &str,
) -> Result<(), SpecError> {
    let Ok(value) = serde_json::to_value(spec) else {
        return Ok(());
    };
    let Some(coerced) = scalars::first_coerced(&value, &|path| index.plain_scalar(path)) else {
        return Ok(());
    };
    Err(SpecError::Invalid {
        at: SourcePos {
            file: label.to_string(),
            location: index.key_or_node(&coerced.path),
        },
        message: coerced.message(),
        path: coerced.path,
    })
}

/// Turns a serde error into a [`SpecError`] with the field path and the best location known.
fn deserialize_error(
    error: serde_path_to_error::Error<serde_yaml::Error>,
    index: &locate::LocationIndex,
    label: &str,
) -> SpecError {
    let path = normalize_path(&error.path().to_string());
    let inner = error.into_inner();
    let yaml_location = inner.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    let message = scalars::in_words(&bare_message(&inner.to_string(), &path));
    let pos = |location: Option<Location>| SourcePos {
        file: label.to_string(),
        location,
    };
    let locate = |p: &str| {
        index
            .key_or_node(p)
            .or(yaml_location)
            .or_else(|| index.nearest(p))
    };

    if let Some(unknown) = unknown_name(&message) {
        let suggestion = error::suggest(&unknown.name, unknown.expected.iter().map(String::as_str));
        let is_key = last_segment(&path) == unknown.name;
        if unknown.is_field || is_key {
            // serde_path_to_error's path already ends with the unknown key.
            let full = if is_key {
                path.clone()
            } else {
                join(&path, &unknown.name)
            };
            let expected = unknown.expected;
            return SpecError::UnknownField {
                at: pos(locate(&full)),
                path: full,
                suggestion,
                expected,
            };
        }
        let message = match suggestion {
            Some(best) => format!("{message} — did you mean `{best}`?"),
            None => message,
        };
        return SpecError::Invalid {
            at: pos(locate(&path)),
            path,
            message,
        };
    }
    if message.starts_with("EOF while parsing") || message.contains("more than one document") {
        return SpecError::Syntax {
            at: pos(yaml_location),
            message,
        };
    }
    let message = message.replacen("missing field", "missing required field", 1);
    let shown = if path.is_empty() {
        ".".to_string()
    } else {
        path.clone()
    };
    SpecError::Invalid {
        at: pos(locate(&path)),
        path: shown,
        message,
    }
}

/// serde_path_to_error writes `.` for the root and `?` for a segment it could not name.
fn normalize_path(path: &str) -> String {
    let path = path.trim_end_matches(".?").trim_end_matches('?');
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn last_segment(path: &str) -> &str {
    match locate::parent_path(path) {
        Some(parent) if !parent.is_empty() => path[parent.len()..].trim_start_matches('.'),
        _ => path,
    }
}

/// serde_yaml's message without its own ` at line L column C` suffix and `path: ` prefix (we add both).
/// serde_yaml's path can stop short of ours (it does not count enum variants), so any ancestor is tried.
fn bare_message(message: &str, path: &str) -> String {
    let mut message = match message.rfind(" at line ") {
        Some(cut) if message[cut..].contains(" column ") => &message[..cut],
        _ => message,
    };
    let mut candidate = Some(path);
    while let Some(prefix) = candidate.filter(|p| !p.is_empty()) {
        if let Some(rest) = message
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(": "))
        {
            message = rest;
            break;
        }
        candidate = locate::parent_path(prefix);
    }
    message.to_string()
}

/// A name serde did not know: `unknown field `x`, expected one of `a`, `b`` or `unknown variant ...`.
struct UnknownName {
    name: String,
    expected: Vec<String>,
    /// A struct field (always a key); a variant may be a key (provisioner kind) or a value.
    is_field: bool,
}

fn unknown_name(message: &str) -> Option<UnknownName> {
    let (rest, is_field) = match message.strip_prefix("unknown field ") {
        Some(rest) => (rest, true),
        None => (message.strip_prefix("unknown variant ")?, false),
    };
    let mut quoted = rest.split('`').skip(1).step_by(2).map(str::to_string);
    let name = quoted.next()?;
    Some(UnknownName {
        name,
        expected: quoted.collect(),
        is_field,
    })
}

fn problem_error(
    problem: validate::Problem,
    index: &locate::LocationIndex,
    label: &str,
) -> SpecError {
    let at = |path: &str| SourcePos {
        file: label.to_string(),
        location: index.nearest(path),
    };
    match problem {
        validate::Problem::Invalid { path, message } => SpecError::Invalid {
            at: at(&path),
            path,
            message,
        },
        validate::Problem::MissingFile {
            path,
            local,
            source,
        } => {
            let at = SourcePos {
                file: label.to_string(),
                location: index.node(&path).or_else(|| index.nearest(&path)),
            };
            SpecError::MissingFile {
                at,
                path,
                local,
                source,
            }
        }
    }
}
