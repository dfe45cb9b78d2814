//! `bakerd cancel`: delete what a build created and mark it cancelled.

use super::{exit, open_state, parse_id, thaw_spec, BuildArgs, CmdResult, CommandError, OrExit};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::reconcile::Reconciler;
use crate::reconciler::store::Store;
use serde_json::json;

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
