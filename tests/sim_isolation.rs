//! The simulator's instances, attacked from inside as a hostile spec or Packer template would:
//! root in an instance started through the API, over SSH with OpenSSH's own client, tries to
//! reach the host (a fresh `/proc` and `chroot` into a host process's root, mounts, device
//! nodes, kernel modules, another process's memory, signals, the simulator's port, forwarding),
//! to outlive its instance, and to make DeleteInstance or CreateSnapshot touch host files.
//! Every check asserts what happened on the host (files, mounts, processes), which on the
//! round-1 design (a chroot, host root, host namespaces) the same commands changed.
//! Needs root, openssh-server, openssh-client and busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::instances::*;
use common::SimProcess;
use serde_json::{json, Value};

/// A host process that a test expects to survive; killed when dropped.
struct HostCanary(Child);

impl HostCanary {
    fn start() -> Self {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("start a host sleep");
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for HostCanary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory on the host (under the test's temp dir) holding `secret` = "host data\n".
fn host_canary_dir(parent: &Path) -> PathBuf {
    let dir = parent.join("host-canary");
    std::fs::create_dir_all(&dir).expect("create host canary dir");
    std::fs::write(dir.join("secret"), "host data\n").expect("write host canary");
    dir
}

/// `major minor` of the host's first block device (from /proc/partitions), `8 0` if it has none.
fn host_block_device() -> String {
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    partitions
        .lines()
        .skip(2)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() == 4).then(|| format!("{} {}", fields[0], fields[1]))
        })
        .unwrap_or_else(|| "8 0".into())
}

/// Whether the host's mount table has a mount point at `path`.
fn host_has_mount_at(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let wanted = path.to_string_lossy();
    table
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(&*wanted))
}

/// The value of `key` in `key value` lines of the escape script's output.
fn reported<'a>(output: &'a str, key: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .collect()
}

