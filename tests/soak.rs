//! Fault soak: builds against a simulator injecting throttling, 5xx answers, connection resets,
//! "acted but the response was lost", failing snapshots and an SSH session killed mid-provisioning.
//! Every build must end Succeeded, or Failed with a clear error that `bakerd resume` then finishes,
//! with nothing duplicated. Figures are printed. Knobs: `BAKERD_SOAK_BUILDS` (default 20),
//! `BAKERD_SOAK_SEED`, `BAKERD_CRASH_JOBS` (builds at once, default 3).

mod common;
mod harness;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use harness::Workspace;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A provisioner that kills the shell of its own SSH session once (marker-guarded, so the retry
/// on the kept instance goes through).
const SSH_DROP: &str = r#"
  - shell:
      inline:
        - if [ ! -f /etc/ssh-dropped-once ]; then touch /etc/ssh-dropped-once; kill -9 $PPID; fi
on_failure: keep
"#;

/// What one soak build did.
#[derive(Debug, Default)]
struct Outcome {
    succeeded: bool,
    failed_runs: usize,
    /// The error line of each failed run.
    errors: Vec<String>,
    resumes: usize,
    unclear_errors: Vec<String>,
    leaks: Vec<String>,
    duplicates: Vec<String>,
}

/// The reason in a `build … failed at step …` line, without request ids.
fn error_line(stdout: &str) -> Option<String> {
    let line = stdout.lines().find(|l| l.contains("failed at step"))?;
    let reason = line.split_once("': ").map_or(line, |(_, r)| r);
    Some(
        reason
            .split(" (HTTP")
            .next()
            .unwrap_or(reason)
            .chars()
            .take(160)
            .collect(),
    )
}

async fn soak_build(sim: &common::SimProcess, ws: &Workspace, n: usize) -> Outcome {
    let mut out = Outcome::default();
    let mut spec = harness::small_spec(&format!("soak-{n}"));
    if n % 5 == 2 {
        spec = spec.replace("\nimage:\n", &format!("{}image:\n", SSH_DROP));
    }
    let spec = ws.spec_file(&spec);
    let state = ws.state_dir();
    let mut run = harness::run(ws.apply(&state, &spec)).await;
    let id = run.build_id();
    for _ in 0..4 {
        assert!(
            !run.stderr.contains("panicked"),
            "bakerd panicked:\n{}",
            run.stderr
        );
        match run.code() {
            Some(0) => {
                out.succeeded = true;
                break;
            }
            Some(1)
                if run.stdout.contains("failed at step")
                    && run.stdout.contains("bakerd resume") =>
            {
                out.failed_runs += 1;
                out.errors.extend(error_line(&run.stdout));
            }
            other => {
                out.unclear_errors.push(format!(
                    "build {n}: exit {other:?}\n{}{}",
                    run.stdout, run.stderr
                ));
                out.failed_runs += 1;
            }
        }
        let Some(id) = id.as_deref() else { break };
        run = harness::run(ws.resume(&state, id)).await;
        out.resumes += 1;
    }
    let Some(id) = id else {
        out.unclear_errors.push(format!(
            "build {n}: no build id printed\n{}{}",
            run.stdout, run.stderr
        ));
        return out;
    };
    let (inventory, calls) = (sim.inventory().await, sim.calls().await);
    let attempts = harness::attempts_seen(&calls, &id);
    let audit = harness::audit_succeeded(&inventory, &calls, &id, attempts);
    out.duplicates = audit.duplicates;
    if out.succeeded {
        out.leaks = audit.leaks;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_under_injected_faults_end_terminal_with_nothing_duplicated() {
    let started = Instant::now();
    let seed = env_usize("BAKERD_SOAK_SEED", 7).to_string();
    let dir = common::fresh_data_dir("soak");
    let sim = common::SimProcess::start_in(
        &dir,
        &[
            "--throttle-rate",
            "0.08",
            "--fault-rate",
            "0.08",
            "--snapshot-failure-rate",
            "0.05",
            "--seed",
            &seed,
        ],
    );
    let ws = Arc::new(Workspace::new(&sim));
    let sim = Arc::new(sim);
    let builds = env_usize("BAKERD_SOAK_BUILDS", 20);
    let jobs = env_usize("BAKERD_CRASH_JOBS", 3).max(1);
    let outcomes: Vec<Outcome> = futures::stream::iter(0..builds)
        .map(|n| {
            let (sim, ws) = (sim.clone(), ws.clone());
            async move { soak_build(&sim, &ws, n).await }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let calls = sim.calls().await;
    let faults = calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !c["fault"].is_null() || c["error_code"] == "Throttling")
        .count();
    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    let snapshot_failures = errors.iter().filter(|e| e.contains("snapshot")).count();
    let ssh_drops = errors
        .iter()
        .filter(|e| e.contains("provisioner 2"))
        .count();
    let succeeded = outcomes.iter().filter(|o| o.succeeded).count();
    let failed_runs: usize = outcomes.iter().map(|o| o.failed_runs).sum();
    let resumes: usize = outcomes.iter().map(|o| o.resumes).sum();
    let unclear: Vec<&String> = outcomes.iter().flat_map(|o| &o.unclear_errors).collect();
    let leaks: Vec<&String> = outcomes.iter().flat_map(|o| &o.leaks).collect();
    let duplicates: Vec<&String> = outcomes.iter().flat_map(|o| &o.duplicates).collect();
    println!(
        "soak figures: builds {builds}, succeeded {succeeded}, failed runs (clear error, then resumed) \
         {failed_runs}, resumes {resumes}, injected faults {faults}, failed snapshots \
         {snapshot_failures}, SSH sessions dropped {ssh_drops}, unclear errors {}, leaks {}, duplicates {}, {:.1} s",
        unclear.len(),
        leaks.len(),
        duplicates.len(),
        harness::secs(started)
    );
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &errors {
        *reasons.entry(e.as_str()).or_default() += 1;
    }
    for (reason, n) in &reasons {
        println!("  {n} × failed: {reason}");
    }
    for line in unclear.iter().chain(&leaks).chain(&duplicates) {
        println!("  {line}");
    }
    let tokenless = harness::tokenless_creates(&calls);
    assert!(
        tokenless.is_empty(),
        "create calls without ClientToken: {tokenless:?}"
    );
    assert!(
        faults > 0,
        "the simulator injected no faults; the soak proves nothing"
    );
    assert!(
        unclear.is_empty(),
        "builds ended without a clear error: {unclear:#?}"
    );
    assert!(duplicates.is_empty(), "duplicates: {duplicates:#?}");
    assert!(leaks.is_empty(), "leaks: {leaks:#?}");
    assert_eq!(
        succeeded, builds,
        "every build should end Succeeded after its resumes"
    );
}

/// A lost answer to a delete during the final cleanup (the image is already Available) must not
/// throw the finished image away: `resume` finishes the cleanup and keeps the one image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delete_answer_in_the_final_cleanup_keeps_the_finished_image() {
    let spec = harness::small_spec("lost-delete");
    let (sim, ws, state, applied) = apply_under_faults(
        "lost-delete",
        one_shot("DeleteVpc", "acted_then_drop"),
        &spec,
    )
    .await;
    let id = applied.build_id().expect("build id");
    println!("apply: exit {:?}\n{}", applied.code(), applied.stdout);
    let resumed = harness::resume_until_done(&ws, &state, &id, 3).await;
    assert_eq!(resumed.phase, "succeeded", "{resumed:?}");
    let inventory = sim.inventory().await;
    let images = harness::resources_of(&inventory, &id)
        .into_iter()
        .filter(|r| r["kind"] == "image")
        .count();
    assert_eq!(
        images, 1,
        "the finished image was deleted and rebuilt ({images} images created)"
    );
    let audit = harness::audit_succeeded(&inventory, &sim.calls().await, &id, 1);
    assert!(audit.clean(), "{audit:?}");
}

/// A StopInstance that acted but answered 500 (the client retries it) must not fail the build:
/// the instance is already stopping, which is what the step wanted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_instance_that_acted_then_failed_does_not_fail_the_build() {
    let spec = harness::small_spec("stop-acted");
    let (sim, _ws, _state, applied) = apply_under_faults(
        "stop-acted",
        one_shot("StopInstance", "acted_then_500"),
        &spec,
    )
    .await;
    applied.expect_code(0);
    let id = applied.build_id().expect("build id");
    let audit = harness::audit_succeeded(&sim.inventory().await, &sim.calls().await, &id, 1);
    assert!(audit.clean(), "{audit:?}");
}

/// A snapshot that ends `failed` fails the build with a clear error; after cleanup, `resume`
/// builds a fresh attempt to the end with nothing left of the failed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_fails_the_build_clearly_and_resume_finishes_it() {
    let spec = harness::small_spec("snapshot-fails");
    let (sim, ws, state, applied) = apply_under_faults(
        "snapshot-fails",
        serde_json::json!({"snapshot_failure_rate": 1.0}),
        &spec,
    )
    .await;
    applied.expect_code(1);
    assert!(
        applied.stdout.contains("failed: status failed")
            && applied.stdout.contains("bakerd resume"),
        "the failure should name the failed snapshot and the way out: {}",
        applied.stdout
    );
    sim.set_faults(serde_json::json!({"snapshot_failure_rate": 0.0}))
        .await;
    let id = applied.build_id().expect("build id");
    let resumed = harness::resume_until_done(&ws, &state, &id, 2).await;
    assert_eq!(resumed.phase, "succeeded", "{resumed:?}");
    let audit = harness::audit_succeeded(&sim.inventory().await, &sim.calls().await, &id, 2);
    assert!(audit.clean(), "{audit:?}");
}

/// ImportKeyPair acted but its answer was lost: bakerd looks the key pair up by its deterministic
/// name instead of failing or importing a second one, and the build goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_import_key_pair_answer_neither_leaks_nor_reuses_the_old_key_pair() {
    let spec = harness::small_spec("lost-import").replace("timeout: 1m", "timeout: 15s");
    let (sim, _ws, _state, applied) = apply_under_faults(
        "lost-import",
        one_shot("ImportKeyPair", "acted_then_drop"),
        &spec,
    )
    .await;
    applied.expect_code(0);
    let id = applied.build_id().expect("build id");
    let calls = sim.calls().await;
    let imports = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "ImportKeyPair")
        .count();
    assert_eq!(
        imports, 1,
        "the lost import was found by name, not sent again"
    );
    let audit = harness::audit_succeeded(&sim.inventory().await, &calls, &id, 1);
    assert!(audit.clean(), "{audit:?}");
}

