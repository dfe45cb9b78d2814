//! API calls of one standard build, counted by the simulator and held to the budget that
//! `docs/api-calls.md` documents: every Describe action may be called at most the sum of the
//! budgets of the waits that poll it, plus the lookups outside waits. Not timed: a slow machine
//! makes polls later, not more numerous (each wait's polls grow geometrically from its floor).

mod common;
mod harness;

use std::collections::BTreeMap;

use common::SimProcess;
use harness::Workspace;

/// The budget tables of docs/api-calls.md: Describe action → calls allowed per build.
fn documented_budget() -> BTreeMap<String, u64> {
    let doc = include_str!("../docs/api-calls.md");
    let mut budget = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| what | DescribeX | N |` rows of either table.
        if cells.len() < 5 || !cells[2].starts_with("`Describe") {
            continue;
        }
        let action = cells[2].trim_matches('`').to_string();
        let n: u64 = cells[3]
            .parse()
            .unwrap_or_else(|_| panic!("docs/api-calls.md: bad budget in {line:?}"));
        *budget.entry(action).or_default() += n;
    }
    assert!(
        budget.len() >= 5,
        "docs/api-calls.md lists too few budgets: {budget:?}"
    );
    budget
}

fn counts(calls: &serde_json::Value) -> BTreeMap<String, u64> {
    calls["counts"]
        .as_object()
        .expect("counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn a_standard_build_stays_within_the_documented_describe_budget_per_wait() {
    let sim = SimProcess::start("call-budget");
    let ws = Workspace::new(&sim);
    let spec = ws.spec_file(&harness::small_spec("budget"));
    let before = counts(&sim.calls().await);
    let run = harness::run(ws.apply(&ws.state_dir(), &spec)).await;
    assert_eq!(run.code(), Some(0), "build failed:\n{}", run.stderr);
    let after = counts(&sim.calls().await);
    let made: BTreeMap<&String, u64> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    println!("calls by action: {made:?}");
    let budget = documented_budget();
    let over: Vec<String> = made
        .iter()
        .filter(|(action, _)| action.starts_with("Describe"))
        .filter_map(|(action, n)| {
            let allowed = budget.get(*action).copied().unwrap_or(0);
            (*n > allowed).then(|| format!("{action}: {n} calls, budget {allowed}"))
        })
        .collect();
    assert!(over.is_empty(), "over the documented budget: {over:?}");
    // Deletes may repeat while ECS still holds a resource for a deleted instance
    // (`DependencyViolation`, retried on purpose); everything else is made once.
    let others: BTreeMap<_, _> = made
        .iter()
        .filter(|(action, _)| !action.starts_with("Describe") && !action.starts_with("Delete"))
        .collect();
    assert!(
        others.values().all(|n| **n == 1),
        "every create, import, authorize, run and stop is made once: {others:?}"
    );
}

/// The failpoints an uninterrupted build of `spec` reached, in order (first hit of each).
#[cfg(feature = "failpoints")]
async fn points_reached(ws: &Workspace, name: &str, spec: &str) -> Vec<String> {
    let spec = ws.spec_file(spec);
    let log = ws.dir.path().join(format!("{name}-failpoints.log"));
    let mut cmd = ws.apply(&ws.state_dir(), &spec);
    cmd.env("BAKERD_FAILPOINT_LOG", &log);
    let run = harness::run(cmd).await;
    assert_eq!(run.code(), Some(0), "build failed:\n{}", run.stderr);
    let mut order: Vec<String> = Vec::new();
    for line in std::fs::read_to_string(&log)
        .expect("failpoint log")
        .lines()
    {
        if !order.iter().any(|p| p == line) {
            order.push(line.to_string());
        }
    }
    order
}

#[cfg(feature = "failpoints")]
#[tokio::test]
async fn the_temporary_resources_are_deleted_while_the_image_is_created_unless_verify_needs_them() {
    let sim = SimProcess::start("early-cleanup");
    let ws = Workspace::new(&sim);
    let at = |order: &[String], point: &str| {
        order
            .iter()
            .position(|p| p == point)
            .unwrap_or_else(|| panic!("{point} never reached: {order:?}"))
    };
    let plain = points_reached(&ws, "plain", &harness::small_spec("early")).await;
    let image_ready = at(&plain, "phase-image-ready:before-flush");
    for deleted in ["delete-instance", "delete-security_group", "delete-vpc"] {
        let done = at(&plain, &format!("{deleted}:after-result"));
        assert!(
            done < image_ready,
            "{deleted} finished after the image was Available: {plain:?}"
        );
    }
    // The verify step's test instance uses the build's network: it goes after verification.
    let verified = points_reached(&ws, "verified", &harness::small_spec_verified("late")).await;
    let verified_at = at(&verified, "phase-verified:before-flush");
    assert!(
        at(&verified, "delete-vpc:after-result") > verified_at,
        "the network was deleted before verification: {verified:?}"
    );
}
