//! Running the real `bakerd` binary against a per-test simulator, killing it, resuming it, and
//! checking what the simulator says the build left behind (crash, soak and state tests).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::common::SimProcess;

/// A small demo-like spec: temporary network, two idempotent provisioners, no long sleeps; its
/// image is named `<name>-{{timestamp}}` (builds sharing a simulator need distinct names).
pub fn small_spec(name: &str) -> String {
    let provisioners = "  - shell:\n      inline:\n        - mkdir -p /etc/crash\n        \
                        - echo one > /etc/crash/one\n  - shell:\n      inline:\n        \
                        - echo two > /etc/crash/two";
    // The workspace gives the key through the environment (some tests use other keys).
    crate::common::sim_spec(&format!("{name}-{{{{timestamp}}}}"), "", provisioners)
        .replace(crate::common::TEST_CREDENTIALS, "")
}

/// [`small_spec`] reaching the instance through an EIP of its own (`ssh.address: eip`).
pub fn eip_spec(name: &str) -> String {
    small_spec(name).replace(
        "ssh:\n  username: root",
        "ssh:\n  address: eip\n  username: root",
    )
}

/// [`small_spec`] plus a `verify` section, so the crash tests also kill the test instance's steps.
pub fn small_spec_verified(name: &str) -> String {
    format!("{}{VERIFY_SECTION}", small_spec(name))
}

/// [`small_spec`] with a 20 GiB data disk that the image carries (`image.data_disks: include`);
/// the first provisioner writes a file onto it.
pub fn small_spec_with_data_disk(name: &str) -> String {
    small_spec(name)
        .replace(
            "  type: ecs.s2.large\n",
            "  type: ecs.s2.large\n  data_disks:\n    - size_gb: 20\n",
        )
        .replace(
            "        - echo one > /etc/crash/one\n",
            "        - echo one > /etc/crash/one\n        - echo data > /mnt/vdb/crash\n",
        )
        .replace("\nimage:\n", "\nimage:\n  data_disks: include\n")
}

const VERIFY_SECTION: &str = r#"verify:
  checks:
    - file_exists: /etc/crash/two
"#;

/// Where one test's specs and state directories live (a temp dir, removed on drop).
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    counter: std::sync::atomic::AtomicUsize,
}

/// How one `bakerd` process ended, with what it printed.
#[derive(Debug, Clone)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// True when the process died of SIGKILL (a failpoint or the harness killed it).
    pub fn killed(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal() == Some(libc::SIGKILL)
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts the exit code, showing what the process printed when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "{}\n{}", self.stdout, self.stderr);
        self
    }

    /// The id from the `build b-… started` line, if printed.
    pub fn build_id(&self) -> Option<String> {
        self.stdout.lines().find_map(|l| {
            let rest = l.strip_prefix("build ")?;
            let (id, tail) = rest.split_once(' ')?;
            tail.starts_with("started").then(|| id.to_string())
        })
    }
}

impl Workspace {
    pub fn new(sim: &SimProcess) -> Self {
        Self::with_key(
            sim,
            crate::common::ACCESS_KEY_ID,
            crate::common::ACCESS_KEY_SECRET,
        )
    }

    pub fn with_key(sim: &SimProcess, key_id: &str, secret: &str) -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
            endpoint: sim.endpoint.clone(),
            key_id: key_id.into(),
            secret: secret.into(),
            counter: Default::default(),
        }
    }

    /// A number unique within this workspace.
    pub fn unique(&self) -> usize {
        self.counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes `spec` to a fresh file and returns its path.
    pub fn spec_file(&self, spec: &str) -> PathBuf {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.dir.path().join(format!("spec-{n}.yaml"));
        std::fs::write(&path, spec).expect("write spec");
        path
    }

    /// A fresh state directory path (not created: bakerd creates it 0700).
    pub fn state_dir(&self) -> PathBuf {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.dir.path().join(format!("state-{n}"))
    }

    /// `bakerd <args> --state-dir <state>` with the simulator endpoint and credentials in the
    /// environment, and no failpoint variables unless the caller adds them.
    pub fn command(&self, state: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bakerd"));
        cmd.args(args)
            .arg("--state-dir")
            .arg(state)
            .env("BAKERD_ECS_ENDPOINT", &self.endpoint)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &self.key_id)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &self.secret)
            .env_remove("BAKERD_CRASH_AT")
            .env_remove("BAKERD_FAILPOINT_LOG")
            .env_remove("RUST_LOG")
            .env_remove("BAKERD_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `bakerd apply --force <spec>` (forced: builds of one test share the simulator, so an
    /// earlier image for the same spec must not make this one "up to date").
    pub fn apply(&self, state: &Path, spec: &Path) -> Command {
        self.command(
            state,
            &["apply", "--force", spec.to_str().expect("utf-8 path")],
        )
    }

    pub fn resume(&self, state: &Path, id: &str) -> Command {
        self.command(state, &["resume", id])
    }

    /// `bakerd validate <args>` against the simulator (validate has no state dir).
    pub fn validate(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bakerd"));
        cmd.arg("validate")
            .args(args)
            .env("BAKERD_ECS_ENDPOINT", &self.endpoint)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &self.key_id)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &self.secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

/// Runs `cmd` to its end (at most 5 minutes).
pub async fn run(mut cmd: Command) -> Run {
    let child = cmd.spawn().expect("spawn bakerd");
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("bakerd did not end within 5 minutes")
        .expect("wait for bakerd");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and SIGKILLs it after `delay` unless it ended before.
pub async fn run_killed_after(mut cmd: Command, delay: Duration) -> Run {
    use tokio::io::AsyncReadExt;
    let mut child = cmd.spawn().expect("spawn bakerd");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let read_out = tokio::spawn(async move {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s).await;
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s).await;
        s
    });
    let status = match tokio::time::timeout(delay, child.wait()).await {
        Ok(status) => status.expect("wait"),
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.expect("wait after kill")
        }
    };
    Run {
        status,
        stdout: String::from_utf8_lossy(&read_out.await.unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&read_err.await.unwrap_or_default()).into_owned(),
    }
}

