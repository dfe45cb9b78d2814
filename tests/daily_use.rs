//! Daily use against the real binary and the simulator: Ctrl-C (real SIGINT) in every phase,
//! `apply` continuing an interrupted build, `status`/`show`/`cancel` while a build runs, and
//! several specs built by one `apply`.

mod common;
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{Run, Workspace};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `bakerd … --json` whose stdout is read line by line.
struct Live {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Live {
    fn spawn(mut cmd: Command) -> Live {
        let mut child = cmd.spawn().expect("spawn bakerd");
        let stdout = child.stdout.take().expect("stdout");
        Live {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads JSON events until one satisfies `want`; None if the output ended first.
    async fn until(&mut self, want: impl Fn(&Value) -> bool) -> Option<Value> {
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.seen.push(line.clone());
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if want(&v) {
                        return Some(v);
                    }
                }
            }
            None
        };
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .expect("bakerd printed nothing wanted within 120 s")
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("pid") as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the end; returns the exit code and everything printed.
    async fn finish(mut self) -> (Option<i32>, String, String) {
        use tokio::io::AsyncReadExt;
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .expect("bakerd did not exit within 120 s")
            .expect("wait");
        (status.code(), self.seen.join("\n"), stderr)
    }
}

fn json_cmd(ws: &Workspace, state: &Path, args: &[&str]) -> Command {
    let mut all = args.to_vec();
    all.push("--json");
    ws.command(state, &all)
}

/// The build id of the first `build_started` event.
fn started_id(v: &Value) -> String {
    v["build"].as_str().expect("build id").to_string()
}

async fn audit_one_image(sim: &common::SimProcess, id: &str) {
    let inventory = sim.inventory().await;
    let calls = sim.calls().await;
    let attempts = harness::attempts_seen(&calls, id);
    let audit = harness::audit_succeeded(&inventory, &calls, id, attempts);
    assert!(audit.clean(), "build {id}: {audit:?}");
}

/// Applies `spec` with `--on-interrupt keep`, sends SIGINT once the step starting at `phase`
/// has begun, and checks the message; returns the build id.
async fn interrupt_at(ws: &Workspace, state: &Path, spec: &Path, phase: &str) -> String {
    let cmd = json_cmd(
        ws,
        state,
        &[
            "apply",
            "--force",
            "--on-interrupt",
            "keep",
            spec.to_str().unwrap(),
        ],
    );
    let mut live = Live::spawn(cmd);
    let id = started_id(&live.until(|v| v["event"] == "build_started").await.unwrap());
    let step = live
        .until(|v| v["event"] == "step_started" && v["phase"] == phase)
        .await;
    assert!(
        step.is_some(),
        "phase {phase} never started: {:?}",
        live.seen
    );
    live.signal(libc::SIGINT);
    let (code, stdout, stderr) = live.finish().await;
    assert_eq!(code, Some(5), "phase {phase}: {stdout}\n{stderr}");
    let end: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "interrupted" && v["resume"].is_string())
        .unwrap_or_else(|| panic!("no interrupted event: {stdout}\n{stderr}"));
    assert_eq!(end["build"], id.as_str());
    assert_eq!(end["resume"], format!("bakerd resume {id}"));
    assert_eq!(end["cancel"], format!("bakerd cancel {id}"));
    let status = harness::run(ws.command(state, &["status"])).await;
    assert!(
        status.stdout.contains(&id) && status.stdout.contains("(interrupted)"),
        "status after SIGINT: {}",
        status.stdout
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_in_each_phase_names_the_build_and_both_commands_and_resume_finishes_with_one_image()
{
    let sim = common::SimProcess::start("daily-sigint");
    let ws = Workspace::new(&sim);
    let phases = [
        "pending",
        "prepared",
        "instance-created",
        "instance-running",
        "provisioned",
        "instance-stopped",
        "snapshot-ready",
        "image-ready",
    ];
    let runs = phases.iter().map(|phase| {
        let ws = &ws;
        async move {
            let state = ws.state_dir();
            let spec = ws.spec_file(&harness::small_spec(&format!("sigint-{}", ws.unique())));
            let id = interrupt_at(ws, &state, &spec, phase).await;
            let resumed = harness::run(ws.resume(&state, &id)).await;
            assert_eq!(
                resumed.code(),
                Some(0),
                "resume after SIGINT at {phase}: {resumed:?}"
            );
            id
        }
    });
    let ids = futures::future::join_all(runs).await;
    for id in ids {
        audit_one_image(&sim, &id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_on_interrupt_cleanup_leaves_nothing_of_the_build_in_the_inventory() {
    let sim = common::SimProcess::start("daily-cleanup");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let spec = ws.spec_file(&harness::small_spec("cleanup"));
    let cmd = json_cmd(
        &ws,
        &state,
        &["apply", "--on-interrupt", "cleanup", spec.to_str().unwrap()],
    );
    let mut live = Live::spawn(cmd);
    let id = started_id(&live.until(|v| v["event"] == "build_started").await.unwrap());
    live.until(|v| v["event"] == "step_started" && v["phase"] == "instance-running")
        .await
        .expect("provisioning started");
    live.signal(libc::SIGTERM);
    let (code, stdout, stderr) = live.finish().await;
    assert_eq!(code, Some(5), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"event\":\"cancelled\""), "{stdout}");
    let inventory = sim.inventory().await;
    let live_left = common::live_resources_of_build(&inventory, &id);
    assert!(live_left.is_empty(), "left alive: {live_left:?}");
    let builds = harness::builds(&ws, &state).await;
    assert_eq!(builds, vec![(id, "cancelled".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_after_a_kill_continues_the_same_build_and_new_starts_another() {
    let sim = common::SimProcess::start("daily-continue");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let spec = ws.spec_file(&harness::small_spec("continue"));
    let args = ["apply", spec.to_str().unwrap()];
    let mut live = Live::spawn(json_cmd(&ws, &state, &args));
    let id = started_id(&live.until(|v| v["event"] == "build_started").await.unwrap());
    live.until(|v| v["event"] == "step_started" && v["phase"] == "instance-running")
        .await
        .expect("provisioning started");
    live.signal(libc::SIGKILL);
    let _ = live.finish().await;
    let again = harness::run(ws.command(&state, &args)).await;
    assert_eq!(again.code(), Some(0), "{again:?}");
    assert!(
        again.stdout.contains(&format!("continuing build {id}")),
        "{}",
        again.stdout
    );
    let builds = harness::builds(&ws, &state).await;
    assert_eq!(builds, vec![(id.clone(), "succeeded".to_string())]);
    audit_one_image(&sim, &id).await;
    let instances = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "instance")
        .count();
    assert_eq!(instances, 1, "one instance for one build");
    let fresh = harness::run(ws.command(
        &state,
        &["apply", "--new", "--force", spec.to_str().unwrap()],
    ))
    .await;
    assert_eq!(fresh.code(), Some(0), "{fresh:?}");
    assert_eq!(harness::builds(&ws, &state).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_show_and_gc_dry_run_work_while_apply_runs_and_cancel_stops_the_running_build() {
    let sim = common::SimProcess::start("daily-readers");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let spec = ws.spec_file(&harness::small_spec("readers").replace(
        "echo two > /etc/crash/two",
        "sleep 3; echo two > /etc/crash/two",
    ));
    let mut live = Live::spawn(json_cmd(&ws, &state, &["apply", spec.to_str().unwrap()]));
    let id = started_id(&live.until(|v| v["event"] == "build_started").await.unwrap());
    live.until(|v| v["event"] == "step_started" && v["phase"] == "instance-running")
        .await
        .expect("provisioning started");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = harness::run(ws.command(&state, &["status"])).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        status.stdout.contains(&id) && status.stdout.contains("instance-running (running)"),
        "{}",
        status.stdout
    );
    let shown = harness::run(ws.command(&state, &["show", &id, "--json"])).await;
    assert_eq!(shown.code(), Some(0), "{shown:?}");
    let shown: Value = serde_json::from_str(shown.stdout.trim()).expect("show json");
    assert_eq!(shown["phase"]["phase"], "instance_running");
    assert_eq!(shown["activity"], "running");
    let gc = harness::run(ws.command(&state, &["gc"])).await;
    assert_eq!(gc.code(), Some(0), "{gc:?}");
    assert!(!gc.stdout.contains("would-delete"), "{}", gc.stdout);
    let cancel = harness::run(ws.command(&state, &["cancel", &id])).await;
    assert_eq!(cancel.code(), Some(0), "{cancel:?}");
    assert!(cancel.stdout.contains("cancelled"), "{}", cancel.stdout);
    let (code, stdout, _) = live.finish().await;
    assert_eq!(code, Some(5), "{stdout}");
    let left = common::live_resources_of_build(&sim.inventory().await, &id);
    assert!(left.is_empty(), "left alive: {left:?}");
}

fn specs_in(ws: &Workspace, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            ws.spec_file(&harness::small_spec(n))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_three_specs_with_parallel_2_makes_three_images_a_summary_and_a_manifest() {
    let sim = common::SimProcess::start("daily-many");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let specs = specs_in(&ws, &["many-a", "many-b", "many-c"]);
    let manifest = ws.dir.path().join("manifest.json");
    let mut args = vec![
        "apply",
        "--parallel",
        "2",
        "--detailed-exitcode",
        "--manifest",
    ];
    args.push(manifest.to_str().unwrap());
    args.extend(specs.iter().map(String::as_str));
    let run: Run = harness::run(ws.command(&state, &args)).await;
    assert_eq!(
        run.code(),
        Some(2),
        "built → 2 with --detailed-exitcode: {run:?}"
    );
    assert!(run.stdout.contains("3 specs, 0 not done"), "{}", run.stdout);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(manifest["version"], 1);
    let builds = manifest["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 3);
    for b in builds {
        assert_eq!(b["result"], "built", "{b}");
        assert!(
            b["images"]["cn-hangzhou"]
                .as_str()
                .unwrap()
                .starts_with("m-"),
            "{b}"
        );
        audit_one_image(&sim, b["build_id"].as_str().unwrap()).await;
    }
    let again = harness::run(ws.command(&state, &args)).await;
    assert_eq!(again.code(), Some(0), "up to date → 0: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_succeeded_build_says_it_finished_names_its_image_and_deletes_nothing() {
    let sim = common::SimProcess::start("daily-cancel-done");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let specs = specs_in(&ws, &["done"]);
    let manifest = ws.dir.path().join("manifest.json");
    let args = ["apply", "--manifest", manifest.to_str().unwrap(), &specs[0]];
    let run = harness::run(ws.command(&state, &args)).await;
    assert_eq!(run.code(), Some(0), "{run:?}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let build = manifest["builds"][0]["build_id"].as_str().unwrap();
    let image = manifest["builds"][0]["images"]["cn-hangzhou"]
        .as_str()
        .unwrap();

    let cancel = harness::run(ws.command(&state, &["cancel", build])).await;
    assert_eq!(
        cancel.code(),
        Some(0),
        "nothing to cancel is not an error: {cancel:?}"
    );
    let said = format!("{}{}", cancel.stdout, cancel.stderr);
    assert!(
        said.contains(&format!("build {build} already finished")),
        "{said}"
    );
    assert!(
        said.contains(&format!("succeeded with image {image} in cn-hangzhou")),
        "{said}"
    );
    assert!(said.contains("cancel has nothing to stop"), "{said}");
    assert!(
        said.contains(&format!(
            "aliyun ecs DeleteImage --RegionId cn-hangzhou --ImageId {image}"
        )),
        "{said}"
    );
    assert!(!said.contains("cancelled"), "{said}");
    let still: Vec<_> = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "image" && r["id"] == image && r["status"] == "Available")
        .collect();
    assert_eq!(still.len(), 1, "the image is kept");
    let show = harness::run(ws.command(&state, &["status"])).await;
    assert!(show.stdout.contains("succeeded"), "{show:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_with_three_builds_in_flight_then_apply_finishes_each_with_one_image() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("BAKERD_DAILY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = common::SimProcess::start("daily-kills");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let specs = specs_in(&ws, &["kill-a", "kill-b", "kill-c"]);
    let mut args = vec!["apply", "--parallel", "3"];
    args.extend(specs.iter().map(String::as_str));
    let mut kills = 0;
    for _ in 0..3 {
        let delay = Duration::from_millis(rng.gen_range(300..4000));
        let r = harness::run_killed_after(ws.command(&state, &args), delay).await;
        kills += usize::from(r.killed());
    }
    let last = harness::run(ws.command(&state, &args)).await;
    assert!(matches!(last.code(), Some(0) | Some(1)), "{last:?}");
    let builds = harness::builds(&ws, &state).await;
    println!("kills {kills}, builds {builds:?}");
    let mut succeeded = 0;
    for (id, phase) in &builds {
        if phase != "succeeded" {
            let r = harness::resume_until_done(&ws, &state, id, 3).await;
            assert_eq!(
                r.phase, "succeeded",
                "seed {seed}, {id}: {r:?}\nlast apply: {last:?}"
            );
        }
        audit_one_image(&sim, id).await;
        succeeded += 1;
    }
    assert_eq!(succeeded, 3, "one build per spec: {builds:?}");
}

/// `bakerd validate <args>` against the workspace's simulator (validate has no state dir).
async fn validate(ws: &Workspace, args: &[&str]) -> Run {
    harness::run(ws.validate(args)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_remote_catches_bad_region_image_id_instance_type_and_copy_region_with_nothing_created(
) {
    let sim = common::SimProcess::start("daily-validate");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let good = harness::small_spec("valid");
    let bad_image = good.replace(
        "ubuntu1404_64_40G_cloudinit_20160427.raw",
        "ubuntu_no_such_image.raw",
    );
    let bad_type = good.replace("ecs.s2.large", "ecs.nope.large");
    let bad_copy = good.replace(
        "  name: valid-{{timestamp}}",
        "  name: valid-{{timestamp}}\n  copy_regions: [mars-north-1]",
    );
    let bad_region = good.replace("region: cn-hangzhou", "region: mars-north-1");
    assert_ne!(bad_region, good);
    let cases = [
        (bad_image, "source_image.id"),
        (bad_type, "instance.type"),
        (bad_copy, "image.copy_regions"),
    ];
    let good = ws.spec_file(&good);
    let offline = validate(&ws, &[good.to_str().unwrap()]).await;
    assert_eq!(offline.code(), Some(0), "{offline:?}");
    for (yaml, field) in cases {
        let spec = ws.spec_file(&yaml);
        let path = spec.to_str().unwrap();
        let offline = validate(&ws, &[path]).await;
        assert_eq!(offline.code(), Some(0), "offline cannot know: {offline:?}");
        let remote = validate(&ws, &["--remote", path]).await;
        assert_eq!(remote.code(), Some(2), "{field}: {remote:?}");
        assert!(remote.stderr.contains(field), "{field}: {}", remote.stderr);
        let apply = harness::run(ws.command(&state, &["apply", path])).await;
        assert_eq!(apply.code(), Some(2), "{field}: {apply:?}");
        assert!(
            apply.stderr.contains("nothing was created"),
            "{}",
            apply.stderr
        );
    }
    // An unknown region: DescribeZones refuses it, then the finding lists the account's regions.
    let spec = ws.spec_file(&bad_region);
    let remote = validate(&ws, &["--remote", spec.to_str().unwrap()]).await;
    assert_eq!(remote.code(), Some(2), "{remote:?}");
    let listed =
        "region: mars-north-1 is not a region of this account/endpoint (regions: cn-hangzhou";
    assert!(remote.stderr.contains(listed), "{}", remote.stderr);
    // apply's first call (the up-to-date lookup) is refused; its hint is the command above.
    let apply = harness::run(ws.command(&state, &["apply", spec.to_str().unwrap()])).await;
    assert_eq!(apply.code(), Some(4), "{apply:?}");
    assert!(
        apply.stderr.contains("InvalidRegionId.NotFound")
            && apply.stderr.contains("bakerd validate --remote"),
        "{}",
        apply.stderr
    );
    let remote = validate(&ws, &["--remote", good.to_str().unwrap()]).await;
    assert_eq!(remote.code(), Some(0), "{remote:?}");
    let created = sim.inventory().await;
    assert!(
        created.is_empty(),
        "validate and refused applies created {created:?}"
    );
}

#[test]
fn a_yaml_spec_variable_is_required_until_set_by_var_var_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = harness::small_spec("vars").replace(
        "image:\n  name: vars-",
        "vars:\n  env: ~\nimage:\n  name: vars-{{var.env}}-",
    );
    let spec = common::write_spec(dir.path(), &spec);
    let vars = dir.path().join("vars.json");
    std::fs::write(&vars, r#"{"env": "staging"}"#).unwrap();
    let spec = spec.to_str().unwrap();
    let validate = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["validate", spec];
        all.extend(args);
        common::run_bakerd(&all, env)
    };
    let missing = validate(&[], &[]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("`env` is required"), "{stderr}");
    for (args, env) in [
        (vec!["--var", "env=prod"], vec![]),
        (vec!["--var-file", vars.to_str().unwrap()], vec![]),
        (vec![], vec![("BAKERD_VAR_env", "dev")]),
    ] {
        let ok = validate(&args, &env);
        assert_eq!(ok.status.code(), Some(0), "{args:?} {env:?}: {ok:?}");
    }
    let unknown = validate(&["--var", "env=x", "--var", "nope=1"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--var nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_remote_refuses_a_fixed_image_name_an_earlier_build_already_took() {
    let sim = common::SimProcess::start("daily-name");
    let ws = Workspace::new(&sim);
    let fixed = harness::small_spec("named").replace("named-{{timestamp}}", "named-fixed");
    assert!(fixed.contains("name: named-fixed"), "{fixed}");
    let spec = ws.spec_file(&fixed);
    let path = spec.to_str().unwrap();
    let built = harness::run(ws.apply(&ws.state_dir(), &spec)).await;
    assert_eq!(built.code(), Some(0), "{built:?}");
    let remote = validate(&ws, &["--remote", path]).await;
    assert_eq!(remote.code(), Some(2), "{remote:?}");
    assert!(
        remote
            .stderr
            .contains("image.name: an image named named-fixed already exists"),
        "{}",
        remote.stderr
    );
}
