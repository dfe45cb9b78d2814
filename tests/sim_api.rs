//! The simulator's ECS API over real HTTP: signatures, envelopes, ClientToken, lifecycles,
//! persistence across restarts and preconditions.

mod common;

use std::time::Duration;

use common::{call_v3, SimProcess, V1Request, ACCESS_KEY_SECRET};
use serde_json::Value;

const REGION: &str = "cn-hangzhou";
const UBUNTU: &str = "ubuntu_24_04_x64_20G_alibase_20251010.vhd";
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ test";

fn ok(resp: &(u16, Value)) -> &Value {
    assert_eq!(resp.0, 200, "expected success, got {resp:?}");
    assert!(
        resp.1.get("Code").is_none(),
        "success bodies never carry Code: {resp:?}"
    );
    assert!(resp.1["RequestId"].is_string(), "{resp:?}");
    &resp.1
}

fn err(resp: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (resp.0, resp.1["Code"].as_str()),
        (status, Some(code)),
        "{resp:?}"
    );
    for k in ["RequestId", "HostId", "Message"] {
        assert!(resp.1[k].is_string(), "error envelope lacks {k}: {resp:?}");
    }
}

/// A security group allowing tcp/22 and a key pair; returns the group id.
async fn network(sim: &SimProcess) -> String {
    ok(&sim
        .call(
            "ImportKeyPair",
            &[
                ("RegionId", REGION),
                ("KeyPairName", "kp1"),
                ("PublicKeyBody", ED25519),
            ],
        )
        .await);
    let sg = sim
        .call(
            "CreateSecurityGroup",
            &[("RegionId", REGION), ("SecurityGroupName", "sg1")],
        )
        .await;
    let sg = ok(&sg)["SecurityGroupId"].as_str().unwrap().to_string();
    ok(&sim
        .call(
            "AuthorizeSecurityGroup",
            &[
                ("RegionId", REGION),
                ("SecurityGroupId", &sg),
                ("IpProtocol", "tcp"),
                ("PortRange", "22/22"),
                ("SourceCidrIp", "0.0.0.0/0"),
            ],
        )
        .await);
    sg
}

async fn create_instance(sim: &SimProcess, sg: &str, token: &str) -> (u16, Value) {
    sim.call(
        "CreateInstance",
        &[
            ("RegionId", REGION),
            ("ImageId", UBUNTU),
            ("InstanceType", "ecs.s2.large"),
            ("SecurityGroupId", sg),
            ("KeyPairName", "kp1"),
            ("ClientToken", token),
            ("Tag.1.Key", "bakerd:managed"),
            ("Tag.1.Value", "true"),
        ],
    )
    .await
}

