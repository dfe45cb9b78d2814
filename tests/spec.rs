//! The spec: every field parses, defaults, located errors, hostile YAML, hashing, the shipped examples.

use bakerd::spec::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MINIMAL: &str = "\
region: cn-hangzhou
source_image:
  id: img-1
instance:
  type: ecs.s2.large
image:
  name: test-image
";

/// A temporary spec directory with `scripts/a.sh`, `scripts/b.sh`, `files/motd`, `files/dir/x`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("scripts")).unwrap();
    fs::create_dir_all(dir.path().join("files/dir")).unwrap();
    fs::write(dir.path().join("scripts/a.sh"), "echo a\n").unwrap();
    fs::write(dir.path().join("scripts/b.sh"), "echo b\n").unwrap();
    fs::write(dir.path().join("files/motd"), "hi\n").unwrap();
    fs::write(dir.path().join("files/dir/x"), "x\n").unwrap();
    dir
}

fn parse_in(dir: &Path, text: &str) -> Result<Spec, SpecError> {
    Spec::from_yaml_str(text, dir)
}

fn error_of(text: &str) -> SpecError {
    let dir = workspace();
    parse_in(dir.path(), text).expect_err("spec should be refused")
}

/// Asserts the error names `path` at `line`, and returns its message.
fn assert_located(error: &SpecError, path: &str, line: usize) -> String {
    let message = error.to_string();
    assert_eq!(error.field_path(), Some(path), "path in: {message}");
    assert_eq!(
        error.location().map(|l| l.line),
        Some(line),
        "line in: {message}"
    );
    assert!(
        message.starts_with(&format!("<spec>:{line}:")),
        "file:line prefix in: {message}"
    );
    message
}

const FULL: &str = r##"
region: cn-hangzhou
endpoint: http://127.0.0.1:8086
credentials:
  access_key_id: testid
  access_key_secret_env: SIM_SECRET
  security_token_env: SIM_TOKEN
signature: v3
source_image:
  family: acs:ubuntu_22_04_x64
instance:
  type: ecs.g7.large
  zone: cn-hangzhou-i
  vpc_cidr: 10.0.0.0/8
  vswitch_cidr: 10.1.0.0/16
  security_group_id: sg-1
  system_disk:
    category: cloud_essd
    size_gb: 40
  internet_max_bandwidth_out: 5
  user_data: "#cloud-config\n"
  tags: {team: platform}
ssh:
  username: ubuntu
  port: 2222
  address: public
  timeout: 1h30m
provisioners:
  - shell:
      inline: [echo one, echo two]
      environment: {A: "1", B_2: two}
      expect_disconnect: true
  - shell:
      script: scripts/a.sh
      execute_command: "sudo -E sh {{path}}"
  - shell:
      scripts: [scripts/a.sh, scripts/b.sh]
  - file:
      source: files/motd
      destination: /etc/motd
  - file:
      source: files/dir
      destination: /opt/dir
      direction: upload
image:
  name: web-{{timestamp}}
  description: built at {{timestamp}}
  family: web-base
  version: "1.2"
  tags: {os: ubuntu}
  force: true
  copy_regions: [cn-shanghai, cn-beijing]
  share_accounts: ["123456"]
stop_before_snapshot: false
on_failure: keep
timeouts:
  instance: 7m
  snapshot: 2h
  image: 3h
"##;

