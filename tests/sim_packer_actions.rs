//! The ECS actions Packer 1.6.6 needs beyond bakerd's own (docs/sim-packer-actions.md): egress rules,
//! Attach/DetachKeyPair, AddTags/RemoveTags/DescribeTags, the EIP lifecycle with SSH on the EIP,
//! instance passwords, asynchronous release and the unknown-action answer.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const REGION: &str = "cn-hangzhou";
const BASE_IMAGE: &str = "ubuntu_24_04_x64_20G_alibase_20251010.vhd";

/// The one instance in the simulator's region (booted by `boot_from_image`).
async fn only_instance(sim: &SimProcess) -> Value {
    let body = ok_call(sim, "DescribeInstances", &[("RegionId", REGION)]).await;
    body["Instances"]["Instance"][0].clone()
}

#[tokio::test]
async fn an_unknown_action_is_answered_404_invalid_action_not_found_like_the_gateway() {
    let sim = SimProcess::start("unknown-action");
    let resp = sim
        .call("DescribeFlyingSaucers", &[("RegionId", REGION)])
        .await;
    refused(&resp, 404, "InvalidAction.NotFound");
    assert!(resp.1["Message"]
        .as_str()
        .unwrap()
        .contains("Specified api is not found"));
}

#[tokio::test]
async fn egress_rules_are_authorized_listed_by_direction_and_revoked() {
    let sim = SimProcess::start("egress");
    let (_vpc, _vsw, sg) = open_network(&sim).await;
    let rule = [
        ("RegionId", REGION),
        ("SecurityGroupId", sg.as_str()),
        ("IpProtocol", "all"),
        ("PortRange", "-1/-1"),
        ("DestCidrIp", "0.0.0.0/0"),
        ("NicType", "internet"),
    ];
    ok_call(&sim, "AuthorizeSecurityGroupEgress", &rule).await;
    let listed = |direction: &'static str| {
        let sim = &sim;
        let sg = sg.clone();
        async move {
            let body = ok_call(
                sim,
                "DescribeSecurityGroupAttribute",
                &[
                    ("RegionId", REGION),
                    ("SecurityGroupId", &sg),
                    ("Direction", direction),
                ],
            )
            .await;
            body["Permissions"]["Permission"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let egress = listed("egress").await;
    assert_eq!(egress.len(), 1, "{egress:?}");
    assert_eq!(
        (
            egress[0]["Direction"].as_str(),
            egress[0]["DestCidrIp"].as_str()
        ),
        (Some("egress"), Some("0.0.0.0/0"))
    );
    assert!(listed("ingress")
        .await
        .iter()
        .all(|p| p["Direction"] == "ingress"));
    ok_call(&sim, "RevokeSecurityGroupEgress", &rule).await;
    assert!(listed("egress").await.is_empty());
}

#[tokio::test]
async fn tags_are_added_described_and_removed_on_one_resource() {
    let sim = SimProcess::start("addtags");
    let (_vpc, _vsw, sg) = open_network(&sim).await;
    let target = [
        ("RegionId", REGION),
        ("ResourceType", "securitygroup"),
        ("ResourceId", sg.as_str()),
    ];
    let mut add = target.to_vec();
    add.extend([
        ("Tag.1.Key", "team"),
        ("Tag.1.Value", "images"),
        ("Tag.2.Key", "tmp"),
        ("Tag.2.Value", "1"),
    ]);
    ok_call(&sim, "AddTags", &add).await;
    let described = ok_call(&sim, "DescribeTags", &target).await;
    let tags = described["Tags"]["Tag"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "{described}");
    assert_eq!(
        tags[0]["ResourceTypeCount"]["Securitygroup"], 1,
        "{described}"
    );
    let mut remove = target.to_vec();
    remove.push(("Tag.1.Key", "tmp"));
    ok_call(&sim, "RemoveTags", &remove).await;
    let described = ok_call(&sim, "DescribeTags", &target).await;
    assert_eq!(described["Tags"]["Tag"][0]["TagKey"], "team", "{described}");
    assert_eq!(described["Tags"]["Tag"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_eip_is_allocated_associated_answers_ssh_and_is_released_after_unassociating() {
    let sim = SimProcess::start("eip");
    let dir = tempfile::tempdir().unwrap();
    let (_private_ip, key) = boot_from_image(&sim, BASE_IMAGE, dir.path()).await;
    let instance = only_instance(&sim).await["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let eip = ok_call(
        &sim,
        "AllocateEipAddress",
        &[("RegionId", REGION), ("ClientToken", "eip-1")],
    )
    .await;
    let (id, ip) = (
        eip["AllocationId"].as_str().unwrap(),
        eip["EipAddress"].as_str().unwrap(),
    );
    let again = ok_call(
        &sim,
        "AllocateEipAddress",
        &[("RegionId", REGION), ("ClientToken", "eip-1")],
    )
    .await;
    assert_eq!(
        again["AllocationId"], id,
        "the ClientToken returns the same EIP"
    );
    let assoc = [
        ("RegionId", REGION),
        ("AllocationId", id),
        ("InstanceId", instance.as_str()),
    ];
    ok_call(&sim, "AssociateEipAddress", &assoc).await;
    refused(
        &sim.call("ReleaseEipAddress", &assoc[..2]).await,
        403,
        "IncorrectEipStatus",
    );
    let status = |want: &'static str| {
        let sim = &sim;
        async move {
            sim.wait_for(want, Duration::from_secs(30), || async {
                let body = ok_call(
                    sim,
                    "DescribeEipAddresses",
                    &[("RegionId", REGION), ("AllocationId", id)],
                )
                .await;
                (body["EipAddresses"]["EipAddress"][0]["Status"] == want).then_some(())
            })
            .await
        }
    };
    status("InUse").await;
    assert_eq!(only_instance(&sim).await["EipAddress"]["IpAddress"], ip);
    sim.wait_for("SSH on the EIP", Duration::from_secs(30), || async {
        ssh_run(ip, &key, "true").status.success().then_some(())
    })
    .await;
    ok_call(&sim, "UnassociateEipAddress", &assoc).await;
    status("Available").await;
    ok_call(&sim, "ReleaseEipAddress", &assoc[..2]).await;
    let inventory = sim.inventory().await;
    let record = inventory.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(record["status"], "Deleted", "{record}");
}

#[tokio::test]
async fn attach_key_pair_answers_per_instance_and_detach_clears_it() {
    let sim = SimProcess::start("attach");
    let dir = tempfile::tempdir().unwrap();
    boot_from_image(&sim, BASE_IMAGE, dir.path()).await;
    let instance = only_instance(&sim).await["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_key, public) = ssh_keygen(dir.path(), "second");
    ok_call(
        &sim,
        "ImportKeyPair",
        &[
            ("RegionId", REGION),
            ("KeyPairName", "second"),
            ("PublicKeyBody", &public),
        ],
    )
    .await;
    let ids = format!("[\"{instance}\",\"i-doesnotexist0000000\"]");
    let pair = [
        ("RegionId", REGION),
        ("KeyPairName", "second"),
        ("InstanceIds", ids.as_str()),
    ];
    let body = ok_call(&sim, "AttachKeyPair", &pair).await;
    assert_eq!(
        (body["TotalCount"].as_str(), body["FailCount"].as_str()),
        (Some("2"), Some("1")),
        "{body}"
    );
    assert_eq!(body["Results"]["Result"][0]["Success"], "true", "{body}");
    assert_eq!(only_instance(&sim).await["KeyPairName"], "second");
    ok_call(&sim, "DetachKeyPair", &pair).await;
    assert_eq!(only_instance(&sim).await["KeyPairName"], "");
    let mut unknown = pair;
    unknown[1].1 = "nope";
    refused(
        &sim.call("AttachKeyPair", &unknown).await,
        404,
        "InvalidKeyPairName.NotFound",
    );
}

#[tokio::test]
async fn a_deleted_instance_holds_its_security_group_until_it_is_released() {
    let sim = SimProcess::start("release");
    let dir = tempfile::tempdir().unwrap();
    boot_from_image(&sim, BASE_IMAGE, dir.path()).await;
    let inst = only_instance(&sim).await;
    let sg = inst["SecurityGroupIds"]["SecurityGroupId"][0]
        .as_str()
        .unwrap()
        .to_string();
    let id = inst["InstanceId"].as_str().unwrap();
    ok_call(
        &sim,
        "DeleteInstance",
        &[("InstanceId", id), ("Force", "true")],
    )
    .await;
    assert!(
        only_instance(&sim).await.is_null(),
        "gone from DescribeInstances at once"
    );
    let delete = [("RegionId", REGION), ("SecurityGroupId", sg.as_str())];
    refused(
        &sim.call("DeleteSecurityGroup", &delete).await,
        403,
        "DependencyViolation",
    );
    sim.wait_for("the release", Duration::from_secs(30), || async {
        (sim.call("DeleteSecurityGroup", &delete).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_password_that_breaks_the_ecs_rule_is_refused_and_never_stored() {
    let sim = SimProcess::start("password");
    let (_vpc, vsw, sg) = open_network(&sim).await;
    let launch = |password: &'static str| {
        [
            ("RegionId", REGION),
            ("ImageId", BASE_IMAGE),
            ("InstanceType", "ecs.s2.large"),
            ("SecurityGroupId", sg.as_str()),
            ("VSwitchId", vsw.as_str()),
            ("Password", password),
        ]
    };
    refused(
        &sim.call("CreateInstance", &launch("short1A")).await,
        400,
        "InvalidPassword.Malformed",
    );
    refused(
        &sim.call("CreateInstance", &launch("alllowercase")).await,
        400,
        "InvalidPassword.Malformed",
    );
    ok_call(&sim, "CreateInstance", &launch("Canary-Pass-77")).await;
    let state = std::fs::read_to_string(sim.data_dir.join("state.json")).unwrap();
    assert!(
        !state.contains("Canary-Pass-77"),
        "the password itself is stored"
    );
    assert!(state.contains("$6$"), "a SHA-512 crypt hash is kept");
}
