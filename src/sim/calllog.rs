//! The simulator's API call log (`GET /_sim/calls`): per-action counts and the most recent calls.
//!
//! Why a file of its own: the log grows with every call, reads included. Kept inside `state.json` it
//! was rewritten whole on every state write, which made a busy simulator's persistence quadratic in
//! its calls. Here each call costs one appended line.
//!
//! Guarantees: a call's line is appended to `<data>/calls.jsonl` (one `write(2)` of one JSON line,
//! `O_APPEND`) before its answer leaves, so a SIGKILLed simulator restarts with every answered call
//! in its log and counts. Counts are never dropped; the log keeps the last [`CALL_LOG_LIMIT`] calls.
//! The file is compacted at start and whenever it holds twice that many lines: its first line then
//! carries the counts of the calls no longer listed (`{"dropped_counts": {...}}`).
//! Caveats: lines are not fsynced; a power loss may lose the last ones. A torn last line (crash mid
//! write) is skipped on load.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::nonces::create_private;

/// Keeps at most this many call-log entries (oldest dropped first); counts are never dropped.
pub const CALL_LOG_LIMIT: usize = 20_000;

/// One logged API call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRecord {
    pub time_ms: u64,
    pub action: String,
    pub region: Option<String>,
    pub client_token: Option<String>,
    pub signature_nonce: Option<String>,
    /// `v1` or `v3`: which signature scheme the request used.
    #[serde(default)]
    pub signature_version: String,
    /// The request's API `Version` (`2014-05-26` ECS, `2016-04-28` VPC; empty when it sent none).
    #[serde(default)]
    pub version: String,
    pub http_status: u16,
    pub error_code: Option<String>,
    /// Set when a fault was injected into this call (e.g. `acted_then_500`).
    pub fault: Option<String>,
    pub request_id: String,
}

/// The call log as older simulators kept it inside `state.json`; read once to migrate it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LegacyCalls {
    pub counts: BTreeMap<String, u64>,
    pub log: Vec<CallRecord>,
}

/// One line of `calls.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    /// Counts of the calls a compaction dropped from the file.
    Dropped {
        dropped_counts: BTreeMap<String, u64>,
    },
    /// Boxed: a record is several times the size of the other variant.
    Call(Box<CallRecord>),
}

/// Errors reading or writing `calls.jsonl`.
#[derive(Debug, thiserror::Error)]
pub enum CallLogError {
    #[error("reading the call log {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the call log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Counts and recent calls in memory, mirrored by the append-only file.
#[derive(Debug)]
pub struct CallLog {
    counts: BTreeMap<String, u64>,
    recent: VecDeque<CallRecord>,
    path: PathBuf,
    file: File,
    /// Lines in the file; past twice the limit it is compacted.
    lines: usize,
}

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("calls.jsonl")
}

impl CallLog {
    /// Opens (or creates, 0600) `<data_dir>/calls.jsonl` and compacts it. When the file does not
    /// exist yet, `legacy` (the log of a `state.json` written by an older simulator) seeds it.
    pub fn open(data_dir: &Path, legacy: LegacyCalls) -> Result<Self, CallLogError> {
        let path = log_path(data_dir);
        let (counts, recent) = match File::open(&path) {
            Ok(f) => read_lines(&path, f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut recent: VecDeque<CallRecord> = legacy.log.into();
                trim(&mut recent);
                (legacy.counts, recent)
            }
            Err(source) => return Err(CallLogError::Read { path, source }),
        };
        Ok(CallLog {
            file: rewrite(&path, &counts, &recent)?,
            lines: recent.len() + 1,
            counts,
            recent,
            path,
        })
    }

    /// Appends `record` to the file, then to the counts and recent calls.
    pub fn append(&mut self, record: CallRecord) -> Result<(), CallLogError> {
        *self.counts.entry(record.action.clone()).or_default() += 1;
        let mut line =
            serde_json::to_vec(&Line::Call(Box::new(record.clone()))).unwrap_or_default();
        line.push(b'\n');
        self.recent.push_back(record);
        trim(&mut self.recent);
        // One write of one line: with O_APPEND it lands whole or (on a crash) torn at the end.
        self.file
            .write_all(&line)
            .map_err(|source| CallLogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.lines += 1;
        if self.lines > 2 * CALL_LOG_LIMIT {
            self.file = rewrite(&self.path, &self.counts, &self.recent)?;
            self.lines = self.recent.len() + 1;
        }
        Ok(())
    }

    /// The `/_sim/calls` body: `{"counts": {...}, "calls": [...]}`, oldest call first.
    pub fn report(&self) -> Value {
        json!({"counts": self.counts, "calls": self.recent})
    }
}

/// Drops the oldest calls beyond the limit.
fn trim(recent: &mut VecDeque<CallRecord>) {
    while recent.len() > CALL_LOG_LIMIT {
        recent.pop_front();
    }
}

type Loaded = (BTreeMap<String, u64>, VecDeque<CallRecord>);

/// Reads every line: counts of all calls ever logged, and the most recent calls.
fn read_lines(path: &Path, f: File) -> Result<Loaded, CallLogError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut recent = VecDeque::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|source| CallLogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // A torn last line (crash mid-write) is skipped: its call was never answered.
        match serde_json::from_str::<Line>(&line) {
            Ok(Line::Dropped { dropped_counts }) => {
                for (action, n) in dropped_counts {
                    *counts.entry(action).or_default() += n;
                }
            }
            Ok(Line::Call(record)) => {
                *counts.entry(record.action.clone()).or_default() += 1;
                recent.push_back(*record);
                trim(&mut recent);
            }
            Err(_) => {
                tracing::warn!(path = %path.display(), "skipping an unreadable call-log line")
            }
        }
    }
    Ok((counts, recent))
}

