//! Per-build SSH key pairs: a locally generated ed25519 key whose public half is imported into the
//! cloud (`ImportKeyPair`) and whose private half stays in `<state>/keys/<build-id>.key`.
//!
//! The private key file is in OpenSSH format, so an operator can `ssh -i state/keys/<id>.key` into an
//! instance kept after a failure (`on_failure: keep`).
//!
//! Guarantees: key files are mode 0600 in a 0700 directory, written atomically (temp file + fsync +
//! rename), so a crash leaves either no key or a whole key, never a partial one. `Debug` of a key
//! prints `** redacted **`.
//! Caveats: private key bytes live in process memory while a build runs; they are not zeroized.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use thrussh_keys::key::KeyPair;
use thrussh_keys::PublicKeyBase64;

use crate::reconciler::state::BuildId;

/// Comment added to public key lines, so an imported key pair is recognisable on an instance.
const KEY_COMMENT: &str = "bakerd";

/// Errors of key generation and the key store. None of them contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an ed25519 key pair (libsodium failed)")]
    Generate,
    #[error("cannot create key dir {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write private key {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot read private key {path}: {source}; if the file is gone, `bakerd cancel` the build \
         (its instance can no longer be reached) and apply again"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("private key {path} is not a valid ed25519 OpenSSH key: {detail}")]
    Decode { path: PathBuf, detail: String },
    #[error("cannot delete private key {path}: {source}")]
    Delete {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A build's ed25519 key pair. Cheap to clone (shared).
#[derive(Clone)]
pub struct BuildKey {
    /// Shared because thrussh's authentication takes an `Arc<KeyPair>`.
    pair: Arc<KeyPair>,
}

impl std::fmt::Debug for BuildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildKey(** redacted **)")
    }
}

impl BuildKey {
    /// Generates a fresh key pair in memory.
    pub fn generate() -> Result<BuildKey, KeyError> {
        let pair = KeyPair::generate_ed25519().ok_or(KeyError::Generate)?;
        Ok(BuildKey {
            pair: Arc::new(pair),
        })
    }

    /// The public key as an OpenSSH line, `ssh-ed25519 AAAA… bakerd`: the `PublicKeyBody` of
    /// `ImportKeyPair`, and what goes into `authorized_keys`.
    pub fn public_openssh(&self) -> String {
        let public = self.pair.clone_public_key();
        format!(
            "{} {} {KEY_COMMENT}",
            public.name(),
            public.public_key_base64()
        )
    }

    /// `SHA256:…` fingerprint of the public key, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", self.pair.clone_public_key().fingerprint())
    }

    /// The thrussh key pair, for authentication.
    pub(crate) fn key_pair(&self) -> Arc<KeyPair> {
        self.pair.clone()
    }

    /// Serializes the private key in the unencrypted OpenSSH format (`openssh-key-v1`).
    fn to_openssh_pem(&self) -> String {
        let KeyPair::Ed25519(secret) = self.pair.as_ref();
        crate::sshkey::encode_ed25519(&secret.key, KEY_COMMENT, rand::thread_rng().next_u32())
    }
}

/// The `<state>/keys` directory: one private key file per build.
#[derive(Debug, Clone)]
pub struct KeyStore {
    /// Usually [`crate::reconciler::state::StateDir::keys_dir`].
    dir: PathBuf,
}

impl KeyStore {
    /// A store rooted at `dir` (created 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    /// Where build `id`'s private key lives.
    pub fn path_for(&self, id: &BuildId) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// Returns the build's stored key, or generates and stores one.
    ///
    /// Guarantees: idempotent; once it returned a key, every later call (also after a crash and
    /// resume) returns the same key, so the key pair imported into the cloud keeps matching.
    pub fn load_or_create(&self, id: &BuildId) -> Result<BuildKey, KeyError> {
        if self.path_for(id).exists() {
            return self.load(id);
        }
        let key = BuildKey::generate()?;
        self.save(id, &key)?;
        Ok(key)
    }

    /// Writes `key` as build `id`'s key (mode 0600), atomically replacing any previous file.
    pub fn save(&self, id: &BuildId, key: &BuildKey) -> Result<(), KeyError> {
        self.ensure_dir()?;
        let path = self.path_for(id);
        let temp = self
            .dir
            .join(format!(".{id}.key.tmp-{}", std::process::id()));
        let write_err = |source| KeyError::Write {
            path: path.clone(),
            source,
        };
        let _ = fs::remove_file(&temp);
        let mut pem = key.to_openssh_pem();
        let written = write_new_private_file(&temp, pem.as_bytes());
        // Best effort: overwrite the PEM copy before it is freed.
        // SAFETY: zero bytes keep the string valid UTF-8.
        unsafe { pem.as_bytes_mut().fill(0) };
        written.map_err(write_err)?;
        fs::rename(&temp, &path).map_err(write_err)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)
    }

    /// Loads build `id`'s key (on resume).
    pub fn load(&self, id: &BuildId) -> Result<BuildKey, KeyError> {
        let path = self.path_for(id);
        let text = fs::read_to_string(&path).map_err(|source| KeyError::Read {
            path: path.clone(),
            source,
        })?;
        let pair = thrussh_keys::decode_secret_key(&text, None).map_err(|e| KeyError::Decode {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Ok(BuildKey {
            pair: Arc::new(pair),
        })
    }

    /// Deletes build `id`'s key (cleanup). Returns whether a file existed.
    pub fn delete(&self, id: &BuildId) -> Result<bool, KeyError> {
        let path = self.path_for(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(KeyError::Delete { path, source }),
        }
    }

    fn ensure_dir(&self) -> Result<(), KeyError> {
        let err = |source| KeyError::CreateDir {
            path: self.dir.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(err)
    }
}

fn write_new_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_pem_round_trips_through_thrussh_decoder() {
        let key = BuildKey::generate().unwrap();
        let pem = key.to_openssh_pem();
        let back = thrussh_keys::decode_secret_key(&pem, None).unwrap();
        let again = BuildKey {
            pair: Arc::new(back),
        };
        assert_eq!(again.public_openssh(), key.public_openssh());
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = BuildKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "BuildKey(** redacted **)");
    }
}
