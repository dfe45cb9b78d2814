//! The last step of conversion: a [`Draft`] becomes a validated [`Spec`].
//!
//! Validation: the spec is built field by field, written with [`Spec::to_yaml`] and parsed back with
//! [`Spec::from_yaml_str`], so a converted template passes exactly the checks a hand-written spec does
//! (ECS naming rules, scripts and uploads that must exist, …) and `bakerd convert`'s output is known to
//! load.
//!
//! Relative `script`/`scripts`/`source` paths: Packer resolves them against the directory Packer runs
//! in; bakerd resolves them against the **template's directory** (`base_dir`), as it does for YAML
//! specs. Why: the result does not depend on where `bakerd` is started, and a written spec placed next
//! to the template refers to the same files. For the usual `cd project && packer build template.json`
//! both are the same directory.

use super::draft::{self, Draft};
use super::error::PackerError;
use crate::spec::{
    Communicator, Credentials, Direction, FileProvisioner, ImageDataDisks, ImageSpec, InstanceSpec,
    OnFailure, Provisioner, Secret, SecretSource, ShellProvisioner, SourceImage, Spec, SshAddress,
    SshSpec, SystemDisk, Timeouts,
};
use std::path::Path;
use std::time::Duration;

/// Builds the spec a draft describes and validates it (see the module docs).
///
/// Guarantees: the result passed every check of [`Spec::from_yaml_str`] with `base_dir`; a secret
/// that did not come from an environment variable is kept in memory only (`SecretSource::Inline`).
pub fn to_spec(
    draft: Draft,
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Spec, PackerError> {
    let spec = Spec {
        region: draft.region,
        endpoint: draft.endpoint,
        vpc_endpoint: None,
        credentials: credentials(draft.credentials),
        signature: None,
        source_image: match draft.source_image {
            draft::SourceImage::Id(id) => SourceImage::Id(id),
            draft::SourceImage::Family(family) => SourceImage::Family(family),
        },
        instance: instance(draft.instance)?,
        // Packer's `communicator` knows ssh, winrm and none; none of them is Cloud Assistant.
        communicator: Communicator::Ssh,
        ssh: ssh(draft.ssh, warnings),
        provisioners: draft.provisioners.into_iter().map(provisioner).collect(),
        image: image(draft.image),
        verify: None,
        stop_before_snapshot: draft.stop_before_snapshot,
        on_failure: OnFailure::Cleanup,
        timeouts: Timeouts::default(),
        base_dir: base_dir.to_path_buf(),
    };
    Spec::from_yaml_str(&spec.to_yaml(), base_dir)
        .map_err(|source| PackerError::InvalidSpec { source })
}

/// The access key ID is not a secret and is kept as a value; the secret is an environment reference
/// when it came from one, else held in memory (see [`written_spec`] for what is written out).
fn credentials(credentials: draft::Credentials) -> Credentials {
    let secret = credentials.access_key_secret;
    Credentials::AccessKey {
        id: credentials.access_key_id.value,
        secret: match secret.env {
            Some(env) => SecretSource::Env(env),
            None => SecretSource::Inline(Secret::new(secret.value)),
        },
        security_token_env: None,
    }
}

fn instance(instance: draft::Instance) -> Result<InstanceSpec, PackerError> {
    let disk = instance.system_disk.unwrap_or_default();
    let size_gb = disk
        .size_gb
        .map(|size| narrow(size, "system_disk_mapping.disk_size"))
        .transpose()?;
    let bandwidth = instance
        .internet_max_bandwidth_out
        .map(|mbps| narrow(mbps, "internet_max_bandwidth_out"))
        .transpose()?;
    Ok(InstanceSpec {
        instance_type: instance.instance_type,
        zone: instance.zone,
        vswitch_id: instance.vswitch_id,
        vpc_cidr: None,
        vswitch_cidr: None,
        security_group_id: instance.security_group_id,
        system_disk: SystemDisk {
            category: disk.category,
            size_gb,
        },
        internet_max_bandwidth_out: bandwidth,
        internet_charge_type: instance.internet_charge_type,
        security_enhancement_strategy: instance.security_enhancement_strategy,
        user_data: instance.user_data,
        tags: instance.tags,
        data_disks: instance.data_disks,
    })
}

fn narrow(value: u64, option: &str) -> Result<u32, PackerError> {
    u32::try_from(value).map_err(|_| PackerError::InvalidOption {
        option: option.to_string(),
        owner: "the builder".to_string(),
        detail: format!("{value} is too large"),
    })
}

/// Unset options take bakerd's defaults: port 22 and a 5-minute timeout as in Packer; user `root`
/// (alicloud-ecs has no default user; `root` is what its examples use).
///
/// Address: with neither `associate_public_ip_address` nor `ssh_private_ip`, Packer's VPC mode
/// connects to an empty address and fails (hashicorp/packer-plugin-alicloud#75); bakerd uses the
/// private address instead and says so.
fn ssh(ssh: draft::Ssh, warnings: &mut Vec<String>) -> SshSpec {
    let defaults = SshSpec::default();
    if ssh.address.is_none() {
        warnings.push(
            "neither `associate_public_ip_address` nor `ssh_private_ip` is set: bakerd connects to the \
             instance's private address (Packer would have no address to connect to); set \
             `associate_public_ip_address` when bakerd runs outside the VPC"
                .to_string(),
        );
    }
    SshSpec {
        username: ssh.username.unwrap_or(defaults.username),
        port: ssh.port.unwrap_or(defaults.port),
        address: match ssh.address {
            Some(draft::SshAddress::Eip) => SshAddress::Eip,
            Some(draft::SshAddress::Private) => SshAddress::Private,
            None => defaults.address,
        },
        timeout: ssh
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.timeout),
    }
}