/// Writes the counts of calls not in `recent`, then `recent`, to a fresh file renamed over
/// `path`; returns it opened for appending.
fn rewrite(
    path: &Path,
    counts: &BTreeMap<String, u64>,
    recent: &VecDeque<CallRecord>,
) -> Result<File, CallLogError> {
    let write_err = |source| CallLogError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut dropped_counts = counts.clone();
    for r in recent {
        if let Some(n) = dropped_counts.get_mut(&r.action) {
            *n = n.saturating_sub(1);
        }
    }
    dropped_counts.retain(|_, n| *n > 0);
    let mut text = Vec::with_capacity(recent.len() * 256);
    let head = Line::Dropped { dropped_counts };
    serde_json::to_writer(&mut text, &head)
        .map_err(std::io::Error::other)
        .map_err(write_err)?;
    text.push(b'\n');
    for r in recent {
        serde_json::to_writer(&mut text, r)
            .map_err(std::io::Error::other)
            .map_err(write_err)?;
        text.push(b'\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = create_private(&tmp, false).map_err(write_err)?;
    f.write_all(&text).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    create_private(path, true).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn call(action: &str, i: u64) -> CallRecord {
        CallRecord {
            time_ms: i,
            action: action.into(),
            region: Some("cn-hangzhou".into()),
            client_token: None,
            signature_nonce: Some(format!("n{i}")),
            signature_version: "v1".into(),
            version: "2014-05-26".into(),
            http_status: 200,
            error_code: None,
            fault: None,
            request_id: format!("R{i}"),
        }
    }

    fn calls_of(log: &CallLog) -> Vec<u64> {
        log.recent.iter().map(|c| c.time_ms).collect()
    }

    #[test]
    fn calls_survive_a_reopen_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CallLog::open(dir.path(), LegacyCalls::default()).unwrap();
        log.append(call("RunInstances", 1)).unwrap();
        log.append(call("DescribeInstances", 2)).unwrap();
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"time_ms\":3,\"act").unwrap();
        let log = CallLog::open(dir.path(), LegacyCalls::default()).unwrap();
        assert_eq!(calls_of(&log), [1, 2]);
        assert_eq!(
            log.report()["counts"],
            json!({"RunInstances": 1, "DescribeInstances": 1})
        );
    }

    #[test]
    fn compaction_keeps_the_counts_of_dropped_calls() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CallLog::open(dir.path(), LegacyCalls::default()).unwrap();
        let total = 2 * CALL_LOG_LIMIT as u64 + 10;
        for i in 0..total {
            log.append(call(if i % 2 == 0 { "A" } else { "B" }, i))
                .unwrap();
        }
        assert!(log.lines <= 2 * CALL_LOG_LIMIT, "{}", log.lines);
        drop(log);
        let log = CallLog::open(dir.path(), LegacyCalls::default()).unwrap();
        assert_eq!(log.recent.len(), CALL_LOG_LIMIT);
        assert_eq!(log.recent.back().unwrap().time_ms, total - 1);
        assert_eq!(
            log.report()["counts"],
            json!({"A": total / 2, "B": total / 2})
        );
    }

    #[test]
    fn a_legacy_log_from_the_state_file_seeds_a_new_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = LegacyCalls {
            counts: BTreeMap::from([("RunInstances".to_string(), 3)]),
            log: vec![call("RunInstances", 7)],
        };
        let log = CallLog::open(dir.path(), legacy.clone()).unwrap();
        assert_eq!(calls_of(&log), [7]);
        drop(log);
        // The file exists now: the legacy log is not counted twice.
        let log = CallLog::open(dir.path(), legacy).unwrap();
        assert_eq!(log.report()["counts"], json!({"RunInstances": 3}));
        assert_eq!(calls_of(&log), [7]);
    }
}
