//! Semantic checks after deserialization: the rules serde's types cannot express (ECS naming rules,
//! one-of choices, CIDRs, files that must exist). Each problem names the field path; `mod.rs` turns
//! the path into a line and column.

use super::model::{
    Credentials, ImageDataDisks, ImageSpec, InstanceSpec, SecretSource, SshAddress,
};
use super::provisioner::{FileProvisioner, Provisioner, ShellProvisioner};
use super::template;
use super::verify::VerifyCheck;
use super::Spec;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::PathBuf;

/// One broken rule.
#[derive(Debug)]
pub(crate) enum Problem {
    Invalid {
        path: String,
        message: String,
    },
    MissingFile {
        path: String,
        local: PathBuf,
        source: io::Error,
    },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

type Check = Result<(), Problem>;

/// Runs every check; the first problem found, in document order of sections, is returned.
pub(crate) fn check(spec: &Spec) -> Check {
    check_region("region", &spec.region)?;
    for (field, value) in [
        ("endpoint", &spec.endpoint),
        ("vpc_endpoint", &spec.vpc_endpoint),
    ] {
        if let Some(endpoint) = value {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    field,
                    format!("`{endpoint}` must start with http:// or https://"),
                ));
            }
        }
    }
    check_credentials(&spec.credentials)?;
    check_instance(&spec.instance, spec.ssh.address)?;
    check_ssh(spec)?;
    for (i, provisioner) in spec.provisioners.iter().enumerate() {
        match provisioner {
            Provisioner::Shell(shell) => {
                check_shell(spec, &format!("provisioners[{i}].shell"), shell)?
            }
            Provisioner::File(file) => check_file(spec, &format!("provisioners[{i}].file"), file)?,
        }
    }
    check_image(&spec.image, &spec.region)?;
    check_image_data_disks(spec)?;
    check_verify(spec)
}

/// A test instance in another zone gets a temporary vSwitch next to the build's, so bakerd must
/// own the vSwitch (and there must be room for a second one in the VPC).
fn check_verify_zone(spec: &Spec, zone: &str) -> Check {
    const PATH: &str = "verify.instance.zone";
    check_no_spaces(PATH, zone, "a zone id")?;
    if spec.instance.vswitch_id.is_some() {
        return Err(invalid(
            PATH,
            "needs the temporary vSwitch bakerd creates; with `instance.vswitch_id` the test \
             instance runs in that vSwitch's zone: remove one of the two",
        ));
    }
    if spec.instance.verify_vswitch_cidr().is_none() {
        let message = format!(
            "no room in `instance.vpc_cidr` ({}) for a second vSwitch the size of \
             `instance.vswitch_cidr` ({}); use a smaller `instance.vswitch_cidr`",
            spec.instance.vpc_cidr(),
            spec.instance.vswitch_cidr()
        );
        return Err(invalid(PATH, message));
    }
    Ok(())
}

fn check_verify(spec: &Spec) -> Check {
    let Some(verify) = &spec.verify else {
        return Ok(());
    };
    if verify.checks.is_empty() {
        return Err(invalid(
            "verify.checks",
            "is empty; list at least one check (shell, script, file_exists, port_listens)",
        ));
    }
    if let Some(t) = &verify.instance.instance_type {
        check_no_spaces("verify.instance.type", t, "an instance type")?;
    }
    if let Some(zone) = &verify.instance.zone {
        check_verify_zone(spec, zone)?;
    }
    for (i, check) in verify.checks.iter().enumerate() {
        let path = format!("verify.checks[{i}].{}", check.kind());
        match check {
            VerifyCheck::Shell(line) if line.trim().is_empty() => {
                return Err(invalid(path, "is empty; write the command to run"))
            }
            VerifyCheck::Script(script) => check_local(spec, &path, script, false)?,
            VerifyCheck::FileExists(file) if !file.starts_with('/') => {
                let message = format!("`{file}` must be an absolute path on the instance");
                return Err(invalid(path, message));
            }
            VerifyCheck::PortListens(0) => return Err(invalid(path, "0 is not a port (1–65535)")),
            _ => {}
        }
    }
    Ok(())
}

fn check_region(path: &str, region: &str) -> Check {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("`{region}` is not a region id (like `cn-hangzhou`)"),
        ))
    }
}

fn check_env_name(path: &str, name: &str) -> Check {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        ))
    }
}

fn check_credentials(credentials: &Credentials) -> Check {
    if let Credentials::AccessKey {
        id,
        secret,
        security_token_env,
    } = credentials
    {
        if id.trim().is_empty() {
            return Err(invalid("credentials.access_key_id", "is empty"));
        }
        if let SecretSource::Env(var) = secret {
            check_env_name("credentials.access_key_secret_env", var)?;
        }
        if let Some(var) = security_token_env {
            check_env_name("credentials.security_token_env", var)?;
        }
    }
    Ok(())
}