/// `bakerd status --json`: (build id, phase) of every build in `state`.
pub async fn builds(ws: &Workspace, state: &Path) -> Vec<(String, String)> {
    let r = run(ws.command(state, &["status", "--json"])).await;
    assert_eq!(r.code(), Some(0), "bakerd status failed: {}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["build"].as_str()?.to_string(),
                v["phase"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The outcome of resuming a build until it ends.
#[derive(Debug, Default)]
pub struct Resumed {
    pub resumes: usize,
    pub phase: String,
    /// Outputs of failed resumes, for the report.
    pub failures: Vec<String>,
}

/// Runs `bakerd resume <id>` until the build is terminal and succeeded (at most `max` times).
pub async fn resume_until_done(ws: &Workspace, state: &Path, id: &str, max: usize) -> Resumed {
    let mut out = Resumed::default();
    for _ in 0..max {
        let r = run(ws.resume(state, id)).await;
        out.resumes += 1;
        assert!(
            !r.stderr.contains("panicked"),
            "bakerd resume {id} panicked:\n{}",
            r.stderr
        );
        if r.code() == Some(0) {
            break;
        }
        out.failures
            .push(format!("exit {:?}: {}{}", r.code(), r.stdout, r.stderr));
    }
    out.phase = builds(ws, state)
        .await
        .into_iter()
        .find(|(b, _)| b == id)
        .map(|(_, p)| p)
        .unwrap_or_else(|| "missing".into());
    out
}

/// What the simulator says one build left behind and did.
#[derive(Debug, Default)]
pub struct Audit {
    /// Live resources that should be gone (or a wrong number of outputs).
    pub leaks: Vec<String>,
    /// Resources created more than once, or a create action called with several tokens.
    pub duplicates: Vec<String>,
}

impl Audit {
    pub fn clean(&self) -> bool {
        self.leaks.is_empty() && self.duplicates.is_empty()
    }
}

/// ClientToken-capable create actions bakerd uses.
pub const TOKEN_ACTIONS: &[&str] = &[
    "CreateVpc",
    "CreateVSwitch",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroup",
    "RunInstances",
    "CreateSnapshot",
    "CreateImage",
    "CopyImage",
    "AllocateEipAddress",
];

/// Resources of `id` in an inventory: tagged with its build id, named after it, or created with
/// one of its ClientTokens (an EIP of an older bakerd was tagged only after its creation).
pub fn resources_of<'a>(inventory: &'a [Value], id: &str) -> Vec<&'a Value> {
    let name = format!("bakerd-{id}");
    let token_prefix = format!("bakerd-{id}-a");
    inventory
        .iter()
        .filter(|r| {
            r["tags"]["bakerd:build-id"].as_str() == Some(id)
                || r["name"].as_str() == Some(&name)
                || r["client_token"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&token_prefix))
        })
        .collect()
}

