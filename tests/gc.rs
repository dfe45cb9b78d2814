//! `bakerd gc` against a per-test simulator, with the real binary: abandoned builds are found from
//! cloud tags and deleted in dependency order, finished images stay, `--keep` trims families,
//! untagged resources are never touched, a damaged state dir still allows gc, `--prune-state`
//! forgets old finished records.

mod common;

use common::SimProcess;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bakerd");

/// Writes a spec whose single provisioner prints `marker` and then sleeps `sleep_secs`.
fn write_spec(dir: &Path, family: &str, marker: &str, sleep_secs: u32) -> PathBuf {
    let path = dir.join(format!("{marker}.yaml"));
    let provisioners = format!(
        "  - shell:\n      inline:\n        - echo {marker}-provisioning\n        - sleep {sleep_secs}"
    );
    let text = common::sim_spec(&format!("gc-{marker}-{{{{timestamp}}}}"), "", &provisioners)
        .replace("  timeout: 1m\n", "  timeout: 2m\n")
        .replace("\nimage:\n", &format!("\nimage:\n  family: {family}\n"));
    std::fs::write(&path, text).expect("write spec");
    path
}

/// Runs `bakerd <args>` against the simulator, with the test credentials in the environment.
fn bakerd(sim: &SimProcess, state: &Path, args: &[&str]) -> Output {
    common::bakerd_on_sim(sim, state, args).0
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// Runs `bakerd apply` to success; returns the build id.
fn build_ok(sim: &SimProcess, state: &Path, spec: &Path, force: bool) -> String {
    let mut args = vec!["apply", spec.to_str().unwrap()];
    if force {
        args.push("--force");
    }
    let out = bakerd(sim, state, &args);
    let all = text(&out);
    assert!(out.status.success(), "apply failed:\n{all}");
    build_id_in(&all).unwrap_or_else(|| panic!("no build id in:\n{all}"))
}

fn build_id_in(text: &str) -> Option<String> {
    let start = text.find("build b-")? + "build ".len();
    Some(text[start..start + 12].to_string())
}

/// Starts `bakerd apply` on a spec that sleeps while provisioning and SIGKILLs it once the
/// provisioner runs; returns the build id. The build is never resumed.
fn kill_while_provisioning(sim: &SimProcess, state: &Path, spec: &Path, marker: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["apply", spec.to_str().unwrap(), "--state-dir"])
        .arg(state)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut build = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in stdout.lines() {
        let line = line.expect("read apply output");
        build = build.or_else(|| build_id_in(&line));
        if line.contains(&format!("{marker}-provisioning")) {
            break;
        }
        assert!(Instant::now() < deadline, "provisioner never started");
    }
    child.kill().expect("SIGKILL apply");
    child.wait().expect("reap apply");
    build.expect("apply printed its build id")
}

/// Live resources carrying `bakerd:managed=true`.
async fn live_bakerd(sim: &SimProcess) -> Vec<Value> {
    live(sim)
        .await
        .into_iter()
        .filter(|r| r["tags"]["bakerd:managed"] == "true")
        .collect()
}

async fn live(sim: &SimProcess) -> Vec<Value> {
    sim.inventory()
        .await
        .into_iter()
        .filter(|r| r["deleted"].is_null() && r["kind"] != "disk")
        .collect()
}

fn of_build<'a>(resources: &'a [Value], build: &str) -> Vec<&'a Value> {
    resources
        .iter()
        .filter(|r| r["tags"]["bakerd:build-id"] == build)
        .collect()
}

fn kinds(resources: &[&Value]) -> Vec<String> {
    let mut k: Vec<String> = resources
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or("").to_string())
        .collect();
    k.sort();
    k
}

