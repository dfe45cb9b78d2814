//! Benchmark: what an isolated instance costs to start. Prints figures, asserts nothing about
//! speed.
//!
//! `cargo bench --bench instance_start` (env: `BAKERD_BENCH_STARTS`, runs per measure, default
//! 10). Two measures, each as median and p90:
//!
//! - **API**: one instance of the real simulator binary (fast profile) stopped and started again
//!   N times: StartInstance → `/_sim/timeline` says its port 22 listens → the first `ssh true`
//!   (OpenSSH's client) succeeds. Also split: how late the port opened after the profile made it
//!   due (the machine work the profile's boot delay did not hide), and the first SSH command alone.
//! - **Machine**: the simulator's machine layer in-process (`Machines`, the same launcher binary):
//!   boot an instance's namespaces until its init is up, open its SSH (host key, authorized keys,
//!   port 22), the first `ssh true`, `true` run inside without SSH (what entering an instance
//!   costs every connection and command), and stop it.
//!
//! - **Baseline**: a plain `sshd -D` of the host (host root, no namespaces, the round-1 kind of
//!   instance SSH): its start until port 22 accepts, and the first `ssh true`.
//!
//! The fast profile itself spends 300 ms in Pending/Starting and waits 400 ms of "boot" before
//! port 22 opens; those are the simulated cloud's latency, not the isolation's cost.

#[path = "../tests/common/mod.rs"]
mod common;

use bakerd::sim::machine::{ExecRequest, InstanceBoot, Machines, SshTarget};
use common::instances::{self, Booted, REGION};
use common::{fresh_data_dir, SimProcess};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

