//! The simulator's real instances: busybox root filesystems copied between images, disks and
//! snapshots, served by each instance's own OpenSSH sshd in its namespaces, exercised with
//! OpenSSH's own `ssh` client.
//! Needs root, openssh-server, openssh-client and busybox-static.

mod common;

use bakerd::sim::machine::{MachineError, Machines, SshTarget};
use common::instances::host_pids_running;
use rand::Rng;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const OS_RELEASE: &str = "NAME=\"Ubuntu\"\nVERSION_ID=\"14.04\"\nID=ubuntu\n";

/// A data dir under `<crate>/target/test-sim/` (root-owned 0755 all the way, as sshd's chroot
/// needs), removed when the test ends unless `BAKERD_KEEP_TEST_SIM` is set (for reading sshd logs).
struct DataDir(PathBuf);

impl DataDir {
    fn new(test: &str) -> Self {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-sim");
        std::fs::create_dir_all(&base).expect("create target/test-sim");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dir = base.join(format!("{test}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("create data dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if std::env::var_os("BAKERD_KEEP_TEST_SIM").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Machines on `dir` whose instances are launched by the bakerd binary under test.
fn machines_on(dir: &Path) -> Machines {
    Machines::with_executable(dir, Path::new(env!("CARGO_BIN_EXE_bakerd"))).expect("machines")
}

/// A random loopback address in 127.77.0.0/16, so parallel tests do not collide on port 22.
fn random_ip() -> Ipv4Addr {
    let mut rng = rand::thread_rng();
    Ipv4Addr::new(127, 77, rng.gen(), rng.gen_range(1..=254))
}

/// A fresh ed25519 client key pair; returns (private key path, public key line).
fn client_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read public key");
    (path, public.trim().to_string())
}

fn ssh_options(key: &Path) -> Vec<String> {
    let mut options = vec!["-F".into(), "/dev/null".into(), "-i".into()];
    options.push(key.display().to_string());
    for option in [
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "ConnectTimeout=5",
        "LogLevel=ERROR",
    ] {
        options.push("-o".into());
        options.push(option.into());
    }
    options
}

/// Runs `command` as root on `ip` with OpenSSH's client.
fn ssh(ip: Ipv4Addr, key: &Path, command: &str) -> Output {
    Command::new("ssh")
        .args(ssh_options(key))
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .expect("run ssh")
}

fn ssh_ok(ip: Ipv4Addr, key: &Path, command: &str) -> String {
    let out = ssh(ip, key, command);
    assert!(
        out.status.success(),
        "ssh {ip} {command:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host key the server at `ip` actually presents, as "type base64".
fn served_host_key(ip: Ipv4Addr) -> String {
    let out = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-T", "5"])
        .arg(ip.to_string())
        .output()
        .expect("run ssh-keyscan");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|line| !line.starts_with('#'))
        .unwrap_or_else(|| panic!("no host key from {ip}"));
    line.split_whitespace()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn without_comment(key_line: &str) -> String {
    key_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn refuses(ip: Ipv4Addr) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), Duration::from_secs(1)).is_err()
}

fn target(instance: &str, disk: &str, ip: Ipv4Addr, key: &str) -> SshTarget {
    SshTarget {
        instance_id: instance.into(),
        disk_id: disk.into(),
        addresses: vec![ip],
        authorized_keys: key.into(),
        root_password_hash: None,
    }
}

/// Machines with one base image `m-base` and disk `d-1` created from it.
fn machines_with_disk(data: &DataDir) -> Machines {
    let machines = machines_on(&data.0);
    machines
        .ensure_base_image("m-base", OS_RELEASE)
        .expect("base image");
    machines
        .create_disk_from_image("d-1", "m-base")
        .expect("disk from base image");
    machines
}

/// The directories a test's machines use; dropped after the machines (bind it first), the keys
/// before the data dir, as the tests always did.
struct Dirs {
    keys: tempfile::TempDir,
    _data: DataDir,
}

/// What most tests start from: a fresh data dir, a client key pair (private key path, public key
/// line) in a temp dir, and [`machines_with_disk`] on that data dir.
fn machines_and_key(test: &str) -> (Dirs, PathBuf, String, Machines) {
    let data = DataDir::new(test);
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = client_key(keys.path(), "key");
    let machines = machines_with_disk(&data);
    (Dirs { keys, _data: data }, key, public, machines)
}

fn pid_runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            state != Some("Z")
        })
        .unwrap_or(false)
}

