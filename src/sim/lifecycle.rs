//! Asynchronous lifecycles: a background thread moves instances, snapshots, images, VPCs and vSwitches
//! through their states on the profile's latencies; a second one keeps each instance's machine in line
//! with its state: booted while Running, ended otherwise, port 22 open while reachable (and everything
//! restarted after a simulator restart or a crash); an instance that powered itself off becomes Stopped.
//!
//! Guarantees: a state change happens only on a tick at or after its due time; an instance's processes
//! run only while it is Running; its port 22 is open only while it is Running, its boot delay has passed
//! and one of its security groups accepts tcp/22.
//! Caveats: machine errors are logged and retried on a later tick, never surfaced to API callers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::core::Sim;
use super::machine::{DataDisk, GuestEventKind, InstanceBoot, MachineError, SshTarget};
use super::store::{self, Eip, Instance, Rule, State};
use super::timeline::Transition;

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
    /// From DeleteInstance until the instance lets go of its security groups and vSwitch.
    pub release_ms: u64,
    /// EIP Associating→InUse and Unassociating→Available.
    pub eip_ms: u64,
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
                release_ms: 1_000,
                eip_ms: 300,
            },
            Profile::Realistic => Latencies {
                instance_step_ms: 2_500,
                ssh_boot_ms: 3_000,
                snapshot_ms: 15_000,
                image_ms: 20_000,
                copy_image_ms: 30_000,
                network_ms: 1_000,
                release_ms: 8_000,
                eip_ms: 2_000,
            },
        }
    }
}

/// Moves one instance a step if due. Returns the status change it made, if any.
fn step_instance(inst: &mut Instance, lat: &Latencies, now: u64) -> Option<Transition> {
    let target = inst.target.clone()?;
    if !inst.meta.live() || now < inst.next_ms {
        return None;
    }
    let next = match (inst.status.as_str(), target.as_str()) {
        ("Pending", "Running") | ("Stopping", "Running") => "Starting",
        ("Pending", _) | ("Stopping", _) => "Stopped",
        ("Starting", _) => "Running",
        _ => {
            inst.target = None;
            return None;
        }
    };
    // Entering a transitional status always sets `next_ms` to the entry time plus one step.
    let entered = inst.next_ms.saturating_sub(lat.instance_step_ms);
    let change = Change::new("instance", &inst.meta.id, &inst.status, next).timed(
        entered,
        inst.next_ms,
        now,
    );
    inst.status = next.to_string();
    inst.next_ms = now + lat.instance_step_ms;
    if next == target {
        inst.target = None;
    }
    inst.running_since_ms = (next == "Running").then_some(now);
    Some(change)
}

/// What changed, before its times are known.
struct Change<'a> {
    kind: &'a str,
    id: &'a str,
    from: &'a str,
    to: &'a str,
}

impl<'a> Change<'a> {
    fn new(kind: &'a str, id: &'a str, from: &'a str, to: &'a str) -> Self {
        Change { kind, id, from, to }
    }

    /// The transition: `from` began at `entered`, the change was due at `due`, applied at `now`.
    fn timed(self, entered: u64, due: u64, now: u64) -> Transition {
        Transition {
            kind: self.kind.into(),
            id: self.id.into(),
            from: self.from.into(),
            to: self.to.into(),
            entered_ms: entered,
            due_ms: due,
            at_ms: now,
        }
    }
}

/// Applies every due transition and records each in the state's timeline. Returns whether
/// anything changed.
pub fn advance(state: &mut State, lat: &Latencies, now: u64) -> bool {
    let mut changes = Vec::new();
    for inst in state.instances.values_mut() {
        changes.extend(step_instance(inst, lat, now));
    }
    for s in state.snapshots.values_mut() {
        if s.meta.live() && s.status == "progressing" && now >= s.done_ms {
            let to = if s.will_fail {
                "failed"
            } else {
                "accomplished"
            };
            let change = Change::new("snapshot", &s.meta.id, &s.status, to);
            changes.push(change.timed(s.meta.created_ms, s.done_ms, now));
            s.status = to.into();
        }
    }
    for i in state.images.values_mut() {
        if i.meta.live() && i.status == "Creating" && now >= i.done_ms {
            let to = if i.will_fail {
                "CreateFailed"
            } else {
                "Available"
            };
            let change = Change::new("image", &i.meta.id, &i.status, to);
            changes.push(change.timed(i.meta.created_ms, i.done_ms, now));
            i.status = to.into();
        }
    }
    for v in state.vpcs.values_mut() {
        if v.status == "Pending" && now >= v.next_ms {
            let change = Change::new("vpc", &v.meta.id, "Pending", "Available");
            changes.push(change.timed(v.meta.created_ms, v.next_ms, now));
            v.status = "Available".into();
        }
    }
    for v in state.vswitches.values_mut() {
        if v.status == "Pending" && now >= v.next_ms {
            let change = Change::new("vswitch", &v.meta.id, "Pending", "Available");
            changes.push(change.timed(v.meta.created_ms, v.next_ms, now));
            v.status = "Available".into();
        }
    }
    for e in state.eips.values_mut() {
        changes.extend(step_eip(e, lat, now));
    }
    let changed = !changes.is_empty();
    for change in changes {
        state.timeline.record(change);
    }
    changed
}

