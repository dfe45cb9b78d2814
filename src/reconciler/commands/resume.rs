//! `bakerd resume`: continue a build from its last completed phase.

use super::drive::{drive, RunContext};
use super::spec_change::{self, SpecChange};
use super::{
    exit, open_state, parse_id, thaw_spec, ApplyArgs, CmdResult, CommandError, OrExit, ResumeArgs,
};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::interrupt::Stops;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::snapshot::Publisher;
use crate::reconciler::state::BuildRecord;
use crate::reconciler::store::Store;
use crate::spec::Spec;
use serde_json::json;
use std::path::PathBuf;

/// `bakerd resume <id>`: continues a build from its last completed phase; a failed build retries
/// its failed step. When the spec file changed since the build started, says what changed and
/// resumes only as told: `--apply-changes` (a new build from the changed spec) or `--as-started`.
pub async fn resume(args: ResumeArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let state = open_state(&args.common, "resume")?;
    let store = Store::new(state);
    let mut rec = store.load(&id).or_exit(exit::STATE)?;
    let out = Output::new(args.common.json);
    if let Phase::Succeeded | Phase::Cancelled = &rec.phase {
        out.result(
            &format!(
                "build {id} already ended ({}); nothing to resume",
                rec.phase.name()
            ),
            json!({"event": "nothing_to_do", "build": id.as_str(), "phase": rec.phase.name()}),
        );
        return Ok(exit::OK);
    }
    let spec = thaw_spec(&rec)?;
    if !args.as_started {
        if let Some(fixed) = changed_spec(&rec, &args, &out)? {
            return replace_build(rec, spec, store, fixed, args).await;
        }
    }
    check_files_unchanged(&rec, &spec)?;
    if let Phase::Failed { .. } = rec.phase {
        rec.phase = restart_phase(&rec);
        rec = store.put(&rec).or_exit(exit::STATE)?;
    }
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    out.note(&format!(
        "resuming build {id} at '{}'",
        rec.phase.step_description()
    ));
    let ctx = RunContext {
        stops: Stops::with_signal_handlers(),
        on_interrupt: args.interrupt.mode(),
    };
    let publisher = Publisher::spawn(store.clone(), ctx.stops.clone());
    let outcome = drive(rec, spec, store, cloud, out.for_build(id.as_str()), &ctx).await;
    publisher.finish();
    Ok(outcome?.code())
}

/// The changed spec file to build instead, with `--apply-changes`; `None` when resuming the
/// frozen spec is what the user gets (unchanged, or the file is unreadable). Without a flag a
/// changed spec is an error that lists the changes and both ways on.
fn changed_spec(
    rec: &BuildRecord<Phase>,
    args: &ResumeArgs,
    out: &Output,
) -> Result<Option<PathBuf>, CommandError> {
    let id = &rec.id;
    let (path, changes) = match spec_change::compare(rec) {
        SpecChange::Unchanged => return Ok(None),
        SpecChange::Unavailable { reason } => {
            out.note(&format!(
                "cannot compare with the spec file: {reason}; resuming the spec build {id} started with"
            ));
            return Ok(None);
        }
        SpecChange::Changed { path, changes } => (path, changes),
    };
    let listed: Vec<String> = changes.iter().map(|c| format!("  {c}")).collect();
    let what = format!(
        "{} changed since build {id} started:\n{}",
        path.display(),
        listed.join("\n")
    );
    if args.apply_changes {
        out.note(&format!(
            "{what}\ncancelling build {id} (deleting what it made) and building the changed spec as a new build"
        ));
        return Ok(Some(path));
    }
    Err(CommandError {
        code: exit::BAD_INPUT,
        message: format!(
            "{what}\nresuming would run the spec as it was when the build started and ignore these \
             changes. `bakerd resume {id} --apply-changes` cancels build {id} (deleting what it \
             made) and builds the changed spec as a new build; `bakerd resume {id} --as-started` \
             resumes without the changes (e.g. when they come from `--var` values given to apply)"
        ),
    })
}

/// `--apply-changes`: cancels the build (deleting what it created), then applies the changed
/// spec as a new build in the same state dir.
async fn replace_build(
    rec: BuildRecord<Phase>,
    spec: Spec,
    store: Store,
    fixed: PathBuf,
    args: ResumeArgs,
) -> CmdResult {
    super::cancel::cancel_build(rec, spec, store, &Output::new(args.common.json)).await?;
    super::apply(ApplyArgs {
        specs: vec![fixed],
        force: false,
        new: true,
        parallel: 1,
        vars: Vec::new(),
        var_files: Vec::new(),
        only: Vec::new(),
        manifest: None,
        detailed_exitcode: false,
        interrupt: args.interrupt,
        common: args.common,
    })
    .await
}

/// Where a failed build starts again: a build whose attempt was cleaned up (no intents left)
/// starts over; otherwise the failed step is retried on the resources it has.
pub(super) fn restart_phase(rec: &BuildRecord<Phase>) -> Phase {
    if rec.intents.is_empty() {
        Phase::Pending
    } else {
        rec.phase.clone().resume_from()
    }
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
