//! The build commands: `apply`, `resume`, `status`/`list`, `show`, `cancel`.
//!
//! Each command opens the state directory (taking its lock), does its work and returns an exit
//! code; errors are printed once, with their chain, by the caller.

use super::cloud::Cloud;
use super::output::Output;
use super::phase::Phase;
use super::reconcile::Reconciler;
use super::state::{BuildId, BuildRecord, StateDir};
use super::store::Store;
use crate::spec::{Spec, SpecSource};
use serde_json::json;
use std::path::{Path, PathBuf};

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
pub(super) trait OrExit<T> {
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

pub(super) type CmdResult = Result<u8, CommandError>;

pub(super) fn open_state(common: &CommonArgs, command: &str) -> Result<StateDir, CommandError> {
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

/// `bakerd apply <spec>`: builds the image unless one for this exact spec exists.
pub async fn apply(args: ApplyArgs) -> CmdResult {
    let source = load_spec(&args)?;
    let out = Output::new(args.common.json);
    for warning in &source.warnings {
        out.note(warning);
    }
    let spec = source.spec;
    let state = open_state(&args.common, "apply")?;
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    let hash = spec.hash().or_exit(exit::BAD_INPUT)?;
    // Also with --force: the lookup checks credentials and endpoint before a build is recorded.
    let existing = cloud
        .image_for_spec_hash(&hash)
        .await
        .or_exit(exit::CLOUD)?;
    if !args.force {
        if let Some(image) = existing {
            out.result(
                &format!("image {} ({}) is up to date with {}; nothing to do (use --force to rebuild)", image.id, image.name, args.spec.display()),
                json!({"event": "up_to_date", "image_id": image.id, "image_name": image.name, "spec_hash": hash}),
            );
            return Ok(exit::OK);
        }
    }
    let frozen = spec.frozen();
    let store = Store::new(state);
    let spec_path = std::fs::canonicalize(&args.spec).unwrap_or_else(|_| args.spec.clone());
    let rec = store
        .create(frozen, hash, &spec_path)
        .or_exit(exit::STATE)?;
    out.result(
        &format!("build {} started for {}", rec.id, args.spec.display()),
        json!({"event": "build_started", "build": rec.id.as_str(), "spec": args.spec.display().to_string()}),
    );
    drive(rec, spec, store, cloud, out).await
}

/// Runs the reconciler on `rec` and prints the outcome.
pub(super) async fn drive(
    rec: BuildRecord<Phase>,
    spec: Spec,
    store: Store,
    cloud: Cloud,
    out: Output,
) -> CmdResult {
    let keys_dir = store.keys_dir();
    let id = rec.id.clone();
    let reconciler = Reconciler::new(rec, spec, store.clone(), cloud, out.clone(), keys_dir);
    let phase = reconciler.run().await.or_exit(exit::STATE)?;
    let rec = store.load(&id).or_exit(exit::STATE)?;
    report_outcome(&rec, &phase, &out)
}

fn report_outcome(rec: &BuildRecord<Phase>, phase: &Phase, out: &Output) -> CmdResult {
    match phase {
        Phase::Succeeded => {
            let image = rec.resources.get("image").cloned().unwrap_or_default();
            out.result(
                &format!("build {} succeeded: image {image}", rec.id),
                json!({"event": "succeeded", "build": rec.id.as_str(), "image_id": image, "resources": rec.resources, "provenance": super::provenance::of_record(rec)}),
            );
            Ok(exit::OK)
        }
        Phase::Failed { at, error } => {
            out.result(
                &format!("build {} failed at step '{}': {error}\nstate kept: `bakerd resume {}` retries it", rec.id, at.step_description(), rec.id),
                json!({"event": "build_failed", "build": rec.id.as_str(), "phase": at.name(), "error": error}),
            );
            Ok(exit::BUILD_FAILED)
        }
        other => {
            out.result(
                &format!("build {} is {}", rec.id, other.name()),
                json!({"event": "build_ended", "build": rec.id.as_str(), "phase": other.name()}),
            );
            Ok(exit::OK)
        }
    }
}

/// `bakerd resume <id>`: continues a build from its last completed phase; a failed build retries
/// its failed step.
pub async fn resume(args: BuildArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let state = open_state(&args.common, "resume")?;
    let store = Store::new(state);
    let mut rec = store.load(&id).or_exit(exit::STATE)?;
    let out = Output::new(args.common.json);
    match &rec.phase {
        Phase::Succeeded | Phase::Cancelled => {
            out.result(
                &format!(
                    "build {id} already ended ({}); nothing to resume",
                    rec.phase.name()
                ),
                json!({"event": "nothing_to_do", "build": id.as_str(), "phase": rec.phase.name()}),
            );
            return Ok(exit::OK);
        }
        Phase::Failed { .. } => {
            // A failed build whose attempt was cleaned up (no intents left) starts over;
            // otherwise the failed step is retried on the resources it has.
            rec.phase = if rec.intents.is_empty() {
                Phase::Pending
            } else {
                rec.phase.clone().resume_from()
            };
            store.put(&rec).or_exit(exit::STATE)?;
        }
        _ => {}
    }
    let spec = thaw_spec(&rec)?;
    check_files_unchanged(&rec, &spec)?;
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    out.note(&format!(
        "resuming build {id} at '{}'",
        rec.phase.step_description()
    ));
    drive(rec, spec, store, cloud, out).await
}

/// `bakerd cancel <id>`: cleans up everything the build created and marks it cancelled.
pub async fn cancel(args: BuildArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let state = open_state(&args.common, "cancel")?;
    let store = Store::new(state);
    let rec = store.load(&id).or_exit(exit::STATE)?;
    if rec.phase == Phase::Succeeded {
        return Err(CommandError {
            code: exit::BAD_INPUT,
            message: format!("build {id} already succeeded; delete its image with `bakerd gc` rules or the console"),
        });
    }
    let spec = thaw_spec(&rec)?;
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    let out = Output::new(args.common.json);
    let keys_dir = store.keys_dir();
    let mut reconciler = Reconciler::new(rec, spec, store, cloud, out.clone(), keys_dir);
    reconciler.cancel().await.or_exit(exit::CLOUD)?;
    out.result(
        &format!("build {id} cancelled; its resources are deleted"),
        json!({"event": "cancelled", "build": id.as_str()}),
    );
    Ok(exit::OK)
}

/// `bakerd status`: one line per build.
pub fn status(common: CommonArgs) -> CmdResult {
    let state = open_state(&common, "status")?;
    let store = Store::new(state);
    let builds = store.list().or_exit(exit::STATE)?;
    let out = Output::new(common.json);
    if builds.is_empty() && !common.json {
        println!("no builds in {}", common.state_dir.display());
    }
    for b in builds {
        let image = b.resources.get("image").map(String::as_str).unwrap_or("-");
        out.result(
            &format!("{}  {:<16}  image {:<24}  updated {}  {}", b.id, b.phase.name(), image, b.updated_at, spec_path(&b)),
            json!({"build": b.id.as_str(), "phase": b.phase.name(), "image_id": image, "updated_at": b.updated_at.to_string(), "spec": spec_path(&b)}),
        );
    }
    Ok(exit::OK)
}

fn spec_path(rec: &BuildRecord<Phase>) -> String {
    rec.spec_path.clone()
}

/// `bakerd show <id>`: phase, resources, events with durations.
pub fn show(args: BuildArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let state = open_state(&args.common, "show")?;
    let store = Store::new(state);
    let rec = store.load(&id).or_exit(exit::STATE)?;
    let events = store.events(&id).or_exit(exit::STATE)?;
    if args.common.json {
        let value = json!({"build": rec.id.as_str(), "phase": rec.phase, "resources": rec.resources, "spec_hash": rec.spec_hash, "provenance": super::provenance::of_record(&rec), "created_at": rec.created_at.to_string(), "updated_at": rec.updated_at.to_string(), "events": events});
        println!("{value}");
        return Ok(exit::OK);
    }
    println!(
        "build     {}\nspec      {}\nphase     {}",
        rec.id,
        spec_path(&rec),
        rec.phase.name()
    );
    if let Phase::Failed { at, error } = &rec.phase {
        println!("failed at {}: {error}", at.step_description());
    }
    println!(
        "created   {}\nupdated   {}\nresources:",
        rec.created_at, rec.updated_at
    );
    for (role, id) in &rec.resources {
        println!("  {role:<20} {id}");
    }
    if let Some(p) = super::provenance::of_record(&rec).as_object() {
        println!("provenance:");
        for (field, value) in p {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            println!("  {field:<20} {text}");
        }
    }
    println!("events:");
    let mut previous = rec.created_at;
    for e in &events {
        let secs = e.at.millis_since(previous) as f64 / 1000.0;
        println!("  {}  +{secs:>6.1}s  {:<11} {}", e.at, e.kind, e.message);
        previous = e.at;
    }
    Ok(exit::OK)
}

/// A resumed build must run the scripts and upload the files it started with: their contents
/// are part of the spec hash recorded at `apply`.
fn check_files_unchanged(rec: &BuildRecord<Phase>, spec: &Spec) -> Result<(), CommandError> {
    let id = &rec.id;
    let advice = format!(
        "restore them, or `bakerd cancel {id}` and `bakerd apply` the changed spec as a new build"
    );
    match spec.hash() {
        Ok(hash) if hash == rec.spec_hash => Ok(()),
        Ok(_) => Err(CommandError {
            code: exit::BAD_INPUT,
            message: format!(
                "the scripts or files of build {id}'s provisioners changed since it started; {advice}"
            ),
        }),
        Err(e) => Err(CommandError {
            code: exit::BAD_INPUT,
            message: format!("build {id} cannot read its provisioners' files ({e}); {advice}"),
        }),
    }
}

/// Loads a spec or Packer template.
fn load_spec(args: &ApplyArgs) -> Result<SpecSource, CommandError> {
    SpecSource::load(&args.spec, &args.vars, &args.var_files).or_exit(exit::BAD_INPUT)
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
