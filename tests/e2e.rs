//! End to end: the real `bakerd` binary builds images on a per-test simulator (profile fast), over
//! real HTTP and real SSH; the results are checked through the simulator's inventory and call log,
//! and by booting a new instance from the image and reading its files with OpenSSH's `ssh`.
//! Needs root, openssh-server, openssh-client and busybox-static (like the simulator tests).

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A state dir and a spec dir for one test, plus the simulator endpoint bakerd talks to.
struct Workspace {
    state: tempfile::TempDir,
    specs: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Workspace {
            state: tempfile::tempdir().expect("state tempdir"),
            specs: tempfile::tempdir().expect("spec tempdir"),
        }
    }

    /// Files in the state dir's private key directory.
    fn key_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.state.path().join("keys")) {
            Ok(dir) => dir.map(|e| e.expect("read keys dir").path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn state_dir(&self) -> &str {
        self.state.path().to_str().expect("utf-8 temp path")
    }

    /// Writes a spec with these provisioners (YAML list items) and extra top-level lines.
    fn spec(&self, extra: &str, provisioners: &str) -> PathBuf {
        write_spec(self.specs.path(), &spec_yaml(extra, provisioners))
    }

    /// Runs `bakerd <args> --state-dir <state>` against `endpoint`.
    fn bakerd(&self, endpoint: &str, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state-dir", self.state_dir()]);
        Run(run_bakerd(&all, &[("BAKERD_ECS_ENDPOINT", endpoint)]))
    }

    /// `bakerd show <id> --json`, parsed.
    fn show_json(&self, endpoint: &str, id: &str) -> Value {
        let run = self.bakerd(endpoint, &["show", id, "--json"]);
        assert_eq!(run.code(), 0, "show --json failed: {}", run.all());
        serde_json::from_str(run.stdout().trim()).expect("show --json prints one JSON object")
    }

    /// Starts `bakerd apply <spec>`, waits for a stdout line containing `marker`, SIGKILLs the
    /// process, and returns the build id.
    fn apply_and_kill_at(&self, endpoint: &str, spec: &Path, marker: &str) -> String {
        let spec = spec.to_str().expect("utf-8 spec path");
        let mut child = spawn_bakerd(
            &["apply", spec, "--state-dir", self.state_dir()],
            &[("BAKERD_ECS_ENDPOINT", endpoint)],
        );
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = Vec::new();
        let mut id = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "no line with {marker:?} from bakerd apply; output:\n{}",
                    seen.join("\n")
                );
            };
            id = id.or_else(|| build_id_in(&line));
            let found = line.contains(marker);
            seen.push(line);
            if found {
                break;
            }
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().expect("wait for killed bakerd");
        assert!(
            !status.success(),
            "bakerd apply ended before the kill: {status}"
        );
        id.unwrap_or_else(|| panic!("no build id in output:\n{}", seen.join("\n")))
    }
}

/// The output of one bakerd run.
struct Run(Output);

impl Run {
    fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.0.status.code(),
            self.stdout(),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }
    /// The build id from the `build b-… started` line.
    fn build_id(&self) -> String {
        self.stdout()
            .lines()
            .find_map(build_id_in)
            .unwrap_or_else(|| panic!("no build id in output:\n{}", self.all()))
    }
}

/// The id in a `build b-xxxxxxxxxx started` line.
fn build_id_in(line: &str) -> Option<String> {
    let rest = line.strip_prefix("build ")?;
    let (id, tail) = rest.split_once(' ')?;
    (tail.starts_with("started") && id.starts_with("b-")).then(|| id.to_string())
}

/// A small spec for the simulator: busybox-compatible provisioners given as YAML list items.
fn spec_yaml(extra: &str, provisioners: &str) -> String {
    sim_spec("e2e-{{timestamp}}", extra, provisioners)
}

/// Three shell provisioners: the first appends a line to /root/p1-runs, the second appends to
/// /root/p2-runs and sleeps 30 s the first time only (after printing `p2-sleeping`), the third
/// writes /root/p3-done.
const SLEEPY_PROVISIONERS: &str = r#"  - shell:
      inline:
        - echo p1-ran >> /root/p1-runs
  - shell:
      inline:
        - echo p2-ran >> /root/p2-runs
        - if [ ! -e /root/once ]; then touch /root/once; echo p2-sleeping; sleep 30; fi
  - shell:
      inline:
        - echo done > /root/p3-done
"#;

