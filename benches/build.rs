//! Benchmark: whole builds against the simulator. Prints figures, asserts nothing about speed.
//!
//! `cargo bench --bench build` (env `BAKERD_BENCH_BUILDS`, default 5; `BAKERD_BENCH_PROFILE`,
//! `fast` (default) or `realistic`). For each build of `specs/demo.yaml`: wall time, the time the
//! cloud itself needed (sum of the simulator's waits as seen in phase durations is not separable,
//! so the figure reported is bakerd's wall time next to the simulator profile's intrinsic latency),
//! API calls by action, Describe polls, and bakerd's peak RSS.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{fresh_data_dir, SimProcess};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Intrinsic latency of one build on the `fast` profile, from the simulator's timings: instance
/// Pending→Starting→Running (2 × 300 ms) + SSH boot delay (400 ms) + Stopping→Stopped (300 ms) +
/// snapshot (1 s) + image (1 s) + VPC and vSwitch (2 × 200 ms).
const FAST_INTRINSIC_SECS: f64 = 0.6 + 0.4 + 0.3 + 1.0 + 1.0 + 0.4;

/// Runs one `bakerd apply --force` and returns (wall seconds, peak RSS in KiB, exit status).
fn run_build(sim: &SimProcess, state: &std::path::Path) -> (f64, i64, i32) {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/demo.yaml");
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports peak RSS
    let child = Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .args(["apply", spec, "--force", "--state-dir"])
        .arg(state)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bakerd");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss,
        libc::WEXITSTATUS(status),
    )
}

fn counts(calls: &Value) -> BTreeMap<String, u64> {
    calls["counts"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let builds: usize = std::env::var("BAKERD_BENCH_BUILDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let profile = std::env::var("BAKERD_BENCH_PROFILE").unwrap_or_else(|_| "fast".into());
    let data = fresh_data_dir("bench");
    let sim = SimProcess::start_in(&data, &["--profile", &profile]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut before = counts(&runtime.block_on(sim.calls()));
    println!(
        "bakerd build benchmark: {builds} builds of specs/demo.yaml, simulator profile {profile}"
    );
    let mut walls = Vec::new();
    for n in 0..builds {
        let state = data.join("state");
        let (wall, rss_kib, code) = run_build(&sim, &state);
        let after = counts(&runtime.block_on(sim.calls()));
        let delta: BTreeMap<&String, u64> = after
            .iter()
            .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let total: u64 = delta.values().sum();
        let polls: u64 = delta
            .iter()
            .filter(|(k, _)| k.starts_with("Describe"))
            .map(|(_, v)| v)
            .sum();
        println!(
            "build {n}: exit {code}, {wall:.2} s wall, {total} API calls ({polls} Describe), peak RSS {:.1} MiB",
            rss_kib as f64 / 1024.0
        );
        if n == 0 {
            println!("  calls by action: {delta:?}");
        }
        walls.push(wall);
        before = after;
    }
    let mean = walls.iter().sum::<f64>() / walls.len().max(1) as f64;
    println!("mean wall time {mean:.2} s");
    if profile == "fast" {
        println!(
            "simulator intrinsic latency ~{FAST_INTRINSIC_SECS:.1} s per build: bakerd's ratio {:.2}",
            mean / FAST_INTRINSIC_SECS
        );
    }
}
