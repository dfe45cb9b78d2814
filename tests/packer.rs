//! Packer template conversion: the seed's template byte for byte, an alicloud-ecs template using most
//! options, and the errors for everything bakerd does not support.

use bakerd::spec::packer::draft::{
    Credential, Provisioner, ShellSource, SourceImage, SshAddress, SystemDisk,
};
use bakerd::spec::packer::{is_packer_template, parse_var_arg, to_draft, Options, PackerError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use time::macros::datetime;

const SEED: &str = include_str!("fixtures/packer/seed.json");
const ALICLOUD_FULL: &str = include_str!("fixtures/packer/alicloud-full.json");
/// 2024-03-05T07:08:09Z.
const NOW_UNIX: i64 = 1_709_622_489;

fn options(env: &[(&str, &str)]) -> Options {
    Options {
        vars: Vec::new(),
        var_files: Vec::new(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        now: datetime!(2024-03-05 07:08:09 UTC),
    }
}

fn seed_env() -> Options {
    options(&[
        ("ALIYUN_ACCESS_KEY_ID", "testid"),
        ("ALIYUN_ACCESS_KEY_SECRET", "testsecret"),
        ("ALIYUN_SECURITY_GROUP_ID", "sg-seed"),
    ])
}

fn alicloud_env() -> Options {
    let mut opts = options(&[
        ("ALICLOUD_ACCESS_KEY", "ak"),
        ("ALICLOUD_SECRET_KEY", "sk-canary"),
    ]);
    opts.vars.push(("app_version".into(), "1.2.3".into()));
    opts
}

fn error_of(text: &str, opts: &Options) -> PackerError {
    match to_draft(text, opts) {
        Ok(_) => panic!("conversion unexpectedly succeeded"),
        Err(e) => e,
    }
}

#[test]
fn seed_fixture_is_the_readme_code_block_byte_for_byte() {
    let readme = std::fs::read_to_string("/work/shared/seed/packer-builder-aliyun-README.md");
    if let Ok(readme) = readme {
        assert!(readme.contains(&format!("```JSON\n{SEED}```")));
    }
}

#[test]
fn seed_template_converts_with_aliyun_env() {
    assert!(is_packer_template(SEED));
    let (draft, warnings) = to_draft(SEED, &seed_env()).unwrap();
    assert_eq!(draft.region, "cn-shanghai");
    assert_eq!(
        draft.source_image,
        SourceImage::Id("ubuntu1404_64_40G_cloudinit_20160427.raw".into())
    );
    assert_eq!(draft.instance.instance_type, "ecs.s2.large");
    assert_eq!(draft.instance.security_group_id.as_deref(), Some("sg-seed"));
    assert_eq!(draft.image.name, format!("packer-ubuntu-{NOW_UNIX}"));
    assert_eq!(
        draft.image.description.as_deref(),
        Some(format!("ubuntu image created by packer at {NOW_UNIX}").as_str())
    );
    assert_eq!(draft.ssh.address, Some(SshAddress::Private));
    assert_eq!(draft.ssh.username.as_deref(), Some("root"));
    assert_eq!(
        draft.provisioners,
        vec![Provisioner::Shell {
            source: ShellSource::Inline(vec!["echo ubuntu".into()]),
            environment: BTreeMap::new(),
            expect_disconnect: false,
            execute_command: None,
        }]
    );
    let secret = &draft.credentials.access_key_secret;
    assert_eq!(secret.value, "testsecret");
    assert_eq!(secret.env.as_deref(), Some("ALIYUN_ACCESS_KEY_SECRET"));
    assert_eq!(draft.credentials.access_key_id.value, "testid");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn seed_builder_defaults_image_name_and_description_and_falls_back_to_env() {
    let template = r#"{"builders":[{"type":"aliyun","region_id":"cn-shanghai",
        "base_image_id":"img","instance_type":"ecs.t1"}]}"#;
    let (draft, _) = to_draft(template, &seed_env()).unwrap();
    assert_eq!(draft.image.name, format!("packer-{NOW_UNIX}"));
    assert_eq!(
        draft.image.description.as_deref(),
        Some("Created by Packer for Aliyun")
    );
    assert_eq!(draft.instance.security_group_id.as_deref(), Some("sg-seed"));
    assert_eq!(
        draft.credentials.access_key_id.env.as_deref(),
        Some("ALIYUN_ACCESS_KEY_ID")
    );
}

