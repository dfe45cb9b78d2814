//! Quotas, against the real binary and a simulator whose account quotas are set with
//! `bakerd sim --quota NAME=VALUE`: `validate --remote` and `apply` refuse a build that cannot fit
//! before anything is created, a denied DescribeAccountAttributes only warns, and the simulator
//! reports and enforces the same numbers (checked through the official Tea Python SDK).

mod common;
mod harness;

use common::SimProcess;
use harness::Workspace;
use serde_json::Value;

fn sim_with(name: &str, extra: &[&str]) -> SimProcess {
    SimProcess::start_in(&common::fresh_data_dir(name), extra)
}

#[tokio::test]
async fn validate_remote_and_apply_refuse_a_build_past_the_vcpu_quota_naming_it_with_nothing_created(
) {
    // ecs.s2.large has 2 vCPUs.
    let sim = sim_with(
        "quota-vcpu",
        &["--quota", "max-postpaid-instance-vcpu-count=1"],
    );
    let ws = Workspace::new(&sim);
    let spec = ws.spec_file(&harness::small_spec("vcpu"));
    let path = spec.to_str().unwrap();
    let validate = harness::run(ws.validate(&["--remote", path])).await;
    assert_eq!(validate.code(), Some(2), "{validate:?}");
    for words in [
        "instance.type",
        "max-postpaid-instance-vcpu-count",
        "needs 2 vCPUs",
        "is 1 with 0 in use",
        "QuotaExceed.ElasticQuota",
        "https://quotas.console.aliyun.com/products/ecs/quotas",
    ] {
        assert!(
            validate.stderr.contains(words),
            "{words}: {}",
            validate.stderr
        );
    }
    let apply = harness::run(ws.apply(&ws.state_dir(), &spec)).await;
    assert_eq!(apply.code(), Some(2), "{apply:?}");
    assert!(apply.stderr.contains("max-postpaid-instance-vcpu-count"));
    assert!(
        apply.stderr.contains("nothing was created"),
        "{}",
        apply.stderr
    );
    let created = sim.inventory().await;
    assert!(created.is_empty(), "refused builds created {created:?}");
}