fn provisioner(provisioner: draft::Provisioner) -> Provisioner {
    match provisioner {
        draft::Provisioner::Shell {
            source,
            environment,
            expect_disconnect,
            execute_command,
        } => {
            let (inline, script, scripts) = match source {
                draft::ShellSource::Inline(lines) => (lines, None, Vec::new()),
                draft::ShellSource::Script(script) => (Vec::new(), Some(script), Vec::new()),
                draft::ShellSource::Scripts(scripts) => (Vec::new(), None, scripts),
            };
            Provisioner::Shell(ShellProvisioner {
                inline,
                script,
                scripts,
                environment,
                expect_disconnect,
                execute_command: execute_command.map(|command| bakerd_execute_command(&command)),
            })
        }
        draft::Provisioner::File {
            source,
            destination,
        } => Provisioner::File(FileProvisioner {
            source,
            destination,
            direction: Direction::Upload,
        }),
    }
}

/// Packer's `{{.Vars}}`/`{{.Path}}` (already normalised in the draft) in bakerd's spelling.
/// Both quote each value in single quotes; bakerd also quotes the path, which is a plain temp path.
fn bakerd_execute_command(command: &str) -> String {
    command
        .replace("{{.Vars}}", "{{vars}}")
        .replace("{{.Path}}", "{{path}}")
}

fn image(image: draft::Image) -> ImageSpec {
    ImageSpec {
        name: image.name,
        description: image.description,
        family: image.family,
        version: image.version,
        tags: image.tags,
        force: image.force,
        copy_regions: image.copy_regions,
        share_accounts: image.share_accounts,
        data_disks: if image.include_data_disks {
            ImageDataDisks::Include
        } else {
            ImageDataDisks::Ignore
        },
    }
}

/// The spec as `bakerd convert` writes it: never a secret. An in-memory secret (given literally in
/// the template or by `-var`) becomes a reference to [`draft::DEFAULT_SECRET_ENV`]; the returned
/// warning tells the user to set that variable.
pub fn written_spec(spec: &Spec) -> (Spec, Option<String>) {
    let mut written = spec.clone();
    if let Credentials::AccessKey { secret, .. } = &mut written.credentials {
        if let SecretSource::Inline(_) = secret {
            *secret = SecretSource::Env(draft::DEFAULT_SECRET_ENV.to_string());
            let warning = format!(
                "the AccessKey secret was given in the template or by -var, and bakerd never writes \
                 secrets: the spec reads it from ${}; set that variable",
                draft::DEFAULT_SECRET_ENV
            );
            return (written, Some(warning));
        }
    }
    (written, None)
}