async fn status_of(sim: &SimProcess, id: &str) -> String {
    let ids = format!("[\"{id}\"]");
    let r = sim
        .call(
            "DescribeInstances",
            &[("RegionId", REGION), ("InstanceIds", &ids)],
        )
        .await;
    ok(&r)["Instances"]["Instance"][0]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn wait_instance(sim: &SimProcess, id: &str, want: &str) {
    sim.wait_for(&format!("{id} {want}"), Duration::from_secs(30), || async {
        (status_of(sim, id).await == want).then_some(())
    })
    .await
}

#[tokio::test]
async fn describe_regions_works_with_v1_get_post_and_v3() {
    let sim = SimProcess::start("regions");
    let req = V1Request::new("DescribeRegions", &[]);
    let get = sim
        .send_v1("GET", &req.signed_for("GET", ACCESS_KEY_SECRET))
        .await;
    let regions = ok(&get)["Regions"]["Region"].as_array().unwrap().clone();
    for r in ["cn-hangzhou", "cn-shanghai", "cn-beijing"] {
        assert!(regions.iter().any(|x| x["RegionId"] == r), "{r} missing");
    }
    ok(&sim.call("DescribeRegions", &[]).await);
    ok(&call_v3(&sim, "DescribeRegions", &[], ACCESS_KEY_SECRET, &[]).await);
}

#[tokio::test]
async fn one_changed_byte_anywhere_is_refused_with_the_server_string_to_sign() {
    let sim = SimProcess::start("badsig");
    let req = V1Request::new("DescribeZones", &[("RegionId", REGION)]);
    let mut bad_sig = req.signed(ACCESS_KEY_SECRET);
    let sig = &mut bad_sig.last_mut().unwrap().1;
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    *sig = format!("{flipped}{}", &sig[1..]);
    let wrong_secret = req.signed("testsecreT");
    let mut changed_param = req.signed(ACCESS_KEY_SECRET);
    changed_param
        .iter_mut()
        .find(|(k, _)| k == "RegionId")
        .unwrap()
        .1 = "cn-hangzhoU".into();
    for params in [bad_sig, wrong_secret, changed_param] {
        let r = sim.send_v1("POST", &params).await;
        err(&r, 400, "SignatureDoesNotMatch");
        let msg = r.1["Message"].as_str().unwrap();
        let sts = msg
            .split("server string to sign is:")
            .nth(1)
            .expect("message carries the string to sign");
        assert!(
            sts.starts_with("POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeZones"),
            "{msg}"
        );
    }
    let v3 = call_v3(&sim, "DescribeZones", &[("RegionId", REGION)], "wrong", &[]).await;
    err(&v3, 400, "SignatureDoesNotMatch");
    assert!(v3.1["Message"]
        .as_str()
        .unwrap()
        .contains("server string to sign is:ACS3-HMAC-SHA256\n"));
}

#[tokio::test]
async fn replayed_nonce_stale_timestamp_and_unknown_key_are_refused() {
    let sim = SimProcess::start("replay");
    let signed = V1Request::new("DescribeRegions", &[]).signed(ACCESS_KEY_SECRET);
    ok(&sim.send_v1("POST", &signed).await);
    err(
        &sim.send_v1("POST", &signed).await,
        400,
        "SignatureNonceUsed",
    );
    let stale =
        V1Request::new("DescribeRegions", &[]).set("Timestamp", &common::timestamp(-16 * 60));
    err(
        &sim.send_v1("POST", &stale.signed(ACCESS_KEY_SECRET)).await,
        400,
        "InvalidTimeStamp.Expired",
    );
    let fresh_enough =
        V1Request::new("DescribeRegions", &[]).set("Timestamp", &common::timestamp(-14 * 60));
    ok(&sim
        .send_v1("POST", &fresh_enough.signed(ACCESS_KEY_SECRET))
        .await);
    let unknown = V1Request::new("DescribeRegions", &[]).set("AccessKeyId", "nobody");
    err(
        &sim.send_v1("POST", &unknown.signed(ACCESS_KEY_SECRET))
            .await,
        404,
        "InvalidAccessKeyId.NotFound",
    );
}

#[tokio::test]
async fn sts_tokens_are_accepted_only_when_configured() {
    let dir = common::fresh_data_dir("sts");
    let sim = SimProcess::start_in(&dir, &["--sts-token", "good-token"]);
    let good = V1Request::new("DescribeRegions", &[]).set("SecurityToken", "good-token");
    ok(&sim.send_v1("POST", &good.signed(ACCESS_KEY_SECRET)).await);
    let bad = V1Request::new("DescribeRegions", &[]).set("SecurityToken", "forged-token");
    err(
        &sim.send_v1("POST", &bad.signed(ACCESS_KEY_SECRET)).await,
        400,
        "InvalidSecurityToken.Expired",
    );
    ok(&call_v3(
        &sim,
        "DescribeRegions",
        &[],
        ACCESS_KEY_SECRET,
        &[("x-acs-security-token", "good-token")],
    )
    .await);
    let r = call_v3(
        &sim,
        "DescribeRegions",
        &[],
        ACCESS_KEY_SECRET,
        &[("x-acs-security-token", "nope")],
    )
    .await;
    err(&r, 400, "InvalidSecurityToken.Expired");
}

#[tokio::test]
async fn missing_and_invalid_parameters_are_named() {
    let sim = SimProcess::start("params");
    let r = sim
        .call(
            "CreateInstance",
            &[("RegionId", REGION), ("ImageId", UBUNTU)],
        )
        .await;
    err(&r, 400, "MissingParameter");
    assert!(
        r.1["Message"].as_str().unwrap().contains("InstanceType"),
        "{r:?}"
    );
    let r = sim
        .call(
            "DescribeInstances",
            &[("RegionId", REGION), ("InstanceIds", "i-1,i-2")],
        )
        .await;
    err(&r, 400, "InvalidParameter");
    assert!(
        r.1["Message"].as_str().unwrap().contains("InstanceIds"),
        "{r:?}"
    );
    err(
        &sim.call("DescribeInstances", &[("RegionId", "mars-1")])
            .await,
        404,
        "InvalidRegionId.NotFound",
    );
    err(
        &sim.call("StopInstance", &[("InstanceId", "i-nothere")])
            .await,
        404,
        "InvalidInstanceId.NotFound",
    );
}

#[tokio::test]
async fn same_client_token_twice_creates_one_instance() {
    let sim = SimProcess::start("token");
    let sg = network(&sim).await;
    let first = create_instance(&sim, &sg, "token-1").await;
    let second = create_instance(&sim, &sg, "token-1").await;
    let id = ok(&first)["InstanceId"].as_str().unwrap().to_string();
    assert_eq!(ok(&second)["InstanceId"], id.as_str());
    let instances: Vec<Value> = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "instance")
        .collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0]["client_token"], "token-1");
    assert_eq!(instances[0]["tags"]["bakerd:managed"], "true");
    let other = sim
        .call(
            "CreateInstance",
            &[
                ("RegionId", REGION),
                ("ImageId", UBUNTU),
                ("InstanceType", "ecs.g7.large"),
                ("SecurityGroupId", &sg),
                ("ClientToken", "token-1"),
            ],
        )
        .await;
    err(&other, 400, "IdempotentParameterMismatch");
    let calls = sim.calls().await;
    assert_eq!(calls["counts"]["CreateInstance"], 3);
    assert!(calls["calls"].as_array().unwrap().iter().any(
        |c| c["client_token"] == "token-1" && c["error_code"] == "IdempotentParameterMismatch"
    ));
}

