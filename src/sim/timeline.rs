//! The simulator's own record of how long things took: every status change the ticker makes, with
//! when the old status began, when the change was due on the profile's clock, and when the API
//! started reporting the new status. Served at `GET /_sim/timeline`.
//!
//! Why: a client's speed can only be judged against the cloud's own latency. The sum of the time a
//! build's resources spent in transitional states is the floor no client can beat (the "intrinsic
//! latency"), and the moment a resource became ready is where a client's reaction time starts.
//!
//! Guarantees: `at_ms` is the moment the new status became visible to Describe calls (the state
//! lock is held while it is recorded), so a call logged after it saw the new status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Keeps at most this many transitions (oldest dropped first).
const TIMELINE_LIMIT: usize = 20_000;

/// Statuses a resource waits in; leaving one of them for any other status is "becoming ready"
/// (or failing), which is what a client waits for.
const TRANSITIONAL: &[&str] = &[
    "Pending",
    "Starting",
    "Stopping",
    "progressing",
    "Creating",
    "booting",
];

/// One status change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transition {
    /// `instance`, `snapshot`, `image`, `vpc`, `vswitch`, `eip`; `ssh` for an instance's sshd;
    /// `guest` for what an instance did by itself (`running` → `rebooted` or `powered-off`).
    pub kind: String,
    pub id: String,
    pub from: String,
    pub to: String,
    /// When `from` began (ms since the epoch).
    pub entered_ms: u64,
    /// When the profile's clock made the change due.
    pub due_ms: u64,
    /// When the change was applied and became visible to the API (at or after `due_ms`).
    pub at_ms: u64,
}

impl Transition {
    /// Time spent in `from`, as a client could observe it.
    pub fn spent_ms(&self) -> u64 {
        self.at_ms.saturating_sub(self.entered_ms)
    }

    /// Whether this change ends a wait: out of a transitional status into a settled one.
    pub fn is_ready(&self) -> bool {
        TRANSITIONAL.contains(&self.from.as_str()) && !TRANSITIONAL.contains(&self.to.as_str())
    }
}

/// The log of transitions, part of the persisted simulator state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub transitions: Vec<Transition>,
}

impl Timeline {
    /// Appends a transition, dropping the oldest beyond the limit.
    pub fn record(&mut self, t: Transition) {
        self.transitions.push(t);
        if self.transitions.len() > TIMELINE_LIMIT {
            let excess = self.transitions.len() - TIMELINE_LIMIT;
            self.transitions.drain(..excess);
        }
    }

    /// The `/_sim/timeline` body: transitions that became visible at or after `since_ms`, the time
    /// spent per `<kind> <status>` (count, total, mean, max), and the moments resources became
    /// ready.
    pub fn report(&self, since_ms: u64) -> Value {
        let selected: Vec<&Transition> = self
            .transitions
            .iter()
            .filter(|t| t.at_ms >= since_ms)
            .collect();
        let mut states: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for t in &selected {
            let entry = states.entry(format!("{} {}", t.kind, t.from)).or_default();
            entry.0 += 1;
            entry.1 += t.spent_ms();
            entry.2 = entry.2.max(t.spent_ms());
        }
        let states: BTreeMap<String, Value> = states
            .into_iter()
            .map(|(k, (count, total, max))| {
                let mean = total / count.max(1);
                let figures =
                    json!({"count": count, "total_ms": total, "mean_ms": mean, "max_ms": max});
                (k, figures)
            })
            .collect();
        let ready: Vec<Value> = selected
            .iter()
            .filter(|t| t.is_ready())
            .map(|t| json!({"kind": t.kind, "id": t.id, "status": t.to, "at_ms": t.at_ms}))
            .collect();
        // Only waits count: the time an instance ran before it powered itself off (and the
        // instant guest events) is not latency of the cloud.
        let transitional_ms: u64 = selected
            .iter()
            .filter(|t| t.kind != "guest" && t.from != "Running")
            .map(|t| t.spent_ms())
            .sum();
        json!({
            "transitions": selected,
            "states": states,
            "ready": ready,
            "transitional_ms": transitional_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: &str, from: &str, to: &str, entered: u64, at: u64) -> Transition {
        Transition {
            kind: kind.into(),
            id: format!("{kind}-1"),
            from: from.into(),
            to: to.into(),
            entered_ms: entered,
            due_ms: at,
            at_ms: at,
        }
    }

    #[test]
    fn the_report_sums_time_per_transitional_state_and_lists_ready_moments() {
        let mut timeline = Timeline::default();
        timeline.record(t("vpc", "Pending", "Available", 0, 50));
        timeline.record(t("instance", "Pending", "Starting", 100, 400));
        timeline.record(t("instance", "Starting", "Running", 400, 700));
        timeline.record(t("ssh", "booting", "listening", 700, 1150));
        let report = timeline.report(0);
        assert_eq!(report["states"]["instance Pending"]["total_ms"], 300);
        assert_eq!(report["states"]["ssh booting"]["mean_ms"], 450);
        assert_eq!(report["transitional_ms"], 50 + 300 + 300 + 450);
        let ready: Vec<&str> = report["ready"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(ready, ["Available", "Running", "listening"]);
        assert_eq!(
            timeline.report(400)["transitions"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn guest_events_and_running_time_before_a_power_off_are_not_counted_as_waits() {
        let mut timeline = Timeline::default();
        timeline.record(t("instance", "Starting", "Running", 0, 300));
        timeline.record(t("guest", "running", "rebooted", 5_000, 5_000));
        timeline.record(t("guest", "running", "powered-off", 9_000, 9_000));
        timeline.record(t("instance", "Running", "Stopped", 300, 9_000));
        let report = timeline.report(0);
        assert_eq!(report["transitional_ms"], 300);
        assert_eq!(report["ready"].as_array().unwrap().len(), 1);
        assert_eq!(report["transitions"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn the_log_keeps_only_the_newest_transitions() {
        let mut timeline = Timeline::default();
        for n in 0..(TIMELINE_LIMIT as u64 + 5) {
            timeline.record(t("vpc", "Pending", "Available", n, n));
        }
        assert_eq!(timeline.transitions.len(), TIMELINE_LIMIT);
        assert_eq!(timeline.transitions[0].at_ms, 5);
    }
}
