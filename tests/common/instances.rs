//! Simulator instances driven through the API, for tests: key pairs, a network whose group may
//! open tcp/22, instances booted until they answer SSH, and the host processes of instances.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::SimProcess;
use serde_json::{json, Value};

pub const REGION: &str = "cn-hangzhou";
pub const ZONE: &str = "cn-hangzhou-h";
pub const BASE_IMAGE: &str = "ubuntu1404_64_40G_cloudinit_20160427.raw";
pub const INSTANCE_TYPE: &str = "ecs.s2.large";
/// Generous upper bounds for polling; the fast profile needs a second or two.
pub const WAIT: Duration = Duration::from_secs(60);

/// Calls `action` and insists on HTTP 200.
pub async fn ok(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = sim.call(action, params).await;
    assert_eq!(status, 200, "{action} {params:?} failed: {body}");
    body
}

pub fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_string()
}

/// A client key made by ssh-keygen, in a temp dir that lives as long as the key.
pub struct ClientKey {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub public: String,
}

pub fn client_key() -> ClientKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    ClientKey {
        _dir: dir,
        path,
        public: public.trim().to_string(),
    }
}

pub async fn import_key(sim: &SimProcess, name: &str, key: &ClientKey) {
    ok(
        sim,
        "ImportKeyPair",
        &[
            ("RegionId", REGION),
            ("KeyPairName", name),
            ("PublicKeyBody", &key.public),
        ],
    )
    .await;
}

/// A VPC, a vSwitch (both Available) and an empty security group in that VPC.
pub struct Network {
    pub vswitch_id: String,
    pub security_group_id: String,
}

/// Waits until the single `<list>.<item>` entry DescribeX returns for `id` is Available.
pub async fn wait_available(
    sim: &SimProcess,
    action: &str,
    (list, item): (&str, &str),
    id: (&str, &str),
) {
    sim.wait_for(&format!("{} Available", id.1), WAIT, || async {
        let body = ok(sim, action, &[("RegionId", REGION), id]).await;
        let status = body[list][item][0]["Status"].clone();
        (status == "Available").then_some(())
    })
    .await
}

pub async fn network(sim: &SimProcess) -> Network {
    let vpc = ok(
        sim,
        "CreateVpc",
        &[("RegionId", REGION), ("CidrBlock", "172.16.0.0/12")],
    )
    .await;
    let vpc_id = text(&vpc["VpcId"]);
    wait_available(sim, "DescribeVpcs", ("Vpcs", "Vpc"), ("VpcId", &vpc_id)).await;
    let vsw = ok(
        sim,
        "CreateVSwitch",
        &[
            ("RegionId", REGION),
            ("VpcId", &vpc_id),
            ("ZoneId", ZONE),
            ("CidrBlock", "172.16.0.0/24"),
        ],
    )
    .await;
    let vswitch_id = text(&vsw["VSwitchId"]);
    wait_available(
        sim,
        "DescribeVSwitches",
        ("VSwitches", "VSwitch"),
        ("VSwitchId", &vswitch_id),
    )
    .await;
    let sg = ok(
        sim,
        "CreateSecurityGroup",
        &[("RegionId", REGION), ("VpcId", &vpc_id)],
    )
    .await;
    Network {
        vswitch_id,
        security_group_id: text(&sg["SecurityGroupId"]),
    }
}

pub async fn authorize(sim: &SimProcess, group: &str, protocol: &str, ports: &str) {
    ok(
        sim,
        "AuthorizeSecurityGroup",
        &[
            ("RegionId", REGION),
            ("SecurityGroupId", group),
            ("IpProtocol", protocol),
            ("PortRange", ports),
            ("SourceCidrIp", "0.0.0.0/0"),
        ],
    )
    .await;
}

pub async fn run_instance(sim: &SimProcess, image: &str, net: &Network, key_name: &str) -> String {
    let body = ok(
        sim,
        "RunInstances",
        &[
            ("RegionId", REGION),
            ("ImageId", image),
            ("InstanceType", INSTANCE_TYPE),
            ("SecurityGroupId", &net.security_group_id),
            ("VSwitchId", &net.vswitch_id),
            ("KeyPairName", key_name),
        ],
    )
    .await;
    text(&body["InstanceIdSets"]["InstanceIdSet"][0])
}

pub async fn describe_instance(sim: &SimProcess, id: &str) -> Value {
    let ids = json!([id]).to_string();
    let body = ok(
        sim,
        "DescribeInstances",
        &[("RegionId", REGION), ("InstanceIds", &ids)],
    )
    .await;
    body["Instances"]["Instance"][0].clone()
}

