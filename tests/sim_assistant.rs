//! The simulator's Cloud Assistant over real HTTP: commands run as root inside the instance
//! (no SSH: the security group opens nothing), results with exit code, base64 output, Dropped,
//! the status lifecycle, limits and errors; file sends; an instance without the agent.

mod common;

use base64::Engine;
use common::instances::*;
use common::SimProcess;
use serde_json::Value;

/// Public image created after 2017-12-01: has the agent.
const AGENT_IMAGE: &str = "ubuntu_22_04_x64_20G_alibase_20240926.vhd";

fn b64(text: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode(v: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .expect("base64 output");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A Running instance of `image` in a network whose group allows nothing.
async fn instance(sim: &SimProcess, image: &str) -> String {
    let net = network(sim).await;
    let key = client_key();
    import_key(sim, "kp", &key).await;
    let id = run_instance(sim, image, &net, "kp").await;
    wait_status(sim, &id, "Running").await;
    id
}

async fn agent_online(sim: &SimProcess, id: &str) -> bool {
    let body = ok(
        sim,
        "DescribeCloudAssistantStatus",
        &[("RegionId", REGION), ("InstanceId.1", id)],
    )
    .await;
    body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"][0]
        ["CloudAssistantStatus"]
        == "true"
}

async fn run(sim: &SimProcess, id: &str, script: &str, timeout: &str) -> String {
    let body = ok(
        sim,
        "RunCommand",
        &[
            ("RegionId", REGION),
            ("Type", "RunShellScript"),
            ("CommandContent", &b64(script.as_bytes())),
            ("ContentEncoding", "Base64"),
            ("Timeout", timeout),
            ("InstanceId.1", id),
        ],
    )
    .await;
    text(&body["InvokeId"])
}

/// Polls DescribeInvocationResults until the invocation leaves Pending/Running.
async fn result(sim: &SimProcess, invoke: &str) -> Value {
    sim.wait_for(&format!("invocation {invoke}"), WAIT, || async {
        let body = ok(
            sim,
            "DescribeInvocationResults",
            &[("RegionId", REGION), ("InvokeId", invoke)],
        )
        .await;
        let r = body["Invocation"]["InvocationResults"]["InvocationResult"][0].clone();
        let status = r["InvocationStatus"].as_str().unwrap_or("");
        (!matches!(status, "Pending" | "Running" | "")).then_some(r)
    })
    .await
}

#[tokio::test]
async fn a_command_runs_as_root_inside_the_instance_and_its_result_carries_exit_code_and_output() {
    let sim = SimProcess::start("assist-run");
    let id = instance(&sim, AGENT_IMAGE).await;
    sim.wait_for("agent online", WAIT, || async {
        agent_online(&sim, &id).await.then_some(())
    })
    .await;
    let invoke = run(&sim, &id, "echo hello; id -u; hostname; pwd; exit 3", "60").await;
    let r = result(&sim, &invoke).await;
    assert_eq!(r["InvocationStatus"], "Failed", "{r}");
    assert_eq!(r["InvokeRecordStatus"], "Failed", "{r}");
    assert_eq!(r["ExitCode"], 3, "{r}");
    assert_eq!(r["ErrorCode"], "ExitCodeNonzero", "{r}");
    assert_eq!(
        decode(&r["Output"]),
        format!("hello\n0\n{id}\n/root\n"),
        "{r}"
    );
    assert_eq!(r["Dropped"], 0);

    // Output over 24 KB is cut and the rest counted; a command past its Timeout ends Timeout.
    let big = run(&sim, &id, "head -c 30000 /dev/zero | tr '\\0' a", "60").await;
    let r = result(&sim, &big).await;
    assert_eq!(r["InvocationStatus"], "Success", "{r}");
    assert_eq!(decode(&r["Output"]).len(), 24 * 1024);
    assert_eq!(r["Dropped"], 30000 - 24 * 1024);
    let slow = run(&sim, &id, "sleep 30", "1").await;
    let r = result(&sim, &slow).await;
    assert_eq!(r["InvocationStatus"], "Timeout", "{r}");
    assert_eq!(r["ErrorCode"], "ExecutionTimeout", "{r}");

    // Output shows while the command still runs, as the agent reports it.
    let long = run(&sim, &id, "echo early; sleep 20; echo late", "60").await;
    let running = sim
        .wait_for("output of a running command", WAIT, || async {
            let body = ok(
                &sim,
                "DescribeInvocationResults",
                &[("RegionId", REGION), ("InvokeId", &long)],
            )
            .await;
            let r = body["Invocation"]["InvocationResults"]["InvocationResult"][0].clone();
            (decode(&r["Output"]) == "early\n").then_some(r)
        })
        .await;
    assert_eq!(running["InvocationStatus"], "Running", "{running}");
    ok(
        &sim,
        "StopInvocation",
        &[
            ("RegionId", REGION),
            ("InvokeId", &long),
            ("InstanceId.1", &id),
        ],
    )
    .await;
}

#[tokio::test]
async fn send_file_writes_inside_the_instance_and_limits_and_errors_are_the_documented_ones() {
    let sim = SimProcess::start("assist-files");
    let id = instance(&sim, AGENT_IMAGE).await;
    let send = |name: &'static str, content: String, overwrite: &'static str| {
        let (sim, id) = (&sim, id.clone());
        async move {
            sim.call(
                "SendFile",
                &[
                    ("RegionId", REGION),
                    ("Name", name),
                    ("TargetDir", "/opt/drop"),
                    ("Content", &content),
                    ("FileMode", "0640"),
                    ("Overwrite", overwrite),
                    ("InstanceId.1", &id),
                ],
            )
            .await
        }
    };
    let (status, body) = send("motd", "hello from the API\n".into(), "false").await;
    assert_eq!(status, 200, "{body}");
    let invoke = text(&body["InvokeId"]);
    let done = sim
        .wait_for("file sent", WAIT, || async {
            let b = ok(
                &sim,
                "DescribeSendFileResults",
                &[("RegionId", REGION), ("InvokeId", &invoke)],
            )
            .await;
            let inv = b["Invocations"]["Invocation"][0].clone();
            (inv["InvocationStatus"] == "Success").then_some(inv)
        })
        .await;
    assert_eq!(
        done["InvokeInstances"]["InvokeInstance"][0]["InstanceId"],
        id.as_str()
    );
    let cat = run(
        &sim,
        &id,
        "cat /opt/drop/motd; stat -c %a /opt/drop/motd",
        "60",
    )
    .await;
    assert_eq!(
        decode(&result(&sim, &cat).await["Output"]),
        "hello from the API\n640\n"
    );

    // Sending it again without Overwrite fails on the instance.
    let (_, body) = send("motd", "again\n".into(), "false").await;
    let again = text(&body["InvokeId"]);
    let failed = sim
        .wait_for("second send ends", WAIT, || async {
            let b = ok(
                &sim,
                "DescribeSendFileResults",
                &[("RegionId", REGION), ("InvokeId", &again)],
            )
            .await;
            let t =
                b["Invocations"]["Invocation"][0]["InvokeInstances"]["InvokeInstance"][0].clone();
            (t["InvocationStatus"] == "Failed").then_some(t)
        })
        .await;
    assert_eq!(failed["ErrorCode"], "FileAlreadyExists", "{failed}");

    // Limits: content over 32 KB after base64; a script over 24 KB after base64.
    let (status, body) = send("big", "x".repeat(25 * 1024), "true").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("InvalidParameter")),
        "{body}"
    );
    assert!(text(&body["Message"]).contains("Content"), "{body}");
    let long = format!("echo {}", "y".repeat(19 * 1024));
    let (status, body) = sim
        .call(
            "RunCommand",
            &[
                ("RegionId", REGION),
                ("Type", "RunShellScript"),
                ("CommandContent", &long),
                ("InstanceId.1", &id),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(text(&body["Message"]).contains("CommandContent"), "{body}");
    let (status, body) = sim
        .call(
            "RunCommand",
            &[
                ("RegionId", REGION),
                ("Type", "RunShellScript"),
                ("CommandContent", "true"),
                ("InstanceId.1", "i-nope"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (404, Some("InvalidInstance.NotFound")),
        "{body}"
    );
}

#[tokio::test]
async fn an_instance_without_the_agent_reports_it_missing_and_commands_to_it_are_aborted() {
    let sim = SimProcess::start("assist-no-agent");
    // The 2016 image predates the agent (preinstalled on public images since December 2017).
    let id = instance(&sim, BASE_IMAGE).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!agent_online(&sim, &id).await);
    let invoke = run(&sim, &id, "echo never", "60").await;
    let r = result(&sim, &invoke).await;
    assert_eq!(r["InvocationStatus"], "Aborted", "{r}");
    assert_eq!(r["ErrorCode"], "ClientNotRunning", "{r}");

    // InstallCloudAssistant, then a restart: the agent answers and commands run.
    ok(
        &sim,
        "InstallCloudAssistant",
        &[("RegionId", REGION), ("InstanceId.1", &id)],
    )
    .await;
    ok(&sim, "RebootInstance", &[("InstanceId", &id)]).await;
    sim.wait_for("agent online after install", WAIT, || async {
        agent_online(&sim, &id).await.then_some(())
    })
    .await;
    let invoke = run(&sim, &id, "echo now", "60").await;
    assert_eq!(decode(&result(&sim, &invoke).await["Output"]), "now\n");
}

/// Answers `(HTTP status, error code or "")` of one call.
async fn outcome(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> (u16, String) {
    let (status, body) = sim.call(action, params).await;
    (status, body["Code"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn size_limits_hold_to_the_byte_and_the_command_timeout_defaults_to_60_seconds() {
    let sim = SimProcess::start("assist-limits");
    let net = network(&sim).await;
    import_key(&sim, "kp", &client_key()).await;
    // Accepted calls only record invocations: the instance need not be Running.
    let id = run_instance(&sim, AGENT_IMAGE, &net, "kp").await;
    let accepted = (200, String::new());
    let refused = (400, "InvalidParameter".to_string());

    // RunCommand: 24 KB after base64 (18,432 plain bytes encode to exactly 24,576).
    let command = |len: usize, keep: &'static str| {
        let (sim, id) = (&sim, id.clone());
        async move {
            let content = b64(&vec![b'#'; len]);
            let params = [
                ("RegionId", REGION),
                ("Type", "RunShellScript"),
                ("CommandContent", content.as_str()),
                ("ContentEncoding", "Base64"),
                ("KeepCommand", keep),
                ("InstanceId.1", id.as_str()),
            ];
            outcome(sim, "RunCommand", &params).await
        }
    };
    assert_eq!(command(18_432, "false").await, accepted);
    assert_eq!(command(18_433, "false").await, refused);
    // A kept command: 18 KB after base64 (13,824 plain bytes).
    assert_eq!(command(13_824, "true").await, accepted);
    assert_eq!(command(13_825, "true").await, refused);

    // SendFile: 32 KB after base64 (24,576 plain bytes); Timeout at least 10 s.
    let send = |len: usize, timeout: &'static str| {
        let (sim, id) = (&sim, id.clone());
        async move {
            let content = "f".repeat(len);
            let mut params = vec![
                ("RegionId", REGION),
                ("Name", "limit"),
                ("TargetDir", "/opt"),
                ("Content", content.as_str()),
                ("Overwrite", "true"),
                ("InstanceId.1", id.as_str()),
            ];
            if !timeout.is_empty() {
                params.push(("Timeout", timeout));
            }
            outcome(sim, "SendFile", &params).await
        }
    };
    assert_eq!(send(24_576, "").await, accepted);
    assert_eq!(send(24_577, "").await, refused);
    assert_eq!(send(10, "9").await, refused);
    assert_eq!(send(10, "10").await, accepted);

    // A RunCommand without Timeout gets 60 s, as documented.
    let body = ok(
        &sim,
        "RunCommand",
        &[
            ("RegionId", REGION),
            ("Type", "RunShellScript"),
            ("CommandContent", "true"),
            ("InstanceId.1", &id),
        ],
    )
    .await;
    let invoke = text(&body["InvokeId"]);
    let listed = ok(
        &sim,
        "DescribeInvocations",
        &[("RegionId", REGION), ("InvokeId", &invoke)],
    )
    .await;
    assert_eq!(
        listed["Invocations"]["Invocation"][0]["Timeout"], 60,
        "{listed}"
    );
}
