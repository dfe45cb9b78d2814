//! Booting a fresh instance from an image through the simulator's API, to read back what a build
//! provisioned into it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ssh_keygen, ssh_run, SimProcess};

const REGION: &str = "cn-hangzhou";

/// Calls an ECS action on the simulator and insists on HTTP 200.
pub async fn ok_call(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = sim.call(action, params).await;
    assert_eq!(status, 200, "{action} failed: {body}");
    body
}

/// Starts a new instance from `image` through the API, with our own key pair and a security
/// group open on tcp/22; waits until it runs and SSH answers. Returns its IP and private key.
pub async fn boot_from_image(sim: &SimProcess, image: &str, dir: &Path) -> (String, PathBuf) {
    let name = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let (key, public) = ssh_keygen(dir, &name);
    ok_call(
        sim,
        "ImportKeyPair",
        &[
            ("RegionId", REGION),
            ("KeyPairName", &name),
            ("PublicKeyBody", &public),
        ],
    )
    .await;
    let (_vpc, vsw, sg) = open_network(sim).await;
    let run = ok_call(
        sim,
        "RunInstances",
        &[
            ("RegionId", REGION),
            ("ImageId", image),
            ("InstanceType", "ecs.s2.large"),
            ("SecurityGroupId", &sg),
            ("VSwitchId", &vsw),
            ("KeyPairName", &name),
        ],
    )
    .await;
    let instance = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .expect("instance id")
        .to_string();
    let ids = format!("[\"{instance}\"]");
    let ip = sim
        .wait_for(
            "the new instance to run",
            Duration::from_secs(60),
            || async {
                let body = ok_call(
                    sim,
                    "DescribeInstances",
                    &[("RegionId", REGION), ("InstanceIds", &ids)],
                )
                .await;
                let i = &body["Instances"]["Instance"][0];
                (i["Status"] == "Running").then(|| {
                    i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]
                        .as_str()
                        .expect("private IP")
                        .to_string()
                })
            },
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ssh_run(&ip, &key, "true");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SSH to the new instance {instance} at {ip} never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (ip, key)
}

/// A new VPC, a vSwitch in it and a security group open on tcp/22: `(vpc, vswitch, group)`.
pub async fn open_network(sim: &SimProcess) -> (String, String, String) {
    let vpc = ok_call(
        sim,
        "CreateVpc",
        &[("RegionId", REGION), ("CidrBlock", "172.16.0.0/16")],
    )
    .await;
    let vpc = vpc["VpcId"].as_str().expect("VpcId").to_string();
    let vsw = sim
        .wait_for("vSwitch creation", Duration::from_secs(30), || async {
            let (status, body) = sim
                .call(
                    "CreateVSwitch",
                    &[
                        ("RegionId", REGION),
                        ("VpcId", &vpc),
                        ("CidrBlock", "172.16.1.0/24"),
                        ("ZoneId", "cn-hangzhou-h"),
                    ],
                )
                .await;
            (status == 200).then(|| body["VSwitchId"].as_str().expect("VSwitchId").to_string())
        })
        .await;
    let sg = ok_call(
        sim,
        "CreateSecurityGroup",
        &[("RegionId", REGION), ("VpcId", &vpc)],
    )
    .await;
    let sg = sg["SecurityGroupId"]
        .as_str()
        .expect("SecurityGroupId")
        .to_string();
    ok_call(
        sim,
        "AuthorizeSecurityGroup",
        &[
            ("RegionId", REGION),
            ("SecurityGroupId", &sg),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "0.0.0.0/0"),
        ],
    )
    .await;
    (vpc, vsw, sg)
}