fn ids(resources: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn temp_state() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    (dir, state)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_build_is_listed_by_the_dry_run_and_deleted_by_yes_leaving_only_finished_images() {
    let sim = SimProcess::start("gc-killed");
    let (dir, state) = temp_state();
    let done = build_ok(
        &sim,
        &state,
        &write_spec(dir.path(), "gc-fam", "done", 0),
        false,
    );
    let spec = write_spec(dir.path(), "gc-fam", "killed", 600);
    let killed = kill_while_provisioning(&sim, &state, &spec, "killed");
    let before = live(&sim).await;
    assert_eq!(
        kinds(&of_build(&before, &killed)),
        ["instance", "keypair", "securitygroup", "vpc", "vswitch"],
        "the killed build left its temporary resources: {before:#?}"
    );

    // Default threshold: the interrupted build is kept and its resume command named.
    let out = bakerd(&sim, &state, &["gc"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(!listing.contains("would-delete"), "{listing}");
    assert!(
        listing.contains("build interrupted at instance-running")
            && listing.contains(&format!("`bakerd resume {killed}`")),
        "{listing}"
    );
    let out = bakerd(&sim, &state, &["gc", "--include-interrupted"]);
    let listing = text(&out);
    assert!(
        listing.lines().any(|l| l.starts_with("would-delete")
            && l.contains("instance")
            && l.contains(&killed)),
        "--include-interrupted lists the interrupted build's instance:\n{listing}"
    );

    // Abandoned after 0s: every temporary resource of the killed build, with its reason.
    let out = bakerd(&sim, &state, &["gc", "--older-than", "0s"]);
    let listing = text(&out);
    eprintln!("{listing}");
    assert!(out.status.success(), "{listing}");
    for kind in ["instance", "key-pair", "security-group", "vswitch", "vpc"] {
        let line = listing
            .lines()
            .find(|l| l.starts_with("would-delete") && l.contains(kind) && l.contains(&killed))
            .unwrap_or_else(|| panic!("no would-delete line for the {kind}:\n{listing}"));
        assert!(
            line.contains("build abandoned at instance-running"),
            "{line}"
        );
    }
    assert!(listing.contains("finished image"), "{listing}");
    assert_eq!(
        ids(&live(&sim).await),
        ids(&before),
        "the dry run deleted something"
    );

    let out = bakerd(&sim, &state, &["gc", "--older-than", "0s", "--yes"]);
    eprintln!("{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let after = live_bakerd(&sim).await;
    assert!(of_build(&after, &killed).is_empty(), "left: {after:#?}");
    assert_eq!(kinds(&of_build(&after, &done)), ["image", "snapshot"]);
    assert_eq!(
        after.len(),
        2,
        "only the finished image and its snapshot stay: {after:#?}"
    );

    // The killed build is retired: a resume does not try to use deleted resources.
    let status = text(&bakerd(&sim, &state, &["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.contains(&killed) && l.contains("cancelled")),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_refuses_a_state_dir_locked_by_a_running_build() {
    let sim = SimProcess::start("gc-locked");
    let (dir, state) = temp_state();
    let spec = write_spec(dir.path(), "gc-lock", "locked", 600);
    let mut child = Command::new(BIN)
        .args(["apply", spec.to_str().unwrap(), "--state-dir"])
        .arg(&state)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).expect("apply started");
    let out = bakerd(&sim, &state, &["gc", "--older-than", "0s", "--yes"]);
    child.kill().expect("SIGKILL apply");
    child.wait().expect("reap apply");
    let message = text(&out);
    assert_eq!(out.status.code(), Some(3), "{message}");
    assert!(
        message.contains(&format!("locked by pid {}", child.id())),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_two_of_a_family_of_four_leaves_the_newest_two_and_no_orphan_snapshots() {
    let sim = SimProcess::start("gc-keep");
    let (dir, state) = temp_state();
    let spec = write_spec(dir.path(), "gc-four", "four", 0);
    let mut builds = Vec::new();
    for i in 0..4 {
        builds.push(build_ok(&sim, &state, &spec, i > 0));
        // Image CreationTime has one-second resolution: keep the four apart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let images_of = |resources: &[Value]| -> Vec<String> {
        let mut found: Vec<String> = resources
            .iter()
            .filter(|r| r["kind"] == "image" && r["family"] == "gc-four")
            .map(|r| r["tags"]["bakerd:build-id"].as_str().unwrap().to_string())
            .collect();
        found.sort();
        found
    };
    let mut all = builds.clone();
    all.sort();
    assert_eq!(images_of(&live_bakerd(&sim).await), all);

    let dry = bakerd(&sim, &state, &["gc", "--keep", "2"]);
    let listing = text(&dry);
    assert_eq!(
        listing.matches("--keep 2: older than").count(),
        2,
        "{listing}"
    );

    let out = bakerd(&sim, &state, &["gc", "--keep", "2", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = live_bakerd(&sim).await;
    let mut newest = builds[2..].to_vec();
    newest.sort();
    assert_eq!(images_of(&after), newest, "{}", text(&out));
    let image_snapshots: Vec<&str> = after
        .iter()
        .filter(|r| r["kind"] == "image")
        .map(|r| r["snapshot_id"].as_str().unwrap())
        .collect();
    let snapshots: Vec<&str> = after
        .iter()
        .filter(|r| r["kind"] == "snapshot")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(snapshots.len(), 2, "no orphan snapshots: {after:#?}");
    for s in snapshots {
        assert!(image_snapshots.contains(&s), "orphan snapshot {s}");
    }
}

/// Creates a VPC through the API with the given tags; returns its id.
async fn create_vpc(sim: &SimProcess, tags: &[(&str, &str)]) -> String {
    let mut params = vec![("RegionId", "cn-hangzhou"), ("CidrBlock", "10.0.0.0/16")];
    let keys: Vec<String> = (1..=tags.len()).map(|i| format!("Tag.{i}.Key")).collect();
    let values: Vec<String> = (1..=tags.len()).map(|i| format!("Tag.{i}.Value")).collect();
    for (i, (k, v)) in tags.iter().enumerate() {
        params.push((&keys[i], k));
        params.push((&values[i], v));
    }
    let (status, body) = sim.call_vpc("CreateVpc", &params).await;
    assert_eq!(status, 200, "{body}");
    body["VpcId"].as_str().unwrap().to_string()
}

async fn create_security_group(sim: &SimProcess, vpc: &str) -> String {
    let params = [("RegionId", "cn-hangzhou"), ("VpcId", vpc)];
    let (status, body) = sim.call("CreateSecurityGroup", &params).await;
    assert_eq!(status, 200, "{body}");
    body["SecurityGroupId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn untagged_resources_are_never_touched() {
    let sim = SimProcess::start("gc-untagged");
    let (_dir, state) = temp_state();
    let plain_vpc = create_vpc(&sim, &[]).await;
    let plain_sg = create_security_group(&sim, &plain_vpc).await;
    let other_tags = create_vpc(
        &sim,
        &[("team", "infra"), ("bakerd:build-id", "b-0000000001")],
    )
    .await;
    // Positive control: a fully tagged VPC of a build this state dir never heard of goes.
    let abandoned = create_vpc(
        &sim,
        &[
            ("bakerd:managed", "true"),
            ("bakerd:build-id", "b-00000000aa"),
        ],
    )
    .await;

    // Young: a build unknown here may be running from another state dir.
    let out = bakerd(&sim, &state, &["gc", "--yes"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(ids(&live(&sim).await).contains(&abandoned), "{listing}");
    assert!(
        listing.contains("may be running from another state dir"),
        "{listing}"
    );
    let out = bakerd(&sim, &state, &["gc", "--yes", "--older-than", "0s"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    let left = ids(&live(&sim).await);
    for id in [&plain_vpc, &plain_sg, &other_tags] {
        assert!(left.contains(id), "{id} was deleted:\n{listing}");
        assert!(
            !listing.contains(id.as_str()),
            "{id} was even listed:\n{listing}"
        );
    }
    assert!(!left.contains(&abandoned), "{listing}");
    assert!(
        listing.contains("build unknown to this state dir"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_state_dir_still_lets_gc_remove_an_abandoned_build_from_tags() {
    let sim = SimProcess::start("gc-damaged");
    let (dir, state) = temp_state();
    let done = build_ok(
        &sim,
        &state,
        &write_spec(dir.path(), "gc-dmg", "kept", 0),
        false,
    );
    let spec = write_spec(dir.path(), "gc-dmg", "lost", 600);
    let killed = kill_while_provisioning(&sim, &state, &spec, "lost");
    for entry in std::fs::read_dir(state.join("db")).expect("db dir") {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(7))
                .expect("truncate");
        }
    }
    let status = bakerd(&sim, &state, &["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));

    let out = bakerd(&sim, &state, &["gc", "--yes", "--older-than", "0s"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains("damaged"), "{listing}");
    assert!(
        listing.contains("working from cloud tags alone"),
        "{listing}"
    );
    let after = live_bakerd(&sim).await;
    assert!(
        of_build(&after, &killed).is_empty(),
        "{listing}\nleft: {after:#?}"
    );
    // Losing the state never costs the finished image.
    assert_eq!(kinds(&of_build(&after, &done)), ["image", "snapshot"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_state_forgets_old_finished_records_and_keeps_unfinished_ones() {
    let sim = SimProcess::start("gc-prune");
    let (dir, state) = temp_state();
    let done = build_ok(
        &sim,
        &state,
        &write_spec(dir.path(), "gc-prune", "old", 0),
        false,
    );
    let spec = write_spec(dir.path(), "gc-prune", "pending", 600);
    let unfinished = kill_while_provisioning(&sim, &state, &spec, "pending");

    let young = text(&bakerd(
        &sim,
        &state,
        &["gc", "--prune-state", "1h", "--yes"],
    ));
    assert!(!young.lines().any(|l| l.starts_with("pruned")), "{young}");
    let dry = text(&bakerd(&sim, &state, &["gc", "--prune-state", "0s"]));
    assert!(dry.contains("would-prune") && dry.contains(&done), "{dry}");
    let status = text(&bakerd(&sim, &state, &["status"]));
    assert!(status.contains(&done), "the dry run pruned: {status}");

    let out = bakerd(&sim, &state, &["gc", "--prune-state", "0s", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&bakerd(&sim, &state, &["status"]));
    assert!(!status.contains(&done), "{status}");
    assert!(status.contains(&unfinished), "{status}");
    let show = bakerd(&sim, &state, &["show", &done]);
    assert!(!show.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_yes_on_one_state_dir_leaves_a_build_running_from_another_intact() {
    let sim = SimProcess::start("gc-two-dirs");
    let (dir, state_a) = temp_state();
    let state_b = dir.path().join("state-b");
    let spec = write_spec(dir.path(), "gc-two", "other-dir", 4);
    let mut child = Command::new(BIN)
        .args(["apply", spec.to_str().unwrap(), "--state-dir"])
        .arg(&state_b)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply on state dir B");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut build = None;
    let mut seen = String::new();
    for line in (&mut stdout).lines() {
        let line = line.expect("read apply output");
        seen.push_str(&line);
        seen.push('\n');
        build = build.or_else(|| build_id_in(&line));
        if line.contains("other-dir-provisioning") {
            break;
        }
    }
    let build = build.unwrap_or_else(|| panic!("no build id in:\n{seen}"));
    let before = live(&sim).await;
    assert!(
        !of_build(&before, &build).is_empty(),
        "B's build has resources"
    );

    let out = bakerd(&sim, &state_a, &["gc", "--yes"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(
        !listing.lines().any(|l| l.starts_with("deleted")),
        "gc on A deleted something:\n{listing}"
    );
    assert!(
        listing.contains("may be running from another state dir"),
        "{listing}"
    );

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest of apply");
    let status = child.wait().expect("apply on B ends");
    assert!(
        status.success(),
        "B's build failed after gc on A:\n{seen}{rest}"
    );
    assert!(rest.contains("succeeded"), "{rest}");
    let after = live_bakerd(&sim).await;
    assert_eq!(
        kinds(&of_build(&after, &build)),
        ["image", "snapshot"],
        "{after:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_waits_for_several_deleted_instances_with_one_describe_per_poll() {
    let sim = SimProcess::start("gc-batch");
    let (_dir, state) = temp_state();
    let tags = [
        ("bakerd:managed", "true"),
        ("bakerd:build-id", "b-00000000bb"),
    ];
    // Only the instances carry bakerd's tags: the network is not gc's to delete here.
    let vpc = create_vpc(&sim, &[]).await;
    let sg = create_security_group(&sim, &vpc).await;
    let (status, body) = sim
        .call(
            "CreateVSwitch",
            &[
                ("RegionId", "cn-hangzhou"),
                ("VpcId", &vpc),
                ("ZoneId", "cn-hangzhou-h"),
                ("CidrBlock", "10.0.1.0/24"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let vswitch = body["VSwitchId"].as_str().unwrap().to_string();
    let (status, body) = sim
        .call(
            "RunInstances",
            &[
                ("RegionId", "cn-hangzhou"),
                ("ImageId", "ubuntu1404_64_40G_cloudinit_20160427.raw"),
                ("InstanceType", "ecs.s2.large"),
                ("SecurityGroupId", &sg),
                ("VSwitchId", &vswitch),
                ("Amount", "3"),
                ("Tag.1.Key", tags[0].0),
                ("Tag.1.Value", tags[0].1),
                ("Tag.2.Key", tags[1].0),
                ("Tag.2.Value", tags[1].1),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // ECS refuses to delete an instance while it is Pending.
    sim.wait_for(
        "instances past Pending",
        Duration::from_secs(30),
        || async {
            let inventory = sim.inventory().await;
            let pending = inventory
                .iter()
                .any(|r| r["kind"] == "instance" && r["status"] == "Pending");
            (!pending).then_some(())
        },
    )
    .await;
    let before = sim.calls().await["counts"]["DescribeInstances"]
        .as_u64()
        .unwrap_or(0);

    let out = bakerd(&sim, &state, &["gc", "--yes", "--older-than", "0s"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    let left = ids(&live(&sim).await);
    let instances: Vec<&str> = body["InstanceIdSets"]["InstanceIdSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(instances.len(), 3);
    for id in &instances {
        assert!(!left.iter().any(|l| l == id), "{id} left:\n{listing}");
    }
    let describes = sim.calls().await["counts"]["DescribeInstances"]
        .as_u64()
        .unwrap_or(0)
        - before;
    // One listing, then the deletion wait's polls, shared by the three instances (an instance is
    // gone at once on the simulator: one poll).
    assert_eq!(
        describes, 2,
        "DescribeInstances calls during gc:\n{listing}"
    );
}
