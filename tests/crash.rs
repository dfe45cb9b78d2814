//! Crash safety: the real `bakerd` is SIGKILLed at every failpoint of a build, at random moments,
//! and again during its resume; `bakerd resume` must then finish the build with exactly one image
//! and nothing leaked or duplicated in the simulator, every ClientToken reused.
//!
//! Figures are printed (points tried, kills, resumes, leaks, duplicates). Knobs:
//! `BAKERD_CRASH_RANDOM` (random kills, default 50), `BAKERD_CRASH_DOUBLE` (random double kills,
//! default 10), `BAKERD_CRASH_SEED`, `BAKERD_CRASH_JOBS` (builds run at once, default 3).
#![cfg(feature = "failpoints")]

mod common;
mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use harness::{Run, Workspace};
use rand::{Rng, SeedableRng};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How a run of bakerd is interrupted.
#[derive(Debug, Clone)]
enum Kill {
    /// `BAKERD_CRASH_AT=<point>` (the process kills itself there).
    At(String),
    /// SIGKILL from the harness after this delay.
    After(Duration),
    /// Not interrupted.
    Never,
}

impl Kill {
    async fn run(&self, mut cmd: tokio::process::Command) -> Run {
        match self {
            Kill::At(point) => {
                cmd.env("BAKERD_CRASH_AT", point);
                harness::run(cmd).await
            }
            Kill::After(delay) => harness::run_killed_after(cmd, *delay).await,
            Kill::Never => harness::run(cmd).await,
        }
    }
}

/// One crash case: kill the apply, optionally kill the first resume too, then resume to the end.
#[derive(Debug, Clone)]
struct Case {
    apply: Kill,
    first_resume: Kill,
    /// The build reaches its instance through an EIP (`ssh.address: eip`).
    eip: bool,
    /// Build [`harness::small_spec_with_data_disk`] (the image carries a data disk).
    data_disk: bool,
}

/// What one case did and found.
#[derive(Debug, Default)]
struct Outcome {
    kills: usize,
    resumes: usize,
    /// The kill did not happen (the point was not reached or the build ended before the delay).
    missed: usize,
    /// Killed before any build record existed: nothing to resume, nothing may exist.
    before_build: bool,
    leaks: Vec<String>,
    duplicates: Vec<String>,
    not_succeeded: Vec<String>,
}

async fn run_case(sim: &common::SimProcess, ws: &Workspace, case: &Case) -> Outcome {
    let mut out = Outcome::default();
    let state = ws.state_dir();
    let name = format!("crash-{}", ws.unique());
    let spec = match (case.eip, case.data_disk) {
        (true, _) => harness::eip_spec(&name),
        (false, true) => harness::small_spec_with_data_disk(&name),
        (false, false) => harness::small_spec(&name),
    };
    let spec = &ws.spec_file(&spec);
    let applied = case.apply.run(ws.apply(&state, spec)).await;
    assert!(
        !applied.stderr.contains("panicked"),
        "apply panicked: {}",
        applied.stderr
    );
    if applied.killed() {
        out.kills += 1;
    } else if !matches!(case.apply, Kill::Never) {
        out.missed += 1;
    }
    let id = match applied.build_id() {
        Some(id) => id,
        None => match harness::builds(ws, &state).await.into_iter().next() {
            Some((id, _)) => id,
            None => {
                out.before_build = true;
                return out;
            }
        },
    };
    if !matches!(case.first_resume, Kill::Never) {
        let r = case.first_resume.run(ws.resume(&state, &id)).await;
        assert!(
            !r.stderr.contains("panicked"),
            "resume panicked: {}",
            r.stderr
        );
        out.resumes += 1;
        if r.killed() {
            out.kills += 1;
        } else {
            out.missed += 1;
        }
    }
    let phase = harness::builds(ws, &state)
        .await
        .into_iter()
        .find(|(b, _)| *b == id);
    if phase.as_ref().map(|(_, p)| p.as_str()) != Some("succeeded") {
        let resumed = harness::resume_until_done(ws, &state, &id, 4).await;
        out.resumes += resumed.resumes;
        if resumed.phase != "succeeded" {
            out.not_succeeded.push(format!(
                "{id} ({case:?}): {} after {:?}",
                resumed.phase, resumed.failures
            ));
        }
    }
    let (inventory, calls) = (sim.inventory().await, sim.calls().await);
    let audit =
        harness::audit_succeeded(&inventory, &calls, &id, harness::attempts_seen(&calls, &id));
    out.leaks = audit
        .leaks
        .into_iter()
        .map(|l| format!("{l} ({case:?})"))
        .collect();
    out.duplicates = audit
        .duplicates
        .into_iter()
        .map(|d| format!("{d} ({case:?})"))
        .collect();
    let _ = std::fs::remove_dir_all(&state);
    out
}

