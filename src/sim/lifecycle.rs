//! Asynchronous lifecycles: a background ticker moves instances, snapshots, images, VPCs and vSwitches
//! through their states on the profile's latencies, and keeps each instance's sshd in line with
//! whether it should be reachable.
//!
//! Guarantees: a state change happens only on a tick at or after its due time; sshd runs only while the
//! instance is Running, its boot delay has passed and one of its security groups accepts tcp/22.
//! Caveats: machine errors are logged and retried on a later tick, never surfaced to API callers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::core::Sim;
use super::machine::SshTarget;
use super::store::{self, Instance, Rule, State};

/// How fast things happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A few hundred milliseconds per transition; for tests.
    Fast,
    /// Real ECS timings scaled down about ten times.
    Realistic,
}

/// Durations of each asynchronous step, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Each instance step (Pending→Starting, Starting→Running, Stopping→Stopped).
    pub instance_step_ms: u64,
    /// From Running until sshd answers.
    pub ssh_boot_ms: u64,
    pub snapshot_ms: u64,
    pub image_ms: u64,
    pub copy_image_ms: u64,
    /// VPC and vSwitch Pending→Available.
    pub network_ms: u64,
}

impl Latencies {
    pub fn for_profile(p: Profile) -> Self {
        match p {
            Profile::Fast => Latencies {
                instance_step_ms: 300,
                ssh_boot_ms: 400,
                snapshot_ms: 1_000,
                image_ms: 1_000,
                copy_image_ms: 1_500,
                network_ms: 200,
            },
            Profile::Realistic => Latencies {
                instance_step_ms: 2_500,
                ssh_boot_ms: 3_000,
                snapshot_ms: 15_000,
                image_ms: 20_000,
                copy_image_ms: 30_000,
                network_ms: 1_000,
            },
        }
    }
}

/// Moves one instance a step if due. Returns whether it changed.
fn step_instance(inst: &mut Instance, lat: &Latencies, now: u64) -> bool {
    let Some(target) = inst.target.clone() else {
        return false;
    };
    if !inst.meta.live() || now < inst.next_ms {
        return false;
    }
    let next = match (inst.status.as_str(), target.as_str()) {
        ("Pending", "Running") | ("Stopping", "Running") => "Starting",
        ("Pending", _) | ("Stopping", _) => "Stopped",
        ("Starting", _) => "Running",
        _ => {
            inst.target = None;
            return true;
        }
    };
    inst.status = next.to_string();
    inst.next_ms = now + lat.instance_step_ms;
    if next == target {
        inst.target = None;
    }
    inst.running_since_ms = (next == "Running").then_some(now);
    true
}

/// Applies every due transition. Returns whether anything changed.
pub fn advance(state: &mut State, lat: &Latencies, now: u64) -> bool {
    let mut changed = false;
    for inst in state.instances.values_mut() {
        changed |= step_instance(inst, lat, now);
    }
    for s in state.snapshots.values_mut() {
        if s.meta.live() && s.status == "progressing" && now >= s.done_ms {
            s.status = if s.will_fail {
                "failed"
            } else {
                "accomplished"
            }
            .into();
            changed = true;
        }
    }
    for i in state.images.values_mut() {
        if i.meta.live() && i.status == "Creating" && now >= i.done_ms {
            i.status = if i.will_fail {
                "CreateFailed"
            } else {
                "Available"
            }
            .into();
            changed = true;
        }
    }
    for v in state.vpcs.values_mut() {
        if v.status == "Pending" && now >= v.next_ms {
            v.status = "Available".into();
            changed = true;
        }
    }
    for v in state.vswitches.values_mut() {
        if v.status == "Pending" && now >= v.next_ms {
            v.status = "Available".into();
            changed = true;
        }
    }
    changed
}

/// Whether a rule lets tcp/22 in.
pub fn allows_ssh(rule: &Rule) -> bool {
    if rule.policy.eq_ignore_ascii_case("drop") {
        return false;
    }
    let proto = rule.ip_protocol.to_ascii_lowercase();
    if proto == "all" {
        return true;
    }
    if proto != "tcp" {
        return false;
    }
    let Some((a, b)) = rule.port_range.split_once('/') else {
        return false;
    };
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(-1), Ok(-1)) => true,
        (Ok(a), Ok(b)) => a <= 22 && 22 <= b,
        _ => false,
    }
}

/// What instance `inst`'s sshd should be right now (`None`: not running).
pub fn desired_sshd(
    state: &State,
    inst: &Instance,
    lat: &Latencies,
    now: u64,
) -> Option<SshTarget> {
    let booted = inst
        .running_since_ms
        .is_some_and(|t| now >= t + lat.ssh_boot_ms);
    if !inst.meta.live() || inst.status != "Running" || !booted {
        return None;
    }
    let open = inst.security_group_ids.iter().any(|sg| {
        state
            .security_groups
            .get(sg)
            .is_some_and(|g| g.meta.live() && g.rules.iter().any(allows_ssh))
    });
    if !open {
        return None;
    }
    let authorized_keys = inst
        .key_pair_name
        .as_deref()
        .and_then(|name| {
            state
                .key_pairs
                .values()
                .find(|k| k.meta.live() && k.name == name && k.meta.region == inst.meta.region)
        })
        .map(|k| format!("{}\n", k.public_key.trim()))
        .unwrap_or_default();
    let mut addresses = vec![inst.private_ip];
    addresses.extend(inst.public_ip);
    Some(SshTarget {
        instance_id: inst.meta.id.clone(),
        disk_id: inst.system_disk_id.clone(),
        addresses,
        authorized_keys,
    })
}

/// What the ticker last applied to each instance's sshd.
#[derive(Default)]
struct Applied {
    targets: HashMap<String, Option<SshTarget>>,
    /// Instances whose last machine call failed, with when to retry.
    retry_at: HashMap<String, u64>,
}

const TICK: Duration = Duration::from_millis(100);
const MACHINE_RETRY_MS: u64 = 2_000;

/// Runs the ticker on its own thread (it does blocking machine work) until `stop` is set.
pub fn spawn_ticker(sim: Arc<Sim>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut applied = Applied::default();
        while !stop.load(Ordering::SeqCst) {
            tick(&sim, &mut applied);
            std::thread::sleep(TICK);
        }
    })
}

fn tick(sim: &Sim, applied: &mut Applied) {
    let now = store::now_ms();
    let desired: Vec<(String, Option<SshTarget>)> = {
        let mut state = sim.lock_state();
        if advance(&mut state, &sim.latencies, now) {
            sim.mark_dirty();
        }
        sim.flush_if_dirty(&state);
        state
            .instances
            .values()
            .map(|i| {
                (
                    i.meta.id.clone(),
                    desired_sshd(&state, i, &sim.latencies, now),
                )
            })
            .collect()
    };
    for (id, want) in desired {
        if applied.targets.get(&id) == Some(&want) {
            continue;
        }
        if applied.retry_at.get(&id).is_some_and(|t| now < *t) {
            continue;
        }
        let result = match &want {
            Some(target) => sim.machines.ensure_sshd(target),
            None => sim.machines.stop_sshd(&id),
        };
        match result {
            Ok(()) => {
                applied.retry_at.remove(&id);
                applied.targets.insert(id, want);
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "sshd reconcile failed; retrying");
                applied.retry_at.insert(id, now + MACHINE_RETRY_MS);
            }
        }
    }
}
