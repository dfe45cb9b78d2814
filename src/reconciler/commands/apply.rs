//! `bakerd apply`: build the image a spec describes unless it is up to date.

use super::{exit, open_state, ApplyArgs, CmdResult, CommandError, OrExit};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::reconcile::Reconciler;
use crate::reconciler::state::BuildRecord;
use crate::reconciler::store::Store;
use crate::spec::{Spec, SpecSource};
use serde_json::json;

/// `bakerd apply <spec>`: builds the image unless one for this exact spec exists.
pub async fn apply(args: ApplyArgs) -> CmdResult {
    let source = load_spec(&args)?;
    let out = Output::new(args.common.json);
    for warning in &source.warnings {
        out.note(warning);
    }
    let spec = source.spec;
    let state = open_state(&args.common, "apply")?;
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    let hash = spec.hash().or_exit(exit::BAD_INPUT)?;
    // Also with --force: the lookup checks credentials and endpoint before a build is recorded.
    let existing = cloud
        .image_for_spec_hash(&hash)
        .await
        .or_exit(exit::CLOUD)?;
    if !args.force {
        if let Some(image) = existing {
            out.result(
                &format!("image {} ({}) is up to date with {}; nothing to do (use --force to rebuild)", image.id, image.name, args.spec.display()),
                json!({"event": "up_to_date", "image_id": image.id, "image_name": image.name, "spec_hash": hash}),
            );
            return Ok(exit::OK);
        }
    }
    let frozen = spec.frozen();
    let store = Store::new(state);
    let spec_path = std::fs::canonicalize(&args.spec).unwrap_or_else(|_| args.spec.clone());
    let rec = store
        .create(frozen, hash, &spec_path)
        .or_exit(exit::STATE)?;
    out.result(
        &format!("build {} started for {}", rec.id, args.spec.display()),
        json!({"event": "build_started", "build": rec.id.as_str(), "spec": args.spec.display().to_string()}),
    );
    drive(rec, spec, store, cloud, out).await
}

/// Runs the reconciler on `rec` and prints the outcome.
pub(super) async fn drive(
    rec: BuildRecord<Phase>,
    spec: Spec,
    store: Store,
    cloud: Cloud,
    out: Output,
) -> CmdResult {
    let keys_dir = store.keys_dir();
    let id = rec.id.clone();
    let mut rec = rec;
    rec.credentials = Some(cloud.credentials_used());
    let rec = store.put(&rec).or_exit(exit::STATE)?;
    let reconciler = Reconciler::new(rec, spec, store.clone(), cloud, out.clone(), keys_dir);
    let phase = reconciler.run().await.or_exit(exit::STATE)?;
    let rec = store.load(&id).or_exit(exit::STATE)?;
    report_outcome(&rec, &phase, &out)
}

fn report_outcome(rec: &BuildRecord<Phase>, phase: &Phase, out: &Output) -> CmdResult {
    match phase {
        Phase::Succeeded => {
            let image = rec.resources.get("image").cloned().unwrap_or_default();
            out.result(
                &format!("build {} succeeded: image {image}", rec.id),
                json!({"event": "succeeded", "build": rec.id.as_str(), "image_id": image, "resources": rec.resources}),
            );
            Ok(exit::OK)
        }
        Phase::Failed { at, error } => {
            out.result(
                &format!("build {} failed at step '{}': {error}\nstate kept: `bakerd resume {}` retries it", rec.id, at.step_description(), rec.id),
                json!({"event": "build_failed", "build": rec.id.as_str(), "phase": at.name(), "error": error}),
            );
            Ok(exit::BUILD_FAILED)
        }
        other => {
            out.result(
                &format!("build {} is {}", rec.id, other.name()),
                json!({"event": "build_ended", "build": rec.id.as_str(), "phase": other.name()}),
            );
            Ok(exit::OK)
        }
    }
}

/// Loads a spec or Packer template.
fn load_spec(args: &ApplyArgs) -> Result<SpecSource, CommandError> {
    SpecSource::load(&args.spec, &args.vars, &args.var_files).or_exit(exit::BAD_INPUT)
}