#[tokio::test]
async fn a_full_security_group_quota_refuses_a_build_that_makes_its_own_group() {
    let sim = sim_with("quota-sg", &["--quota", "max-security-groups=1"]);
    let (status, body) = sim
        .call(
            "CreateSecurityGroup",
            &[("RegionId", "cn-hangzhou"), ("SecurityGroupName", "taken")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ws = Workspace::new(&sim);
    let spec = ws.spec_file(&harness::small_spec("sg"));
    let validate = harness::run(ws.validate(&["--remote", spec.to_str().unwrap()])).await;
    assert_eq!(validate.code(), Some(2), "{validate:?}");
    for words in [
        "instance.security_group_id",
        "holds 1 security groups",
        "max-security-groups) is 1",
        "QuotaExceed.SecurityGroup",
    ] {
        assert!(
            validate.stderr.contains(words),
            "{words}: {}",
            validate.stderr
        );
    }
}

#[tokio::test]
async fn an_account_without_real_name_verification_is_refused_in_the_mainland_only() {
    let sim = sim_with(
        "quota-real-name",
        &["--quota", "real-name-authentication=none"],
    );
    let ws = Workspace::new(&sim);
    let mainland = ws.spec_file(&harness::small_spec("rn"));
    let refused = harness::run(ws.validate(&["--remote", mainland.to_str().unwrap()])).await;
    assert_eq!(refused.code(), Some(2), "{refused:?}");
    for words in [
        "region: cn-hangzhou",
        "real-name",
        "RealNameAuthenticationError",
    ] {
        assert!(
            refused.stderr.contains(words),
            "{words}: {}",
            refused.stderr
        );
    }
    let abroad = harness::small_spec("rn").replace("region: cn-hangzhou", "region: ap-southeast-1");
    let abroad = ws.spec_file(&abroad);
    let passed = harness::run(ws.validate(&["--remote", abroad.to_str().unwrap()])).await;
    assert_eq!(passed.code(), Some(0), "{passed:?}");
    // The simulator refuses what the preflight predicted.
    let (_, group) = sim
        .call("CreateSecurityGroup", &[("RegionId", "cn-hangzhou")])
        .await;
    let group = group["SecurityGroupId"].as_str().expect("group id");
    let (status, body) = sim
        .call(
            "RunInstances",
            &[
                ("RegionId", "cn-hangzhou"),
                ("ImageId", "ubuntu1404_64_40G_cloudinit_20160427.raw"),
                ("InstanceType", "ecs.s2.large"),
                ("SecurityGroupId", group),
            ],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["Code"], "RealNameAuthenticationError", "{body}");
}

#[tokio::test]
async fn a_build_goes_on_with_a_warning_when_describe_account_attributes_is_denied() {
    let sim = sim_with(
        "quota-denied",
        &["--deny-action", "DescribeAccountAttributes"],
    );
    let ws = Workspace::new(&sim);
    let spec = ws.spec_file(&harness::small_spec("denied"));
    let validate = harness::run(ws.validate(&["--remote", spec.to_str().unwrap()])).await;
    assert_eq!(validate.code(), Some(0), "{validate:?}");
    let said = format!("{}{}", validate.stdout, validate.stderr);
    assert!(said.contains("quotas not checked"), "{said}");
    assert!(said.contains("Forbidden.RAM"), "{said}");
    assert!(said.contains("ecs:DescribeAccountAttributes"), "{said}");
    let apply = harness::run(ws.apply(&ws.state_dir(), &spec)).await;
    assert_eq!(apply.code(), Some(0), "{apply:?}");
    let said = format!("{}{}", apply.stdout, apply.stderr);
    assert!(said.contains("quotas not checked"), "{said}");
    let id = apply.build_id().expect("build id");
    let (inventory, calls) = (sim.inventory().await, sim.calls().await);
    let audit = harness::audit_succeeded(&inventory, &calls, &id, 1);
    assert!(audit.clean(), "one image, nothing leaked: {audit:?}");
}

#[tokio::test]
async fn ten_vpcs_in_the_region_warn_of_the_documented_default_quota_without_refusing() {
    let sim = SimProcess::start("quota-vpcs");
    for n in 0..10 {
        let (status, body) = sim
            .call(
                "CreateVpc",
                &[("RegionId", "cn-hangzhou"), ("VpcName", &format!("v{n}"))],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let ws = Workspace::new(&sim);
    let spec = ws.spec_file(&harness::small_spec("vpcs"));
    let validate = harness::run(ws.validate(&["--remote", spec.to_str().unwrap()])).await;
    assert_eq!(validate.code(), Some(0), "a warning only: {validate:?}");
    let said = format!("{}{}", validate.stdout, validate.stderr);
    for words in [
        "already has 10 VPCs",
        "documented default VPC quota is 10",
        "cannot read",
        "QuotaExceeded.Vpc",
    ] {
        assert!(said.contains(words), "{words}: {said}");
    }
}

#[tokio::test]
async fn the_tea_python_sdk_reads_the_quotas_and_meets_the_same_numbers_as_refusals() {
    let sim = sim_with(
        "quota-sdk",
        &[
            "--quota",
            "max-postpaid-instance-vcpu-count=2",
            "--quota",
            "max-security-groups=1",
        ],
    );
    let v = common::python_summary(&sim, "quotas_tea.py").await;
    let value = |when: &str, name: &str| v[when][name][0]["value"].clone();
    assert_eq!(
        value("before", "max-postpaid-instance-vcpu-count"),
        "2",
        "{v}"
    );
    assert_eq!(
        value("before", "used-postpaid-instance-vcpu-count"),
        "0",
        "{v}"
    );
    assert_eq!(value("before", "max-security-groups"), "1", "{v}");
    assert_eq!(
        v["before"]["max-postpaid-instance-vcpu-count"][0]["charge"],
        "PostPaid"
    );
    let categories: Vec<&Value> = v["before"]["used-postpaid-yundisk-capacity"]
        .as_array()
        .expect("disk values")
        .iter()
        .map(|d| &d["disk_category"])
        .collect();
    assert_eq!(categories.len(), 3, "one value per disk category: {v}");
    assert_eq!(
        value("after", "used-postpaid-instance-vcpu-count"),
        "2",
        "{v}"
    );
    assert_eq!(
        v["second_security_group"]["code"],
        "QuotaExceed.SecurityGroup"
    );
    assert_eq!(v["second_security_group"]["status"], 403);
    assert_eq!(v["second_instance"]["code"], "QuotaExceed.ElasticQuota");
    assert_eq!(v["second_instance"]["status"], 403);
}

#[tokio::test]
async fn two_builds_in_one_apply_past_the_vcpu_quota_make_one_image_and_the_other_is_refused_before_creating_anything(
) {
    // Room for one 2-vCPU instance. The second preflight counts the first build's promised
    // instance (or the instance itself, once it exists) and refuses before anything is created.
    let sim = sim_with(
        "quota-parallel",
        &["--quota", "max-postpaid-instance-vcpu-count=3"],
    );
    let ws = Workspace::new(&sim);
    let a = ws.spec_file(&harness::small_spec("qa"));
    let b = ws.spec_file(&harness::small_spec("qb"));
    let args = [
        "apply",
        "--parallel",
        "2",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ];
    let run = harness::run(ws.command(&ws.state_dir(), &args)).await;
    assert_ne!(run.code(), Some(0), "one build cannot fit: {run:?}");
    let said = format!("{}{}", run.stdout, run.stderr);
    for words in [
        "max-postpaid-instance-vcpu-count",
        "nothing was created",
        "quotas.console.aliyun.com/products/ecs/quotas",
    ] {
        assert!(said.contains(words), "{words}: {said}");
    }
    let inventory = sim.inventory().await;
    let count = |kind: &str, live: bool| {
        inventory
            .iter()
            .filter(|r| r["kind"] == kind && (!live || r["deleted"].is_null()))
            .count()
    };
    assert_eq!(count("image", true), 1, "{inventory:?}");
    for kind in ["instance", "keypair", "securitygroup", "vswitch", "vpc"] {
        assert_eq!(
            count(kind, false),
            1,
            "one {kind} ever, the built one's: {inventory:?}"
        );
        assert_eq!(count(kind, true), 0, "live {kind}: {inventory:?}");
    }
}
