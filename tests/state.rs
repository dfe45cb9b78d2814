//! The state directory on real sled files: durability across reopen, the single-process lock,
//! permissions, damaged files, atomic updates, and no secrets in the database.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bakerd::reconciler::keys::KeyStore;
use bakerd::reconciler::ssh::HostKey;
use bakerd::reconciler::state::{
    BuildId, Event, Intent, ProvisionerCheckpoint, StateDir, StateError, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A stand-in for the phase machine's phase enum: the store must round-trip any serde type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Pending,
    InstanceCreated { instance: String },
}

type Build = bakerd::reconciler::state::BuildRecord<Phase>;

fn temp_state() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("state");
    (root, path)
}

fn sample_spec() -> serde_json::Value {
    json!({"region": "cn-hangzhou", "image": {"name": "web-{{timestamp}}"}})
}

#[test]
fn build_record_and_events_survive_reopening_the_state_dir() {
    let (_root, path) = temp_state();
    let host_key = HostKey::parse_openssh(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHIHP2cc2B8d6Qwx8mELE23K0U8ScC7Wqn2X6z3L6XvY",
    )
    .unwrap();
    let (id, written) = {
        let state = StateDir::open(&path).unwrap();
        let build: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
        let written: Build = state
            .update_build(&build.id, |b: &mut Build| {
                b.phase = Phase::InstanceCreated {
                    instance: "i-123".into(),
                };
                b.resources.insert("instance".into(), "i-123".into());
                b.intents.insert(
                    "create_instance".into(),
                    Intent {
                        client_token: format!("{}-create_instance", b.id),
                        started_at: Timestamp::now(),
                    },
                );
                b.results
                    .insert("create_instance".into(), json!({"id": "i-123"}));
                b.provisioners.insert(
                    0,
                    ProvisionerCheckpoint {
                        started_at: Timestamp::now(),
                        finished_at: None,
                    },
                );
                b.host_key = Some(host_key.clone());
                b.phase = Phase::InstanceCreated {
                    instance: "i-123".into(),
                };
                b.attempt = 1;
            })
            .unwrap();
        for i in 0..5 {
            state
                .append_event(&build.id, &Event::new("phase", format!("event {i}")))
                .unwrap();
        }
        (build.id, written)
    };
    let state = StateDir::open(&path).unwrap();
    let loaded: Build = state.load_build(&id).unwrap();
    assert_eq!(loaded, written);
    assert_eq!(loaded.host_key, Some(host_key));
    assert!(!loaded.intent_pending("create_instance"));
    let messages: Vec<String> = state
        .events(&id)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        messages,
        ["event 0", "event 1", "event 2", "event 3", "event 4"]
    );
    let listed: Vec<Build> = state.list_builds().unwrap();
    assert_eq!(listed.len(), 1);
    let found: Vec<Build> = state.find_builds_by_spec_hash(&written.spec_hash).unwrap();
    assert_eq!(found.len(), 1);
    assert!(state
        .find_builds_by_spec_hash::<Phase>("0000")
        .unwrap()
        .is_empty());
}

#[test]
fn deleting_a_build_removes_its_record_and_events_only() {
    let (_root, path) = temp_state();
    let state = StateDir::open(&path).unwrap();
    let a: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
    let b: Build = state
        .create_build(json!({"other": 1}), Phase::Pending)
        .unwrap();
    state.append_event(&a.id, &Event::new("x", "a1")).unwrap();
    state.append_event(&b.id, &Event::new("x", "b1")).unwrap();
    assert!(state.delete_build(&a.id).unwrap());
    assert!(!state.delete_build(&a.id).unwrap());
    assert!(matches!(
        state.load_build::<Phase>(&a.id),
        Err(StateError::NotFound { .. })
    ));
    assert!(state.events(&a.id).unwrap().is_empty());
    assert_eq!(state.events(&b.id).unwrap().len(), 1);
    assert!(matches!(
        state.append_event(&a.id, &Event::new("x", "late")),
        Err(StateError::NotFound { .. })
    ));
}

#[test]
fn state_dir_is_created_private_and_a_loose_mode_is_tightened() {
    let (_root, path) = temp_state();
    drop(StateDir::open(&path).unwrap());
    assert_eq!(mode_of(&path), 0o700);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(StateDir::open(&path).unwrap());
    assert_eq!(mode_of(&path), 0o700);
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Not a test of its own: when `BAKERD_TEST_HOLD_STATE` is set, this runs inside a child process
/// (the test binary re-invoked) that holds the lock until killed.
#[test]
fn lock_holder_child_process() {
    let Ok(path) = std::env::var("BAKERD_TEST_HOLD_STATE") else {
        return;
    };
    let _state = StateDir::open_as(&path, "bakerd apply").unwrap();
    println!("locked");
    std::thread::sleep(std::time::Duration::from_secs(300));
}

#[test]
fn second_open_names_the_holder_pid_and_killing_the_holder_frees_the_lock() {
    let (_root, path) = temp_state();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder_child_process", "--nocapture"])
        .env("BAKERD_TEST_HOLD_STATE", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let locked = lines.find(|l| l.as_deref().map(|l| l.contains("locked")).unwrap_or(true));
    assert!(matches!(locked, Some(Ok(_))), "child never took the lock");

    let err = StateDir::open(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, StateError::Locked { pid, .. } if pid == child.id()),
        "{message}"
    );
    let expected = format!(
        "state dir {} is locked by pid {} (bakerd apply)",
        path.display(),
        child.id()
    );
    assert!(message.contains(&expected), "{message}");

    child.kill().unwrap();
    child.wait().unwrap();
    StateDir::open(&path).expect("lock must be free once its holder is dead");
}

#[test]
fn opening_twice_in_one_process_is_refused_too() {
    let (_root, path) = temp_state();
    let _first = StateDir::open(&path).unwrap();
    let err = StateDir::open(&path).unwrap_err();
    assert!(matches!(err, StateError::Locked { pid, .. } if pid == std::process::id()));
}

#[test]
fn concurrent_updates_are_not_lost() {
    let (_root, path) = temp_state();
    let state = StateDir::open(&path).unwrap();
    let build: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (state, id) = (&state, build.id.clone());
            scope.spawn(move || {
                for i in 0..25 {
                    state
                        .update_build(&id, |b: &mut Build| {
                            let n = b.results.get("count").and_then(|v| v.as_u64()).unwrap_or(0);
                            b.results.insert("count".into(), json!(n + 1));
                            b.resources.insert(format!("r-{t}-{i}"), "x".into());
                        })
                        .unwrap();
                }
            });
        }
    });
    let done: Build = state.load_build(&build.id).unwrap();
    assert_eq!(done.results["count"], json!(200));
    assert_eq!(done.resources.len(), 200);
}