fn check_no_spaces(path: &str, value: &str, what: &str) -> Check {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(invalid(
            path,
            format!("`{value}` is not {what} (empty or contains spaces)"),
        ));
    }
    Ok(())
}

fn check_instance(instance: &InstanceSpec, address: SshAddress) -> Check {
    check_no_spaces("instance.type", &instance.instance_type, "an instance type")?;
    if instance.vswitch_id.is_some() {
        for (field, value) in [
            ("vpc_cidr", &instance.vpc_cidr),
            ("vswitch_cidr", &instance.vswitch_cidr),
        ] {
            if value.is_some() {
                let message =
                    "only used when bakerd creates the vSwitch; remove it or remove `vswitch_id`";
                return Err(invalid(format!("instance.{field}"), message));
            }
        }
    }
    let vpc = parse_cidr("instance.vpc_cidr", instance.vpc_cidr())?;
    let vswitch = parse_cidr("instance.vswitch_cidr", instance.vswitch_cidr())?;
    if vswitch.1 < vpc.1 || (vswitch.0 & mask(vpc.1)) != vpc.0 {
        let message = format!(
            "`{}` is not inside the VPC's `{}`",
            instance.vswitch_cidr(),
            instance.vpc_cidr()
        );
        return Err(invalid("instance.vswitch_cidr", message));
    }
    check_system_disk(instance)?;
    match (instance.internet_max_bandwidth_out, address) {
        (Some(0), SshAddress::Public) => Err(invalid(
            "instance.internet_max_bandwidth_out",
            "must be above 0 with `ssh.address: public` (a public IP needs outbound bandwidth)",
        )),
        (Some(0), SshAddress::Eip) => Err(invalid(
            "instance.internet_max_bandwidth_out",
            "must be above 0 with `ssh.address: eip` (it is the EIP's bandwidth)",
        )),
        (Some(mbps), _) if mbps > 100 => Err(invalid(
            "instance.internet_max_bandwidth_out",
            "at most 100 Mbit/s",
        )),
        _ => check_user_data_and_tags(instance),
    }
}

fn check_system_disk(instance: &InstanceSpec) -> Check {
    if let Some(size) = instance.system_disk.size_gb {
        if !(20..=2048).contains(&size) {
            return Err(invalid(
                "instance.system_disk.size_gb",
                format!("{size} is outside 20–2048 GiB"),
            ));
        }
    }
    if let Some(category) = &instance.system_disk.category {
        if category.is_empty() || !category.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            let message = format!("`{category}` is not a disk category (like `cloud_essd`)");
            return Err(invalid("instance.system_disk.category", message));
        }
    }
    Ok(())
}

fn check_user_data_and_tags(instance: &InstanceSpec) -> Check {
    check_one_of(
        "instance.internet_charge_type",
        instance.internet_charge_type.as_deref(),
        &["PayByTraffic", "PayByBandwidth"],
    )?;
    check_one_of(
        "instance.security_enhancement_strategy",
        instance.security_enhancement_strategy.as_deref(),
        &["Active", "Deactive"],
    )?;
    for (i, disk) in instance.data_disks.iter().enumerate() {
        let path = format!("instance.data_disks[{i}].size_gb");
        match (disk.size_gb, &disk.snapshot_id) {
            (None, None) => return Err(invalid(path, "required unless `snapshot_id` is given")),
            (Some(size), _) if !(20..=32768).contains(&size) => {
                return Err(invalid(path, format!("{size} is outside 20–32768 GiB")))
            }
            _ => {}
        }
    }
    if instance.data_disks.len() > 16 {
        return Err(invalid("instance.data_disks", "at most 16 data disks"));
    }
    if let Some(user_data) = &instance.user_data {
        // ECS caps UserData at 32 KiB after base64, i.e. 24 KiB of text.
        if user_data.len() > 24 * 1024 {
            return Err(invalid(
                "instance.user_data",
                "longer than 24 KiB (32 KiB once base64-encoded)",
            ));
        }
    }
    check_tags("instance.tags", &instance.tags)
}

