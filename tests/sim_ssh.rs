//! The simulator end to end: resources made through the signed ECS API only, instances reached with
//! OpenSSH's own `ssh` client. Files written on an instance survive stop → snapshot → image → new
//! instance; security group rules decide whether SSH answers; public IPs answer too; a restart keeps
//! everything and brings sshd's back; no sshd outlives the simulator; deleting an instance removes
//! its disk. Needs root, openssh-server, openssh-client and busybox-static.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::SimProcess;
use serde_json::{json, Value};

use common::instances::*;

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
        .args(common::SSH_TEST_OPTIONS)
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