#[test]
fn seed_template_without_credentials_names_the_missing_option_and_env_var() {
    let err = error_of(SEED, &options(&[("ALIYUN_SECURITY_GROUP_ID", "sg")]));
    let text = err.to_string();
    assert!(matches!(err, PackerError::MissingOption { .. }), "{text}");
    assert!(
        text.contains("access_key_id") && text.contains("ALIYUN_ACCESS_KEY_ID"),
        "{text}"
    );
}

#[test]
fn alicloud_template_using_most_options_converts_field_by_field() {
    let (d, warnings) = to_draft(ALICLOUD_FULL, &alicloud_env()).unwrap();
    assert_eq!(d.region, "cn-hangzhou");
    assert_eq!(d.endpoint.as_deref(), Some("http://127.0.0.1:8086"));
    assert_eq!(
        d.credentials.access_key_id,
        Credential {
            value: "ak".into(),
            env: Some("ALICLOUD_ACCESS_KEY".into())
        }
    );
    assert_eq!(
        d.credentials.access_key_secret.env.as_deref(),
        Some("ALICLOUD_SECRET_KEY")
    );
    assert_eq!(
        d.source_image,
        SourceImage::Family("acs:ubuntu_22_04_x64".into())
    );
    let i = &d.instance;
    assert_eq!(i.instance_type, "ecs.g6.large");
    assert_eq!(i.zone.as_deref(), Some("cn-hangzhou-h"));
    assert_eq!(i.vswitch_id.as_deref(), Some("vsw-456"));
    assert_eq!(i.security_group_id.as_deref(), Some("sg-789"));
    assert_eq!(
        i.system_disk,
        Some(SystemDisk {
            category: Some("cloud_essd".into()),
            size_gb: Some(60)
        })
    );
    assert_eq!(i.internet_max_bandwidth_out, Some(10));
    assert_eq!(i.user_data.as_deref(), Some("#!/bin/sh\necho hi"));
    assert_eq!(i.tags, BTreeMap::from([("purpose".into(), "build".into())]));
    assert_eq!(d.ssh.username.as_deref(), Some("ubuntu"));
    assert_eq!(d.ssh.port, Some(2222));
    assert_eq!(d.ssh.address, Some(SshAddress::Public));
    assert_eq!(d.ssh.timeout_secs, Some(600));
    let img = &d.image;
    assert_eq!(img.name, format!("web-cn-hangzhou-1.2.3-{NOW_UNIX}"));
    assert_eq!(img.description.as_deref(), Some("web built 2024-03-05"));
    assert_eq!(img.family.as_deref(), Some("web"));
    assert_eq!(img.version.as_deref(), Some("1.2.3"));
    assert_eq!(
        img.tags,
        BTreeMap::from([
            ("team".into(), "web".into()),
            ("version".into(), "1.2.3".into())
        ])
    );
    assert!(img.force);
    assert_eq!(img.copy_regions, vec!["cn-beijing", "cn-shanghai"]);
    assert_eq!(img.share_accounts, vec!["1234567890"]);
    assert!(d.stop_before_snapshot);
    assert_eq!(
        d.provisioners,
        vec![
            Provisioner::Shell {
                source: ShellSource::Inline(vec!["echo 1.2.3 > /etc/app-version".into()]),
                environment: BTreeMap::from([
                    ("APP".into(), "web".into()),
                    ("EQ".into(), "a=b".into())
                ]),
                expect_disconnect: true,
                execute_command: Some("echo 'packer' | sudo -S sh -c '{{.Vars}} {{.Path}}'".into()),
            },
            Provisioner::File {
                source: "files/app.conf".into(),
                destination: "/etc/app.conf".into()
            },
            Provisioner::Shell {
                source: ShellSource::Scripts(vec!["scripts/a.sh".into(), "scripts/b.sh".into()]),
                environment: BTreeMap::new(),
                expect_disconnect: false,
                execute_command: None,
            },
        ]
    );
    let joined = warnings.join("\n");
    for expected in [
        "min_packer_version",
        "skip_region_validation",
        "ssh_handshake_attempts",
        "pause_before",
        "disk_name",
        "provisioner #3",
    ] {
        assert!(
            joined.contains(expected),
            "no warning about {expected}: {joined}"
        );
    }
    assert_eq!(warnings.len(), 6, "{joined}");
}

