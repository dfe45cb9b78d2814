//! `bakerd verify <image-id> <spec>`: runs a spec's `verify` checks against an existing image,
//! as a build record of its own (so it is resumable, cancellable and gc-visible like a build),
//! and tags the image `bakerd:verified=true|false`. It never creates, copies or deletes images.

use super::drive::{drive, RunContext};
use super::{exit, open_state, CmdResult, CommandError, CommonArgs, OrExit};
use crate::reconciler::cloud::Cloud;
use crate::reconciler::output::Output;
use crate::reconciler::store::Store;
use crate::reconciler::verify::VERIFY_ONLY_KEY;
use crate::spec::SpecSource;
use serde_json::json;
use std::path::PathBuf;

/// `bakerd verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The image to check (`m-…`), in the spec's region.
    pub image: String,
    /// The spec whose `verify` section (and instance, network, communicator) to use.
    pub spec: PathBuf,
    /// Template variable `name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Variable file (repeatable; Packer templates: JSON, or HCL `*.pkrvars.hcl`).
    #[arg(long = "var-file")]
    pub var_files: Vec<PathBuf>,
    /// HCL2 template with several sources: the one whose `verify` settings to use
    /// (`alicloud-ecs.NAME`), as `apply --only`.
    #[arg(long = "only", value_name = "TYPE.NAME")]
    pub only: Vec<String>,
    #[command(flatten)]
    pub interrupt: super::InterruptArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Records a verify-only build for `args.image` and drives it.
pub async fn verify(args: VerifyArgs) -> CmdResult {
    let source = SpecSource::load(&args.spec, &args.vars, &args.var_files, &args.only)
        .or_exit(exit::BAD_INPUT)?;
    let spec = source.spec;
    if spec.verify.is_none() {
        return Err(CommandError {
            code: exit::BAD_INPUT,
            message: format!(
                "{} has no `verify` section; add `verify: {{ checks: [...] }}` (see docs/spec.md)",
                args.spec.display()
            ),
        });
    }
    let out = Output::new(args.common.json);
    let state = open_state(&args.common, "verify")?;
    let cloud = Cloud::connect(&spec).or_exit(exit::CLOUD)?;
    let status = cloud.image_status(&args.image).await.or_exit(exit::CLOUD)?;
    match status.as_deref() {
        Some("Available") => {}
        other => {
            return Err(CommandError {
                code: exit::CLOUD,
                message: format!(
                    "image {} is {} in {}; `verify` needs an Available image",
                    args.image,
                    other.map_or("not found".to_string(), str::to_string),
                    spec.region
                ),
            })
        }
    }
    let hash = spec.hash().or_exit(exit::BAD_INPUT)?;
    let store = Store::new(state);
    let spec_path = std::fs::canonicalize(&args.spec).unwrap_or_else(|_| args.spec.clone());
    let mut rec = store
        .create(spec.frozen(), hash, &spec_path)
        .or_exit(exit::STATE)?;
    rec.results
        .insert(VERIFY_ONLY_KEY.into(), json!(args.image.clone()));
    rec.resources.insert("image".into(), args.image.clone());
    let rec = store.put(&rec).or_exit(exit::STATE)?;
    out.result(
        &format!("build {} verifies image {}", rec.id, args.image),
        json!({"event": "verify_started", "build": rec.id.as_str(), "image_id": args.image}),
    );
    let ctx = RunContext {
        stops: crate::reconciler::interrupt::Stops::with_signal_handlers(),
        on_interrupt: args.interrupt.mode(),
    };
    let publisher = crate::reconciler::snapshot::Publisher::spawn(store.clone(), ctx.stops.clone());
    let id = rec.id.to_string();
    let outcome = drive(rec, spec, store, cloud, out.for_build(&id), &ctx).await;
    publisher.finish();
    Ok(outcome?.code())
}
