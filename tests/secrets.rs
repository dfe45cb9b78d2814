//! Secrets never leak: a canary AccessKeySecret and the build's private key must not appear in
//! stdout, stderr (also at `RUST_LOG=trace`), `--json` events, error messages or the state files.

mod common;
mod harness;

use std::path::{Path, PathBuf};

use harness::{Run, Workspace};

/// Every regular file under `dir`, except the private key directory.
fn state_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if path.file_name().is_some_and(|n| n != "keys") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// The distinctive pieces of an OpenSSH private key file: its base64 body lines.
fn key_body_lines(key: &str) -> Vec<String> {
    key.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// Where each secret shows up in `haystacks` (name, bytes).
fn findings(secrets: &[String], haystacks: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in haystacks {
        for s in secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                found.push(format!("{name} contains secret {}…", &s[..6.min(s.len())]));
            }
        }
    }
    found
}

fn outputs(label: &str, r: &Run) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{label} stdout"), r.stdout.clone().into_bytes()),
        (format!("{label} stderr"), r.stderr.clone().into_bytes()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secret_and_private_key_never_appear_in_output_errors_or_state() {
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("WRONGCANARY{}", uuid::Uuid::new_v4().simple());
    let dir = common::fresh_data_dir("secrets");
    let sim = common::SimProcess::start_in(&dir, &["--access-key", &format!("canaryid:{canary}")]);
    let ws = Workspace::with_key(&sim, "canaryid", &canary);
    let state = ws.state_dir();
    let spec = ws.spec_file(&harness::small_spec("secrets"));
    let mut haystacks = Vec::new();

    // 1. Apply at trace level with JSON events, killed mid-provisioning (with the failpoints
    //    feature) so the private key is still on disk; without the feature the build just ends.
    let mut apply = ws.apply(&state, &spec);
    apply
        .arg("--json")
        .env("RUST_LOG", "trace")
        .env("BAKERD_CRASH_AT", "provisioner-1:started");
    let applied = harness::run(apply).await;
    haystacks.extend(outputs("apply --json (trace)", &applied));
    let id = harness::builds(&ws, &state)
        .await
        .first()
        .expect("a build")
        .0
        .clone();
    let key_path = state.join("keys").join(format!("{id}.key"));
    let key = std::fs::read_to_string(&key_path).ok();
    if cfg!(feature = "failpoints") {
        let key = key.as_deref().expect("the private key exists mid-build");
        assert!(
            !key_body_lines(key).is_empty(),
            "unexpected key file format"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key file mode");
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "state dir mode");
    }

    // 2. Resume at trace level (text), then show/status in both formats.
    let mut resume = ws.resume(&state, &id);
    resume.env("RUST_LOG", "trace");
    let resumed = harness::run(resume).await;
    assert_eq!(resumed.code(), Some(0), "resume: {resumed:?}");
    haystacks.extend(outputs("resume (trace)", &resumed));
    for args in [
        vec!["show", id.as_str()],
        vec!["show", id.as_str(), "--json"],
        vec!["status", "--json"],
    ] {
        let mut cmd = ws.command(&state, &args);
        cmd.env("RUST_LOG", "trace");
        haystacks.extend(outputs(
            &format!("bakerd {}", args.join(" ")),
            &harness::run(cmd).await,
        ));
    }

    // 3. A wrong secret: the error must explain without echoing either secret.
    let bad = Workspace::with_key(&sim, "canaryid", &wrong);
    let mut cmd = bad.apply(&ws.state_dir(), &spec);
    cmd.env("RUST_LOG", "trace");
    let refused = harness::run(cmd).await;
    assert_eq!(
        refused.code(),
        Some(4),
        "a wrong secret fails before a build is recorded, with the cloud exit code: {refused:?}"
    );
    assert!(!refused.stderr.contains("panicked"));
    haystacks.extend(outputs("apply with wrong secret (trace)", &refused));
    let mut cmd = bad.apply(&ws.state_dir(), &spec);
    cmd.arg("--json");
    let refused_json = harness::run(cmd).await;
    haystacks.extend(outputs("apply --json with wrong secret", &refused_json));

    // 4. Every state file but the keys.
    let files = state_files(ws.dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.components().any(|c| c.as_os_str() == "db")),
        "no sled files found"
    );
    for f in &files {
        if f.extension().is_some_and(|e| e == "yaml") {
            continue; // the specs we wrote (no secrets in them)
        }
        haystacks.push((
            f.display().to_string(),
            std::fs::read(f).unwrap_or_default(),
        ));
    }

    let mut secrets = vec![canary.clone(), wrong.clone()];
    secrets.extend(key.as_deref().map(key_body_lines).unwrap_or_default());
    let found = findings(&secrets, &haystacks);
    let scanned: usize = haystacks.iter().map(|(_, b)| b.len()).sum();
    println!(
        "secrets figures: {} places scanned ({scanned} bytes), {} secrets (canary, wrong secret, {} \
         key lines), {} findings",
        haystacks.len(),
        secrets.len(),
        secrets.len() - 2,
        found.len()
    );
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
    // The scan is meaningful: trace output was produced and the refusal explained itself.
    assert!(
        applied.stderr.len() + resumed.stderr.len() > 1000,
        "expected trace output to scan"
    );
    println!(
        "wrong-secret error: {}{}",
        refused_json.stdout.trim(),
        refused_json.stderr.trim()
    );
    assert!(
        refused_json.stderr.contains("canaryid") || refused_json.stdout.contains("canaryid"),
        "the refusal should name the access key id it used"
    );
}