#[test]
fn every_field_parses_into_its_typed_value() {
    let dir = workspace();
    let spec = parse_in(dir.path(), FULL).unwrap();
    assert_eq!(spec.region, "cn-hangzhou");
    assert_eq!(spec.endpoint.as_deref(), Some("http://127.0.0.1:8086"));
    assert_eq!(
        spec.credentials,
        Credentials::AccessKey {
            id: "testid".into(),
            secret: SecretSource::Env("SIM_SECRET".into()),
            security_token_env: Some("SIM_TOKEN".into()),
        }
    );
    assert_eq!(spec.signature, Some(SignatureVersion::V3));
    assert_eq!(
        spec.source_image,
        SourceImage::Family("acs:ubuntu_22_04_x64".into())
    );
    let instance = &spec.instance;
    assert_eq!(instance.instance_type, "ecs.g7.large");
    assert_eq!(instance.zone.as_deref(), Some("cn-hangzhou-i"));
    assert_eq!(
        (instance.vpc_cidr(), instance.vswitch_cidr()),
        ("10.0.0.0/8", "10.1.0.0/16")
    );
    assert_eq!(instance.security_group_id.as_deref(), Some("sg-1"));
    assert_eq!(
        instance.system_disk,
        SystemDisk {
            category: Some("cloud_essd".into()),
            size_gb: Some(40)
        }
    );
    assert_eq!(spec.internet_max_bandwidth_out(), 5);
    assert_eq!(instance.user_data.as_deref(), Some("#cloud-config\n"));
    assert_eq!(instance.tags["team"], "platform");
    assert_eq!(spec.ssh.username, "ubuntu");
    assert_eq!(spec.ssh.port, 2222);
    assert_eq!(spec.ssh.address, SshAddress::Public);
    assert_eq!(spec.ssh.timeout, Duration::from_secs(5400));
    assert_eq!(spec.image.family.as_deref(), Some("web-base"));
    assert_eq!(spec.image.version.as_deref(), Some("1.2"));
    assert_eq!(spec.image.tags["os"], "ubuntu");
    assert!(spec.image.force);
    assert_eq!(spec.image.copy_regions, ["cn-shanghai", "cn-beijing"]);
    assert_eq!(spec.image.share_accounts, ["123456"]);
    assert!(!spec.stop_before_snapshot);
    assert_eq!(spec.on_failure, OnFailure::Keep);
    assert_eq!(spec.timeouts.instance, Duration::from_secs(420));
    assert_eq!(spec.timeouts.snapshot, Duration::from_secs(7200));
    assert_eq!(spec.timeouts.image, Duration::from_secs(10800));
}

#[test]
fn provisioners_parse_with_their_sources_and_options() {
    let dir = workspace();
    let spec = parse_in(dir.path(), FULL).unwrap();
    let Provisioner::Shell(inline) = &spec.provisioners[0] else {
        panic!("shell expected")
    };
    assert_eq!(
        inline.source(),
        ShellSource::Inline(&["echo one".to_string(), "echo two".to_string()])
    );
    assert!(inline.expect_disconnect);
    assert_eq!(inline.environment["B_2"], "two");
    let Provisioner::Shell(script) = &spec.provisioners[1] else {
        panic!("shell expected")
    };
    assert_eq!(
        script.source(),
        ShellSource::Scripts(&["scripts/a.sh".to_string()])
    );
    assert_eq!(script.command_for("/tmp/s.sh"), "sudo -E sh '/tmp/s.sh'");
    let Provisioner::Shell(scripts) = &spec.provisioners[2] else {
        panic!("shell expected")
    };
    assert_eq!(
        scripts.source(),
        ShellSource::Scripts(&["scripts/a.sh".to_string(), "scripts/b.sh".to_string()])
    );
    let Provisioner::File(file) = &spec.provisioners[4] else {
        panic!("file expected")
    };
    assert_eq!(
        (file.source.as_str(), file.destination.as_str()),
        ("files/dir", "/opt/dir")
    );
    assert_eq!(file.direction, Direction::Upload);
    let files = spec.referenced_files();
    let fields: Vec<&str> = files.iter().map(|f| f.field_path.as_str()).collect();
    assert_eq!(
        fields,
        [
            "provisioners[1].shell.script",
            "provisioners[2].shell.scripts[0]",
            "provisioners[2].shell.scripts[1]",
            "provisioners[3].file.source",
            "provisioners[4].file.source"
        ]
    );
    assert_eq!(files[4].local, dir.path().join("files/dir"));
    assert_eq!(files[4].usage, FileUse::Upload);
}

#[test]
fn omitted_fields_get_the_documented_defaults() {
    let dir = workspace();
    let spec = parse_in(dir.path(), MINIMAL).unwrap();
    assert_eq!(spec.endpoint, None);
    assert_eq!(spec.credentials, Credentials::Default);
    assert_eq!(spec.signature, None);
    assert_eq!(spec.source_image, SourceImage::Id("img-1".into()));
    assert_eq!(spec.instance.zone, None);
    assert_eq!(spec.instance.vswitch_id, None);
    assert_eq!(spec.instance.security_group_id, None);
    assert_eq!(spec.instance.vpc_cidr(), DEFAULT_VPC_CIDR);
    assert_eq!(spec.instance.vswitch_cidr(), DEFAULT_VSWITCH_CIDR);
    assert_eq!(spec.instance.system_disk, SystemDisk::default());
    assert_eq!(spec.internet_max_bandwidth_out(), 0);
    assert_eq!(spec.ssh, SshSpec::default());
    assert_eq!(spec.ssh.username, "root");
    assert_eq!(spec.ssh.port, 22);
    assert_eq!(spec.ssh.address, SshAddress::Private);
    assert_eq!(spec.ssh.timeout, Duration::from_secs(300));
    assert!(spec.provisioners.is_empty());
    assert!(!spec.image.force);
    assert!(spec.stop_before_snapshot);
    assert_eq!(spec.on_failure, OnFailure::Cleanup);
    assert_eq!(spec.timeouts, Timeouts::default());
    assert_eq!(spec.timeouts.snapshot, Duration::from_secs(3600));
    assert!(spec.warnings().is_empty());
}

