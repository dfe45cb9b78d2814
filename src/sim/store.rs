//! The simulator's resource records and their persistence.
//!
//! Guarantees: every record ever created stays in the state (deleted ones carry `deleted_ms`), so the
//! inventory can show history. The state is written atomically (temp file + rename + fsync) to
//! `<data>/state.json` by [`super::commit`], which says when; a restarted simulator continues exactly
//! where the last write left it. The call log lives in its own file ([`super::calllog`]).
//! Caveats: times are wall-clock milliseconds, so transitions due while the simulator was down happen
//! on its first tick after restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::calllog::LegacyCalls;
use super::idempotency::TokenEntry;
use super::timeline::Timeline;

/// What every resource has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub region: String,
    pub created_ms: u64,
    pub deleted_ms: Option<u64>,
    pub tags: BTreeMap<String, String>,
    pub client_token: Option<String>,
}

impl Meta {
    pub fn live(&self) -> bool {
        self.deleted_ms.is_none()
    }
}

/// A resource record: anything with a [`Meta`].
pub trait Resource {
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! resource {
    ($($record:ty),*) => {$(
        impl Resource for $record {
            fn meta(&self) -> &Meta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut Meta {
                &mut self.meta
            }
        }
    )*};
}
resource!(
    Instance,
    Disk,
    Snapshot,
    Image,
    KeyPair,
    SecurityGroup,
    Vpc,
    VSwitch,
    Eip
);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub meta: Meta,
    pub zone: String,
    pub status: String,
    /// Status the instance is heading to (`Running` or `Stopped`) while transitioning.
    pub target: Option<String>,
    /// When the next transition step is due (ms since epoch).
    pub next_ms: u64,
    /// When it last became Running; SSH answers only a boot delay after this.
    pub running_since_ms: Option<u64>,
    pub instance_type: String,
    pub image_id: String,
    pub name: String,
    pub description: String,
    pub host_name: String,
    pub key_pair_name: Option<String>,
    pub security_group_ids: Vec<String>,
    pub vpc_id: String,
    pub vswitch_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    pub internet_max_bandwidth_out: i64,
    /// RunInstances `InternetChargeType` (`PayByTraffic` when not given, as ECS defaults).
    #[serde(default = "default_internet_charge_type")]
    pub internet_charge_type: String,
    pub system_disk_id: String,
    pub stopped_mode: String,
    /// After `DeleteInstance`: when the release finishes. Until then the instance, though gone from
    /// Describe*, still holds its security groups and vSwitch (`DependencyViolation`), as on ECS.
    #[serde(default)]
    pub released_ms: Option<u64>,
    /// SHA-512 crypt hash of the `Password` given at creation (never the password itself).
    #[serde(default)]
    pub password_hash: Option<String>,
}

impl Instance {
    /// Whether the instance still occupies its network resources at `now` (live, or released less
    /// than the release delay ago).
    pub fn holds_network(&self, now: u64) -> bool {
        self.meta.live() || self.released_ms.is_some_and(|t| now < t)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disk {
    pub meta: Meta,
    pub zone: String,
    pub status: String,
    pub instance_id: Option<String>,
    pub image_id: String,
    pub size_gib: i64,
    pub category: String,
    pub name: String,
    /// Set for a data disk (`DataDisk.N` of RunInstances/CreateInstance); `None`: the system disk.
    #[serde(default)]
    pub data: Option<DataDiskInfo>,
}

/// What a data disk has beyond a system disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataDiskInfo {
    /// `/dev/vdb`, `/dev/vdc`, … in attachment order (or as requested).
    pub device: String,
    pub delete_with_instance: bool,
    /// The snapshot it was created from, or empty.
    pub source_snapshot_id: String,
}

/// A data disk an image carries (CreateImage `DiskDeviceMapping.N` of a data snapshot): instances
/// created from the image get a data disk made from the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageDataDisk {
    pub snapshot_id: String,
    pub size_gib: i64,
    pub device: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: Meta,
    /// `progressing`, `accomplished` or `failed`.
    pub status: String,
    pub done_ms: u64,
    /// Decided at creation (fault injection): whether it ends `failed`.
    pub will_fail: bool,
    pub source_disk_id: String,
    pub source_disk_size: i64,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub meta: Meta,
    /// `Creating`, `Available`, `CreateFailed`.
    pub status: String,
    pub done_ms: u64,
    pub will_fail: bool,
    pub name: String,
    pub description: String,
    pub family: String,
    pub version: String,
    /// `system` for built-ins, `self` for custom images.
    pub owner_alias: String,
    pub os_name: String,
    pub size_gib: i64,
    pub snapshot_id: Option<String>,
    /// Data disk snapshots of the image, beside the system snapshot.
    #[serde(default)]
    pub data_disks: Vec<ImageDataDisk>,
    /// For copies: the image it was copied from.
    pub copied_from: Option<String>,
    pub shared_with: Vec<String>,
    pub is_public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPair {
    pub meta: Meta,
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    /// `ingress` or `egress` (records written before egress rules existed are ingress).
    #[serde(default = "ingress")]
    pub direction: String,
    pub ip_protocol: String,
    pub port_range: String,
    /// The peer of an ingress rule (a CIDR or a security group id).
    pub source_cidr_ip: String,
    /// The peer of an egress rule (a CIDR or a security group id).
    #[serde(default)]
    pub dest_cidr_ip: String,
    pub policy: String,
    pub priority: i64,
    pub nic_type: String,
    pub description: String,
}

fn ingress() -> String {
    "ingress".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub meta: Meta,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub group_type: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vpc {
    pub meta: Meta,
    pub status: String,
    pub next_ms: u64,
    pub name: String,
    pub description: String,
    pub cidr_block: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VSwitch {
    pub meta: Meta,
    pub status: String,
    pub next_ms: u64,
    pub vpc_id: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    pub cidr_block: String,
}

/// An elastic IP address (ECS API 2014-05-26 view of the VPC resource).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Eip {
    pub meta: Meta,
    pub ip: Ipv4Addr,
    /// `Available`, `Associating`, `InUse` or `Unassociating`.
    pub status: String,
    /// When a transitional status (`Associating`, `Unassociating`) ends.
    pub next_ms: u64,
    /// The instance it is (being) associated with.
    pub instance_id: Option<String>,
    /// Mbps, as the API spells it (a string).
    pub bandwidth: String,
    pub internet_charge_type: String,
    /// `Name` (VPC API only; empty when allocated through ECS).
    #[serde(default)]
    pub name: String,
}

/// Loopback address ranges of this data dir, chosen at random when it was created so parallel
/// simulators do not collide; addresses are handed out sequentially from each base.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetPlan {
    pub private_base: u32,
    pub public_base: u32,
    pub next_private: u32,
    pub next_public: u32,
}

/// Lowest and highest usable loopback addresses (127.16.0.0 .. 127.254.255.255).
const LOOPBACK_LOW: u32 = 0x7f10_0000;
const LOOPBACK_HIGH: u32 = 0x7ffe_ffff;
/// Addresses reserved per range; a simulator can allocate this many of each kind.
const RANGE_SIZE: u32 = 1 << 16;

impl NetPlan {
    fn random() -> Self {
        let mut rng = rand::thread_rng();
        let slots = (LOOPBACK_HIGH - LOOPBACK_LOW) / 256 - RANGE_SIZE / 256;
        let private_base = LOOPBACK_LOW + rng.gen_range(0..slots) * 256;
        let mut public_base = private_base;
        while public_base.abs_diff(private_base) < RANGE_SIZE {
            public_base = LOOPBACK_LOW + rng.gen_range(0..slots) * 256;
        }
        NetPlan {
            private_base,
            public_base,
            next_private: 0,
            next_public: 0,
        }
    }

