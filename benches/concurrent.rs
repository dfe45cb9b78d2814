//! Benchmark: N builds in one `bakerd apply` process against one simulator. Prints figures,
//! asserts nothing about speed.
//!
//! `cargo bench --bench concurrent` (env `BAKERD_BENCH_CONCURRENT`, default `1,10,50,100`;
//! `BAKERD_BENCH_PROFILE`, `fast` (default) or `realistic`). For each N: one `apply --parallel N`
//! of N small specs (distinct image names), its wall time, the ratio to one build's wall time,
//! bakerd's peak RSS, how many builds succeeded, the API calls per build, and the CPU seconds spent
//! by bakerd, by the simulator, and by the simulator's reaped children (its instances: their init,
//! `sshd -i` and what provisioners ran), read from `wait4` and `/proc/<sim>/stat`.
//! Goal reported against (issue 12): 100 builds ≤ 1.3× one build's wall time, ≤ 150 MiB.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{fresh_data_dir, SimProcess};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const SPEC: &str = r#"
region: cn-hangzhou
source_image:
  id: ubuntu1404_64_40G_cloudinit_20160427.raw
instance:
  type: ecs.s2.large
ssh:
  username: root
  timeout: 2m
provisioners:
  - shell:
      inline:
        - mkdir -p /etc/bench
        - echo NAME > /etc/bench/name
image:
  name: NAME-{{timestamp}}
timeouts:
  instance: 5m
  snapshot: 5m
  image: 5m
"#;

/// What one `apply` of N specs did.
struct Figures {
    wall_secs: f64,
    peak_rss_mib: f64,
    /// User + system CPU seconds of the apply process.
    cpu_secs: f64,
    exit: i32,
    built: usize,
}

/// Runs one `bakerd apply --parallel N dir/` and measures it (wait4 gives the peak RSS).
fn run_apply(sim: &SimProcess, dir: &Path, n: usize) -> Figures {
    for i in 0..n {
        let name = format!("bench-{n}-{i}");
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            SPEC.replace("NAME", &name),
        )
        .expect("spec");
    }
    let log = std::fs::File::create(dir.join("apply.log")).expect("log");
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports peak RSS
    let child = Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .args(["apply", "--force", "--json", "--parallel", &n.to_string()])
        .arg(dir)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", common::ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn bakerd");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall_secs = started.elapsed().as_secs_f64();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let text = std::fs::read_to_string(dir.join("apply.log")).unwrap_or_default();
    let built = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "succeeded")
        .count();
    Figures {
        wall_secs,
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
        exit: libc::WEXITSTATUS(status),
        built,
    }
}

fn total_calls(calls: &Value) -> u64 {
    calls["counts"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of process `pid` itself and of its reaped children, from
/// `/proc/<pid>/stat` (fields 14–17, in clock ticks).
fn cpu_of(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0) / ticks;
    (field(14) + field(15), field(16) + field(17))
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BAKERD_BENCH_CONCURRENT")
        .unwrap_or_else(|_| "1,10,50,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let profile = std::env::var("BAKERD_BENCH_PROFILE").unwrap_or_else(|_| "fast".into());
    let data = fresh_data_dir("bench-concurrent");
    let sim = SimProcess::start_in(&data, &["--profile", &profile]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("bakerd concurrent builds benchmark: one apply process per row, simulator profile {profile}");
    println!(
        "{:>5}  {:>9}  {:>8}  {:>13}  {:>6}  {:>10}  {:>25}  exit",
        "N", "wall", "× one", "peak RSS", "built", "calls/build", "CPU-s bakerd/sim/children"
    );
    let sim_pid = sim.pid().expect("simulator running");
    let mut one = None;
    for n in sizes {
        let dir = data.join(format!("n-{n}"));
        std::fs::create_dir_all(&dir).expect("bench dir");
        let before = total_calls(&rt.block_on(sim.calls()));
        let (sim_cpu, children_cpu) = cpu_of(sim_pid);
        let f = run_apply(&sim, &dir, n);
        let calls = total_calls(&rt.block_on(sim.calls())) - before;
        let (sim_after, children_after) = cpu_of(sim_pid);
        let cpu = format!(
            "{:.1}/{:.1}/{:.1}",
            f.cpu_secs,
            sim_after - sim_cpu,
            children_after - children_cpu
        );
        let base = *one.get_or_insert(f.wall_secs);
        println!(
            "{n:>5}  {:>8.2}s  {:>7.2}×  {:>9.1} MiB  {:>6}  {:>10.1}  {cpu:>25}  {}",
            f.wall_secs,
            f.wall_secs / base,
            f.peak_rss_mib,
            f.built,
            calls as f64 / n as f64,
            f.exit
        );
    }
    println!("goal (issue 12): 100 builds ≤ 1.3× one build's wall time and ≤ 150 MiB peak RSS");
    drop(sim);
    let _ = std::fs::remove_dir_all(&data);
}
