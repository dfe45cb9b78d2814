use super::*;

const CANARY: &str = "CANARY-s3cr3t-5f0e";

fn no_home() -> Env {
    Env::from_pairs([("HOME", "/nonexistent-bakerd-home")])
}

fn resolved(explicit: &ExplicitCredentials, env: &Env) -> Credentials {
    match resolve(explicit, env).unwrap() {
        Plan::Static(c) => c,
        other => panic!("expected static keys, got {:?}", other.source()),
    }
}

#[test]
fn secret_never_prints_itself() {
    let s = Secret::new(CANARY);
    assert_eq!(format!("{s:?}"), "** redacted **");
    assert_eq!(format!("{s}"), "** redacted **");
    assert_eq!(s.expose(), CANARY);
}

#[test]
fn explicit_keys_win_over_every_other_source() {
    let explicit = ExplicitCredentials {
        access_key_id: Some("spec-id".into()),
        access_key_secret: Some(Secret::new(CANARY)),
        ..Default::default()
    };
    let env = Env::from_pairs([
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "a"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "b"),
    ]);
    let c = resolved(&explicit, &env);
    assert_eq!(c.access_key_id, "spec-id");
    assert_eq!(c.source, CredentialSource::Explicit);
    assert!(!format!("{c:?}").contains(CANARY));
}

#[test]
fn an_unset_secret_variable_named_by_the_spec_is_named_in_the_error() {
    let explicit = ExplicitCredentials {
        access_key_id: Some("spec-id".into()),
        access_key_secret_var: Some("MY_SECRET".into()),
        ..Default::default()
    };
    let env = Env::from_pairs([
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "a"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "b"),
    ]);
    let err = resolve(&explicit, &env).unwrap_err().to_string();
    assert!(err.contains("MY_SECRET"), "{err}");
    assert!(err.contains("credentials.access_key_secret_env"), "{err}");
}

#[test]
fn env_sources_come_in_the_documented_order_and_carry_their_sts_token() {
    let all = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ali-id"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ali-secret"),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
        ("ALICLOUD_ACCESS_KEY", "tf-id"),
        ("ALICLOUD_SECRET_KEY", "tf-secret"),
        ("ALIYUN_ACCESS_KEY_ID", "yun-id"),
        ("ALIYUN_ACCESS_KEY_SECRET", "yun-secret"),
        ("HOME", "/nonexistent"),
    ];
    let c = resolved(&ExplicitCredentials::default(), &Env::from_pairs(all));
    assert_eq!(c.access_key_id, "ali-id");
    assert_eq!(c.source, CredentialSource::AlibabaCloudEnv);
    assert_eq!(c.security_token.unwrap().expose(), "tok");
    let c = resolved(
        &ExplicitCredentials::default(),
        &Env::from_pairs(all[3..].to_vec()),
    );
    assert_eq!(c.access_key_id, "tf-id");
    assert_eq!(c.source, CredentialSource::AlicloudEnv);
    let c = resolved(
        &ExplicitCredentials::default(),
        &Env::from_pairs(all[5..].to_vec()),
    );
    assert_eq!(c.access_key_id, "yun-id");
    assert_eq!(c.source, CredentialSource::AliyunEnv);
    assert!(c.security_token.is_none());
}

#[test]
fn half_a_key_pair_is_an_error_not_a_silent_fallthrough() {
    let env = Env::from_pairs([("ALIYUN_ACCESS_KEY_ID", "yun-id")]);
    let err = resolve(&ExplicitCredentials::default(), &env).unwrap_err();
    assert!(
        err.to_string()
            .contains("ALIYUN_ACCESS_KEY_SECRET is missing"),
        "{err}"
    );
}

