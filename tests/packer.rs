//! Packer template conversion: the seed's template byte for byte, an alicloud-ecs template using most
//! options, and the errors for everything bakerd does not support.

use bakerd::spec::packer::draft::DEFAULT_SECRET_ENV;
use bakerd::spec::packer::{
    convert, is_packer_template, parse_var_arg, Converted, Options, PackerError,
};
use bakerd::spec::{
    Credentials, Direction, FileProvisioner, ImageSpec, InstanceSpec, OnFailure, Provisioner,
    Secret, SecretSource, ShellProvisioner, SourceImage, Spec, SshAddress, SshSpec, SystemDisk,
    Timeouts,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
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
        base_dir: fixtures_dir(),
        only: Vec::new(),
    }
}

/// The fixtures' directory, where the alicloud template's scripts and uploads live.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packer")
}

fn converted(text: &str, opts: &Options) -> Converted {
    convert(text, opts).unwrap_or_else(|e| panic!("conversion failed: {e}"))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
    match convert(text, opts) {
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
fn seed_template_converts_to_the_expected_spec() {
    assert!(is_packer_template(SEED));
    let Converted { spec, warnings, .. } = converted(SEED, &seed_env());
    let expected = Spec {
        region: "cn-shanghai".into(),
        endpoint: None,
        vpc_endpoint: None,
        credentials: Credentials::AccessKey {
            id: "testid".into(),
            secret: SecretSource::Env("ALIYUN_ACCESS_KEY_SECRET".into()),
            security_token_env: None,
        },
        signature: None,
        communicator: bakerd::spec::Communicator::Ssh,
        verify: None,
        source_image: SourceImage::Id("ubuntu1404_64_40G_cloudinit_20160427.raw".into()),
        instance: InstanceSpec {
            instance_type: "ecs.s2.large".into(),
            zone: None,
            vswitch_id: None,
            vpc_cidr: None,
            vswitch_cidr: None,
            security_group_id: Some("sg-seed".into()),
            system_disk: SystemDisk::default(),
            internet_max_bandwidth_out: None,
            internet_charge_type: None,
            security_enhancement_strategy: None,
            user_data: None,
            tags: BTreeMap::new(),
            data_disks: Vec::new(),
        },
        ssh: SshSpec {
            username: "root".into(),
            port: 22,
            address: SshAddress::Private,
            timeout: Duration::from_secs(300),
        },
        provisioners: vec![Provisioner::Shell(ShellProvisioner {
            inline: vec!["echo ubuntu".into()],
            script: None,
            scripts: vec![],
            environment: BTreeMap::new(),
            expect_disconnect: false,
            execute_command: None,
        })],
        image: ImageSpec {
            name: format!("packer-ubuntu-{NOW_UNIX}"),
            description: Some(format!("ubuntu image created by packer at {NOW_UNIX}")),
            family: None,
            version: None,
            tags: BTreeMap::new(),
            force: false,
            copy_regions: vec![],
            share_accounts: vec![],
            data_disks: Default::default(),
        },
        stop_before_snapshot: true,
        on_failure: OnFailure::Cleanup,
        timeouts: Timeouts::default(),
        base_dir: fixtures_dir(),
    };
    assert_eq!(spec, expected);
    assert!(warnings.is_empty(), "{warnings:?}");
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

fn shell(inline: &[&str], scripts: &[&str]) -> ShellProvisioner {
    ShellProvisioner {
        inline: inline.iter().map(|l| l.to_string()).collect(),
        script: None,
        scripts: scripts.iter().map(|l| l.to_string()).collect(),
        environment: BTreeMap::new(),
        expect_disconnect: false,
        execute_command: None,
    }
}

#[test]
fn alicloud_template_using_most_options_converts_field_by_field() {
    let Converted {
        spec: s, warnings, ..
    } = converted(ALICLOUD_FULL, &alicloud_env());
    assert_eq!(s.region, "cn-hangzhou");
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:8086"));
    assert_eq!(
        s.credentials,
        Credentials::AccessKey {
            id: "ak".into(),
            secret: SecretSource::Env("ALICLOUD_SECRET_KEY".into()),
            security_token_env: None,
        }
    );
    assert_eq!(s.signature, None);
    assert_eq!(
        s.source_image,
        SourceImage::Family("acs:ubuntu_22_04_x64".into())
    );
    let expected_instance = InstanceSpec {
        instance_type: "ecs.g6.large".into(),
        zone: Some("cn-hangzhou-h".into()),
        vswitch_id: Some("vsw-456".into()),
        vpc_cidr: None,
        vswitch_cidr: None,
        security_group_id: Some("sg-789".into()),
        system_disk: SystemDisk {
            category: Some("cloud_essd".into()),
            size_gb: Some(60),
        },
        internet_max_bandwidth_out: Some(10),
        internet_charge_type: None,
        security_enhancement_strategy: None,
        user_data: Some("#!/bin/sh\necho hi".into()),
        tags: map(&[("purpose", "build")]),
        data_disks: Vec::new(),
    };
    assert_eq!(s.instance, expected_instance);
    let expected_ssh = SshSpec {
        username: "ubuntu".into(),
        port: 2222,
        address: SshAddress::Eip,
        timeout: Duration::from_secs(600),
    };
    assert_eq!(s.ssh, expected_ssh);
    let expected_image = ImageSpec {
        name: format!("web-cn-hangzhou-1.2.3-{NOW_UNIX}"),
        description: Some("web built 2024-03-05".into()),
        family: Some("web".into()),
        version: Some("1.2.3".into()),
        tags: map(&[("team", "web"), ("version", "1.2.3")]),
        force: true,
        copy_regions: vec!["cn-beijing".into(), "cn-shanghai".into()],
        share_accounts: vec!["1234567890".into()],
        data_disks: Default::default(),
    };
    assert_eq!(s.image, expected_image);
    assert!(s.stop_before_snapshot);
    assert_eq!(s.on_failure, OnFailure::Cleanup);
    assert_eq!(s.timeouts, Timeouts::default());
    assert_eq!(s.base_dir, fixtures_dir());
    let first = ShellProvisioner {
        environment: map(&[("APP", "web"), ("EQ", "a=b")]),
        expect_disconnect: true,
        execute_command: Some("echo 'packer' | sudo -S sh -c '{{vars}} {{path}}'".into()),
        ..shell(&["echo 1.2.3 > /etc/app-version"], &[])
    };
    assert_eq!(
        s.provisioners,
        vec![
            Provisioner::Shell(first),
            Provisioner::File(FileProvisioner {
                source: "files/app.conf".into(),
                destination: "/etc/app.conf".into(),
                direction: Direction::Upload,
            }),
            Provisioner::Shell(shell(&[], &["scripts/a.sh", "scripts/b.sh"])),
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
fn converted_spec_round_trips_through_yaml_and_hashes() {
    for (text, opts) in [(SEED, seed_env()), (ALICLOUD_FULL, alicloud_env())] {
        let spec = converted(text, &opts).spec;
        let again = Spec::from_yaml_str(&spec.to_yaml(), fixtures_dir()).unwrap();
        assert_eq!(again, spec);
        assert_eq!(again.hash().unwrap(), spec.hash().unwrap());
    }
}

#[test]
fn script_paths_resolve_against_the_template_directory() {
    let spec = converted(ALICLOUD_FULL, &alicloud_env()).spec;
    let files: Vec<PathBuf> = spec
        .referenced_files()
        .into_iter()
        .map(|f| f.local)
        .collect();
    assert_eq!(
        files,
        vec![
            fixtures_dir().join("files/app.conf"),
            fixtures_dir().join("scripts/a.sh"),
            fixtures_dir().join("scripts/b.sh"),
        ]
    );
    let mut elsewhere = alicloud_env();
    elsewhere.base_dir = fixtures_dir().join("files");
    let text = error_of(ALICLOUD_FULL, &elsewhere).to_string();
    assert!(
        text.contains("does not validate")
            && text.contains("`provisioners[1].file.source`")
            && text.contains("files/app.conf")
            && !text.contains("<spec>"),
        "{text}"
    );
}

#[test]
fn neither_public_nor_private_ip_warns_and_uses_the_private_address() {
    let Converted { spec, warnings, .. } = converted(&minimal_alicloud(""), &options(&[]));
    assert_eq!(spec.ssh.address, SshAddress::Private);
    assert!(
        warnings.iter().any(|w| w.contains("ssh_private_ip")),
        "{warnings:?}"
    );
}

#[test]
fn associate_public_ip_address_becomes_an_eip_and_ssh_password_warns_that_bakerd_uses_its_key() {
    let extra = r#","associate_public_ip_address":true,"ssh_password":"Pw-canary-123""#;
    let result = converted(&minimal_alicloud(extra), &options(&[]));
    assert_eq!(result.spec.ssh.address, SshAddress::Eip);
    let warning = result
        .warnings
        .iter()
        .find(|w| w.contains("ssh_password"))
        .unwrap_or_else(|| panic!("no ssh_password warning: {:?}", result.warnings));
    assert!(warning.contains("key pair"), "{warning}");
    assert!(!format!("{result:?}").contains("Pw-canary-123"));
}

#[test]
fn debug_output_of_a_conversion_never_shows_the_secret() {
    let mut opts = alicloud_env();
    opts.vars.push(("secret_key".into(), "sk-canary".into()));
    let result = converted(ALICLOUD_FULL, &opts);
    assert!(!format!("{result:?}").contains("sk-canary"));
}

#[test]
fn a_literal_secret_has_no_env_source() {
    let template = r#"{"variables":{"sk":"{{env `OTHER`}}-x"},"builders":[{"type":"alicloud-ecs",
        "access_key":"ak","secret_key":"{{user `sk`}}","region":"r","source_image":"img",
        "instance_type":"t","image_name":"img-n"}]}"#;
    let spec = converted(template, &options(&[("OTHER", "o")])).spec;
    assert_eq!(
        spec.credentials,
        Credentials::AccessKey {
            id: "ak".into(),
            secret: SecretSource::Inline(Secret::new("o-x")),
            security_token_env: None,
        }
    );
}

fn minimal_alicloud(extra: &str) -> String {
    format!(
        r#"{{"builders":[{{"type":"alicloud-ecs","access_key":"a","secret_key":"s","region":"r",
        "source_image":"img","instance_type":"t","image_name":"img-n"{extra}}}]}}"#
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
            r#","image_disk_mappings":[{"disk_size":20,"disk_encrypted":true}]"#,
            "disk_encrypted",
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
        r#"{"app_version":"from-file","region":"cn-qingdao"}"#,
    )
    .unwrap();
    let mut opts = alicloud_env();
    opts.vars = vec![parse_var_arg("app_version=from-flag").unwrap()];
    opts.var_files = vec![file];
    let spec = converted(ALICLOUD_FULL, &opts).spec;
    assert_eq!(spec.region, "cn-qingdao");
    assert_eq!(spec.image.version.as_deref(), Some("from-flag"));
    assert_eq!(
        spec.image.name,
        format!("web-cn-qingdao-from-flag-{NOW_UNIX}")
    );
}

