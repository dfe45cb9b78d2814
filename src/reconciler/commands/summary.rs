//! The end of an `apply`: the summary table, the `--manifest` file and the exit code.

use super::drive::Outcome;
use super::{exit, ApplyArgs, CmdResult, CommandError};
use crate::reconciler::output::Output;
use crate::reconciler::state::BuildId;
use crate::reconciler::store::Build;
use crate::spec::{SourceImage, Spec};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of the `--manifest` layout (and of the `--json` events, see the README).
pub const MANIFEST_VERSION: u32 = 1;

/// What one spec of an `apply` came to.
pub struct Finished {
    /// The spec file as named on the command line.
    pub spec: PathBuf,
    pub spec_hash: String,
    pub region: String,
    /// The source image as the spec names it (the pinned id is in the record's resources).
    pub source_image: String,
    /// The build that ran (or was continued), if any.
    pub build: Option<BuildId>,
    pub outcome: Outcome,
    /// Wall time spent on this spec in this process.
    pub seconds: f64,
    /// The build's record as it ended, for the manifest.
    pub record: Option<Build>,
}

impl Finished {
    /// A spec not yet run.
    pub fn new(path: &Path, spec: &Spec, hash: &str) -> Finished {
        Finished {
            spec: path.to_path_buf(),
            spec_hash: hash.to_string(),
            region: spec.region.clone(),
            source_image: match &spec.source_image {
                SourceImage::Id(id) => id.clone(),
                SourceImage::Family(family) => format!("family:{family}"),
            },
            build: None,
            outcome: Outcome::NotStarted,
            seconds: 0.0,
            record: None,
        }
    }

    /// The image of each region: the build's own region and its copies.
    pub fn images(&self) -> BTreeMap<String, String> {
        let mut images = BTreeMap::new();
        match (&self.outcome, &self.record) {
            (Outcome::UpToDate { image_id }, _) => {
                images.insert(self.region.clone(), image_id.clone());
            }
            (Outcome::Succeeded { image_id }, Some(rec)) => {
                images.insert(self.region.clone(), image_id.clone());
                for (role, id) in &rec.resources {
                    if let Some(region) = role.strip_prefix("image_copy_") {
                        images.insert(region.to_string(), id.clone());
                    }
                }
            }
            _ => {}
        }
        images
    }

    fn manifest_entry(&self) -> Value {
        let rec = self.record.as_ref();
        let pinned = rec.and_then(|r| r.resources.get("source_image")).cloned();
        json!({
            "build_id": self.build.as_ref().map(|b| b.to_string()),
            "spec": self.spec.display().to_string(),
            "spec_hash": self.spec_hash,
            "result": self.outcome.word(),
            "error": self.outcome.error(),
            "region": self.region,
            "images": self.images(),
            "source_image": pinned.unwrap_or_else(|| self.source_image.clone()),
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "build_seconds": rec.map(|r| r.updated_at.millis_since(r.created_at) as f64 / 1000.0),
            "provenance": rec.map(crate::reconciler::provenance::of_record),
        })
    }
}

/// Prints the summary (several specs), writes the manifest, and picks the exit code: the worst
/// outcome's, or with `--detailed-exitcode` 2 when something was built and nothing failed.
pub fn conclude(
    finished: &[Finished],
    args: &ApplyArgs,
    out: &Output,
    started: Instant,
) -> CmdResult {
    if finished.len() > 1 {
        print_table(finished, out, started);
    }
    if let Some(path) = &args.manifest {
        write_manifest(path, finished)?;
    }
    let worst = finished
        .iter()
        .map(|f| f.outcome.code())
        .max_by_key(|code| severity(*code))
        .unwrap_or(exit::OK);
    if !args.detailed_exitcode {
        return Ok(worst);
    }
    Ok(match worst {
        exit::OK
            if finished
                .iter()
                .any(|f| matches!(f.outcome, Outcome::Succeeded { .. })) =>
        {
            exit::BUILT
        }
        exit::OK => exit::OK,
        // 2 means "built" here; bad input is reported as a plain failure.
        exit::BAD_INPUT => exit::BUILD_FAILED,
        other => other,
    })
}

/// Which code wins when builds end differently: interrupts, then failures, then the rest.
fn severity(code: u8) -> u8 {
    match code {
        exit::INTERRUPTED => 10,
        exit::OK => 0,
        other => other,
    }
}

fn print_table(finished: &[Finished], out: &Output, started: Instant) {
    let total = started.elapsed().as_secs_f64();
    let mut lines = vec![format!(
        "{:<14} {:<12} {:<26} {:>8}  {:<14} spec",
        "build", "result", "image", "time", "region"
    )];
    for f in finished {
        let build = f
            .build
            .as_ref()
            .map(|b| b.to_string())
            .unwrap_or_else(|| "-".into());
        let image = f
            .images()
            .get(&f.region)
            .cloned()
            .unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{build:<14} {:<12} {image:<26} {:>7.1}s  {:<14} {}",
            f.outcome.word(),
            f.seconds,
            f.region,
            f.spec.display()
        ));
    }
    let failed = finished
        .iter()
        .filter(|f| f.outcome.code() != exit::OK)
        .count();
    lines.push(format!(
        "{} specs, {failed} not done, {total:.1}s in total",
        finished.len()
    ));
    out.result(
        &lines.join("\n"),
        json!({"event": "summary", "total_seconds": total, "builds": finished.iter().map(Finished::manifest_entry).collect::<Vec<_>>()}),
    );
}

/// Writes the manifest atomically (temporary file, then rename).
fn write_manifest(path: &Path, finished: &[Finished]) -> Result<(), CommandError> {
    let manifest = json!({
        "version": MANIFEST_VERSION,
        "generated_by": concat!("bakerd ", env!("CARGO_PKG_VERSION")),
        "builds": finished.iter().map(Finished::manifest_entry).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CommandError {
            code: exit::STATE,
            message: format!("cannot write the manifest {}: {e}", path.display()),
        })
}
