//! The canonical form of a spec and its SHA-256, so the reconciler can tell "an image for this exact spec
//! already exists" (the hash is tagged on the image).
//!
//! What is hashed: everything that can change the image's contents or where and how it is published —
//! region, source image, instance type, system disk, user data, SSH user, provisioners **with the contents
//! of every script and uploaded file**, stop-before-snapshot, and the image section except `force`.
//! What is not: how bakerd reaches the cloud and the instance (credentials, endpoint, signature, zone,
//! network, security group, bandwidth, SSH port/address/timeout, run tags), what happens on failure, and
//! timeouts. Changing those does not make the image stale.
//!
//! Guarantees: independent of key order, whitespace, comments, defaults written out or left implicit
//! (fields hold concrete defaults after parsing), and of the spec's location on disk (files are keyed
//! by field path, not by absolute path). Caveat: a directory upload hashes only names, contents and the
//! executable bit; other permission bits and ownership vary across checkouts and are left out.

use super::error::SpecError;
use super::model::{ImageDataDisks, ImageSpec, SourceImage, SystemDisk};
use super::provisioner::Provisioner;
use super::verify::{Communicator, VerifyCheck, VerifySpec};
use super::Spec;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Version of the canonical form; bump it when the form changes (every hash changes with it).
const CANONICAL_FORMAT: &str = "bakerd-spec/1";
/// Directory uploads deeper than this are refused while hashing (protects against symlink cycles).
const MAX_DIRECTORY_DEPTH: usize = 32;

/// What a local file named by the spec is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileUse {
    /// A shell script (`script` / `scripts[i]`), always a regular file.
    Script,
    /// A `file` provisioner's source: a file or a directory.
    Upload,
}

/// A local file or directory the spec refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferencedFile {
    /// Field path in the spec, e.g. `provisioners[1].shell.script`.
    pub field_path: String,
    /// The path as written in the spec.
    pub written: String,
    /// The path resolved against the spec's directory.
    pub local: PathBuf,
    pub usage: FileUse,
}

#[derive(Serialize)]
struct Canonical<'a> {
    format: &'static str,
    region: &'a str,
    source_image: &'a SourceImage,
    instance_type: &'a str,
    system_disk: &'a SystemDisk,
    user_data: Option<&'a str>,
    /// Absent when unset, so hashes of specs without it are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    security_enhancement_strategy: Option<&'a str>,
    /// Absent when empty, so hashes of specs without data disks are unchanged.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    data_disks: &'a [crate::spec::DataDisk],
    ssh_username: &'a str,
    provisioners: &'a [Provisioner],
    stop_before_snapshot: bool,
    image: CanonicalImage<'a>,
    /// Only when not the default, so hashes of specs written before the field existed hold.
    #[serde(skip_serializing_if = "Communicator::is_ssh")]
    communicator: Communicator,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<&'a VerifySpec>,
    /// Field path → `sha256:<hex>` of the referenced file's (or directory's) contents.
    files: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct CanonicalImage<'a> {
    name: &'a str,
    description: Option<&'a str>,
    family: Option<&'a str>,
    version: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
    copy_regions: &'a [String],
    share_accounts: &'a [String],
    /// Only when the image carries data disks, so hashes of specs without it are unchanged.
    #[serde(skip_serializing_if = "is_ignore")]
    data_disks: ImageDataDisks,
}

fn is_ignore(d: &ImageDataDisks) -> bool {
    *d == ImageDataDisks::Ignore
}

impl<'a> From<&'a ImageSpec> for CanonicalImage<'a> {
    fn from(image: &'a ImageSpec) -> Self {
        CanonicalImage {
            name: &image.name,
            description: image.description.as_deref(),
            family: image.family.as_deref(),
            version: image.version.as_deref(),
            tags: &image.tags,
            copy_regions: &image.copy_regions,
            share_accounts: &image.share_accounts,
            data_disks: image.data_disks,
        }
    }
}