#[test]
fn instance_from_base_image_accepts_its_key_runs_commands_and_refuses_another_key() {
    let (dirs, key, public, machines) = machines_and_key("accepts-key");
    let (wrong_key, _) = client_key(dirs.keys.path(), "wrong");
    let ip = random_ip();
    machines
        .ensure_sshd(&target("i-1", "d-1", ip, &public))
        .expect("sshd");

    assert_eq!(ssh_ok(ip, &key, "cat /etc/os-release"), OS_RELEASE);
    assert_eq!(
        ssh_ok(ip, &key, "id -u; echo hi > /dev/null; ls -d /tmp"),
        "0\n/tmp\n"
    );
    let with_pty = Command::new("ssh")
        .args(ssh_options(&key))
        .arg("-tt")
        .arg(format!("root@{ip}"))
        .arg("echo pty-ok")
        .output()
        .expect("run ssh -tt");
    assert!(
        String::from_utf8_lossy(&with_pty.stdout).contains("pty-ok"),
        "ssh -tt: {}",
        String::from_utf8_lossy(&with_pty.stderr)
    );
    let refused = ssh(ip, &wrong_key, "true");
    assert_eq!(
        refused.status.code(),
        Some(255),
        "wrong key must be refused"
    );

    let upload = dirs.keys.path().join("upload.txt");
    std::fs::write(&upload, "via sftp\n").expect("write upload");
    let scp = Command::new("scp")
        .args(ssh_options(&key))
        .arg(&upload)
        .arg(format!("root@{ip}:/root/upload.txt"))
        .output()
        .expect("run scp");
    assert!(
        scp.status.success(),
        "scp: {}",
        String::from_utf8_lossy(&scp.stderr)
    );
    assert_eq!(ssh_ok(ip, &key, "cat /root/upload.txt"), "via sftp\n");
}

#[test]
fn file_written_over_ssh_survives_snapshot_image_and_a_new_instance() {
    let (_dirs, key, public, machines) = machines_and_key("snapshot-image");
    let first_ip = random_ip();
    machines
        .ensure_sshd(&target("i-1", "d-1", first_ip, &public))
        .expect("sshd of i-1");
    ssh_ok(
        first_ip,
        &key,
        "mkdir -p /opt/app && echo provisioned > /opt/app/marker",
    );

    machines.snapshot_disk("d-1", "s-1").expect("snapshot");
    machines
        .image_from_snapshot("s-1", "m-built")
        .expect("image");
    machines
        .copy_image("m-built", "m-copy")
        .expect("copy image");
    machines
        .create_disk_from_image("d-2", "m-copy")
        .expect("new disk");
    let second_ip = loop {
        let ip = random_ip();
        if ip != first_ip {
            break ip;
        }
    };
    machines
        .ensure_sshd(&target("i-2", "d-2", second_ip, &public))
        .expect("sshd of i-2");

    assert_eq!(
        ssh_ok(second_ip, &key, "cat /opt/app/marker"),
        "provisioned\n"
    );
    assert_eq!(ssh_ok(second_ip, &key, "cat /etc/os-release"), OS_RELEASE);
    ssh_ok(second_ip, &key, "echo later > /opt/app/marker");
    assert_eq!(
        ssh_ok(first_ip, &key, "cat /opt/app/marker"),
        "provisioned\n"
    );
}

