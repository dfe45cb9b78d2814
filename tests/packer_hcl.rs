//! Packer templates as people publish them (issue 11): HCL2 (`*.pkr.hcl`), the options real
//! templates use, the public corpus in `shared/packer-corpus`, HCL2/JSON equivalence, the
//! expansion bomb, and an HCL2 build on the simulator.

mod common;

use bakerd::spec::packer::hcl2::HclFile;
use bakerd::spec::packer::hcl_vars::VarFile;
use bakerd::spec::packer::{convert, convert_hcl, Converted, Options, PackerError};
use bakerd::spec::ImageDataDisks;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use time::macros::datetime;

const REGION: &str = "cn-shanghai";

fn options(base_dir: &Path, env: &[(&str, &str)]) -> Options {
    Options {
        vars: Vec::new(),
        var_files: Vec::new(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        now: datetime!(2024-03-05 07:08:09 UTC),
        base_dir: base_dir.to_path_buf(),
        only: Vec::new(),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Converts one HCL2 file (no auto var files, as for a single file in Packer).
fn hcl(path: &Path, opts: &Options) -> Result<Converted, PackerError> {
    let file = HclFile {
        path: path.to_path_buf(),
        text: std::fs::read_to_string(path).unwrap(),
    };
    convert_hcl(&[file], &[], opts)
}

fn convert_file(path: &Path, opts: &Options) -> Result<Converted, PackerError> {
    if path.to_string_lossy().ends_with(".pkr.hcl") {
        hcl(path, opts)
    } else {
        convert(&std::fs::read_to_string(path).unwrap(), opts)
    }
}

fn corpus_dir() -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/packer-corpus");
    if shared.is_dir() {
        shared
    } else {
        PathBuf::from("/work/shared/packer-corpus")
    }
}

/// What each corpus template gives: `None` converts; `Some(text)` fails with a message containing
/// it. Scripts and files the templates reference are stood in by empty files.
const CORPUS: &[(&str, Option<&str>)] = &[
    ("01-packer-plugin-alicloud-basic.json", None),
    ("03-packer-plugin-alicloud-data-disk.json", None),
    ("04-packer-plugin-alicloud-chef.json", None),
    ("05-packer-plugin-alicloud-jenkins.json", None),
    ("08-ack-image-builder-centos.json", None),
    ("11-ack-image-builder-existing-vpc.json", None),
    ("12-ack-image-builder-optimized-1.18.json", None),
    ("17-Packer-yc-alicloud.json", None),
    ("18-demo-java-tomcat.json", None),
    ("19-kubeadm-demo-alicloud.json", None),
    // The plugin's docs example has a missing comma.
    (
        "21-packer-plugin-alicloud-docs-basic.json",
        Some("invalid JSON at 19:7"),
    ),
    // Copied from the docs with the Markdown fence (```) that closes the code block.
    (
        "22-packer-plugin-alicloud-docs-basic.pkr.hcl",
        Some("HCL syntax error:   --> HCL parse error in line 35, column 1"),
    ),
    ("23-packer-plugin-alicloud-example-build.pkr.hcl", None),
    ("24-packer-samples-shell-redis.pkr.hcl", None),
    ("27-study-terraform-image.pkr.hcl", None),
    ("28-study-terraform-clickhouse-master.pkr.hcl", None),
];

/// Files the corpus templates reference, relative to the copied corpus directory.
const STAND_INS: &[&str] = &[
    "scripts/updateKernel.sh",
    "scripts/reboot.sh",
    "scripts/cleanUpKerneles.sh",
    "config/default.sh",
    "scripts/verify.sh",
    "scripts/ack-optimized-os-1.18.sh",
    "examples/alicloud/chef/user_data.sh",
    "examples/alicloud/chef/chef.sh",
    "examples/alicloud/jenkins/jenkins.sh",
    "target/demo.war",
    "../ssh/id_rsa.pub",
    "../scripts/setup.sh",
    "scripts/setup-disk.sh",
    "scripts/master-setup.sh",
    "home/.ssh/id_rsa.pub",
];

#[test]
fn every_corpus_template_converts_or_fails_with_the_expected_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    for file in STAND_INS {
        write(&dir.join(file), "");
    }
    let home = dir.join("home");
    let env = [
        ("ALICLOUD_ACCESS_KEY", "ak"),
        ("ALICLOUD_SECRET_KEY", "sk"),
        ("ALICLOUD_REGION", "cn-hangzhou"),
        ("ALICLOUD_ACCESS_KEY_ID", "ak"),
        ("ALICLOUD_ACCESS_KEY_SECRET", "sk"),
        ("HOME", home.to_str().unwrap()),
    ];
    let opts = options(&dir, &env);
    let mut outcomes = Vec::new();
    for (name, expected) in CORPUS {
        let result = convert_file(&dir.join(name), &opts);
        match (expected, &result) {
            (None, Ok(converted)) => {
                converted.spec.hash().expect("a converted spec hashes");
            }
            (Some(text), Err(e)) if e.to_string().contains(text) => {}
            _ => outcomes.push(format!(
                "{name}: expected {expected:?}, got {:?}",
                result.as_ref().map(|_| "ok").map_err(ToString::to_string)
            )),
        }
    }
    assert!(outcomes.is_empty(), "{}", outcomes.join("\n"));
    assert_eq!(
        CORPUS.len(),
        std::fs::read_dir(corpus_dir()).unwrap().count() - 1,
        "every corpus template (all files but the README) has an expected outcome"
    );
}

const JSON_TWIN: &str = r#"{
  "variables": {
    "access_key": "{{env `ALICLOUD_ACCESS_KEY`}}",
    "secret_key": "{{env `ALICLOUD_SECRET_KEY`}}",
    "app": "web"
  },
  "builders": [{
    "type": "alicloud-ecs",
    "access_key": "{{user `access_key`}}",
    "secret_key": "{{user `secret_key`}}",
    "region": "cn-hangzhou",
    "image_name": "{{user `app`}}-{{timestamp}}",
    "image_family": "acs:ubuntu_22_04_x64",
    "instance_type": "ecs.g7.large",
    "ssh_private_ip": true,
    "internet_charge_type": "PayByTraffic",
    "system_disk_mapping": {"disk_category": "cloud_essd", "disk_size": 40},
    "run_tags": {"Built by": "Packer"},
    "tags": {"app": "web"}
  }],
  "provisioners": [
    {"type": "shell", "inline": ["echo one", "echo two"]},
    {"type": "file", "source": "files/", "destination": "/opt/app"}
  ]
}"#;

