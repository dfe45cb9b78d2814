//! Benchmark: the same build through bakerd and through Packer 1.6.6, on one simulator, alternating
//! runs. Prints figures, asserts nothing about speed.
//!
//! `cargo bench --bench build` (env: `BAKERD_BENCH_BUILDS`, runs per tool, default 5;
//! `BAKERD_BENCH_PROFILE`, `fast` (default) or `realistic`). Both tools build
//! `benches/fixtures/demo-packer.json` (bakerd runs Packer templates as they are), so the build is
//! the same one: temporary VPC, vSwitch and security group, four provisioners, stop, snapshot,
//! image, cleanup. Per tool: median wall time, median API calls per build and by action, the time
//! the simulator itself needed (its intrinsic latency: the time the build's resources spent in
//! transitional states, from `/_sim/timeline`), and the reaction time from a resource becoming
//! ready to the tool's next call. Without `packer` on the PATH, bakerd runs alone.
//!
//! Packer 1.6.6 has no endpoint option: it sends plain-HTTP requests to
//! `ecs-<region>.aliyuncs.com`. Its Alibaba Cloud SDK honours `HTTP_PROXY`, so pointing that at the
//! simulator delivers the requests there unchanged (proxy-form, `GET http://ecs-…/?Action=…`); the
//! V1 signature does not cover the host, and the SSH connections go straight to the instances'
//! loopback addresses.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{fresh_data_dir, SimProcess};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What one build cost.
struct Run {
    exit: i32,
    wall_secs: f64,
    /// Peak resident memory of the tool's process.
    peak_rss_mib: f64,
    calls: BTreeMap<String, u64>,
    /// Time the build's resources spent in transitional states (simulator's own latency).
    intrinsic_secs: f64,
    /// Ready → the first call after it (the poll that sees it), per ready resource.
    poll_lag_ms: Vec<u64>,
    /// Ready → the first call after it that is not a poll of that resource kind.
    act_lag_ms: Vec<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures")
}

fn bakerd_command(sim: &SimProcess, state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bakerd"));
    cmd.args(["apply", "--force", "demo-packer.json", "--state-dir"])
        .arg(state)
        .current_dir(fixtures())
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET);
    cmd
}

fn packer_command(sim: &SimProcess, data: &Path) -> Command {
    let mut cmd = Command::new("packer");
    cmd.args(["build", "-machine-readable", "demo-packer.json"])
        .current_dir(fixtures())
        .env("HTTP_PROXY", &sim.endpoint)
        .env("http_proxy", &sim.endpoint)
        .env("CHECKPOINT_DISABLE", "1")
        .env("PACKER_CACHE_DIR", data.join("packer-cache"))
        .env("HOME", data);
    cmd
}