/// Path of the repository's demo spec.
fn demo_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/demo.yaml")
}

/// Inventory entries of `kind` tagged with `build`.
fn of_kind(inventory: &[Value], build: &str, kind: &str) -> Vec<Value> {
    resources_of_build(inventory, build)
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

/// Asserts that only the image and its snapshot of `build` are alive, and returns the image id.
fn assert_only_image_and_snapshot_alive(inventory: &[Value], build: &str) -> String {
    let mut live = live_resources_of_build(inventory, build);
    live.sort();
    let images = of_kind(inventory, build, "image");
    assert_eq!(
        images.len(),
        1,
        "exactly one image for {build}: {images:#?}"
    );
    let image = &images[0];
    assert_eq!(image["status"], "Available", "image: {image:#}");
    let expected = vec![
        format!("image {}", image["id"].as_str().unwrap()),
        format!("snapshot {}", image["snapshot_id"].as_str().unwrap()),
    ];
    assert_eq!(live, expected, "live resources of build {build}");
    for instance in of_kind(inventory, build, "instance") {
        let disk = instance["system_disk_id"].as_str().unwrap_or_default();
        let disk = inventory
            .iter()
            .find(|r| r["id"] == disk)
            .expect("system disk in inventory");
        assert!(
            !disk["deleted"].is_null(),
            "system disk {disk:#} of the build instance is still alive"
        );
    }
    image["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn demo_spec_builds_an_image_whose_new_instance_has_every_provisioned_file_and_nothing_leaks()
{
    let sim = SimProcess::start("e2e-demo");
    let ws = Workspace::new();
    let spec = demo_spec();
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "apply failed: {}", run.all());
    assert!(run.stdout().contains("succeeded"), "{}", run.all());
    let id = run.build_id();
    let shown = ws.show_json(&sim.endpoint, &id);
    assert_eq!(shown["phase"]["phase"], "succeeded", "{shown:#}");

    let inventory = sim.inventory().await;
    let image = assert_only_image_and_snapshot_alive(&inventory, &id);
    assert_eq!(shown["resources"]["image"], image.as_str());

    assert_eq!(
        ws.key_files(),
        Vec::<PathBuf>::new(),
        "private key left after success"
    );

    let (ip, key) = boot_from_image(&sim, &image, ws.specs.path()).await;
    let files_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/files");
    let local = |p: &str| std::fs::read_to_string(files_dir.join(p)).expect("local demo file");
    let expected = [
        ("/etc/bakerd-demo/inline", "inline step ran\n".to_string()),
        ("/etc/bakerd-demo/built-by", "bakerd\n".to_string()),
        (
            "/etc/bakerd-demo/greeting",
            "hello from the demo image\n".to_string(),
        ),
        (
            "/etc/bakerd-demo/script-ran",
            "demo-setup.sh ran as 0\n".to_string(),
        ),
        ("/etc/motd", local("motd")),
        ("/opt/bakerd-demo/README", local("bakerd-demo/README")),
        ("/opt/bakerd-demo/version", local("bakerd-demo/version")),
    ];
    for (path, content) in expected {
        assert_eq!(
            ssh_read(&ip, &key, path),
            content,
            "content of {path} in the new instance"
        );
    }
    // No staged provisioner script is left behind in the image.
    let leftovers = ssh_run(&ip, &key, "ls /tmp");
    let leftovers = String::from_utf8_lossy(&leftovers.stdout);
    assert!(
        !leftovers.contains("bakerd-"),
        "staged scripts left in the image: {leftovers}"
    );
}

#[tokio::test]
async fn applying_the_same_spec_again_says_up_to_date_and_creates_or_changes_nothing() {
    let sim = SimProcess::start("e2e-again");
    let ws = Workspace::new();
    let spec = ws.spec(
        "",
        "  - shell:\n      inline:\n        - echo hi > /root/hi\n",
    );
    let spec = spec.to_str().unwrap();
    let first = ws.bakerd(&sim.endpoint, &["apply", spec]);
    assert_eq!(first.code(), 0, "first apply: {}", first.all());
    let id = first.build_id();
    let inventory_before = sim.inventory().await;
    let calls_before = sim.calls().await["calls"].as_array().unwrap().len();

    let second = ws.bakerd(&sim.endpoint, &["apply", spec]);
    assert_eq!(second.code(), 0, "second apply: {}", second.all());
    assert!(second.stdout().contains("up to date"), "{}", second.all());
    assert!(build_id_in(&second.stdout()).is_none(), "{}", second.all());

    let inventory_after = sim.inventory().await;
    assert_eq!(
        inventory_after.len(),
        inventory_before.len(),
        "new resources appeared"
    );
    assert_only_image_and_snapshot_alive(&inventory_after, &id);
    let calls = sim.calls().await;
    let mutating: Vec<&str> = calls["calls"].as_array().unwrap()[calls_before..]
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .filter(|a| !a.starts_with("Describe"))
        .collect();
    assert!(
        mutating.is_empty(),
        "the second apply made mutating calls: {mutating:?}"
    );
    let status = ws.bakerd(&sim.endpoint, &["status"]);
    assert_eq!(
        status.stdout().lines().count(),
        1,
        "one build only: {}",
        status.all()
    );
}

const FAILING_PROVISIONERS: &str = r#"  - shell:
      inline:
        - echo first >> /root/first-runs
  - shell:
      inline:
        - echo some output; exit 3
"#;

/// Asserts the output of a run that failed at provisioner 1 with exit code 3.
fn assert_failed_with_exit_3(run: &Run) {
    assert_eq!(run.code(), 1, "{}", run.all());
    let out = run.stdout();
    for needle in [
        "provisioner 1",
        "exit code 3; last output:\n    some output",
    ] {
        assert!(
            out.contains(needle),
            "no {needle:?} in the failure output:\n{}",
            run.all()
        );
    }
}

#[tokio::test]
async fn a_provisioner_exiting_3_with_on_failure_keep_fails_keeps_the_instance_and_resume_fails_the_same_way(
) {
    let sim = SimProcess::start("e2e-keep");
    let ws = Workspace::new();
    let spec = ws.spec("on_failure: keep", FAILING_PROVISIONERS);
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_failed_with_exit_3(&run);
    let id = run.build_id();
    let show = ws.bakerd(&sim.endpoint, &["show", &id]);
    assert!(show.stdout().contains("failed"), "{}", show.all());
    assert_eq!(ws.show_json(&sim.endpoint, &id)["phase"]["phase"], "failed");

    let inventory = sim.inventory().await;
    let instances = of_kind(&inventory, &id, "instance");
    assert_eq!(instances.len(), 1, "{instances:#?}");
    assert!(
        instances[0]["deleted"].is_null(),
        "instance deleted despite on_failure: keep"
    );
    assert!(of_kind(&inventory, &id, "image").is_empty());

    let keys = ws.key_files();
    assert_eq!(keys.len(), 1, "the kept build's private key: {keys:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&keys[0]).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", keys[0].display());

    let again = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_failed_with_exit_3(&again);
    let inventory = sim.inventory().await;
    let instances = of_kind(&inventory, &id, "instance");
    assert_eq!(
        instances.len(),
        1,
        "resume created another instance: {instances:#?}"
    );
    assert!(instances[0]["deleted"].is_null());
    assert_eq!(sim.calls().await["counts"]["RunInstances"], 1);
    // The first provisioner had finished: the resume did not run it again.
    let disk = instances[0]["system_disk_id"].as_str().unwrap();
    let runs = std::fs::read_to_string(
        sim.data_dir
            .join(format!("disks/{disk}/rootfs/root/first-runs")),
    )
    .expect("first provisioner's file on the kept instance's disk");
    assert_eq!(runs, "first\n");
}

#[tokio::test]
async fn a_provisioner_exiting_3_with_on_failure_cleanup_fails_and_leaves_nothing_alive() {
    let sim = SimProcess::start("e2e-cleanup");
    let ws = Workspace::new();
    let spec = ws.spec("", FAILING_PROVISIONERS);
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_failed_with_exit_3(&run);
    let id = run.build_id();
    assert_eq!(ws.show_json(&sim.endpoint, &id)["phase"]["phase"], "failed");
    let inventory = sim.inventory().await;
    assert_eq!(of_kind(&inventory, &id, "instance").len(), 1);
    let live = live_resources_of_build(&inventory, &id);
    assert!(
        live.is_empty(),
        "alive after a failed build with on_failure: cleanup: {live:?}"
    );

    // The cleaned-up attempt is over: a resume starts a fresh one, fails the same way, cleans up.
    let again = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_failed_with_exit_3(&again);
    let inventory = sim.inventory().await;
    let instances = of_kind(&inventory, &id, "instance");
    assert_eq!(
        instances.len(),
        2,
        "one instance per attempt: {instances:#?}"
    );
    let live = live_resources_of_build(&inventory, &id);
    assert!(
        live.is_empty(),
        "alive after the resumed attempt failed: {live:?}"
    );
}

/// Counts the `provisioner <index> finished` events of a build.
fn provisioner_finished_events(shown: &Value, index: usize) -> usize {
    let wanted = format!("provisioner {index} finished");
    shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "provisioner" && e["message"] == wanted.as_str())
        .count()
}

#[tokio::test]
async fn sigkill_during_provisioning_then_resume_makes_one_image_leaks_nothing_and_skips_finished_provisioners(
) {
    let sim = SimProcess::start("e2e-sigkill");
    let ws = Workspace::new();
    let spec = ws.spec("", SLEEPY_PROVISIONERS);
    let id = ws.apply_and_kill_at(&sim.endpoint, &spec, "p2-sleeping");
    let shown = ws.show_json(&sim.endpoint, &id);
    assert_eq!(shown["phase"]["phase"], "instance_running", "{shown:#}");

    let resume = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_eq!(resume.code(), 0, "resume failed: {}", resume.all());
    let shown = ws.show_json(&sim.endpoint, &id);
    assert_eq!(shown["phase"]["phase"], "succeeded", "{shown:#}");
    assert_eq!(provisioner_finished_events(&shown, 0), 1, "{shown:#}");

    let inventory = sim.inventory().await;
    let image = assert_only_image_and_snapshot_alive(&inventory, &id);
    let instances = of_kind(&inventory, &id, "instance");
    assert_eq!(instances.len(), 1, "{instances:#?}");
    assert!(!instances[0]["deleted"].is_null());
    assert_eq!(sim.calls().await["counts"]["RunInstances"], 1);

    let (ip, key) = boot_from_image(&sim, &image, ws.specs.path()).await;
    assert_eq!(
        ssh_read(&ip, &key, "/root/p1-runs"),
        "p1-ran\n",
        "provisioner 1 ran again"
    );
    // The interrupted provisioner runs again from its start (documented caveat).
    assert_eq!(ssh_read(&ip, &key, "/root/p2-runs"), "p2-ran\np2-ran\n");
    assert_eq!(ssh_read(&ip, &key, "/root/p3-done"), "done\n");
}

#[tokio::test]
async fn a_changed_host_key_after_resume_is_refused_before_any_command_is_sent() {
    let sim = SimProcess::start("e2e-hostkey");
    let ws = Workspace::new();
    let spec = ws.spec("on_failure: keep", SLEEPY_PROVISIONERS);
    let id = ws.apply_and_kill_at(&sim.endpoint, &spec, "p2-sleeping");
    let shown = ws.show_json(&sim.endpoint, &id);
    let instance = shown["resources"]["instance"]
        .as_str()
        .expect("instance recorded")
        .to_string();

    let data_dir = sim.stop();
    let host_key = data_dir
        .join("sshd")
        .join(&instance)
        .join("ssh_host_ed25519_key");
    assert!(host_key.exists(), "no host key at {}", host_key.display());
    std::fs::remove_file(&host_key).expect("remove host key");
    std::fs::remove_file(host_key.with_extension("pub")).expect("remove host public key");
    let sim = SimProcess::start_in(&data_dir, &[]);

    let resume = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_eq!(resume.code(), 1, "{}", resume.all());
    assert!(
        resume.stdout().contains("host key"),
        "no host key error: {}",
        resume.all()
    );
    assert!(resume.stdout().contains("changed"), "{}", resume.all());

    let inventory = sim.inventory().await;
    let instances = of_kind(&inventory, &id, "instance");
    assert_eq!(instances.len(), 1);
    let disk = instances[0]["system_disk_id"].as_str().unwrap();
    let root = sim.data_dir.join(format!("disks/{disk}/rootfs/root"));
    let p2 = std::fs::read_to_string(root.join("p2-runs")).expect("p2-runs on the disk");
    assert_eq!(
        p2, "p2-ran\n",
        "provisioner 2 ran again over the changed host key"
    );
    assert!(
        !root.join("p3-done").exists(),
        "provisioner 3 ran over the changed host key"
    );
}

#[tokio::test]
async fn status_and_show_report_phases_resources_and_events() {
    let sim = SimProcess::start("e2e-show");
    let ws = Workspace::new();
    let spec = ws.spec(
        "",
        "  - shell:\n      inline:\n        - echo hi > /root/hi\n",
    );
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.all());
    let id = run.build_id();
    for phase in [
        "prepared",
        "instance-created",
        "instance-running",
        "provisioned",
        "instance-stopped",
        "snapshot-ready",
        "image-ready",
        "succeeded",
    ] {
        assert!(
            run.stdout().contains(&format!("[{id}] {phase} (")),
            "apply output lacks phase {phase}:\n{}",
            run.all()
        );
    }

    let status = ws.bakerd(&sim.endpoint, &["status"]);
    assert_eq!(status.code(), 0, "{}", status.all());
    let line = status
        .stdout()
        .lines()
        .find(|l| l.contains(&id))
        .map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("status lacks {id}: {}", status.all()));
    assert!(line.contains("succeeded"), "{line}");

    let shown = ws.show_json(&sim.endpoint, &id);
    let resources = shown["resources"].as_object().expect("resources");
    for role in [
        "instance",
        "image",
        "snapshot",
        "key_pair",
        "security_group",
        "vpc",
        "vswitch",
    ] {
        assert!(
            resources.contains_key(role),
            "show --json lacks resource {role}: {shown:#}"
        );
    }
    let events = shown["events"].as_array().expect("events");
    for kind in ["resource", "phase", "ssh", "provisioner"] {
        assert!(
            events.iter().any(|e| e["kind"] == kind),
            "no {kind} event: {shown:#}"
        );
    }

    let show = ws.bakerd(&sim.endpoint, &["show", &id]);
    let text = show.stdout();
    assert!(text.contains("succeeded"), "{text}");
    for role in ["instance", "image", "snapshot"] {
        let rid = resources[role].as_str().unwrap();
        assert!(
            text.contains(role) && text.contains(rid),
            "show lacks {role} {rid}:\n{text}"
        );
    }
    for event in [
        "reached provisioned",
        "provisioner 0 finished",
        "pinned SSH host key",
    ] {
        assert!(text.contains(event), "show lacks event {event:?}:\n{text}");
    }
}

