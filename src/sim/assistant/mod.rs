//! Cloud Assistant in the simulator: the records behind the API (`sim::actions::assistant`), the
//! rule for which instances have the agent, and the runner that delivers invocations and file
//! sends to instances and records their outcome (facts and sources: `docs/cloud-assistant.md`).
//!
//! Delivery: a target stays `Pending` until its instance is Running with an online agent (Running
//! for the boot delay, agent on its disk, and — after `InstallCloudAssistant` — started since the
//! install). A target that cannot be delivered within the delivery window ends `Aborted`
//! (`ClientNotRunning` or `InstanceNotRunning`), as ECS answers when a command cannot be sent
//! within a minute. Delivered targets run as root *inside* the instance through
//! [`GuestExec`] (the machine layer's isolated exec), never over SSH.
//!
//! Guarantees: every state change happens under the simulator's state lock and marks the state
//! dirty (the ticker persists it); output is capped at [`OUTPUT_CAP`] bytes, the rest counted in
//! `Dropped`. A simulator restart ends targets that were Running as `Failed` with
//! `ExecutionInterrupted` (their processes died with the instance namespaces).
//! Output of a running target is read back from a log inside the instance every few hundred
//! milliseconds (see `runner`). Caveats: a stopped
//! target's process runs on until its timeout, its result is discarded.

mod exec;
mod records;
mod runner;

pub use exec::{GuestExec, GuestExecError, GuestOutput};
pub use records::{AssistantState, FileSpec, Invocation, SavedCommand, Target};
pub use runner::{interrupt_running, spawn_runner, Runner};

use super::catalog;
use super::lifecycle::Latencies;
use super::store::{Instance, State};

/// Output kept per target; more is dropped and counted (`Dropped`). DescribeInvocationResults
/// documents 24 KB.
pub const OUTPUT_CAP: usize = 24 * 1024;

/// Public images carry the agent when created on or after this date (RunCommand docs: "pre-
/// installed on ECS instances created from public images after December 1, 2017").
const AGENT_PREINSTALLED_SINCE: &str = "2017-12-01";

/// Whether the disk, snapshot or image `id` holds the agent.
pub fn has_agent(state: &State, id: &str) -> bool {
    match catalog::system_image(id) {
        Some(image) => image.creation_time >= AGENT_PREINSTALLED_SINCE,
        None => state.assistant.agents.contains(id),
    }
}

/// A disk, snapshot or image made from `from` carries the agent if `from` does.
pub fn inherit_agent(state: &mut State, from: &str, to: &str) {
    if has_agent(state, from) {
        state.assistant.agents.insert(to.to_string());
    }
}

/// Whether the agent on `inst` answers now: Running past the boot delay, agent on its system
/// disk, and started after any `InstallCloudAssistant`.
pub fn agent_online(state: &State, inst: &Instance, lat: &Latencies, now: u64) -> bool {
    let Some(since) = inst.running_since_ms else {
        return false;
    };
    let booted = inst.meta.live() && inst.status == "Running" && now >= since + lat.ssh_boot_ms;
    let installed_before_start = state
        .assistant
        .installs
        .get(&inst.meta.id)
        .is_none_or(|installed| since > *installed);
    booted && has_agent(state, &inst.system_disk_id) && installed_before_start
}

/// How long a target may wait for its instance before it is `Aborted`: ECS gives a command a
/// minute to be sent; the simulator scales that with the profile (15 boot delays).
pub fn delivery_window_ms(lat: &Latencies) -> u64 {
    lat.ssh_boot_ms * 15
}
