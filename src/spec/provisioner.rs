//! Provisioners: the steps run on the build instance, in order, each checkpointed on its own.
//!
//! YAML shape: a list of single-key mappings, the key naming the kind:
//! ```yaml
//! provisioners:
//!   - shell: { inline: ["apt-get update"] }
//!   - file: { source: files/motd, destination: /etc/motd }
//! ```
//! Why not Packer's `type: shell`: serde's internally tagged enums buffer their content, which loses the
//! field path and line of every error inside a provisioner; a key per kind keeps both.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One provisioning step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provisioner {
    /// Run shell commands or scripts.
    Shell(ShellProvisioner),
    /// Upload a file or a directory.
    File(FileProvisioner),
}

/// The default `execute_command`: make the uploaded script executable and run it with the environment.
pub const DEFAULT_EXECUTE_COMMAND: &str = "chmod +x {{path}} && {{vars}} {{path}}";

/// Runs shell commands on the instance. Exactly one of `inline`, `script`, `scripts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellProvisioner {
    /// Commands run in order in one `sh` session (uploaded as one script, so `cd` and variables persist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inline: Vec<String>,
    /// A local script (relative to the spec's directory), uploaded and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Several local scripts, run in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    /// Environment variables for the commands (names `[A-Za-z_][A-Za-z0-9_]*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The step reboots the machine (or restarts sshd): a dropped connection is success, and bakerd
    /// reconnects before the next step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_disconnect: bool,
    /// How to run each uploaded script; `{{path}}` is the remote script, `{{vars}}` the quoted
    /// `NAME='value'` assignments. Unset: [`DEFAULT_EXECUTE_COMMAND`]. Use it for `sudo -E`, `bash`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_command: Option<String>,
}

/// What a shell step runs, with the one-of rule already checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellSource<'a> {
    /// Inline commands.
    Inline(&'a [String]),
    /// One script (`script`) or several (`scripts`), as written in the spec (relative paths).
    Scripts(&'a [String]),
}

impl ShellProvisioner {
    /// What this step runs. Validation guarantees exactly one source is set.
    pub fn source(&self) -> ShellSource<'_> {
        if let Some(script) = &self.script {
            ShellSource::Scripts(std::slice::from_ref(script))
        } else if !self.scripts.is_empty() {
            ShellSource::Scripts(&self.scripts)
        } else {
            ShellSource::Inline(&self.inline)
        }
    }

    /// The command that runs the script uploaded at `remote_path`, with this step's environment.
    pub fn command_for(&self, remote_path: &str) -> String {
        let template = self
            .execute_command
            .as_deref()
            .unwrap_or(DEFAULT_EXECUTE_COMMAND);
        let vars: Vec<String> = self
            .environment
            .iter()
            .map(|(name, value)| format!("{name}={}", shell_quote(value)))
            .collect();
        template
            .replace("{{vars}}", &vars.join(" "))
            .replace("{{path}}", &shell_quote(remote_path))
            .trim()
            .to_string()
    }
}

/// Single-quotes `text` for POSIX sh (`it's` → `'it'\''s'`).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Uploads a local file or directory.
///
/// A file goes to `destination` (or into it, keeping its name, when `destination` ends with `/`).
/// A directory's contents go into the directory `destination`, which is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProvisioner {
    /// Local file or directory, relative to the spec's directory.
    pub source: String,
    /// Absolute path on the instance.
    pub destination: String,
    /// Only `upload` exists; accepted so Packer users get a clear error for `download`.
    #[serde(default, skip_serializing_if = "Direction::is_upload")]
    pub direction: Direction,
}

/// Transfer direction of a file step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Local → instance.
    #[default]
    Upload,
}

impl Direction {
    fn is_upload(&self) -> bool {
        *self == Direction::Upload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(env: &[(&str, &str)], execute_command: Option<&str>) -> ShellProvisioner {
        ShellProvisioner {
            inline: vec![],
            script: Some("s.sh".into()),
            scripts: vec![],
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expect_disconnect: false,
            execute_command: execute_command.map(str::to_string),
        }
    }

    #[test]
    fn default_command_quotes_path_and_values() {
        let step = shell(&[("A", "it's"), ("B", "x y")], None);
        assert_eq!(
            step.command_for("/tmp/bakerd-1.sh"),
            r"chmod +x '/tmp/bakerd-1.sh' && A='it'\''s' B='x y' '/tmp/bakerd-1.sh'"
        );
    }

    #[test]
    fn custom_command_without_environment_has_no_stray_spaces() {
        let step = shell(&[], Some("sudo -E sh {{path}}"));
        assert_eq!(step.command_for("/tmp/s"), "sudo -E sh '/tmp/s'");
    }

    #[test]
    fn source_prefers_the_field_that_is_set() {
        let step = shell(&[], None);
        assert_eq!(step.source(), ShellSource::Scripts(&["s.sh".to_string()]));
    }
}
