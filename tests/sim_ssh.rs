//! The simulator end to end: resources made through the signed ECS API only, instances reached with
//! OpenSSH's own `ssh` client. Files written on an instance survive stop → snapshot → image → new
//! instance; security group rules decide whether SSH answers; public IPs answer too; a restart keeps
//! everything and brings sshd's back; no sshd outlives the simulator; deleting an instance removes
//! its disk. Needs root, openssh-server, openssh-client and busybox-static.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::SimProcess;
use serde_json::{json, Value};

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-h";
const BASE_IMAGE: &str = "ubuntu1404_64_40G_cloudinit_20160427.raw";
const INSTANCE_TYPE: &str = "ecs.s2.large";
/// Generous upper bounds for polling; the fast profile needs a second or two.
const WAIT: Duration = Duration::from_secs(60);

/// Calls `action` and insists on HTTP 200.
async fn ok(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = sim.call(action, params).await;
    assert_eq!(status, 200, "{action} {params:?} failed: {body}");
    body
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_string()
}

/// A client key made by ssh-keygen, in a temp dir that lives as long as the key.
struct ClientKey {
    _dir: tempfile::TempDir,
    path: PathBuf,
    public: String,
}

fn client_key() -> ClientKey {
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

async fn import_key(sim: &SimProcess, name: &str, key: &ClientKey) {
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
struct Network {
    vswitch_id: String,
    security_group_id: String,
}

/// Waits until the single `<list>.<item>` entry DescribeX returns for `id` is Available.
async fn wait_available(
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

async fn network(sim: &SimProcess) -> Network {
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

async fn authorize(sim: &SimProcess, group: &str, protocol: &str, ports: &str) {
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

async fn run_instance(sim: &SimProcess, image: &str, net: &Network, key_name: &str) -> String {
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

async fn describe_instance(sim: &SimProcess, id: &str) -> Value {
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
async fn wait_status(sim: &SimProcess, id: &str, status: &str) -> Value {
    sim.wait_for(&format!("{id} {status}"), WAIT, || async {
        let inst = describe_instance(sim, id).await;
        (inst["Status"] == status).then_some(inst)
    })
    .await
}

fn private_ip(inst: &Value) -> String {
    text(&inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0])
}

async fn ssh(ip: &str, key: &Path, command: &str) -> Output {
    tokio::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .await
        .expect("run ssh")
}

async fn ssh_ok(ip: &str, key: &Path, command: &str) -> String {
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
async fn wait_ssh(ip: &str, key: &Path) {
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

fn port_22_refuses(ip: &str) -> bool {
    let addr: SocketAddr = format!("{ip}:22").parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

/// Pids of the processes of `data_dir`'s instances: their launchers (whose command line names the
/// data dir) and every process inside their PID namespaces (sshd sessions included).
fn sshd_processes_of(data_dir: &Path) -> Vec<u32> {
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

fn live_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !is_zombie(*pid))
}

/// The instance launcher processes of `data_dir` (launcher, boot child and init share its
/// command line).
fn launchers_of(data_dir: &Path) -> Vec<u32> {
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
fn instance_inits_of(data_dir: &Path) -> Vec<u32> {
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

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat[stat.rfind(')').map_or(0, |i| i + 1)..]
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Waits (bounded) for the data dir's sshd's to go away; returns the ones still there.
async fn sshd_left_after(data_dir: &Path, grace: Duration) -> Vec<u32> {
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
struct Booted {
    key: ClientKey,
    net: Network,
    instance_id: String,
    ip: String,
}

async fn boot_reachable_instance(sim: &SimProcess) -> Booted {
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
fn finish(sim: SimProcess) {
    let data_dir = sim.stop();
    remove_data_dir(&data_dir);
}

fn remove_data_dir(data_dir: &Path) {
    if std::env::var_os("BAKERD_KEEP_TEST_SIM").is_none() {
        let _ = std::fs::remove_dir_all(data_dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_written_over_ssh_survives_stop_snapshot_image_and_a_new_instance() {
    let sim = SimProcess::start("e2e-image");
    let a = boot_reachable_instance(&sim).await;
    let os = ssh_ok(&a.ip, &a.key.path, "cat /etc/os-release").await;
    assert!(os.contains("Ubuntu"), "unexpected /etc/os-release: {os}");
    ssh_ok(
        &a.ip,
        &a.key.path,
        "mkdir -p /opt/app && echo 'baked by bakerd' > /opt/app/marker.txt",
    )
    .await;

    ok(&sim, "StopInstance", &[("InstanceId", &a.instance_id)]).await;
    wait_status(&sim, &a.instance_id, "Stopped").await;
    assert!(
        port_22_refuses(&a.ip),
        "a Stopped instance still answers SSH"
    );
    let disks = ok(
        &sim,
        "DescribeDisks",
        &[("RegionId", REGION), ("InstanceId", &a.instance_id)],
    )
    .await;
    assert_eq!(disks["Disks"]["Disk"][0]["Type"], "system");
    let disk_id = text(&disks["Disks"]["Disk"][0]["DiskId"]);
    let snap = ok(&sim, "CreateSnapshot", &[("DiskId", &disk_id)]).await;
    let snapshot_id = text(&snap["SnapshotId"]);
    let snapshot_ids = json!([snapshot_id]).to_string();
    sim.wait_for("snapshot accomplished", WAIT, || async {
        let body = ok(
            &sim,
            "DescribeSnapshots",
            &[("RegionId", REGION), ("SnapshotIds", &snapshot_ids)],
        )
        .await;
        let s = &body["Snapshots"]["Snapshot"][0];
        assert_ne!(s["Status"], "failed");
        (s["Status"] == "accomplished" && s["Progress"] == "100%").then_some(())
    })
    .await;
    let image = ok(
        &sim,
        "CreateImage",
        &[
            ("RegionId", REGION),
            ("SnapshotId", &snapshot_id),
            ("ImageName", "e2e-baked"),
        ],
    )
    .await;
    let image_id = text(&image["ImageId"]);
    sim.wait_for("image Available", WAIT, || async {
        let body = ok(
            &sim,
            "DescribeImages",
            &[
                ("RegionId", REGION),
                ("ImageId", &image_id),
                ("Status", "Creating,Available,CreateFailed"),
            ],
        )
        .await;
        let i = &body["Images"]["Image"][0];
        assert_ne!(i["Status"], "CreateFailed");
        (i["Status"] == "Available").then_some(())
    })
    .await;

    let b_id = run_instance(&sim, &image_id, &a.net, "e2e-key").await;
    let b = wait_status(&sim, &b_id, "Running").await;
    assert_eq!(b["ImageId"], image_id.as_str());
    let b_ip = private_ip(&b);
    assert_ne!(b_ip, a.ip);
    wait_ssh(&b_ip, &a.key.path).await;
    let marker = ssh_ok(&b_ip, &a.key.path, "cat /opt/app/marker.txt").await;
    assert_eq!(marker, "baked by bakerd\n");
    finish(sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_fails_without_a_tcp22_rule_and_works_after_authorize_security_group() {
    let sim = SimProcess::start("e2e-sg");
    let key = client_key();
    import_key(&sim, "sg-key", &key).await;
    let net = network(&sim).await;
    // A rule that does not cover port 22 must not open it.
    authorize(&sim, &net.security_group_id, "tcp", "80/443").await;
    let id = run_instance(&sim, BASE_IMAGE, &net, "sg-key").await;
    let ip = private_ip(&wait_status(&sim, &id, "Running").await);
    // Well past the fast profile's boot delay (400 ms): sshd would answer by now if allowed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(describe_instance(&sim, &id).await["Status"], "Running");
    let out = ssh(&ip, &key.path, "true").await;
    assert!(!out.status.success(), "ssh succeeded without a tcp/22 rule");
    assert!(port_22_refuses(&ip), "port 22 open without a tcp/22 rule");

    authorize(&sim, &net.security_group_id, "tcp", "1/65535").await;
    wait_ssh(&ip, &key.path).await;
    assert_eq!(
        ssh_ok(&ip, &key.path, "echo reachable").await,
        "reachable\n"
    );
    finish(sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_ip_answers_ssh_with_the_private_key_from_create_key_pair() {
    let sim = SimProcess::start("e2e-public");
    let created = ok(
        &sim,
        "CreateKeyPair",
        &[("RegionId", REGION), ("KeyPairName", "generated")],
    )
    .await;
    let keys = tempfile::tempdir().expect("tempdir");
    let key_path = keys.path().join("generated.pem");
    std::fs::write(&key_path, text(&created["PrivateKeyBody"])).expect("write private key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let net = network(&sim).await;
    authorize(&sim, &net.security_group_id, "all", "-1/-1").await;
    let id = run_instance(&sim, BASE_IMAGE, &net, "generated").await;
    let inst = wait_status(&sim, &id, "Running").await;
    let ip = private_ip(&inst);
    wait_ssh(&ip, &key_path).await;

    let allocated = ok(
        &sim,
        "AllocatePublicIpAddress",
        &[("RegionId", REGION), ("InstanceId", &id)],
    )
    .await;
    let public_ip = text(&allocated["IpAddress"]);
    assert_ne!(public_ip, ip);
    let inst = describe_instance(&sim, &id).await;
    assert_eq!(inst["PublicIpAddress"]["IpAddress"][0], public_ip.as_str());
    wait_ssh(&public_ip, &key_path).await;
    assert_eq!(
        ssh_ok(&public_ip, &key_path, "echo via-public").await,
        "via-public\n"
    );
    assert_eq!(
        ssh_ok(&ip, &key_path, "echo via-private").await,
        "via-private\n"
    );
    finish(sim);
}

/// Every resource in the inventory as `id → (kind, status, deleted)`.
async fn inventory_summary(sim: &SimProcess) -> Vec<(String, String, String, Value)> {
    let mut rows: Vec<_> = sim
        .inventory()
        .await
        .iter()
        .map(|r| {
            (
                text(&r["id"]),
                text(&r["kind"]),
                text(&r["status"]),
                r["deleted_ms"].clone(),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_every_resource_and_status_and_a_running_instance_answers_ssh_again() {
    let sim = SimProcess::start("e2e-restart");
    let booted = boot_reachable_instance(&sim).await;
    ssh_ok(
        &booted.ip,
        &booted.key.path,
        "echo before-restart > /marker",
    )
    .await;
    let spare = ok(&sim, "CreateSecurityGroup", &[("RegionId", REGION)]).await;
    let spare_id = text(&spare["SecurityGroupId"]);
    ok(
        &sim,
        "DeleteSecurityGroup",
        &[("RegionId", REGION), ("SecurityGroupId", &spare_id)],
    )
    .await;
    let before = inventory_summary(&sim).await;
    assert!(before.iter().any(|r| r.0 == spare_id && r.2 == "Deleted"));
    assert!(before
        .iter()
        .any(|r| r.0 == booted.instance_id && r.2 == "Running"));

    let data_dir = sim.stop();
    assert_eq!(
        sshd_left_after(&data_dir, Duration::ZERO).await,
        Vec::<u32>::new()
    );
    assert!(port_22_refuses(&booted.ip));

    let sim = SimProcess::start_in(&data_dir, &[]);
    assert_eq!(inventory_summary(&sim).await, before);
    assert_eq!(
        describe_instance(&sim, &booted.instance_id).await["Status"],
        "Running"
    );
    wait_ssh(&booted.ip, &booted.key.path).await;
    assert_eq!(
        ssh_ok(&booted.ip, &booted.key.path, "cat /marker").await,
        "before-restart\n"
    );
    finish(sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sshd_outlives_the_simulator_after_sigterm_or_sigkill() {
    let sim = SimProcess::start("e2e-no-orphans");
    let booted = boot_reachable_instance(&sim).await;
    // A session that would outlive a careless shutdown.
    let mut session = tokio::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(&booted.key.path)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg(format!("root@{}", booted.ip))
        .arg("sleep 600")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ssh session");
    let data_dir = sim.data_dir.clone();
    sim.wait_for("session running", WAIT, || async {
        (sshd_processes_of(&data_dir).len() >= 2).then_some(())
    })
    .await;

    let data_dir = sim.stop();
    assert_eq!(
        sshd_left_after(&data_dir, Duration::ZERO).await,
        Vec::<u32>::new()
    );
    let _ = session.kill().await;

    let sim = SimProcess::start_in(&data_dir, &[]);
    wait_ssh(&booted.ip, &booted.key.path).await;
    assert!(!sshd_processes_of(&data_dir).is_empty());
    let pid = sim.pid().expect("simulator running");
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    // PDEATHSIG is delivered asynchronously; allow a moment, then nothing may be left.
    let left = sshd_left_after(&data_dir, Duration::from_secs(10)).await;
    assert_eq!(
        left,
        Vec::<u32>::new(),
        "sshd's survived SIGKILL of the simulator"
    );
    assert!(port_22_refuses(&booted.ip));
    drop(sim);
    remove_data_dir(&data_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_instance_removes_its_disk_filesystem_and_ends_its_sshd() {
    let sim = SimProcess::start("e2e-delete");
    let booted = boot_reachable_instance(&sim).await;
    let disks = ok(
        &sim,
        "DescribeDisks",
        &[("RegionId", REGION), ("InstanceId", &booted.instance_id)],
    )
    .await;
    let disk_id = text(&disks["Disks"]["Disk"][0]["DiskId"]);
    let disk_dir = sim.data_dir.join("disks").join(&disk_id);
    assert!(disk_dir.join("rootfs/etc/os-release").is_file());

    ok(
        &sim,
        "DeleteInstance",
        &[("InstanceId", &booted.instance_id), ("Force", "true")],
    )
    .await;
    assert!(
        !disk_dir.exists(),
        "{} survived DeleteInstance",
        disk_dir.display()
    );
    let sshd_dir = sim.data_dir.join("sshd").join(&booted.instance_id);
    assert!(
        !sshd_dir.exists(),
        "{} survived DeleteInstance",
        sshd_dir.display()
    );
    assert!(port_22_refuses(&booted.ip));
    let inventory = sim.inventory().await;
    let disk = inventory
        .iter()
        .find(|r| r["id"] == disk_id.as_str())
        .expect("disk in inventory");
    assert_eq!(disk["status"], "Deleted");
    finish(sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_init_dies_is_booted_again_while_it_is_running() {
    let sim = SimProcess::start("e2e-init-dies");
    let booted = boot_reachable_instance(&sim).await;
    let inits = instance_inits_of(&sim.data_dir);
    assert_eq!(inits.len(), 1, "expected one instance init: {inits:?}");
    unsafe { libc::kill(inits[0] as i32, libc::SIGKILL) };
    wait_ssh(&booted.ip, &booted.key.path).await;
    let now = instance_inits_of(&sim.data_dir);
    assert!(!now.contains(&inits[0]) && now.len() == 1, "{now:?}");
    assert_eq!(
        describe_instance(&sim, &booted.instance_id).await["Status"],
        "Running"
    );
    finish(sim);
}
