//! `bakerd gc`: finds every bakerd-tagged resource in the cloud that no live build owns and
//! deletes it, in dependency order; prunes old finished build records.
//!
//! # The rule
//!
//! gc works from the cloud's tags, not from the state: a resource is bakerd's when it carries
//! `bakerd:managed=true` and a `bakerd:build-id`. Untagged resources are never listed, so never
//! touched. Each tagged resource's build is classified against the state directory:
//!
//! - **interrupted**: the state records a non-terminal phase updated less than `--older-than`
//!   ago. gc holds the state dir's lock, so no bakerd runs it: it was interrupted. Its resources
//!   are kept and listed with the `bakerd resume <id>` that continues it; `--include-interrupted`
//!   deletes them (and marks the build cancelled).
//! - **stale**: non-terminal phase, last update `--older-than` ago or more (abandoned).
//! - **failed**, **cancelled**, **succeeded**: the recorded terminal phase.
//! - **unknown**: no record in this state dir (or the state dir is damaged: then every build is
//!   unknown). Such a build may be running right now from another state dir (CI jobs with their
//!   own state dirs), so the absence of a record never condemns anything: a resource of an
//!   unknown build is deleted only when the resource itself, by its cloud `CreationTime`, is
//!   older than `--older-than`. A resource without a CreationTime is kept.
//!
//! Then, per resource of a build that nothing above protects:
//!
//! - instances, EIPs, key pairs, security groups, vSwitches, VPCs are temporary: deleted (a
//!   succeeded build left them behind only if its cleanup was interrupted);
//! - an image is a **finished output** when it is `Available` and its build is not failed or
//!   cancelled (an unknown build's Available image is kept: losing the state must never cost the
//!   images). Finished outputs are kept, except that `--keep N` deletes all but the newest N
//!   finished images of each image family (per region). Other images (Creating, CreateFailed, of
//!   failed or cancelled builds) are deleted;
//! - a snapshot is kept while any image that is kept (bakerd's or not) is made from it; otherwise
//!   deleted (with its image, when its image is deleted).
//!
//! Deletion order (`--yes`): instances (forced, waited until gone), EIPs (unassociated if still
//! in use, then released), key pairs, security groups
//! (DependencyViolation retried briefly), vSwitches, VPCs, images (each followed by its
//! snapshots), then the remaining snapshots. Without `--yes` nothing is deleted: one line per
//! resource says what would happen and why.

mod inventory;
mod plan;

use super::cloud::{Cloud, CloudError};
use super::commands::{exit, CommandError};
use super::keys::KeyStore;
use super::phase::Phase;
use super::snapshot::StateView;
use super::state::{StateDir, StateError, Timestamp};
use super::store::{Build, Store};
use crate::client::{ClientConfig, ClientError};
use inventory::{list_region, Found, Kind};
use plan::{human, plan_region, Action, BuildView, Entry, Policy, Views};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// Region used when neither `--region` nor the state names one.
const DEFAULT_REGION: &str = "cn-hangzhou";

