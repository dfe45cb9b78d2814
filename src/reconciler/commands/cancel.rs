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
    let out = Output::new(args.common.json);
    if rec.phase == Phase::Succeeded {
        // As `resume` of a finished build: nothing to do is not an error.
        out.result(
            &already_succeeded(&rec),
            json!({"event": "nothing_to_cancel", "build": id.as_str(), "phase": "succeeded", "image_id": rec.resources.get("image")}),
        );
        return Ok(exit::OK);
    }
    let spec = thaw_spec(&rec)?;
    cancel_build(rec, spec, store, &out).await?;
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
        return Ok(report_settled(id, &rec, &out));
    }
    Err(CommandError {
        code: exit::STATE,
        message: format!("build {id} did not stop within {CANCEL_WAIT:?}; see `bakerd show {id}`"),
    })
}

/// Why a cancel of a finished build does nothing, and how to delete its image if that was the
/// intent: bakerd has no command that deletes a kept image, so it names the `aliyun` CLI call
/// (per region) and `bakerd gc --yes`, which then deletes the snapshots no image uses.
fn already_succeeded(rec: &BuildRecord<Phase>) -> String {
    let id = &rec.id;
    let region = Spec::from_frozen(&rec.spec).map_or_else(|_| "?".to_string(), |s| s.region);
    let region = region.as_str();
    let mut images: Vec<(&str, &str)> = Vec::new();
    if let Some(image) = rec.resources.get("image") {
        images.push((region, image));
    }
    for (role, image) in &rec.resources {
        if let Some(copy_region) = role.strip_prefix("image_copy_") {
            images.push((copy_region, image));
        }
    }
    if images.is_empty() {
        return format!(
            "build {id} already finished (succeeded); cancel has nothing to stop or delete"
        );
    }
    let listed: Vec<String> = images.iter().map(|(r, i)| format!("{i} in {r}")).collect();
    let commands: Vec<String> = images
        .iter()
        .map(|(r, i)| format!("  aliyun ecs DeleteImage --RegionId {r} --ImageId {i}"))
        .collect();
    format!(
        "build {id} already finished: it succeeded with image {}; cancel has nothing to stop and \
         does not delete finished images. To delete the image, run\n{}\nthen `bakerd gc --yes` \
         deletes the snapshots no image uses any more",
        listed.join(", "),
        commands.join("\n")
    )
}

fn report_settled(id: &BuildId, rec: &BuildRecord<Phase>, out: &Output) -> u8 {
    match &rec.phase {
        Phase::Succeeded => {
            out.result(
                &format!("{} (it finished before the cancel request arrived)", already_succeeded(rec)),
                json!({"event": "nothing_to_cancel", "build": id.as_str(), "phase": "succeeded", "image_id": rec.resources.get("image")}),
            );
            exit::OK
        }
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
