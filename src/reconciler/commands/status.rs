//! `bakerd status` (alias `list`): one line per build. Works while another bakerd runs builds
//! in the same state dir (it reads that process's published snapshot).

use super::spec_change::{self, SpecChange};
use super::{exit, open_view, spec_path, CmdResult, CommonArgs, OrExit};
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::state::BuildId;
use crate::reconciler::store::Build;
use serde_json::json;
use std::collections::{HashMap, HashSet};

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
    let newest = newest_succeeded_per_spec(&builds);
    for b in builds {
        let stale = newest.contains(&b.id).then(|| out_of_date(&b)).flatten();
        let image = b.resources.get("image").map(String::as_str).unwrap_or("-");
        let activity = view.activity(&b);
        let phase = match activity.label() {
            "" => b.phase.name().to_string(),
            label => format!("{} ({label})", b.phase.name()),
        };
        let stale_line = stale
            .as_deref()
            .map(|why| format!("\n    out of date: {why}; `bakerd apply` builds the changed spec"))
            .unwrap_or_default();
        out.result(
            &format!("{}  {phase:<30}  image {image:<24}  updated {}  {}{stale_line}", b.id, b.updated_at, spec_path(&b)),
            json!({"build": b.id.as_str(), "phase": b.phase.name(), "activity": activity.label(), "image_id": image, "updated_at": b.updated_at.to_string(), "spec": spec_path(&b), "why_out_of_date": stale}),
        );
    }
    Ok(exit::OK)
}

/// The newest succeeded build of each spec file: the image that file is currently judged by.
fn newest_succeeded_per_spec(builds: &[Build]) -> HashSet<BuildId> {
    let mut newest: HashMap<&str, &Build> = HashMap::new();
    for b in builds.iter().filter(|b| b.phase == Phase::Succeeded) {
        let entry = newest.entry(b.spec_path.as_str()).or_insert(b);
        if b.created_at > entry.created_at {
            *entry = b;
        }
    }
    newest.values().map(|b| b.id.clone()).collect()
}

/// Why a succeeded build no longer matches its spec file, read offline: the file changed since.
/// (A newer image in a source family needs the cloud: `bakerd validate --remote` says so.)
fn out_of_date(build: &Build) -> Option<String> {
    match spec_change::compare(build) {
        SpecChange::Changed { path, changes } => {
            let more = match changes.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            Some(format!(
                "{} changed since: {}{more}",
                path.display(),
                changes[0]
            ))
        }
        SpecChange::Unchanged | SpecChange::Unavailable { .. } => None,
    }
}
