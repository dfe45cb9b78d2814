//! `bakerd status` (alias `list`): one line per build. Works while another bakerd runs builds
//! in the same state dir (it reads that process's published snapshot).

use super::{exit, open_view, spec_path, CmdResult, CommonArgs, OrExit};
use crate::reconciler::output::Output;
use serde_json::json;

/// `bakerd status`: one line per build.
pub fn status(common: CommonArgs) -> CmdResult {
    let view = open_view(&common, "status")?;
    let builds = view.list().or_exit(exit::STATE)?;
    let out = Output::new(common.json);
    if let (Some(note), false) = (view.source_note(), common.json) {
        println!("{note}");
    }
    if builds.is_empty() && !common.json {
        println!("no builds in {}", common.state_dir.display());
    }
    for b in builds {
        let image = b.resources.get("image").map(String::as_str).unwrap_or("-");
        let activity = view.activity(&b);
        let phase = match activity.label() {
            "" => b.phase.name().to_string(),
            label => format!("{} ({label})", b.phase.name()),
        };
        out.result(
            &format!("{}  {phase:<30}  image {image:<24}  updated {}  {}", b.id, b.updated_at, spec_path(&b)),
            json!({"build": b.id.as_str(), "phase": b.phase.name(), "activity": activity.label(), "image_id": image, "updated_at": b.updated_at.to_string(), "spec": spec_path(&b)}),
        );
    }
    Ok(exit::OK)
}
