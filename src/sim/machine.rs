//! Real instances for the simulator: root filesystems on disk and one chrooted OpenSSH `sshd` per
//! reachable instance. The API layer (`sim::actions`, `sim::lifecycle`) owns the resource records
//! and decides *when* an instance should be reachable; this module only does the file-system and
//! process work.
//!
//! Disk layout under the simulator's data dir (every path component root-owned, mode 0755, because
//! sshd's `ChrootDirectory` demands it):
//!
//! ```text
//! <data>/images/<image-id>/rootfs      root filesystem of an image
//! <data>/disks/<disk-id>/rootfs        an instance's system disk
//! <data>/snapshots/<snapshot-id>/rootfs
//! <data>/sshd/<instance-id>/           sshd_config, host keys, authorized_keys, pid file, log (0700)
//! ```
//!
//! Trees are built in a `.tmp-*` sibling and renamed into place, so a crash never leaves a half
//! tree under a resource's name; `Machines::new` sweeps leftovers and kills sshd's (and their
//! chrooted sessions) left by an earlier run on the same data dir. Every sshd is also set to die
//! with the simulator process (`PR_SET_PDEATHSIG`), so even SIGKILL of the simulator ends them.
//!
//! Assumptions: one simulator per data dir (`Machines::new` kills every sshd and chrooted process
//! of the data dir it finds). sshd's do not survive a simulator restart: after `Machines::new`, the
//! API layer calls `ensure_sshd` again for every instance that should be reachable.
//!
//! Caveats: every method blocks (file copies, `ensure_sshd` waits until sshd listens); call them
//! from `tokio::task::spawn_blocking` in async code. Needs root, `openssh-server` and
//! `busybox-static`.

mod procs;
mod rootfs;
mod sshd;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Errors of the machine layer; one variant per failed operation.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sshd for instance {instance}: {message}")]
    Sshd { instance: String, message: String },
    #[error("invalid {kind} id {id:?}: ids may hold only letters, digits, '-', '_' and '.' and must not start with '.'")]
    InvalidId { kind: &'static str, id: String },
    #[error("{kind} {id} has no root filesystem at {path}: create it first")]
    NotFound {
        kind: &'static str,
        id: String,
        path: PathBuf,
    },
    #[error("copying {from} to {to} failed ({detail}); check free disk space")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        detail: String,
    },
    #[error("no busybox found (tried {tried}): install the busybox-static package")]
    NoBusybox { tried: String },
    #[error("{path} {reason}: sshd's ChrootDirectory needs every path component root-owned and not group/world-writable; put the simulator's data dir elsewhere (not under /tmp)")]
    UnsafeChrootPath { path: PathBuf, reason: String },
    #[error("host key for instance {instance}: {detail}")]
    HostKey { instance: String, detail: String },
    #[error("starting sshd for instance {instance} (is openssh-server installed?): {source}")]
    SpawnSshd {
        instance: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the API layer wants an instance's sshd to look like right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Instance id (`i-…`), names the sshd's working directory.
    pub instance_id: String,
    /// System disk id whose rootfs is the chroot.
    pub disk_id: String,
    /// Addresses to listen on, port 22: the private IP and, if allocated, the public IP.
    pub addresses: Vec<Ipv4Addr>,
    /// OpenSSH public key lines accepted for root (from the instance's key pair); may be empty.
    pub authorized_keys: String,
}

/// Handle on the simulator's machines. Cheap to clone; safe to share between tasks. When the last
/// clone is dropped, every sshd it started is stopped.
#[derive(Debug, Clone)]
pub struct Machines {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Canonical (absolute) data dir; sshd needs absolute paths.
    data_dir: PathBuf,
    /// Running sshd's by instance id. One lock for all: starts are short and rare.
    sshds: Mutex<HashMap<String, sshd::RunningSshd>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_every(&self.sshds);
    }
}

