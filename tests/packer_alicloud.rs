//! Real HashiCorp Packer (Debian's 1.6.6, `alicloud-ecs` builder) builds images against the
//! simulator, each with a shell and a file provisioner; a new instance booted from each image holds
//! both files, and nothing Packer created stays alive but the image and its snapshot.
//!
//! Packer 1.6.6 has no endpoint option: its Go SDK sends plain HTTP to
//! `ecs-<region>.aliyuncs.com:80`, through `HTTP_PROXY` when set. Pointing `HTTP_PROXY` at the
//! simulator (which serves proxy-form requests like any other) reaches it with no DNS or network
//! namespace tricks, so the paths run concurrently, each on its own simulator. SSH goes straight to
//! the instance's address, as in every simulator test. Needs root, openssh and `packer`
//! (`scripts/install-deps.sh`).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const REGION: &str = "cn-hangzhou";
const SOURCE_IMAGE: &str = "ubuntu_24_04_x64_20G_alibase_20251010.vhd";
const SHELL_LINE: &str = "written by the packer shell provisioner";
const FILE_BODY: &str = "uploaded by the packer file provisioner\n";

/// The builder block every path starts from; `extra` adds or overrides options.
fn template(dir: &Path, name: &str, extra: Value) -> Value {
    let payload = dir.join("payload.txt");
    std::fs::write(&payload, FILE_BODY).unwrap();
    let mut builder = json!({
        "type": "alicloud-ecs",
        "access_key": ACCESS_KEY_ID,
        "secret_key": ACCESS_KEY_SECRET,
        "region": REGION,
        "image_name": format!("packer-{name}-{{{{timestamp}}}}"),
        "source_image": SOURCE_IMAGE,
        "instance_type": "ecs.s2.large",
        "io_optimized": true,
        "ssh_username": "root",
        "ssh_file_transfer_method": "sftp",
    });
    let options = builder.as_object_mut().unwrap();
    options.extend(extra.as_object().cloned().unwrap_or_default());
    // `null` in `extra` removes an option: Packer's own default applies.
    options.retain(|_, value| !value.is_null());
    json!({
        "builders": [builder],
        "provisioners": [
            {"type": "shell", "inline": [format!("echo '{SHELL_LINE}' > /root/from-shell")]},
            {"type": "file", "source": payload, "destination": "/root/from-file"},
        ],
    })
}