/// Totals over many cases, printed as the harness's figures.
#[derive(Debug, Default)]
struct Figures {
    cases: usize,
    kills: usize,
    resumes: usize,
    missed: usize,
    before_build: usize,
    leaks: Vec<String>,
    duplicates: Vec<String>,
    not_succeeded: Vec<String>,
}

impl Figures {
    fn add(&mut self, o: Outcome) {
        self.cases += 1;
        self.kills += o.kills;
        self.resumes += o.resumes;
        self.missed += o.missed;
        self.before_build += usize::from(o.before_build);
        self.leaks.extend(o.leaks);
        self.duplicates.extend(o.duplicates);
        self.not_succeeded.extend(o.not_succeeded);
    }

    fn print(&self, what: &str, started: Instant) {
        println!(
            "crash figures [{what}]: cases {}, kills {}, resumes {}, kills that missed {}, killed \
             before a build existed {}, leaks {}, duplicates {}, not succeeded {}, {:.1} s",
            self.cases,
            self.kills,
            self.resumes,
            self.missed,
            self.before_build,
            self.leaks.len(),
            self.duplicates.len(),
            self.not_succeeded.len(),
            harness::secs(started)
        );
        for line in self
            .leaks
            .iter()
            .chain(&self.duplicates)
            .chain(&self.not_succeeded)
        {
            println!("  {line}");
        }
    }

    fn assert_clean(&self) {
        assert!(self.leaks.is_empty(), "leaks: {:#?}", self.leaks);
        assert!(
            self.duplicates.is_empty(),
            "duplicates: {:#?}",
            self.duplicates
        );
        assert!(
            self.not_succeeded.is_empty(),
            "builds not succeeded: {:#?}",
            self.not_succeeded
        );
    }
}

