//! Running one build to its end (or to an interrupt) and saying how it ended.
//!
//! Shared by `apply` (one or many builds) and `resume`.

use super::{exit, CommandError, OnInterrupt, OrExit};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::interrupt::{StopReason, Stops};
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::reconcile::Reconciler;
use crate::reconciler::state::BuildId;
use crate::reconciler::store::{Build, Store};
use crate::spec::Spec;
use serde_json::json;

/// What the builds of one process share while they run.
#[derive(Clone)]
pub struct RunContext {
    /// Where stop requests (signals, `cancel`) reach each build.
    pub stops: Stops,
    /// What an interrupted build does.
    pub on_interrupt: OnInterrupt,
}

/// How one build (or one spec's up-to-date check) ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An Available image of this exact spec exists; nothing was built.
    UpToDate { image_id: String },
    /// The build made its image.
    Succeeded { image_id: String },
    /// A step failed; the state is kept for `resume`.
    Failed {
        step: String,
        error: String,
        /// Whether trying the step again may help (throttling, 5xx, lost answers, waits, SSH);
        /// only then does the message recommend `bakerd resume`.
        retryable: bool,
    },
    /// Stopped by a signal and kept for `resume`.
    Interrupted { step: String },
    /// Stopped and cleaned up (signal with `--on-interrupt cleanup`, or `bakerd cancel`).
    Cancelled { reason: String },
    /// Not started because bakerd was interrupted first.
    NotStarted,
    /// Could not run (bad spec, cloud or state error before or around the build).
    Error(String, u8),
}

impl Outcome {
    /// The exit code this outcome asks for on its own.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::UpToDate { .. } | Outcome::Succeeded { .. } => exit::OK,
            Outcome::Failed { .. } => exit::BUILD_FAILED,
            Outcome::Interrupted { .. } | Outcome::Cancelled { .. } | Outcome::NotStarted => {
                exit::INTERRUPTED
            }
            Outcome::Error(_, code) => *code,
        }
    }

    /// The error text of a failed or broken build.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed { error, .. } | Outcome::Error(error, _) => Some(error),
            _ => None,
        }
    }

    /// One word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::UpToDate { .. } => "up-to-date",
            Outcome::Succeeded { .. } => "built",
            Outcome::Failed { .. } => "failed",
            Outcome::Interrupted { .. } => "interrupted",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::NotStarted => "not-started",
            Outcome::Error(..) => "error",
        }
    }
}

impl From<CommandError> for Outcome {
    fn from(e: CommandError) -> Outcome {
        Outcome::Error(e.message, e.code)
    }
}

/// Runs the reconciler on `rec` until the build ends or is interrupted, then prints the outcome.
///
/// Guarantees: the build is registered with `ctx.stops` while it runs, so a signal or a `cancel`
/// request stops it at a safe point; an interrupted build is cleaned up when the request was a
/// cancel or `--on-interrupt cleanup` applies, else kept and both ways on are printed.
pub async fn drive(
    rec: Build,
    spec: Spec,
    store: Store,
    cloud: Cloud,
    out: Output,
    ctx: &RunContext,
) -> Result<Outcome, CommandError> {
    let id = rec.id.clone();
    let started = std::time::Instant::now();
    let region = spec.region.clone();
    let mut rec = rec;
    rec.credentials = Some(cloud.credentials_used());
    let rec = store.put(&rec).or_exit(exit::STATE)?;
    let stop = ctx.stops.register(&id);
    let keys = store.keys_dir();
    let reconciler = Reconciler::new(
        rec,
        spec.clone(),
        store.clone(),
        cloud.clone(),
        out.clone(),
        keys,
    )
    .with_stop(stop.clone());
    let phase = reconciler.run().await;
    let outcome = match phase.or_exit(exit::STATE) {
        Ok(phase) if phase.is_terminal() => {
            Ok(ended(&store.load(&id).or_exit(exit::STATE)?, &phase))
        }
        Ok(phase) => {
            let reason = (*stop.borrow()).unwrap_or(StopReason::Signal("SIGINT"));
            after_interrupt(&id, &phase, reason, spec, store, cloud, &out, ctx).await
        }
        Err(e) => Err(e),
    };
    ctx.stops.unregister(&id);
    let outcome = outcome?;
    let took = format!("{:.1}s in {region}", started.elapsed().as_secs_f64());
    report(&id, &outcome, &out, &took);
    Ok(outcome)
}