const HCL_TWIN: &str = r#"
variable "access_key" {
  type    = string
  default = env("ALICLOUD_ACCESS_KEY")
}
variable "secret_key" {
  type      = string
  default   = "${env("ALICLOUD_SECRET_KEY")}"
  sensitive = true
}
variable "app" {
  type    = string
  default = "web"
}
locals {
  tags = { app = var.app }
}
source "alicloud-ecs" "web" {
  access_key           = var.access_key
  secret_key           = var.secret_key
  region               = "cn-hangzhou"
  image_name           = "${var.app}-{{timestamp}}"
  image_family         = "acs:ubuntu_22_04_x64"
  instance_type        = "ecs.g7.large"
  ssh_private_ip       = true
  internet_charge_type = "PayByTraffic"
  system_disk_mapping {
    disk_category = "cloud_essd"
    disk_size     = 40
  }
  run_tags = { "Built by" = "Packer" }
  tags     = local.tags
}
build {
  sources = ["source.alicloud-ecs.web"]
  provisioner "shell" {
    inline = ["echo one", "echo two"]
  }
  provisioner "file" {
    source      = "files/"
    destination = "/opt/app"
  }
}
"#;

#[test]
fn hcl2_and_json_versions_of_one_build_give_the_same_spec_hash() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("files/a.txt"), "a");
    write(&dir.path().join("web.pkr.hcl"), HCL_TWIN);
    let opts = options(
        dir.path(),
        &[("ALICLOUD_ACCESS_KEY", "ak"), ("ALICLOUD_SECRET_KEY", "sk")],
    );
    let from_json = convert(JSON_TWIN, &opts).unwrap();
    let from_hcl = hcl(&dir.path().join("web.pkr.hcl"), &opts).unwrap();
    assert_eq!(from_hcl.spec, from_json.spec);
    assert_eq!(
        from_hcl.spec.hash().unwrap(),
        from_json.spec.hash().unwrap()
    );
    assert_eq!(
        from_hcl.spec.instance.internet_charge_type.as_deref(),
        Some("PayByTraffic")
    );
    let (written, _) = from_hcl.written();
    assert!(
        written
            .to_yaml()
            .contains("access_key_secret_env: ALICLOUD_SECRET_KEY"),
        "the secret stays an environment reference: {}",
        written.to_yaml()
    );
}