/// Audits a build that ended Succeeded after `attempts` attempts (attempt numbers 0..attempts).
pub fn audit_succeeded(inventory: &[Value], calls: &Value, id: &str, attempts: usize) -> Audit {
    let mut audit = Audit::default();
    let ours = resources_of(inventory, id);
    let live = |kind: &str| -> Vec<&Value> {
        ours.iter()
            .copied()
            .filter(|r| r["kind"] == kind && r["deleted"].is_null())
            .collect()
    };
    for kind in [
        "instance",
        "keypair",
        "securitygroup",
        "vswitch",
        "vpc",
        "eip",
    ] {
        for r in live(kind) {
            audit.leaks.push(format!("{id}: live {kind} {}", r["id"]));
        }
    }
    let images = live("image");
    let snapshots = live("snapshot");
    if images.len() != 1 || images[0]["status"] != "Available" {
        audit.leaks.push(format!(
            "{id}: {} live images (want 1 Available): {images:?}",
            images.len()
        ));
    }
    // The image's system disk snapshot, then its data disks' (`image.data_disks: include`).
    let behind: BTreeSet<String> = images
        .first()
        .map(|i| {
            let data = i["data_snapshot_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            std::iter::once(i["snapshot_id"].clone())
                .chain(data)
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let live_snapshots: BTreeSet<String> = snapshots
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    if behind.is_empty() || live_snapshots != behind {
        audit.leaks.push(format!(
            "{id}: live snapshots {live_snapshots:?}, want exactly those behind the image ({behind:?})"
        ));
    }
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in &ours {
        // A `verify` test instance is one more instance per attempt, by design.
        let kind = match (r["kind"].as_str(), r["tags"]["bakerd:role"].as_str()) {
            (Some("instance"), Some("verify")) => "verify test instance".to_string(),
            (kind, _) => kind.unwrap_or("?").to_string(),
        };
        *per_kind.entry(kind).or_default() += 1;
    }
    for (kind, n) in per_kind {
        // A failed snapshot/image is retired and replaced under a new `-rN` token: one more.
        let replaced = match kind.as_str() {
            "snapshot" => retirements(calls, id, "CreateSnapshot"),
            "image" => retirements(calls, id, "CreateImage"),
            _ => 0,
        };
        // Each attempt snapshots every disk of the image.
        let per_attempt = match kind.as_str() {
            "snapshot" => behind.len().max(1),
            _ => 1,
        };
        if n > attempts * per_attempt + replaced {
            audit.duplicates.push(format!(
                "{id}: {n} {kind}s created over {attempts} attempt(s)"
            ));
        }
    }
    audit.duplicates.extend(token_problems(calls, id));
    audit
}

/// Each ClientToken-capable action of build `id` must have used one token per attempt.
pub fn token_problems(calls: &Value, id: &str) -> Vec<String> {
    let prefix = format!("bakerd-{id}-a");
    let mut tokens: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for c in calls["calls"].as_array().into_iter().flatten() {
        let Some(token) = c["client_token"].as_str() else {
            continue;
        };
        let Some(rest) = token.strip_prefix(&prefix) else {
            continue;
        };
        let attempt = rest.split('-').next().unwrap_or("").to_string();
        let mut action = c["action"].as_str().unwrap_or("?").to_string();
        // Cloud Assistant calls (RunCommand, SendFile) are many per attempt, one step each.
        if !TOKEN_ACTIONS.contains(&action.as_str()) {
            continue;
        }
        if rest.contains("-verify-") {
            action.push_str(" (verify)");
        }
        // Each data disk of the image has its own snapshot step (`create-data-snapshot-<n>`).
        if let Some((_, disk)) = unretired(rest).split_once("-create-data-snapshot-") {
            action.push_str(&format!(" (data disk {disk})"));
        }
        tokens
            .entry((action, attempt))
            .or_default()
            .insert(unretired(token).to_string());
    }
    tokens
        .into_iter()
        .filter(|(_, t)| t.len() > 1)
        .map(|((action, attempt), t)| format!("{id}: {action} attempt {attempt} used tokens {t:?}"))
        .collect()
}

/// A token without its retirement suffix (`…-create-snapshot-r1` → `…-create-snapshot`): the
/// reconciler gives a retired step (its resource failed) a new token on purpose.
fn unretired(token: &str) -> &str {
    match token.rsplit_once("-r") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => token,
    }
}

/// How many distinct retirement tokens (`-rN`) build `id` used for `action`.
fn retirements(calls: &Value, id: &str, action: &str) -> usize {
    let prefix = format!("bakerd-{id}-a");
    let retired: BTreeSet<&str> = calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["action"] == action)
        .filter_map(|c| c["client_token"].as_str())
        .filter(|t| t.starts_with(&prefix) && unretired(t) != *t)
        .collect();
    retired.len()
}

/// Calls of a token-capable action made without a ClientToken (should never happen).
pub fn tokenless_creates(calls: &Value) -> Vec<String> {
    calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            TOKEN_ACTIONS.contains(&c["action"].as_str().unwrap_or(""))
                && c["client_token"].is_null()
        })
        .map(|c| format!("{} without ClientToken", c["action"]))
        .collect()
}

/// Seconds since `t`, for printed figures.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Attempts recorded in a build's tokens (1 + the highest `-a<N>-` seen).
pub fn attempts_seen(calls: &Value, id: &str) -> usize {
    let prefix = format!("bakerd-{id}-a");
    calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c["client_token"]
                .as_str()?
                .strip_prefix(&prefix)?
                .split('-')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(1, |a| a + 1)
}
