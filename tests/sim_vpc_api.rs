//! The VPC product's API (Version 2016-04-28) in the simulator, next to ECS's deprecated copies of
//! the same actions (2014-05-26): tags at creation, the VPC tag types, and which product refuses
//! which resource type (docs/sim-packer-actions.md, "The VPC product").

mod common;

use common::*;
use serde_json::Value;

const REGION: &str = "cn-hangzhou";
const VPC_VERSION: &str = "2016-04-28";

/// A V1-signed call to the VPC API.
async fn vpc_call(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
    sim.call_vpc(action, params).await
}

fn ok(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    resp.1
}

const TAGS: &[(&str, &str)] = &[("Tag.1.Key", "bakerd:managed"), ("Tag.1.Value", "true")];

fn with_tags<'a>(params: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    params.iter().chain(TAGS).copied().collect()
}

/// The resource ids that ListTagResources (VPC API) lists for `rtype` with the managed tag.
async fn tagged(sim: &SimProcess, rtype: &str) -> Vec<String> {
    let body = ok(vpc_call(
        sim,
        "ListTagResources",
        &with_tags(&[("RegionId", REGION), ("ResourceType", rtype)]),
    )
    .await);
    let rows = body["TagResources"]["TagResource"].as_array().unwrap();
    for row in rows {
        assert_eq!(row["ResourceType"], rtype, "{row}");
    }
    rows.iter()
        .map(|r| r["ResourceId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_vpc_api_takes_tags_at_creation_and_ecs_copies_of_its_creates_drop_them() {
    let sim = SimProcess::start("vpc-api-tags");
    let create_vpc = [("RegionId", REGION), ("CidrBlock", "172.16.0.0/12")];
    let vpc = ok(vpc_call(&sim, "CreateVpc", &with_tags(&create_vpc)).await);
    let vpc = vpc["VpcId"].as_str().unwrap().to_string();
    let ecs_vpc = ok(sim.call("CreateVpc", &with_tags(&create_vpc)).await);
    let ecs_vpc = ecs_vpc["VpcId"].as_str().unwrap().to_string();
    let vsw_params = [
        ("RegionId", REGION),
        ("VpcId", vpc.as_str()),
        ("ZoneId", "cn-hangzhou-h"),
        ("CidrBlock", "172.16.1.0/24"),
    ];
    let vsw = ok(vpc_call(&sim, "CreateVSwitch", &with_tags(&vsw_params)).await);
    let vsw = vsw["VSwitchId"].as_str().unwrap().to_string();
    let eip_params = [("RegionId", REGION), ("Name", "build-eip")];
    let eip = ok(vpc_call(&sim, "AllocateEipAddress", &with_tags(&eip_params)).await);
    let eip = eip["AllocationId"].as_str().unwrap().to_string();
    let ecs_eip = ok(sim
        .call("AllocateEipAddress", &with_tags(&eip_params))
        .await);
    let ecs_eip = ecs_eip["AllocationId"].as_str().unwrap().to_string();

    assert_eq!(tagged(&sim, "VPC").await, [vpc.as_str()], "not {ecs_vpc}");
    assert_eq!(tagged(&sim, "VSWITCH").await, [vsw.as_str()]);
    assert_eq!(tagged(&sim, "EIP").await, [eip.as_str()], "not {ecs_eip}");

    // The VPC version of DescribeEipAddresses lists the name and tags; ECS's has neither.
    let listed = ok(vpc_call(
        &sim,
        "DescribeEipAddresses",
        &[("RegionId", REGION), ("AllocationId", &eip)],
    )
    .await);
    let listed = &listed["EipAddresses"]["EipAddress"][0];
    assert_eq!(listed["Name"], "build-eip", "{listed}");
    assert_eq!(
        listed["Tags"]["Tag"][0]["Key"], "bakerd:managed",
        "{listed}"
    );
    let ecs = ok(sim
        .call(
            "DescribeEipAddresses",
            &[("RegionId", REGION), ("AllocationId", &eip)],
        )
        .await);
    assert!(
        ecs["EipAddresses"]["EipAddress"][0].get("Tags").is_none(),
        "{ecs}"
    );

    // Both versions see the same resources: ECS's DescribeVpcs lists the VPC API's VPC.
    let ecs = ok(sim
        .call("DescribeVpcs", &[("RegionId", REGION), ("VpcId", &vpc)])
        .await);
    assert_eq!(ecs["Vpcs"]["Vpc"][0]["VpcId"], vpc.as_str(), "{ecs}");

    let calls = sim.calls().await;
    let versions: Vec<(&str, &str)> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "CreateVpc")
        .map(|c| {
            (
                c["action"].as_str().unwrap(),
                c["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [("CreateVpc", VPC_VERSION), ("CreateVpc", "2014-05-26")],
        "the call log records each call's API version"
    );
}

#[tokio::test]
async fn ecs_tag_actions_refuse_vpc_resource_types_and_the_vpc_api_refuses_ecs_ones() {
    let sim = SimProcess::start("vpc-api-types");
    let vpc = ok(vpc_call(&sim, "CreateVpc", &[("RegionId", REGION)]).await);
    let vpc = vpc["VpcId"].as_str().unwrap().to_string();
    for rtype in ["vpc", "vswitch", "eip", "VPC"] {
        let tag = with_tags(&[
            ("RegionId", REGION),
            ("ResourceType", rtype),
            ("ResourceId.1", &vpc),
        ]);
        let resp = sim.call("TagResources", &tag).await;
        refused(&resp, 404, "InvalidResourceType.NotFound");
        assert!(
            resp.1["HostId"].as_str().unwrap().starts_with("ecs."),
            "{}",
            resp.1
        );
        let list = [("RegionId", REGION), ("ResourceType", rtype)];
        refused(
            &sim.call("ListTagResources", &with_tags(&list)).await,
            404,
            "InvalidResourceType.NotFound",
        );
    }
    let tag = with_tags(&[
        ("RegionId", REGION),
        ("ResourceType", "VPC"),
        ("ResourceId.1", &vpc),
    ]);
    ok(vpc_call(&sim, "TagResources", &tag).await);
    assert_eq!(tagged(&sim, "VPC").await, [vpc.as_str()]);
    let untag = [
        ("RegionId", REGION),
        ("ResourceType", "VPC"),
        ("ResourceId.1", vpc.as_str()),
        ("TagKey.1", "bakerd:managed"),
    ];
    refused(
        &vpc_call(&sim, "UntagResources", &untag).await,
        404,
        "InvalidAction.NotFound",
    );
    ok(vpc_call(&sim, "UnTagResources", &untag).await);
    assert!(tagged(&sim, "VPC").await.is_empty());

    let resp = vpc_call(
        &sim,
        "ListTagResources",
        &with_tags(&[("RegionId", REGION), ("ResourceType", "instance")]),
    )
    .await;
    refused(&resp, 404, "InvalidResourceType.NotFound");
    assert!(
        resp.1["HostId"].as_str().unwrap().starts_with("vpc."),
        "{}",
        resp.1
    );
    // ECS actions are not part of the VPC API.
    refused(
        &vpc_call(&sim, "DescribeInstances", &[("RegionId", REGION)]).await,
        404,
        "InvalidAction.NotFound",
    );
}
