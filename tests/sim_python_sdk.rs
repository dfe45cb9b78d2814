//! The official Alibaba Cloud Python clients run a full lifecycle against the simulator: the classic
//! `aliyun-python-sdk-core` + `aliyun-python-sdk-ecs` (V1 signatures) and the Tea
//! `alibabacloud_ecs20140526` (V3 signatures), and the VPC API's Tea SDK `alibabacloud_vpc20160428`.
//! The interpreter comes from `BAKERD_TEST_PYTHON` (`scripts/install-deps.sh` creates `target/pyenv`
//! with those packages).

mod common;

use common::SimProcess;

/// Runs `script` against a fresh simulator and checks the inventory afterwards.
async fn run_lifecycle(name: &str, script: &str, signature: &str) {
    let sim = SimProcess::start(name);
    let summary = common::python_summary(&sim, script).await;
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
    let summary = common::python_summary(&sim, "assistant_tea.py").await;
    assert_eq!(summary["status"], "Failed", "{summary}");
    assert_eq!(summary["exit_code"], 4, "{summary}");
    assert_eq!(summary["output"], "sdk-hello\nroot\n", "{summary}");
}

#[tokio::test]
async fn tea_vpc_sdk_creates_tags_lists_and_deletes_a_vpc_vswitch_and_eip_through_the_vpc_api() {
    let sim = SimProcess::start("py-vpc");
    let summary = common::python_summary(&sim, "vpc_tea.py").await;
    let inventory = sim.inventory().await;
    for key in ["vpc", "vswitch", "eip"] {
        let id = summary[key].as_str().expect("id in the summary");
        let found = inventory.iter().find(|r| r["id"] == id);
        assert!(
            found.is_some_and(|r| !r["deleted"].is_null()),
            "{key} {id} not deleted: {found:?}"
        );
    }
    let calls = sim.calls().await;
    let calls = calls["calls"].as_array().unwrap();
    assert!(calls.len() > 10, "{calls:?}");
    for c in calls {
        assert_eq!(
            (
                c["version"].as_str(),
                c["signature_version"].as_str(),
                c["http_status"].as_u64()
            ),
            (Some("2016-04-28"), Some("v3"), Some(200)),
            "{c}"
        );
    }
}
