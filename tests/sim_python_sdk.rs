//! The official Alibaba Cloud Python clients run a full lifecycle against the simulator: the classic
//! `aliyun-python-sdk-core` + `aliyun-python-sdk-ecs` (V1 signatures) and the Tea
//! `alibabacloud_ecs20140526` (V3 signatures). The interpreter comes from `BAKERD_TEST_PYTHON`
//! (`scripts/install-deps.sh` creates `target/pyenv` with those packages).

mod common;

use common::SimProcess;
use serde_json::Value;

/// Runs `script` against a fresh simulator and checks the inventory afterwards.
async fn run_lifecycle(name: &str, script: &str, signature: &str) {
    let sim = SimProcess::start(name);
    let out = common::run_python_script(&sim, script, "cn-hangzhou").await;
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
    let out = common::run_python_script(&sim, "assistant_tea.py", "cn-hangzhou").await;
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
