//! The signature-nonce cache, kept on disk so that a captured request cannot be replayed after the
//! simulator restarts.
//!
//! A nonce only needs remembering while its request's timestamp is still accepted: a request whose
//! timestamp is more than [`MAX_SKEW_MS`](super::auth::MAX_SKEW_MS) away from the clock is refused
//! before its nonce is looked at. So each nonce is stored with an expiry (its request's timestamp plus
//! the skew) and forgotten after it, which bounds the cache by the request rate over 30 minutes.
//!
//! Guarantees: a nonce is appended to `nonces.log` (one `write(2)` of one line) before the request it
//! belongs to is acted on, so it survives a SIGKILL of the simulator; the log is rewritten without the
//! expired lines at start and after every sweep (see [`NonceCache::insert`]).
//! Caveats: the log is not fsynced per request; a power loss may forget the last nonces.
//! Nonces are stored as SHA-256 digests, so a hostile nonce cannot break the line format.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Sweep expired nonces after at least this many inserts (small logs are not worth rewriting).
const MIN_COMPACT_LINES: usize = 1024;

/// Errors reading or writing the nonce log.
#[derive(Debug, thiserror::Error)]
pub enum NonceLogError {
    #[error("reading the nonce log {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the nonce log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Nonces whose requests could still be accepted, with their expiry (ms since the epoch).
#[derive(Debug)]
pub struct NonceCache {
    /// SHA-256 of the nonce → the time after which its request's timestamp is refused anyway.
    live: HashMap<[u8; 32], u64>,
    /// The append-only log; `None` for a cache that lives in memory only (unit tests).
    log: Option<NonceLog>,
    /// Inserts since the last sweep of expired nonces.
    inserts: usize,
    /// Sweep (and rewrite the log) after this many inserts: twice the nonces alive after the last
    /// sweep, so that the cost of a sweep is spread over at least as many inserts.
    sweep_after: usize,
}

#[derive(Debug)]
struct NonceLog {
    path: PathBuf,
    file: File,
}

/// What [`NonceCache::insert`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The nonce is new and is now remembered.
    New,
    /// The nonce was used by an earlier request that could still be valid.
    Used,
}

impl Default for NonceCache {
    /// A cache in memory only.
    fn default() -> Self {
        NonceCache {
            live: HashMap::new(),
            log: None,
            inserts: 0,
            sweep_after: MIN_COMPACT_LINES,
        }
    }
}

