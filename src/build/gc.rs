//! `bakerd gc`: finds every bakerd-tagged resource in the cloud that no live build owns and
//! deletes it, in dependency order; prunes old finished build records.
//!
//! # The rule
//!
//! gc works from the cloud's tags, not from the state: a resource is bakerd's when it carries
//! `bakerd:managed=true` and a `bakerd:build-id`. Untagged resources are never listed, so never
//! touched. Each tagged resource's build is classified against the state directory:
//!
//! - **running**: the state records a non-terminal phase AND the record was updated less than
//!   `--older-than` ago. Nothing of a running build is touched (an interrupted build may still be
//!   resumed; the threshold is how long bakerd waits for that).
//! - **stale**: non-terminal phase, last update `--older-than` ago or more (abandoned).
//! - **failed**, **cancelled**, **succeeded**: the recorded terminal phase.
//! - **unknown**: no record in this state dir (or the state dir is damaged: then every build is
//!   unknown). Caveat: a build run from *another* state dir against the same account is unknown
//!   here too; gc cannot tell whether it is running, so run gc from the state dir your builds use.
//!
//! Then, per resource of a build that is not running:
//!
//! - instances, key pairs, security groups, vSwitches, VPCs are temporary: always deleted (a
//!   succeeded build left them behind only if its cleanup was interrupted);
//! - an image is a **finished output** when it is `Available` and its build is not failed or
//!   cancelled (an unknown build's Available image is kept: losing the state must never cost the
//!   images). Finished outputs are kept, except that `--keep N` deletes all but the newest N
//!   finished images of each image family (per region). Other images (Creating, CreateFailed, of
//!   failed or cancelled builds) are deleted;
//! - a snapshot is kept while any image that is kept (bakerd's or not) is made from it; otherwise
//!   deleted (with its image, when its image is deleted).
//!
//! Deletion order (`--yes`): instances (forced, waited until gone), key pairs, security groups
//! (DependencyViolation retried briefly), vSwitches, VPCs, images (each followed by its
//! snapshots), then the remaining snapshots. Without `--yes` nothing is deleted: one line per
//! resource says what would happen and why.

use super::cloud::{Cloud, CloudError};
use super::commands::{exit, CommandError};
use super::keys::KeyStore;
use super::phase::Phase;
use super::state::{StateDir, StateError, Timestamp};
use super::store::{Build, Store};
use crate::client::api::images::{DescribeImages, Image, ALL_IMAGE_STATUSES};
use crate::client::api::instances::DescribeInstances;
use crate::client::api::keypairs::DescribeKeyPairs;
use crate::client::api::network::DescribeSecurityGroups;
use crate::client::api::storage::DescribeSnapshots;
use crate::client::api::tags::ListTagResources;
use crate::client::{ClientConfig, ClientError, Tag};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// Tag every bakerd resource carries.
const MANAGED_TAG: (&str, &str) = ("bakerd:managed", "true");
/// Tag naming the build that created a resource.
const BUILD_TAG: &str = "bakerd:build-id";
/// Region used when neither `--region` nor the state names one.
const DEFAULT_REGION: &str = "cn-hangzhou";
/// Pause between retries of a deletion blocked by a dependency.
const DEPENDENCY_PAUSE: Duration = Duration::from_millis(500);

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

/// Kinds of resources, in deletion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Instance,
    KeyPair,
    SecurityGroup,
    VSwitch,
    Vpc,
    Image,
    Snapshot,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::KeyPair => "key-pair",
            Kind::SecurityGroup => "security-group",
            Kind::VSwitch => "vswitch",
            Kind::Vpc => "vpc",
            Kind::Image => "image",
            Kind::Snapshot => "snapshot",
        }
    }
}

/// What an image needs for the decision.
#[derive(Debug, Clone, Default)]
struct ImageFacts {
    family: String,
    created: String,
    available: bool,
    snapshots: Vec<String>,
}

/// One bakerd-tagged resource found in the cloud.
#[derive(Debug, Clone)]
struct Found {
    kind: Kind,
    id: String,
    region: String,
    build: String,
    image: Option<ImageFacts>,
}

/// Everything gc learnt about one region.
#[derive(Debug, Default)]
struct RegionInventory {
    found: Vec<Found>,
    /// Every own image (tagged or not) → the snapshots it is made from.
    image_snapshots: HashMap<String, Vec<String>>,
}