/// With `on_failure: keep`, a failed snapshot must not be waited on again by every resume: the
/// step re-issues CreateSnapshot with the recorded ClientToken and gets the failed one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_failure_keep_a_failed_snapshot_is_replaced_on_resume() {
    let spec = format!("{}on_failure: keep\n", harness::small_spec("keep-snapshot"));
    let (sim, ws, state, applied) = apply_under_faults(
        "keep-snapshot",
        serde_json::json!({"snapshot_failure_rate": 1.0}),
        &spec,
    )
    .await;
    applied.expect_code(1);
    sim.set_faults(serde_json::json!({"snapshot_failure_rate": 0.0}))
        .await;
    let id = applied.build_id().expect("build id");
    let resumed = harness::resume_until_done(&ws, &state, &id, 2).await;
    assert_eq!(resumed.phase, "succeeded", "{resumed:?}");
}

/// With `on_failure: keep`, an image that ends `CreateFailed` is deleted on its own: the build's
/// snapshot stays, so `resume` makes a new image from it instead of failing on a deleted snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_failure_keep_a_failed_image_is_remade_from_the_kept_snapshot_on_resume() {
    let spec = format!("{}on_failure: keep\n", harness::small_spec("keep-image"));
    let faults = serde_json::json!({"image_failure_rate": 1.0});
    let (sim, ws, state, applied) = apply_under_faults("keep-image", faults, &spec).await;
    applied.expect_code(1);
    sim.set_faults(serde_json::json!({"image_failure_rate": 0.0}))
        .await;
    let id = applied.build_id().expect("build id");
    let resumed = harness::resume_until_done(&ws, &state, &id, 2).await;
    assert_eq!(resumed.phase, "succeeded", "{resumed:?}");
    let inventory = sim.inventory().await;
    let snapshots: Vec<_> = harness::resources_of(&inventory, &id)
        .into_iter()
        .filter(|r| r["kind"] == "snapshot")
        .collect();
    assert_eq!(snapshots.len(), 1, "one snapshot, kept: {snapshots:?}");
}

/// A simulator, its workspace and state dir, and how one `apply` under injected faults ended.
type Faulted = (
    common::SimProcess,
    Workspace,
    std::path::PathBuf,
    harness::Run,
);

/// Starts a simulator named `name`, sets `faults` on it and applies `spec` once.
async fn apply_under_faults(name: &str, faults: serde_json::Value, spec: &str) -> Faulted {
    let sim = common::SimProcess::start(name);
    let ws = Workspace::new(&sim);
    sim.set_faults(faults).await;
    let state = ws.state_dir();
    let spec = ws.spec_file(spec);
    let applied = harness::run(ws.apply(&state, &spec)).await;
    (sim, ws, state, applied)
}

/// Faults for the next call of `action` only.
fn one_shot(action: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({ "one_shot": [{ "action": action, "kind": kind }] })
}