/// Ends an EIP's `Associating`/`Unassociating` once due. Returns the status change, if any.
fn step_eip(e: &mut Eip, lat: &Latencies, now: u64) -> Option<Transition> {
    if !e.meta.live() || now < e.next_ms {
        return None;
    }
    let to = match e.status.as_str() {
        "Associating" => "InUse",
        "Unassociating" => "Available",
        _ => return None,
    };
    let entered = e.next_ms.saturating_sub(lat.eip_ms);
    let change = Change::new("eip", &e.meta.id, &e.status, to).timed(entered, e.next_ms, now);
    e.status = to.into();
    if to == "Available" {
        e.instance_id = None;
    }
    Some(change)
}

/// Whether a rule lets tcp/22 in.
pub fn allows_ssh(rule: &Rule) -> bool {
    if rule.direction != "ingress" || rule.policy.eq_ignore_ascii_case("drop") {
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
    addresses.extend(
        state
            .eips
            .values()
            .filter(|e| e.meta.live() && e.status == "InUse")
            .filter(|e| e.instance_id.as_deref() == Some(inst.meta.id.as_str()))
            .map(|e| e.ip),
    );
    Some(SshTarget {
        instance_id: inst.meta.id.clone(),
        disk_id: inst.system_disk_id.clone(),
        addresses,
        authorized_keys,
        root_password_hash: inst.password_hash.clone(),
    })
}

/// How instance `inst` should be booted right now (`None`: not running).
pub fn desired_boot(state: &State, inst: &Instance) -> Option<InstanceBoot> {
    if !inst.meta.live() || inst.status != "Running" {
        return None;
    }
    let hostname = if inst.host_name.is_empty() {
        inst.meta.id.clone()
    } else {
        inst.host_name.clone()
    };
    Some(InstanceBoot {
        instance_id: inst.meta.id.clone(),
        system_disk_id: inst.system_disk_id.clone(),
        hostname,
        data_disks: attached_data_disks(state, &inst.meta.id),
    })
}

/// The instance's live data disks: ECS `/dev/vdb` appears at `/mnt/vdb` inside it.
fn attached_data_disks(state: &State, instance_id: &str) -> Vec<DataDisk> {
    let mut disks: Vec<DataDisk> = state
        .disks
        .values()
        .filter(|d| d.meta.live() && d.instance_id.as_deref() == Some(instance_id))
        .filter_map(|d| {
            let device = d
                .data
                .as_ref()?
                .device
                .trim_start_matches("/dev/")
                .to_string();
            Some(DataDisk {
                disk_id: d.meta.id.clone(),
                device,
            })
        })
        .collect();
    disks.sort_by(|a, b| a.device.cmp(&b.device));
    disks
}

/// What the ticker last applied to each instance's SSH.
#[derive(Default)]
struct Applied {
    targets: HashMap<String, Option<SshTarget>>,
    /// Instances whose last machine call failed, with when to retry.
    retry_at: HashMap<String, u64>,
}

/// How often states advance and sshd's are checked: short, because a status becomes visible only
/// on a tick and the tick's lag adds to every transition a client waits for.
const TICK: Duration = Duration::from_millis(20);
/// What the ticker and the Cloud Assistant runner change is written every this many ticks (1 s).
/// Why not sooner: statuses change on most ticks while builds run, and each write is the whole
/// state; what clients changed is written before their answers anyway ([`super::commit`]), and a
/// status change lost to a crash happens again from its saved due time.
const FLUSH_EVERY_TICKS: u32 = 50;
const MACHINE_RETRY_MS: u64 = 2_000;

/// The two background threads: one advances states, one keeps sshd's in line with them. Separate
/// so that a slow sshd start (up to ~10 s) never delays lifecycles; neither holds the state lock
/// while doing machine work, so request handling never waits on sshd.
pub struct Ticker {
    states: std::thread::JoinHandle<()>,
    sshds: std::thread::JoinHandle<()>,
}

impl Ticker {
    /// Waits for both threads (after `stop` was set). Guarantees: no sshd is started afterwards.
    pub fn join(self) {
        let _ = self.states.join();
        let _ = self.sshds.join();
    }
}

/// Runs the ticker threads until `stop` is set.
pub fn spawn_ticker(sim: Arc<Sim>, stop: Arc<AtomicBool>) -> Ticker {
    let (sim2, stop2) = (sim.clone(), stop.clone());
    let states = std::thread::spawn(move || {
        let mut tick = 0u32;
        while !stop.load(Ordering::SeqCst) {
            tick = tick.wrapping_add(1);
            advance_and_flush(&sim, tick.is_multiple_of(FLUSH_EVERY_TICKS));
            std::thread::sleep(TICK);
        }
    });
    let sshds = std::thread::spawn(move || {
        let mut applied = Applied::default();
        while !stop2.load(Ordering::SeqCst) {
            reconcile_sshds(&sim2, &mut applied);
            std::thread::sleep(TICK);
        }
    });
    Ticker { states, sshds }
}

fn advance_and_flush(sim: &Sim, flush: bool) {
    {
        let mut state = sim.lock_state();
        if advance(&mut state, &sim.latencies, store::now_ms()) {
            sim.mark_dirty();
        }
    }
    if flush {
        if let Err(e) = sim.flush() {
            tracing::warn!(error = %e, "saving simulator state failed; will retry");
        }
    }
}

/// Brings every instance's machine to what [`desired_boot`] and [`desired_sshd`] say. After a
/// simulator restart `applied` starts empty, so every running instance boots again; an instance
/// that died is restarted.
fn reconcile_sshds(sim: &Sim, applied: &mut Applied) {
    record_guest_events(sim);
    let now = store::now_ms();
    let desired: Vec<Desired> = {
        let state = sim.lock_state();
        state
            .instances
            .values()
            .map(|i| Desired {
                id: i.meta.id.clone(),
                live: i.meta.live(),
                boot: desired_boot(&state, i),
                ssh: desired_sshd(&state, i, &sim.latencies, now),
                running_since: i.running_since_ms,
            })
            .collect()
    };
    for wish in desired {
        if applied.retry_at.get(&wish.id).is_some_and(|t| now < *t) {
            continue;
        }
        match apply(sim, &wish, applied) {
            Ok(()) => {
                applied.retry_at.remove(&wish.id);
            }
            Err(e) => {
                tracing::warn!(instance = %wish.id, error = %e, "machine reconcile failed; retrying");
                applied.targets.remove(&wish.id);
                applied.retry_at.insert(wish.id, now + MACHINE_RETRY_MS);
            }
        }
    }
}

/// One instance's wishes on this tick.
struct Desired {
    id: String,
    live: bool,
    boot: Option<InstanceBoot>,
    ssh: Option<SshTarget>,
    running_since: Option<u64>,
}

fn apply(sim: &Sim, wish: &Desired, applied: &mut Applied) -> Result<(), MachineError> {
    let machines = &sim.machines;
    match &wish.boot {
        Some(boot) => machines.ensure_running(boot)?,
        // Why forget for deleted instances: DeleteInstance already did, but this thread may have
        // been starting the instance from a wish computed just before the deletion.
        None if !wish.live => {
            if applied.targets.get(&wish.id) != Some(&None) {
                machines.forget_instance(&wish.id)?;
                applied.targets.insert(wish.id.clone(), None);
            }
            return Ok(());
        }
        None => machines.stop_instance(&wish.id)?,
    }
    let open = wish.ssh.is_none() || machines.ssh_open(&wish.id);
    if applied.targets.get(&wish.id) == Some(&wish.ssh) && open {
        return Ok(());
    }
    match &wish.ssh {
        Some(target) => {
            machines.ensure_sshd(target)?;
            if !matches!(applied.targets.get(&wish.id), Some(Some(_))) {
                let since = wish.running_since.unwrap_or_else(store::now_ms);
                record_ssh_listening(sim, &wish.id, since);
            }
        }
        None => machines.stop_sshd(&wish.id)?,
    }
    applied.targets.insert(wish.id.clone(), wish.ssh.clone());
    Ok(())
}

/// Records what instances did by themselves in the timeline (`guest running → rebooted` or
/// `→ powered-off`); an instance that powered itself off (`poweroff`, `halt` inside) becomes
/// Stopped, as on ECS. A reboot leaves it Running.
fn record_guest_events(sim: &Sim) {
    let events = sim.machines.take_guest_events();
    if events.is_empty() {
        return;
    }
    let mut state = sim.lock_state();
    for event in events {
        let id = event.instance_id.as_str();
        let at = event.at_ms;
        let to = match event.kind {
            GuestEventKind::Rebooted => "rebooted",
            GuestEventKind::PoweredOff => "powered-off",
        };
        tracing::info!(instance = %id, event = to, "instance acted by itself");
        let guest = Change::new("guest", id, "running", to).timed(at, at, at);
        state.timeline.record(guest);
        if event.kind != GuestEventKind::PoweredOff {
            continue;
        }
        let Some(inst) = state.instances.get_mut(id) else {
            continue;
        };
        if inst.meta.live() && inst.status == "Running" {
            let entered = inst.running_since_ms.unwrap_or(at);
            let change = Change::new("instance", id, "Running", "Stopped");
            let change = change.timed(entered, at, store::now_ms());
            inst.status = "Stopped".into();
            inst.target = None;
            inst.running_since_ms = None;
            state.timeline.record(change);
        }
    }
    sim.mark_dirty();
}

/// Records that instance `id`'s sshd listens (its boot delay began when it became Running).
fn record_ssh_listening(sim: &Sim, id: &str, running_since: u64) {
    let mut state = sim.lock_state();
    let due = running_since + sim.latencies.ssh_boot_ms;
    let change = Change::new("ssh", id, "booting", "listening");
    state
        .timeline
        .record(change.timed(running_since, due, store::now_ms()));
    sim.mark_dirty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::store::{KeyPair, Meta, SecurityGroup};
    use std::net::Ipv4Addr;

    const T0: u64 = 1_000_000;

    fn meta(id: &str) -> Meta {
        Meta {
            id: id.into(),
            region: "cn-hangzhou".into(),
            created_ms: 0,
            deleted_ms: None,
            tags: Default::default(),
            client_token: None,
        }
    }

    fn rule(protocol: &str, ports: &str) -> Rule {
        Rule {
            direction: "ingress".into(),
            dest_cidr_ip: String::new(),
            ip_protocol: protocol.into(),
            port_range: ports.into(),
            source_cidr_ip: "0.0.0.0/0".into(),
            policy: "accept".into(),
            priority: 1,
            nic_type: "intranet".into(),
            description: String::new(),
        }
    }

    /// A state with one instance, Running since `T0`, in group `sg-1` holding `rules`.
    fn state_with(rules: Vec<Rule>) -> State {
        let mut state = State::new();
        state.security_groups.insert(
            "sg-1".into(),
            SecurityGroup {
                meta: meta("sg-1"),
                name: String::new(),
                description: String::new(),
                vpc_id: String::new(),
                group_type: "normal".into(),
                rules,
            },
        );
        state.key_pairs.insert(
            "kp-1".into(),
            KeyPair {
                meta: meta("kp-1"),
                name: "key".into(),
                fingerprint: String::new(),
                public_key: "ssh-ed25519 AAAA".into(),
            },
        );
        state.instances.insert("i-1".into(), instance());
        state
    }

    fn instance() -> Instance {
        Instance {
            meta: meta("i-1"),
            zone: "cn-hangzhou-h".into(),
            status: "Running".into(),
            target: None,
            next_ms: 0,
            running_since_ms: Some(T0),
            instance_type: "ecs.s2.large".into(),
            image_id: "m-1".into(),
            name: String::new(),
            description: String::new(),
            host_name: String::new(),
            key_pair_name: Some("key".into()),
            security_group_ids: vec!["sg-1".into()],
            vpc_id: String::new(),
            vswitch_id: String::new(),
            private_ip: Ipv4Addr::new(127, 20, 0, 1),
            public_ip: None,
            internet_max_bandwidth_out: 0,
            internet_charge_type: "PayByTraffic".into(),
            system_disk_id: "d-1".into(),
            stopped_mode: String::new(),
            released_ms: None,
            password_hash: None,
        }
    }

    fn fast() -> Latencies {
        Latencies::for_profile(Profile::Fast)
    }

    fn booted() -> u64 {
        T0 + fast().ssh_boot_ms
    }

    fn desired(state: &State, now: u64) -> Option<SshTarget> {
        desired_sshd(state, &state.instances["i-1"], &fast(), now)
    }

    #[test]
    fn rules_that_cover_tcp_22_allow_ssh() {
        for (protocol, ports) in [
            ("TCP", "22/22"),
            ("tcp", "1/65535"),
            ("TCP", "20/30"),
            ("TCP", "-1/-1"),
            ("ALL", "-1/-1"),
            ("all", "1/65535"),
        ] {
            assert!(allows_ssh(&rule(protocol, ports)), "{protocol} {ports}");
        }
    }

    #[test]
    fn rules_that_miss_tcp_22_do_not_allow_ssh() {
        for (protocol, ports) in [
            ("TCP", "80/443"),
            ("TCP", "23/65535"),
            ("TCP", "1/21"),
            ("UDP", "22/22"),
            ("UDP", "1/65535"),
            ("ICMP", "-1/-1"),
            ("TCP", "22"),
            ("TCP", "x/y"),
        ] {
            assert!(!allows_ssh(&rule(protocol, ports)), "{protocol} {ports}");
        }
        let mut drop = rule("ALL", "-1/-1");
        drop.policy = "drop".into();
        assert!(!allows_ssh(&drop));
    }

    #[test]
    fn a_running_booted_instance_with_an_open_group_gets_sshd_on_its_addresses_with_its_key() {
        let mut state = state_with(vec![rule("TCP", "22/22")]);
        let target = desired(&state, booted()).expect("reachable");
        assert_eq!(target.instance_id, "i-1");
        assert_eq!(target.disk_id, "d-1");
        assert_eq!(target.addresses, vec![Ipv4Addr::new(127, 20, 0, 1)]);
        assert_eq!(target.authorized_keys, "ssh-ed25519 AAAA\n");

        let public = Ipv4Addr::new(127, 30, 0, 1);
        state.instances.get_mut("i-1").unwrap().public_ip = Some(public);
        let target = desired(&state, booted()).expect("reachable");
        assert_eq!(target.addresses[1], public);
    }

    #[test]
    fn sshd_waits_for_the_boot_delay_after_running() {
        let state = state_with(vec![rule("TCP", "1/65535")]);
        assert_eq!(desired(&state, T0), None);
        assert_eq!(desired(&state, booted() - 1), None);
        assert!(desired(&state, booted()).is_some());
    }

    #[test]
    fn no_sshd_unless_running() {
        for status in ["Pending", "Starting", "Stopping", "Stopped"] {
            let mut state = state_with(vec![rule("ALL", "-1/-1")]);
            let inst = state.instances.get_mut("i-1").unwrap();
            inst.status = status.into();
            assert_eq!(desired(&state, booted() + 60_000), None, "{status}");
        }
        let mut state = state_with(vec![rule("ALL", "-1/-1")]);
        state.instances.get_mut("i-1").unwrap().meta.deleted_ms = Some(T0);
        assert_eq!(desired(&state, booted()), None, "deleted");
    }

    #[test]
    fn no_sshd_without_a_group_rule_for_tcp_22() {
        let state = state_with(vec![]);
        assert_eq!(desired(&state, booted()), None);
        let state = state_with(vec![rule("TCP", "80/80"), rule("UDP", "22/22")]);
        assert_eq!(desired(&state, booted()), None);
        let mut state = state_with(vec![rule("TCP", "22/22")]);
        state
            .security_groups
            .get_mut("sg-1")
            .unwrap()
            .meta
            .deleted_ms = Some(T0);
        assert_eq!(desired(&state, booted()), None, "deleted group");
    }

    #[test]
    fn any_of_several_groups_may_open_tcp_22() {
        let mut state = state_with(vec![rule("TCP", "80/80")]);
        let mut open = state.security_groups["sg-1"].clone();
        open.meta.id = "sg-2".into();
        open.rules = vec![rule("TCP", "22/22")];
        state.security_groups.insert("sg-2".into(), open);
        state
            .instances
            .get_mut("i-1")
            .unwrap()
            .security_group_ids
            .push("sg-2".into());
        assert!(desired(&state, booted()).is_some());
    }

    #[test]
    fn stop_then_start_restarts_the_boot_delay() {
        let mut state = state_with(vec![rule("TCP", "22/22")]);
        let lat = fast();
        let inst = state.instances.get_mut("i-1").unwrap();
        inst.status = "Stopping".into();
        inst.target = Some("Running".into());
        inst.running_since_ms = None;
        inst.next_ms = T0;
        let mut now = T0;
        while state.instances["i-1"].status != "Running" {
            advance(&mut state, &lat, now);
            now += lat.instance_step_ms;
        }
        let since = state.instances["i-1"].running_since_ms.expect("running");
        assert_eq!(desired(&state, since), None);
        assert!(desired(&state, since + lat.ssh_boot_ms).is_some());
    }
}