/// Waits for `status` and returns the instance's DescribeInstances entry.
pub async fn wait_status(sim: &SimProcess, id: &str, status: &str) -> Value {
    sim.wait_for(&format!("{id} {status}"), WAIT, || async {
        let inst = describe_instance(sim, id).await;
        (inst["Status"] == status).then_some(inst)
    })
    .await
}

pub fn private_ip(inst: &Value) -> String {
    text(&inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0])
}

pub async fn ssh(ip: &str, key: &Path, command: &str) -> Output {
    tokio::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(super::SSH_TEST_OPTIONS)
        .args(["-o", "ConnectTimeout=3"])
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .await
        .expect("run ssh")
}

pub async fn ssh_ok(ip: &str, key: &Path, command: &str) -> String {
    let out = ssh(ip, key, command).await;
    assert!(
        out.status.success(),
        "ssh {ip} {command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until `ssh root@ip true` succeeds (sshd answers only a boot delay after Running).
pub async fn wait_ssh(ip: &str, key: &Path) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = ssh(ip, key, "true").await;
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ssh to {ip} never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn port_22_refuses(ip: &str) -> bool {
    let addr: SocketAddr = format!("{ip}:22").parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

/// Pids of the processes of `data_dir`'s instances: their launchers (whose command line names the
/// data dir) and every process inside their PID namespaces (sshd sessions included).
pub fn sshd_processes_of(data_dir: &Path) -> Vec<u32> {
    let launchers = launchers_of(data_dir);
    let own = std::fs::read_link("/proc/self/ns/pid").expect("own pid namespace");
    let namespaces: Vec<PathBuf> = launchers
        .iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok())
        .filter(|ns| *ns != own)
        .collect();
    live_pids()
        .filter(|pid| {
            launchers.contains(pid)
                || std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .is_ok_and(|ns| namespaces.contains(&ns))
        })
        .collect()
}

/// Host pids of live processes whose command line is exactly `command` (args joined by spaces).
pub fn host_pids_running(command: &str) -> Vec<u32> {
    live_pids()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                String::from_utf8_lossy(&raw)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
                    == command
            })
        })
        .collect()
}

pub fn live_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !is_zombie(*pid))
}

/// The instance launcher processes of `data_dir` (launcher, boot child and init share its
/// command line).
pub fn launchers_of(data_dir: &Path) -> Vec<u32> {
    let data_dir = data_dir.canonicalize().expect("canonical data dir");
    let needle = data_dir.to_string_lossy().into_owned();
    live_pids()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains("__sim-instance") && cmdline.contains(&needle)
        })
        .collect()
}

/// The instance inits of `data_dir`: PID 1 of their own PID namespace.
pub fn instance_inits_of(data_dir: &Path) -> Vec<u32> {
    launchers_of(data_dir)
        .into_iter()
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.first() == Some(&"NSpid:") && fields.len() > 2 && fields.last() == Some(&"1")
            })
        })
        .collect()
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat[stat.rfind(')').map_or(0, |i| i + 1)..]
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Waits (bounded) for the data dir's sshd's to go away; returns the ones still there.
pub async fn sshd_left_after(data_dir: &Path, grace: Duration) -> Vec<u32> {
    let deadline = Instant::now() + grace;
    loop {
        let left = sshd_processes_of(data_dir);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running instance from the base image with a tcp/22 rule and an imported key, SSH answering.
pub struct Booted {
    pub key: ClientKey,
    pub net: Network,
    pub instance_id: String,
    pub ip: String,
}

pub async fn boot_reachable_instance(sim: &SimProcess) -> Booted {
    let key = client_key();
    import_key(sim, "e2e-key", &key).await;
    let net = network(sim).await;
    authorize(sim, &net.security_group_id, "tcp", "22/22").await;
    let instance_id = run_instance(sim, BASE_IMAGE, &net, "e2e-key").await;
    let inst = wait_status(sim, &instance_id, "Running").await;
    let ip = private_ip(&inst);
    wait_ssh(&ip, &key.path).await;
    Booted {
        key,
        net,
        instance_id,
        ip,
    }
}

/// Stops the simulator and removes its data dir (kept when `BAKERD_KEEP_TEST_SIM` is set, and
/// always kept after a failure, since a panicking test never gets here).
pub fn finish(sim: SimProcess) {
    let data_dir = sim.stop();
    remove_data_dir(&data_dir);
}

pub fn remove_data_dir(data_dir: &Path) {
    if std::env::var_os("BAKERD_KEEP_TEST_SIM").is_none() {
        let _ = std::fs::remove_dir_all(data_dir);
    }
}
