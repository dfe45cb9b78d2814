//! Credential precedence and sources, with the real binary against the simulator: a profile the
//! spec names beats keys in the environment, a missing one is an error, and RamRoleArn (STS
//! AssumeRole), EcsRamRole (instance metadata) and OIDC (AssumeRoleWithOIDC) profiles build.

mod common;

use common::SimProcess;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bakerd");

/// A spec whose credentials section is `credentials` (YAML, may be empty).
fn spec(dir: &Path, credentials: &str) -> std::path::PathBuf {
    common::write_spec(
        dir,
        &format!(
            "region: cn-hangzhou\n{credentials}source_image: {{ id: ubuntu1404_64_40G_cloudinit_20160427.raw }}\n\
             instance: {{ type: ecs.s2.large }}\nssh: {{ username: root, timeout: 2m }}\n\
             provisioners:\n  - shell: {{ inline: [\"echo hi > /root/hi\"] }}\n\
             image:\n  name: \"creds-{{{{timestamp}}}}\"\n"
        ),
    )
}

/// An aliyun CLI config with one profile `work`.
fn cli_config(dir: &Path, profile: Value) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.json");
    let mut profile = profile;
    profile["name"] = json!("work");
    let config = json!({"current": "work", "profiles": [profile]});
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// Runs bakerd with a clean environment: only PATH, HOME (empty dir), the simulator's
/// endpoints and `env`.
fn bakerd(sim: &SimProcess, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(BIN)
        .args(args)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .env("BAKERD_STS_ENDPOINT", &sim.endpoint)
        .env("BAKERD_METADATA_ENDPOINT", &sim.endpoint)
        .envs(env.iter().copied())
        .output()
        .expect("run bakerd")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Applies to success and returns `show --json` of the build.
fn build_and_show(sim: &SimProcess, dir: &Path, spec: &Path, env: &[(&str, &str)]) -> Value {
    let out = bakerd(sim, dir, &["apply", spec.to_str().unwrap()], env);
    let all = text(&out);
    assert!(out.status.success(), "apply failed:\n{all}");
    let start = all.find("build b-").expect("build id") + "build ".len();
    let id = &all[start..start + 12];
    let out = bakerd(sim, dir, &["show", id, "--json"], &[]);
    assert!(out.status.success(), "show failed:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json is JSON")
}

/// Runs `apply`, expects exit 4 (a credential error before any build) and returns the output.
fn apply_refused(sim: &SimProcess, dir: &Path, spec: &Path, env: &[(&str, &str)]) -> String {
    let out = bakerd(sim, dir, &["apply", spec.to_str().unwrap(), "--force"], env);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "{all}");
    all
}

const WRONG_ENV_KEYS: [(&str, &str); 2] = [
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", "wrong-account-id"),
    (
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "CANARY-wrong-account-secret",
    ),
];

#[test]
fn a_profile_named_by_the_spec_beats_env_keys_and_show_names_it() {
    let sim = SimProcess::start("creds-precedence");
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(
        dir.path(),
        json!({"mode": "AK", "access_key_id": common::ACCESS_KEY_ID,
               "access_key_secret": common::ACCESS_KEY_SECRET}),
    );
    let credentials = format!(
        "credentials: {{ profile: work, config_file: {} }}\n",
        config.display()
    );
    let spec = spec(dir.path(), &credentials);
    let show = build_and_show(&sim, dir.path(), &spec, &WRONG_ENV_KEYS);
    let used = &show["credentials"];
    assert_eq!(used["kind"], "cli-profile", "{show}");
    let source = used["source"].as_str().unwrap();
    assert!(
        source.contains("'work'") && source.contains("named by the spec"),
        "{source}"
    );
    assert_eq!(used["access_key_id"], common::ACCESS_KEY_ID);
    assert!(
        !show.to_string().contains(common::ACCESS_KEY_SECRET),
        "secret in show: {show}"
    );
}

