//! The ECS client against the real simulator (`bakerd sim` as a child process, real HTTP):
//! signing in both styles over hostile parameter values, retries under injected throttling and
//! 5xx, idempotent creates, sent-once errors, and the waiters on real snapshot/image lifecycles.

mod common;

use bakerd::client::api::images::{CreateImage, DescribeImages};
use bakerd::client::api::instances::{DescribeInstances, InstanceSpec, RunInstances};
use bakerd::client::api::keypairs::{DescribeKeyPairs, ImportKeyPair};
use bakerd::client::api::network::{CreateSecurityGroup, CreateVpc, DescribeSecurityGroups};
use bakerd::client::api::regions::{DescribeInstanceTypes, DescribeRegions, DescribeZones};
use bakerd::client::api::storage::{CreateSnapshot, DescribeDisks};
use bakerd::client::api::Mutation;
use bakerd::client::wait::{WaitConfig, WaitError};
use bakerd::client::{
    ClientConfig, ClientError, EcsClient, Env, InstanceStatus, RateLimiter, RetryPolicy,
    SignatureStyle, Tag,
};
use common::SimProcess;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const REGION: &str = "cn-hangzhou";
const IMAGE: &str = "ubuntu1404_64_40G_cloudinit_20160427.raw";

fn client_for(sim: &SimProcess, style: SignatureStyle) -> EcsClient {
    client_with(sim, style, common::ACCESS_KEY_ID, common::ACCESS_KEY_SECRET)
}

fn client_with(sim: &SimProcess, style: SignatureStyle, id: &str, secret: &str) -> EcsClient {
    let mut c = ClientConfig::new(REGION);
    c.env = Env::from_pairs([
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", id),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret),
        ("BAKERD_ECS_ENDPOINT", sim.endpoint.as_str()),
    ]);
    c.signature_style = style;
    c.retry = RetryPolicy::fast();
    c.rate_limiter = Arc::new(RateLimiter::new(
        Duration::from_millis(2),
        Duration::from_millis(40),
    ));
    EcsClient::new(c).expect("client")
}

fn fast_waits() -> WaitConfig {
    WaitConfig {
        floor: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        deadline: Duration::from_secs(60),
        not_found_grace: 3,
        documented_durations: false,
    }
}

