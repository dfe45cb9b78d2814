//! `bakerd cancel`: delete what a build created and mark it cancelled.

use super::{exit, parse_id, thaw_spec, BuildArgs, CmdResult, CommandError, OrExit};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::reconcile::Reconciler;
use crate::reconciler::snapshot::{self, StateView, PUBLISH_EVERY};
use crate::reconciler::state::{BuildId, BuildRecord, StateDir, StateError};
use crate::reconciler::store::Store;
use crate::spec::Spec;
use serde_json::json;
use std::time::{Duration, Instant};

/// `bakerd cancel <id>`: cleans up everything the build created and marks it cancelled.
pub async fn cancel(args: BuildArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let state = match StateDir::open_as(&args.common.state_dir, "cancel") {
        Ok(state) => state,
        Err(StateError::Locked { .. }) => return cancel_running(&args, &id).await,
        Err(e) => return Err(e).or_exit(exit::STATE),
    };
    let store = Store::new(state);
    let rec = store.load(&id).or_exit(exit::STATE)?;
    if rec.phase == Phase::Succeeded {
        return Err(CommandError {
            code: exit::BAD_INPUT,
            message: format!("build {id} already succeeded; delete its image with `bakerd gc` rules or the console"),
        });
    }
    let spec = thaw_spec(&rec)?;
    cancel_build(rec, spec, store, &Output::new(args.common.json)).await?;
    Ok(exit::OK)
}

/// Deletes what the build created, marks it cancelled and says so. Consumes the store, so the
/// state dir is released on return (`resume --apply-changes` then runs `apply`).
pub(super) async fn cancel_build(
    rec: BuildRecord<Phase>,
    spec: Spec,
    store: Store,
    out: &Output,
) -> Result<(), CommandError> {
    let id = rec.id.clone();
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    let keys_dir = store.keys_dir();
    let mut reconciler = Reconciler::new(rec, spec, store, cloud, out.clone(), keys_dir);
    reconciler.cancel().await.or_exit(exit::CLOUD)?;
    out.result(
        &format!("build {id} cancelled; its resources are deleted"),
        json!({"event": "cancelled", "build": id.as_str()}),
    );
    Ok(())
}

/// How long `cancel` waits for the running process to stop and clean up a build.
const CANCEL_WAIT: Duration = Duration::from_secs(30 * 60);

/// Cancel of a build another bakerd is running: leave it a request, then wait until the build
/// has ended (cancelled, or finished before the request arrived).
async fn cancel_running(args: &BuildArgs, id: &BuildId) -> CmdResult {
    let dir = &args.common.state_dir;
    let out = Output::new(args.common.json);
    match StateView::open(dir, "cancel").or_exit(exit::STATE)? {
        StateView::Published { snapshot, command } if snapshot.running.contains(id) => {
            snapshot::request_cancel(dir, id).or_exit(exit::STATE)?;
            out.note(&format!(
                "build {id} is running in pid {} ({command}); asked it to stop and delete what the build created",
                snapshot.pid
            ));
        }
        StateView::Published { snapshot, command } => {
            return Err(CommandError {
                code: exit::STATE,
                message: format!(
                "state dir {} is locked by pid {} ({command}), which is not running build {id}; \
                     run `bakerd cancel {id}` again when it has finished",
                dir.display(),
                snapshot.pid
            ),
            })
        }
        // The holder exited meanwhile: cancel as usual.
        StateView::Live(store) => {
            drop(store);
            return Box::pin(cancel(args.clone())).await;
        }
    }
    let started = Instant::now();
    while started.elapsed() < CANCEL_WAIT {
        tokio::time::sleep(PUBLISH_EVERY).await;
        let Ok(view) = StateView::open(dir, "cancel") else {
            continue;
        };
        let Ok(rec) = view.load(dir, id) else {
            continue;
        };
        if let StateView::Published { snapshot, .. } = &view {
            if snapshot.running.contains(id) {
                continue;
            }
        }
        return Ok(report_settled(id, &rec.phase, &out));
    }
    Err(CommandError {
        code: exit::STATE,
        message: format!("build {id} did not stop within {CANCEL_WAIT:?}; see `bakerd show {id}`"),
    })
}

fn report_settled(id: &BuildId, phase: &Phase, out: &Output) -> u8 {
    match phase {
        Phase::Cancelled => {
            out.result(
                &format!("build {id} cancelled; its resources are deleted"),
                json!({"event": "cancelled", "build": id.as_str()}),
            );
            exit::OK
        }
        other => {
            out.result(
                &format!("build {id} ended as {} before the cancel took effect; `bakerd cancel {id}` again deletes what is left", other.name()),
                json!({"event": "cancel_missed", "build": id.as_str(), "phase": other.name()}),
            );
            exit::BUILD_FAILED
        }
    }
}
