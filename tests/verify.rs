//! The `verify:` phase and provenance tags, end to end: the real binary builds on a per-test
//! simulator, boots a test instance from the new image over real SSH, runs the checks, and the
//! image's tags and the simulator's inventory show the outcome.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The standard simulator spec with one provisioner writing /root/baked, and `verify` (top-level
/// sections) appended.
fn spec_yaml(verify: &str) -> String {
    let provisioners = "  - shell:\n      inline:\n        - echo baked > /root/baked\n";
    format!(
        "{}{verify}\n",
        sim_spec("verify-{{timestamp}}", "", provisioners)
    )
}

/// One test's simulator, state directory and spec directory.
struct Case {
    sim: SimProcess,
    state: tempfile::TempDir,
    specs: tempfile::TempDir,
}

impl Case {
    fn start(name: &str) -> Case {
        Case {
            sim: SimProcess::start(name),
            state: tempfile::tempdir().unwrap(),
            specs: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `yaml` as the spec file and returns its path.
    fn spec(&self, yaml: &str) -> PathBuf {
        write_spec(self.specs.path(), yaml)
    }

    /// `bakerd <args> --state-dir <state>` against the simulator.
    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state-dir", self.state.path().to_str().unwrap()]);
        run_bakerd(&all, &[("BAKERD_ECS_ENDPOINT", self.sim.endpoint.as_str())])
    }

    fn apply(&self, spec: &Path) -> Output {
        self.run(&["apply", spec.to_str().unwrap()])
    }
}

fn text(out: &Output) -> String {
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
            let rest = l.strip_prefix("build ")?;
            let (id, _) = rest.split_once(' ')?;
            id.starts_with("b-").then(|| id.to_string())
        })
        .unwrap_or_else(|| panic!("no build id:\n{}", text(out)))
}

/// Images of the build in the inventory (deleted ones too).
fn images_of(inventory: &[Value], build: &str) -> Vec<Value> {
    resources_of_build(inventory, build)
        .into_iter()
        .filter(|r| r["kind"] == "image")
        .collect()
}

fn test_instances(inventory: &[Value], build: &str) -> Vec<Value> {
    resources_of_build(inventory, build)
        .into_iter()
        .filter(|r| r["kind"] == "instance" && r["tags"]["bakerd:role"] == "verify")
        .collect()
}