/// The bakerd build id on a tagged resource, if it is bakerd's.
fn bakerd_build(tags: &[Tag]) -> Option<String> {
    let managed = tags
        .iter()
        .any(|t| t.key == MANAGED_TAG.0 && t.value == MANAGED_TAG.1);
    let build = tags.iter().find(|t| t.key == BUILD_TAG)?;
    (managed && !build.value.is_empty()).then(|| build.value.clone())
}

fn managed_filter() -> Vec<Tag> {
    vec![Tag::new(MANAGED_TAG.0, MANAGED_TAG.1)]
}

impl RegionInventory {
    fn push(&mut self, kind: Kind, id: String, region: &str, tags: &[Tag]) {
        if let Some(build) = bakerd_build(tags) {
            self.found.push(Found {
                kind,
                id,
                region: region.to_string(),
                build,
                image: None,
            });
        }
    }
}

/// Lists every bakerd resource of one region, plus every own image's snapshots.
async fn list_region(cloud: &Cloud) -> Result<RegionInventory, GcError> {
    let region = cloud.region().to_string();
    let client = cloud.client();
    let fail = |kind| {
        let region = region.clone();
        move |source: ClientError| GcError::List {
            kind,
            region,
            source: Box::new(source),
        }
    };
    let mut inv = RegionInventory::default();
    let mut req = DescribeInstances::in_region(&region);
    req.tags = managed_filter();
    for i in client.list_all(req).await.map_err(fail("instance"))? {
        inv.push(Kind::Instance, i.instance_id, &region, &i.tags);
    }
    let req = DescribeKeyPairs {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for k in client.list_all(req).await.map_err(fail("key pair"))? {
        inv.push(Kind::KeyPair, k.key_pair_name, &region, &k.tags);
    }
    let req = DescribeSecurityGroups {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for g in client.list_all(req).await.map_err(fail("security group"))? {
        inv.push(Kind::SecurityGroup, g.security_group_id, &region, &g.tags);
    }
    for (kind, rtype) in [(Kind::VSwitch, "vswitch"), (Kind::Vpc, "vpc")] {
        for (id, tags) in list_tagged(cloud, rtype).await.map_err(fail(kind.name()))? {
            inv.push(kind, id, &region, &tags);
        }
    }
    let req = DescribeSnapshots {
        region_id: region.clone(),
        tags: managed_filter(),
        ..Default::default()
    };
    for s in client.list_all(req).await.map_err(fail("snapshot"))? {
        inv.push(Kind::Snapshot, s.snapshot_id, &region, &s.tags);
    }
    list_images(cloud, &mut inv).await.map_err(fail("image"))?;
    Ok(inv)
}

/// Resources of `rtype` carrying the managed tag, with all their tags (ListTagResources: VPCs
/// and vSwitches have no tag filter on their Describe actions).
async fn list_tagged(
    cloud: &Cloud,
    rtype: &str,
) -> Result<BTreeMap<String, Vec<Tag>>, ClientError> {
    let req = ListTagResources {
        region_id: cloud.region().to_string(),
        resource_type: rtype.to_string(),
        tags: managed_filter(),
        ..Default::default()
    };
    let mut by_id: BTreeMap<String, Vec<Tag>> = BTreeMap::new();
    for row in cloud.client().list_all(req).await? {
        by_id
            .entry(row.resource_id)
            .or_default()
            .push(Tag::new(row.tag_key, row.tag_value));
    }
    Ok(by_id)
}

/// Every own image in any status: bakerd's go into `found`, all into `image_snapshots`.
async fn list_images(cloud: &Cloud, inv: &mut RegionInventory) -> Result<(), ClientError> {
    let req = DescribeImages {
        region_id: cloud.region().to_string(),
        image_owner_alias: Some("self".into()),
        status: Some(ALL_IMAGE_STATUSES.into()),
        ..Default::default()
    };
    let images: Vec<Image> = cloud.client().list_all(req).await?;
    for image in images {
        let snapshots: Vec<String> = image
            .disk_device_mappings
            .iter()
            .map(|m| m.snapshot_id.clone())
            .filter(|s| !s.is_empty())
            .collect();
        inv.image_snapshots
            .insert(image.image_id.clone(), snapshots.clone());
        if let Some(build) = bakerd_build(&image.tags) {
            inv.found.push(Found {
                kind: Kind::Image,
                id: image.image_id.clone(),
                region: cloud.region().to_string(),
                build,
                image: Some(ImageFacts {
                    family: image.image_family.clone(),
                    created: image.creation_time.clone(),
                    available: image.status.as_str() == "Available",
                    snapshots,
                }),
            });
        }
    }
    Ok(())
}

/// How gc sees the build that created a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BuildView {
    Running { phase: &'static str, idle: Duration },
    Stale { phase: &'static str, idle: Duration },
    Succeeded,
    Failed,
    Cancelled,
    Unknown,
}

impl BuildView {
    /// Classifies a recorded build (the rule in the module docs).
    fn of(build: &Build, older_than: Duration, now: Timestamp) -> BuildView {
        let idle = Duration::from_millis(now.millis_since(build.updated_at).max(0) as u64);
        match &build.phase {
            Phase::Succeeded => BuildView::Succeeded,
            Phase::Failed { .. } => BuildView::Failed,
            Phase::Cancelled => BuildView::Cancelled,
            other if idle < older_than => BuildView::Running {
                phase: other.name(),
                idle,
            },
            other => BuildView::Stale {
                phase: other.name(),
                idle,
            },
        }
    }

    /// Why a (temporary or unfinished) resource of this build goes.
    fn reason(&self) -> String {
        match self {
            BuildView::Running { phase, idle } => {
                format!("build running ({phase}, updated {} ago)", human(*idle))
            }
            BuildView::Stale { phase, idle } => {
                format!(
                    "build abandoned at {phase} (no progress for {})",
                    human(*idle)
                )
            }
            BuildView::Succeeded => "build succeeded; temporary resource left behind".into(),
            BuildView::Failed => "build failed".into(),
            BuildView::Cancelled => "build cancelled".into(),
            BuildView::Unknown => "build unknown to this state dir".into(),
        }
    }
}

/// `3d4h`, `25m`, `12s`: enough precision for reasons.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// What gc does with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Delete,
    Keep,
}

/// One line of the plan.
#[derive(Debug, Clone)]
struct Entry {
    found: Found,
    action: Action,
    reason: String,
}

/// The builds recorded in the state dir, by id (empty when the state is damaged).
type Views = HashMap<String, BuildView>;

fn view_of<'a>(views: &'a Views, build: &str) -> &'a BuildView {
    views.get(build).unwrap_or(&BuildView::Unknown)
}