#[test]
fn public_ssh_without_bandwidth_gets_enough_for_a_public_ip() {
    let dir = workspace();
    let spec = parse_in(dir.path(), &format!("{MINIMAL}ssh:\n  address: public\n")).unwrap();
    assert_eq!(
        spec.internet_max_bandwidth_out(),
        DEFAULT_PUBLIC_BANDWIDTH_MBPS
    );
}

#[test]
fn eip_ssh_gives_the_bandwidth_to_the_eip_and_none_to_the_instance() {
    let dir = workspace();
    let text = format!("{MINIMAL}ssh:\n  address: eip\n");
    let spec = parse_in(dir.path(), &text).unwrap();
    assert_eq!(spec.ssh.address, SshAddress::Eip);
    assert_eq!(spec.internet_max_bandwidth_out(), 0);
    assert_eq!(spec.eip_bandwidth(), DEFAULT_PUBLIC_BANDWIDTH_MBPS);
    let text = text.replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  internet_max_bandwidth_out: 20\n",
    );
    let spec = parse_in(dir.path(), &text).unwrap();
    assert_eq!(
        (spec.internet_max_bandwidth_out(), spec.eip_bandwidth()),
        (0, 20)
    );
}

#[test]
fn eip_ssh_with_verify_or_zero_bandwidth_is_refused_naming_the_field() {
    let verify =
        format!("{MINIMAL}ssh:\n  address: eip\nverify:\n  checks:\n    - file_exists: /etc/x\n");
    let message = error_of(&verify).to_string();
    assert!(
        message.contains("ssh.address") && message.contains("verify"),
        "{message}"
    );
    let zero = format!("{MINIMAL}ssh:\n  address: eip\n").replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  internet_max_bandwidth_out: 0\n",
    );
    let message = error_of(&zero).to_string();
    assert!(
        message.contains("instance.internet_max_bandwidth_out"),
        "{message}"
    );
}

#[test]
fn credential_sources_parse_and_an_inline_secret_warns_without_leaking() {
    let dir = workspace();
    let profile = parse_in(
        dir.path(),
        &format!("{MINIMAL}credentials:\n  profile: work\n"),
    )
    .unwrap();
    assert_eq!(
        profile.credentials,
        Credentials::Profile {
            name: "work".into(),
            config_file: None
        }
    );
    let text =
        format!("{MINIMAL}credentials:\n  access_key_id: id\n  access_key_secret: s3cr3t-value\n");
    let inline = parse_in(dir.path(), &text).unwrap();
    let warnings = inline.warnings();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "credentials.access_key_secret");
    assert!(
        !format!("{inline:?}").contains("s3cr3t-value"),
        "Debug must redact the secret"
    );
    assert!(!warnings[0].to_string().contains("s3cr3t-value"));
}

#[test]
fn the_spec_endpoint_wins_over_the_environment() {
    let dir = workspace();
    let plain = parse_in(dir.path(), MINIMAL).unwrap();
    assert_eq!(plain.effective_endpoint(None), None);
    assert_eq!(
        plain.effective_endpoint(Some("http://env:1")).as_deref(),
        Some("http://env:1")
    );
    let with = parse_in(dir.path(), &format!("{MINIMAL}endpoint: http://spec:2\n")).unwrap();
    assert_eq!(
        with.effective_endpoint(Some("http://env:1")).as_deref(),
        Some("http://spec:2")
    );
}

#[test]
fn timestamp_renders_only_when_a_time_is_given() {
    let dir = workspace();
    let spec = parse_in(dir.path(), FULL).unwrap();
    assert_eq!(spec.image.name, "web-{{timestamp}}");
    assert_eq!(spec.image_name_at(1_718_000_000), "web-1718000000");
    assert_eq!(spec.image_description_at(7).as_deref(), Some("built at 7"));
}