#[test]
fn a_garbage_record_gives_a_clear_error_naming_the_record_and_what_to_do() {
    let (_root, path) = temp_state();
    let id = {
        let state = StateDir::open(&path).unwrap();
        let build: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
        build.id
    };
    {
        // Damage the record behind the store's back, the way a bad disk or a stray tool would.
        let db = sled::open(path.join("db")).unwrap();
        let tree = db.open_tree("builds").unwrap();
        tree.insert(id.as_str(), &b"{\"id\": \"b-00\", garbage"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let state = StateDir::open(&path).unwrap();
    let err = state.load_build::<Phase>(&id).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StateError::CorruptRecord { .. }), "{message}");
    assert!(message.contains(id.as_str()), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("bakerd gc"), "{message}");
    assert!(state.list_builds::<Phase>().is_err());
}

/// Rewrites one file of the sled database (`conf` or `db`) with `damage(old bytes)`.
fn damage_db_file(path: &Path, name: &str, damage: impl Fn(&mut Vec<u8>)) {
    let file = path.join("db").join(name);
    let mut bytes = std::fs::read(&file).unwrap();
    damage(&mut bytes);
    std::fs::write(&file, bytes).unwrap();
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn populated_state() -> (tempfile::TempDir, PathBuf, BuildId) {
    let (root, path) = temp_state();
    let state = StateDir::open(&path).unwrap();
    let build: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
    for i in 0..50 {
        state
            .append_event(&build.id, &Event::new("x", format!("event {i}")))
            .unwrap();
    }
    (root, path, build.id)
}

/// Opening and reading a damaged directory must give a `Damaged`/`CorruptRecord` error naming the
/// directory, never a panic, never silently empty data.
fn assert_damage_reported(path: &Path, id: &BuildId) {
    let outcome = std::panic::catch_unwind(|| match StateDir::open(path) {
        Err(err) => Err(err.to_string()),
        Ok(state) => state
            .load_build::<Phase>(id)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    });
    let result = outcome.expect("damaged state must not panic");
    let message = result.expect_err("damaged state must not load as if intact");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("bakerd gc"), "{message}");
}

#[test]
fn a_half_truncated_database_file_is_reported_not_silently_missing_builds() {
    // sled alone would open this and drop the lost tail without a word.
    let (_root, path, id) = populated_state();
    damage_db_file(&path, "db", |b| b.truncate(b.len() / 2));
    assert_damage_reported(&path, &id);
}

#[test]
fn flipped_bytes_in_the_database_file_are_reported() {
    let (_root, path, id) = populated_state();
    damage_db_file(&path, "db", |b| {
        let start = b.len() / 3;
        b[start..start + 16].iter_mut().for_each(|x| *x ^= 0x5a);
    });
    assert_damage_reported(&path, &id);
}

#[test]
fn a_garbage_sled_config_file_is_reported() {
    let (_root, path, id) = populated_state();
    damage_db_file(&path, "conf", |b| {
        b.iter_mut().skip(8).for_each(|x| *x = 0xff)
    });
    assert_damage_reported(&path, &id);
}

#[test]
fn private_keys_and_secrets_never_reach_the_database_files() {
    let (_root, path) = temp_state();
    let canary = "CANARY-SECRET-7f3a9c";
    let private_key_lines = {
        let state = StateDir::open(&path).unwrap();
        let build: Build = state.create_build(sample_spec(), Phase::Pending).unwrap();
        let keys = KeyStore::new(state.keys_dir());
        let key = keys.load_or_create(&build.id).unwrap();
        state
            .update_build(&build.id, |b: &mut Build| {
                b.results
                    .insert("key_pair".into(), json!(key.public_openssh()));
            })
            .unwrap();
        // Everything the store's public API sees of a key is its Debug and public form.
        let debug = format!("{key:?} {canary}");
        assert!(debug.contains("redacted"));
        state
            .append_event(&build.id, &Event::new("key", key.fingerprint()))
            .unwrap();
        let pem = std::fs::read_to_string(keys.path_for(&build.id)).unwrap();
        let lines: Vec<String> = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_string)
            .collect();
        (lines, key.public_openssh())
    };
    let (private_lines, public_line) = private_key_lines;
    let mut db_bytes = Vec::new();
    for file in walk_files(&path.join("db")) {
        db_bytes.extend(std::fs::read(file).unwrap());
    }
    let contains = |needle: &str| {
        db_bytes
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    let public_b64 = public_line.split_whitespace().nth(1).unwrap();
    assert!(
        contains(public_b64),
        "positive control: the public key is stored"
    );
    assert!(!contains(canary));
    for line in &private_lines {
        assert!(!contains(line), "private key material found in sled files");
    }
}
