//! `communicator: cloud_assistant` end to end: the real binary builds on a per-test simulator
//! with no key pair, no inbound rule and no address; scripts run as RunCommand invocations, files
//! (a 1 MiB one in checked chunks) go up with SendFile; a kill during an invocation does not run
//! it twice.
#![cfg(feature = "failpoints")]

mod common;

use base64::Engine;
use common::instances::{network, ok, text, wait_status, BASE_IMAGE, REGION, WAIT};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const AGENT_IMAGE: &str = "ubuntu_22_04_x64_20G_alibase_20240926.vhd";

/// The standard simulator spec on the agent image, provisioned through Cloud Assistant, with
/// `verify` (top-level sections) appended.
fn spec_yaml(provisioners: &str, verify: &str) -> String {
    let spec = sim_spec(
        "assist-{{timestamp}}",
        "communicator: cloud_assistant",
        provisioners,
    )
    .replace(BASE_IMAGE, AGENT_IMAGE);
    format!("{spec}{verify}\n")
}

fn bakerd(state: &Path, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--state-dir", state.to_str().unwrap()]);
    let mut vars = vec![("BAKERD_ECS_ENDPOINT", endpoint)];
    vars.extend_from_slice(env);
    run_bakerd(&all, &vars)
}

fn text_of(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn build_id(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let (id, tail) = l.strip_prefix("build ")?.split_once(' ')?;
            tail.starts_with("started").then(|| id.to_string())
        })
        .unwrap_or_else(|| panic!("no build id:\n{}", text_of(out)))
}