#[test]
fn to_yaml_round_trips_to_an_equal_spec() {
    let dir = workspace();
    for text in [MINIMAL, FULL] {
        let spec = parse_in(dir.path(), text).unwrap();
        let yaml = spec.to_yaml();
        assert!(!yaml.contains('!'), "no YAML tags in the output:\n{yaml}");
        let again = parse_in(dir.path(), &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(again, spec);
    }
}

// ---------- located errors ----------

#[test]
fn unknown_top_level_field_suggests_the_closest_name() {
    let text =
        "region: cn-hangzhou\nsource_image: {id: x}\ninstnce:\n  type: t\nimage: {name: ab}\n";
    let error = error_of(text);
    let message = assert_located(&error, "instnce", 3);
    assert!(
        message.contains("unknown field `instnce` — did you mean `instance`?"),
        "{message}"
    );
    let SpecError::UnknownField {
        suggestion,
        expected,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(suggestion.as_deref(), Some("instance"));
    assert!(expected.iter().any(|e| e == "region"));
}

#[test]
fn unknown_nested_field_names_its_full_path() {
    let text = MINIMAL.replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  vswtich_id: vsw-1\n",
    );
    let error = error_of(&text);
    let message = assert_located(&error, "instance.vswtich_id", 6);
    assert!(message.contains("did you mean `vswitch_id`?"), "{message}");
}

#[test]
fn unknown_field_inside_a_provisioner_is_located() {
    let text = format!("{MINIMAL}provisioners:\n  - shell:\n      inline: [a]\n  - file:\n      source: files/motd\n      destinaton: /x\n");
    let error = error_of(&text);
    let message = assert_located(&error, "provisioners[1].file.destinaton", 13);
    assert!(message.contains("did you mean `destination`?"), "{message}");
}

#[test]
fn unknown_provisioner_kind_suggests_a_known_one() {
    let text = format!("{MINIMAL}provisioners:\n  - shel:\n      inline: [a]\n");
    let error = error_of(&text);
    let message = assert_located(&error, "provisioners[0].shel", 9);
    assert!(message.contains("did you mean `shell`?"), "{message}");
}

#[test]
fn wrong_type_names_the_path_and_line() {
    let text = format!("{MINIMAL}ssh:\n  port: twenty-two\n");
    let message = assert_located(&error_of(&text), "ssh.port", 9);
    assert!(message.contains("invalid"), "{message}");

    let text = format!("{MINIMAL}provisioners:\n  - shell:\n      inline:\n        - echo a\n        - [not, a, string]\n");
    let message = assert_located(&error_of(&text), "provisioners[0].shell.inline[1]", 12);
    assert!(message.contains("expected a string"), "{message}");
}

#[test]
fn unquoted_nulls_booleans_and_numbers_in_string_fields_are_errors_not_coerced_text() {
    for (written, found) in [
        ("null", "an empty value (null)"),
        ("", "an empty value (null)"),
        ("42", "a number `42`"),
        ("true", "a boolean `true`"),
    ] {
        let text = MINIMAL.replace("type: ecs.s2.large", &format!("type: {written}"));
        let message = assert_located(&error_of(&text), "instance.type", 5);
        assert!(
            message.contains(&format!("expected a string, found {found}")),
            "{message}"
        );
    }
    let text = format!("{MINIMAL}  tags:\n    version: 1.0\n");
    let message = assert_located(&error_of(&text), "image.tags.version", 9);
    assert!(message.contains("quote it (\"1.0\")"), "{message}");
    let quoted = MINIMAL.replace("type: ecs.s2.large", "type: \"42\"");
    assert!(
        Spec::from_yaml_str(&quoted, ".").is_ok(),
        "a quoted number is text"
    );
}

#[test]
fn number_fields_say_what_they_take_in_words_not_rust_type_names() {
    let text = format!("{MINIMAL}ssh:\n  port: \"22\"\n");
    let message = assert_located(&error_of(&text), "ssh.port", 9);
    assert!(
        message.contains("expected a whole number from 0 to 65535"),
        "{message}"
    );
    assert!(!message.contains("u16"), "{message}");
}

#[test]
fn missing_required_field_names_the_section() {
    let text = MINIMAL.replace("  type: ecs.s2.large\n", "  zone: z\n");
    let message = assert_located(&error_of(&text), "instance", 4);
    assert!(
        message.contains("missing required field `type`"),
        "{message}"
    );

    let message = error_of("region: cn-hangzhou\n").to_string();
    assert!(
        message.contains("missing required field `source_image`"),
        "{message}"
    );
    assert!(message.starts_with("<spec>:1:1: `.`"), "{message}");
}

#[test]
fn bad_enum_value_lists_the_choices() {
    let text = format!("{MINIMAL}on_failure: destroy\n");
    let message = assert_located(&error_of(&text), "on_failure", 8);
    assert!(
        message.contains("`cleanup`") && message.contains("`keep`"),
        "{message}"
    );
}

#[test]
fn both_source_image_id_and_family_is_refused_at_its_line() {
    let text = MINIMAL.replace("  id: img-1\n", "  id: img-1\n  family: f\n");
    let message = assert_located(&error_of(&text), "source_image", 2);
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn semantic_errors_point_at_the_offending_field() {
    let cases: &[(&str, &str, &str, usize)] = &[
        (
            "  name: test-image\n",
            "  name: 1-starts-with-digit\n",
            "image.name",
            7,
        ),
        (
            "  name: test-image\n",
            "  name: http://x\n",
            "image.name",
            7,
        ),
        ("  name: test-image\n", "  name: x\n", "image.name", 7),
        (
            "  name: test-image\n",
            "  name: has space\n",
            "image.name",
            7,
        ),
        (
            "  name: test-image\n",
            "  name: img-{{isotime}}\n",
            "image.name",
            7,
        ),
        (
            "  name: test-image\n",
            "  name: a\n  copy_regions: [cn-hangzhou]\n",
            "image.name",
            7,
        ),
        (
            "  name: test-image\n",
            "  name: ab\n  copy_regions: [cn-x, cn-hangzhou]\n",
            "image.copy_regions[1]",
            8,
        ),
        (
            "  name: test-image\n",
            "  name: ab\n  tags:\n    bakerd:managed: x\n",
            "image.tags.bakerd:managed",
            9,
        ),
        (
            "  name: test-image\n",
            "  name: ab\n  family: aliyun-x\n",
            "image.family",
            8,
        ),
        (
            "  type: ecs.s2.large\n",
            "  type: t\n  vswitch_id: v\n  vpc_cidr: 10.0.0.0/8\n",
            "instance.vpc_cidr",
            7,
        ),
        (
            "  type: ecs.s2.large\n",
            "  type: t\n  vswitch_cidr: 192.168.0.0/24\n",
            "instance.vswitch_cidr",
            6,
        ),
        (
            "  type: ecs.s2.large\n",
            "  type: t\n  system_disk: {size_gb: 5}\n",
            "instance.system_disk.size_gb",
            6,
        ),
        (
            "region: cn-hangzhou\n",
            "region: CN Hangzhou\n",
            "region",
            1,
        ),
    ];
    for (from, to, path, line) in cases {
        let text = MINIMAL.replace(from, to);
        assert_located(&error_of(&text), path, *line);
    }
}

#[test]
fn shell_step_needs_exactly_one_source() {
    let none = format!("{MINIMAL}provisioners:\n  - shell:\n      environment: {{A: b}}\n");
    let message = assert_located(&error_of(&none), "provisioners[0].shell", 9);
    assert!(message.contains("set one of"), "{message}");
    let two = format!(
        "{MINIMAL}provisioners:\n  - shell:\n      inline: [a]\n      script: scripts/a.sh\n"
    );
    assert_located(&error_of(&two), "provisioners[0].shell", 9);
    let env = format!("{MINIMAL}provisioners:\n  - shell:\n      inline: [a]\n      environment:\n        1BAD: x\n");
    assert_located(
        &error_of(&env),
        "provisioners[0].shell.environment.1BAD",
        12,
    );
}

#[test]
fn missing_script_file_names_the_field_the_line_and_the_resolved_path() {
    let text = format!("{MINIMAL}provisioners:\n  - shell:\n      inline: [a]\n  - shell:\n      scripts:\n        - scripts/a.sh\n        - scripts/nope.sh\n");
    let dir = workspace();
    let error = parse_in(dir.path(), &text).unwrap_err();
    let message = assert_located(&error, "provisioners[1].shell.scripts[1]", 14);
    let SpecError::MissingFile { local, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(local, &dir.path().join("scripts/nope.sh"));
    assert!(message.contains("nope.sh"), "{message}");
}

#[test]
fn a_directory_is_not_a_script_but_is_an_upload_source() {
    let text = format!("{MINIMAL}provisioners:\n  - shell:\n      script: files/dir\n");
    assert_located(&error_of(&text), "provisioners[0].shell.script", 10);
    let text = format!(
        "{MINIMAL}provisioners:\n  - file: {{source: files/dir, destination: relative/path}}\n"
    );
    assert_located(&error_of(&text), "provisioners[0].file.destination", 9);
}

#[test]
fn load_names_the_file_and_resolves_paths_beside_it() {
    let dir = workspace();
    let path = dir.path().join("build.yaml");
    fs::write(
        &path,
        format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/a.sh}}\n"),
    )
    .unwrap();
    let spec = Spec::load(&path).unwrap();
    assert_eq!(spec.base_dir, dir.path());
    fs::write(
        &path,
        format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/zz.sh}}\n"),
    )
    .unwrap();
    let message = Spec::load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:9:", path.display())),
        "{message}"
    );
    let missing = Spec::load(dir.path().join("absent.yaml")).unwrap_err();
    assert!(matches!(missing, SpecError::Read { .. }), "{missing:?}");
}

