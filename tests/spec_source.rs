//! `SpecSource::load` (YAML spec or Packer template, by content) and `bakerd convert`, run as the real
//! binary.

use bakerd::spec::packer::{convert, Options};
use bakerd::spec::{
    Credentials, SecretSource, SourceError, SourceKind, Spec, SpecSource, MAX_SPEC_BYTES,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

const SEED: &str = include_str!("fixtures/packer/seed.json");
const CANARY: &str = "CANARY-sk-41d9";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    crate_dir().join("tests/fixtures/packer")
}

fn seed_env() -> [(&'static str, &'static str); 3] {
    [
        ("ALIYUN_ACCESS_KEY_ID", "testid"),
        ("ALIYUN_ACCESS_KEY_SECRET", "testsecret"),
        ("ALIYUN_SECURITY_GROUP_ID", "sg-seed"),
    ]
}

/// Runs `bakerd convert` with exactly `env` (plus PATH) as its environment.
fn bakerd_convert(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bakerd"));
    command.arg("convert").args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().copied());
    command.output().expect("run bakerd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The number in `prefix<digits>`, if `text` has exactly that shape.
fn stamp(text: &str, prefix: &str) -> i64 {
    let digits = text
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{text}` does not start with `{prefix}`"));
    digits
        .parse()
        .unwrap_or_else(|_| panic!("`{digits}` is not a timestamp"))
}

#[test]
fn convert_prints_the_seed_template_as_a_spec_equal_to_its_conversion() {
    let template = fixtures_dir().join("seed.json");
    let before = unix_now();
    let output = bakerd_convert(&[template.to_str().unwrap()], &seed_env());
    let after = unix_now();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "no warnings expected: {stderr}");
    assert!(!stdout.contains("testsecret"), "{stdout}");

    let printed = Spec::from_yaml_str(&stdout, fixtures_dir()).expect("output is a valid spec");
    let env = seed_env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let now = time::OffsetDateTime::from_unix_timestamp(before).unwrap();
    let options = Options {
        vars: vec![],
        var_files: vec![],
        env,
        now,
        base_dir: fixtures_dir(),
        only: vec![],
    };
    let mut expected = convert(SEED, &options).unwrap().spec;
    // The binary ran at its own time: its {{timestamp}} lies within the run; everything else is equal.
    let at = stamp(&printed.image.name, "packer-ubuntu-");
    assert!(
        (before..=after).contains(&at),
        "{at} not in {before}..={after}"
    );
    expected.image.name = format!("packer-ubuntu-{at}");
    expected.image.description = Some(format!("ubuntu image created by packer at {at}"));
    assert_eq!(printed, expected);
}

fn write_template(dir: &Path, secret: &str) -> PathBuf {
    let template = format!(
        r#"{{"variables":{{"sk":"{secret}"}},
        "builders":[{{"type":"alicloud-ecs","access_key":"ak","secret_key":"{{{{user `sk`}}}}",
        "region":"cn-hangzhou","source_image":"img-1","instance_type":"ecs.g7.large",
        "image_name":"web-{{{{timestamp}}}}","ssh_private_ip":true}}],
        "provisioners":[{{"type":"shell","script":"setup.sh"}}]}}"#
    );
    std::fs::write(dir.join("setup.sh"), "#!/bin/sh\necho setup\n").unwrap();
    let path = dir.join("template.json");
    std::fs::write(&path, template).unwrap();
    path
}

#[test]
fn convert_writes_a_secret_given_by_var_as_an_env_reference_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let template = write_template(dir.path(), "placeholder");
    let var = format!("sk={CANARY}");
    let output = bakerd_convert(&[template.to_str().unwrap(), "--var", &var], &[]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY));
    assert!(
        stderr.contains("warning:") && stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        "{stderr}"
    );
    let printed = Spec::from_yaml_str(&stdout, dir.path()).unwrap();
    assert_eq!(
        printed.credentials,
        Credentials::AccessKey {
            id: "ak".into(),
            secret: SecretSource::Env("ALIBABA_CLOUD_ACCESS_KEY_SECRET".into()),
            security_token_env: None,
        }
    );
    assert_eq!(printed.provisioners.len(), 1);
}

#[test]
fn convert_exits_2_with_the_error_on_stderr_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("ebs.json");
    std::fs::write(&unknown, r#"{"builders":[{"type":"amazon-ebs"}]}"#).unwrap();
    let yaml = crate_dir().join("specs/demo.yaml");
    let missing = dir.path().join("missing.json");
    let template = write_template(dir.path(), "s");
    let cases: [(Vec<&str>, &str); 4] = [
        (vec![unknown.to_str().unwrap()], "`amazon-ebs`"),
        (vec![yaml.to_str().unwrap()], "not a Packer template"),
        (vec![missing.to_str().unwrap()], "cannot read"),
        (
            vec![template.to_str().unwrap(), "--var", "typo=1"],
            "`typo`",
        ),
    ];
    for (args, expected) in cases {
        let output = bakerd_convert(&args, &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn load_reads_a_yaml_spec_with_its_warnings() {
    let source = SpecSource::load(&crate_dir().join("specs/demo.yaml"), &[], &[], &[]).unwrap();
    assert_eq!(source.kind, SourceKind::Yaml);
    assert_eq!(
        source.spec,
        Spec::load(crate_dir().join("specs/demo.yaml")).unwrap()
    );
    assert!(
        source
            .warnings
            .iter()
            .any(|w| w.contains("credentials.access_key_secret")),
        "{:?}",
        source.warnings
    );
}

#[test]
fn load_converts_a_packer_template_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let template = write_template(dir.path(), CANARY);
    let source = SpecSource::load(&template, &[], &[], &[]).unwrap();
    assert_eq!(source.kind, SourceKind::PackerTemplate);
    assert_eq!(source.spec.base_dir, dir.path());
    assert_eq!(
        source.spec.referenced_files()[0].local,
        dir.path().join("setup.sh")
    );
    assert!(
        source
            .warnings
            .iter()
            .any(|w| w.contains("access_key_secret")),
        "the inline-secret warning of Spec::warnings: {:?}",
        source.warnings
    );
    let frozen = serde_json::to_string(&source.spec.frozen()).unwrap();
    assert!(!frozen.contains(CANARY));
    let overridden = SpecSource::load(&template, &["sk=other".into()], &[], &[]).unwrap();
    let Credentials::AccessKey { secret, .. } = overridden.spec.credentials else {
        panic!("access key credentials expected");
    };
    assert_eq!(
        secret,
        SecretSource::Inline(bakerd::spec::Secret::new("other"))
    );
}

#[test]
fn load_refuses_a_variable_the_yaml_spec_does_not_declare_naming_it_without_its_value() {
    let yaml = crate_dir().join("specs/demo.yaml");
    let vars = vec!["region=SECRET-VALUE".to_string()];
    let err = SpecSource::load(&yaml, &vars, &[], &[]).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SourceError::Vars { .. }));
    assert!(message.contains("--var region"), "{message}");
    assert!(!message.contains("SECRET-VALUE"), "{message}");
}

#[test]
fn load_refuses_oversized_files_and_reports_located_yaml_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "#".repeat(MAX_SPEC_BYTES + 1)).unwrap();
    let err = SpecSource::load(&big, &[], &[], &[]).unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "region: cn-hangzhou\nregoin: x\n").unwrap();
    let message = SpecSource::load(&bad, &[], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("bad.yaml:2:1") && message.contains("regoin"),
        "{message}"
    );
}