/// `bakerd gc`.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// State directory whose builds decide what is still in use.
    #[arg(long, default_value = "state", env = "BAKERD_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Region to sweep (repeatable; default: the regions of the builds in the state dir, else
    /// cn-hangzhou).
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// ECS endpoint (default: BAKERD_ECS_ENDPOINT, else the region's public endpoint).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// A non-terminal build whose record has not changed for this long is abandoned (e.g. 30m,
    /// 24h, 7d, 0s).
    #[arg(long, default_value = "24h", value_parser = parse_age)]
    pub older_than: Duration,
    /// Keep only the newest N finished images of each image family; delete the older ones and
    /// their snapshots.
    #[arg(long)]
    pub keep: Option<usize>,
    /// Also forget finished build records (succeeded, failed, cancelled) not updated for this
    /// long, with their key files.
    #[arg(long, value_parser = parse_age)]
    pub prune_state: Option<Duration>,
    /// Also delete builds of this state dir that were interrupted less than --older-than ago
    /// (without it they are listed with their `bakerd resume` command and kept).
    #[arg(long)]
    pub include_interrupted: bool,
    /// Delete (without it, gc only prints what it would delete and why).
    #[arg(long)]
    pub yes: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// A failed gc operation.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("cannot connect to ECS for region {region}: {source}")]
    Connect {
        region: String,
        #[source]
        source: Box<CloudError>,
    },
    #[error("cannot list {kind}s in {region}: {source}")]
    List {
        kind: &'static str,
        region: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Parses `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 90s, 30m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(n * secs))
}

/// Prints plan lines as text or JSON.
struct Printer {
    json: bool,
}

impl Printer {
    fn line(&self, verb: &str, kind: &str, id: &str, build: &str, region: &str, reason: &str) {
        if self.json {
            let event = json!({"event": "gc", "action": verb, "kind": kind, "id": id,
                "build": build, "region": region, "reason": reason});
            println!("{event}");
        } else {
            println!("{verb:<12} {kind:<14} {id:<24} {build:<12} {region:<14} {reason}");
        }
    }

    fn entry(&self, verb: &str, e: &Entry, reason: &str) {
        let f = &e.found;
        self.line(verb, f.kind.name(), &f.id, &f.build, &f.region, reason);
    }

    fn note(&self, message: &str) {
        if self.json {
            println!("{}", json!({"event": "note", "message": message}));
        } else {
            println!("{message}");
        }
    }
}

/// The state dir as gc sees it: open (and locked) or damaged.
struct GcState {
    store: Option<Store>,
    builds: Vec<Build>,
    /// Another bakerd holds the lock (dry run from published builds): its non-terminal builds
    /// may be running, not interrupted.
    locked_elsewhere: bool,
}

/// Opens the state dir; a damaged one is reported and treated as empty, a locked one refused.
fn open_state(args: &GcArgs, out: &Printer) -> Result<GcState, CommandError> {
    let opened = StateDir::open_as(&args.state_dir, "gc").and_then(|dir| {
        let store = Store::new(dir);
        let builds = store.list()?;
        Ok(GcState {
            store: Some(store),
            builds,
            locked_elsewhere: false,
        })
    });
    match opened {
        Ok(state) => Ok(state),
        Err(e @ (StateError::Damaged { .. } | StateError::CorruptRecord { .. })) => {
            out.note(&format!(
                "warning: {e}\nworking from cloud tags alone: every build counts as unknown \
                 (finished images are still kept)"
            ));
            Ok(GcState {
                store: None,
                builds: Vec::new(),
                locked_elsewhere: false,
            })
        }
        Err(StateError::Locked { .. }) if !args.yes => published_state(args, out),
        Err(e) => Err(CommandError {
            code: exit::STATE,
            message: e.to_string(),
        }),
    }
}

/// A dry run while another bakerd holds the state dir works from the builds it published
/// (see [`crate::reconciler::snapshot`]); deleting (`--yes`) still needs the lock.
fn published_state(args: &GcArgs, out: &Printer) -> Result<GcState, CommandError> {
    let view = StateView::open(&args.state_dir, "gc").map_err(|e| CommandError {
        code: exit::STATE,
        message: e.to_string(),
    })?;
    if let Some(note) = view.source_note() {
        out.note(&note);
    }
    let builds = view.list().map_err(|e| CommandError {
        code: exit::STATE,
        message: e.to_string(),
    })?;
    Ok(GcState {
        store: None,
        builds,
        locked_elsewhere: true,
    })
}

/// `--region` values, else the regions (and image copy regions) of recorded builds, else the
/// default region.
fn regions(args: &GcArgs, builds: &[Build]) -> Vec<String> {
    let mut set: BTreeSet<String> = args.regions.iter().cloned().collect();
    if set.is_empty() {
        for b in builds {
            let spec = spec_body(b);
            set.extend(spec["region"].as_str().map(str::to_string));
            if let Some(copies) = spec["image"]["copy_regions"].as_array() {
                set.extend(copies.iter().filter_map(|r| r.as_str().map(str::to_string)));
            }
        }
    }
    if set.is_empty() {
        set.insert(DEFAULT_REGION.to_string());
    }
    set.into_iter().collect()
}

/// The spec fields of a build record: the frozen form keeps them under `spec`
/// (`crate::spec::frozen`); older records held them at the top.
pub(super) fn spec_body(b: &Build) -> &serde_json::Value {
    match b.spec.get("spec") {
        Some(body) if body.is_object() => body,
        _ => &b.spec,
    }
}

/// One client per region, on the default credential chain.
fn connect(args: &GcArgs, region: &str) -> Result<Cloud, GcError> {
    let mut config = ClientConfig::new(region);
    if let Some(endpoint) = &args.endpoint {
        config.endpoint = Some(endpoint.clone());
    }
    Cloud::from_config(config).map_err(|source| GcError::Connect {
        region: region.to_string(),
        source: Box::new(source),
    })
}

/// Deletes one resource with the reconciler's idempotent deletions.
async fn delete(cloud: &Cloud, f: &Found) -> Result<(), CloudError> {
    match f.kind {
        Kind::Instance => cloud.delete_instance_and_wait(&f.id).await,
        Kind::Eip => cloud.release_eip(&f.id).await,
        Kind::KeyPair => cloud.delete_key_pair(&f.id).await,
        Kind::SecurityGroup => cloud.delete_security_group(&f.id).await,
        Kind::VSwitch => cloud.delete_vswitch(&f.id).await,
        Kind::Vpc => cloud.delete_vpc(&f.id).await,
        Kind::Image => cloud.delete_image_and_snapshots(&f.id).await,
        Kind::Snapshot => cloud.delete_snapshot(&f.id).await,
    }
}

/// Deletes the plan's instances region by region, waiting for each region's together (one
/// Describe per poll for all of them); returns each instance's outcome.
async fn delete_instances(
    plan: &[Entry],
    clouds: &HashMap<String, Cloud>,
) -> HashMap<String, Result<(), CloudError>> {
    let mut by_region: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in plan.iter().filter(|e| e.action == Action::Delete) {
        if e.found.kind == Kind::Instance {
            let ids = by_region.entry(e.found.region.as_str()).or_default();
            ids.push(e.found.id.clone());
        }
    }
    let mut outcomes = HashMap::new();
    for (region, ids) in by_region {
        if let Some(cloud) = clouds.get(region) {
            outcomes.extend(cloud.delete_instances_and_wait(&ids).await);
        }
    }
    outcomes
}

/// Carries out the plan in dependency order; returns the builds with a failed deletion.
async fn execute(
    plan: &[Entry],
    clouds: &HashMap<String, Cloud>,
    out: &Printer,
) -> BTreeSet<String> {
    let mut failed = BTreeSet::new();
    let mut instances = delete_instances(plan, clouds).await;
    for e in plan.iter().filter(|e| e.action == Action::Delete) {
        let Some(cloud) = clouds.get(&e.found.region) else {
            continue;
        };
        let outcome = match e.found.kind {
            Kind::Instance => instances.remove(&e.found.id).unwrap_or(Ok(())),
            _ => delete(cloud, &e.found).await,
        };
        match outcome {
            Ok(()) => out.entry("deleted", e, &e.reason),
            Err(err) => {
                failed.insert(e.found.build.clone());
                out.entry("FAILED", e, &format!("{}: {err}", e.reason));
            }
        }
    }
    failed
}

/// Marks recorded builds whose leftovers gc deleted as cancelled (a resume would find its
/// resources gone) and removes their key files.
fn retire_builds(state: &GcState, plan: &[Entry], failed: &BTreeSet<String>, views: &Views) {
    let Some(store) = &state.store else { return };
    let cleaned: BTreeSet<&str> = plan
        .iter()
        .filter(|e| e.action == Action::Delete && !failed.contains(&e.found.build))
        .filter(|e| {
            matches!(
                views.get(&e.found.build),
                Some(BuildView::Failed | BuildView::Stale { .. } | BuildView::Interrupted { .. })
            )
        })
        .map(|e| e.found.build.as_str())
        .collect();
    let keys = KeyStore::new(store.keys_dir());
    for build in state
        .builds
        .iter()
        .filter(|b| cleaned.contains(b.id.as_str()))
    {
        let mut rec = build.clone();
        rec.phase = Phase::Cancelled;
        let result = store.put(&rec).and_then(|_| {
            store.event(
                &rec.id,
                "gc",
                "resources deleted by `bakerd gc`; build cancelled",
            )
        });
        if let Err(e) = result {
            tracing::warn!(build = %rec.id, error = %e, "cannot mark build cancelled after gc");
        }
        if let Err(e) = keys.delete(&rec.id) {
            tracing::warn!(build = %rec.id, error = %e, "cannot delete key file after gc");
        }
    }
}

/// `--prune-state`: forgets finished records not updated for `age`, with their key files.
fn prune(state: &GcState, age: Duration, yes: bool, out: &Printer) -> Result<usize, CommandError> {
    let Some(store) = &state.store else {
        out.note("state dir damaged: nothing pruned");
        return Ok(0);
    };
    let now = Timestamp::now();
    let keys = KeyStore::new(store.keys_dir());
    let mut pruned = 0;
    for b in state.builds.iter().filter(|b| b.phase.is_terminal()) {
        let idle = Duration::from_millis(now.millis_since(b.updated_at).max(0) as u64);
        if idle < age {
            continue;
        }
        let reason = format!(
            "{} record, last updated {} ago",
            b.phase.name(),
            human(idle)
        );
        if yes {
            keys.delete(&b.id).map_err(|e| CommandError {
                code: exit::STATE,
                message: e.to_string(),
            })?;
            store.delete(&b.id).map_err(|e| CommandError {
                code: exit::STATE,
                message: e.to_string(),
            })?;
        }
        let verb = if yes { "pruned" } else { "would-prune" };
        out.line(
            verb,
            "build-record",
            b.id.as_str(),
            b.id.as_str(),
            "-",
            &reason,
        );
        pruned += 1;
    }
    Ok(pruned)
}

/// Lists and plans every region.
async fn plan_all(
    args: &GcArgs,
    regions: &[String],
    (views, builds): (&Views, &[Build]),
    policy: &Policy,
) -> Result<(Vec<Entry>, HashMap<String, Cloud>), GcError> {
    let mut plan = Vec::new();
    let mut clouds = HashMap::new();
    for region in regions {
        let cloud = connect(args, region)?;
        let mut inv = list_region(&cloud).await?;
        inv.add_recorded_eips(builds, region);
        plan.extend(plan_region(inv, views, args.keep, policy));
        clouds.insert(region.clone(), cloud);
    }
    // Dependency order across regions too: every instance before any key pair, and so on.
    plan.sort_by(|a, b| {
        (a.found.kind, &a.found.region, &a.found.id).cmp(&(
            b.found.kind,
            &b.found.region,
            &b.found.id,
        ))
    });
    Ok((plan, clouds))
}

/// `bakerd gc`: see the module docs for the rule.
pub async fn gc(args: GcArgs) -> Result<u8, CommandError> {
    let out = Printer { json: args.json };
    let state = open_state(&args, &out)?;
    let now = Timestamp::now();
    let views: Views = state
        .builds
        .iter()
        .map(|b| (b.id.to_string(), BuildView::of(b, args.older_than, now)))
        .collect();
    let regions = regions(&args, &state.builds);
    let policy = Policy {
        older_than: args.older_than,
        include_interrupted: args.include_interrupted,
        locked_elsewhere: state.locked_elsewhere,
        now_secs: now.0 / 1000,
    };
    let (plan, clouds) = plan_all(&args, &regions, (&views, &state.builds), &policy)
        .await
        .map_err(|e| CommandError {
            code: exit::CLOUD,
            message: e.to_string(),
        })?;
    let doomed = plan.iter().filter(|e| e.action == Action::Delete).count();
    for e in plan.iter().filter(|e| e.action == Action::Keep) {
        out.entry("keep", e, &e.reason);
    }
    let mut failed = BTreeSet::new();
    if args.yes {
        failed = execute(&plan, &clouds, &out).await;
        retire_builds(&state, &plan, &failed, &views);
    } else {
        for e in plan.iter().filter(|e| e.action == Action::Delete) {
            out.entry("would-delete", e, &e.reason);
        }
    }
    let pruned = match args.prune_state {
        Some(age) => prune(&state, age, args.yes, &out)?,
        None => 0,
    };
    summarize(&args, &regions, doomed, plan.len() - doomed, pruned, &out);
    if !failed.is_empty() {
        let builds: Vec<String> = failed.into_iter().collect();
        out.note(&format!(
            "some deletions FAILED (builds {}; see the FAILED lines): rerun `bakerd gc --yes`, \
             deletions are idempotent",
            builds.join(", ")
        ));
        return Ok(exit::CLOUD);
    }
    Ok(exit::OK)
}

fn summarize(
    args: &GcArgs,
    regions: &[String],
    doomed: usize,
    kept: usize,
    pruned: usize,
    out: &Printer,
) {
    let regions = regions.join(",");
    let message = if args.yes {
        format!("gc ({regions}): {doomed} resources to delete, kept {kept}, pruned {pruned} build records")
    } else {
        format!(
            "gc ({regions}): dry run: {doomed} resources would be deleted, {kept} kept, {pruned} \
             build records would be pruned; rerun with --yes to delete"
        )
    };
    if args.json {
        let event = json!({"event": "gc_summary", "regions": regions, "dry_run": !args.yes,
            "delete": doomed, "keep": kept, "prune": pruned});
        println!("{event}");
    } else {
        out.note(&message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_age("1w").is_err());
        assert!(parse_age("h").is_err());
    }
}