#[test]
fn overriding_an_env_variable_drops_its_env_source() {
    let mut opts = alicloud_env();
    opts.vars.push(("secret_key".into(), "given".into()));
    let spec = converted(ALICLOUD_FULL, &opts).spec;
    let Credentials::AccessKey { secret, .. } = spec.credentials else {
        panic!("access key credentials expected")
    };
    assert_eq!(secret, SecretSource::Inline(Secret::new("given")));
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
fn written_spec_references_env_vars_and_never_the_secret() {
    let (written, warnings) = converted(SEED, &seed_env()).written();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        written.credentials,
        Credentials::AccessKey {
            id: "testid".into(),
            secret: SecretSource::Env("ALIYUN_ACCESS_KEY_SECRET".into()),
            security_token_env: None,
        }
    );
    let literal =
        minimal_alicloud(r#","secret_key":"sk-canary""#).replace(r#""secret_key":"s","#, "");
    let result = converted(&literal, &options(&[]));
    let (written, warnings) = result.written();
    assert_eq!(
        written.credentials,
        Credentials::AccessKey {
            id: "a".into(),
            secret: SecretSource::Env(DEFAULT_SECRET_ENV.into()),
            security_token_env: None,
        }
    );
    assert!(!written.to_yaml().contains("sk-canary"));
    assert!(
        warnings.last().unwrap().contains(DEFAULT_SECRET_ENV),
        "{warnings:?}"
    );
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
    let result = converted(&template, &options(&[]));
    assert_eq!(
        result.spec.provisioners,
        vec![Provisioner::Shell(shell(&["b"], &[]))]
    );
    assert!(
        result.warnings[0].contains("provisioner #1"),
        "{:?}",
        result.warnings
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
