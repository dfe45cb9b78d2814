//! `bakerd apply`: build the images specs describe unless they are up to date — several specs at
//! once, bounded by `--parallel`, in one process sharing one state dir, one HTTP client per
//! endpoint and one rate limiter per account and region.

use super::drive::{drive, Outcome, RunContext};
use super::summary::{self, Finished};
use super::vcpu_ledger::{self, VcpuLedger};
use super::{exit, open_state, ApplyArgs, CmdResult, CommandError, OrExit};
use crate::reconciler::cleanup::deletable_resources;
use crate::reconciler::cloud::{Cloud, FoundImage, Freshness};
use crate::reconciler::distribute::{marker, DISTRIBUTE_KEY};
use crate::reconciler::interrupt::Stops;
use crate::reconciler::output::Output;
use crate::reconciler::phase::Phase;
use crate::reconciler::preflight::Finding;
use crate::reconciler::provenance::CONTENT_HASH_TAG;
use crate::reconciler::quota_check::{vcpu_finding, VcpuQuota};
use crate::reconciler::snapshot::Publisher;
use crate::reconciler::store::{Build, Store};
use crate::spec::{Spec, SpecSource};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// One spec to build, loaded and validated before anything touches the cloud.
pub(super) struct Job {
    pub(super) path: PathBuf,
    /// How messages name the job: the path, and the HCL2 source when a template has several.
    pub(super) label: String,
    pub(super) spec: Spec,
    pub(super) hash: String,
    /// A Packer template's `post-processor "manifest"`, written after a successful build.
    pub(super) manifest: Option<crate::spec::packer::manifest::ManifestRequest>,
}

/// What every job of one `apply` shares.
struct Shared {
    args: ApplyArgs,
    store: Store,
    ctx: RunContext,
    out: Output,
    permits: Semaphore,
    /// vCPUs promised to builds of this process whose instances do not exist yet.
    vcpus: VcpuLedger,
}

/// `bakerd apply <spec>…`: see the module docs.
pub async fn apply(args: ApplyArgs) -> CmdResult {
    let out = Output::new(args.common.json);
    let jobs = load_jobs(&args, &out)?;
    let state = open_state(&args.common, "apply")?;
    let store = Store::new(state);
    let ctx = RunContext {
        stops: Stops::with_signal_handlers(),
        on_interrupt: args.interrupt.mode(),
    };
    let publisher = Publisher::spawn(store.clone(), ctx.stops.clone());
    let shared = Arc::new(Shared {
        permits: Semaphore::new(usize::from(args.parallel)),
        args,
        store,
        ctx,
        out,
        vcpus: VcpuLedger::default(),
    });
    let started = Instant::now();
    let runs = jobs.into_iter().map(|job| run_job(job, shared.clone()));
    let finished = futures::future::join_all(runs).await;
    publisher.finish();
    summary::conclude(&finished, &shared.args, &shared.out, started)
}