/// The attacker's script: everything the round-1 chroot let instance root do to the host.
fn escape_script(host: &Path, sim_pid: u32, host_pid: u32, sim_port: &str) -> String {
    let (dir, mount_target) = (host.join("host-canary"), host.join("mount-target"));
    let (dir, mount_target) = (dir.display(), mount_target.display());
    let block = host_block_device();
    format!(
        r#"H={dir}
M={mount_target}
echo "uid $(id -u)"
mkdir -p /run/p && mount -t proc proc /run/p && echo "proc-mounted yes"
for d in /run/p/[0-9]*; do
  pid=${{d##*/}}
  [ -e "$d/root$H/secret" ] && echo "host-root-visible $pid"
  chroot "$d/root" sh -c "mkdir -p $H && touch $H/escaped-$pid" 2>/dev/null && echo "chrooted $pid"
done
echo "inside-listing $(ls $H | tr '\n' ' ')"
mkdir -p $M && mount -t tmpfs planted $M && echo planted > $M/planted && echo "mounted-over yes"
mknod /root/blk b {block} 2>/dev/null
echo "block-bytes $(dd if=/root/blk bs=512 count=1 2>/dev/null | wc -c)"
head -c 256 /dev/urandom > /root/bogus.ko
insmod /root/bogus.ko 2>/root/insmod.err; echo "insmod-exit $?"; echo "insmod-says $(cat /root/insmod.err)"
for p in /proc /run/p; do
  cat $p/{sim_pid}/environ 2>/dev/null | tr '\0' '\n' | grep BAKERD_ISOLATION_CANARY
  a=$(cut -d- -f1 $p/{sim_pid}/maps 2>/dev/null | head -n 1)
  [ -n "$a" ] && echo "mem-bytes $(dd if=$p/{sim_pid}/mem bs=1 skip=$((0x$a)) count=16 2>/dev/null | wc -c)"
done
kill -TERM {host_pid} 2>/dev/null; kill -KILL {host_pid} 2>/dev/null
echo "sim-port-bytes $(printf 'GET /_sim/inventory HTTP/1.0\r\n\r\n' | nc -w 2 127.0.0.1 {sim_port} 2>/dev/null | wc -c)"
echo done
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn root_in_an_instance_cannot_chroot_into_a_host_process_mount_mknod_load_modules_read_host_memory_or_signal_host_processes(
) {
    let canary_env = format!("BAKERD_ISOLATION_CANARY=c{}", uuid::Uuid::new_v4().simple());
    let (name, value) = canary_env.split_once('=').unwrap();
    let data_dir = common::fresh_data_dir("iso-escape");
    let sim = SimProcess::start_with_env(&data_dir, &[], &[(name, value)]);
    let host = tempfile::tempdir().expect("host temp dir");
    let host_dir = host_canary_dir(host.path());
    let mount_target = host.path().join("mount-target");
    std::fs::create_dir(&mount_target).expect("host mount target");
    let mut host_process = HostCanary::start();
    let booted = boot_reachable_instance(&sim).await;
    let sim_port = sim.host.rsplit(':').next().unwrap().to_string();
    let script = escape_script(
        host.path(),
        sim.pid().unwrap(),
        host_process.pid(),
        &sim_port,
    );

    let out = ssh(&booted.ip, &booted.key.path, &script).await;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!(
        "{said}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("done"), "the script did not finish: {report}");
    assert_eq!(reported(&said, "uid"), ["0"], "{report}");
    // The attack ran (root inside may mount a proc and chroot), but only into the instance.
    assert_eq!(reported(&said, "proc-mounted"), ["yes"], "{report}");
    assert!(!reported(&said, "chrooted").is_empty(), "{report}");
    assert!(reported(&said, "host-root-visible").is_empty(), "{report}");
    let on_host: Vec<String> = std::fs::read_dir(&host_dir)
        .expect("host canary dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_host, ["secret"], "files appeared on the host: {report}");
    // The chroot landed in the instance's own tree, where the host path is just a directory.
    let inside = reported(&said, "inside-listing").join(" ");
    for pid in reported(&said, "chrooted") {
        assert!(inside.contains(&format!("escaped-{pid}")), "{report}");
    }
    assert_eq!(reported(&said, "mounted-over"), ["yes"], "{report}");
    assert!(
        !host_has_mount_at(&mount_target),
        "a mount made in the instance appeared on the host: {report}"
    );
    assert_eq!(
        std::fs::read_dir(&mount_target).unwrap().count(),
        0,
        "a file appeared in the host directory: {report}"
    );
    assert_eq!(reported(&said, "block-bytes"), ["0"], "{report}");
    assert!(
        !said.contains(value),
        "the simulator's environment leaked: {report}"
    );
    for bytes in reported(&said, "mem-bytes") {
        assert_eq!(bytes, "0", "host memory was readable: {report}");
    }
    assert!(host_process.alive(), "a host process died: {report}");
    assert_eq!(reported(&said, "sim-port-bytes"), ["0"], "{report}");
    assert_ne!(reported(&said, "insmod-exit"), ["0"], "{report}");
    if Path::new("/proc/modules").exists() {
        // EPERM: refused for lack of CAP_SYS_MODULE, before the kernel even parsed the file
        // (host root would get "invalid module format").
        let says = reported(&said, "insmod-says").join(" ");
        assert!(says.contains("not permitted"), "{report}");
    } else {
        eprintln!("this kernel has no module support: the insmod check cannot tell more");
    }
    finish(sim);
}

/// The host's view of a process: (real, effective, saved, fs) uids from `Uid:`.
fn host_uids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid:");
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("uid"))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pid_namespace(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// Waits until exactly one host process runs `command` (arguments joined by spaces).
async fn one_host_pid_running(command: &str) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let pids = host_pids_running(command);
        if pids.len() == 1 {
            return pids[0];
        }
        assert!(Instant::now() < deadline, "{command:?} runs as {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `sleep` with a number no other test uses, as its host command line.
fn unique_sleep() -> String {
    format!("sleep {}", 100_000 + rand::random::<u32>() % 800_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_session_and_what_it_starts_run_as_the_unprivileged_id_range_on_the_host() {
    let sim = SimProcess::start("iso-uids");
    let booted = boot_reachable_instance(&sim).await;
    let base: u32 = std::fs::read_to_string(sim.data_dir.join("uid-base"))
        .expect("uid-base")
        .trim()
        .parse()
        .expect("uid base");
    assert!(base >= 1_048_576, "uid base {base}");
    let detached = unique_sleep();
    ssh_ok(
        &booted.ip,
        &booted.key.path,
        &format!("setsid {detached} > /dev/null 2>&1 < /dev/null &"),
    )
    .await;
    let in_session = unique_sleep();
    let mut session = tokio::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(&booted.key.path)
        .args(common::SSH_TEST_OPTIONS)
        .arg(format!("root@{}", booted.ip))
        .arg(&in_session)
        .kill_on_drop(true)
        .spawn()
        .expect("ssh session");

    let inits = instance_inits_of(&sim.data_dir);
    assert_eq!(inits.len(), 1, "{inits:?}");
    let instance_ns = pid_namespace(inits[0]).expect("instance pid namespace");
    let mut checked = Vec::new();
    for command in [&detached, &in_session] {
        // The sleep, then its parents up to the instance's init: the shell, the sshd session
        // process and `sshd -i` of the connection.
        let mut pid = Some(one_host_pid_running(command).await);
        while let Some(p) = pid.filter(|p| pid_namespace(*p).as_ref() == Some(&instance_ns)) {
            let uids = host_uids(p);
            assert!(
                uids.iter().all(|uid| *uid >= base && *uid < base + 65_536),
                "host process {p} ({command}'s chain) runs as uids {uids:?}, base {base}"
            );
            checked.push(p);
            pid = parent_of(p);
        }
    }
    // sleep + sh for the detached one; sleep, sh, sshd session and sshd -i for the held one.
    assert!(checked.len() >= 4, "checked only {checked:?}");
    let _ = session.kill().await;
    finish(sim);
}

/// OpenSSH's client with the test key and no host key checks, against `ip`.
fn ssh_client(key: &Path, ip: &str) -> Command {
    let mut command = Command::new("ssh");
    command
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(common::SSH_TEST_OPTIONS)
        .args(["-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=5"])
        .arg(format!("root@{ip}"));
    command
}

/// What comes back from `stream` after sending `request`, until it closes or goes quiet.
fn exchange(stream: &mut std::net::TcpStream, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let _ = stream.write_all(request);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn free_local_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What `ssh -W target` delivers back for `request` on its stdin.
fn stdio_forward(key: &Path, ip: &str, target: &str, request: &[u8]) -> String {
    use std::io::Write;
    let mut ssh = ssh_client(key, ip)
        .args(["-W", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh -W");
    let _ = ssh.stdin.take().expect("stdin").write_all(request);
    let out = ssh.wait_with_output().expect("ssh -W output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a connection through `ssh -L <port>:target` gets back for `request`.
fn local_forward(key: &Path, ip: &str, target: &str, request: &[u8]) -> String {
    let port = free_local_port();
    let mut ssh = ssh_client(key, ip)
        .args(["-N", "-L", &format!("127.0.0.1:{port}:{target}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh -L");
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break stream;
        }
        assert!(Instant::now() < deadline, "ssh -L never listened");
        std::thread::sleep(Duration::from_millis(50));
    };
    let answer = exchange(&mut stream, request);
    let _ = ssh.kill();
    let _ = ssh.wait();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_over_an_instance_ssh_is_refused_and_a_forward_enabled_by_root_inside_reaches_only_the_instance(
) {
    let sim = SimProcess::start("iso-forward");
    let booted = boot_reachable_instance(&sim).await;
    let (key, ip) = (booted.key.path.clone(), booted.ip.clone());
    // A listener inside the instance, and the simulator's own port on the host's loopback.
    let greeting = "inside-listener";
    let check = format!(
        "setsid nc -ll -p 8080 -e echo {greeting} > /dev/null 2>&1 < /dev/null & \
         for i in $(seq 100); do a=$(nc 127.0.0.1 8080 < /dev/null) && [ -n \"$a\" ] && break; \
         sleep 0.1; done; echo \"$a\""
    );
    assert_eq!(ssh_ok(&ip, &key, &check).await.trim(), greeting);
    let to_sim = format!(
        "GET /_sim/inventory HTTP/1.0\r\nX-Bakerd-Sim-Token: {}\r\n\r\n",
        sim.sim_token
    );
    for (target, request) in [("127.0.0.1:8080", "hi\n"), (sim.host.as_str(), &*to_sim)] {
        let got = stdio_forward(&key, &ip, target, request.as_bytes());
        assert!(got.is_empty(), "ssh -W {target} got {got:?}");
        let got = local_forward(&key, &ip, target, request.as_bytes());
        assert!(got.is_empty(), "ssh -L to {target} got {got:?}");
    }
    // -R: the server refuses to listen for us (and the client gives up on that).
    let remote = ssh_client(&key, &ip)
        .args(["-R", "0:127.0.0.1:22"])
        .arg("sleep 1; echo listened")
        .stdin(Stdio::null())
        .output()
        .expect("ssh -R");
    assert!(!remote.status.success(), "-R was allowed: {remote:?}");
    assert!(!String::from_utf8_lossy(&remote.stdout).contains("listened"));

    // Root inside owns its sshd_config and may turn forwarding on: it then reaches the
    // instance's own loopback, still never the host's (the instance has its own network).
    let enable = "sed -i 's/Forwarding no/Forwarding yes/' /etc/ssh/sshd_config";
    ssh_ok(&ip, &key, enable).await;
    let inside = stdio_forward(&key, &ip, "127.0.0.1:8080", b"hi\n");
    assert_eq!(inside.trim(), greeting, "forwarding did not turn on");
    let got = stdio_forward(&key, &ip, &sim.host, to_sim.as_bytes());
    assert!(got.is_empty(), "a forward reached the simulator: {got:?}");
    finish(sim);
}

/// A build spec for the simulator with these provisioners (YAML list items).
fn spec_yaml(provisioners: &str) -> String {
    common::sim_spec("isolation-{{timestamp}}", "", provisioners)
}

/// Runs `bakerd apply` on `provisioners` against `sim`; returns (exit code, all output).
fn apply(sim: &SimProcess, dir: &Path, provisioners: &str) -> (i32, String) {
    let spec = common::write_spec(dir, &spec_yaml(provisioners));
    let state = dir.join("state");
    let out = common::run_bakerd(
        &[
            "apply",
            spec.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[("BAKERD_ECS_ENDPOINT", &sim.endpoint)],
    );
    let all = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), all)
}

/// The `/_sim/timeline` transitions of `kind`, as `(id, from, to)`.
async fn transitions(sim: &SimProcess, kind: &str) -> Vec<(String, String, String)> {
    let timeline = sim.get_json("/_sim/timeline").await;
    let field = |t: &Value, name: &str| t[name].as_str().unwrap_or_default().to_string();
    timeline["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter(|t| t["kind"] == kind)
        .map(|t| (field(t, "id"), field(t, "from"), field(t, "to")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reboot_provisioner_reboots_only_the_instance_and_the_build_goes_on_and_succeeds() {
    let sim = SimProcess::start("iso-reboot");
    let dir = tempfile::tempdir().expect("spec dir");
    let marker = unique_sleep();
    let provisioners = format!(
        r#"  - shell:
      inline:
        - setsid {marker} > /dev/null 2>&1 < /dev/null &
        - echo before > /root/before
        - for i in $(seq 50); do ps -o args | grep -qx '{marker}' && break; sleep 0.1; done
        - ps -o args | grep -qx '{marker}'
  - shell:
      inline:
        - reboot
      expect_disconnect: true
  - shell:
      inline:
        - cat /root/before
        - if ps -o args | grep -qx '{marker}'; then echo marker survived the reboot; exit 1; fi
        - echo after > /root/after
"#
    );
    let (code, output) = apply(&sim, dir.path(), &provisioners);
    assert_eq!(code, 0, "the build failed: {output}");

    let guest = transitions(&sim, "guest").await;
    assert_eq!(guest.len(), 1, "one guest event expected: {guest:?}");
    let (instance, _, what) = &guest[0];
    assert_eq!(what, "rebooted");
    let instance_changes: Vec<(String, String)> = transitions(&sim, "instance")
        .await
        .into_iter()
        .filter(|(id, _, _)| id == instance)
        .map(|(_, from, to)| (from, to))
        .collect();
    assert!(
        !instance_changes.contains(&("Running".into(), "Stopped".into())),
        "the reboot stopped the instance: {instance_changes:?}"
    );
    finish(sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn poweroff_inside_an_instance_leaves_it_stopped_and_start_instance_boots_it_again() {
    let sim = SimProcess::start("iso-poweroff");
    let booted = boot_reachable_instance(&sim).await;
    let id = booted.instance_id.clone();
    let inits = instance_inits_of(&sim.data_dir);
    let _ = ssh(&booted.ip, &booted.key.path, "poweroff").await;
    wait_status(&sim, &id, "Stopped").await;
    assert!(
        port_22_refuses(&booted.ip),
        "a powered-off instance answers SSH"
    );
    assert!(sshd_left_after(&sim.data_dir, WAIT).await.is_empty());
    assert!(inits.iter().all(|pid| is_zombie(*pid)), "{inits:?}");
    let guest = transitions(&sim, "guest").await;
    assert_eq!(
        guest,
        [(id.clone(), "running".into(), "powered-off".into())]
    );
    assert!(transitions(&sim, "instance").await.contains(&(
        id.clone(),
        "Running".into(),
        "Stopped".into()
    )));

    ok(&sim, "StartInstance", &[("InstanceId", &id)]).await;
    wait_status(&sim, &id, "Running").await;
    wait_ssh(&booted.ip, &booted.key.path).await;
    finish(sim);
}

/// Every regular file under `root` (no symlink followed) whose content is `content`.
fn files_with_content(root: &Path, content: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && std::fs::read(entry.path()).is_ok_and(|c| c == content.as_bytes())
            {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Waits until snapshot `id` is accomplished.
async fn wait_snapshot(sim: &SimProcess, id: &str) {
    let ids = json!([id]).to_string();
    sim.wait_for("snapshot accomplished", WAIT, || async {
        let body = ok(
            sim,
            "DescribeSnapshots",
            &[("RegionId", REGION), ("SnapshotIds", &ids)],
        )
        .await;
        let status = body["Snapshots"]["Snapshot"][0]["Status"].clone();
        assert_ne!(status, "failed");
        (status == "accomplished").then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_image_and_delete_leave_the_host_targets_of_symlinks_and_bind_mounts_intact() {
    let sim = SimProcess::start("iso-delete");
    let host = tempfile::tempdir().expect("host temp dir");
    let host_dir = host_canary_dir(host.path());
    let booted = boot_reachable_instance(&sim).await;
    let h = host_dir.display();
    let depth = "../".repeat(20);
    ssh_ok(
        &booted.ip,
        &booted.key.path,
        &format!(
            "cd /root && ln -s {h} abs-dir && ln -s {h}/secret abs-file \
             && ln -s {depth}{h} rel-dir \
             && mkdir -p a b bin-over && echo own > a/own && mount --bind a b \
             && mount --bind /bin bin-over && mount -t tmpfs t /mnt && echo mine > own"
        ),
    )
    .await;
    let disks = ok(
        &sim,
        "DescribeDisks",
        &[("RegionId", REGION), ("InstanceId", &booted.instance_id)],
    )
    .await;
    let disk_id = text(&disks["Disks"]["Disk"][0]["DiskId"]);
    let snapshot = ok(&sim, "CreateSnapshot", &[("DiskId", &disk_id)]).await;
    let snapshot_id = text(&snapshot["SnapshotId"]);
    wait_snapshot(&sim, &snapshot_id).await;
    let image = ok(
        &sim,
        "CreateImage",
        &[("RegionId", REGION), ("SnapshotId", &snapshot_id)],
    )
    .await;
    let image_id = text(&image["ImageId"]);
    wait_available(
        &sim,
        "DescribeImages",
        ("Images", "Image"),
        ("ImageId", &image_id),
    )
    .await;

    for tree in [
        sim.data_dir.join("snapshots").join(&snapshot_id),
        sim.data_dir.join("images").join(&image_id),
    ] {
        let root = tree.join("rootfs/root");
        assert_eq!(std::fs::read_to_string(root.join("own")).unwrap(), "mine\n");
        assert!(root
            .join("abs-file")
            .symlink_metadata()
            .unwrap()
            .is_symlink());
        assert!(root
            .join("rel-dir")
            .symlink_metadata()
            .unwrap()
            .is_symlink());
        assert_eq!(
            files_with_content(&tree, "host data\n"),
            Vec::<PathBuf>::new(),
            "a host file was copied into {}",
            tree.display()
        );
    }
    ok(
        &sim,
        "DeleteInstance",
        &[("InstanceId", &booted.instance_id), ("Force", "true")],
    )
    .await;
    let disk_dir = sim.data_dir.join("disks").join(&disk_id);
    assert!(
        !disk_dir.exists(),
        "{} survived DeleteInstance",
        disk_dir.display()
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("secret")).expect("the host file is gone"),
        "host data\n"
    );
    assert!(Path::new("/bin/sh").exists());
    finish(sim);
}

/// Whether host process `pid` ended (or is a zombie) within [`WAIT`]: parent-death signals
/// travel down a chain of processes asynchronously.
async fn gone_soon(pid: u32) -> bool {
    let deadline = Instant::now() + WAIT;
    while !is_zombie(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    is_zombie(pid)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_process_dies_with_delete_instance_and_with_the_simulator_on_sigterm_and_sigkill(
) {
    let sim = SimProcess::start("iso-orphans");
    let first = boot_reachable_instance(&sim).await;
    let detach = |marker: &str| format!("setsid {marker} > /dev/null 2>&1 < /dev/null &");
    let marker = unique_sleep();
    ssh_ok(&first.ip, &first.key.path, &detach(&marker)).await;
    let pid = one_host_pid_running(&marker).await;
    ok(
        &sim,
        "DeleteInstance",
        &[("InstanceId", &first.instance_id), ("Force", "true")],
    )
    .await;
    assert!(gone_soon(pid).await, "{marker} outlived DeleteInstance");

    let second_id = run_instance(&sim, BASE_IMAGE, &first.net, "e2e-key").await;
    let ip = private_ip(&wait_status(&sim, &second_id, "Running").await);
    wait_ssh(&ip, &first.key.path).await;
    let marker = unique_sleep();
    ssh_ok(&ip, &first.key.path, &detach(&marker)).await;
    let pid = one_host_pid_running(&marker).await;
    let data_dir = sim.stop();
    assert!(
        gone_soon(pid).await,
        "{marker} outlived SIGTERM of the simulator"
    );

    let sim = SimProcess::start_in(&data_dir, &[]);
    wait_ssh(&ip, &first.key.path).await;
    let marker = unique_sleep();
    ssh_ok(&ip, &first.key.path, &detach(&marker)).await;
    let pid = one_host_pid_running(&marker).await;
    unsafe { libc::kill(sim.pid().unwrap() as i32, libc::SIGKILL) };
    assert!(
        gone_soon(pid).await,
        "{marker} outlived SIGKILL of the simulator"
    );
    drop(sim);
    remove_data_dir(&data_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_on_a_simulator_whose_data_dir_is_under_tmp_succeeds() {
    let data = tempfile::tempdir().expect("data dir under /tmp");
    assert!(data.path().starts_with("/tmp"));
    let sim = SimProcess::start_in(data.path(), &[]);
    let dir = tempfile::tempdir().expect("spec dir");
    let (code, output) = apply(
        &sim,
        dir.path(),
        "  - shell:\n      inline:\n        - echo ok > /root/ok\n",
    );
    assert_eq!(code, 0, "the build failed: {output}");
    assert!(output.contains("succeeded"), "{output}");
    sim.stop();
}

#[test]
fn a_simulator_started_by_a_non_root_user_exits_at_once_naming_the_fix_instead_of_listening() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // A copy (or link) of the binary that `nobody` can reach wherever the checkout lives.
    let data = tempfile::tempdir().expect("data dir");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = data.path().join("bakerd");
    let built = Path::new(env!("CARGO_BIN_EXE_bakerd"));
    if std::fs::hard_link(built, &exe).is_err() {
        std::fs::copy(built, &exe).expect("copy bakerd");
    }
    let out = Command::new(&exe)
        .args(["sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("sim"))
        .uid(65_534)
        .gid(65_534)
        .stdin(Stdio::null())
        .output()
        .expect("run bakerd sim as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{out:?}"
    );
    assert!(
        stderr.contains("must run as root") && stderr.contains("sudo"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line that says what to do: {stderr}"
    );
}