fn runs() -> usize {
    std::env::var("BAKERD_BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// `(median, p90)` of `values` in ms.
fn median_p90(mut values: Vec<f64>) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

fn print_figure(what: &str, values: Vec<f64>) {
    let (median, p90) = median_p90(values);
    println!("  {what:<58} median {median:>7.0} ms   p90 {p90:>7.0} ms");
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `ssh booting → listening` transition of `id` at or after `since`: `(due_ms, at_ms)`.
async fn ssh_listening(sim: &SimProcess, id: &str, since: u64) -> (u64, u64) {
    let path = format!("/_sim/timeline?since_ms={since}");
    sim.wait_for("port 22 listening", instances::WAIT, || async {
        let timeline = sim.get_json(&path).await;
        timeline["transitions"].as_array()?.iter().find_map(|t| {
            (t["kind"] == "ssh" && t["id"] == id && t["to"] == "listening")
                .then(|| (t["due_ms"].as_u64().unwrap(), t["at_ms"].as_u64().unwrap()))
        })
    })
    .await
}

/// Runs `ssh true` until it succeeds; returns how long the successful one took (ms).
fn first_ssh(ip: &str, key: &Path) -> f64 {
    let deadline = Instant::now() + instances::WAIT;
    loop {
        let started = Instant::now();
        if common::ssh_run(ip, key, "true").status.success() {
            return ms_since(started);
        }
        assert!(Instant::now() < deadline, "ssh to {ip} never answered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// StartInstance → SSH, N times on one instance of the real simulator.
fn api_measure(rt: &tokio::runtime::Runtime, n: usize) {
    let data = fresh_data_dir("bench-start");
    let sim = SimProcess::start_in(&data, &[]);
    let Booted {
        key,
        instance_id: id,
        ip,
        ..
    } = rt.block_on(instances::boot_reachable_instance(&sim));
    let (mut total, mut late, mut ssh) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        rt.block_on(async {
            instances::ok(&sim, "StopInstance", &[("InstanceId", &id)]).await;
            instances::wait_status(&sim, &id, "Stopped").await;
        });
        let since = now_ms();
        let started = Instant::now();
        let (due, at) = rt.block_on(async {
            instances::ok(&sim, "StartInstance", &[("InstanceId", &id)]).await;
            ssh_listening(&sim, &id, since).await
        });
        ssh.push(first_ssh(&ip, &key.path));
        total.push(ms_since(started));
        late.push(at.saturating_sub(due) as f64);
    }
    println!("API, real simulator (fast profile), {n} starts of {id} in {REGION}:");
    print_figure("StartInstance → first `ssh true` succeeded", total);
    print_figure("port 22 opened after it was due (machine work)", late);
    print_figure("first `ssh true` once port 22 listened", ssh);
    instances::finish(sim);
}

/// A random loopback address in 127.78.0.0/16 for the in-process measure's port 22.
fn random_ip() -> Ipv4Addr {
    let n = rand::random::<u16>();
    Ipv4Addr::new(127, 78, (n >> 8) as u8, (n as u8).max(1))
}

/// Boot, SSH and stop through `Machines` in-process, N times.
fn machine_measure(n: usize) {
    let data = fresh_data_dir("bench-machine");
    let machines = Machines::with_executable(&data, Path::new(env!("CARGO_BIN_EXE_bakerd")))
        .expect("machines");
    let os = "NAME=\"Ubuntu\"\nID=ubuntu\n";
    machines.ensure_base_image("m-base", os).expect("image");
    machines
        .create_disk_from_image("d-1", "m-base")
        .expect("disk");
    let keys = tempfile::tempdir().expect("key dir");
    let (key, public) = common::ssh_keygen(keys.path(), "key");
    let (mut boot, mut open, mut ssh, mut stop) = (vec![], vec![], vec![], vec![]);
    let mut enter = Vec::new();
    for run in 0..n {
        let id = format!("i-bench{run}");
        let started = Instant::now();
        let spec = InstanceBoot {
            instance_id: id.clone(),
            system_disk_id: "d-1".into(),
            hostname: id.clone(),
            data_disks: Vec::new(),
        };
        machines.ensure_running(&spec).expect("boot");
        boot.push(ms_since(started));
        let ip = random_ip();
        let target = SshTarget {
            instance_id: id.clone(),
            disk_id: "d-1".into(),
            addresses: vec![ip],
            authorized_keys: public.clone(),
            root_password_hash: None,
        };
        let started = Instant::now();
        machines.ensure_sshd(&target).expect("sshd");
        open.push(ms_since(started));
        ssh.push(first_ssh(&ip.to_string(), &key));
        let started = Instant::now();
        let request = ExecRequest {
            argv: vec!["true".into()],
            stdin: Vec::new(),
            env: Vec::new(),
            timeout: instances::WAIT,
        };
        let done = machines.exec_in_instance(&id, &request).expect("exec");
        assert_eq!(done.exit_code, Some(0), "{done:?}");
        enter.push(ms_since(started));
        let started = Instant::now();
        machines.forget_instance(&id).expect("stop");
        stop.push(ms_since(started));
    }
    println!("Machine layer in-process, {n} instances:");
    print_figure("boot namespaces until the init is up", boot);
    print_figure("open SSH (host key, authorized keys, port 22)", open);
    print_figure(
        "first `ssh true` (sshd -i started inside per connection)",
        ssh,
    );
    print_figure("`true` run inside without SSH (entering costs)", enter);
    print_figure("stop (whole PID namespace killed and reaped)", stop);
    drop(machines);
    instances::remove_data_dir(&data);
}

/// A host `sshd -D` (no namespaces, host root: the round-1 kind of instance SSH) on `ip:22`,
/// accepting `public`; returns the child once port 22 accepts.
fn host_sshd(dir: &Path, ip: Ipv4Addr, public: &str) -> std::process::Child {
    let (host_key, _) = common::ssh_keygen(dir, "host_key");
    std::fs::write(dir.join("authorized_keys"), format!("{public}\n")).expect("keys");
    let config = format!(
        "ListenAddress {ip}:22\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\n\
         PasswordAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n",
        host_key.display(),
        dir.join("authorized_keys").display(),
    );
    std::fs::write(dir.join("sshd_config"), config).expect("config");
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let child = std::process::Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .spawn()
        .expect("start the host's sshd");
    let deadline = Instant::now() + instances::WAIT;
    while std::net::TcpStream::connect((ip, 22)).is_err() {
        assert!(Instant::now() < deadline, "host sshd never listened");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child
}

/// The same first `ssh true` against a plain host sshd, N times: what a connection costs
/// without the instance's namespaces (the round-1 design ran such an sshd per instance).
fn baseline_measure(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, public) = common::ssh_keygen(dir.path(), "key");
    let (mut start, mut ssh) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let ip = random_ip();
        let started = Instant::now();
        let mut sshd = host_sshd(dir.path(), ip, &public);
        start.push(ms_since(started));
        ssh.push(first_ssh(&ip.to_string(), &key));
        let _ = sshd.kill();
        let _ = sshd.wait();
        let _ = std::fs::remove_file(dir.path().join("host_key"));
        let _ = std::fs::remove_file(dir.path().join("host_key.pub"));
    }
    println!("Baseline: a plain host sshd (no isolation), {n} starts:");
    print_figure("start sshd until port 22 accepts", start);
    print_figure("first `ssh true`", ssh);
}

fn main() {
    let n = runs();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    api_measure(&rt, n);
    machine_measure(n);
    baseline_measure(n);
}