#[test]
fn syntax_errors_and_empty_input_are_clear() {
    let message = error_of("region: [unclosed\n").to_string();
    assert!(
        message.starts_with("<spec>:") && message.contains("YAML syntax"),
        "{message}"
    );
    let message = error_of("").to_string();
    assert!(message.contains("empty"), "{message}");
    let message = error_of("# only a comment\n").to_string();
    assert!(message.contains("empty"), "{message}");
    let message = error_of("- a list\n").to_string();
    assert!(message.contains("invalid type"), "{message}");
}

// ---------- hostile YAML ----------

fn assert_quick(started: Instant) {
    // Not a timing assertion on speed goals: a hang would never reach this line; this prints the figure.
    println!("refused in {:?}", started.elapsed());
}

#[test]
fn a_huge_spec_is_refused_before_parsing() {
    let huge = format!("{MINIMAL}# {}\n", "x".repeat(MAX_SPEC_BYTES));
    let started = Instant::now();
    let error = error_of(&huge);
    assert_quick(started);
    assert!(matches!(error, SpecError::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("limit"), "{error}");

    let dir = workspace();
    let path = dir.path().join("huge.yaml");
    fs::write(&path, &huge).unwrap();
    assert!(matches!(Spec::load(&path), Err(SpecError::TooLarge { .. })));
}

#[test]
fn deep_nesting_is_refused_with_its_location() {
    for depth in [100, 100_000] {
        let text = format!("region: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let started = Instant::now();
        let error = error_of(&text);
        assert_quick(started);
        assert!(matches!(error, SpecError::TooDeep { .. }), "{error:?}");
        assert!(error.to_string().starts_with("<spec>:1:"), "{error}");
    }
    let block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    assert!(matches!(error_of(&block), SpecError::TooDeep { .. }));
}

#[test]
fn alias_bombs_are_refused_without_expanding() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    bomb.push_str(MINIMAL);
    let started = Instant::now();
    let error = error_of(&bomb);
    assert_quick(started);
    assert!(matches!(error, SpecError::TooManyNodes { .. }), "{error:?}");
    assert!(error.location().is_some(), "{error}");
}

#[test]
fn modest_anchors_and_aliases_still_work() {
    let text = "\
region: cn-hangzhou
source_image: {id: img-1}
instance:
  type: t
  tags: &tags {team: a}
image:
  name: ab
  tags: *tags
";
    let dir = workspace();
    let spec = parse_in(dir.path(), text).unwrap();
    assert_eq!(spec.image.tags, spec.instance.tags);
}

// ---------- hash ----------

#[test]
fn hash_ignores_key_order_whitespace_comments_and_explicit_defaults() {
    let dir = workspace();
    let base = format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/a.sh}}\n");
    let reordered = "\
# comment
image:   {name: test-image}
provisioners:
  -   shell:
        script: scripts/a.sh