/// Every local file the spec names, in document order.
pub(crate) fn referenced_files(spec: &Spec) -> Vec<ReferencedFile> {
    let mut files = Vec::new();
    for (i, provisioner) in spec.provisioners.iter().enumerate() {
        let mut push = |field_path: String, written: &str, usage| {
            files.push(ReferencedFile {
                field_path,
                written: written.to_string(),
                local: spec.resolve_path(written),
                usage,
            });
        };
        match provisioner {
            Provisioner::Shell(shell) => {
                if let Some(script) = &shell.script {
                    let field = format!("provisioners[{i}].shell.script");
                    push(field, script, FileUse::Script);
                }
                for (j, script) in shell.scripts.iter().enumerate() {
                    let field = format!("provisioners[{i}].shell.scripts[{j}]");
                    push(field, script, FileUse::Script);
                }
            }
            Provisioner::File(file) => push(
                format!("provisioners[{i}].file.source"),
                &file.source,
                FileUse::Upload,
            ),
        }
    }
    let checks = spec.verify.iter().flat_map(|v| v.checks.iter().enumerate());
    for (i, check) in checks {
        if let VerifyCheck::Script(script) = check {
            files.push(ReferencedFile {
                field_path: format!("verify.checks[{i}].script"),
                written: script.clone(),
                local: spec.resolve_path(script),
                usage: FileUse::Script,
            });
        }
    }
    files
}

/// The canonical JSON text of `spec` (see the module docs for what it contains).
pub(crate) fn canonical_json(spec: &Spec) -> Result<String, SpecError> {
    let mut files = BTreeMap::new();
    for file in referenced_files(spec) {
        let digest = digest_path(&file.local).map_err(|source| SpecError::ReadReferenced {
            path: file.field_path.clone(),
            local: file.local.clone(),
            source,
        })?;
        files.insert(file.field_path, format!("sha256:{digest}"));
    }
    let canonical = Canonical {
        format: CANONICAL_FORMAT,
        region: &spec.region,
        source_image: &spec.source_image,
        instance_type: &spec.instance.instance_type,
        system_disk: &spec.instance.system_disk,
        user_data: spec.instance.user_data.as_deref(),
        security_enhancement_strategy: spec.instance.security_enhancement_strategy.as_deref(),
        data_disks: &spec.instance.data_disks,
        ssh_username: &spec.ssh.username,
        provisioners: &spec.provisioners,
        stop_before_snapshot: spec.stop_before_snapshot,
        image: CanonicalImage::from(&spec.image),
        communicator: spec.communicator,
        verify: spec.verify.as_ref(),
        files,
    };
    // Serializing plain structs, strings and BTreeMaps to JSON cannot fail.
    Ok(serde_json::to_string(&canonical).expect("canonical spec serializes to JSON"))
}

/// SHA-256 hex of a file's contents, or of a directory's sorted listing of names, kinds and contents.
fn digest_path(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    if fs::metadata(path)?.is_dir() {
        digest_directory(path, "", 0, &mut hasher)?;
    } else {
        hasher.update(b"file\n");
        hasher.update(fs::read(path)?);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn digest_directory(
    dir: &Path,
    relative: &str,
    depth: usize,
    hasher: &mut Sha256,
) -> std::io::Result<()> {
    if depth > MAX_DIRECTORY_DEPTH {
        let message = format!(
            "{} is nested more than {MAX_DIRECTORY_DEPTH} levels deep (a symlink cycle?)",
            dir.display()
        );
        return Err(std::io::Error::other(message));
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{relative}/{name}");
        let metadata = fs::metadata(entry.path())?;
        if metadata.is_dir() {
            hasher.update(format!("dir {child}\n"));
            digest_directory(&entry.path(), &child, depth + 1, hasher)?;
        } else {
            let contents = Sha256::digest(fs::read(entry.path())?);
            let kind = if is_executable(&metadata) {
                "exec"
            } else {
                "file"
            };
            hasher.update(format!("{kind} {child} {}\n", hex::encode(contents)));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &fs::Metadata) -> bool {
    false
}