fn calls_log(calls: &Value) -> Vec<Value> {
    calls["calls"].as_array().cloned().unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

mod signing {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;

    /// Unicode, spaces, `*`, `~`, `/`, `=`, `&`, `+`, `%`, quotes, empty and long values.
    fn hostile_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[ *~/=&+%\"'a-zA-Z0-9中文ü😀\\-_.:?#\\[\\]]{1,40}",
            "[a-z *~]{300,1500}",
            any::<String>().prop_map(|s| s.chars().filter(|c| !c.is_control()).take(60).collect()),
        ]
    }

    /// One simulator for every generated case; it is stopped when the test ends.
    #[test]
    fn the_simulator_accepts_every_request_the_client_signs_in_both_styles() {
        let sim = SimProcess::start("client-proptest");
        let rt = runtime();
        let clients = [
            client_for(&sim, SignatureStyle::V1),
            client_for(&sim, SignatureStyle::V3),
        ];
        let config = ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let strategy = (hostile_value(), hostile_value(), hostile_value());
        let outcome = TestRunner::new(config).run(&strategy, |(name, tag_value, extra)| {
            for client in &clients {
                let request = DescribeInstances {
                    region_id: REGION.into(),
                    instance_name: Some(name.clone()),
                    tags: vec![Tag::new("bakerd:probe", tag_value.clone())],
                    ..Default::default()
                };
                let answer = rt.block_on(client.call(&request));
                prop_assert!(
                    answer.is_ok(),
                    "DescribeInstances refused: {}",
                    answer.unwrap_err()
                );
                let raw = vec![("OwnerAccount".to_string(), extra.clone())];
                let answer =
                    rt.block_on(client.invoke("DescribeRegions", Mutation::ReadOnly, &raw));
                prop_assert!(
                    answer.is_ok(),
                    "DescribeRegions refused: {}",
                    answer.unwrap_err()
                );
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
        let calls = rt.block_on(sim.calls());
        let ok = calls_log(&calls)
            .iter()
            .filter(|c| c["http_status"] == 200)
            .count();
        assert!(ok >= 48 * 4, "only {ok} signed calls were accepted");
    }
}

/// One of eight calls, chosen by `i`; creates carry a ClientToken derived from `i`.
async fn mixed_call(client: &EcsClient, i: usize) -> Result<(), ClientError> {
    let tags = vec![
        Tag::new("bakerd:managed", "true"),
        Tag::new("bakerd:build-id", "mix"),
    ];
    match i % 8 {
        0 => client.call(&DescribeRegions::default()).await.map(drop),
        1 => {
            let r = DescribeZones {
                region_id: REGION.into(),
                verbose: None,
            };
            client.call(&r).await.map(drop)
        }
        2 => {
            let r = DescribeImages {
                region_id: REGION.into(),
                ..Default::default()
            };
            client.list_all(r).await.map(drop)
        }
        3 => client
            .list_all(DescribeInstanceTypes::default())
            .await
            .map(drop),
        4 => {
            let r = CreateSecurityGroup {
                region_id: REGION.into(),
                security_group_name: Some(format!("mix-{i}")),
                tags,
                client_token: Some(format!("mix-sg-{i}")),
                ..Default::default()
            };
            client.call(&r).await.map(drop)
        }
        5 => {
            let r = DescribeSecurityGroups {
                region_id: REGION.into(),
                ..Default::default()
            };
            client.list_all(r).await.map(drop)
        }
        6 => {
            let r = CreateVpc {
                region_id: REGION.into(),
                cidr_block: Some("192.168.0.0/16".into()),
                tags,
                client_token: Some(format!("mix-vpc-{i}")),
                ..Default::default()
            };
            client.call(&r).await.map(drop)
        }
        _ => {
            let r = DescribeKeyPairs {
                region_id: REGION.into(),
                ..Default::default()
            };
            client.list_all(r).await.map(drop)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_calls_all_succeed_under_30_percent_throttling_and_10_percent_5xx() {
    let dir = common::fresh_data_dir("client-mixed");
    let sim = SimProcess::start_in(
        &dir,
        &[
            "--throttle-rate",
            "0.3",
            "--fault-rate",
            "0.1",
            "--fault-kind",
            "internal_error",
            "--fault-kind",
            "service_unavailable",
            "--seed",
            "11",
        ],
    );
    for (n, style) in [(0, SignatureStyle::V1), (1, SignatureStyle::V3)] {
        let client = client_for(&sim, style);
        for i in (0..200).filter(|i| i % 2 == n) {
            mixed_call(&client, i)
                .await
                .unwrap_or_else(|e| panic!("call {i} ({style:?}) failed: {e}"));
        }
    }
    let calls = calls_log(&sim.calls().await);
    let faults = calls.iter().filter(|c| !c["error_code"].is_null()).count();
    println!(
        "200 calls took {} attempts; {faults} answered with an injected error",
        calls.len()
    );
    assert!(faults > 40, "fault injection did not bite: {faults}");
    let nonces: HashSet<&str> = calls
        .iter()
        .filter_map(|c| c["signature_nonce"].as_str())
        .collect();
    assert_eq!(
        nonces.len(),
        calls.len(),
        "a nonce was reused across attempts"
    );
    assert_one_resource_per_retried_token(&sim, &calls).await;
}

/// Every create whose token shows up in several attempts produced exactly one resource.
async fn assert_one_resource_per_retried_token(sim: &SimProcess, calls: &[Value]) {
    let mut attempts: HashMap<&str, usize> = HashMap::new();
    for c in calls {
        if let Some(token) = c["client_token"].as_str() {
            *attempts.entry(token).or_default() += 1;
        }
    }
    let retried: Vec<&str> = attempts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        !retried.is_empty(),
        "no create was retried; raise the fault rates"
    );
    let inventory = sim.inventory().await;
    for token in attempts.keys() {
        let made = inventory
            .iter()
            .filter(|r| r["client_token"] == *token)
            .count();
        assert_eq!(
            made, 1,
            "token {token} ({} attempts) made {made} resources",
            attempts[token]
        );
    }
    println!(
        "{} creates were retried, each made one resource",
        retried.len()
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_retried_into_the_same_resource() {
    let sim = SimProcess::start("client-lost-create");
    sim.set_faults(json!({"one_shot": [
        {"action": "CreateSecurityGroup", "kind": "acted_then_drop"},
        {"action": "CreateSecurityGroup", "kind": "acted_then_500"}
    ]}))
    .await;
    let client = client_for(&sim, SignatureStyle::V3);
    let request = CreateSecurityGroup {
        region_id: REGION.into(),
        client_token: Some("lost-answer-sg".into()),
        ..Default::default()
    };
    let sg = client.call(&request).await.unwrap();
    let attempts = calls_log(&sim.calls().await)
        .iter()
        .filter(|c| c["client_token"] == "lost-answer-sg")
        .count();
    assert_eq!(attempts, 3);
    let inventory = sim.inventory().await;
    let made: Vec<_> = inventory
        .iter()
        .filter(|r| r["client_token"] == "lost-answer-sg")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["id"], sg.security_group_id.as_str());
}

#[tokio::test]
async fn an_unprotected_call_whose_answer_was_lost_is_reported_and_found_by_name() {
    let sim = SimProcess::start("client-lost-import");
    sim.set_faults(json!({"one_shot": [{"action": "ImportKeyPair", "kind": "acted_then_drop"}]}))
        .await;
    let client = client_for(&sim, SignatureStyle::V1);
    let request = ImportKeyPair {
        region_id: REGION.into(),
        key_pair_name: "bakerd-lost".into(),
        public_key_body:
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheSimulatorOnly00000000000000000 t"
                .into(),
        tags: vec![],
    };
    let err = client.call(&request).await.unwrap_err();
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(sim.calls().await["counts"]["ImportKeyPair"], 1);
    let found = client
        .list_all(DescribeKeyPairs {
            region_id: REGION.into(),
            key_pair_name: Some("bakerd-lost".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "the caller's recovery: look the key pair up by name"
    );
}

#[tokio::test]
async fn a_non_retryable_error_is_sent_once_with_its_hint() {
    let sim = SimProcess::start("client-sent-once");
    let client = client_for(&sim, SignatureStyle::V3);
    let request = RunInstances {
        spec: InstanceSpec {
            region_id: REGION.into(),
            image_id: "no-such-image".into(),
            instance_type: "ecs.s2.large".into(),
            security_group_id: Some("sg-none".into()),
            client_token: Some("sent-once".into()),
            ..Default::default()
        },
        amount: None,
    };
    let err = client.call(&request).await.unwrap_err();
    let api = err
        .api()
        .unwrap_or_else(|| panic!("not an API error: {err}"));
    assert!(api.code.ends_with(".NotFound"), "{err}");
    assert_eq!(api.attempts, 1);
    assert!(
        api.hint.as_deref().is_some_and(|h| h.contains("ImageId")),
        "{err}"
    );
    assert_eq!(sim.calls().await["counts"]["RunInstances"], 1);
    println!("{err}");
}

/// A running instance and its system disk.
async fn instance_with_disk(client: &EcsClient, name: &str) -> (String, String) {
    let sg = client
        .call(&CreateSecurityGroup {
            region_id: REGION.into(),
            client_token: Some(format!("{name}-sg")),
            ..Default::default()
        })
        .await
        .unwrap()
        .security_group_id;
    let run = RunInstances {
        spec: InstanceSpec {
            region_id: REGION.into(),
            image_id: IMAGE.into(),
            instance_type: "ecs.s2.large".into(),
            security_group_id: Some(sg),
            client_token: Some(format!("{name}-instance")),
            ..Default::default()
        },
        amount: None,
    };
    let id = client.call(&run).await.unwrap().instance_id_sets.remove(0);
    let waiter = client.waiter().with_config(fast_waits());
    waiter
        .instance_status(REGION, &id, InstanceStatus::Running)
        .await
        .unwrap();
    let disks = client
        .list_all(DescribeDisks {
            region_id: REGION.into(),
            instance_id: Some(id.clone()),
            disk_type: Some("system".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    (id, disks[0].disk_id.clone())
}

#[tokio::test]
async fn a_snapshot_the_simulator_fails_ends_the_wait_with_the_failure() {
    let sim = SimProcess::start("client-snap-fail");
    let client = client_for(&sim, SignatureStyle::V3);
    let (_, disk) = instance_with_disk(&client, "snapfail").await;
    sim.set_faults(json!({"snapshot_failure_rate": 1.0})).await;
    let snap = client
        .call(&CreateSnapshot {
            disk_id: disk,
            client_token: Some("snapfail".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .snapshot_id;
    let polls = AtomicU32::new(0);
    let err = client
        .waiter()
        .with_config(fast_waits())
        .on_progress(|_| {
            polls.fetch_add(1, Ordering::Relaxed);
        })
        .snapshots(REGION, std::slice::from_ref(&snap))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WaitError::Failed { ref status, .. } if status == "failed"),
        "{err}"
    );
    assert!(err.to_string().contains(&snap), "{err}");
    println!(
        "failed snapshot detected after {} pending polls: {err}",
        polls.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn waits_for_snapshot_and_image_take_few_polls() {
    let sim = SimProcess::start("client-snap-polls");
    let client = client_for(&sim, SignatureStyle::V1);
    let (_, disk) = instance_with_disk(&client, "snappolls").await;
    let snap = client
        .call(&CreateSnapshot {
            disk_id: disk,
            client_token: Some("snappolls".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .snapshot_id;
    let waited = client
        .waiter()
        .with_config(fast_waits())
        .snapshots(REGION, std::slice::from_ref(&snap))
        .await
        .unwrap();
    println!(
        "snapshot {snap}: {} polls over {:?}",
        waited.polls, waited.elapsed
    );
    let floor_bound = (waited.elapsed.as_millis() / fast_waits().floor.as_millis()) as u32;
    assert!(
        waited.polls <= 6,
        "{} polls (a fixed floor interval would take {floor_bound})",
        waited.polls
    );
    let image = CreateImage {
        region_id: REGION.into(),
        snapshot_id: Some(snap.clone()),
        image_name: Some("bakerd-client-test".into()),
        client_token: Some("snappolls-image".into()),
        ..Default::default()
    };
    let image_id = client.call(&image).await.unwrap().image_id;
    let waited = client
        .waiter()
        .with_config(fast_waits())
        .image(REGION, &image_id)
        .await
        .unwrap();
    println!(
        "image {image_id}: {} polls over {:?}",
        waited.polls, waited.elapsed
    );
    assert!(waited.polls <= 8, "{} polls", waited.polls);
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_key_is_explained_in_both_styles() {
    let sim = SimProcess::start("client-bad-creds");
    let canary = "CANARY-not-the-secret-4711";
    for style in [SignatureStyle::V1, SignatureStyle::V3] {
        let client = client_with(&sim, style, common::ACCESS_KEY_ID, canary);
        let err = client.call(&DescribeRegions::default()).await.unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("AccessKeySecret for testid") && text.contains("is wrong"),
            "{style:?}: {text}"
        );
        assert!(!text.contains(canary) && !format!("{err:?}").contains(canary));
        let client = client_with(&sim, style, "nobody", common::ACCESS_KEY_SECRET);
        let err = client.call(&DescribeRegions::default()).await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidAccessKeyId.NotFound"), "{err}");
        assert!(
            err.to_string().contains("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            "{err}"
        );
    }
    assert_eq!(
        sim.calls().await["counts"]["DescribeRegions"],
        4,
        "auth errors are not retried"
    );
}

#[tokio::test]
async fn sts_credentials_are_signed_in_both_styles() {
    let dir = common::fresh_data_dir("client-sts");
    let sim = SimProcess::start_in(&dir, &["--sts-token", "good-token"]);
    for (token, ok) in [("good-token", true), ("bad-token", false)] {
        for style in [SignatureStyle::V1, SignatureStyle::V3] {
            let mut c = ClientConfig::new(REGION);
            c.env = Env::from_pairs([
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::ACCESS_KEY_ID),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", token),
                ("BAKERD_ECS_ENDPOINT", sim.endpoint.as_str()),
            ]);
            c.signature_style = style;
            c.retry = RetryPolicy::fast();
            let answer = EcsClient::new(c)
                .unwrap()
                .call(&DescribeRegions::default())
                .await;
            assert_eq!(answer.is_ok(), ok, "{style:?} with {token}: {answer:?}");
            if let Err(e) = answer {
                assert!(!format!("{e:?}").contains("bad-token"), "{e:?}");
            }
        }
    }
}