instance: {type: ecs.s2.large}
source_image: {id: img-1}
region: cn-hangzhou
ssh: {username: root, port: 22, timeout: 5m}
stop_before_snapshot: true
";
    let a = parse_in(dir.path(), &base).unwrap().hash().unwrap();
    let b = parse_in(dir.path(), reordered).unwrap().hash().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn hash_changes_when_a_script_or_an_uploaded_file_changes() {
    let dir = workspace();
    let text = format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/a.sh}}\n  - file: {{source: files/dir, destination: /d}}\n");
    let spec = parse_in(dir.path(), &text).unwrap();
    let before = spec.hash().unwrap();
    assert_eq!(spec.hash().unwrap(), before, "hash is stable");
    fs::write(dir.path().join("scripts/a.sh"), "echo changed\n").unwrap();
    let after_script = spec.hash().unwrap();
    assert_ne!(after_script, before);
    fs::write(dir.path().join("files/dir/new"), "n\n").unwrap();
    assert_ne!(spec.hash().unwrap(), after_script);
}

#[test]
fn hash_is_the_same_wherever_the_spec_directory_is() {
    let (one, two) = (workspace(), workspace());
    let text = format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/a.sh}}\n");
    let a = parse_in(one.path(), &text).unwrap().hash().unwrap();
    let b = parse_in(two.path(), &text).unwrap().hash().unwrap();
    assert_eq!(a, b);
}

