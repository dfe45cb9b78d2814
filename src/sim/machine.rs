//! Real instances for the simulator: root filesystems on disk and one chrooted OpenSSH `sshd` per
//! reachable instance. The API layer (`sim::api`) owns the resource records and decides *when* an
//! instance should be reachable; this module only does the file-system and process work.
//!
//! Disk layout under the simulator's data dir (every path component root-owned, mode 0755, because
//! sshd's `ChrootDirectory` demands it):
//!
//! ```text
//! <data>/images/<image-id>/rootfs      root filesystem of an image
//! <data>/disks/<disk-id>/rootfs        an instance's system disk
//! <data>/snapshots/<snapshot-id>/rootfs
//! <data>/sshd/<instance-id>/           sshd_config, host keys, authorized_keys, pid file
//! ```
//!
//! STUB: the signatures below are the contract with the API layer; the bodies are placeholders
//! until the real implementation lands.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

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

/// Handle on the simulator's machines. Cheap to clone; safe to share between tasks.
#[derive(Debug, Clone)]
pub struct Machines {
    data_dir: PathBuf,
}

impl Machines {
    /// Prepares the directories under `data_dir`.
    pub fn new(data_dir: &Path) -> Result<Self, MachineError> {
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Makes sure the built-in base image `image_id` has a root filesystem: a busybox-static tree
    /// with `/etc/os-release` carrying `os_release`. Idempotent.
    pub fn ensure_base_image(&self, image_id: &str, os_release: &str) -> Result<(), MachineError> {
        let _ = (image_id, os_release, &self.data_dir);
        Ok(())
    }

    /// Creates disk `disk_id` as a copy of image `image_id`'s root filesystem.
    pub fn create_disk_from_image(
        &self,
        disk_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        let _ = (disk_id, image_id);
        Ok(())
    }

    /// Copies disk `disk_id`'s filesystem as it is now into snapshot `snapshot_id`.
    pub fn snapshot_disk(&self, disk_id: &str, snapshot_id: &str) -> Result<(), MachineError> {
        let _ = (disk_id, snapshot_id);
        Ok(())
    }

    /// Makes image `image_id`'s root filesystem from snapshot `snapshot_id`.
    pub fn image_from_snapshot(
        &self,
        snapshot_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        let _ = (snapshot_id, image_id);
        Ok(())
    }

    /// Copies image `from` (e.g. for CopyImage) into image `to`.
    pub fn copy_image(&self, from: &str, to: &str) -> Result<(), MachineError> {
        let _ = (from, to);
        Ok(())
    }

    /// Removes a disk's, snapshot's or image's filesystem. Missing is fine.
    pub fn delete_disk(&self, disk_id: &str) -> Result<(), MachineError> {
        let _ = disk_id;
        Ok(())
    }
    pub fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), MachineError> {
        let _ = snapshot_id;
        Ok(())
    }
    pub fn delete_image(&self, image_id: &str) -> Result<(), MachineError> {
        let _ = image_id;
        Ok(())
    }

    /// Starts or reconfigures the instance's sshd so that it matches `target` (listening on
    /// exactly those addresses with those keys). Idempotent: an identical running sshd is kept.
    pub fn ensure_sshd(&self, target: &SshTarget) -> Result<(), MachineError> {
        let _ = target;
        Ok(())
    }

    /// Stops the instance's sshd if one runs. Idempotent.
    pub fn stop_sshd(&self, instance_id: &str) -> Result<(), MachineError> {
        let _ = instance_id;
        Ok(())
    }

    /// Stops every sshd this simulator started (shutdown path).
    pub fn stop_all(&self) {}
}