const VARS_TEMPLATE: &str = r#"
variable "a" {
  type    = string
  default = "default"
}
variable "b" {
  type    = string
  default = "default"
}
variable "c" {
  type    = string
  default = "default"
}
variable "d" {
  type    = string
  default = "default"
}
variable "size" {
  type    = number
  default = 20
  validation {
    condition     = var.size >= 20
    error_message = "The system disk must be at least 20 GiB."
  }
}
source "alicloud-ecs" "x" {
  access_key    = "ak"
  secret_key    = "sk"
  region        = "cn-hangzhou"
  source_image  = "img"
  instance_type = "ecs.g7.large"
  ssh_private_ip = true
  image_name    = "${var.a}-${var.b}-${var.c}-${var.d}"
  system_disk_mapping {
    disk_size = var.size
  }
}
build {
  sources = ["sources.alicloud-ecs.x"]
}
"#;

#[test]
fn hcl2_variables_take_defaults_then_pkr_var_then_auto_files_then_var_files_then_vars() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.pkr.hcl");
    write(&template, VARS_TEMPLATE);
    write(
        &dir.path().join("x.auto.pkrvars.hcl"),
        "b = \"auto\"\nc = \"auto\"\nd = \"auto\"\n",
    );
    write(
        &dir.path().join("extra.pkrvars.hcl"),
        "c = \"file\"\nd = \"file\"\n",
    );
    let mut opts = options(dir.path(), &[("PKR_VAR_a", "env"), ("PKR_VAR_size", "30")]);
    opts.var_files = vec![dir.path().join("extra.pkrvars.hcl")];
    opts.vars = vec![("d".into(), "flag".into())];
    let file = HclFile {
        path: template.clone(),
        text: VARS_TEMPLATE.into(),
    };
    let auto = VarFile {
        path: dir.path().join("x.auto.pkrvars.hcl"),
        text: std::fs::read_to_string(dir.path().join("x.auto.pkrvars.hcl")).unwrap(),
    };
    let converted = convert_hcl(&[file], &[auto], &opts).unwrap();
    assert_eq!(converted.spec.image.name, "env-auto-file-flag");
    assert_eq!(converted.spec.instance.system_disk.size_gb, Some(30));

    let mut small = options(dir.path(), &[]);
    small.vars = vec![("size".into(), "10".into())];
    let err = hcl(&template, &small).unwrap_err().to_string();
    assert!(
        err.contains("`size`") && err.contains("The system disk must be at least 20 GiB."),
        "{err}"
    );
    let mut wrong = options(dir.path(), &[]);
    wrong.vars = vec![("size".into(), "big".into())];
    let err = hcl(&template, &wrong).unwrap_err().to_string();
    assert!(err.contains("size"), "{err}");
}

#[test]
fn an_undeclared_user_variable_renders_empty_with_a_warning() {
    let template = r#"{"builders":[{"type":"alicloud-ecs","access_key":"ak","secret_key":"sk",
      "region":"cn-hangzhou","source_image":"img","instance_type":"ecs.g7.large",
      "ssh_private_ip":true,"image_name":"web{{user `suffix`}}"}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let converted = convert(template, &options(dir.path(), &[])).unwrap();
    assert_eq!(converted.spec.image.name, "web");
    assert!(
        converted
            .warnings
            .iter()
            .any(|w| w.contains("`suffix`") && w.contains("renders empty")),
        "{:?}",
        converted.warnings
    );
}

