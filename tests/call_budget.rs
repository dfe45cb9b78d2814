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