#[tokio::test]
async fn describe_images_defaults_to_available_and_pages() {
    let sim = SimProcess::start("images");
    let all = sim
        .call(
            "DescribeImages",
            &[("RegionId", REGION), ("PageSize", "100")],
        )
        .await;
    let total = ok(&all)["TotalCount"].as_u64().unwrap();
    assert!(total >= 2);
    for id in [UBUNTU, "ubuntu1404_64_40G_cloudinit_20160427.raw"] {
        assert!(
            all.1["Images"]["Image"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["ImageId"] == id),
            "{id}"
        );
    }
    let p1 = sim
        .call(
            "DescribeImages",
            &[("RegionId", REGION), ("PageSize", "1"), ("PageNumber", "1")],
        )
        .await;
    let p2 = sim
        .call(
            "DescribeImages",
            &[("RegionId", REGION), ("PageSize", "1"), ("PageNumber", "2")],
        )
        .await;
    assert_eq!(ok(&p1)["Images"]["Image"].as_array().unwrap().len(), 1);
    assert_ne!(
        p1.1["Images"]["Image"][0]["ImageId"],
        ok(&p2)["Images"]["Image"][0]["ImageId"]
    );
    assert_eq!(p1.1["TotalCount"].as_u64(), Some(total));
    let creating = sim
        .call(
            "DescribeImages",
            &[("RegionId", REGION), ("Status", "Creating")],
        )
        .await;
    assert_eq!(ok(&creating)["TotalCount"], 0);
}