#[test]
fn stopped_sshd_refuses_connections_and_keeps_its_host_key_across_restart() {
    let (_dirs, key, public, machines) = machines_and_key("host-key");
    machines
        .create_disk_from_image("d-2", "m-base")
        .expect("disk 2");
    let ip = random_ip();
    let wanted = target("i-1", "d-1", ip, &public);
    machines.ensure_sshd(&wanted).expect("sshd");
    let first_key = served_host_key(ip);
    let recorded = machines.host_public_key("i-1").expect("read").expect("key");
    assert_eq!(without_comment(&recorded), first_key);

    machines.stop_sshd("i-1").expect("stop");
    assert!(refuses(ip), "port 22 still open after stop_sshd");
    assert!(ssh(ip, &key, "true").status.code() == Some(255));
    machines.stop_sshd("i-1").expect("second stop is a no-op");

    machines.ensure_sshd(&wanted).expect("restart");
    assert_eq!(
        served_host_key(ip),
        first_key,
        "host key changed across restart"
    );
    ssh_ok(ip, &key, "true");

    let other_ip = random_ip();
    machines
        .ensure_sshd(&target("i-2", "d-2", other_ip, &public))
        .expect("other sshd");
    assert_ne!(
        served_host_key(other_ip),
        first_key,
        "two instances share a host key"
    );
}

#[test]
fn identical_target_keeps_the_instance_and_changed_keys_or_addresses_do_not_reboot_it() {
    let (dirs, key, public, machines) = machines_and_key("reconfigure");
    let (second_key, second_public) = client_key(dirs.keys.path(), "second");
    let private_ip = random_ip();
    let mut wanted = target("i-1", "d-1", private_ip, &public);
    machines.ensure_sshd(&wanted).expect("sshd");
    let pid = machines.instance_pid("i-1").expect("pid");
    machines.ensure_sshd(&wanted).expect("same target again");
    assert_eq!(
        machines.instance_pid("i-1"),
        Some(pid),
        "identical target rebooted the instance"
    );

    wanted.authorized_keys = second_public;
    machines.ensure_sshd(&wanted).expect("new keys");
    ssh_ok(private_ip, &second_key, "true");
    assert_eq!(ssh(private_ip, &key, "true").status.code(), Some(255));

    let public_ip = random_ip();
    wanted.addresses.push(public_ip);
    machines.ensure_sshd(&wanted).expect("public ip added");
    ssh_ok(public_ip, &second_key, "true");
    ssh_ok(private_ip, &second_key, "true");
    wanted.addresses.remove(0);
    machines.ensure_sshd(&wanted).expect("private ip dropped");
    assert!(refuses(private_ip), "a dropped address still accepts");
    assert_eq!(
        machines.instance_pid("i-1"),
        Some(pid),
        "address changes rebooted the instance"
    );
    assert_eq!(machines.boot_count("i-1"), 1);
}

#[test]
fn stop_all_and_drop_leave_no_instance_process_running() {
    let (_dirs, key, public, machines) = machines_and_key("stop-all");
    machines
        .create_disk_from_image("d-2", "m-base")
        .expect("disk 2");
    let (ip1, ip2) = (random_ip(), random_ip());
    machines
        .ensure_sshd(&target("i-1", "d-1", ip1, &public))
        .expect("sshd 1");
    machines
        .ensure_sshd(&target("i-2", "d-2", ip2, &public))
        .expect("sshd 2");
    // A process that would otherwise outlive its session.
    let marker = format!(
        "sleep {}",
        100_000 + rand::thread_rng().gen_range(0..800_000)
    );
    ssh_ok(
        ip1,
        &key,
        &format!("setsid {marker} > /dev/null 2>&1 < /dev/null &"),
    );
    let mut sleepers = host_pids_running(&marker);
    for _ in 0..500 {
        if !sleepers.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        sleepers = host_pids_running(&marker);
    }
    assert_eq!(
        sleepers.len(),
        1,
        "the background sleep should run: {sleepers:?}"
    );
    let pids = [
        machines.instance_pid("i-1").unwrap(),
        machines.instance_pid("i-2").unwrap(),
    ];

    machines.stop_all();
    for pid in pids.iter().chain(&sleepers) {
        assert!(!pid_runs(*pid), "process {pid} survived stop_all");
    }
    assert!(refuses(ip1) && refuses(ip2));

    machines
        .ensure_sshd(&target("i-1", "d-1", ip1, &public))
        .expect("restart");
    let pid = machines.instance_pid("i-1").unwrap();
    drop(machines);
    assert!(!pid_runs(pid), "instance {pid} survived dropping Machines");
}