fn write_cli_config(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("config.json");
    let json = serde_json::json!({
        "current": "default",
        "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "cli-default",
             "access_key_secret": CANARY},
            {"name": "ci", "mode": "StsToken", "access_key_id": "cli-ci",
             "access_key_secret": "x", "sts_token": "sts"},
            {"name": "ram", "mode": "RamRoleArn", "access_key_id": "cli-ram",
             "access_key_secret": "y", "ram_role_arn": "acs:ram::1:role/builder"},
            {"name": "chain", "mode": "ChainableRamRoleArn", "source_profile": "ram",
             "ram_role_arn": "acs:ram::1:role/second"},
            {"name": "loop", "mode": "ChainableRamRoleArn", "source_profile": "loop",
             "ram_role_arn": "acs:ram::1:role/x"},
            {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "r"},
            {"name": "oidc", "mode": "OIDC", "ram_role_arn": "acs:ram::1:role/o",
             "oidc_provider_arn": "acs:ram::1:oidc-provider/p", "oidc_token_file": "/t"},
            {"name": "ext", "mode": "External"}
        ]
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

#[test]
fn a_profile_named_by_the_spec_or_alibaba_cloud_profile_beats_env_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_cli_config(dir.path());
    let mut explicit = ExplicitCredentials {
        cli_config_path: Some(path.clone()),
        ..Default::default()
    };
    let keys = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-id"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret"),
    ];
    assert_eq!(
        resolved(&explicit, &Env::from_pairs(keys)).access_key_id,
        "env-id"
    );
    let mut with_profile = keys.to_vec();
    with_profile.push(("ALIBABA_CLOUD_PROFILE", "ci"));
    let env = Env::from_pairs(with_profile);
    let c = resolved(&explicit, &env);
    assert_eq!(c.access_key_id, "cli-ci");
    assert_eq!(c.security_token.unwrap().expose(), "sts");
    explicit.profile = Some("default".into());
    let c = resolved(&explicit, &env);
    assert_eq!(c.access_key_id, "cli-default");
    assert!(c.source.to_string().contains("profile 'default'"));
    assert!(c.source.to_string().contains("named by the spec"));
}

#[test]
fn a_missing_profile_named_by_the_spec_is_an_error_even_with_env_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_cli_config(dir.path());
    let explicit = ExplicitCredentials {
        cli_config_path: Some(path),
        profile: Some("work".into()),
        ..Default::default()
    };
    let env = Env::from_pairs([
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-id"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret"),
    ]);
    let err = resolve(&explicit, &env).unwrap_err().to_string();
    assert!(
        err.contains("'work'") && err.contains("named by the spec"),
        "{err}"
    );
    assert!(
        err.contains("default, ci"),
        "lists the profiles there: {err}"
    );
    let explicit = ExplicitCredentials {
        cli_config_path: Some(dir.path().join("absent.json")),
        profile: Some("work".into()),
        ..Default::default()
    };
    let err = resolve(&explicit, &env).unwrap_err().to_string();
    assert!(
        err.contains("absent.json") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn role_profiles_become_fetch_plans_and_unsupported_modes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_cli_config(dir.path());
    let env = Env::from_pairs([(STS_ENDPOINT_ENV, "http://127.0.0.1:1/")]);
    let plan = |name: &str| {
        let explicit = ExplicitCredentials {
            cli_config_path: Some(path.clone()),
            profile: Some(name.into()),
            ..Default::default()
        };
        resolve(&explicit, &env)
    };
    let Plan::Fetch { fetch, source } = plan("chain").unwrap() else {
        panic!("chain is fetched")
    };
    assert!(
        source.to_string().contains("ChainableRamRoleArn"),
        "{source}"
    );
    let Fetch::AssumeRole {
        base,
        role_arn,
        sts_endpoint,
        ..
    } = *fetch
    else {
        panic!("chain assumes a role")
    };
    assert_eq!(role_arn, "acs:ram::1:role/second");
    assert_eq!(sts_endpoint, "http://127.0.0.1:1");
    assert!(
        matches!(*base, Plan::Fetch { .. }),
        "the base is the ram profile's role"
    );
    assert!(matches!(plan("ecs").unwrap(), Plan::Fetch { .. }));
    assert!(matches!(plan("oidc").unwrap(), Plan::Fetch { .. }));
    let err = plan("loop").unwrap_err().to_string();
    assert!(err.contains("loop"), "{err}");
    let err = plan("ext").unwrap_err().to_string();
    assert!(
        err.contains("External") && err.contains("credentials.profile"),
        "{err}"
    );
}

#[test]
fn missing_credentials_error_lists_every_source_tried() {
    let err = resolve(&ExplicitCredentials::default(), &no_home()).unwrap_err();
    let text = err.to_string();
    for needle in [
        "the spec",
        "ALIBABA_CLOUD_PROFILE",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALICLOUD_ACCESS_KEY",
        "ALIYUN_ACCESS_KEY_ID",
        "/nonexistent-bakerd-home/.aliyun/config.json: file not found",
        "credentials.access_key_secret_env",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let first = text.find("the spec").unwrap();
    let last = text.find(".aliyun/config.json").unwrap();
    assert!(first < last, "sources listed out of order:\n{text}");
}