/// Runs an instance to Running and snapshots/images it; returns (instance, snapshot, image).
async fn instance_snapshot_image(sim: &SimProcess) -> (String, String, String) {
    let sg = network(sim).await;
    let id = ok(&create_instance(sim, &sg, "t-life").await)["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_instance(sim, &id, "Stopped").await;
    ok(&sim.call("StartInstance", &[("InstanceId", &id)]).await);
    wait_instance(sim, &id, "Running").await;
    let disks = sim
        .call(
            "DescribeDisks",
            &[
                ("RegionId", REGION),
                ("InstanceId", &id),
                ("DiskType", "system"),
            ],
        )
        .await;
    let disk = ok(&disks)["Disks"]["Disk"][0]["DiskId"]
        .as_str()
        .unwrap()
        .to_string();
    let snap = sim
        .call(
            "CreateSnapshot",
            &[("DiskId", &disk), ("SnapshotName", "s1")],
        )
        .await;
    let snap = ok(&snap)["SnapshotId"].as_str().unwrap().to_string();
    let ids = format!("[\"{snap}\"]");
    sim.wait_for("snapshot accomplished", Duration::from_secs(30), || async {
        let r = sim
            .call(
                "DescribeSnapshots",
                &[("RegionId", REGION), ("SnapshotIds", &ids)],
            )
            .await;
        let s = &ok(&r)["Snapshots"]["Snapshot"][0];
        (s["Status"] == "accomplished").then(|| assert_eq!(s["Progress"], "100%"))
    })
    .await;
    let img = sim
        .call(
            "CreateImage",
            &[
                ("RegionId", REGION),
                ("SnapshotId", &snap),
                ("ImageName", "baked-1"),
                ("ImageFamily", "baked"),
                ("ImageVersion", "1"),
            ],
        )
        .await;
    let img = ok(&img)["ImageId"].as_str().unwrap().to_string();
    sim.wait_for("image Available", Duration::from_secs(30), || async {
        let r = sim
            .call(
                "DescribeImages",
                &[
                    ("RegionId", REGION),
                    ("ImageId", &img),
                    ("Status", "Creating,Available,CreateFailed"),
                ],
            )
            .await;
        (ok(&r)["Images"]["Image"][0]["Status"] == "Available").then_some(())
    })
    .await;
    (id, snap, img)
}

#[tokio::test]
async fn snapshot_and_image_lifecycles_reach_accomplished_and_available_with_preconditions() {
    let sim = SimProcess::start("lifecycle");
    let (id, snap, img) = instance_snapshot_image(&sim).await;
    let dup = sim
        .call(
            "CreateImage",
            &[
                ("RegionId", REGION),
                ("SnapshotId", &snap),
                ("ImageName", "baked-1"),
            ],
        )
        .await;
    err(&dup, 400, "InvalidImageName.Duplicated");
    err(
        &sim.call("DeleteSnapshot", &[("SnapshotId", &snap)]).await,
        403,
        "SnapshotCreatedImage",
    );
    err(
        &sim.call("StartInstance", &[("InstanceId", &id)]).await,
        403,
        "IncorrectInstanceStatus",
    );
    err(
        &sim.call("DeleteInstance", &[("InstanceId", &id)]).await,
        403,
        "IncorrectInstanceStatus",
    );
    let sgs = sim
        .call("DescribeSecurityGroups", &[("RegionId", REGION)])
        .await;
    let sg = ok(&sgs)["SecurityGroups"]["SecurityGroup"][0]["SecurityGroupId"]
        .as_str()
        .unwrap()
        .to_string();
    err(
        &sim.call(
            "DeleteSecurityGroup",
            &[("RegionId", REGION), ("SecurityGroupId", &sg)],
        )
        .await,
        403,
        "DependencyViolation",
    );
    let names = "[\"kp1\"]";
    err(
        &sim.call(
            "DeleteKeyPairs",
            &[("RegionId", REGION), ("KeyPairNames", names)],
        )
        .await,
        403,
        "DependencyViolation.KeyPair",
    );
    ok(&sim
        .call("DeleteInstance", &[("InstanceId", &id), ("Force", "TRUE")])
        .await);
    ok(&sim
        .call("DeleteImage", &[("RegionId", REGION), ("ImageId", &img)])
        .await);
    ok(&sim.call("DeleteSnapshot", &[("SnapshotId", &snap)]).await);
    // The deleted instance is released asynchronously: its group is refused until then.
    sim.wait_for("the group deleted", Duration::from_secs(30), || async {
        let resp = sim
            .call(
                "DeleteSecurityGroup",
                &[("RegionId", REGION), ("SecurityGroupId", &sg)],
            )
            .await;
        if resp.0 != 200 {
            err(&resp, 403, "DependencyViolation");
        }
        (resp.0 == 200).then_some(())
    })
    .await;
    let inv = sim.inventory().await;
    for r in &inv {
        if ["instance", "image", "snapshot", "securitygroup"].contains(&r["kind"].as_str().unwrap())
        {
            assert_eq!(r["status"], "Deleted", "{r}");
            assert!(r["deleted"].is_string(), "{r}");
        }
    }
}

#[tokio::test]
async fn restarting_the_simulator_keeps_every_resource_and_status() {
    let sim = SimProcess::start("restart");
    let (id, snap, img) = instance_snapshot_image(&sim).await;
    let before: Vec<Value> = sim.inventory().await;
    let dir = sim.stop();
    let sim = SimProcess::start_in(&dir, &[]);
    let after: Vec<Value> = sim.inventory().await;
    let key = |v: &Vec<Value>| -> Vec<(String, String)> {
        let mut k: Vec<_> = v
            .iter()
            .map(|r| (r["id"].to_string(), r["status"].to_string()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&before), key(&after));
    assert_eq!(status_of(&sim, &id).await, "Running");
    let r = sim
        .call("DescribeImages", &[("RegionId", REGION), ("ImageId", &img)])
        .await;
    assert_eq!(
        ok(&r)["Images"]["Image"][0]["DiskDeviceMappings"]["DiskDeviceMapping"][0]["SnapshotId"],
        snap.as_str()
    );
}

#[tokio::test]
async fn a_simulator_killed_right_after_creates_answered_restarts_with_every_resource_and_call() {
    let sim = SimProcess::start("killedcreate");
    // Concurrent creates share state writes: each must still be on disk when its answer arrives.
    let creates = (0..8).map(|i| {
        let (name, token) = (format!("sg-kill-{i}"), format!("kill-token-{i}"));
        let sim = &sim;
        async move {
            let params = [
                ("RegionId", REGION),
                ("SecurityGroupName", name.as_str()),
                ("ClientToken", token.as_str()),
            ];
            let r = sim.call("CreateSecurityGroup", &params).await;
            let body = ok(&r);
            let id = body["SecurityGroupId"].as_str().unwrap().to_string();
            (
                name,
                token,
                id,
                body["RequestId"].as_str().unwrap().to_string(),
            )
        }
    });
    let created = futures::future::join_all(creates).await;
    // SIGKILL: nothing is saved on the way out.
    unsafe { libc::kill(sim.pid().unwrap() as i32, libc::SIGKILL) };
    let dir = sim.data_dir.clone();
    drop(sim);
    let sim = SimProcess::start_in(&dir, &[]);
    let inventory = sim.inventory().await;
    let calls = sim.calls().await;
    assert_eq!(calls["counts"]["CreateSecurityGroup"], 8, "{calls}");
    for (name, token, id, request_id) in &created {
        assert!(
            inventory.iter().any(|r| r["id"] == id.as_str()),
            "{id} is gone after the restart"
        );
        assert!(
            calls["calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["request_id"] == request_id.as_str()
                    && c["client_token"] == token.as_str()),
            "the call {request_id} is not in the log"
        );
        // A client retrying with the same token gets the same group, not a second one.
        let params = [
            ("RegionId", REGION),
            ("SecurityGroupName", name.as_str()),
            ("ClientToken", token.as_str()),
        ];
        let again = sim.call("CreateSecurityGroup", &params).await;
        assert_eq!(ok(&again)["SecurityGroupId"], id.as_str());
    }
}

#[tokio::test]
async fn xml_format_and_case_insensitive_booleans_are_understood() {
    let sim = SimProcess::start("xml");
    let req = V1Request::new("DescribeRegions", &[]).set("Format", "XML");
    let signed = req.signed(ACCESS_KEY_SECRET);
    let url = format!("{}/?{}", sim.endpoint, common::encode_query(&signed));
    let body = sim
        .http
        .post(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("<DescribeRegionsResponse><Regions><Region>"),
        "{body}"
    );
    let r = sim
        .call(
            "DescribeKeyPairs",
            &[("RegionId", REGION), ("IncludePublicKey", "True")],
        )
        .await;
    ok(&r);
    err(
        &sim.call(
            "DescribeKeyPairs",
            &[("RegionId", REGION), ("IncludePublicKey", "yes")],
        )
        .await,
        400,
        "InvalidParameter",
    );
}

#[tokio::test]
async fn acted_but_response_lost_faults_act_and_a_token_retry_returns_the_same_instance() {
    let sim = SimProcess::start("faults");
    let sg = network(&sim).await;
    let one_shot = serde_json::json!({"one_shot": [
        {"action": "CreateInstance", "kind": "acted_then_500"},
        {"action": "CreateInstance", "kind": "acted_then_drop"},
        {"action": "DescribeRegions", "kind": "reset"},
        {"action": "DescribeRegions", "kind": "service_unavailable"},
    ]});
    sim.set_faults(one_shot).await;
    err(
        &create_instance(&sim, &sg, "tok-f").await,
        500,
        "InternalError",
    );
    let dropped = create_instance(&sim, &sg, "tok-f").await;
    assert_eq!(
        dropped,
        (0, Value::Null),
        "connection should close without a response (status 0 = no HTTP answer)"
    );
    let retried = create_instance(&sim, &sg, "tok-f").await;
    let id = ok(&retried)["InstanceId"].as_str().unwrap().to_string();
    let instances: Vec<Value> = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "instance")
        .collect();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["id"], id.as_str());
    assert_eq!(sim.call("DescribeRegions", &[]).await.0, 0);
    err(
        &sim.call("DescribeRegions", &[]).await,
        503,
        "ServiceUnavailable",
    );
    ok(&sim.call("DescribeRegions", &[]).await);
    let calls = sim.calls().await;
    let faults: Vec<&str> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["fault"].as_str())
        .collect();
    assert_eq!(
        faults,
        [
            "acted_then_500",
            "acted_then_drop",
            "reset",
            "service_unavailable"
        ]
    );
}