#[tokio::test]
async fn a_passing_verify_tags_the_image_verified_with_its_provenance_and_deletes_the_test_instance(
) {
    let case = Case::start("verify-pass");
    let checks = "verify:\n  checks:\n    - file_exists: /root/baked\n    \
                  - shell: grep -q baked /root/baked && echo check-ran\n";
    let spec = case.spec(&spec_yaml(checks));
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = build_id(&out);
    assert!(
        text(&out).contains(&format!("[{id}] [verify 1] check-ran")),
        "{}",
        text(&out)
    );

    let inventory = case.sim.inventory().await;
    let images = images_of(&inventory, &id);
    assert_eq!(images.len(), 1, "{images:?}");
    let tags = &images[0]["tags"];
    assert_eq!(tags["bakerd:verified"], "true", "{tags}");
    assert_eq!(tags["bakerd:version"], env!("CARGO_PKG_VERSION"), "{tags}");
    assert_eq!(
        tags["bakerd:source-image"],
        "ubuntu1404_64_40G_cloudinit_20160427.raw"
    );
    assert!(
        tags["bakerd:spec-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{tags}"
    );
    let tests = test_instances(&inventory, &id);
    assert_eq!(tests.len(), 1, "one test instance: {tests:?}");
    assert!(
        !tests[0]["deleted"].is_null(),
        "test instance outlived the build: {tests:?}"
    );
    assert!(
        !live_resources_of_build(&inventory, &id)
            .iter()
            .any(|r| r.starts_with("instance")),
        "{:?}",
        live_resources_of_build(&inventory, &id)
    );

    let shown = case.run(&["show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("show --json");
    assert_eq!(shown["provenance"]["verified"], "true", "{shown}");
    assert_eq!(shown["provenance"]["image_id"], images[0]["id"], "{shown}");
    assert_eq!(
        shown["provenance"]["spec_hash"], tags["bakerd:spec-hash"],
        "{shown}"
    );
}

#[tokio::test]
async fn a_failing_verify_fails_the_build_with_the_check_output_and_tags_the_image_unverified() {
    let case = Case::start("verify-fail");
    let spec = case.spec(&spec_yaml(
        "verify:\n  checks:\n    - shell: echo the-check-says-no; exit 3\n",
    ));
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("verify check 0"), "{all}");
    assert!(all.contains("exit code 3"), "{all}");
    assert!(all.contains("the-check-says-no"), "{all}");
    let id = build_id(&out);

    let inventory = case.sim.inventory().await;
    let images = images_of(&inventory, &id);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["tags"]["bakerd:verified"], "false", "{images:?}");
    assert!(
        images[0]["deleted"].is_null(),
        "on_failure keep keeps the image"
    );
    let live = live_resources_of_build(&inventory, &id);
    assert!(!live.iter().any(|r| r.starts_with("instance")), "{live:?}");

    // An unverified image is not "up to date": apply builds again.
    let again = case.apply(&spec);
    assert!(!text(&again).contains("up to date"), "{}", text(&again));
}

/// With `on_failure: keep` a failed check leaves the build for `resume`, which runs the checks
/// again on a second test instance. That instance is deleted too: the first one's recorded
/// deletion must not make the second look deleted already.
#[tokio::test]
async fn a_resumed_verify_deletes_its_second_test_instance_too() {
    let case = Case::start("verify-resume");
    let verify = "on_failure: keep\nverify:\n  checks:\n    - shell: exit 4\n";
    let spec = case.spec(&spec_yaml(verify));
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let id = build_id(&out);
    let again = case.run(&["resume", &id]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("exit code 4"), "{}", text(&again));

    let inventory = case.sim.inventory().await;
    let tests = test_instances(&inventory, &id);
    assert_eq!(tests.len(), 2, "one test instance per run: {tests:?}");
    let alive: Vec<_> = tests.iter().filter(|t| t["deleted"].is_null()).collect();
    assert!(alive.is_empty(), "test instances left running: {alive:?}");
}

#[tokio::test]
async fn verify_on_failure_delete_image_deletes_the_image_and_its_snapshot() {
    let case = Case::start("verify-delete");
    let spec = case.spec(&spec_yaml(
        "verify:\n  on_failure: delete_image\n  checks:\n    - file_exists: /nowhere\n",
    ));
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("/nowhere does not exist"),
        "{}",
        text(&out)
    );
    let id = build_id(&out);
    let inventory = case.sim.inventory().await;
    let live = live_resources_of_build(&inventory, &id);
    assert!(live.is_empty(), "everything deleted: {live:?}");
    assert_eq!(images_of(&inventory, &id).len(), 1);
}

