//! The rule (see the module docs of [`super`]): which resources go, which stay, and why.

use super::inventory::{Found, Kind, RegionInventory};
use crate::reconciler::phase::Phase;
use crate::reconciler::state::Timestamp;
use crate::reconciler::store::Build;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// How gc sees the build that created a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BuildView {
    /// Recorded here, non-terminal, updated less than `--older-than` ago. gc holds the state
    /// dir's lock, so no bakerd runs it: it was interrupted and may be resumed.
    Interrupted {
        phase: &'static str,
        idle: Duration,
    },
    /// Recorded here, non-terminal, no progress for `--older-than` or more.
    Stale {
        phase: &'static str,
        idle: Duration,
    },
    Succeeded,
    Failed,
    Cancelled,
    /// No record here: maybe a build of another state dir, maybe running right now.
    Unknown,
}

impl BuildView {
    /// Classifies a recorded build (the rule in the module docs).
    pub(super) fn of(build: &Build, older_than: Duration, now: Timestamp) -> BuildView {
        let idle = Duration::from_millis(now.millis_since(build.updated_at).max(0) as u64);
        match &build.phase {
            Phase::Succeeded => BuildView::Succeeded,
            Phase::Failed { .. } => BuildView::Failed,
            Phase::Cancelled => BuildView::Cancelled,
            other if idle < older_than => BuildView::Interrupted {
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
    pub(super) fn reason(&self) -> String {
        match self {
            BuildView::Interrupted { phase, idle } => {
                format!(
                    "build interrupted at {phase} (updated {} ago)",
                    human(*idle)
                )
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

/// What protects resources whatever their kind: interrupted builds of this state dir, and young
/// resources of builds this state dir does not know (they may be running from another one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// `--older-than`.
    pub(super) older_than: Duration,
    /// `--include-interrupted`.
    pub(super) include_interrupted: bool,
    /// Another bakerd holds the state dir: its non-terminal builds may be running right now.
    pub(super) locked_elsewhere: bool,
    /// Now, in Unix seconds (resource ages are measured against it).
    pub(super) now_secs: i64,
}

impl Policy {
    /// Why `found` must stay, if something protects it.
    pub(super) fn holds(&self, view: &BuildView, found: &Found) -> Option<String> {
        match view {
            BuildView::Interrupted { phase, .. } if self.locked_elsewhere => Some(format!(
                "build at {phase}, maybe running: another bakerd holds this state dir"
            )),
            BuildView::Interrupted { .. } if !self.include_interrupted => Some(format!(
                "{}; no bakerd runs it: `bakerd resume {}` continues it, `bakerd gc \
                 --include-interrupted --yes` deletes it",
                view.reason(),
                found.build
            )),
            BuildView::Unknown => {
                let threshold = human(self.older_than);
                match creation_secs(&found.created) {
                    Some(t) if self.now_secs - t >= self.older_than.as_secs() as i64 => None,
                    Some(t) => Some(format!(
                        "build unknown to this state dir, created {} ago: may be running from \
                         another state dir; deleted once older than --older-than {threshold}",
                        human(Duration::from_secs((self.now_secs - t).max(0) as u64))
                    )),
                    None => Some(format!(
                        "build unknown to this state dir and the resource has no CreationTime \
                         ({:?}): kept",
                        found.created
                    )),
                }
            }
            _ => None,
        }
    }
}

/// A `CreationTime` as ECS writes it (`2024-01-01T00:00:00Z`, or without seconds for instances:
/// `2024-01-01T00:00Z`) in Unix seconds.
pub(super) fn creation_secs(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let parse = |t: &str| time::OffsetDateTime::parse(t, &Rfc3339).ok();
    let parsed = parse(text).or_else(|| {
        let minutes = text.strip_suffix('Z').filter(|t| t.len() == 16)?;
        parse(&format!("{minutes}:00Z"))
    })?;
    Some(parsed.unix_timestamp())
}

/// `3d4h`, `25m`, `12s`: enough precision for reasons.
pub(super) fn human(d: Duration) -> String {
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
pub(super) enum Action {
    Delete,
    Keep,
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) found: Found,
    pub(super) action: Action,
    pub(super) reason: String,
}

/// The builds recorded in the state dir, by id (empty when the state is damaged).
pub(super) type Views = HashMap<String, BuildView>;

pub(super) fn view_of<'a>(views: &'a Views, build: &str) -> &'a BuildView {
    views.get(build).unwrap_or(&BuildView::Unknown)
}

/// Decides every resource of one region: first images (with `--keep`), then snapshots (kept
/// while a kept image uses them), then the temporary resources.
pub(super) fn plan_region(
    inv: RegionInventory,
    views: &Views,
    keep: Option<usize>,
    policy: &Policy,
) -> Vec<Entry> {
    let (images, others): (Vec<Found>, Vec<Found>) =
        inv.found.into_iter().partition(|f| f.kind == Kind::Image);
    let mut plan = plan_images(images, views, keep, policy);
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
            let held = policy.holds(view, &found);
            let (action, reason) = match (held, used_by.get(found.id.as_str())) {
                (Some(why), _) => (Action::Keep, why),
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

/// Images: those a [`Policy`] holds are kept; finished outputs are kept except beyond `--keep N` of
/// their family; every other image is deleted.
pub(super) fn plan_images(
    images: Vec<Found>,
    views: &Views,
    keep: Option<usize>,
    policy: &Policy,
) -> Vec<Entry> {
    let mut plan = Vec::new();
    let mut finished: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for found in images {
        let view = view_of(views, &found.build);
        let facts = found.image.clone().unwrap_or_default();
        let output = facts.available && !matches!(view, BuildView::Failed | BuildView::Cancelled);
        if let Some(why) = (!output).then(|| policy.holds(view, &found)).flatten() {
            plan.push(Entry {
                found,
                action: Action::Keep,
                reason: why,
            });
            continue;
        }
        let (action, reason) = match view {
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

#[cfg(test)]
mod tests {
    use super::super::inventory::ImageFacts;
    use super::*;

    /// Now for the policy: 2024-01-02T00:00:00Z.
    const NOW: i64 = 1_704_153_600;

    fn policy(include_interrupted: bool) -> Policy {
        Policy {
            older_than: Duration::from_secs(3600),
            include_interrupted,
            locked_elsewhere: false,
            now_secs: NOW,
        }
    }

    fn found(kind: Kind, id: &str, build: &str) -> Found {
        Found {
            kind,
            id: id.into(),
            region: "cn-hangzhou".into(),
            build: build.into(),
            created: "2024-01-01T00:00:00Z".into(),
            image: None,
        }
    }

    fn image(id: &str, build: &str, created: &str, snapshot: &str, available: bool) -> Found {
        let mut f = found(Kind::Image, id, build);
        f.image = Some(ImageFacts {
            family: "fam".into(),
            created: created.into(),
            available,
            snapshots: vec![snapshot.into()],
        });
        f
    }

    fn inventory(found: Vec<Found>) -> RegionInventory {
        let mut inv = RegionInventory::default();
        for f in &found {
            if let Some(facts) = &f.image {
                inv.image_snapshots
                    .insert(f.id.clone(), facts.snapshots.clone());
            }
        }
        inv.found = found;
        inv
    }

    fn action_of(plan: &[Entry], id: &str) -> Action {
        plan.iter()
            .find(|e| e.found.id == id)
            .map(|e| e.action)
            .expect(id)
    }

    #[test]
    fn an_interrupted_build_is_untouched_and_an_unknown_builds_finished_image_is_kept() {
        let running = BuildView::Interrupted {
            phase: "prepared",
            idle: Duration::ZERO,
        };
        let views: Views = [("b-run".to_string(), running)].into();
        let inv = inventory(vec![
            found(Kind::Instance, "i-run", "b-run"),
            found(Kind::Instance, "i-lost", "b-lost"),
            image("m-lost", "b-lost", "2024-01-01T00:00:00Z", "s-lost", true),
            found(Kind::Snapshot, "s-lost", "b-lost"),
            found(Kind::Snapshot, "s-orphan", "b-lost"),
        ]);
        let plan = plan_region(inv, &views, None, &policy(false));
        assert_eq!(action_of(&plan, "i-run"), Action::Keep);
        assert_eq!(action_of(&plan, "i-lost"), Action::Delete);
        assert_eq!(action_of(&plan, "m-lost"), Action::Keep);
        assert_eq!(action_of(&plan, "s-lost"), Action::Keep);
        assert_eq!(action_of(&plan, "s-orphan"), Action::Delete);
    }

    #[test]
    fn keep_n_evicts_the_oldest_images_of_a_family_with_their_snapshots() {
        let views: Views = [("b-1".to_string(), BuildView::Succeeded)].into();
        let times = [
            "2024-01-01T00:00:01Z",
            "2024-01-01T00:00:03Z",
            "2024-01-01T00:00:02Z",
        ];
        let mut found = Vec::new();
        for (i, t) in times.iter().enumerate() {
            found.push(image(&format!("m-{i}"), "b-1", t, &format!("s-{i}"), true));
            found.push(self::found(Kind::Snapshot, &format!("s-{i}"), "b-1"));
        }
        let plan = plan_region(inventory(found), &views, Some(2), &policy(false));
        assert_eq!(action_of(&plan, "m-0"), Action::Delete);
        assert_eq!(action_of(&plan, "s-0"), Action::Delete);
        for kept in ["m-1", "s-1", "m-2", "s-2"] {
            assert_eq!(action_of(&plan, kept), Action::Keep, "{kept}");
        }
    }

    #[test]
    fn a_failed_builds_image_goes_but_a_snapshot_used_by_another_image_stays() {
        let views: Views = [("b-f".to_string(), BuildView::Failed)].into();
        let mut inv = inventory(vec![
            image("m-f", "b-f", "2024-01-01T00:00:00Z", "s-f", true),
            found(Kind::Snapshot, "s-f", "b-f"),
            found(Kind::Snapshot, "s-shared", "b-f"),
        ]);
        // An untagged image someone made from the failed build's snapshot.
        inv.image_snapshots
            .insert("m-theirs".into(), vec!["s-shared".into()]);
        let plan = plan_region(inv, &views, None, &policy(false));
        assert_eq!(action_of(&plan, "m-f"), Action::Delete);
        assert_eq!(action_of(&plan, "s-f"), Action::Delete);
        assert_eq!(action_of(&plan, "s-shared"), Action::Keep);
    }

    #[test]
    fn only_non_terminal_builds_idle_less_than_the_threshold_are_interrupted() {
        let now = Timestamp(10_000_000);
        let mut b = Build::new(
            crate::reconciler::state::BuildId::generate(),
            serde_json::json!({}),
            Phase::InstanceRunning,
        );
        b.updated_at = Timestamp(now.0 - 60_000);
        let hour = Duration::from_secs(3600);
        assert!(matches!(
            BuildView::of(&b, hour, now),
            BuildView::Interrupted { .. }
        ));
        assert!(matches!(
            BuildView::of(&b, Duration::from_secs(30), now),
            BuildView::Stale { .. }
        ));
        b.phase = Phase::Succeeded;
        assert_eq!(BuildView::of(&b, hour, now), BuildView::Succeeded);
    }

    #[test]
    fn an_unknown_builds_resources_go_only_once_they_are_older_than_the_threshold() {
        let views = Views::new();
        let mut young = found(Kind::Instance, "i-young", "b-other");
        young.created = "2024-01-01T23:30Z".into();
        let mut undated = found(Kind::Vpc, "vpc-undated", "b-other");
        undated.created = String::new();
        let inv = inventory(vec![
            found(Kind::Instance, "i-old", "b-other"),
            young,
            undated,
        ]);
        let plan = plan_region(inv, &views, None, &policy(false));
        assert_eq!(action_of(&plan, "i-old"), Action::Delete);
        assert_eq!(action_of(&plan, "i-young"), Action::Keep);
        assert_eq!(action_of(&plan, "vpc-undated"), Action::Keep);
        let reason = &plan
            .iter()
            .find(|e| e.found.id == "i-young")
            .unwrap()
            .reason;
        assert!(
            reason.contains("created 30m ago") && reason.contains("another state dir"),
            "{reason}"
        );
    }

    #[test]
    fn an_interrupted_build_is_kept_with_its_resume_command_unless_included() {
        let interrupted = BuildView::Interrupted {
            phase: "provisioned",
            idle: Duration::from_secs(60),
        };
        let views: Views = [("b-int".to_string(), interrupted)].into();
        let inv = || inventory(vec![found(Kind::Instance, "i-int", "b-int")]);
        let plan = plan_region(inv(), &views, None, &policy(false));
        assert_eq!(action_of(&plan, "i-int"), Action::Keep);
        assert!(
            plan[0].reason.contains("`bakerd resume b-int`"),
            "{}",
            plan[0].reason
        );
        let plan = plan_region(inv(), &views, None, &policy(true));
        assert_eq!(action_of(&plan, "i-int"), Action::Delete);
    }

    #[test]
    fn creation_times_parse_with_and_without_seconds() {
        assert_eq!(creation_secs("2024-01-02T00:00:00Z"), Some(NOW));
        assert_eq!(creation_secs("2024-01-02T00:00Z"), Some(NOW));
        assert_eq!(creation_secs(""), None);
    }
}