#[test]
fn a_missing_profile_named_by_the_spec_is_an_error_even_with_env_keys() {
    let sim = SimProcess::start("creds-missing-profile");
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(
        dir.path(),
        json!({"mode": "AK", "access_key_id": "x", "access_key_secret": "y"}),
    );
    let credentials = format!(
        "credentials: {{ profile: production, config_file: {} }}\n",
        config.display()
    );
    let spec = spec(dir.path(), &credentials);
    let all = apply_refused(&sim, dir.path(), &spec, &WRONG_ENV_KEYS);
    assert!(
        all.contains("'production'") && all.contains("profiles there: work"),
        "{all}"
    );
    let out = bakerd(&sim, dir.path(), &["status"], &[]);
    assert!(
        text(&out).contains("no builds"),
        "nothing recorded: {}",
        text(&out)
    );
}

#[test]
fn an_unset_secret_variable_is_named_in_the_error() {
    let sim = SimProcess::start("creds-secret-env");
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(
        dir.path(),
        "credentials: { access_key_id: testid, access_key_secret_env: MY_BUILD_SECRET }\n",
    );
    let all = apply_refused(&sim, dir.path(), &spec, &WRONG_ENV_KEYS);
    assert!(all.contains("MY_BUILD_SECRET"), "{all}");
}

#[test]
fn a_ram_role_arn_profile_builds_with_keys_from_sts_assume_role() {
    let sim = SimProcess::start("creds-ramrolearn");
    let dir = tempfile::tempdir().unwrap();
    cli_config(
        &dir.path().join("home/.aliyun"),
        json!({"mode": "RamRoleArn", "access_key_id": common::ACCESS_KEY_ID,
               "access_key_secret": common::ACCESS_KEY_SECRET,
               "ram_role_arn": "acs:ram::1234567890123456:role/image-builder",
               "ram_session_name": "ci-nightly"}),
    );
    let spec = spec(dir.path(), "");
    let show = build_and_show(&sim, dir.path(), &spec, &[]);
    let source = show["credentials"]["source"].as_str().unwrap().to_string();
    assert!(source.contains("RamRoleArn"), "{source}");
    assert!(show["credentials"].get("access_key_id").is_none(), "{show}");
    let calls = tokio_calls(&sim);
    assert!(
        calls["counts"]["AssumeRole"].as_u64().unwrap_or(0) >= 1,
        "{}",
        calls["counts"]
    );
}

#[test]
fn an_ecs_ram_role_profile_builds_with_keys_from_instance_metadata() {
    let sim = SimProcess::start("creds-ecsramrole");
    let dir = tempfile::tempdir().unwrap();
    let home_aliyun = dir.path().join("home/.aliyun");
    cli_config(
        &home_aliyun,
        json!({"mode": "EcsRamRole", "ram_role_name": "bakerd-sim-role"}),
    );
    let spec = spec(dir.path(), "");
    let show = build_and_show(&sim, dir.path(), &spec, &[]);
    let source = show["credentials"]["source"].as_str().unwrap();
    assert!(source.contains("EcsRamRole"), "{source}");
    cli_config(
        &home_aliyun,
        json!({"mode": "EcsRamRole", "ram_role_name": "not-attached"}),
    );
    let all = apply_refused(&sim, dir.path(), &spec, &[]);
    assert!(
        all.contains("not-attached") && all.contains("HTTP 404"),
        "{all}"
    );
}

#[test]
fn an_oidc_profile_builds_with_keys_from_assume_role_with_oidc() {
    let sim = SimProcess::start("creds-oidc");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("oidc-token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl\n",
    )
    .unwrap();
    cli_config(
        &dir.path().join("home/.aliyun"),
        json!({"mode": "OIDC", "ram_role_arn": "acs:ram::1234567890123456:role/ci",
               "oidc_provider_arn": "acs:ram::1234567890123456:oidc-provider/github",
               "oidc_token_file": token}),
    );
    let spec = spec(dir.path(), "");
    let show = build_and_show(&sim, dir.path(), &spec, &[]);
    assert!(
        show["credentials"]["source"]
            .as_str()
            .unwrap()
            .contains("OIDC"),
        "{show}"
    );
    let calls = tokio_calls(&sim);
    assert!(calls["counts"]["AssumeRoleWithOIDC"].as_u64().unwrap_or(0) >= 1);
}

/// The simulator's call log (sync wrapper for these sync tests).
fn tokio_calls(sim: &SimProcess) -> Value {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(sim.calls())
}