/// Decides every resource of one region: first images (with `--keep`), then snapshots (kept
/// while a kept image uses them), then the temporary resources.
fn plan_region(inv: RegionInventory, views: &Views, keep: Option<usize>) -> Vec<Entry> {
    let (images, others): (Vec<Found>, Vec<Found>) =
        inv.found.into_iter().partition(|f| f.kind == Kind::Image);
    let mut plan = plan_images(images, views, keep);
    let deleted_images: BTreeSet<&str> = plan
        .iter()
        .filter(|e| e.action == Action::Delete)
        .map(|e| e.found.id.as_str())
        .collect();
    let freed_by: HashMap<&str, &str> = plan
        .iter()
        .filter(|e| e.action == Action::Delete)
        .flat_map(|e| {
            let snapshots = e.found.image.iter().flat_map(|i| i.snapshots.iter());
            snapshots.map(move |s| (s.as_str(), e.found.id.as_str()))
        })
        .collect();
    let mut used_by: HashMap<&str, &str> = HashMap::new();
    for (image, snapshots) in &inv.image_snapshots {
        if !deleted_images.contains(image.as_str()) {
            for s in snapshots {
                used_by.insert(s.as_str(), image.as_str());
            }
        }
    }
    let mut rest: Vec<Entry> = others
        .into_iter()
        .map(|found| {
            let view = view_of(views, &found.build);
            let (action, reason) = match (view, used_by.get(found.id.as_str())) {
                (BuildView::Running { .. }, _) => (Action::Keep, view.reason()),
                (_, Some(image)) if found.kind == Kind::Snapshot => {
                    (Action::Keep, format!("image {image} is made from it"))
                }
                _ => match freed_by.get(found.id.as_str()) {
                    Some(image) => (
                        Action::Delete,
                        format!("behind image {image}, deleted with it"),
                    ),
                    None => (Action::Delete, view.reason()),
                },
            };
            Entry {
                found,
                action,
                reason,
            }
        })
        .collect();
    plan.append(&mut rest);
    plan.sort_by(|a, b| (a.found.kind, &a.found.id).cmp(&(b.found.kind, &b.found.id)));
    plan
}

