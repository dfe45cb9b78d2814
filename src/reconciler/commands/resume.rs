//! `bakerd resume`: continue a build from its last completed phase.

use super::drive::{drive, RunContext};
use super::{exit, open_state, parse_id, thaw_spec, CmdResult, CommandError, OrExit, ResumeArgs};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::interrupt::Stops;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::snapshot::Publisher;
use crate::reconciler::state::BuildRecord;
use crate::reconciler::store::Store;
use crate::spec::Spec;
use serde_json::json;

/// `bakerd resume <id>`: continues a build from its last completed phase; a failed build retries
/// its failed step.
pub async fn resume(args: ResumeArgs) -> CmdResult {
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
            rec.phase = restart_phase(&rec);
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
    let ctx = RunContext {
        stops: Stops::with_signal_handlers(),
        on_interrupt: args.interrupt.mode(),
    };
    let publisher = Publisher::spawn(store.clone(), ctx.stops.clone());
    let outcome = drive(rec, spec, store, cloud, out.for_build(id.as_str()), &ctx).await;
    publisher.finish();
    Ok(outcome?.code())
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