#[test]
fn hash_follows_image_fields_but_not_operational_ones() {
    let dir = workspace();
    let base = parse_in(dir.path(), MINIMAL).unwrap().hash().unwrap();
    let changed = |extra: &str| {
        parse_in(dir.path(), &format!("{MINIMAL}{extra}"))
            .unwrap()
            .hash()
            .unwrap()
    };
    assert_ne!(changed("stop_before_snapshot: false\n"), base);
    assert_ne!(changed("provisioners: [{shell: {inline: [a]}}]\n"), base);
    assert_eq!(changed("on_failure: keep\n"), base);
    assert_eq!(changed("endpoint: http://x:1\n"), base);
    assert_eq!(changed("timeouts: {image: 2h}\n"), base);
    assert_eq!(changed("credentials: {profile: p}\n"), base);
    let renamed = MINIMAL.replace("test-image", "other-image");
    assert_ne!(
        parse_in(dir.path(), &renamed).unwrap().hash().unwrap(),
        base
    );
}

#[test]
fn hash_reports_a_referenced_file_that_vanished() {
    let dir = workspace();
    let spec = parse_in(
        dir.path(),
        &format!("{MINIMAL}provisioners:\n  - shell: {{script: scripts/a.sh}}\n"),
    )
    .unwrap();
    fs::remove_file(dir.path().join("scripts/a.sh")).unwrap();
    let error = spec.hash().unwrap_err();
    assert_eq!(error.field_path(), Some("provisioners[0].shell.script"));
}

// ---------- shipped examples ----------

fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")
}

#[test]
fn every_shipped_spec_validates() {
    let mut count = 0;
    for entry in fs::read_dir(specs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let spec = Spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            spec.hash().unwrap();
            count += 1;
        }
    }
    assert!(count >= 2, "demo.yaml and realistic.yaml at least");
}

#[test]
fn demo_spec_targets_the_simulator_with_script_and_uploads() {
    let spec = Spec::load(specs_dir().join("demo.yaml")).unwrap();
    assert_eq!(spec.region, "cn-hangzhou");
    assert_eq!(
        spec.source_image,
        SourceImage::Id("ubuntu1404_64_40G_cloudinit_20160427.raw".into())
    );
    assert_eq!(spec.instance.instance_type, "ecs.s2.large");
    assert_eq!(
        spec.instance.security_group_id, None,
        "the demo uses a temporary security group"
    );
    let kinds: Vec<&str> = spec
        .provisioners
        .iter()
        .map(|p| match p {
            Provisioner::Shell(s) if matches!(s.source(), ShellSource::Inline(_)) => "inline",
            Provisioner::Shell(_) => "script",
            Provisioner::File(_) => "file",
        })
        .collect();
    assert_eq!(kinds, ["inline", "script", "file", "file"]);
}

#[test]
fn realistic_spec_uses_the_real_cloud_features() {
    let spec = Spec::load(specs_dir().join("realistic.yaml")).unwrap();
    assert!(matches!(spec.source_image, SourceImage::Family(_)));
    assert_eq!(spec.instance.instance_type, "ecs.g7.large");
    assert!(spec.instance.vswitch_id.is_some());
    assert_eq!(spec.ssh.address, SshAddress::Public);
    assert_eq!(spec.image.copy_regions, ["cn-shanghai"]);
    assert!(
        spec.warnings().is_empty(),
        "no inline secret in the realistic spec"
    );
}

