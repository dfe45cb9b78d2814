//! The build commands, one file each: `apply`, `resume`, `status`/`list`, `show`, `cancel`.
//! This module holds what they share: options, exit codes, the error type, spec thawing.
//!
//! Each command opens the state directory (taking its lock), does its work and returns an exit
//! code; errors are printed once, with their chain, by the caller.

use super::phase::Phase;
use super::state::{BuildId, BuildRecord, StateDir};
use crate::spec::{Spec, SpecSource};
use std::path::{Path, PathBuf};

mod apply;
mod cancel;
mod resume;
mod show;
mod status;

pub use apply::apply;
pub use cancel::cancel;
pub use resume::resume;
pub use show::show;
pub use status::status;

/// Exit codes, documented in the README.
pub mod exit {
    /// Success, or already up to date.
    pub const OK: u8 = 0;
    /// The build failed (its state is kept; `bakerd resume <id>` retries the failed step).
    pub const BUILD_FAILED: u8 = 1;
    /// Bad input: spec, template or command line.
    pub const BAD_INPUT: u8 = 2;
    /// The state directory is locked by another bakerd, or damaged.
    pub const STATE: u8 = 3;
    /// A cloud or credential error before a build started.
    pub const CLOUD: u8 = 4;
}

/// Options shared by every build command.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// State directory (sled database, temporary keys).
    #[arg(long, default_value = "state", env = "BAKERD_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Print one JSON event per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `bakerd apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// The spec (YAML) or a Packer JSON template.
    pub spec: PathBuf,
    /// Build even if an image for this exact spec already exists.
    #[arg(long)]
    pub force: bool,
    /// Packer template variable `name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Packer variable file (JSON, repeatable).
    #[arg(long = "var-file")]
    pub var_files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `bakerd resume`, `show`, `cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The build id (`b-…`), as printed by `apply` and `status`.
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A command's failure: message for the user and exit code.
#[derive(Debug)]
pub struct CommandError {
    pub code: u8,
    pub message: String,
}

/// Attaches an exit code to any displayable error.
trait OrExit<T> {
    fn or_exit(self, code: u8) -> Result<T, CommandError>;
}

impl<T, E: std::fmt::Display> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8) -> Result<T, CommandError> {
        self.map_err(|e| CommandError {
            code,
            message: format!("{e:#}"),
        })
    }
}

type CmdResult = Result<u8, CommandError>;

fn open_state(common: &CommonArgs, command: &str) -> Result<StateDir, CommandError> {
    StateDir::open_as(&common.state_dir, command).or_exit(exit::STATE)
}

fn parse_id(text: &str) -> Result<BuildId, CommandError> {
    BuildId::parse(text).ok_or_else(|| CommandError {
        code: exit::BAD_INPUT,
        message: format!(
            "{text:?} is not a build id (expected b- and 10 hex digits; see `bakerd status`)"
        ),
    })
}

/// The spec frozen in a build record. Inline credentials are never frozen (they would land in
/// the state files); they are read again from the original spec file, else the environment's
/// credential chain applies.
fn thaw_spec(rec: &BuildRecord<Phase>) -> Result<Spec, CommandError> {
    let mut spec = Spec::from_frozen(&rec.spec).or_exit(exit::STATE)?;
    if Spec::frozen_withholds_credentials(&rec.spec) {
        match SpecSource::load(Path::new(&rec.spec_path), &[], &[]) {
            Ok(original) => spec.credentials = original.spec.credentials,
            Err(e) => tracing::warn!(
                "credentials of {} not re-read ({e}); using the environment's credential chain",
                rec.spec_path
            ),
        }
    }
    Ok(spec)
}

/// The spec file a build was started from, as recorded.
fn spec_path(rec: &BuildRecord<Phase>) -> String {
    rec.spec_path.clone()
}