fn with_provisioner(provisioner: &str) -> String {
    format!(
        r#"{{"builders":[{{"type":"alicloud-ecs","access_key":"ak","secret_key":"sk",
      "region":"cn-hangzhou","source_image":"img","instance_type":"ecs.g7.large",
      "ssh_private_ip":true,"image_name":"web"}}],"provisioners":[{provisioner}]}}"#
    )
}

#[test]
fn a_directory_source_without_a_trailing_slash_lands_inside_the_destination_as_in_packer() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("conf/app.ini"), "x");
    let opts = options(dir.path(), &[]);
    let destination = |source: &str| {
        let text = with_provisioner(&format!(
            r#"{{"type":"file","source":"{source}","destination":"/etc/app/"}}"#
        ));
        match &convert(&text, &opts).unwrap().spec.provisioners[0] {
            bakerd::spec::Provisioner::File(file) => file.destination.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(destination("conf"), "/etc/app/conf");
    assert_eq!(destination("conf/"), "/etc/app/");
    assert_eq!(destination("conf/app.ini"), "/etc/app/");
}

#[test]
fn provisioner_timeouts_warn_and_exit_codes_other_than_zero_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), &[]);
    let ok = convert(
        &with_provisioner(
            r#"{"type":"shell","inline":["true"],"timeout":"5m","max_retries":3,"valid_exit_codes":[0]}"#,
        ),
        &opts,
    )
    .unwrap();
    for option in ["timeout", "max_retries"] {
        assert!(
            ok.warnings
                .iter()
                .any(|w| w.contains(&format!("`{option}`"))),
            "{option}: {:?}",
            ok.warnings
        );
    }
    let err = convert(
        &with_provisioner(r#"{"type":"shell","inline":["true"],"valid_exit_codes":[0,2]}"#),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("valid_exit_codes") && err.contains("exit 0"),
        "{err}"
    );
}

#[test]
fn the_binary_accepts_packer_single_dash_flags_and_a_template_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("t/vars.pkr.hcl"), "variable \"a\" {\n  type = string\n}\nvariable \"b\" {\n  type = string\n}\nvariable \"c\" {\n  type = string\n}\n");
    write(
        &dir.path().join("t/build.pkr.hcl"),
        &VARS_TEMPLATE
            .split("source \"alicloud-ecs\"")
            .nth(1)
            .map(|rest| format!("variable \"d\" {{\n  default = \"d\"\n}}\nvariable \"size\" {{\n  default = 20\n}}\nsource \"alicloud-ecs\"{rest}"))
            .unwrap(),
    );
    write(&dir.path().join("t/x.auto.pkrvars.hcl"), "b = \"auto\"\n");
    write(&dir.path().join("more.pkrvars.hcl"), "c = \"file\"\n");
    let template = dir.path().join("t");
    let var_file = dir.path().join("more.pkrvars.hcl");
    let out = common::run_bakerd(
        &[
            "convert",
            template.to_str().unwrap(),
            "-var",
            "a=flag",
            "-var-file",
            var_file.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("name: flag-auto-file-d"), "{stdout}");
}

/// 40 variables, each the previous one twice: 2^40 bytes if expanded.
fn bomb_json() -> String {
    let mut vars = vec![r#""v0": "xxxxxxxxxxxxxxxx""#.to_string()];
    for i in 1..40 {
        vars.push(format!(
            r#""v{i}": "{{{{user `v{p}`}}}}{{{{user `v{p}`}}}}""#,
            p = i - 1
        ));
    }
    format!(
        r#"{{"variables": {{{}}}, "builders":[{{"type":"alicloud-ecs","access_key":"ak","secret_key":"sk",
        "region":"cn-hangzhou","source_image":"img","instance_type":"ecs.g7.large",
        "image_name":"{{{{user `v39`}}}}"}}]}}"#,
        vars.join(",\n")
    )
}

fn bomb_hcl() -> String {
    let mut locals = vec!["  v0 = \"xxxxxxxxxxxxxxxx\"".to_string()];
    for i in 1..40 {
        locals.push(format!(
            "  v{i} = \"${{local.v{p}}}${{local.v{p}}}\"",
            p = i - 1
        ));
    }
    format!(
        "locals {{\n{}\n}}\nsource \"alicloud-ecs\" \"x\" {{\n  image_name = local.v39\n}}\nbuild {{\n  sources = [\"source.alicloud-ecs.x\"]\n}}\n",
        locals.join("\n")
    )
}

