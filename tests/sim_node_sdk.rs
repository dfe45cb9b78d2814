//! The official Alibaba Cloud Node.js clients run the Python SDK tests' lifecycle against the
//! simulator: the classic `@alicloud/pop-core` (V1 signatures) and the Tea `@alicloud/ecs20140526`
//! (V3 signatures), whose typed models every response must satisfy (every declared field present,
//! with its declared type; `tests/node/common.js`). A wrong secret is refused.
//! `scripts/install-deps.sh` installs Node.js and the SDKs into `target/node`
//! (`BAKERD_TEST_NODE_MODULES` overrides the `node_modules` directory).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::SimProcess;
use serde_json::Value;

fn node_modules() -> PathBuf {
    let dir = std::env::var("BAKERD_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node/node_modules"));
    assert!(
        dir.join("@alicloud/pop-core").is_dir() && dir.join("@alicloud/ecs20140526").is_dir(),
        "{} lacks the Alibaba Cloud Node SDKs: run scripts/install-deps.sh",
        dir.display()
    );
    dir
}

/// Runs `tests/node/<script> <endpoint> cn-hangzhou` with `SECRET` as the access key secret.
async fn run_script(script: &str, endpoint: &str, secret: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(script);
    let (endpoint, secret) = (endpoint.to_string(), secret.to_string());
    tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(endpoint)
            .arg("cn-hangzhou")
            .env("NODE_PATH", node_modules())
            .env("SECRET", secret)
            .output()
            .expect("run node (install it with scripts/install-deps.sh)")
    })
    .await
    .unwrap()
}

async fn run_lifecycle(
    name: &str,
    script: &str,
    endpoint_of: fn(&SimProcess) -> String,
    signature: &str,
) {
    let sim = SimProcess::start(name);
    let summary = run_to_summary(script, &endpoint_of(&sim)).await;
    common::assert_sdk_lifecycle_clean(&sim, &summary, signature).await;
}

/// Runs `script` with the right secret; it must succeed and print its summary JSON line.
async fn run_to_summary(script: &str, endpoint: &str) -> Value {
    let out = run_script(script, endpoint, "testsecret").await;
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(out.stdout.trim_ascii()).expect("summary JSON line")
}

#[tokio::test]
async fn classic_node_sdk_with_v1_signatures_runs_a_full_lifecycle() {
    run_lifecycle("node-pop", "lifecycle_pop.js", |s| s.endpoint.clone(), "v1").await;
}

#[tokio::test]
async fn tea_node_sdk_with_v3_signatures_runs_a_full_lifecycle_and_every_response_fits_its_model() {
    run_lifecycle("node-tea", "lifecycle_tea.js", |s| s.host.clone(), "v3").await;
}

#[tokio::test]
async fn both_node_sdks_are_refused_with_a_wrong_secret_and_create_nothing() {
    let sim = SimProcess::start("node-wrong-secret");
    for (script, endpoint) in [
        ("lifecycle_pop.js", sim.endpoint.clone()),
        ("lifecycle_tea.js", sim.host.clone()),
    ] {
        let out = run_script(script, &endpoint, "not-the-secret").await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{script} succeeded with a wrong secret"
        );
        assert!(
            stderr.contains("SignatureDoesNotMatch"),
            "{script}: {stderr}"
        );
        assert!(
            !stderr.contains("testsecret"),
            "{script} leaked the secret: {stderr}"
        );
    }
    assert!(sim.inventory().await.is_empty(), "something was created");
}

#[tokio::test]
async fn tea_node_sdk_models_fit_every_action_packer_adds_and_nothing_is_left_alive() {
    let sim = SimProcess::start("node-tea-packer");
    let summary = run_to_summary("packer_actions_tea.js", &sim.host).await;
    let inventory = sim.inventory().await;
    for key in ["instance", "eip", "vpc", "vswitch", "security_group"] {
        let id = summary[key].as_str().expect("id in the summary");
        let found = inventory.iter().find(|r| r["id"] == id);
        assert!(
            found.is_some_and(|r| !r["deleted"].is_null()),
            "{key} {id} not deleted: {found:?}"
        );
    }
    let counts = sim.calls().await["counts"].clone();
    for action in [
        "AuthorizeSecurityGroupEgress",
        "AttachKeyPair",
        "AddTags",
        "AssociateEipAddress",
        "ReleaseEipAddress",
    ] {
        assert_eq!(counts[action], 1, "{action}: {counts}");
    }
}