/// An optional field whose value must be one of ECS's names (exact spelling, as the API wants).
fn check_one_of(path: &str, value: Option<&str>, allowed: &[&str]) -> Check {
    match value {
        Some(v) if !allowed.contains(&v) => Err(invalid(
            path,
            format!("`{v}` is not one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// `a.b.c.d/n` → (network address as u32, prefix length); the address must be the network's own.
fn parse_cidr(path: &str, text: &str) -> Result<(u32, u32), Problem> {
    let explain = || {
        invalid(
            path,
            format!("`{text}` is not an IPv4 CIDR block like `172.16.0.0/24`"),
        )
    };
    let (address, prefix) = text.split_once('/').ok_or_else(explain)?;
    let address: std::net::Ipv4Addr = address.parse().map_err(|_| explain())?;
    let prefix: u32 = prefix.parse().map_err(|_| explain())?;
    if !(8..=29).contains(&prefix) {
        return Err(invalid(
            path,
            format!("`{text}`: the prefix length must be 8–29"),
        ));
    }
    let address = u32::from(address);
    if address & mask(prefix) != address {
        return Err(invalid(
            path,
            format!("`{text}` has host bits set; use its network address"),
        ));
    }
    Ok((address, prefix))
}

fn mask(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix).unwrap_or(0)
}

fn check_ssh(spec: &Spec) -> Check {
    check_no_spaces("ssh.username", &spec.ssh.username, "a user name")?;
    if spec.ssh.port == 0 {
        return Err(invalid("ssh.port", "0 is not a port"));
    }
    if spec.ssh.address == SshAddress::Eip && spec.verify.is_some() {
        return Err(invalid(
            "ssh.address",
            "`eip` does not work with `verify` yet (the test instance gets no EIP); use \
             `ssh.address: public` or `private` in a spec with `verify`",
        ));
    }
    Ok(())
}

fn check_shell(spec: &Spec, path: &str, shell: &ShellProvisioner) -> Check {
    let sources = [
        !shell.inline.is_empty(),
        shell.script.is_some(),
        !shell.scripts.is_empty(),
    ];
    match sources.iter().filter(|set| **set).count() {
        1 => {}
        0 => {
            return Err(invalid(
                path,
                "set one of `inline` (commands), `script` or `scripts`",
            ))
        }
        _ => {
            return Err(invalid(
                path,
                "set only one of `inline`, `script` and `scripts`",
            ))
        }
    }
    if let Some(script) = &shell.script {
        check_local(spec, &format!("{path}.script"), script, false)?;
    }
    for (i, script) in shell.scripts.iter().enumerate() {
        check_local(spec, &format!("{path}.scripts[{i}]"), script, false)?;
    }
    for name in shell.environment.keys() {
        check_env_name(&format!("{path}.environment.{name}"), name)?;
    }
    if let Some(command) = &shell.execute_command {
        let command_path = format!("{path}.execute_command");
        template::check(command, &["path", "vars"]).map_err(|m| invalid(&command_path, m))?;
        if !command.contains("{{path}}") {
            return Err(invalid(
                command_path,
                "must contain `{{path}}` (the uploaded script)",
            ));
        }
    }
    Ok(())
}

fn check_file(spec: &Spec, path: &str, file: &FileProvisioner) -> Check {
    check_local(spec, &format!("{path}.source"), &file.source, true)?;
    if !file.destination.starts_with('/') {
        let message = format!(
            "`{}` must be an absolute path on the instance",
            file.destination
        );
        return Err(invalid(format!("{path}.destination"), message));
    }
    Ok(())
}

/// A local path named by the spec must exist: a regular file, or (when allowed) a directory.
fn check_local(spec: &Spec, path: &str, written: &str, directory_allowed: bool) -> Check {
    let local = spec.resolve_path(written);
    let missing = |source| Problem::MissingFile {
        path: path.into(),
        local: local.clone(),
        source,
    };
    let metadata = std::fs::metadata(&local).map_err(missing)?;
    if metadata.is_file() || (directory_allowed && metadata.is_dir()) {
        return Ok(());
    }
    let what = if directory_allowed {
        "a file or a directory"
    } else {
        "a regular file"
    };
    Err(missing(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not {what}"),
    )))
}

fn check_image(image: &ImageSpec, region: &str) -> Check {
    check_image_name(&image.name)?;
    if let Some(description) = &image.description {
        template::check(description, template::PLACEHOLDERS)
            .map_err(|m| invalid("image.description", m))?;
        let rendered = template::render(description, SAMPLE_TIMESTAMP);
        if rendered.chars().count() > 256 || is_url(&rendered) {
            return Err(invalid(
                "image.description",
                "at most 256 characters, not starting with http(s)://",
            ));
        }
    }
    if let Some(family) = &image.family {
        check_family(family)?;
    }
    if let Some(version) = &image.version {
        if version.is_empty() || version.chars().count() > 40 {
            return Err(invalid("image.version", "1–40 characters"));
        }
    }
    check_tags("image.tags", &image.tags)?;
    check_copy_regions(image, region)?;
    check_share_accounts(&image.share_accounts)
}

/// `image.data_disks: include` with no data disk to include is a spec mistake, not a no-op.
fn check_image_data_disks(spec: &Spec) -> Check {
    if spec.image.data_disks == ImageDataDisks::Include && spec.instance.data_disks.is_empty() {
        return Err(invalid(
            "image.data_disks",
            "`include` needs the disks to include: list them under `instance.data_disks`",
        ));
    }
    Ok(())
}

/// A 10-digit Unix time, as long as any `{{timestamp}}` this century renders.
const SAMPLE_TIMESTAMP: u64 = 1_700_000_000;

fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// CreateImage's ImageName rules, checked on the name as rendered.
fn check_image_name(name: &str) -> Check {
    template::check(name, template::PLACEHOLDERS).map_err(|m| invalid("image.name", m))?;
    let rendered = template::render(name, SAMPLE_TIMESTAMP);
    let length = rendered.chars().count();
    let rule = "ECS image names are 2–128 characters: letters, digits, `.`, `_`, `-`, `:`, starting with a letter";
    let problem = if !(2..=128).contains(&length) {
        Some(format!("`{name}` renders to {length} characters; {rule}"))
    } else if is_url(&rendered) {
        Some(format!("`{name}` must not start with http:// or https://"))
    } else if !rendered.chars().next().is_some_and(char::is_alphabetic) {
        Some(format!("`{name}` must start with a letter; {rule}"))
    } else {
        let bad = rendered
            .chars()
            .find(|c| !(c.is_alphanumeric() || "._-:".contains(*c)));
        bad.map(|c| format!("`{name}` contains `{c}`; {rule}"))
    };
    problem.map_or(Ok(()), |message| Err(invalid("image.name", message)))
}

fn check_family(family: &str) -> Check {
    let length = family.chars().count();
    let starts_with_letter = family.chars().next().is_some_and(char::is_alphabetic);
    let chars_ok = family
        .chars()
        .all(|c| c.is_alphanumeric() || "._-:".contains(c));
    let reserved = family.starts_with("aliyun") || family.starts_with("acs:") || is_url(family);
    if (2..=128).contains(&length) && starts_with_letter && chars_ok && !reserved {
        return Ok(());
    }
    let message = format!(
        "`{family}`: 2–128 characters (letters, digits, `.`, `_`, `-`, `:`), starting with a letter, \
         not starting with `aliyun`, `acs:` or http(s)://"
    );
    Err(invalid("image.family", message))
}

fn check_tags(path: &str, tags: &BTreeMap<String, String>) -> Check {
    if tags.len() > 20 {
        return Err(invalid(
            path,
            format!("{} tags; ECS allows at most 20", tags.len()),
        ));
    }
    for (key, value) in tags {
        let key_path = format!("{path}.{key}");
        if key.starts_with("bakerd:") {
            return Err(invalid(
                key_path,
                "the `bakerd:` tag prefix is reserved for bakerd's own tags",
            ));
        }
        let reserved = key.starts_with("aliyun") || key.starts_with("acs:");
        if key.is_empty()
            || key.chars().count() > 128
            || reserved
            || key.contains("http://")
            || key.contains("https://")
        {
            let message = "tag keys are 1–128 characters, not starting with `aliyun` or `acs:`, without http(s)://";
            return Err(invalid(key_path, message));
        }
        if value.chars().count() > 128 || value.contains("http://") || value.contains("https://") {
            return Err(invalid(
                key_path,
                "tag values are at most 128 characters, without http(s)://",
            ));
        }
    }
    Ok(())
}

fn check_copy_regions(image: &ImageSpec, region: &str) -> Check {
    let mut seen = HashSet::new();
    for (i, copy) in image.copy_regions.iter().enumerate() {
        let path = format!("image.copy_regions[{i}]");
        check_region(&path, copy)?;
        if copy == region {
            return Err(invalid(
                path,
                format!("`{copy}` is the build region; the image is already there"),
            ));
        }
        if !seen.insert(copy) {
            return Err(invalid(path, format!("`{copy}` is listed twice")));
        }
    }
    Ok(())
}

fn check_share_accounts(accounts: &[String]) -> Check {
    if accounts.len() > 10 {
        return Err(invalid(
            "image.share_accounts",
            "ECS shares with at most 10 accounts per call",
        ));
    }
    let mut seen = HashSet::new();
    for (i, account) in accounts.iter().enumerate() {
        let path = format!("image.share_accounts[{i}]");
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(
                path,
                format!("`{account}` is not an account id (digits)"),
            ));
        }
        if !seen.insert(account) {
            return Err(invalid(path, format!("`{account}` is listed twice")));
        }
    }
    Ok(())
}