#[tokio::test]
async fn bakerd_verify_reruns_the_checks_against_an_existing_image() {
    let case = Case::start("verify-command");
    let spec = case.spec(&spec_yaml(""));
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let build = build_id(&out);
    let inventory = case.sim.inventory().await;
    let image = images_of(&inventory, &build)[0].clone();
    assert_eq!(image["tags"]["bakerd:verified"], "skipped");
    let image_id = image["id"].as_str().unwrap().to_string();

    let checks = case.specs.path().join("checks");
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(
        checks.join("spec.yaml"),
        spec_yaml("verify:\n  checks:\n    - file_exists: /root/baked\n"),
    )
    .unwrap();
    let checks_spec = checks.join("spec.yaml");
    let run = case.run(&["verify", &image_id, checks_spec.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let verifier = build_id(&run);
    let inventory = case.sim.inventory().await;
    let now = inventory
        .iter()
        .find(|r| r["id"] == image_id.as_str())
        .unwrap();
    assert_eq!(now["tags"]["bakerd:verified"], "true", "{now}");
    assert!(live_resources_of_build(&inventory, &verifier).is_empty());
    assert_eq!(test_instances(&inventory, &verifier).len(), 1);

    std::fs::write(
        &checks_spec,
        spec_yaml("verify:\n  on_failure: delete_image\n  checks:\n    - file_exists: /nope\n"),
    )
    .unwrap();
    let run = case.run(&["verify", &image_id, checks_spec.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let inventory = case.sim.inventory().await;
    let now = inventory
        .iter()
        .find(|r| r["id"] == image_id.as_str())
        .unwrap();
    assert_eq!(now["tags"]["bakerd:verified"], "false", "{now}");
    assert!(
        now["deleted"].is_null(),
        "bakerd verify never deletes the image: {now}"
    );
}

#[test]
fn a_verify_section_with_bad_checks_is_refused_naming_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("verify:\n  checks: []\n", "verify.checks"),
        (
            "verify:\n  checks:\n    - file_exists: etc/motd\n",
            "verify.checks[0].file_exists",
        ),
        (
            "verify:\n  checks:\n    - port_listens: 0\n",
            "verify.checks[0].port_listens",
        ),
        (
            "verify:\n  checks:\n    - script: missing.sh\n",
            "verify.checks[0].script",
        ),
        ("verify:\n  checks:\n    - shel: x\n", "shel"),
    ];
    for (section, field) in cases {
        let err = bakerd::spec::Spec::from_yaml_str(&spec_yaml(section), dir.path())
            .expect_err(section)
            .to_string();
        assert!(err.contains(field), "{section}: {err}");
        assert!(err.contains("<spec>:"), "no location in {err}");
    }
}

/// A build killed while its test instance runs leaves that instance tagged with the build: `gc`
/// finds it from the tags and deletes it with the rest of the build's temporary resources.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn gc_deletes_the_test_instance_of_a_build_killed_during_verify() {
    let case = Case::start("verify-gc");
    let spec = case.spec(&spec_yaml(
        "verify:\n  checks:\n    - file_exists: /root/baked\n",
    ));
    let mut args = vec!["apply", spec.to_str().unwrap(), "--state-dir"];
    args.push(case.state.path().to_str().unwrap());
    let out = run_bakerd(
        &args,
        &[
            ("BAKERD_ECS_ENDPOINT", case.sim.endpoint.as_str()),
            ("BAKERD_CRASH_AT", "verify:instance-created"),
        ],
    );
    assert_eq!(out.status.code(), None, "not killed: {}", text(&out));
    let id = build_id(&out);
    let inventory = case.sim.inventory().await;
    let tests = test_instances(&inventory, &id);
    assert_eq!(tests.len(), 1);
    assert!(tests[0]["deleted"].is_null(), "the test instance runs");

    let state_dir = case.state.path().to_str().unwrap();
    let gc = run_bakerd(
        &[
            "gc",
            "--older-than",
            "0s",
            "--yes",
            "--state-dir",
            state_dir,
        ],
        &[
            ("BAKERD_ECS_ENDPOINT", case.sim.endpoint.as_str()),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret"),
        ],
    );
    assert_eq!(gc.status.code(), Some(0), "{}", text(&gc));
    let inventory = case.sim.inventory().await;
    let live = live_resources_of_build(&inventory, &id);
    assert!(!live.iter().any(|r| r.starts_with("instance")), "{live:?}");
}

/// `verify.instance.zone` in another zone than the build's: the test instance runs there, on a
/// temporary vSwitch of its own in the build's VPC. A kill after that vSwitch was asked for
/// (answer lost) is resumed without a second one, and it is deleted with the rest.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_test_instance_in_another_zone_gets_its_own_vswitch_which_goes_with_the_build() {
    let case = Case::start("verify-zone");
    let yaml = spec_yaml(
        "verify:\n  instance: { zone: cn-hangzhou-k }\n  checks:\n    - file_exists: /root/baked\n",
    )
    .replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  zone: cn-hangzhou-h\n",
    );
    let spec = case.spec(&yaml);
    let state_dir = case.state.path().to_str().unwrap();
    let killed = run_bakerd(
        &["apply", spec.to_str().unwrap(), "--state-dir", state_dir],
        &[
            ("BAKERD_ECS_ENDPOINT", case.sim.endpoint.as_str()),
            ("BAKERD_CRASH_AT", "verify-create-vswitch:after-call"),
        ],
    );
    assert_eq!(killed.status.code(), None, "not killed: {}", text(&killed));
    let id = build_id(&killed);
    let resumed = case.run(&["resume", &id]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));

    let inventory = case.sim.inventory().await;
    let tests = test_instances(&inventory, &id);
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert_eq!(tests[0]["zone_id"], "cn-hangzhou-k", "{}", tests[0]);
    let vswitches: Vec<Value> = resources_of_build(&inventory, &id)
        .into_iter()
        .filter(|r| r["kind"] == "vswitch")
        .collect();
    let mut zones: Vec<&str> = vswitches
        .iter()
        .filter_map(|v| v["zone_id"].as_str())
        .collect();
    zones.sort();
    assert_eq!(zones, ["cn-hangzhou-h", "cn-hangzhou-k"], "{vswitches:?}");
    let own = vswitches
        .iter()
        .find(|v| v["zone_id"] == "cn-hangzhou-k")
        .unwrap();
    assert_eq!(tests[0]["vswitch_id"], own["id"]);
    let live = live_resources_of_build(&inventory, &id);
    assert!(
        live.iter()
            .all(|r| r.starts_with("image") || r.starts_with("snapshot")),
        "{live:?}"
    );
}