/// Runs `cases` on a few builds at once (`BAKERD_CRASH_JOBS`) against one simulator.
async fn run_all(sim: &Arc<common::SimProcess>, ws: &Arc<Workspace>, cases: Vec<Case>) -> Figures {
    let jobs = env_usize("BAKERD_CRASH_JOBS", 3).max(1);
    let outcomes: Vec<Outcome> = futures::stream::iter(cases)
        .map(|case| {
            let (sim, ws) = (sim.clone(), ws.clone());
            async move { run_case(&sim, &ws, &case).await }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let mut figures = Figures::default();
    for o in outcomes {
        figures.add(o);
    }
    figures
}

/// A recorded, uninterrupted build: the points it reached (with hit counts) and its duration.
async fn record_points(
    ws: &Workspace,
    spec: &Path,
) -> (BTreeMap<String, usize>, Vec<String>, Duration) {
    let state = ws.state_dir();
    let log = ws.dir.path().join("failpoints.log");
    let mut cmd = ws.apply(&state, spec);
    cmd.env("BAKERD_FAILPOINT_LOG", &log);
    let started = Instant::now();
    let r = harness::run(cmd).await;
    let took = started.elapsed();
    assert_eq!(
        r.code(),
        Some(0),
        "recording build failed:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    let text = std::fs::read_to_string(&log).expect("failpoint log");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut order = Vec::new();
    for line in text.lines() {
        let n = counts.entry(line.to_string()).or_default();
        if *n == 0 {
            order.push(line.to_string());
        }
        *n += 1;
    }
    (counts, order, took)
}

fn start_sim(name: &str) -> (Arc<common::SimProcess>, Arc<Workspace>) {
    let sim = common::SimProcess::start(name);
    let ws = Workspace::new(&sim);
    (Arc::new(sim), Arc::new(ws))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_every_failpoint_is_finished_by_resume_with_one_image_and_no_leaks() {
    let started = Instant::now();
    let (sim, ws) = start_sim("crash-matrix");
    let spec = ws.spec_file(&harness::small_spec("crash-record"));
    let (counts, order, took) = record_points(&ws, &spec).await;
    println!(
        "recorded build: {} distinct failpoints, {} hits, {:.1} s",
        order.len(),
        counts.values().sum::<usize>(),
        took.as_secs_f64()
    );
    for required in [
        "run-instances:after-call",
        "provisioner-1:started",
        "wait-snapshot:poll",
        "wait-image:poll",
    ] {
        assert!(
            counts.contains_key(required),
            "the recorded build never reached {required}: {order:?}"
        );
    }
    let mut cases = Vec::new();
    for point in &order {
        cases.push(Case {
            apply: Kill::At(point.clone()),
            first_resume: Kill::Never,
            eip: false,
            data_disk: false,
        });
        if counts[point] >= 2 {
            cases.push(Case {
                apply: Kill::At(format!("{point}#2")),
                first_resume: Kill::Never,
                eip: false,
                data_disk: false,
            });
        }
    }
    let points_tried = cases.len();
    // Double kills: the re-issued call of each resource-creating step dies again before its result.
    for step in [
        "create-vpc",
        "run-instances",
        "create-snapshot",
        "create-image",
    ] {
        let point = format!("{step}:after-call");
        cases.push(Case {
            apply: Kill::At(point.clone()),
            first_resume: Kill::At(point.clone()),
            eip: false,
            data_disk: false,
        });
    }
    let figures = run_all(&sim, &ws, cases).await;
    println!(
        "crash figures [matrix]: points tried {points_tried} (distinct points {})",
        order.len()
    );
    figures.print(
        "every failpoint + double kills at create after-calls",
        started,
    );
    let tokenless = harness::tokenless_creates(&sim.calls().await);
    assert!(
        tokenless.is_empty(),
        "create calls without ClientToken: {tokenless:?}"
    );
    assert_eq!(
        figures.before_build, 0,
        "a failpoint kill happened before the build record existed"
    );
    assert!(
        figures.kills >= points_tried,
        "some failpoints were never reached on the rerun: {figures:?}"
    );
    figures.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_and_kills_during_resume_leave_one_image_and_nothing_else() {
    let started = Instant::now();
    let (sim, ws) = start_sim("crash-random");
    let spec = ws.spec_file(&harness::small_spec("crash-record"));
    let (_, _, took) = record_points(&ws, &spec).await;
    let seed = env_usize("BAKERD_CRASH_SEED", 20_261_125) as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let span = took.as_millis().max(500) as u64;
    let mut delay = || Duration::from_millis(rng.gen_range(30..span));
    let random = env_usize("BAKERD_CRASH_RANDOM", 50);
    let double = env_usize("BAKERD_CRASH_DOUBLE", 10);
    // Every fourth build carries a data disk into its image and every fourth (offset by two)
    // reaches its instance through an EIP, so random kills also land in those steps.
    let mut cases: Vec<Case> = (0..random)
        .map(|i| Case {
            apply: Kill::After(delay()),
            first_resume: Kill::Never,
            eip: i % 4 == 3,
            data_disk: i % 4 == 1,
        })
        .collect();
    cases.extend((0..double).map(|i| Case {
        apply: Kill::After(delay()),
        first_resume: Kill::After(delay()),
        eip: i % 4 == 3,
        data_disk: i % 4 == 1,
    }));
    let figures = run_all(&sim, &ws, cases).await;
    println!("crash figures [random]: seed {seed}, {random} random kills + {double} double kills over 0..{span} ms");
    figures.print("random", started);
    let tokenless = harness::tokenless_creates(&sim.calls().await);
    assert!(
        tokenless.is_empty(),
        "create calls without ClientToken: {tokenless:?}"
    );
    assert!(
        figures.kills >= random / 2,
        "most random kills should land mid-build: {figures:?}"
    );
    figures.assert_clean();
}

/// Failpoints of the EIP steps (`ssh.address: eip`): before/after the intent, the call and the
/// result of the allocation (tags at creation), the association and the release.
const EIP_STEPS: &[&str] = &["allocate-eip", "associate-eip", "delete-eip"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_or_after_each_eip_call_is_finished_by_resume_with_one_eip_and_nothing_leaked(
) {
    let started = Instant::now();
    let (sim, ws) = start_sim("crash-eip");
    let spec = ws.spec_file(&harness::eip_spec("crash-eip-record"));
    let (counts, order, took) = record_points(&ws, &spec).await;
    let points: Vec<String> = order
        .iter()
        .filter(|p| EIP_STEPS.iter().any(|s| p.starts_with(&format!("{s}:"))))
        .cloned()
        .collect();
    println!(
        "recorded EIP build: {} EIP failpoints of {} in {:.1} s",
        points.len(),
        counts.len(),
        took.as_secs_f64()
    );
    assert_eq!(points.len(), EIP_STEPS.len() * 4, "EIP points: {points:?}");
    let mut cases: Vec<Case> = points
        .iter()
        .map(|point| Case {
            apply: Kill::At(point.clone()),
            first_resume: Kill::Never,
            eip: true,
            data_disk: false,
        })
        .collect();
    // The re-issued allocation (same ClientToken) dies again before its result is recorded.
    cases.push(Case {
        apply: Kill::At("allocate-eip:after-call".into()),
        first_resume: Kill::At("allocate-eip:after-call".into()),
        eip: true,
        data_disk: false,
    });
    let tried = cases.len();
    let figures = run_all(&sim, &ws, cases).await;
    figures.print(
        "every EIP failpoint + a double kill at the allocation",
        started,
    );
    let calls = sim.calls().await;
    assert!(harness::tokenless_creates(&calls).is_empty());
    assert!(
        figures.kills >= tried,
        "some EIP points were not reached: {figures:?}"
    );
    figures.assert_clean();
}

/// Runs an EIP build killed at `point` in a fresh state dir; returns (state dir, build id, the
/// build's EIP as the simulator lists it).
async fn eip_build_killed_at(
    sim: &common::SimProcess,
    ws: &Workspace,
    point: &str,
) -> (std::path::PathBuf, String, serde_json::Value) {
    let state = ws.state_dir();
    let spec = ws.spec_file(&harness::eip_spec(&format!("gc-eip-{}", ws.unique())));
    let run = Kill::At(point.into()).run(ws.apply(&state, &spec)).await;
    assert!(
        run.killed(),
        "not killed at {point}: {}{}",
        run.stdout,
        run.stderr
    );
    let id = run.build_id().expect("build id printed before the kill");
    let inventory = sim.inventory().await;
    let eips: Vec<serde_json::Value> = harness::resources_of(&inventory, &id)
        .into_iter()
        .filter(|r| r["kind"] == "eip")
        .cloned()
        .collect();
    assert_eq!(eips.len(), 1, "one EIP after a kill at {point}: {eips:#?}");
    assert!(eips[0]["deleted"].is_null(), "{:#}", eips[0]);
    (state, id, eips[0].clone())
}

/// The resources of build `id` the simulator still holds.
async fn live_of(sim: &common::SimProcess, id: &str) -> Vec<String> {
    let inventory = sim.inventory().await;
    harness::resources_of(&inventory, id)
        .into_iter()
        .filter(|r| r["deleted"].is_null())
        .map(|r| format!("{} {}", r["kind"], r["id"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_releases_the_eip_of_an_abandoned_build_by_its_creation_tags_and_cancel_releases_an_unrecorded_one(
) {
    let (sim, ws) = start_sim("crash-eip-gc");
    // Abandoned after the association: the EIP is tagged and in use by the build instance.
    let (state, id, eip) = eip_build_killed_at(&sim, &ws, "associate-eip:after-result").await;
    assert_eq!(eip["tags"]["bakerd:build-id"], id.as_str(), "{eip:#}");
    assert_eq!(eip["status"], "InUse", "{eip:#}");
    let gc = harness::run(ws.command(&state, &["gc", "--older-than", "0s", "--yes"])).await;
    println!("{}{}", gc.stdout, gc.stderr);
    assert_eq!(gc.code(), Some(0), "gc failed: {}{}", gc.stdout, gc.stderr);
    assert!(
        gc.stdout
            .lines()
            .any(|l| l.contains("eip") && l.contains(&id)),
        "{}",
        gc.stdout
    );
    assert_eq!(
        live_of(&sim, &id).await,
        Vec::<String>::new(),
        "gc left some of {id}"
    );

    // Killed right after the allocation, before its result was recorded: the record does not
    // name the EIP, but it was tagged at creation, so gc finds and releases it by its tags.
    let (state, id, eip) = eip_build_killed_at(&sim, &ws, "allocate-eip:after-call").await;
    assert_eq!(eip["tags"]["bakerd:build-id"], id.as_str(), "{eip:#}");
    let gc = harness::run(ws.command(&state, &["gc", "--older-than", "0s", "--yes"])).await;
    println!("{}{}", gc.stdout, gc.stderr);
    assert_eq!(gc.code(), Some(0), "gc failed: {}{}", gc.stdout, gc.stderr);
    assert_eq!(
        live_of(&sim, &id).await,
        Vec::<String>::new(),
        "gc left some of {id}"
    );

    // Killed before the association (and before the allocation's result was recorded): `cancel`
    // knows the EIP from the record (or re-issues the allocation) and releases it.
    for point in ["associate-eip:before-intent", "allocate-eip:after-call"] {
        let (state, id, _) = eip_build_killed_at(&sim, &ws, point).await;
        let cancel = harness::run(ws.command(&state, &["cancel", &id])).await;
        assert_eq!(
            cancel.code(),
            Some(0),
            "cancel: {}{}",
            cancel.stdout,
            cancel.stderr
        );
        assert_eq!(
            live_of(&sim, &id).await,
            Vec::<String>::new(),
            "cancel after a kill at {point}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_build_whose_eip_an_older_bakerd_allocated_untagged_tags_it_once_through_the_vpc_api(
) {
    let (sim, ws) = start_sim("crash-eip-old-record");
    // What an older bakerd left: the allocation recorded, no `tag-eip` step yet, and an EIP
    // without tags (it allocated through ECS, which takes none). Made here by removing the tags.
    let (state, id, eip) = eip_build_killed_at(&sim, &ws, "allocate-eip:after-result").await;
    let eip_id = eip["id"].as_str().unwrap();
    let untag = [
        ("RegionId", "cn-hangzhou"),
        ("ResourceType", "EIP"),
        ("ResourceId.1", eip_id),
        ("All", "true"),
    ];
    let (status, body) = sim.call_vpc("UnTagResources", &untag).await;
    assert_eq!(status, 200, "{body}");
    let run = harness::run(ws.resume(&state, &id)).await;
    assert_eq!(run.code(), Some(0), "resume: {}{}", run.stdout, run.stderr);
    let inventory = sim.inventory().await;
    let eip = inventory
        .iter()
        .find(|r| r["id"] == eip_id)
        .expect("the EIP");
    assert_eq!(eip["tags"]["bakerd:build-id"], id.as_str(), "{eip:#}");
    let calls = sim.calls().await;
    let tag_calls: Vec<&serde_json::Value> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "TagResources")
        .collect();
    assert_eq!(tag_calls.len(), 1, "{tag_calls:#?}");
    assert_eq!(tag_calls[0]["version"], "2016-04-28", "{:#}", tag_calls[0]);
    let live = live_of(&sim, &id).await;
    assert!(
        live.iter()
            .all(|r| r.starts_with("\"image\"") || r.starts_with("\"snapshot\"")),
        "only the image and its snapshot stay: {live:?}"
    );
}

/// The steps a build with a data disk in its image adds: the disk lookup, the data disk's
/// snapshot, the batched snapshot wait and the CreateImage with `DiskDeviceMapping`. Only those
/// points are killed here; the matrix above covers the rest of the build.
fn data_disk_points(order: &[String]) -> Vec<String> {
    order
        .iter()
        .filter(|p| {
            p.contains("data-snapshot")
                || p.starts_with("data-disks:")
                || p.starts_with("create-snapshot:after-result")
                || p.as_str() == "wait-snapshot:poll"
                || p.as_str() == "create-image:after-call"
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_each_data_disk_snapshot_step_is_finished_by_resume_with_one_image_carrying_the_disk(
) {
    let started = Instant::now();
    let (sim, ws) = start_sim("crash-data-disk");
    let spec = ws.spec_file(&harness::small_spec_with_data_disk("crash-record"));
    let (_, order, took) = record_points(&ws, &spec).await;
    let points = data_disk_points(&order);
    println!(
        "recorded build with a data disk: {} failpoints, {} of them new, {:.1} s",
        order.len(),
        points.len(),
        took.as_secs_f64()
    );
    for required in [
        "data-disks:recorded",
        "create-data-snapshot-0:after-intent",
        "create-data-snapshot-0:after-call",
        "wait-snapshot:poll",
    ] {
        assert!(
            points.iter().any(|p| p == required),
            "the recorded build never reached {required}: {order:?}"
        );
    }
    let mut cases: Vec<Case> = points
        .iter()
        .map(|point| Case {
            apply: Kill::At(point.clone()),
            first_resume: Kill::Never,
            eip: false,
            data_disk: true,
        })
        .collect();
    let points_tried = cases.len();
    let point = "create-data-snapshot-0:after-call".to_string();
    cases.push(Case {
        apply: Kill::At(point.clone()),
        first_resume: Kill::At(point),
        eip: false,
        data_disk: true,
    });
    let figures = run_all(&sim, &ws, cases).await;
    figures.print("data disk snapshot steps + a double kill", started);
    assert!(
        figures.kills >= points_tried,
        "some failpoints were never reached on the rerun: {figures:?}"
    );
    figures.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_the_data_disk_snapshots_of_an_abandoned_build_and_keeps_a_finished_images() {
    let (sim, ws) = start_sim("gc-data-disk");
    let state = ws.state_dir();
    let finished = harness::run(ws.apply(
        &state,
        &ws.spec_file(&harness::small_spec_with_data_disk("gc-done")),
    ))
    .await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let mut abandoned = ws.apply(
        &state,
        &ws.spec_file(&harness::small_spec_with_data_disk("gc-abandoned")),
    );
    abandoned.env("BAKERD_CRASH_AT", "create-data-snapshot-0:after-result");
    let killed = harness::run(abandoned).await;
    assert!(
        killed.killed(),
        "{:?}\n{}\n{}",
        killed.code(),
        killed.stdout,
        killed.stderr
    );
    let (done_id, killed_id) = (finished.build_id().unwrap(), killed.build_id().unwrap());
    let live_snapshots = |inventory: &[serde_json::Value], id: &str| -> usize {
        harness::resources_of(inventory, id)
            .iter()
            .filter(|r| r["kind"] == "snapshot" && r["deleted"].is_null())
            .count()
    };
    let before = sim.inventory().await;
    assert_eq!(live_snapshots(&before, &killed_id), 2, "system + data disk");

    let gc = harness::run(ws.command(&state, &["gc", "--older-than", "0s", "--yes"])).await;
    assert_eq!(gc.code(), Some(0), "{}\n{}", gc.stdout, gc.stderr);
    let after = sim.inventory().await;
    let left: Vec<_> = harness::resources_of(&after, &killed_id)
        .into_iter()
        .filter(|r| r["deleted"].is_null())
        .collect();
    assert!(left.is_empty(), "the abandoned build left {left:#?}");
    assert_eq!(
        live_snapshots(&after, &done_id),
        2,
        "the finished image keeps both of its snapshots:\n{}",
        gc.stdout
    );
}
