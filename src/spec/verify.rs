//! How bakerd reaches instances (`communicator`) and the `verify:` section: checks run on a fresh
//! instance started from the finished image, before the image is published (copied, shared).
//!
//! YAML shape of `verify`:
//! ```yaml
//! verify:
//!   instance: { type: ecs.g7.large, zone: cn-hangzhou-k }  # default: the build instance's
//!   checks:
//!     - shell: "nginx -t"                  # one shell line
//!     - script: checks/smoke.sh            # a local script, uploaded and run
//!     - file_exists: /etc/nginx/nginx.conf
//!     - port_listens: 80
//!   on_failure: keep                       # or delete_image
//!   timeout: 5m                            # per check
//! ```
//! Like provisioners, each check is a single-key mapping (the key names the kind), which keeps the
//! field path and line of every error inside a check.

use super::duration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How bakerd runs commands and copies files on build and test instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Communicator {
    /// OpenSSH to the instance's address with a temporary key pair; the security group opens tcp/22.
    #[default]
    Ssh,
    /// Cloud Assistant (RunCommand / SendFile through the ECS API): no key pair, no inbound rule, no
    /// address; the agent on the instance pulls the commands.
    CloudAssistant,
}

impl Communicator {
    /// True for the default, so the spec's serialized form (and its hash) stays as it was.
    pub fn is_ssh(&self) -> bool {
        *self == Communicator::Ssh
    }
}

/// The `verify:` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// The test instance; unset fields take the build instance's values.
    #[serde(default, skip_serializing_if = "VerifyInstance::is_default")]
    pub instance: VerifyInstance,
    /// What must hold on an instance booted from the new image, in order; the first failure ends
    /// the run.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub checks: Vec<VerifyCheck>,
    /// What happens to the image when a check fails.
    #[serde(default)]
    pub on_failure: VerifyOnFailure,
    /// How long one check may run before it counts as failed.
    #[serde(default = "default_check_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(300)
}

/// Where the test instance runs.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyInstance {
    /// Instance type of the test instance. Unset: `instance.type` — test on what you built on, or
    /// on the (smaller or bigger) type production uses.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Zone of the test instance. Unset: the build instance's zone. Another zone gets a temporary
    /// vSwitch of its own in the build's VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl VerifyInstance {
    fn is_default(&self) -> bool {
        self == &VerifyInstance::default()
    }
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyCheck {
    /// A shell line; it passes when it exits 0.
    Shell(String),
    /// A local script (relative to the spec's directory), uploaded and run; passes on exit 0.
    Script(String),
    /// An absolute path that must exist on the instance (file, directory or symlink target).
    FileExists(String),
    /// A TCP port something must listen on.
    PortListens(u16),
}

impl VerifyCheck {
    /// The kind, as written in the spec.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyCheck::Shell(_) => "shell",
            VerifyCheck::Script(_) => "script",
            VerifyCheck::FileExists(_) => "file_exists",
            VerifyCheck::PortListens(_) => "port_listens",
        }
    }

    /// One line for output and errors: `file_exists /etc/motd`.
    pub fn describe(&self) -> String {
        match self {
            VerifyCheck::Shell(line) => format!("shell `{line}`"),
            VerifyCheck::Script(path) => format!("script {path}"),
            VerifyCheck::FileExists(path) => format!("file_exists {path}"),
            VerifyCheck::PortListens(port) => format!("port_listens {port}"),
        }
    }

    /// The POSIX sh script that performs a built-in check (`None` for `script`, whose body is
    /// the local file). Written for busybox as well as coreutils/iproute2 systems.
    pub fn builtin_script(&self) -> Option<String> {
        match self {
            VerifyCheck::Shell(line) => Some(format!("#!/bin/sh\n{line}\n")),
            VerifyCheck::Script(_) => None,
            VerifyCheck::FileExists(path) => {
                let quoted = super::shell_quote(path);
                Some(format!(
                    "#!/bin/sh\nif [ -e {quoted} ]; then echo {quoted}' exists'; exit 0; fi\n\
                     echo {quoted}' does not exist' >&2\nexit 1\n"
                ))
            }
            VerifyCheck::PortListens(port) => Some(port_listens_script(*port)),
        }
    }
}

/// Looks for a listening TCP socket on `port` with `ss`, then `netstat`, then `/proc/net/tcp*`
/// (state 0A = LISTEN, the port in hex), whichever the image has.
fn port_listens_script(port: u16) -> String {
    format!(
        "#!/bin/sh\n\
         if command -v ss >/dev/null 2>&1 && ss -ltnH 2>/dev/null | awk '{{print $4}}' | grep -q ':{port}$'; then found=1; fi\n\
         if [ -z \"$found\" ] && command -v netstat >/dev/null 2>&1 && netstat -ltn 2>/dev/null | awk '{{print $4}}' | grep -q ':{port}$'; then found=1; fi\n\
         if [ -z \"$found\" ] && cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" {{print $2}}' | grep -qi ':{port:04X}$'; then found=1; fi\n\
         if [ -n \"$found\" ]; then echo \"port {port} listens\"; exit 0; fi\n\
         echo \"nothing listens on tcp port {port}\" >&2\nexit 1\n"
    )
}

/// The image's fate when a check fails. The build fails either way, with the check's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOnFailure {
    /// Keep the image, tagged `bakerd:verified=false` (for inspection; `apply` does not treat it
    /// as up to date).
    #[default]
    Keep,
    /// Delete the image and its snapshot; `bakerd resume` then builds a new one.
    DeleteImage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_read_as_single_key_mappings() {
        let yaml =
            "checks:\n  - shell: \"true\"\n  - file_exists: /etc/motd\n  - port_listens: 80\n\
                    on_failure: delete_image\n";
        let verify: VerifySpec = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(verify.checks.len(), 3);
        assert_eq!(verify.checks[2], VerifyCheck::PortListens(80));
        assert_eq!(verify.on_failure, VerifyOnFailure::DeleteImage);
        assert_eq!(verify.timeout, Duration::from_secs(300));
    }

    #[test]
    fn the_port_check_looks_for_the_port_in_hex_in_proc() {
        let script = VerifyCheck::PortListens(80).builtin_script().unwrap();
        assert!(script.contains(":0050$"), "{script}");
        assert!(script.contains("ss -ltnH"));
    }

    #[test]
    fn the_file_check_quotes_the_path() {
        let script = VerifyCheck::FileExists("/a b/it's".into())
            .builtin_script()
            .unwrap();
        assert!(script.contains(r"[ -e '/a b/it'\''s' ]"), "{script}");
    }
}