    /// Next address skipping `.0` and `.255` host bytes, which some tools treat specially.
    fn take(base: u32, next: &mut u32) -> Ipv4Addr {
        loop {
            let ip = base + (*next % RANGE_SIZE);
            *next += 1;
            if !matches!(ip & 0xff, 0 | 255) {
                return Ipv4Addr::from(ip);
            }
        }
    }

    pub fn next_private_ip(&mut self) -> Ipv4Addr {
        Self::take(self.private_base, &mut self.next_private)
    }

    pub fn next_public_ip(&mut self) -> Ipv4Addr {
        Self::take(self.public_base, &mut self.next_public)
    }
}

/// Everything the simulator remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub net: NetPlan,
    pub instances: BTreeMap<String, Instance>,
    pub disks: BTreeMap<String, Disk>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub images: BTreeMap<String, Image>,
    pub key_pairs: BTreeMap<String, KeyPair>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub vpcs: BTreeMap<String, Vpc>,
    pub vswitches: BTreeMap<String, VSwitch>,
    #[serde(default)]
    pub eips: BTreeMap<String, Eip>,
    /// ClientToken results, keyed by `idempotency::token_key`.
    pub tokens: BTreeMap<String, TokenEntry>,
    /// The call log of a state file written before it moved to `calls.jsonl` ([`super::calllog`]);
    /// read once to migrate it, never written.
    #[serde(default, rename = "calls", skip_serializing)]
    pub legacy_calls: LegacyCalls,
    /// Cloud Assistant: agents, commands, invocations, file sends.
    #[serde(default)]
    pub assistant: super::assistant::AssistantState,
    /// Status changes with their timings (`/_sim/timeline`).
    #[serde(default)]
    pub timeline: Timeline,
}

impl State {
    pub fn new() -> Self {
        State {
            net: NetPlan::random(),
            instances: BTreeMap::new(),
            disks: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            images: BTreeMap::new(),
            key_pairs: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            vpcs: BTreeMap::new(),
            vswitches: BTreeMap::new(),
            eips: BTreeMap::new(),
            tokens: BTreeMap::new(),
            legacy_calls: LegacyCalls::default(),
            assistant: Default::default(),
            timeline: Timeline::default(),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// Errors loading or saving the state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading simulator state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator state {path} is corrupt (delete the data dir to start afresh): {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.json")
}

/// Loads the state of `data_dir`, or a fresh one (with new random IP ranges) if none exists.
pub fn load(data_dir: &Path) -> Result<State, StoreError> {
    let path = state_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::new()),
        Err(source) => Err(StoreError::Read { path, source }),
    }
}

/// Replaces the state file with `bytes` atomically: a crash leaves either the old or the new file,
/// never a torn one; once this returns, the new file survives a power loss.
pub fn write_atomically(data_dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = state_path(data_dir);
    let tmp = data_dir.join("state.json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// A fresh resource id in the ECS style: prefix, `-`, 20 lowercase alphanumerics.
pub fn new_id(prefix: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let body: String = (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    format!("{prefix}-{body}")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// ECS time format `yyyy-MM-ddTHH:mm:ssZ`.
pub fn iso_time(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

fn default_internet_charge_type() -> String {
    "PayByTraffic".into()
}