/// Peak resident set of this process's waited-for children, in KiB (Linux `ru_maxrss`).
fn children_peak_rss_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the zeroed struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn an_expansion_bomb_is_refused_before_it_is_built_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("bomb.json"), &bomb_json());
    write(&dir.path().join("bomb.pkr.hcl"), &bomb_hcl());
    for name in ["bomb.json", "bomb.pkr.hcl"] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_bakerd"))
            .args(["convert", dir.path().join(name).to_str().unwrap()])
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rss_kib = children_peak_rss_kib();
        println!("{name}: refused in {elapsed:?}, peak RSS of the children so far {rss_kib} KiB");
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("more than 1048576 bytes"), "{stderr}");
        assert!(rss_kib < 100 * 1024, "peak RSS {rss_kib} KiB");
    }
}

const E2E_TEMPLATE: &str = r#"
packer {
  required_plugins {
    alicloud = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/alicloud"
    }
  }
}

variable "region" {
  type = string
}
variable "greeting" {
  type = string
}
variable "access_key" {
  type    = string
  default = env("ALICLOUD_ACCESS_KEY")
}
variable "secret_key" {
  type      = string
  default   = env("ALICLOUD_SECRET_KEY")
  sensitive = true
}

locals {
  marker = "${upper(var.greeting)}-${local.stamp}"
  stamp  = formatdate("YYYYMMDD", timestamp())
}

source "alicloud-ecs" "web" {
  access_key           = var.access_key
  secret_key           = var.secret_key
  region               = var.region
  source_image         = "ubuntu_22_04_x64_20G_alibase_20240926.vhd"
  instance_type        = "ecs.s2.large"
  image_name           = "hcl-web-${local.stamp}"
  ssh_username         = "root"
  ssh_private_ip       = true
  internet_charge_type = "PayByTraffic"

  image_disk_mapping {
    disk_name     = "scratch"
    disk_size     = 30
    disk_category = "cloud_essd"
  }
}

build {
  sources = ["source.alicloud-ecs.web"]

  provisioner "shell" {
    inline = [<<-EOT
      mkdir -p /etc/hcl
      echo ${local.marker} > /etc/hcl/marker
      echo on the data disk > /mnt/vdb/data.txt
    EOT
    ]
  }

  provisioner "file" {
    source      = "files"
    destination = "/opt"
  }

  post-processor "manifest" {}
}
"#;

