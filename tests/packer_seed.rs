//! The seed plugin's README template runs unchanged on the simulator (issue 6), and what its
//! provisioner writes is in an instance booted from the resulting image.

mod common;

use common::SimProcess;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const REGION: &str = "cn-shanghai";

/// The template from the seed README, byte for byte.
fn seed_template() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packer/seed.json"),
    )
    .expect("seed fixture")
}

/// Runs `bakerd apply <template>` the way a seed user would: credentials and the security group
/// in the seed's `ALIYUN_*` variables, the endpoint in `BAKERD_ECS_ENDPOINT`.
fn apply_template(sim: &SimProcess, dir: &Path, sg: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .current_dir(dir)
        .args(["apply", "template.json", "--state-dir", "state"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env("ALIYUN_ACCESS_KEY_ID", common::ACCESS_KEY_ID)
        .env("ALIYUN_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET)
        .env("ALIYUN_SECURITY_GROUP_ID", sg)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .output()
        .expect("run bakerd apply")
}

/// Available images of the simulator in the seed's region.
async fn available_images(sim: &SimProcess) -> Vec<Value> {
    sim.inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "image" && r["region"] == REGION && r["status"] == "Available")
        .collect()
}

fn build_in(dir: &Path, template: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("template.json"), template).unwrap();
}

#[tokio::test]
async fn the_seed_readme_template_builds_an_image_unchanged() {
    let sim = SimProcess::start("seed");
    let sg = common::ssh_security_group(&sim, REGION).await;
    let dir = tempfile::tempdir().unwrap();
    build_in(dir.path(), &seed_template());

    let out = apply_template(&sim, dir.path(), &sg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[provisioner 0] ubuntu"), "{stdout}");
    let images = available_images(&sim).await;
    assert_eq!(images.len(), 1, "{images:?}");
    let name = images[0]["name"].as_str().unwrap();
    assert!(name.starts_with("packer-ubuntu-"), "{name}");
    let live_instances = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "instance" && r["status"] != "Deleted")
        .count();
    assert_eq!(live_instances, 0, "the build instance is cleaned up");
}

#[tokio::test]
async fn a_seed_template_whose_provisioner_writes_a_file_puts_it_in_the_image() {
    let sim = SimProcess::start("seed-variant");
    let sg = common::ssh_security_group(&sim, REGION).await;
    let dir = tempfile::tempdir().unwrap();
    let template = seed_template().replace(
        "\"echo ubuntu\"",
        "\"mkdir -p /etc/seed\", \"echo written-by-the-seed-template > /etc/seed/marker\"",
    );
    assert_ne!(template, seed_template());
    build_in(dir.path(), &template);

    let out = apply_template(&sim, dir.path(), &sg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let images = available_images(&sim).await;
    assert_eq!(images.len(), 1);
    let image = images[0]["id"].as_str().unwrap();

    let (key, public) = common::ssh_keygen(dir.path(), "id_ed25519");
    let ip = common::boot_instance(&sim, REGION, image, &sg, &public).await;
    let content = common::ssh_read_retrying(&key, &ip, "/etc/seed/marker", Duration::from_secs(30));
    assert_eq!(content.trim(), "written-by-the-seed-template");
}