#[test]
fn instance_on_a_data_dir_under_tmp_serves_ssh() {
    let data = tempfile::tempdir().expect("tempdir under /tmp");
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, public) = client_key(keys.path(), "key");
    let machines = machines_on(data.path());
    machines
        .ensure_base_image("m-base", OS_RELEASE)
        .expect("image");
    machines
        .create_disk_from_image("d-1", "m-base")
        .expect("disk");
    let ip = random_ip();
    machines
        .ensure_sshd(&target("i-1", "d-1", ip, &public))
        .expect("instance under /tmp");
    assert_eq!(ssh_ok(ip, &key, "echo fine"), "fine\n");
    let mode = std::fs::metadata(data.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data dir must be private");
}

#[test]
fn missing_resources_and_deletions_are_reported_and_idempotent() {
    let data = DataDir::new("delete");
    let machines = machines_with_disk(&data);
    let err = machines
        .create_disk_from_image("d-2", "m-none")
        .expect_err("no such image");
    assert!(
        matches!(err, MachineError::NotFound { kind: "image", .. }),
        "{err}"
    );
    assert!(machines.create_disk_from_image("../d", "m-base").is_err());

    let rootfs = machines.disk_rootfs("d-1").expect("path");
    assert!(rootfs.join("bin/busybox").is_file());
    machines.delete_disk("d-1").expect("delete");
    machines.delete_disk("d-1").expect("delete again");
    assert!(!rootfs.exists());
    machines.delete_image("m-base").expect("delete image");
    machines
        .delete_snapshot("s-none")
        .expect("missing snapshot is fine");
    let leftovers: Vec<_> = std::fs::read_dir(data.0.join("disks"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Inodes and symlinks in the tree `dir` (not following symlinks).
fn inodes_and_symlinks(dir: &Path) -> (std::collections::BTreeSet<u64>, usize) {
    use std::os::unix::fs::MetadataExt;
    let (mut inodes, mut symlinks) = (std::collections::BTreeSet::new(), 0);
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let meta = entry.path().symlink_metadata().expect("stat");
        inodes.insert(meta.ino());
        if meta.file_type().is_symlink() {
            symlinks += 1;
        } else if meta.is_dir() {
            let (sub, links) = inodes_and_symlinks(&entry.path());
            inodes.extend(sub);
            symlinks += links;
        }
    }
    (inodes, symlinks)
}

#[test]
fn a_disk_copies_the_busybox_applets_as_hard_links_of_one_file_not_an_inode_each() {
    use std::os::unix::fs::MetadataExt;
    let data = DataDir::new("applets");
    let machines = machines_with_disk(&data);
    let rootfs = machines.disk_rootfs("d-1").expect("path");
    let busybox = std::fs::metadata(rootfs.join("bin/busybox")).expect("busybox");
    for applet in ["bin/sh", "bin/ls", "bin/cat", "bin/mkdir"] {
        let meta = rootfs.join(applet).symlink_metadata().expect(applet);
        assert!(meta.is_file(), "{applet} is not a regular file");
        assert_eq!(meta.ino(), busybox.ino(), "{applet} is not busybox");
    }
    // ~400 applets: an inode each would make every disk copy allocate hundreds of inodes.
    let (inodes, symlinks) = inodes_and_symlinks(&rootfs);
    assert!(busybox.nlink() > 100, "{} links", busybox.nlink());
    assert!(inodes.len() < 100, "{} inodes in a disk", inodes.len());
    assert!(symlinks < 20, "{symlinks} symlinks in a disk");
}

#[test]
fn an_image_shares_its_snapshots_files_and_a_disk_made_from_it_gets_copies_of_its_own() {
    use std::os::unix::fs::MetadataExt;
    let data = DataDir::new("imagelinks");
    let machines = machines_with_disk(&data);
    let disk = machines.disk_rootfs("d-1").expect("path");
    std::fs::write(disk.join("etc/built"), "v1\n").expect("write");
    machines.snapshot_disk("d-1", "s-1").expect("snapshot");
    machines.image_from_snapshot("s-1", "m-1").expect("image");
    machines.copy_image("m-1", "m-2").expect("copy image");
    machines.create_disk_from_image("d-2", "m-2").expect("disk");
    let ino = |path: PathBuf| std::fs::metadata(&path).expect("stat").ino();
    let in_snapshot = ino(data.0.join("snapshots/s-1/rootfs/etc/built"));
    assert_eq!(ino(data.0.join("images/m-1/rootfs/etc/built")), in_snapshot);
    assert_eq!(ino(data.0.join("images/m-2/rootfs/etc/built")), in_snapshot);
    // The new disk belongs to an instance: writing it must not reach the images.
    let copy = machines.disk_rootfs("d-2").expect("path").join("etc/built");
    assert_ne!(ino(copy.clone()), in_snapshot);
    std::fs::write(&copy, "changed\n").expect("write");
    let image = data.0.join("images/m-2/rootfs/etc/built");
    assert_eq!(std::fs::read_to_string(image).expect("read"), "v1\n");
    machines.delete_snapshot("s-1").expect("delete snapshot");
    let image = data.0.join("images/m-1/rootfs/etc/built");
    assert_eq!(std::fs::read_to_string(image).expect("read"), "v1\n");
}

#[test]
fn sshd_started_from_a_short_lived_blocking_thread_outlives_that_thread() {
    let (_dirs, key, public, machines) = machines_and_key("blocking-thread");
    let ip = random_ip();
    // Blocking-pool threads that idle for 10 ms exit; an sshd whose parent-death signal were
    // tied to such a thread would die with it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(10))
        .enable_all()
        .build()
        .expect("runtime");
    let handle = machines.clone();
    let wanted = target("i-1", "d-1", ip, &public);
    let started = runtime.spawn_blocking(move || handle.ensure_sshd(&wanted));
    runtime.block_on(started).expect("join").expect("sshd");
    std::thread::sleep(Duration::from_millis(300));
    let pid = machines.instance_pid("i-1").expect("instance still runs");
    assert!(pid_runs(pid));
    assert_eq!(ssh_ok(ip, &key, "echo alive"), "alive\n");
}

/// Set in the child process of `sshd_dies_when_its_simulator_is_killed_with_sigkill`:
/// `<data dir>,<ip>`.
const HELPER_ENV: &str = "BAKERD_SIM_MACHINE_HELPER";

#[test]
#[ignore = "helper process of sshd_dies_when_its_simulator_is_killed_with_sigkill"]
fn helper_starts_an_sshd_and_waits_to_be_killed() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (dir, ip) = spec.split_once(',').expect("<dir>,<ip>");
    let machines = machines_on(Path::new(dir));
    machines
        .ensure_base_image("m-base", OS_RELEASE)
        .expect("image");
    machines
        .create_disk_from_image("d-1", "m-base")
        .expect("disk");
    let ip: Ipv4Addr = ip.parse().expect("ip");
    machines
        .ensure_sshd(&target("i-1", "d-1", ip, ""))
        .expect("sshd");
    println!("sshd-pid {}", machines.instance_pid("i-1").expect("pid"));
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The helper process dies with the test, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sshd_dies_when_its_simulator_is_killed_with_sigkill() {
    use std::io::BufRead;
    let data = DataDir::new("pdeathsig");
    let ip = random_ip();
    let mut simulator = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "helper_starts_an_sshd_and_waits_to_be_killed",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, format!("{},{ip}", data.0.display()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn helper"),
    );
    let stdout = std::io::BufReader::new(simulator.0.stdout.take().expect("stdout"));
    let pid: u32 = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once("sshd-pid ")?.1.trim().parse().ok())
        .expect("helper printed its sshd pid");
    assert!(pid_runs(pid) && !refuses(ip));

    simulator.0.kill().expect("SIGKILL the helper");
    simulator.0.wait().expect("reap helper");
    for _ in 0..500 {
        if !pid_runs(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !pid_runs(pid),
        "sshd {pid} outlived its SIGKILLed simulator"
    );
    assert!(refuses(ip));
}