#[test]
fn debug_output_of_a_draft_never_shows_the_secret() {
    let (draft, _) = to_draft(ALICLOUD_FULL, &alicloud_env()).unwrap();
    assert!(!format!("{draft:?}").contains("sk-canary"));
}

#[test]
fn a_literal_secret_has_no_env_source() {
    let template = r#"{"variables":{"sk":"{{env `OTHER`}}-x"},"builders":[{"type":"alicloud-ecs",
        "access_key":"ak","secret_key":"{{user `sk`}}","region":"r","source_image":"img",
        "instance_type":"t","image_name":"n"}]}"#;
    let (draft, _) = to_draft(template, &options(&[("OTHER", "o")])).unwrap();
    assert_eq!(draft.credentials.access_key_secret.value, "o-x");
    assert_eq!(draft.credentials.access_key_secret.env, None);
    assert_eq!(draft.credentials.access_key_id.env, None);
}

fn minimal_alicloud(extra: &str) -> String {
    format!(
        r#"{{"builders":[{{"type":"alicloud-ecs","access_key":"a","secret_key":"s","region":"r",
        "source_image":"img","instance_type":"t","image_name":"n"{extra}}}]}}"#
    )
}

#[test]
fn unknown_builder_type_is_an_error_naming_it() {
    let err = error_of(r#"{"builders":[{"type":"amazon-ebs"}]}"#, &options(&[]));
    assert!(matches!(&err, PackerError::UnknownBuilderType { kind } if kind == "amazon-ebs"));
    assert!(err.to_string().contains("`amazon-ebs`"));
}

#[test]
fn unsupported_builder_options_are_errors_naming_option_and_builder() {
    for (extra, option) in [
        (r#","ram_role_name":"x""#, "ram_role_name"),
        (
            r#","image_disk_mappings":[{"disk_size":20}]"#,
            "image_disk_mappings",
        ),
        (r#","vpc_id":"vpc-1""#, "vpc_id"),
        (
            r#","system_disk_mapping":{"disk_encrypted":true}"#,
            "disk_encrypted",
        ),
        (r#","communicator":"winrm""#, "communicator"),
    ] {
        let err = error_of(&minimal_alicloud(extra), &options(&[]));
        let text = err.to_string();
        assert!(
            text.contains(option) && text.contains("alicloud-ecs"),
            "{option}: {text}"
        );
    }
    let err = error_of(
        r#"{"builders":[{"type":"aliyun","ssh_username":"u"}]}"#,
        &seed_env(),
    );
    assert!(
        err.to_string()
            .contains("`ssh_username` in builder `aliyun`"),
        "{err}"
    );
}

#[test]
fn unsupported_provisioners_and_post_processors_are_errors_naming_them() {
    let template = minimal_alicloud("").replace(
        r#""builders""#,
        r#""provisioners":[{"type":"shell","inline":["x"]},{"type":"ansible"}],"builders""#,
    );
    let err = error_of(&template, &options(&[]));
    assert!(
        matches!(&err, PackerError::UnsupportedProvisioner { index: 1, kind } if kind == "ansible")
    );
    let template = minimal_alicloud("").replace(
        r#""builders""#,
        r#""provisioners":[{"type":"shell","inline":["x"],"inline_shebang":"/bin/bash"}],"builders""#,
    );
    let text = error_of(&template, &options(&[])).to_string();
    assert!(
        text.contains("inline_shebang") && text.contains("provisioner #0"),
        "{text}"
    );
    let template =
        minimal_alicloud("").replace(r#""builders""#, r#""post-processors":[],"builders""#);
    assert!(matches!(
        error_of(&template, &options(&[])),
        PackerError::PostProcessorsUnsupported
    ));
}

#[test]
fn bad_json_syntax_reports_line_and_column() {
    let err = error_of(
        "{\n  \"builders\": [\n    {\"type\": \"aliyun\",}\n  ]\n}",
        &options(&[]),
    );
    match err {
        PackerError::Syntax { line, .. } => assert_eq!(line, 3),
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn env_outside_variables_is_an_error_naming_the_location() {
    let template = minimal_alicloud(r#","image_description":"{{env `HOME`}}""#);
    let text = error_of(&template, &options(&[])).to_string();
    assert!(
        text.contains("builders[0].image_description")
            && text.contains("only allowed in `variables`"),
        "{text}"
    );
}

#[test]
fn unknown_template_function_is_an_error_naming_it() {
    let template = minimal_alicloud(r#","image_description":"{{ build_name }}""#);
    let text = error_of(&template, &options(&[])).to_string();
    assert!(text.contains("`build_name`"), "{text}");
}

#[test]
fn missing_required_variable_is_an_error_naming_it() {
    let err = error_of(ALICLOUD_FULL, &options(&[]));
    assert!(matches!(&err, PackerError::RequiredVariableUnset { name } if name == "app_version"));
}

#[test]
fn var_and_var_file_override_defaults_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("vars.json");
    std::fs::write(
        &file,
        r#"{"app_version":"from-file","region":"cn-beijing"}"#,
    )
    .unwrap();
    let mut opts = alicloud_env();
    opts.vars = vec![parse_var_arg("app_version=from-flag").unwrap()];
    opts.var_files = vec![file];
    let (draft, _) = to_draft(ALICLOUD_FULL, &opts).unwrap();
    assert_eq!(draft.region, "cn-beijing");
    assert_eq!(draft.image.version.as_deref(), Some("from-flag"));
    assert_eq!(
        draft.image.name,
        format!("web-cn-beijing-from-flag-{NOW_UNIX}")
    );
}

#[test]
fn overriding_an_env_variable_drops_its_env_source() {
    let mut opts = alicloud_env();
    opts.vars.push(("secret_key".into(), "given".into()));
    let (draft, _) = to_draft(ALICLOUD_FULL, &opts).unwrap();
    assert_eq!(draft.credentials.access_key_secret.value, "given");
    assert_eq!(draft.credentials.access_key_secret.env, None);
}

#[test]
fn undeclared_override_and_malformed_var_are_errors() {
    let mut opts = alicloud_env();
    opts.vars.push(("typo".into(), "x".into()));
    let err = error_of(ALICLOUD_FULL, &opts);
    assert!(matches!(&err, PackerError::UndeclaredVariable { name, .. } if name == "typo"));
    assert!(matches!(
        parse_var_arg("novalue"),
        Err(PackerError::BadVarArgument { .. })
    ));
}

#[test]
fn variable_cycles_are_reported() {
    let template = minimal_alicloud("").replace(
        r#""builders""#,
        r#""variables":{"a":"{{user `b`}}","b":"{{user `a`}}"},"builders""#,
    );
    assert!(matches!(
        error_of(&template, &options(&[])),
        PackerError::VariableCycle { .. }
    ));
}

#[test]
fn execute_command_must_run_the_script() {
    let template = minimal_alicloud("").replace(
        r#""builders""#,
        r#""provisioners":[{"type":"shell","inline":["x"],"execute_command":"sudo {{.Vars}} true"}],"builders""#,
    );
    let text = error_of(&template, &options(&[])).to_string();
    assert!(
        text.contains("execute_command") && text.contains(".Path"),
        "{text}"
    );
}

#[test]
fn content_detection_recognises_templates_only() {
    assert!(is_packer_template(SEED));
    assert!(is_packer_template(ALICLOUD_FULL));
    assert!(!is_packer_template("region: cn-shanghai\nbuilders: []\n"));
    assert!(!is_packer_template(r#"{"region":"cn-shanghai"}"#));
    assert!(!is_packer_template("{ not json"));
}

#[test]
fn written_credentials_reference_env_vars_and_never_the_secret() {
    use bakerd::spec::packer::draft::{WrittenCredential, DEFAULT_SECRET_ENV};
    let converted = bakerd::spec::packer::convert(SEED, &seed_env()).unwrap();
    let creds = &converted.draft.credentials;
    assert_eq!(
        creds.written_id(),
        WrittenCredential::Env("ALIYUN_ACCESS_KEY_ID".into())
    );
    assert_eq!(
        creds.written_secret(),
        (
            WrittenCredential::Env("ALIYUN_ACCESS_KEY_SECRET".into()),
            None
        )
    );
    let literal = minimal_alicloud("");
    let draft = bakerd::spec::packer::convert(&literal, &options(&[]))
        .unwrap()
        .draft;
    assert_eq!(
        draft.credentials.written_id(),
        WrittenCredential::Literal("a".into())
    );
    let (written, warning) = draft.credentials.written_secret();
    assert_eq!(written, WrittenCredential::Env(DEFAULT_SECRET_ENV.into()));
    assert!(warning.unwrap().contains(DEFAULT_SECRET_ENV));
}

fn with_provisioners(provisioners: &str, extra: &str) -> String {
    minimal_alicloud(extra).replace(
        r#""builders""#,
        &format!(r#""provisioners":{provisioners},"builders""#),
    )
}

#[test]
fn provisioner_override_and_except_follow_the_builder_name() {
    let template = with_provisioners(
        r#"[{"type":"shell","inline":["a"],"override":{"alicloud-ecs":{"inline":["b"]}}},
            {"type":"shell","inline":["c"],"except":["alicloud-ecs"]}]"#,
        "",
    );
    let converted = bakerd::spec::packer::convert(&template, &options(&[])).unwrap();
    assert_eq!(converted.draft.provisioners.len(), 1);
    assert!(matches!(
        &converted.draft.provisioners[0],
        Provisioner::Shell { source: ShellSource::Inline(lines), .. } if lines == &["b"]
    ));
    assert!(
        converted.warnings[0].contains("provisioner #1"),
        "{:?}",
        converted.warnings
    );
}

#[test]
fn conflicting_or_impossible_options_are_errors() {
    let cases = [
        with_provisioners("[]", r#","image_family":"fam""#),
        with_provisioners(
            r#"[{"type":"shell","inline":["x"]}]"#,
            r#","communicator":"none""#,
        ),
        with_provisioners(r#"[{"type":"shell","inline":["x"],"script":"s.sh"}]"#, ""),
        with_provisioners(
            r#"[{"type":"file","source":"a","destination":"b","direction":"download"}]"#,
            "",
        ),
        with_provisioners("[]", r#","ssh_timeout":"forever""#),
        with_provisioners("[]", r#","ssh_port":70000"#),
    ];
    for template in cases {
        let err = error_of(&template, &options(&[]));
        assert!(
            matches!(
                err,
                PackerError::InvalidOption { .. } | PackerError::UnsupportedOption { .. }
            ),
            "{err}"
        );
    }
}