#[test]
fn a_test_zone_is_refused_where_bakerd_cannot_give_it_a_vswitch() {
    let dir = tempfile::tempdir().unwrap();
    let section = "verify:\n  instance: { zone: cn-hangzhou-k }\n  checks:\n    - shell: 'true'\n";
    let cases = [
        ("  vswitch_id: vsw-given\n", "instance.vswitch_id"),
        (
            "  vpc_cidr: 10.0.0.0/24\n  vswitch_cidr: 10.0.0.0/24\n",
            "no room",
        ),
    ];
    for (instance, expected) in cases {
        let yaml = spec_yaml(section).replace(
            "  type: ecs.s2.large\n",
            &format!("  type: ecs.s2.large\n{instance}"),
        );
        let err = bakerd::spec::Spec::from_yaml_str(&yaml, dir.path())
            .expect_err(instance)
            .to_string();
        assert!(err.contains("verify.instance.zone"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    let ok = spec_yaml(section).replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  vpc_cidr: 10.0.0.0/24\n  vswitch_cidr: 10.0.0.128/25\n",
    );
    let spec = bakerd::spec::Spec::from_yaml_str(&ok, dir.path()).expect("room before it");
    assert_eq!(
        spec.instance.verify_vswitch_cidr().as_deref(),
        Some("10.0.0.0/25")
    );
}

#[tokio::test]
async fn the_test_instance_boots_with_the_data_disk_the_image_carries_and_checks_read_its_files() {
    let case = Case::start("verify-data-disk");
    let yaml = spec_yaml(
        "verify:\n  checks:\n    - shell: grep -q on-data /mnt/vdb/data && echo data-check-ran\n",
    )
    .replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  data_disks:\n    - size_gb: 20\n",
    )
    .replace(
        "        - echo baked > /root/baked\n",
        "        - echo baked > /root/baked\n        - echo on-data > /mnt/vdb/data\n",
    )
    .replace("\nimage:\n", "\nimage:\n  data_disks: include\n");
    let spec = case.spec(&yaml);
    let out = case.apply(&spec);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = build_id(&out);
    assert!(
        text(&out).contains(&format!("[{id}] [verify 0] data-check-ran")),
        "{}",
        text(&out)
    );
    let inventory = case.sim.inventory().await;
    let images = images_of(&inventory, &id);
    assert_eq!(images[0]["tags"]["bakerd:verified"], "true", "{images:?}");
    let live_data_disks: Vec<_> = inventory
        .iter()
        .filter(|r| r["kind"] == "disk" && r["type"] == "data" && r["status"] != "Deleted")
        .collect();
    assert!(
        live_data_disks.is_empty(),
        "the build's and the test instance's data disks went with them: {live_data_disks:?}"
    );
}
