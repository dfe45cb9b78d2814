//! Where the simulator's accepted access keys and STS tokens come from: the command line
//! (`--access-key`, `--sts-token`; visible to every local user in `ps`), a private file
//! (`--access-key-file`, `--sts-token-file`) or the environment (`BAKERD_SIM_ACCESS_KEYS`,
//! `BAKERD_SIM_STS_TOKENS`). All sources add up; with no access key at all, the documented test pair
//! is accepted.
//!
//! Guarantees: no error message quotes a secret (a bad line is named by file and line number); a key
//! file readable or writable by group or others is refused; the environment variables are removed
//! from the process once read, so the sshd's and provisioners the simulator starts do not inherit them.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::auth::Credentials;

/// Environment variable holding access keys: `ID:SECRET` entries separated by commas or whitespace.
pub const ACCESS_KEYS_ENV: &str = "BAKERD_SIM_ACCESS_KEYS";
/// Environment variable holding STS tokens, separated by commas or whitespace.
pub const STS_TOKENS_ENV: &str = "BAKERD_SIM_STS_TOKENS";

/// The documented test access key pair (`docs/ecs-api.md` V1-a).
pub const DEFAULT_ACCESS_KEY: (&str, &str) = ("testid", "testsecret");

/// Errors reading the accepted credentials.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{origin}: an access key must be written ID:SECRET (both parts non-empty)")]
    BadAccessKey { origin: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is open to group or others (mode {mode:03o}); it holds secrets: run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// The credential sources of one start: what the options name, plus the environment's values.
#[derive(Default)]
pub struct KeySources<'a> {
    pub access_keys: &'a [String],
    pub access_key_files: &'a [PathBuf],
    pub sts_tokens: &'a [String],
    pub sts_token_files: &'a [PathBuf],
    /// The value of [`ACCESS_KEYS_ENV`], if set.
    pub access_keys_env: Option<String>,
    /// The value of [`STS_TOKENS_ENV`], if set.
    pub sts_tokens_env: Option<String>,
}

/// Reads and removes the two environment variables (call before any thread starts).
pub fn take_env() -> (Option<String>, Option<String>) {
    let take = |name: &str| {
        let value = std::env::var(name).ok();
        std::env::remove_var(name);
        value
    };
    (take(ACCESS_KEYS_ENV), take(STS_TOKENS_ENV))
}

/// Collects every accepted key and token.
pub fn load(sources: &KeySources<'_>) -> Result<Credentials, KeysError> {
    let mut creds = Credentials::default();
    for (i, pair) in sources.access_keys.iter().enumerate() {
        add_key(&mut creds, pair, || format!("--access-key #{}", i + 1))?;
    }
    for path in sources.access_key_files {
        for (line_no, line) in private_lines(path)? {
            add_key(&mut creds, &line, || {
                format!("{} line {line_no}", path.display())
            })?;
        }
    }
    if let Some(env) = &sources.access_keys_env {
        for (i, pair) in split_list(env).enumerate() {
            add_key(&mut creds, pair, || {
                format!("{ACCESS_KEYS_ENV} entry {}", i + 1)
            })?;
        }
    }
    creds.sts_tokens.extend(sources.sts_tokens.iter().cloned());
    for path in sources.sts_token_files {
        let tokens = private_lines(path)?;
        creds.sts_tokens.extend(tokens.into_iter().map(|(_, t)| t));
    }
    if let Some(env) = &sources.sts_tokens_env {
        creds.sts_tokens.extend(split_list(env).map(str::to_string));
    }
    if creds.keys.is_empty() {
        let (id, secret) = DEFAULT_ACCESS_KEY;
        creds.keys.insert(id.into(), secret.into());
    }
    Ok(creds)
}

fn add_key(
    creds: &mut Credentials,
    pair: &str,
    origin: impl FnOnce() -> String,
) -> Result<(), KeysError> {
    match pair.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            creds.keys.insert(id.to_string(), secret.to_string());
            Ok(())
        }
        _ => Err(KeysError::BadAccessKey { origin: origin() }),
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// The non-blank, non-`#` lines of a file open to its owner only, trimmed, with 1-based numbers.
fn private_lines(path: &Path) -> Result<Vec<(usize, String)>, KeysError> {
    let read_err = |source| KeysError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    // The mode of the file actually opened, not of whatever the path names a moment later.
    let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeysError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn keys_and_tokens_add_up_from_argv_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let keys = write(dir.path(), "keys", "# demo\n\nfileid:filesecret\n", 0o600);
        let tokens = write(dir.path(), "tokens", "tok-file\n", 0o400);
        let creds = load(&KeySources {
            access_keys: &["argid:argsecret".into()],
            access_key_files: &[keys],
            sts_token_files: &[tokens],
            access_keys_env: Some("envid:envsecret, other:pw".into()),
            sts_tokens_env: Some("tok-a tok-b".into()),
            ..Default::default()
        })
        .unwrap();
        for (id, secret) in [
            ("argid", "argsecret"),
            ("fileid", "filesecret"),
            ("envid", "envsecret"),
            ("other", "pw"),
        ] {
            assert_eq!(creds.keys.get(id).map(String::as_str), Some(secret));
        }
        assert!(
            !creds.keys.contains_key("testid"),
            "no default once a key is given"
        );
        for t in ["tok-file", "tok-a", "tok-b"] {
            assert!(creds.sts_tokens.contains(t), "{t}");
        }
    }

    #[test]
    fn with_no_key_the_documented_test_pair_is_accepted() {
        let creds = load(&KeySources::default()).unwrap();
        assert_eq!(
            creds.keys.get("testid").map(String::as_str),
            Some("testsecret")
        );
    }

    #[test]
    fn a_key_file_open_to_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let keys = write(dir.path(), "keys", "id:secret\n", 0o640);
        let e = load(&KeySources {
            access_key_files: std::slice::from_ref(&keys),
            ..Default::default()
        })
        .err()
        .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("mode 640") && msg.contains("chmod 600"),
            "{msg}"
        );
        assert!(!msg.contains("secret\n"), "{msg}");
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = write(dir.path(), "keys", "id:ok\nhunter2-no-colon\n", 0o600);
        let msg = load(&KeySources {
            access_key_files: std::slice::from_ref(&keys),
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(msg.contains(&format!("{} line 2", keys.display())), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let msg = load(&KeySources {
            access_keys_env: Some("a:b,:lonely-secret".into()),
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(msg.starts_with("BAKERD_SIM_ACCESS_KEYS entry 2"), "{msg}");
        assert!(!msg.contains("lonely"), "{msg}");
    }
}
