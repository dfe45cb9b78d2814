//! `bakerd validate`: check specs without building — offline, or with `--remote` also against
//! the cloud (read-only), with the very preflight `apply` runs before creating anything.

use super::apply::{expand, jobs_of, preflight, Job};
use super::{exit, CmdResult, CommandError, OrExit};
use crate::reconciler::cloud::{Cloud, Freshness};
use crate::reconciler::output::Output;
use serde_json::json;
use std::path::{Path, PathBuf};

/// `bakerd validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Specs (YAML), Packer templates, or directories holding them.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// Also ask the cloud (read-only): region, source image, instance type and its zones, image
    /// name clash, copy regions, and the quotas the account can read (vCPUs, security groups,
    /// data disk capacity).
    #[arg(long)]
    pub remote: bool,
    /// Template variable `name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Variable file (repeatable).
    #[arg(long = "var-file")]
    pub var_files: Vec<PathBuf>,
    /// Print one JSON event per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Checks every spec and reports each; the exit code is the worst (2 bad spec, 4 cloud error).
pub async fn validate(args: ValidateArgs) -> CmdResult {
    let out = Output::new(args.json);
    let mut worst = exit::OK;
    for path in expand(&args.specs)? {
        match check(&path, &args, &out).await {
            Ok(()) => out.result(
                &format!("{}: ok{}", path.display(), if args.remote { " (checked against the cloud)" } else { "" }),
                json!({"event": "valid", "spec": path.display().to_string(), "remote": args.remote}),
            ),
            Err(e) => {
                out.error(None, &e.message, e.code);
                worst = worst.max(e.code);
            }
        }
    }
    Ok(worst)
}

/// Checks each spec the file describes (each source of an HCL2 template).
async fn check(path: &Path, args: &ValidateArgs, out: &Output) -> Result<(), CommandError> {
    for job in jobs_of(path, &args.vars, &args.var_files, &[], out)? {
        if !args.remote {
            continue;
        }
        let cloud = Cloud::connect(&job.spec).or_exit(exit::CLOUD)?;
        preflight(&cloud, &job, out, 0).await?;
        report_freshness(&cloud, &job, out).await?;
    }
    Ok(())
}

/// Whether `apply` would build, and why: the image of this exact spec exists, or not, or was
/// built on an older image of the source family.
async fn report_freshness(cloud: &Cloud, job: &Job, out: &Output) -> Result<(), CommandError> {
    let freshness = cloud
        .freshness(&job.spec, &job.hash)
        .await
        .or_exit(exit::CLOUD)?;
    let spec = job.label.clone();
    let path = job.path.display();
    match (&freshness, freshness.why_out_of_date()) {
        (Freshness::UpToDate(image), _) => out.result(
            &format!("{spec}: up to date: image {} ({})", image.id, image.name),
            json!({"event": "freshness", "spec": spec, "up_to_date": true, "image_id": image.id}),
        ),
        (_, why) => {
            let why = why.unwrap_or_default();
            out.result(
                &format!("{spec}: out of date: {why}; `bakerd apply {path}` builds it"),
                json!({"event": "freshness", "spec": spec, "up_to_date": false, "why_out_of_date": why}),
            )
        }
    }
    Ok(())
}