impl NonceCache {
    /// Opens (or creates, 0600) `<data_dir>/nonces.log`, keeps the nonces not expired at `now_ms` and
    /// rewrites the log with only those.
    pub fn open(data_dir: &Path, now_ms: u64) -> Result<Self, NonceLogError> {
        let path = data_dir.join("nonces.log");
        let mut live = HashMap::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(|source| NonceLogError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    // A torn last line (crash mid-write) is skipped: its request was never answered.
                    if let Some((digest, expiry)) = parse_line(&line) {
                        if expiry > now_ms {
                            live.insert(digest, expiry);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(NonceLogError::Read { path, source }),
        }
        let log = NonceLog::rewrite(path, &live)?;
        Ok(NonceCache {
            sweep_after: MIN_COMPACT_LINES.max(2 * live.len()),
            live,
            log: Some(log),
            inserts: 0,
        })
    }

    /// Records `nonce` (valid until `expiry_ms`) unless an unexpired request already used it.
    /// Every `sweep_after` inserts, expired nonces are dropped and the log is rewritten: memory and
    /// disk stay within about twice the nonces of the last 30 minutes.
    pub fn insert(
        &mut self,
        nonce: &str,
        expiry_ms: u64,
        now_ms: u64,
    ) -> Result<Recorded, NonceLogError> {
        let digest: [u8; 32] = Sha256::digest(nonce.as_bytes()).into();
        if self.live.get(&digest).is_some_and(|&e| e > now_ms) {
            return Ok(Recorded::Used);
        }
        if let Some(log) = &mut self.log {
            log.append(&digest, expiry_ms)?;
        }
        self.live.insert(digest, expiry_ms);
        self.inserts += 1;
        if self.inserts >= self.sweep_after {
            self.sweep(now_ms)?;
        }
        Ok(Recorded::New)
    }

    /// Forgets expired nonces and rewrites the log with the others.
    fn sweep(&mut self, now_ms: u64) -> Result<(), NonceLogError> {
        self.live.retain(|_, &mut expiry| expiry > now_ms);
        if let Some(log) = self.log.take() {
            self.log = Some(NonceLog::rewrite(log.path, &self.live)?);
        }
        self.inserts = 0;
        self.sweep_after = MIN_COMPACT_LINES.max(2 * self.live.len());
        Ok(())
    }

    /// How many nonces are remembered (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

impl NonceLog {
    /// Writes `live` to a fresh file next to `path` and renames it over `path`, then opens it for
    /// appending.
    fn rewrite(path: PathBuf, live: &HashMap<[u8; 32], u64>) -> Result<Self, NonceLogError> {
        let write_err = |source| NonceLogError::Write {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("log.tmp");
        let mut text = String::with_capacity(live.len() * 80);
        for (digest, expiry) in live {
            text.push_str(&format_line(digest, *expiry));
        }
        let mut f = create_private(&tmp, false).map_err(write_err)?;
        f.write_all(text.as_bytes()).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, &path).map_err(write_err)?;
        let file = create_private(&path, true).map_err(write_err)?;
        Ok(NonceLog { path, file })
    }

    fn append(&mut self, digest: &[u8; 32], expiry_ms: u64) -> Result<(), NonceLogError> {
        // One write of one short line: with O_APPEND it lands whole or (on a crash) torn at the end.
        self.file
            .write_all(format_line(digest, expiry_ms).as_bytes())
            .map_err(|source| NonceLogError::Write {
                path: self.path.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Opens `path` 0600: truncated for a rewrite, or for appending (also the call log's files).
pub(super) fn create_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.open(path)
}

fn format_line(digest: &[u8; 32], expiry_ms: u64) -> String {
    format!("{expiry_ms} {}\n", hex::encode(digest))
}

fn parse_line(line: &str) -> Option<([u8; 32], u64)> {
    let (expiry, digest) = line.split_once(' ')?;
    let expiry = expiry.parse().ok()?;
    let bytes = hex::decode(digest).ok()?;
    Some((bytes.try_into().ok()?, expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_until_it_expires_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = NonceCache::open(dir.path(), 1_000).unwrap();
        assert_eq!(cache.insert("n1", 5_000, 1_000).unwrap(), Recorded::New);
        assert_eq!(cache.insert("n1", 5_000, 2_000).unwrap(), Recorded::Used);
        drop(cache);
        let mut reopened = NonceCache::open(dir.path(), 3_000).unwrap();
        assert_eq!(reopened.insert("n1", 9_000, 3_000).unwrap(), Recorded::Used);
        assert_eq!(reopened.insert("n1", 9_000, 5_001).unwrap(), Recorded::New);
    }

    #[test]
    fn expired_nonces_are_dropped_from_the_log_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = NonceCache::open(dir.path(), 0).unwrap();
        cache.insert("old", 100, 0).unwrap();
        cache.insert("new", 10_000, 0).unwrap();
        drop(cache);
        let reopened = NonceCache::open(dir.path(), 500).unwrap();
        assert_eq!(reopened.len(), 1);
        let text = std::fs::read_to_string(dir.path().join("nonces.log")).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.contains("old") && !text.contains("new"),
            "digests only"
        );
    }

    #[test]
    fn the_log_is_private_and_a_torn_last_line_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut cache = NonceCache::open(dir.path(), 0).unwrap();
        cache.insert("n1", 10_000, 0).unwrap();
        drop(cache);
        let path = dir.path().join("nonces.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"99999 abc").unwrap();
        let mut reopened = NonceCache::open(dir.path(), 1).unwrap();
        assert_eq!(reopened.len(), 1);
        assert_eq!(reopened.insert("n1", 10_000, 1).unwrap(), Recorded::Used);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_long_run_keeps_the_log_bounded_by_the_live_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = NonceCache::open(dir.path(), 0).unwrap();
        for i in 0..10 * MIN_COMPACT_LINES as u64 {
            // Each nonce lives 100 ms; one arrives every millisecond.
            cache.insert(&format!("n{i}"), i + 100, i).unwrap();
        }
        assert!(cache.len() <= MIN_COMPACT_LINES + 100, "{}", cache.len());
        let lines = std::fs::read_to_string(dir.path().join("nonces.log"))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 2 * MIN_COMPACT_LINES, "{lines}");
    }
}