#[tokio::test]
async fn an_hcl2_template_directory_builds_an_image_whose_instances_hold_the_provisioned_files_and_the_data_disk(
) {
    let sim = common::SimProcess::start("hcl2-e2e");
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("web");
    write(&template.join("web.pkr.hcl"), E2E_TEMPLATE);
    write(
        &template.join("web.auto.pkrvars.hcl"),
        "greeting = \"hello\"\n",
    );
    write(
        &template.join("files/app.txt"),
        "uploaded by the file provisioner\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .current_dir(dir.path())
        .args(["apply", "web", "--state-dir", "state"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("BAKERD_STATE_DIR")
        .env("ALICLOUD_ACCESS_KEY", common::ACCESS_KEY_ID)
        .env("ALICLOUD_SECRET_KEY", common::ACCESS_KEY_SECRET)
        .env("PKR_VAR_region", REGION)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );

    let images = available_images(&sim).await;
    assert_eq!(images.len(), 1, "{images:?}");
    let name = images[0]["name"].as_str().unwrap();
    let stamp = name
        .strip_prefix("hcl-web-")
        .expect("image name from a local");
    assert!(
        stamp.len() == 8 && stamp.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    let image = images[0]["id"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(template.join("packer-manifest.json")).expect("manifest written"),
    )
    .unwrap();
    let build = &manifest["builds"][0];
    assert_eq!(build["name"], "web");
    assert_eq!(build["builder_type"], "alicloud-ecs");
    assert_eq!(build["artifact_id"], format!("{REGION}:{image}"));
    assert_eq!(manifest["last_run_uuid"], build["packer_run_uuid"]);
    let data_disks: Vec<_> = sim
        .inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "disk" && r["type"] == "data")
        .collect();
    assert_eq!(
        data_disks.len(),
        1,
        "the build instance had the data disk: {data_disks:?}"
    );
    assert_eq!(data_disks[0]["size_gib"], 30);
    assert_eq!(
        data_disks[0]["status"], "Deleted",
        "and it went with the instance"
    );
    let data_snapshots = images[0]["data_snapshot_ids"].as_array().unwrap();
    assert_eq!(data_snapshots.len(), 1, "the image carries the data disk");

    let sg = common::ssh_security_group(&sim, REGION).await;
    let (key, public) = common::ssh_keygen(dir.path(), "id_ed25519");
    let ip = common::boot_instance(&sim, REGION, image, &sg, &public).await;
    let timeout = Duration::from_secs(30);
    let marker = common::ssh_read_retrying(&key, &ip, "/etc/hcl/marker", timeout);
    assert_eq!(marker.trim(), format!("HELLO-{stamp}"));
    let uploaded = common::ssh_read_retrying(&key, &ip, "/opt/files/app.txt", timeout);
    assert_eq!(uploaded, "uploaded by the file provisioner\n");
    let on_data_disk = common::ssh_read_retrying(&key, &ip, "/mnt/vdb/data.txt", timeout);
    assert_eq!(on_data_disk, "on the data disk\n");
}

#[test]
fn image_disk_mappings_with_image_ignore_data_disks_become_data_disks_of_the_build_instance() {
    let template = r#"{"builders":[{"type":"alicloud-ecs","access_key":"ak","secret_key":"sk",
      "region":"cn-hangzhou","source_image":"img","instance_type":"ecs.g7.large",
      "ssh_private_ip":true,"image_name":"web","image_ignore_data_disks":true,
      "image_disk_mappings":[{"disk_name":"data1","disk_size":20,"disk_delete_with_instance":true},
        {"disk_size":"40","disk_category":"cloud_essd","disk_device":"/dev/xvdz"}]}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let converted = convert(template, &options(dir.path(), &[])).unwrap();
    let disks = &converted.spec.instance.data_disks;
    assert_eq!(disks.len(), 2);
    assert_eq!(
        (disks[0].size_gb, disks[0].name.as_deref()),
        (Some(20), Some("data1"))
    );
    assert_eq!(
        (
            disks[1].size_gb,
            disks[1].category.as_deref(),
            disks[1].device.as_deref()
        ),
        (Some(40), Some("cloud_essd"), Some("/dev/xvdz"))
    );
    assert!(converted
        .warnings
        .iter()
        .any(|w| w.contains("disk_delete_with_instance")));
    let yaml = converted.spec.to_yaml();
    assert!(yaml.contains("data_disks:"), "{yaml}");
}

/// Two `alicloud-ecs` sources in one build: `apply` builds both, `convert` needs `--only`.
const TWO_SOURCES: &str = r#"
source "alicloud-ecs" "a" {
  region        = "cn-shanghai"
  source_image  = "ubuntu_22_04_x64_20G_alibase_20240926.vhd"
  instance_type = "ecs.s2.large"
  image_name    = "two-sources-a"
  ssh_username  = "root"
  ssh_private_ip = true
}

source "alicloud-ecs" "b" {
  region        = "cn-shanghai"
  source_image  = "ubuntu_22_04_x64_20G_alibase_20240926.vhd"
  instance_type = "ecs.s2.large"
  image_name    = "two-sources-b"
  ssh_username  = "root"
  ssh_private_ip = true
}

build {
  sources = ["source.alicloud-ecs.a", "source.alicloud-ecs.b"]

  provisioner "shell" {
    inline = ["echo ${source.name} > /etc/built-from"]
  }

  post-processor "manifest" {}
}
"#;

async fn available_images(sim: &common::SimProcess) -> Vec<serde_json::Value> {
    sim.inventory()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "image" && r["region"] == REGION && r["status"] == "Available")
        .collect()
}