/// Runs `script` on a fresh instance of `image` through the simulator's RunCommand and returns
/// its output (the image is checked from the outside, not by bakerd's own verify).
async fn run_on_new_instance(sim: &SimProcess, image: &str, script: &str) -> String {
    let net = network(sim).await;
    let body = ok(
        sim,
        "RunInstances",
        &[
            ("RegionId", REGION),
            ("ImageId", image),
            ("InstanceType", "ecs.s2.large"),
            ("SecurityGroupId", &net.security_group_id),
            ("VSwitchId", &net.vswitch_id),
        ],
    )
    .await;
    let id = text(&body["InstanceIdSets"]["InstanceIdSet"][0]);
    wait_status(sim, &id, "Running").await;
    let content = base64::engine::general_purpose::STANDARD.encode(script);
    let invoke = sim
        .wait_for("RunCommand accepted", WAIT, || async {
            let (status, body) = sim
                .call(
                    "RunCommand",
                    &[
                        ("RegionId", REGION),
                        ("Type", "RunShellScript"),
                        ("CommandContent", &content),
                        ("ContentEncoding", "Base64"),
                        ("InstanceId.1", &id),
                    ],
                )
                .await;
            (status == 200).then(|| text(&body["InvokeId"]))
        })
        .await;
    let result: Value = sim
        .wait_for("invocation done", WAIT, || async {
            let b = ok(
                sim,
                "DescribeInvocationResults",
                &[("RegionId", REGION), ("InvokeId", &invoke)],
            )
            .await;
            let r = b["Invocation"]["InvocationResults"]["InvocationResult"][0].clone();
            matches!(r["InvocationStatus"].as_str(), Some("Success" | "Failed")).then_some(r)
        })
        .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(result["Output"].as_str().unwrap_or(""))
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn image_of(inventory: &[Value], build: &str) -> Value {
    resources_of_build(inventory, build)
        .into_iter()
        .find(|r| r["kind"] == "image" && r["deleted"].is_null())
        .expect("a live image")
}

#[tokio::test]
async fn a_cloud_assistant_build_opens_nothing_and_the_image_holds_every_file_including_a_1_mib_upload(
) {
    let sim = SimProcess::start("assist-build");
    let (state, specs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let big: Vec<u8> = (0..1024 * 1024u64)
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    std::fs::write(specs.path().join("big.bin"), &big).unwrap();
    std::fs::create_dir(specs.path().join("tree")).unwrap();
    std::fs::write(specs.path().join("tree/a.txt"), "a\n").unwrap();
    std::fs::write(
        specs.path().join("setup.sh"),
        "#!/bin/sh\necho \"env $GREETING\" > /etc/greeting\n",
    )
    .unwrap();
    let spec = write_spec(
        specs.path(),
        &spec_yaml(
            "  - shell: { inline: [\"echo inline > /root/inline\", \"echo provisioned-line\"] }\n  \
             - shell: { script: setup.sh, environment: { GREETING: hi } }\n  \
             - file: { source: big.bin, destination: /opt/big.bin }\n  \
             - file: { source: tree, destination: /opt/tree }\n",
            "verify:\n  checks:\n    - file_exists: /opt/tree/a.txt\n    - shell: grep -q 'env hi' /etc/greeting\n",
        ),
    );
    let out = bakerd(
        state.path(),
        &sim.endpoint,
        &["apply", spec.to_str().unwrap()],
        &[],
    );
    let all = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let id = build_id(&out);
    assert!(
        all.contains(&format!("[{id}] [provisioner 0] provisioned-line")),
        "{all}"
    );

    let calls = sim.calls().await;
    for action in [
        "ImportKeyPair",
        "AuthorizeSecurityGroup",
        "AllocatePublicIpAddress",
    ] {
        assert!(
            calls["counts"][action].is_null(),
            "{action} was called: {}",
            calls["counts"]
        );
    }
    assert!(
        calls["counts"]["SendFile"].as_u64().unwrap_or(0) >= 43,
        "1 MiB goes in 24 KiB chunks"
    );
    let inventory = sim.inventory().await;
    let groups: Vec<&Value> = resources_of_build_ref(&inventory, &id, "securitygroup");
    assert!(!groups.is_empty());
    let image = image_of(&inventory, &id);
    assert_eq!(image["tags"]["bakerd:verified"], "true", "{image}");
    let live = live_resources_of_build(&inventory, &id);
    assert!(
        live.iter()
            .all(|r| r.starts_with("image") || r.starts_with("snapshot")),
        "{live:?}"
    );

    let image_id = image["id"].as_str().unwrap();
    let seen = run_on_new_instance(
        &sim,
        image_id,
        "cat /root/inline /etc/greeting /opt/tree/a.txt; sha256sum /opt/big.bin | cut -d' ' -f1; ls /tmp",
    )
    .await;
    assert_eq!(
        seen,
        format!("inline\nenv hi\na\n{}\n", sha256_hex(&big)),
        "{seen}"
    );
}

fn resources_of_build_ref<'a>(inventory: &'a [Value], build: &str, kind: &str) -> Vec<&'a Value> {
    inventory
        .iter()
        .filter(|r| r["tags"]["bakerd:build-id"] == build && r["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn a_sigkill_during_an_invocation_then_resume_runs_the_command_exactly_once() {
    let sim = SimProcess::start("assist-kill");
    let specs = tempfile::tempdir().unwrap();
    let spec = write_spec(
        specs.path(),
        &spec_yaml(
            "  - shell: { inline: [\"echo ran >> /root/runs\", \"sleep 1\"] }\n",
            "verify:\n  checks:\n    - shell: test \"$(wc -l < /root/runs)\" -eq 1\n",
        ),
    );
    // Killed while the invocation runs (its id recorded), and killed after RunCommand answered
    // but before the answer was recorded (found again by its tag).
    for point in ["p0-s0-run:waiting", "p0-s0-run:after-call"] {
        let state = tempfile::tempdir().unwrap();
        let crash = [("BAKERD_CRASH_AT", point)];
        let out = bakerd(
            state.path(),
            &sim.endpoint,
            &["apply", "--force", spec.to_str().unwrap()],
            &crash,
        );
        assert_eq!(
            out.status.code(),
            None,
            "not killed at {point}: {}",
            text_of(&out)
        );
        let id = build_id(&out);
        let resumed = bakerd(state.path(), &sim.endpoint, &["resume", &id], &[]);
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "{point}: {}",
            text_of(&resumed)
        );
        let inventory = sim.inventory().await;
        let image = image_of(&inventory, &id);
        assert_eq!(
            image["tags"]["bakerd:verified"], "true",
            "{point}: the image holds one line"
        );
        let runs = sim.calls().await["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["action"] == "RunCommand"
                    && c["client_token"]
                        .as_str()
                        .is_some_and(|t| t.contains(&id) && t.ends_with("p0-s0-run"))
            })
            .filter(|c| c["http_status"] == 200)
            .count();
        assert!(runs >= 1, "{point}");
    }
}