fn stop_every(sshds: &Mutex<HashMap<String, sshd::RunningSshd>>) {
    let drained: Vec<_> = lock(sshds).drain().collect();
    for (_, running) in drained {
        sshd::stop(running);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ids become path components, so they must not be able to climb out of their directory.
fn check_id(kind: &'static str, id: &str) -> Result<(), MachineError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.starts_with('.') || !id.chars().all(allowed) {
        return Err(MachineError::InvalidId {
            kind,
            id: id.to_string(),
        });
    }
    Ok(())
}

const KINDS: [&str; 3] = ["images", "disks", "snapshots"];

impl Machines {
    /// Prepares the directories under `data_dir` (created if missing), removes half-built trees and
    /// kills sshd's and chrooted sessions left behind by an earlier simulator on this data dir.
    pub fn new(data_dir: &Path) -> Result<Self, MachineError> {
        rootfs::ensure_dir(data_dir, 0o755)?;
        let data_dir = data_dir.canonicalize().map_err(|source| MachineError::Io {
            what: "resolve data dir",
            path: data_dir.to_path_buf(),
            source,
        })?;
        for kind in KINDS {
            rootfs::ensure_dir(&data_dir.join(kind), 0o755)?;
            rootfs::remove_stale_temps(&data_dir.join(kind))?;
        }
        rootfs::ensure_dir(&data_dir.join("sshd"), 0o700)?;
        let machines = Self {
            inner: Arc::new(Inner {
                data_dir,
                sshds: Mutex::new(HashMap::new()),
            }),
        };
        machines.kill_leftovers_of_earlier_runs();
        Ok(machines)
    }

    fn kill_leftovers_of_earlier_runs(&self) {
        if let Ok(entries) = std::fs::read_dir(self.inner.data_dir.join("sshd")) {
            for entry in entries.flatten() {
                sshd::kill_stale(&sshd::SshdFiles::new(entry.path()));
            }
        }
        procs::kill_rooted_under(&self.inner.data_dir.join("disks"));
    }

    fn dir(&self, kind: &'static str, id: &str) -> Result<PathBuf, MachineError> {
        check_id(kind, id)?;
        Ok(self.inner.data_dir.join(format!("{kind}s")).join(id))
    }

    fn sshd_files(&self, instance_id: &str) -> Result<sshd::SshdFiles, MachineError> {
        check_id("instance", instance_id)?;
        Ok(sshd::SshdFiles::new(
            self.inner.data_dir.join("sshd").join(instance_id),
        ))
    }

    /// Makes sure the built-in base image `image_id` has a root filesystem: a busybox-static tree
    /// with `/etc/os-release` carrying `os_release`. Idempotent: an existing image is kept as is.
    pub fn ensure_base_image(&self, image_id: &str, os_release: &str) -> Result<(), MachineError> {
        let dest = self.dir("image", image_id)?;
        rootfs::build_atomically(&dest, |temp| {
            rootfs::build_base_rootfs(&temp.join("rootfs"), os_release)
        })
    }

    /// Copies the tree of one resource into a new one.
    ///
    /// Guarantees: the destination appears complete or not at all; an existing destination is
    /// kept (ids are never reused, so it is the result of an earlier identical call).
    fn copy_resource(
        &self,
        (from_kind, from_id): (&'static str, &str),
        (to_kind, to_id): (&'static str, &str),
    ) -> Result<(), MachineError> {
        let source = self.dir(from_kind, from_id)?.join("rootfs");
        let dest = self.dir(to_kind, to_id)?;
        if !source.is_dir() {
            return Err(MachineError::NotFound {
                kind: from_kind,
                id: from_id.to_string(),
                path: source,
            });
        }
        rootfs::build_atomically(&dest, |temp| {
            rootfs::copy_tree(&source, &temp.join("rootfs"))
        })
    }

    /// Creates disk `disk_id` as a copy of image `image_id`'s root filesystem.
    pub fn create_disk_from_image(
        &self,
        disk_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        self.copy_resource(("image", image_id), ("disk", disk_id))
    }

    /// Creates data disk `disk_id` as a copy of snapshot `snapshot_id`'s filesystem.
    pub fn create_disk_from_snapshot(
        &self,
        disk_id: &str,
        snapshot_id: &str,
    ) -> Result<(), MachineError> {
        self.copy_resource(("snapshot", snapshot_id), ("disk", disk_id))
    }

    /// Creates data disk `disk_id` with an empty filesystem (a new, unformatted ECS data disk).
    pub fn create_empty_disk(&self, disk_id: &str) -> Result<(), MachineError> {
        let rootfs = self.dir("disk", disk_id)?.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|source| MachineError::Io {
            what: "creating data disk",
            path: rootfs,
            source,
        })
    }

    /// Copies disk `disk_id`'s filesystem as it is now into snapshot `snapshot_id`.
    pub fn snapshot_disk(&self, disk_id: &str, snapshot_id: &str) -> Result<(), MachineError> {
        self.copy_resource(("disk", disk_id), ("snapshot", snapshot_id))
    }

    /// Makes image `image_id`'s root filesystem from snapshot `snapshot_id`.
    pub fn image_from_snapshot(
        &self,
        snapshot_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        self.copy_resource(("snapshot", snapshot_id), ("image", image_id))
    }

    /// Copies image `from` (e.g. for CopyImage) into image `to`.
    pub fn copy_image(&self, from: &str, to: &str) -> Result<(), MachineError> {
        self.copy_resource(("image", from), ("image", to))
    }

    /// Removes a disk's filesystem. Missing is fine. An sshd chrooted into it and any process
    /// still running inside it are stopped first.
    pub fn delete_disk(&self, disk_id: &str) -> Result<(), MachineError> {
        let dir = self.dir("disk", disk_id)?;
        let rootfs = dir.join("rootfs");
        let users: Vec<_> = {
            let mut sshds = lock(&self.inner.sshds);
            let ids: Vec<String> = sshds
                .iter()
                .filter(|(_, running)| running.rootfs == rootfs)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sshds.remove(id)).collect()
        };
        users.into_iter().for_each(sshd::stop);
        procs::kill_rooted_under(&rootfs);
        rootfs::remove_tree(&dir)
    }

    /// Removes a snapshot's filesystem. Missing is fine.
    pub fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), MachineError> {
        rootfs::remove_tree(&self.dir("snapshot", snapshot_id)?)
    }

    /// Removes an image's filesystem. Missing is fine.
    pub fn delete_image(&self, image_id: &str) -> Result<(), MachineError> {
        rootfs::remove_tree(&self.dir("image", image_id)?)
    }

    /// Starts or reconfigures the instance's sshd so that it matches `target` (listening on
    /// exactly those addresses with those keys). Idempotent: an identical running sshd is kept
    /// (new authorized keys take effect at the next login without a restart).
    ///
    /// Guarantees: on `Ok`, sshd accepts TCP connections on every address; on error, no sshd of
    /// this instance runs and the message carries the tail of its log. The host key is generated
    /// on the first call for an instance and kept for good. An empty `addresses` stops the sshd
    /// (sshd without `ListenAddress` would listen everywhere).
    /// Caveats: blocks up to ~10 s while sshd starts.
    pub fn ensure_sshd(&self, target: &SshTarget) -> Result<(), MachineError> {
        let files = self.sshd_files(&target.instance_id)?;
        if target.addresses.is_empty() {
            return self.stop_sshd(&target.instance_id);
        }
        let rootfs = self.dir("disk", &target.disk_id)?.join("rootfs");
        if !rootfs.is_dir() {
            return Err(MachineError::NotFound {
                kind: "disk",
                id: target.disk_id.clone(),
                path: rootfs,
            });
        }
        rootfs::check_chroot_path(&rootfs)?;
        sshd::ensure_host_key(&files, &target.instance_id)?;
        sshd::write_authorized_keys(&files, &target.authorized_keys)?;
        let config = sshd::render_config(&files, &rootfs, &target.addresses);
        let mut sshds = lock(&self.inner.sshds);
        if let Some(running) = sshds.get_mut(&target.instance_id) {
            if running.config == config && running.is_alive() {
                return Ok(());
            }
        }
        if let Some(outdated) = sshds.remove(&target.instance_id) {
            sshd::stop(outdated);
        }
        let running = sshd::start(
            &files,
            &target.instance_id,
            config,
            &rootfs,
            &target.addresses,
        )?;
        sshds.insert(target.instance_id.clone(), running);
        Ok(())
    }

    /// Stops the instance's sshd if one runs, with every session it spawned. Idempotent.
    pub fn stop_sshd(&self, instance_id: &str) -> Result<(), MachineError> {
        check_id("instance", instance_id)?;
        let running = lock(&self.inner.sshds).remove(instance_id);
        if let Some(running) = running {
            sshd::stop(running);
        }
        Ok(())
    }

    /// Stops every sshd this simulator started (shutdown path).
    pub fn stop_all(&self) {
        stop_every(&self.inner.sshds);
    }

    /// Addition: stops the instance's sshd and removes its sshd directory (host key included), for
    /// DeleteInstance. A later instance never reuses the id, so nothing needs the key again.
    pub fn forget_instance(&self, instance_id: &str) -> Result<(), MachineError> {
        self.stop_sshd(instance_id)?;
        rootfs::remove_tree(&self.sshd_files(instance_id)?.dir)
    }

    /// Addition: the instance's SSH host public key (`ssh-ed25519 AAAA… comment`), stable for the
    /// life of the instance; `None` before its sshd first started.
    pub fn host_public_key(&self, instance_id: &str) -> Result<Option<String>, MachineError> {
        self.sshd_files(instance_id)?.host_public_key()
    }

    /// Addition: pid of the instance's running sshd listener, if any (for tests and diagnostics).
    pub fn sshd_pid(&self, instance_id: &str) -> Option<u32> {
        let mut sshds = lock(&self.inner.sshds);
        let running = sshds.get_mut(instance_id)?;
        running.is_alive().then(|| running.child.id())
    }

    /// Addition: the root filesystem directory of disk `disk_id` (may not exist).
    pub fn disk_rootfs(&self, disk_id: &str) -> Result<PathBuf, MachineError> {
        Ok(self.dir("disk", disk_id)?.join("rootfs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_their_directory_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "i-1\n"] {
            assert!(check_id("disk", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["i-bp1abc", "d-1", "m-2.x_y"] {
            check_id("disk", good).expect(good);
        }
    }
}