// ---------- never panics ----------

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn arbitrary_text_gives_a_result_not_a_panic(text in ".{0,400}") {
            let _ = Spec::from_yaml_str(&text, ".");
        }

        #[test]
        fn yaml_like_text_gives_a_result_not_a_panic(
            text in "([a-z_]{1,8}|[-:&*!\\[\\]{},|>'\"#]| |\n|  ){0,120}"
        ) {
            let _ = Spec::from_yaml_str(&text, ".");
        }

        #[test]
        fn mutated_valid_specs_give_a_result_not_a_panic(cut in 0usize..300, insert in "[ -~\n]{0,4}") {
            let mut text = MINIMAL.to_string();
            let at = text.char_indices().map(|(i, _)| i).nth(cut % MINIMAL.len()).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = Spec::from_yaml_str(&text, ".");
        }
    }
}

#[test]
fn the_reference_documents_every_field() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/spec.md")).unwrap();
    let sections = [
        format!("{MINIMAL}zzz: 1\n"),
        format!("{MINIMAL}credentials: {{zzz: 1}}\n"),
        MINIMAL.replace("  id: img-1\n", "  zzz: 1\n"),
        MINIMAL.replace("  type: ecs.s2.large\n", "  type: t\n  zzz: 1\n"),
        MINIMAL.replace(
            "  type: ecs.s2.large\n",
            "  type: t\n  system_disk: {zzz: 1}\n",
        ),
        format!("{MINIMAL}ssh: {{zzz: 1}}\n"),
        format!("{MINIMAL}provisioners: [{{shell: {{zzz: 1}}}}]\n"),
        format!("{MINIMAL}provisioners: [{{file: {{zzz: 1}}}}]\n"),
        format!("{MINIMAL}provisioners: [{{zzz: 1}}]\n"),
        MINIMAL.replace("  name: test-image\n", "  name: ab\n  zzz: 1\n"),
        format!("{MINIMAL}timeouts: {{zzz: 1}}\n"),
    ];
    for text in sections {
        let error = error_of(&text);
        let SpecError::UnknownField { expected, .. } = &error else {
            panic!("{error:?}")
        };
        assert!(!expected.is_empty(), "{error}");
        for field in expected {
            assert!(
                doc.contains(&format!("`{field}`")),
                "docs/spec.md does not document `{field}`"
            );
        }
    }
}

#[test]
fn communicator_accepts_ssh_and_cloud_assistant_and_names_the_field_for_anything_else() {
    let dir = workspace();
    for value in ["ssh", "cloud_assistant"] {
        let text = format!("{MINIMAL}communicator: {value}\n");
        let spec = parse_in(dir.path(), &text).unwrap_or_else(|e| panic!("{value}: {e}"));
        let expected = match value {
            "ssh" => bakerd::spec::Communicator::Ssh,
            _ => bakerd::spec::Communicator::CloudAssistant,
        };
        assert_eq!(spec.communicator, expected);
    }
    let text = format!("{MINIMAL}communicator: winrm\n");
    let message = assert_located(&error_of(&text), "communicator", 8);
    assert!(
        message.contains("`ssh`") && message.contains("`cloud_assistant`"),
        "{message}"
    );
}

#[test]
fn image_data_disks_include_needs_data_disks_and_changes_the_hash_while_ignore_does_not() {
    let message = error_of(&MINIMAL.replace(
        "  name: test-image\n",
        "  name: test-image\n  data_disks: include\n",
    ))
    .to_string();
    assert!(
        message.contains("image.data_disks") && message.contains("instance.data_disks"),
        "{message}"
    );
    let dir = workspace();
    let with_disk = MINIMAL.replace(
        "  type: ecs.s2.large\n",
        "  type: ecs.s2.large\n  data_disks:\n    - size_gb: 20\n",
    );
    let hash = |text: &str| parse_in(dir.path(), text).unwrap().hash().unwrap();
    let ignored = hash(&with_disk);
    assert_eq!(
        hash(&with_disk.replace(
            "  name: test-image\n",
            "  name: test-image\n  data_disks: ignore\n"
        )),
        ignored,
        "the default, written out, hashes the same"
    );
    let included = with_disk.replace(
        "  name: test-image\n",
        "  name: test-image\n  data_disks: include\n",
    );
    assert_ne!(hash(&included), ignored);
    let spec = parse_in(dir.path(), &included).unwrap();
    assert!(spec.to_yaml().contains("data_disks: include"));
}