fn ended(rec: &Build, phase: &Phase) -> Outcome {
    match phase {
        Phase::Succeeded => Outcome::Succeeded {
            image_id: rec.resources.get("image").cloned().unwrap_or_default(),
        },
        Phase::Failed { at, error } => Outcome::Failed {
            step: at.step_description().to_string(),
            error: error.clone(),
            retryable: rec.failure_retryable,
        },
        _ => Outcome::Cancelled {
            reason: "cancelled".into(),
        },
    }
}

/// Keeps or cleans up a build stopped before the step at `phase` finished.
#[allow(clippy::too_many_arguments)]
async fn after_interrupt(
    id: &BuildId,
    phase: &Phase,
    reason: StopReason,
    spec: Spec,
    store: Store,
    cloud: Cloud,
    out: &Output,
    ctx: &RunContext,
) -> Result<Outcome, CommandError> {
    let cleanup = reason == StopReason::CancelRequested || ctx.on_interrupt == OnInterrupt::Cleanup;
    if !cleanup {
        return Ok(Outcome::Interrupted {
            step: phase.step_description().to_string(),
        });
    }
    out.note(&format!(
        "[{id}] {}: deleting what the build created (send the signal again to exit at once)",
        reason.describe()
    ));
    let rec = store.load(id).or_exit(exit::STATE)?;
    let keys = store.keys_dir();
    let mut reconciler = Reconciler::new(rec, spec, store, cloud, out.clone(), keys);
    match reconciler.cancel().await {
        Ok(()) => Ok(Outcome::Cancelled {
            reason: reason.describe(),
        }),
        Err(e) => Err(CommandError {
            code: exit::INTERRUPTED,
            message: format!(
                "build {id} was interrupted and its cleanup failed ({e}); `bakerd cancel {id}` \
                 retries the cleanup, `bakerd resume {id}` continues the build"
            ),
        }),
    }
}

/// What to do after a failure: `resume` only when trying again may help; otherwise something
/// must change first — usually the spec, which `resume --apply-changes` then builds.
fn next_steps(id: &BuildId, retryable: bool) -> String {
    if retryable {
        format!("state kept: `bakerd resume {id}` retries it")
    } else {
        format!(
            "retrying the same spec fails the same way: fix what the error names (in the spec, \
             or in the account), then `bakerd resume {id} --apply-changes` builds the changed spec \
             as a new build and deletes what this build made (`bakerd cancel {id}` only deletes)"
        )
    }
}

/// Prints how a build ended.
/// `took` ("52.3s in cn-hangzhou") ends the final line, so the last thing a user reads says how
/// long the build ran and where.
pub fn report(id: &BuildId, outcome: &Outcome, out: &Output, took: &str) {
    let build = id.as_str();
    let (line, event) = match outcome {
        Outcome::Succeeded { image_id } => (
            format!("build {id} succeeded: image {image_id} ({took})"),
            json!({"event": "succeeded", "build": build, "image_id": image_id, "took": took}),
        ),
        Outcome::Failed {
            step,
            error,
            retryable,
        } => (
            format!(
                "build {id} failed at step '{step}' ({took}): {error}
{}",
                next_steps(id, *retryable)
            ),
            json!({"event": "build_failed", "build": build, "step": step, "error": error, "retryable": retryable}),
        ),
        Outcome::Interrupted { step } => (
            format!(
                "build {id} interrupted at '{step}'; its state and resources are kept.\n  \
                 continue it:          bakerd resume {id}\n  \
                 delete what it made:  bakerd cancel {id}"
            ),
            json!({"event": "interrupted", "build": build, "step": step, "resume": format!("bakerd resume {id}"), "cancel": format!("bakerd cancel {id}")}),
        ),
        Outcome::Cancelled { reason } => (
            format!("build {id} stopped ({reason}) and cleaned up: nothing it created is left"),
            json!({"event": "cancelled", "build": build, "reason": reason}),
        ),
        Outcome::UpToDate { .. } | Outcome::NotStarted | Outcome::Error(..) => return,
    };
    out.result(&line, event);
}
