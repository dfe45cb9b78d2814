//! The build commands, one file each: `apply`, `resume`, `status`/`list`, `show`, `cancel`.
//! This module holds what they share: options, exit codes, the error type, spec thawing.
//!
//! Each command opens the state directory (taking its lock), does its work and returns an exit
//! code; errors are printed once, with their chain, by the caller.

use super::phase::Phase;
use super::snapshot::StateView;
use super::state::{BuildId, BuildRecord, StateDir};
use crate::spec::{Spec, SpecSource};
use std::path::{Path, PathBuf};

mod apply;
mod cancel;
mod drive;
mod resume;
mod show;
mod spec_change;
mod status;
mod summary;
mod validate;
mod vcpu_ledger;
mod verify;

pub use apply::apply;
pub use cancel::cancel;
pub use resume::resume;
pub use show::show;
pub use status::status;
pub use validate::{validate, ValidateArgs};
pub use verify::{verify, VerifyArgs};

/// Exit codes, documented in the README.
pub mod exit {
    /// Success, or already up to date, or nothing to resume or cancel.
    pub const OK: u8 = 0;
    /// The build failed (its state is kept; `bakerd resume <id>` retries the failed step).
    pub const BUILD_FAILED: u8 = 1;
    /// Bad input: spec, template or command line.
    pub const BAD_INPUT: u8 = 2;
    /// The state directory is locked by another bakerd, or damaged.
    pub const STATE: u8 = 3;
    /// A cloud or credential error before a build started.
    pub const CLOUD: u8 = 4;
    /// Interrupted (SIGINT/SIGTERM): the build was kept for `resume`, or cleaned up.
    pub const INTERRUPTED: u8 = 5;
    /// With `--detailed-exitcode`: something was built.
    pub const BUILT: u8 = 2;
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
    /// Specs (YAML), Packer templates (JSON, `*.pkr.hcl`, or a directory of `*.pkr.hcl` files), or
    /// directories holding specs; several are built at once.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// Build even if an image for this exact spec already exists.
    #[arg(long)]
    pub force: bool,
    /// Start a new build even if an interrupted build of the same spec could be continued.
    #[arg(long)]
    pub new: bool,
    /// How many builds run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Template variable `name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Variable file (repeatable; Packer templates: JSON, or HCL `*.pkrvars.hcl`).
    #[arg(long = "var-file")]
    pub var_files: Vec<PathBuf>,
    /// HCL2 template: build only this source (`alicloud-ecs.NAME`), as Packer's `-only`.
    #[arg(long = "only", value_name = "TYPE.NAME")]
    pub only: Vec<String>,
    /// Write a JSON manifest of the builds (ids, spec hashes, image per region, durations).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Exit 0 when everything was up to date and 2 when something was built (errors: 1, 3, 4, 5).
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub interrupt: InterruptArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What a build does when bakerd is interrupted (SIGINT, SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    /// Keep the build and what it created, for `bakerd resume` (or `bakerd cancel`).
    Keep,
    /// Delete what the build created, as `bakerd cancel` does.
    Cleanup,
}

/// `--on-interrupt`, shared by the commands that run builds.
#[derive(Debug, Clone, clap::Args)]
pub struct InterruptArgs {
    /// On SIGINT/SIGTERM: `keep` the build for resume, or `cleanup` what it created. Default:
    /// keep on a terminal, cleanup otherwise (a cancelled CI job's state dir is thrown away).
    #[arg(long, value_enum)]
    pub on_interrupt: Option<OnInterrupt>,
}

impl InterruptArgs {
    /// The choice, with the terminal/non-terminal default.
    pub fn mode(&self) -> OnInterrupt {
        use std::io::IsTerminal;
        self.on_interrupt
            .unwrap_or(if std::io::stdin().is_terminal() {
                OnInterrupt::Keep
            } else {
                OnInterrupt::Cleanup
            })
    }
}

/// `bakerd resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// The build id (`b-…`), as printed by `apply` and `status`.
    pub id: String,
    /// When the spec file changed since the build started: cancel the build (deleting what it
    /// made) and build the changed spec as a new build.
    #[arg(long, conflicts_with = "as_started")]
    pub apply_changes: bool,
    /// When the spec file changed since the build started: resume with the spec as it was then
    /// (the edits wait for the next `apply`).
    #[arg(long)]
    pub as_started: bool,
    #[command(flatten)]
    pub interrupt: InterruptArgs,
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

/// Opens the state dir for reading; while another bakerd holds it, its published snapshot.
fn open_view(common: &CommonArgs, command: &str) -> Result<StateView, CommandError> {
    StateView::open(&common.state_dir, command).or_exit(exit::STATE)
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
        match SpecSource::load_matching(Path::new(&rec.spec_path), &rec.spec_hash) {
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