fn bakerd_in(dir: &Path, sim: &common::SimProcess, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .current_dir(dir)
        .args(args)
        .env_remove("BAKERD_STATE_DIR")
        .env("ALICLOUD_ACCESS_KEY", common::ACCESS_KEY_ID)
        .env("ALICLOUD_SECRET_KEY", common::ACCESS_KEY_SECRET)
        .env("BAKERD_ECS_ENDPOINT", &sim.endpoint)
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_hcl2_build_with_two_sources_builds_two_images_in_one_apply_and_only_still_selects() {
    let sim = common::SimProcess::start("hcl2-two-sources");
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("two.pkr.hcl"), TWO_SOURCES);

    let convert = bakerd_in(dir.path(), &sim, &["convert", "two.pkr.hcl"]);
    let stderr = String::from_utf8_lossy(&convert.stderr);
    assert_eq!(convert.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alicloud-ecs.a, alicloud-ecs.b") && stderr.contains("--only"),
        "{stderr}"
    );

    let args = [
        "apply",
        "two.pkr.hcl",
        "--parallel",
        "2",
        "--state-dir",
        "state",
    ];
    let out = bakerd_in(dir.path(), &sim, &args);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for source in [
        "two.pkr.hcl (alicloud-ecs.a)",
        "two.pkr.hcl (alicloud-ecs.b)",
    ] {
        assert!(text.contains(&format!("started for {source}")), "{text}");
    }
    let images = available_images(&sim).await;
    let mut names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["two-sources-a", "two-sources-b"], "{images:?}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("packer-manifest.json")).unwrap(),
    )
    .unwrap();
    let mut built: Vec<&str> = manifest["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    built.sort_unstable();
    assert_eq!(built, ["a", "b"], "{manifest}");
    let runs = &manifest["builds"];
    assert_eq!(
        runs[0]["packer_run_uuid"], runs[1]["packer_run_uuid"],
        "one run, one packer_run_uuid, as Packer: {manifest}"
    );
    assert_eq!(manifest["last_run_uuid"], runs[0]["packer_run_uuid"]);

    // `verify` takes one source: without --only it says how to choose; with it, it reads that
    // source (a Packer template has no `verify` section, which it then says).
    let verify = bakerd_in(dir.path(), &sim, &["verify", "m-any", "two.pkr.hcl"]);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--only TYPE.NAME"), "{stderr}");
    let args = ["verify", "m-any", "two.pkr.hcl", "--only", "alicloud-ecs.a"];
    let verify = bakerd_in(dir.path(), &sim, &args);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no `verify` section"), "{stderr}");

    let args = [
        "apply",
        "two.pkr.hcl",
        "--only",
        "alicloud-ecs.b",
        "--state-dir",
        "state",
    ];
    let again = bakerd_in(dir.path(), &sim, &args);
    let text = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains("up to date with two.pkr.hcl (alicloud-ecs.b)"),
        "{text}"
    );
    assert!(
        !text.contains("alicloud-ecs.a)"),
        "--only left a out: {text}"
    );
}

#[test]
fn image_disk_mappings_without_image_ignore_data_disks_put_the_data_disks_in_the_image() {
    let template = r#"{"builders":[{"type":"alicloud-ecs","access_key":"ak","secret_key":"sk",
      "region":"cn-hangzhou","source_image":"img","instance_type":"ecs.g7.large",
      "ssh_private_ip":true,"image_name":"web",
      "image_disk_mappings":[{"disk_name":"data1","disk_size":20}]}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let converted = convert(template, &options(dir.path(), &[])).unwrap();
    assert_eq!(converted.spec.instance.data_disks.len(), 1);
    assert_eq!(converted.spec.image.data_disks, ImageDataDisks::Include);
    let yaml = converted.spec.to_yaml();
    assert!(yaml.contains("data_disks: include"), "{yaml}");

    let ignored = template.replace(
        "\"image_name\"",
        "\"image_ignore_data_disks\":true,\"image_name\"",
    );
    let converted = convert(&ignored, &options(dir.path(), &[])).unwrap();
    assert_eq!(converted.spec.image.data_disks, ImageDataDisks::Ignore);
    assert!(!converted.spec.to_yaml().contains("data_disks: include"));
}
