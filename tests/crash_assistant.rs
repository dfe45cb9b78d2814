//! Crash safety of the new steps: Cloud Assistant provisioning (RunCommand, chunked SendFile,
//! the join) and the `verify` test instance. The real `bakerd` is SIGKILLed at every failpoint
//! those steps reach, and at random moments; `bakerd resume` must finish with one image, nothing
//! leaked (the test instance included), every ClientToken reused, and each command run once.
#![cfg(feature = "failpoints")]

mod common;
mod harness;

use futures::StreamExt;
use harness::{Run, Workspace};
use std::time::{Duration, Instant};

/// One shell step that counts its runs, one 30 KB upload (two chunks), and a check that the
/// step ran exactly once.
fn spec(name: &str) -> String {
    format!(
        r#"
region: cn-hangzhou
source_image:
  id: ubuntu_22_04_x64_20G_alibase_20240926.vhd
instance:
  type: ecs.s2.large
communicator: cloud_assistant
ssh:
  timeout: 1m
provisioners:
  - shell:
      inline:
        - echo ran >> /root/runs
  - file: {{ source: blob.bin, destination: /opt/blob.bin }}
image:
  name: {name}-{{{{timestamp}}}}
timeouts:
  instance: 2m
  snapshot: 2m
  image: 2m
verify:
  checks:
    - shell: test "$(wc -l < /root/runs)" -eq 1 && test "$(wc -c < /opt/blob.bin)" -eq 30000
"#
    )
}

/// The spec and its upload in a directory of their own (cases run side by side).
fn spec_in_own_dir(ws: &Workspace, name: &str) -> std::path::PathBuf {
    let dir = ws.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob.bin"), vec![b'z'; 30_000]).unwrap();
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec(name)).unwrap();
    path
}

/// Points of the new steps (the rest of the build is covered by `tests/crash.rs`). A step's
/// `:before-intent` is left out: nothing is written between the previous step's last point and
/// it, so a kill there leaves the state a kill at that earlier point leaves (and costs a case).
fn is_new(point: &str) -> bool {
    if point.ends_with(":before-intent") {
        return false;
    }
    let provisioner_step = point.starts_with('p')
        && point[1..].starts_with(|c: char| c.is_ascii_digit())
        && point.contains('-');
    provisioner_step
        || point.starts_with("verify")
        || point.starts_with("delete-verify")
        || point.starts_with("assistant:")
        || point.starts_with("phase-verified")
}

async fn one_case(
    sim: &common::SimProcess,
    ws: &Workspace,
    kill: Option<&str>,
    delay: Option<Duration>,
) -> Vec<String> {
    let state = ws.state_dir();
    let spec = spec_in_own_dir(ws, &format!("ca-{}", ws.unique()));
    let mut cmd = ws.apply(&state, &spec);
    let applied: Run = match (kill, delay) {
        (Some(point), _) => {
            cmd.env("BAKERD_CRASH_AT", point);
            harness::run(cmd).await
        }
        (None, Some(d)) => harness::run_killed_after(cmd, d).await,
        _ => harness::run(cmd).await,
    };
    let id = match applied.build_id() {
        Some(id) => id,
        None => match harness::builds(ws, &state).await.into_iter().next() {
            Some((id, _)) => id,
            None => return Vec::new(),
        },
    };
    let mut problems = Vec::new();
    let resumed = harness::resume_until_done(ws, &state, &id, 4).await;
    if resumed.phase != "succeeded" {
        problems.push(format!(
            "{id} ({kill:?} {delay:?}): {} after {:?}",
            resumed.phase, resumed.failures
        ));
    }
    let (inventory, calls) = (sim.inventory().await, sim.calls().await);
    let audit =
        harness::audit_succeeded(&inventory, &calls, &id, harness::attempts_seen(&calls, &id));
    problems.extend(
        audit
            .leaks
            .into_iter()
            .chain(audit.duplicates)
            .map(|p| format!("{p} ({kill:?} {delay:?})")),
    );
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_in_cloud_assistant_and_verify_steps_are_finished_by_resume_without_leaks_or_reruns()
{
    let started = Instant::now();
    let sim = common::SimProcess::start("crash-assistant");
    let ws = Workspace::new(&sim);
    // Record the points of one uninterrupted build.
    let log = ws.dir.path().join("points.log");
    let state = ws.state_dir();
    let spec_path = spec_in_own_dir(&ws, "ca-record");
    let mut cmd = ws.apply(&state, &spec_path);
    cmd.env("BAKERD_FAILPOINT_LOG", &log);
    let t = Instant::now();
    let r = harness::run(cmd).await;
    let took = t.elapsed();
    assert_eq!(
        r.code(),
        Some(0),
        "recording build failed: {}{}",
        r.stdout,
        r.stderr
    );
    let mut points: Vec<String> = Vec::new();
    for p in std::fs::read_to_string(&log).unwrap().lines() {
        if is_new(p) && !points.iter().any(|q| q == p) {
            points.push(p.to_string());
        }
    }
    for required in [
        "p0-s0-run:after-intent",
        "p0-s0-run:waiting",
        "p1-f0-c1:after-call",
        "p1-f0-join:after-result",
        "verify:outcome-recorded",
        "delete-verify_instance:after-call",
    ] {
        assert!(
            points.iter().any(|p| p == required),
            "no point {required}: {points:?}"
        );
    }
    let random = 6usize;
    let span = took.as_millis() as u64;
    let cases: Vec<(Option<String>, Option<Duration>)> = points
        .iter()
        .map(|p| (Some(p.clone()), None))
        .chain((0..random).map(|i| {
            (
                None,
                Some(Duration::from_millis(
                    span * (i as u64 + 1) / (random as u64 + 1),
                )),
            )
        }))
        .collect();
    let n = cases.len();
    let problems: Vec<String> = futures::stream::iter(cases)
        .map(|(kill, delay)| {
            let (sim, ws) = (&sim, &ws);
            async move { one_case(sim, ws, kill.as_deref(), delay).await }
        })
        .buffer_unordered(3)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    println!(
        "crash figures [assistant+verify]: {} failpoints + {random} random kills = {n} cases, {} problems, {:.1} s",
        points.len(),
        problems.len(),
        harness::secs(started)
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
