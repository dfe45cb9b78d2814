//! The official Alibaba Cloud Python clients run a full lifecycle against the simulator: the classic
//! `aliyun-python-sdk-core` + `aliyun-python-sdk-ecs` (V1 signatures) and the Tea
//! `alibabacloud_ecs20140526` (V3 signatures). The interpreter comes from `BAKERD_TEST_PYTHON`
//! (`scripts/install-deps.sh` creates `target/pyenv` with those packages).

mod common;

use std::path::Path;
use std::process::Command;

use common::SimProcess;
use serde_json::Value;

fn python() -> String {
    std::env::var("BAKERD_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
        assert!(
            venv.exists(),
            "set BAKERD_TEST_PYTHON or run scripts/install-deps.sh (creates target/pyenv)"
        );
        venv.display().to_string()
    })
}

/// Runs `script` against a fresh simulator and checks the inventory afterwards.
async fn run_lifecycle(name: &str, script: &str, signature: &str) {
    let sim = SimProcess::start(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::task::spawn_blocking({
        let host = sim.host.clone();
        move || {
            Command::new(python())
                .arg(&script)
                .arg(host)
                .arg("cn-hangzhou")
                .output()
                .expect("run python")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{name} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("summary JSON line");
    common::assert_sdk_lifecycle_clean(&sim, &summary, signature).await;
}

#[tokio::test]
async fn classic_python_sdk_with_v1_signatures_runs_a_full_lifecycle() {
    run_lifecycle("py-v1", "lifecycle_v1.py", "v1").await;
}

#[tokio::test]
async fn tea_python_sdk_with_v3_signatures_runs_a_full_lifecycle() {
    run_lifecycle("py-tea", "lifecycle_tea.py", "v3").await;
}

#[tokio::test]
async fn tea_python_sdk_runs_a_command_through_cloud_assistant_and_reads_its_output() {
    let sim = SimProcess::start("py-assistant");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/assistant_tea.py");
    let host = sim.host.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&script)
            .arg(host)
            .arg("cn-hangzhou")
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("summary JSON");
    assert_eq!(summary["status"], "Failed", "{summary}");
    assert_eq!(summary["exit_code"], 4, "{summary}");
    assert_eq!(summary["output"], "sdk-hello\nroot\n", "{summary}");
}