/// Runs `packer build` on `template` against `sim`; returns the image id it reports.
async fn packer_build(sim: &SimProcess, dir: &Path, template: &Value) -> String {
    let path = dir.join("template.json");
    std::fs::write(&path, serde_json::to_vec_pretty(template).unwrap()).unwrap();
    let proxy = sim.endpoint.clone();
    let home = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("packer")
            .args(["build", "-color=false"])
            .arg(&path)
            .env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("HOME", &home)
            .env("PACKER_CACHE_DIR", home.join("packer-cache"))
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("run packer (install it with scripts/install-deps.sh)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "packer build failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{REGION}: ")))
        .unwrap_or_else(|| panic!("no image id in packer's output:\n{stdout}"))
        .trim()
        .to_string()
}

/// Live resources in the simulator, as `"<kind> <id>"`, except `keep` (ids).
async fn alive_except(sim: &SimProcess, keep: &[&str]) -> Vec<String> {
    sim.inventory()
        .await
        .iter()
        .filter(|r| r["deleted"].is_null() && r["status"] != "Deleted")
        .filter(|r| !keep.contains(&r["id"].as_str().unwrap_or("")))
        .map(|r| format!("{} {}", r["kind"].as_str().unwrap_or("?"), r["id"]))
        .collect()
}

/// The snapshot behind `image`, from DescribeImages.
async fn snapshot_of(sim: &SimProcess, image: &str) -> String {
    let body = ok_call(
        sim,
        "DescribeImages",
        &[("RegionId", REGION), ("ImageId", image)],
    )
    .await;
    body["Images"]["Image"][0]["DiskDeviceMappings"]["DiskDeviceMapping"][0]["SnapshotId"]
        .as_str()
        .unwrap_or_else(|| panic!("image {image} has no snapshot: {body}"))
        .to_string()
}

/// Builds with `template`, checks that only `image`, its snapshot and `keep` stay alive, boots a
/// new instance from the image and reads both provisioned files. Returns the call counts.
async fn build_and_check(sim: &SimProcess, dir: &Path, template: Value, keep: &[&str]) -> Value {
    let image = packer_build(sim, dir, &template).await;
    let snapshot = snapshot_of(sim, &image).await;
    let mut kept = vec![image.as_str(), snapshot.as_str()];
    kept.extend(keep);
    let leaked = alive_except(sim, &kept).await;
    assert!(leaked.is_empty(), "packer left these alive: {leaked:?}");
    let counts = sim.calls().await["counts"].clone();
    let (ip, key) = boot_from_image(sim, &image, dir).await;
    assert_eq!(ssh_read(&ip, &key, "/root/from-shell").trim(), SHELL_LINE);
    assert_eq!(ssh_read(&ip, &key, "/root/from-file"), FILE_BODY);
    counts
}

#[tokio::test]
async fn packer_builds_with_its_default_temporary_network_and_key_pair() {
    let sim = SimProcess::start("packer-default");
    let dir = tempfile::tempdir().unwrap();
    let counts = build_and_check(
        &sim,
        dir.path(),
        template(dir.path(), "default", json!({})),
        &[],
    )
    .await;
    for action in [
        "CreateKeyPair",
        "CreateVpc",
        "CreateVSwitch",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupEgress",
        "CreateInstance",
        "AttachKeyPair",
        "DetachKeyPair",
        "DeleteKeyPairs",
    ] {
        assert_eq!(counts[action], 1, "{action}: {counts}");
    }
}

/// In a given network, with Packer's default file transfer (`scp -vt` on the instance: the
/// images carry OpenSSH's `scp`); the other paths use sftp.
#[tokio::test]
async fn packer_builds_in_a_given_network_attaches_its_key_pair_and_uploads_with_default_scp() {
    let sim = SimProcess::start("packer-network");
    let dir = tempfile::tempdir().unwrap();
    let (vpc, vsw, sg) = open_network(&sim).await;
    let extra = json!({"vpc_id": vpc, "vswitch_id": vsw, "security_group_id": sg,
        "ssh_file_transfer_method": null});
    let template = template(dir.path(), "network", extra);
    let counts = build_and_check(&sim, dir.path(), template, &[&vpc, &vsw, &sg]).await;
    for action in ["AttachKeyPair", "DetachKeyPair"] {
        assert_eq!(counts[action], 1, "{action}: {counts}");
    }
    for action in ["CreateVpc", "CreateVSwitch", "CreateSecurityGroup"] {
        assert_eq!(
            counts[action], 1,
            "only open_network creates a {action}: {counts}"
        );
    }
}

#[tokio::test]
async fn packer_connects_through_an_eip_it_allocates_and_releases() {
    let sim = SimProcess::start("packer-eip");
    let dir = tempfile::tempdir().unwrap();
    let extra =
        json!({"associate_public_ip_address": true, "internet_charge_type": "PayByTraffic"});
    let template = template(dir.path(), "eip", extra);
    let counts = build_and_check(&sim, dir.path(), template, &[]).await;
    for action in [
        "AllocateEipAddress",
        "AssociateEipAddress",
        "UnassociateEipAddress",
        "ReleaseEipAddress",
    ] {
        assert_eq!(counts[action], 1, "{action}: {counts}");
    }
}

/// `ssh_password` and no key pair: the instance is created with `Password`, root logs in with it
/// (the simulator writes its hash into that instance's /etc/shadow and allows password logins
/// there only).
#[tokio::test]
async fn packer_logs_in_with_ssh_password_given_at_creation() {
    let sim = SimProcess::start("packer-password");
    let dir = tempfile::tempdir().unwrap();
    let extra = json!({"ssh_password": "Packer-Pass-2024", "ssh_private_key_file": null});
    let template = template(dir.path(), "password", extra);
    let counts = build_and_check(&sim, dir.path(), template, &[]).await;
    for action in ["CreateKeyPair", "AttachKeyPair", "ImportKeyPair"] {
        assert!(
            counts[action].is_null() || counts[action] == 0,
            "{action}: {counts}"
        );
    }
    let log = sim.calls().await;
    let create = log["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "CreateInstance")
        .expect("CreateInstance called");
    assert!(
        !create.to_string().contains("Packer-Pass-2024"),
        "password in the call log"
    );
}