#[tokio::test]
async fn cancel_of_a_killed_build_deletes_every_resource_and_status_says_cancelled() {
    let sim = SimProcess::start("e2e-cancel");
    let ws = Workspace::new();
    let spec = ws.spec("", SLEEPY_PROVISIONERS);
    let id = ws.apply_and_kill_at(&sim.endpoint, &spec, "p2-sleeping");
    assert!(!live_resources_of_build(&sim.inventory().await, &id).is_empty());

    let cancel = ws.bakerd(&sim.endpoint, &["cancel", &id]);
    assert_eq!(cancel.code(), 0, "{}", cancel.all());
    let inventory = sim.inventory().await;
    let live = live_resources_of_build(&inventory, &id);
    assert!(live.is_empty(), "alive after cancel: {live:?}");
    for instance in of_kind(&inventory, &id, "instance") {
        let disk = instance["system_disk_id"].as_str().unwrap_or_default();
        let disk = inventory.iter().find(|r| r["id"] == disk).expect("disk");
        assert!(
            !disk["deleted"].is_null(),
            "disk alive after cancel: {disk:#}"
        );
    }
    assert_eq!(
        ws.key_files(),
        Vec::<PathBuf>::new(),
        "private key left after cancel"
    );
    let status = ws.bakerd(&sim.endpoint, &["status"]);
    let line = status
        .stdout()
        .lines()
        .find(|l| l.contains(&id))
        .map(str::to_string);
    assert!(
        line.is_some_and(|l| l.contains("cancelled")),
        "{}",
        status.all()
    );
    assert_eq!(
        ws.show_json(&sim.endpoint, &id)["phase"]["phase"],
        "cancelled"
    );
}