/// Runs one build and measures it against the simulator's call log and timeline.
fn measure(sim: &SimProcess, rt: &tokio::runtime::Runtime, mut cmd: Command, log: &Path) -> Run {
    let before = counts(&rt.block_on(sim.calls()));
    let started_ms = now_ms();
    let started = Instant::now();
    let out = std::fs::File::create(log).expect("log file");
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports peak RSS
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("spawn build");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall_secs = started.elapsed().as_secs_f64();
    let calls_now = rt.block_on(sim.calls());
    let timeline = rt.block_on(sim.get_json(&format!("/_sim/timeline?since_ms={started_ms}")));
    let calls: BTreeMap<String, u64> = counts(&calls_now)
        .into_iter()
        .map(|(k, v)| (k.clone(), v - before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let log: Vec<(u64, String)> = calls_now["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["time_ms"].as_u64()?, c["action"].as_str()?.to_string())))
        .filter(|(t, _)| *t >= started_ms)
        .collect();
    let (poll_lag_ms, act_lag_ms) = reactions(&timeline, &log);
    Run {
        exit: libc::WEXITSTATUS(status),
        wall_secs,
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        calls,
        intrinsic_secs: timeline["transitional_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        poll_lag_ms,
        act_lag_ms,
    }
}

/// The Describe that polls a resource kind.
fn poll_action(kind: &str) -> &'static str {
    match kind {
        "vpc" => "DescribeVpcs",
        "vswitch" => "DescribeVSwitches",
        "instance" => "DescribeInstances",
        "snapshot" => "DescribeSnapshots",
        _ => "DescribeImages",
    }
}

/// Reaction times: for every resource that became ready (not sshd: no API call follows it), the
/// delay to the next call, and to the next call that is not a poll of that kind (not for an
/// instance becoming Running: SSH, not an API call, follows it).
fn reactions(timeline: &Value, log: &[(u64, String)]) -> (Vec<u64>, Vec<u64>) {
    let (mut poll, mut act) = (Vec::new(), Vec::new());
    for ready in timeline["ready"].as_array().into_iter().flatten() {
        let (Some(kind), Some(status), Some(at)) = (
            ready["kind"].as_str(),
            ready["status"].as_str(),
            ready["at_ms"].as_u64(),
        ) else {
            continue;
        };
        if kind == "ssh" {
            continue;
        }
        if let Some((t, _)) = log.iter().find(|(t, _)| *t >= at) {
            poll.push(t - at);
        }
        if kind == "instance" && status == "Running" {
            continue;
        }
        let next = log
            .iter()
            .find(|(t, action)| *t >= at && action != poll_action(kind));
        if let Some((t, _)) = next {
            act.push(t - at);
        }
    }
    (poll, act)
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

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Median figures of one tool's runs.
struct Summary {
    wall: f64,
    calls: f64,
    intrinsic: f64,
}

fn summarize(tool: &str, runs: &[Run]) -> Summary {
    let ok: Vec<&Run> = runs.iter().filter(|r| r.exit == 0).collect();
    let failed = runs.len() - ok.len();
    let total = |r: &Run| r.calls.values().sum::<u64>() as f64;
    let summary = Summary {
        wall: median(ok.iter().map(|r| r.wall_secs).collect()),
        calls: median(ok.iter().map(|r| total(r)).collect()),
        intrinsic: median(ok.iter().map(|r| r.intrinsic_secs).collect()),
    };
    let actions: std::collections::BTreeSet<&String> =
        ok.iter().flat_map(|r| r.calls.keys()).collect();
    let by_action: BTreeMap<&String, f64> = actions
        .into_iter()
        .map(|a| {
            let n = median(
                ok.iter()
                    .map(|r| *r.calls.get(a).unwrap_or(&0) as f64)
                    .collect(),
            );
            (a, n)
        })
        .collect();
    let lags = |f: fn(&Run) -> &Vec<u64>| {
        median(ok.iter().flat_map(|r| f(r)).map(|v| *v as f64).collect())
    };
    println!("\n{tool}: {} builds ok, {failed} failed", ok.len());
    println!(
        "  median wall {:.2} s; intrinsic (simulator) {:.2} s; wall / intrinsic {:.3} ({:+.1} % overhead)",
        summary.wall,
        summary.intrinsic,
        summary.wall / summary.intrinsic,
        (summary.wall / summary.intrinsic - 1.0) * 100.0
    );
    println!(
        "  median API calls per build {:.0}; by action (median): {by_action:?}",
        summary.calls
    );
    println!(
        "  reaction, ready → next call: median {:.0} ms; ready → next call acting on it: median {:.0} ms",
        lags(|r| &r.poll_lag_ms),
        lags(|r| &r.act_lag_ms)
    );
    for (n, r) in runs.iter().enumerate() {
        println!(
            "  run {n}: exit {}, {:.2} s wall, {} calls, intrinsic {:.2} s, peak RSS {:.1} MiB",
            r.exit,
            r.wall_secs,
            r.calls.values().sum::<u64>(),
            r.intrinsic_secs,
            r.peak_rss_mib
        );
    }
    summary
}

/// The last error Packer's machine-readable log reports.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains(",error,"))
        .map(|l| l.replace("\\n", " "))
        .unwrap_or_else(|| format!("see {}", log.display()))
}

fn packer_available() -> bool {
    Command::new("packer")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let builds: usize = std::env::var("BAKERD_BENCH_BUILDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let profile = std::env::var("BAKERD_BENCH_PROFILE").unwrap_or_else(|_| "fast".into());
    let with_packer = packer_available();
    let data = fresh_data_dir("bench");
    let sim = SimProcess::start_in(&data, &["--profile", &profile]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "bakerd vs Packer: {builds} builds each of benches/fixtures/demo-packer.json, alternating, \
         simulator profile {profile} (logs in {})",
        data.display()
    );
    if !with_packer {
        println!("packer is not installed: the Packer runs are skipped (apt-get install packer)");
    }
    // One state directory, as a user has: what bakerd learned in one build times the next.
    let state = data.join("state");
    let (mut bakerd, mut packer) = (Vec::new(), Vec::new());
    for n in 0..builds {
        let log = data.join(format!("bakerd-{n}.log"));
        bakerd.push(measure(&sim, &rt, bakerd_command(&sim, &state), &log));
        if with_packer {
            let log = data.join(format!("packer-{n}.log"));
            let run = measure(&sim, &rt, packer_command(&sim, &data), &log);
            if run.exit != 0 {
                println!("packer run {n} failed: {}", last_error(&log));
            }
            packer.push(run);
        }
    }
    let ours = summarize("bakerd", &bakerd);
    if with_packer && packer.iter().any(|r| r.exit == 0) {
        let theirs = summarize("packer 1.6.6", &packer);
        println!(
            "\nPacker / bakerd: wall time {:.2}×, API calls {:.2}×",
            theirs.wall / ours.wall,
            theirs.calls / ours.calls
        );
    }
}
