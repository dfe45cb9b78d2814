//! The reconciler: sled state, the phase machine, SSH provisioning, cleanup and gc.
//!
//! - [`state`]: the locked state directory and its records (builds, intents, events).
//! - [`keys`]: per-build ed25519 key pairs stored as 0600 files in the state directory.
//! - [`ssh`]: SSH sessions to build instances: connect with retry and host-key pinning, exec with
//!   live output, streamed uploads.
//! - [`eip`]: the build's elastic IP with `ssh.address: eip` (allocate, tag, associate, release).

pub mod assistant;
pub mod cleanup;
pub mod cloud;
pub mod commands;
pub mod crash;
pub mod disk_snapshots;
pub mod distribute;
pub mod eip;
pub mod gc;
pub mod interrupt;
pub mod keys;
pub mod output;
pub mod phase;
pub mod preflight;
pub mod provenance;
pub mod provision;
pub mod provision_assistant;
pub mod quota_check;
pub mod reconcile;
pub mod remote;
pub mod snapshot;
pub mod ssh;
pub mod state;
pub mod steps;
pub mod store;
pub mod verify;