/// Every spec file named (directories: their `*.yaml`, `*.yml`, `*.json`, sorted; a directory with
/// `*.pkr.hcl` files is one HCL2 template), loaded, one job per spec (an HCL2 template gives one
/// per `alicloud-ecs` source); any bad input stops the whole apply before a build starts.
pub(super) fn load_jobs(args: &ApplyArgs, out: &Output) -> Result<Vec<Job>, CommandError> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for path in expand(&args.specs)? {
        for job in jobs_of(&path, &args.vars, &args.var_files, &args.only, out)? {
            if let Some(first) = seen.insert(job.hash.clone(), job.label.clone()) {
                return Err(CommandError {
                    code: exit::BAD_INPUT,
                    message: format!(
                        "{first} and {} describe the same image (same spec hash); name each spec once",
                        job.label
                    ),
                });
            }
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// The jobs of one spec file (one per source of an HCL2 template), their warnings printed; the
/// sources of one template share its variables' warnings, so each is said once.
pub(super) fn jobs_of(
    path: &Path,
    vars: &[String],
    var_files: &[PathBuf],
    only: &[String],
    out: &Output,
) -> Result<Vec<Job>, CommandError> {
    let sources = SpecSource::load_all(path, vars, var_files, only).or_exit(exit::BAD_INPUT)?;
    let mut said = std::collections::BTreeSet::new();
    let mut jobs = Vec::new();
    for source in sources {
        for warning in source
            .warnings
            .iter()
            .filter(|w| said.insert(w.to_string()))
        {
            out.note(warning);
        }
        jobs.push(Job {
            path: path.to_path_buf(),
            label: source.label(path),
            hash: source.spec.hash().or_exit(exit::BAD_INPUT)?,
            spec: source.spec,
            manifest: source.manifest,
        });
    }
    Ok(jobs)
}

pub(super) fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CommandError> {
    let mut files = Vec::new();
    for path in paths {
        let entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => {
                files.push(path.clone());
                continue;
            }
        };
        // A directory of `*.pkr.hcl` files is one HCL2 template, as for `packer build dir/`.
        if entries.iter().any(|p| name_of(p).ends_with(".pkr.hcl")) {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = entries
            .into_iter()
            .filter(|p| p.is_file() && is_spec_file(p))
            .collect();
        if found.is_empty() {
            return Err(CommandError {
                code: exit::BAD_INPUT,
                message: format!(
                    "directory {} holds no spec (*.yaml, *.yml, *.json) and no HCL2 template (*.pkr.hcl)",
                    path.display()
                ),
            });
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn is_spec_file(path: &Path) -> bool {
    let name = name_of(path);
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Runs one job when a permit is free; never fails: errors become the job's outcome.
async fn run_job(job: Job, shared: Arc<Shared>) -> Finished {
    let _permit = shared.permits.acquire().await;
    let started = Instant::now();
    let mut finished = Finished::new(Path::new(&job.label), &job.spec, &job.hash);
    let outcome = match plan_and_run(&job, &shared, &mut finished).await {
        Ok(outcome) => outcome,
        Err(e) => {
            shared
                .out
                .error(finished.build.as_ref(), &e.message, e.code);
            e.into()
        }
    };
    finished.seconds = started.elapsed().as_secs_f64();
    finished.outcome = outcome;
    if let Some(id) = &finished.build {
        finished.record = shared.store.load(id).ok();
    }
    write_packer_manifest(&job, &finished, &shared.out);
    finished
}

/// Writes the template's Packer manifest for a build that produced (or found) its image; a
/// failure to write is reported, and the build's own outcome stands.
fn write_packer_manifest(job: &Job, finished: &Finished, out: &Output) {
    let Some(request) = &job.manifest else {
        return;
    };
    let images = finished.images();
    if images.is_empty() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match request.write(&images, now) {
        Ok(()) => out.note(&format!(
            "Packer manifest written to {}",
            request.output.display()
        )),
        Err(e) => out.note(&format!(
            "cannot write the Packer manifest {}: {e}",
            request.output.display()
        )),
    }
}

/// Continues an interrupted build of the same spec, or says it is up to date, or starts one.
async fn plan_and_run(
    job: &Job,
    shared: &Shared,
    finished: &mut Finished,
) -> Result<Outcome, CommandError> {
    let (args, out) = (&shared.args, &shared.out);
    let cloud = Cloud::connect(&job.spec).or_exit(exit::CLOUD)?;
    if !args.new {
        if let Some(rec) = continuable(&shared.store, &job.hash)? {
            finished.build = Some(rec.id.clone());
            return continue_build(rec, job, cloud, shared).await;
        }
    }
    // Also with --force: the lookup checks credentials and endpoint before a build is recorded.
    let freshness = cloud
        .freshness(&job.spec, &job.hash)
        .await
        .or_exit(exit::CLOUD)?;
    if let (false, Freshness::UpToDate(image)) = (args.force, &freshness) {
        out.result(
            &format!("image {} ({}) is up to date with {}; nothing to do (use --force to rebuild)", image.id, image.name, job.label),
            json!({"event": "up_to_date", "image_id": image.id, "image_name": image.name, "spec_hash": job.hash, "spec": job.label}),
        );
        return Ok(Outcome::UpToDate {
            image_id: image.id.clone(),
        });
    }
    if let (Freshness::BaseChanged { base, .. }, Some(why)) =
        (&freshness, freshness.why_out_of_date())
    {
        out.note(&format!(
            "{} is out of date: {why}; building a new image on {base}",
            job.label
        ));
    }
    if let (false, Freshness::DistributionChanged { image }) = (args.force, &freshness) {
        return distribute(job, image, cloud, shared, finished).await;
    }
    let before = shared
        .vcpus
        .before_reading(&job.spec.region, &shared.store)
        .await;
    let quota = preflight(&cloud, job, out, 0).await?;
    let mut ledger = shared.vcpus.hold().await;
    if let Some((cpus, Some(q))) = quota {
        let promised = vcpu_ledger::promised(&ledger, &before);
        if let Some(found) = vcpu_finding(&job.spec, q.max, q.used, cpus, promised) {
            return Err(refusal(job, &[found]));
        }
    }
    if shared.ctx.stops.signalled().is_some() {
        return Ok(Outcome::NotStarted);
    }
    let spec_path = std::fs::canonicalize(&job.path).unwrap_or_else(|_| job.path.clone());
    note_failed_leftovers(&shared.store, &spec_path, out)?;
    let rec = shared
        .store
        .create(job.spec.frozen(), job.hash.clone(), &spec_path)
        .or_exit(exit::STATE)?;
    if let Some((vcpus, _)) = quota {
        vcpu_ledger::promise(&mut ledger, &job.spec.region, &rec.id, vcpus);
    }
    drop(ledger);
    let rec = pin_base(&shared.store, rec, &freshness)?;
    finished.build = Some(rec.id.clone());
    out.result(
        &format!("build {} started for {} in {}", rec.id, job.label, job.spec.region),
        json!({"event": "build_started", "build": rec.id.as_str(), "spec": job.label, "region": job.spec.region}),
    );
    let out = out.for_build(rec.id.as_str());
    drive(
        rec,
        job.spec.clone(),
        shared.store.clone(),
        cloud,
        out,
        &shared.ctx,
    )
    .await
}

/// Pins the family's image the freshness check resolved, so the build uses exactly the base it
/// was judged against; a rebuild also names the image and base it replaces (`bakerd show`).
fn pin_base(store: &Store, mut rec: Build, freshness: &Freshness) -> Result<Build, CommandError> {
    let Some(base) = freshness.resolved_base() else {
        return Ok(rec);
    };
    rec.resources
        .insert("source_image".into(), base.to_string());
    if let Freshness::BaseChanged { previous, .. } = freshness {
        rec.resources
            .insert("replaces_image".into(), previous.id.clone());
        let old_base = previous
            .source_image
            .clone()
            .unwrap_or_else(|| "unrecorded".into());
        rec.resources
            .insert("replaces_source_image".into(), old_base);
    }
    store.put(&rec).or_exit(exit::STATE)
}

/// A new build of a spec file does not replace its earlier failed builds: any that still hold
/// cloud resources (`on_failure: keep`, a failed cleanup) are named with the command that
/// deletes them, so fixing a spec and applying it again leaks nothing unknowingly.
fn note_failed_leftovers(
    store: &Store,
    spec_path: &Path,
    out: &Output,
) -> Result<(), CommandError> {
    let path = spec_path.display().to_string();
    for b in store.list().or_exit(exit::STATE)? {
        if b.spec_path != path || !matches!(b.phase, Phase::Failed { .. }) {
            continue;
        }
        let held = deletable_resources(&b.resources);
        if !held.is_empty() {
            out.note(&format!(
                "build {} of this spec failed earlier and still holds {}; `bakerd cancel {}` deletes them",
                b.id,
                held.join(" "),
                b.id
            ));
        }
    }
    Ok(())
}

/// Only `image.copy_regions` / `image.share_accounts` changed: says the plan, then runs a
/// build that starts at the existing image and only copies, shares and tags it.
async fn distribute(
    job: &Job,
    image: &FoundImage,
    cloud: Cloud,
    shared: &Shared,
    finished: &mut Finished,
) -> Result<Outcome, CommandError> {
    let content = job.spec.content_hash().or_exit(exit::BAD_INPUT)?;
    let plan = distribution_plan(&cloud, &job.spec, &content).await?;
    shared.out.note(&format!(
        "{}: image {} ({}) has this spec's content; only where it goes changed, so it is not \
         rebuilt: {plan}",
        job.path.display(),
        image.id,
        image.name
    ));
    let spec_path = std::fs::canonicalize(&job.path).unwrap_or_else(|_| job.path.clone());
    let store = &shared.store;
    let mut rec = store
        .create(job.spec.frozen(), job.hash.clone(), &spec_path)
        .or_exit(exit::STATE)?;
    rec.results
        .insert(DISTRIBUTE_KEY.into(), marker(&image.id, &content));
    rec.resources.insert("image".into(), image.id.clone());
    if let Some(base) = &image.source_image {
        rec.resources.insert("source_image".into(), base.clone());
    }
    rec.phase = Phase::ImageReady;
    let rec = store.put(&rec).or_exit(exit::STATE)?;
    finished.build = Some(rec.id.clone());
    shared.out.result(
        &format!("build {} distributes image {} for {}", rec.id, image.id, job.path.display()),
        json!({"event": "distribute_started", "build": rec.id.as_str(), "image_id": image.id, "spec": job.path.display().to_string(), "plan": plan}),
    );
    let out = shared.out.for_build(rec.id.as_str());
    drive(
        rec,
        job.spec.clone(),
        store.clone(),
        cloud,
        out,
        &shared.ctx,
    )
    .await
}

/// The plan in words: which regions get a copy, which already hold one, who gets a share.
async fn distribution_plan(
    cloud: &Cloud,
    spec: &Spec,
    content: &str,
) -> Result<String, CommandError> {
    let (mut copy, mut held) = (Vec::new(), Vec::new());
    for region in &spec.image.copy_regions {
        let found = cloud
            .in_region(region)
            .images_tagged(CONTENT_HASH_TAG, content)
            .await
            .or_exit(exit::CLOUD)?;
        if found.is_empty() {
            copy.push(region.as_str());
        } else {
            held.push(region.as_str());
        }
    }
    let list = |v: &[&str]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    Ok(format!(
        "copy to {}; already copied to {}; share with {}",
        list(&copy),
        list(&held),
        list(
            &spec
                .image
                .share_accounts
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        )
    ))
}

/// The newest build of this spec that `apply` should continue rather than start over: one left
/// non-terminal (interrupted, killed), or failed with a failure worth retrying.
fn continuable(store: &Store, hash: &str) -> Result<Option<Build>, CommandError> {
    let builds = store.list().or_exit(exit::STATE)?;
    Ok(builds.into_iter().rev().find(|b| {
        b.spec_hash == hash
            && match &b.phase {
                Phase::Failed { .. } => b.failure_retryable,
                phase => !phase.is_terminal(),
            }
    }))
}

async fn continue_build(
    mut rec: Build,
    job: &Job,
    cloud: Cloud,
    shared: &Shared,
) -> Result<Outcome, CommandError> {
    let what = match &rec.phase {
        Phase::Failed { at, .. } => format!("failed at '{}' (retryable)", at.step_description()),
        phase => format!("left at '{}'", phase.step_description()),
    };
    shared.out.result(
        &format!("continuing build {} of {} ({what}); --new starts a fresh build instead", rec.id, job.label),
        json!({"event": "build_continued", "build": rec.id.as_str(), "spec": job.label, "phase": rec.phase.name()}),
    );
    if let Phase::Failed { .. } = rec.phase {
        rec.phase = super::resume::restart_phase(&rec);
        rec = shared.store.put(&rec).or_exit(exit::STATE)?;
    }
    let out = shared.out.for_build(rec.id.as_str());
    drive(
        rec,
        job.spec.clone(),
        shared.store.clone(),
        cloud,
        out,
        &shared.ctx,
    )
    .await
}

/// The read-only checks `validate --remote` runs, before a new build creates anything.
/// Warnings (a quota that could not be read, or is only a documented default) are printed and
/// do not stop the build. `promised_vcpus`: vCPUs other builds of this process will still create
/// in the region. Returns the instance type's vCPUs when they were counted against the quota.
/// Runs the preflight; on success returns the instance type's vCPUs and the vCPU quota as read,
/// when they were counted.
pub(super) async fn preflight(
    cloud: &Cloud,
    job: &Job,
    out: &Output,
    promised_vcpus: u64,
) -> Result<Option<(u32, Option<VcpuQuota>)>, CommandError> {
    let name = job.spec.image_name_at(unix_now());
    let report = crate::reconciler::preflight::check(cloud, &job.spec, &name, promised_vcpus)
        .await
        .or_exit(exit::CLOUD)?;
    for warning in &report.warnings {
        out.note(&format!("{}: warning: {warning}", job.label));
    }
    if report.findings.is_empty() {
        return Ok(report.vcpus.map(|cpus| (cpus, report.vcpu_quota)));
    }
    Err(refusal(job, &report.findings))
}

/// The error for a spec the cloud would refuse, naming every finding.
fn refusal(job: &Job, findings: &[Finding]) -> CommandError {
    let lines: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
    CommandError {
        code: exit::BAD_INPUT,
        message: format!(
            "{}: the cloud would refuse this spec; nothing was created:\n{}",
            job.label,
            lines.join("\n")
        ),
    }
}

/// Seconds since the Unix epoch, for the image name a build started now would get.
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
