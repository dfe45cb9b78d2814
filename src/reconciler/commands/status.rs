//! `bakerd status` (alias `list`): one line per build.

use super::{exit, open_state, spec_path, CmdResult, CommonArgs, OrExit};
use crate::reconciler::output::Output;
use crate::reconciler::store::Store;
use serde_json::json;

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