/// Images: running builds' are kept; finished outputs are kept except beyond `--keep N` of
/// their family; every other image is deleted.
fn plan_images(images: Vec<Found>, views: &Views, keep: Option<usize>) -> Vec<Entry> {
    let mut plan = Vec::new();
    let mut finished: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for found in images {
        let view = view_of(views, &found.build);
        let facts = found.image.clone().unwrap_or_default();
        let output = facts.available && !matches!(view, BuildView::Failed | BuildView::Cancelled);
        let (action, reason) = match view {
            BuildView::Running { .. } => (Action::Keep, view.reason()),
            _ if output && keep.is_some() && !facts.family.is_empty() => {
                finished.entry(facts.family).or_default().push(found);
                continue;
            }
            _ if output => (Action::Keep, "finished image".to_string()),
            _ if facts.available => (Action::Delete, format!("image of a {}", view.reason())),
            _ => (
                Action::Delete,
                format!("unfinished image; {}", view.reason()),
            ),
        };
        plan.push(Entry {
            found,
            action,
            reason,
        });
    }
    for (family, mut members) in finished {
        // Newest first; ids break ties of equal (second-resolution) creation times.
        members.sort_by(|a, b| {
            let key = |f: &Found| (f.image.as_ref().map(|i| i.created.clone()), f.id.clone());
            key(b).cmp(&key(a))
        });
        let n = keep.unwrap_or(usize::MAX);
        for (rank, found) in members.into_iter().enumerate() {
            let (action, reason) = if rank < n {
                (
                    Action::Keep,
                    format!("finished image, #{} newest of family {family}", rank + 1),
                )
            } else {
                (
                    Action::Delete,
                    format!("--keep {n}: older than the newest {n} of family {family}"),
                )
            };
            plan.push(Entry {
                found,
                action,
                reason,
            });
        }
    }
    plan
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
}

/// Opens the state dir; a damaged one is reported and treated as empty, a locked one refused.
fn open_state(args: &GcArgs, out: &Printer) -> Result<GcState, CommandError> {
    let opened = StateDir::open_as(&args.state_dir, "gc").and_then(|dir| {
        let store = Store::new(dir);
        let builds = store.list()?;
        Ok(GcState {
            store: Some(store),
            builds,
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
            })
        }
        Err(e) => Err(CommandError {
            code: exit::STATE,
            message: e.to_string(),
        }),
    }
}

/// `--region` values, else the regions (and image copy regions) of recorded builds, else the
/// default region.
fn regions(args: &GcArgs, builds: &[Build]) -> Vec<String> {
    let mut set: BTreeSet<String> = args.regions.iter().cloned().collect();
    if set.is_empty() {
        for b in builds {
            set.extend(b.spec["region"].as_str().map(str::to_string));
            if let Some(copies) = b.spec["image"]["copy_regions"].as_array() {
                set.extend(copies.iter().filter_map(|r| r.as_str().map(str::to_string)));
            }
        }
    }
    if set.is_empty() {
        set.insert(DEFAULT_REGION.to_string());
    }
    set.into_iter().collect()
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
        Kind::KeyPair => cloud.delete_key_pair(&f.id).await,
        Kind::SecurityGroup => cloud.delete_security_group(&f.id, DEPENDENCY_PAUSE).await,
        Kind::VSwitch => cloud.delete_vswitch(&f.id, DEPENDENCY_PAUSE).await,
        Kind::Vpc => cloud.delete_vpc(&f.id, DEPENDENCY_PAUSE).await,
        Kind::Image => cloud.delete_image_and_snapshots(&f.id).await,
        Kind::Snapshot => cloud.delete_snapshot(&f.id).await,
    }
}

/// Carries out the plan in dependency order; returns the builds with a failed deletion.
async fn execute(
    plan: &[Entry],
    clouds: &HashMap<String, Cloud>,
    out: &Printer,
) -> BTreeSet<String> {
    let mut failed = BTreeSet::new();
    for e in plan.iter().filter(|e| e.action == Action::Delete) {
        let Some(cloud) = clouds.get(&e.found.region) else {
            continue;
        };
        match delete(cloud, &e.found).await {
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
                Some(BuildView::Failed | BuildView::Stale { .. })
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
    views: &Views,
) -> Result<(Vec<Entry>, HashMap<String, Cloud>), GcError> {
    let mut plan = Vec::new();
    let mut clouds = HashMap::new();
    for region in regions {
        let cloud = connect(args, region)?;
        let inv = list_region(&cloud).await?;
        plan.extend(plan_region(inv, views, args.keep));
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
    let (plan, clouds) = plan_all(&args, &regions, &views)
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
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::CLOUD
    })
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
        format!("gc ({regions}): deleted {doomed} resources, kept {kept}, pruned {pruned} build records")
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