#[tokio::test]
async fn a_build_killed_during_provisioning_resumes_after_a_simulator_restart_with_the_same_host_key(
) {
    let sim = SimProcess::start("e2e-restart");
    let ws = Workspace::new();
    let spec = ws.spec("", SLEEPY_PROVISIONERS);
    let id = ws.apply_and_kill_at(&sim.endpoint, &spec, "p2-sleeping");
    let data_dir = sim.stop();
    let sim = SimProcess::start_in(&data_dir, &[]);

    let resume = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_eq!(resume.code(), 0, "resume failed: {}", resume.all());
    let inventory = sim.inventory().await;
    assert_only_image_and_snapshot_alive(&inventory, &id);
    let shown = ws.show_json(&sim.endpoint, &id);
    assert_eq!(provisioner_finished_events(&shown, 0), 1, "{shown:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_build_whose_script_changed_since_it_started() {
    let sim = SimProcess::start("e2e-changed-script");
    let ws = Workspace::new();
    let script = ws.specs.path().join("step.sh");
    std::fs::write(&script, "#!/bin/sh\necho some output; exit 3\n").unwrap();
    let spec = ws.spec("on_failure: keep", "  - shell:\n      script: step.sh\n");
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_eq!(run.code(), 1, "{}", run.all());
    let id = run.build_id();

    std::fs::write(&script, "#!/bin/sh\necho fixed\n").unwrap();
    let resumed = ws.bakerd(&sim.endpoint, &["resume", &id]);
    assert_eq!(resumed.code(), 2, "{}", resumed.all());
    assert!(
        resumed.all().contains("changed since build")
            && resumed
                .all()
                .contains("a file the provisioners run or upload")
            && resumed.all().contains("--apply-changes"),
        "{}",
        resumed.all()
    );
    assert_eq!(sim.calls().await["counts"]["RunInstances"], 1);
}

#[tokio::test]
async fn a_build_with_ssh_address_eip_provisions_through_its_eip_and_releases_it_in_cleanup() {
    let sim = SimProcess::start("e2e-eip");
    let ws = Workspace::new();
    let spec = ws.spec(
        "  address: eip",
        "  - shell:\n      inline:\n        - echo via-eip > /root/eip\n",
    );
    let run = ws.bakerd(&sim.endpoint, &["apply", spec.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "apply failed: {}", run.all());
    let id = run.build_id();
    let shown = ws.show_json(&sim.endpoint, &id);
    let inventory = sim.inventory().await;
    assert_only_image_and_snapshot_alive(&inventory, &id);
    let eips = of_kind(&inventory, &id, "eip");
    assert_eq!(eips.len(), 1, "one EIP, tagged with the build: {eips:#?}");
    let eip = &eips[0];
    assert!(!eip["deleted"].is_null(), "EIP released: {eip:#}");
    assert_eq!(eip["client_token"], format!("bakerd-{id}-a0-allocate-eip"));
    // bakerd connected to the EIP, not to a public IP of the instance (it had none).
    assert_eq!(shown["resources"]["ssh_address"], eip["ip"], "{shown:#}");
    let instance = &of_kind(&inventory, &id, "instance")[0];
    assert!(
        instance["public_ip"].is_null() || instance["public_ip"] == "",
        "{instance:#}"
    );
    for kind in ["eip", "vpc", "vswitch"] {
        let found = of_kind(&inventory, &id, kind);
        assert_eq!(found.len(), 1, "one {kind} tagged at creation: {found:#?}");
        assert_eq!(found[0]["tags"]["bakerd:managed"], "true", "{:#}", found[0]);
    }
    let calls = sim.calls().await;
    let calls = calls["calls"].as_array().unwrap();
    assert_vpc_api_calls(calls);
    assert!(
        !calls.iter().any(|c| c["action"] == "TagResources"),
        "the EIP is tagged at creation, not after"
    );
}

/// Every VPC, vSwitch and EIP call of a build went to the VPC API (Version 2016-04-28), every
/// other call to ECS (2014-05-26).
fn assert_vpc_api_calls(calls: &[Value]) {
    const VPC_ACTIONS: &[&str] = &[
        "CreateVpc",
        "CreateVSwitch",
        "DescribeVpcs",
        "DescribeVSwitches",
        "DeleteVSwitch",
        "DeleteVpc",
        "AllocateEipAddress",
        "DescribeEipAddresses",
        "AssociateEipAddress",
        "UnassociateEipAddress",
        "ReleaseEipAddress",
    ];
    for action in [
        "CreateVpc",
        "CreateVSwitch",
        "AllocateEipAddress",
        "AssociateEipAddress",
        "ReleaseEipAddress",
        "DeleteVpc",
    ] {
        assert!(
            calls.iter().any(|c| c["action"] == action),
            "no {action} call"
        );
    }
    for c in calls {
        let action = c["action"].as_str().unwrap();
        let want = if VPC_ACTIONS.contains(&action) {
            "2016-04-28"
        } else {
            "2014-05-26"
        };
        assert_eq!(c["version"], want, "{c:#}");
    }
}
