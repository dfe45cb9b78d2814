//! Real instances for the simulator, isolated like VMs: each running instance has its own user
//! namespace (its root is an unprivileged host uid range), its own mount, PID, IPC, UTS, network
//! and cgroup namespaces, and its disk as the root file system (`pivot_root`). Its OpenSSH server
//! is its own: the simulator binds `IP:22` and hands each connection to `sshd -i` started inside
//! the instance. The API layer (`sim::actions`, `sim::lifecycle`) owns the resource records and
//! decides *when* an instance runs and is reachable; this module does the file and process work.
//!
//! Disk layout under the simulator's data dir (host-root-only directories, 0700):
//!
//! ```text
//! <data>/images/<image-id>/rootfs      root filesystem of an image (plain ids)
//! <data>/disks/<disk-id>/rootfs        a disk, owned by the instance id range (see `uid-base`)
//! <data>/snapshots/<snapshot-id>/rootfs (plain ids)
//! <data>/sshd/<instance-id>/           host key, instance log
//! <data>/uid-base                      first host uid/gid of the instances' id range
//! ```
//!
//! Trees are built in a `.tmp-*` sibling and renamed into place, so a crash never leaves a half
//! tree under a resource's name; `Machines::new` sweeps leftovers. Every instance process dies
//! with the simulator (a chain of `PR_SET_PDEATHSIG`), even on SIGKILL.
//!
//! Assumptions: one simulator per data dir; instances do not survive a simulator restart (the
//! API layer boots them again). Caveats: every method blocks (file copies; starts wait until the
//! instance is up); call them from blocking contexts. Needs root, `openssh-server`, `ldd`,
//! `busybox-static` and user namespaces.

mod enter;
mod exec;
mod hostkey;
mod init;
mod instance;
mod launcher;
mod listener;
mod openssh;
pub mod preflight;
mod rootfs;
mod spawn;
mod sys;
mod tree;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use self::instance::{Ended, RunningInstance};
use self::launcher::LaunchSpec;
use self::tree::Shift;

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
    #[error("SSH for instance {instance}: {message}")]
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
    #[error("no /usr/sbin/sshd: install the openssh-server package")]
    NoSshd,
    #[error("host key for instance {instance}: {detail}")]
    HostKey { instance: String, detail: String },
    #[error("starting instance {instance}: {message}")]
    Boot { instance: String, message: String },
    #[error("instance {instance} is not running: start it first")]
    NotRunning { instance: String },
    #[error("running a command in instance {instance}: {source}")]
    Exec {
        instance: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing files into instance {instance}: {detail}")]
    Install { instance: String, detail: String },
}

/// What the API layer wants an instance's SSH to look like right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Instance id (`i-…`).
    pub instance_id: String,
    /// System disk id (booted from if the instance is not running yet).
    pub disk_id: String,
    /// Addresses whose port 22 reaches the instance: the private IP and, if any, the public IP.
    pub addresses: Vec<Ipv4Addr>,
    /// OpenSSH public key lines accepted for root (from the instance's key pair); may be empty.
    pub authorized_keys: String,
    /// SHA-512 crypt hash of the `Password` the instance was created with: it becomes root's
    /// password in `/etc/shadow` and this instance's sshd (only this one's) accepts passwords.
    pub root_password_hash: Option<String>,
}

/// An extra disk of an instance: ECS device `/dev/<device>` appears bind-mounted at
/// `/mnt/<device>` inside the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDisk {
    pub disk_id: String,
    /// `vdb`, `vdc`, …
    pub device: String,
}

/// How to boot an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceBoot {
    pub instance_id: String,
    pub system_disk_id: String,
    /// Host name inside the instance.
    pub hostname: String,
    /// Attached at boot (changes apply at the next boot).
    pub data_disks: Vec<DataDisk>,
}

/// Something an instance did by itself (from inside), for the simulator's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEvent {
    pub instance_id: String,
    pub kind: GuestEventKind,
    /// When the simulator learned of it (ms since the Unix epoch).
    pub at_ms: u64,
}

/// What an instance did by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEventKind {
    /// `reboot` (or `reboot(2)`) inside: its processes ended and it booted again.
    Rebooted,
    /// `poweroff`/`halt` inside: it is off until started again.
    PoweredOff,
}

/// A command to run inside an instance as its root ([`Machines::exec_in_instance`]).
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up on the instance's PATH. Visible to local
    /// users in the host's process list: pass secrets through `stdin` or `env`.
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
    /// The whole environment besides defaults for PATH, HOME, USER, LOGNAME and SHELL.
    pub env: Vec<(String, String)>,
    /// Killed after this long (its own children inside the instance may go on).
    pub timeout: Duration,
}

/// What a command inside an instance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal when killed); `None` when it timed out.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// Handle on the simulator's machines. Cheap to clone; safe to share between tasks. When the last
/// clone is dropped, every instance it started is stopped.
#[derive(Debug, Clone)]
pub struct Machines {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Canonical (absolute) data dir.
    data_dir: PathBuf,
    /// The bakerd executable, re-run as launcher and enter helper.
    exe: PathBuf,
    /// First host uid/gid of the instances' id range.
    uid_base: u32,
    /// Running instances by id. One lock for all: starts are short and rare.
    instances: Mutex<HashMap<String, Slot>>,
}

/// One running instance with its SSH state.
#[derive(Debug)]
struct Slot {
    running: RunningInstance,
    listeners: Option<listener::Listeners>,
    /// The authorized keys and root password hash last installed into it (files on its disk
    /// survive reboots).
    installed_keys: Option<(String, Option<String>)>,
}

impl Slot {
    fn shut(self) {
        if let Some(listeners) = self.listeners {
            listeners.close();
        }
        self.running.stop();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_every(&self.instances);
    }
}

fn stop_every(instances: &Mutex<HashMap<String, Slot>>) {
    let drained: Vec<_> = lock(instances).drain().collect();
    for (_, slot) in drained {
        slot.shut();
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

/// Runs `bakerd`'s hidden instance subcommands (`__sim-instance`, `__sim-enter`, `__sim-probe`) when the
/// process was started as one; `None` otherwise. Call first thing in `main`: these processes
/// must stay single-threaded.
pub fn hidden_entry() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__sim-instance") => Some(launcher::main(args.get(2).map_or("", String::as_str))),
        Some("__sim-enter") => Some(enter::main(&args[2..])),
        Some("__sim-probe") => Some(preflight::probe()),
        _ => None,
    }
}

impl Machines {
    /// Prepares the directories under `data_dir` (created if missing) and removes half-built
    /// trees; instances are launched by re-running the current executable.
    pub fn new(data_dir: &Path) -> Result<Self, MachineError> {
        let exe = std::env::current_exe().map_err(|source| MachineError::Io {
            what: "find own executable",
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        Self::with_executable(data_dir, &exe)
    }

    /// Like [`Machines::new`] with the `bakerd` executable to launch instances with (tests that
    /// use `Machines` in-process pass `env!("CARGO_BIN_EXE_bakerd")`).
    pub fn with_executable(data_dir: &Path, exe: &Path) -> Result<Self, MachineError> {
        rootfs::ensure_dir(data_dir, 0o700)?;
        let data_dir = data_dir.canonicalize().map_err(|source| MachineError::Io {
            what: "resolve data dir",
            path: data_dir.to_path_buf(),
            source,
        })?;
        for kind in KINDS {
            rootfs::ensure_dir(&data_dir.join(kind), 0o700)?;
            rootfs::remove_stale_temps(&data_dir.join(kind))?;
        }
        rootfs::ensure_dir(&data_dir.join("sshd"), 0o700)?;
        let uid_base = preflight::uid_base(&data_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                data_dir,
                exe: exe.to_path_buf(),
                uid_base,
                instances: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn dir(&self, kind: &'static str, id: &str) -> Result<PathBuf, MachineError> {
        check_id(kind, id)?;
        Ok(self.inner.data_dir.join(format!("{kind}s")).join(id))
    }

    fn instance_files(&self, instance_id: &str) -> Result<hostkey::InstanceFiles, MachineError> {
        check_id("instance", instance_id)?;
        Ok(hostkey::InstanceFiles::new(
            self.inner.data_dir.join("sshd").join(instance_id),
        ))
    }

    /// First host uid (and gid) of the instances' id range: instance root is this uid.
    pub fn uid_base(&self) -> u32 {
        self.inner.uid_base
    }

    /// Makes sure the built-in base image `image_id` has a root filesystem: a busybox-static tree
    /// with OpenSSH and `/etc/os-release` carrying `os_release`. Idempotent: an existing image is
    /// kept as is.
    pub fn ensure_base_image(&self, image_id: &str, os_release: &str) -> Result<(), MachineError> {
        let dest = self.dir("image", image_id)?;
        rootfs::build_atomically(&dest, |temp| {
            rootfs::build_base_rootfs(&temp.join("rootfs"), os_release)
        })
    }

    /// Copies the tree of one resource into a new one, shifting owners as `shift` says.
    ///
    /// Guarantees: the destination appears complete or not at all; an existing destination is
    /// kept (ids are never reused, so it is the result of an earlier identical call).
    fn copy_resource(
        &self,
        (from_kind, from_id): (&'static str, &str),
        (to_kind, to_id): (&'static str, &str),
        shift: Shift,
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
            rootfs::copy_tree(&source, &temp.join("rootfs"), shift)
        })
    }

    /// Creates disk `disk_id` as a copy of image `image_id`'s root filesystem, owned by the
    /// instances' id range.
    pub fn create_disk_from_image(
        &self,
        disk_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        let shift = Shift::Into(self.inner.uid_base);
        self.copy_resource(("image", image_id), ("disk", disk_id), shift)
    }

    /// Creates data disk `disk_id` as a copy of snapshot `snapshot_id`'s filesystem.
    pub fn create_disk_from_snapshot(
        &self,
        disk_id: &str,
        snapshot_id: &str,
    ) -> Result<(), MachineError> {
        let shift = Shift::Into(self.inner.uid_base);
        self.copy_resource(("snapshot", snapshot_id), ("disk", disk_id), shift)
    }

    /// Creates data disk `disk_id` with an empty filesystem (a new, unformatted ECS data disk),
    /// owned by the instances' root.
    pub fn create_empty_disk(&self, disk_id: &str) -> Result<(), MachineError> {
        let dest = self.dir("disk", disk_id)?;
        let base = self.inner.uid_base;
        rootfs::build_atomically(&dest, |temp| {
            let rootfs = temp.join("rootfs");
            rootfs::ensure_dir(&rootfs, 0o755)?;
            std::os::unix::fs::chown(&rootfs, Some(base), Some(base)).map_err(|source| {
                MachineError::Io {
                    what: "hand the new data disk to the instances' root",
                    path: rootfs.clone(),
                    source,
                }
            })
        })
    }

    /// Copies disk `disk_id`'s filesystem as it is now into snapshot `snapshot_id`.
    pub fn snapshot_disk(&self, disk_id: &str, snapshot_id: &str) -> Result<(), MachineError> {
        let shift = Shift::OutOf(self.inner.uid_base);
        self.copy_resource(("disk", disk_id), ("snapshot", snapshot_id), shift)
    }

    /// Makes image `image_id`'s root filesystem from snapshot `snapshot_id`.
    pub fn image_from_snapshot(
        &self,
        snapshot_id: &str,
        image_id: &str,
    ) -> Result<(), MachineError> {
        self.copy_resource(("snapshot", snapshot_id), ("image", image_id), Shift::Keep)
    }

    /// Copies image `from` (e.g. for CopyImage) into image `to`.
    pub fn copy_image(&self, from: &str, to: &str) -> Result<(), MachineError> {
        self.copy_resource(("image", from), ("image", to), Shift::Keep)
    }

    /// Removes a disk's filesystem. Missing is fine. An instance using it is stopped first, so
    /// nothing writes into it while it goes.
    pub fn delete_disk(&self, disk_id: &str) -> Result<(), MachineError> {
        let dir = self.dir("disk", disk_id)?;
        let rootfs = dir.join("rootfs");
        let users: Vec<Slot> = {
            let mut instances = lock(&self.inner.instances);
            let ids: Vec<String> = instances
                .iter()
                .filter(|(_, slot)| {
                    let spec = &slot.running.spec;
                    spec.rootfs == rootfs || spec.data_disks.iter().any(|(d, _)| *d == rootfs)
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| instances.remove(id)).collect()
        };
        users.into_iter().for_each(Slot::shut);
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

    /// Boots the instance unless it runs (or is rebooting). Idempotent. An instance that powered
    /// itself off stays off until [`Machines::take_guest_events`] collected it.
    ///
    /// Caveats: blocks until the instance is up (up to ~10 s).
    pub fn ensure_running(&self, boot: &InstanceBoot) -> Result<(), MachineError> {
        let files = self.instance_files(&boot.instance_id)?;
        let spec = self.launch_spec(boot)?;
        let mut instances = lock(&self.inner.instances);
        if let Some(slot) = instances.get(&boot.instance_id) {
            match slot.running.shared.ended() {
                None | Some(Ended::PoweredOff) => return Ok(()),
                Some(_) => {
                    if let Some(dead) = instances.remove(&boot.instance_id) {
                        dead.shut();
                    }
                }
            }
        }
        rootfs::ensure_dir(&files.dir, 0o700)?;
        let running =
            RunningInstance::start(&self.inner.exe, spec, &files.log).map_err(|message| {
                MachineError::Boot {
                    instance: boot.instance_id.clone(),
                    message,
                }
            })?;
        instances.insert(
            boot.instance_id.clone(),
            Slot {
                running,
                listeners: None,
                installed_keys: None,
            },
        );
        Ok(())
    }

    fn launch_spec(&self, boot: &InstanceBoot) -> Result<LaunchSpec, MachineError> {
        let rootfs = self.existing_disk(&boot.system_disk_id)?;
        let mut data_disks = Vec::new();
        for disk in &boot.data_disks {
            check_id("device", &disk.device)?;
            data_disks.push((
                self.existing_disk(&disk.disk_id)?,
                format!("mnt/{}", disk.device),
            ));
        }
        Ok(LaunchSpec {
            instance_id: boot.instance_id.clone(),
            rootfs,
            hostname: boot.hostname.clone(),
            uid_base: self.inner.uid_base,
            data_disks,
        })
    }

    fn existing_disk(&self, disk_id: &str) -> Result<PathBuf, MachineError> {
        let rootfs = self.dir("disk", disk_id)?.join("rootfs");
        if !rootfs.is_dir() {
            return Err(MachineError::NotFound {
                kind: "disk",
                id: disk_id.to_string(),
                path: rootfs,
            });
        }
        Ok(rootfs)
    }

    /// Ends the instance (every process of it) and closes its port 22. Idempotent.
    pub fn stop_instance(&self, instance_id: &str) -> Result<(), MachineError> {
        check_id("instance", instance_id)?;
        let slot = lock(&self.inner.instances).remove(instance_id);
        if let Some(slot) = slot {
            slot.shut();
        }
        Ok(())
    }

    /// What instances did by themselves since the last call, oldest first: reboots, and
    /// power-offs (those instances are stopped and forgotten here, so the API layer can record
    /// them as Stopped).
    pub fn take_guest_events(&self) -> Vec<GuestEvent> {
        let event = |id: &str, kind, at_ms| GuestEvent {
            instance_id: id.to_string(),
            kind,
            at_ms,
        };
        let mut events = Vec::new();
        let off: Vec<Slot> = {
            let mut instances = lock(&self.inner.instances);
            let mut off = Vec::new();
            for (id, slot) in instances.iter() {
                let shared = &slot.running.shared;
                let reboots = shared.take_reboots().into_iter();
                events.extend(reboots.map(|at| event(id, GuestEventKind::Rebooted, at)));
                if shared.ended() == Some(Ended::PoweredOff) {
                    let at = shared.ended_ms().unwrap_or_default();
                    events.push(event(id, GuestEventKind::PoweredOff, at));
                    off.push(id.clone());
                }
            }
            off.iter().filter_map(|id| instances.remove(id)).collect()
        };
        off.into_iter().for_each(Slot::shut);
        events.sort_by_key(|e| e.at_ms);
        events
    }

    /// Makes the instance reachable as `target` says: boots it if needed (host name = instance
    /// id, no data disks: use [`Machines::ensure_running`] first for more), installs its host key,
    /// sshd_config and root's authorized keys, and opens port 22 on exactly `addresses`.
    /// Idempotent: nothing changes for an identical target. An empty `addresses` closes the port.
    ///
    /// Guarantees: on `Ok`, every address accepts connections served by the instance's sshd.
    /// The host key is generated on the first call for an instance and kept for good.
    pub fn ensure_sshd(&self, target: &SshTarget) -> Result<(), MachineError> {
        if target.addresses.is_empty() {
            return self.stop_sshd(&target.instance_id);
        }
        let files = self.instance_files(&target.instance_id)?;
        self.ensure_running(&InstanceBoot {
            instance_id: target.instance_id.clone(),
            system_disk_id: target.disk_id.clone(),
            hostname: target.instance_id.clone(),
            data_disks: Vec::new(),
        })?;
        hostkey::ensure_host_key(&files, &target.instance_id)?;
        let mut instances = lock(&self.inner.instances);
        let not_running = || MachineError::NotRunning {
            instance: target.instance_id.clone(),
        };
        let slot = instances
            .get_mut(&target.instance_id)
            .ok_or_else(not_running)?;
        let logins = (
            target.authorized_keys.clone(),
            target.root_password_hash.clone(),
        );
        if slot.installed_keys.as_ref() != Some(&logins) {
            let init = slot.running.shared.init_pid().ok_or_else(not_running)?;
            let (private, public) = files.host_key_pair()?;
            let wanted = openssh::files_for_ssh(
                (&private, &public),
                &target.authorized_keys,
                target.root_password_hash.as_deref(),
            );
            exec::install(&self.inner.exe, init, &wanted).map_err(|detail| {
                MachineError::Install {
                    instance: target.instance_id.clone(),
                    detail,
                }
            })?;
            slot.installed_keys = Some(logins);
        }
        let open = slot.listeners.as_ref().map(|l| l.addresses.clone());
        if open.as_deref() != Some(target.addresses.as_slice()) {
            if let Some(old) = slot.listeners.take() {
                old.close();
            }
            let opened = listener::open(
                &target.addresses,
                slot.running.shared.clone(),
                &self.inner.exe,
                &files.log,
            )
            .map_err(|error| MachineError::Sshd {
                instance: target.instance_id.clone(),
                message: format!(
                    "port 22 on {:?}: {error}; stop whatever uses it or choose another address",
                    target.addresses
                ),
            })?;
            slot.listeners = Some(opened);
        }
        Ok(())
    }
}

impl Machines {
    /// Closes the instance's port 22 (the instance keeps running). Idempotent.
    pub fn stop_sshd(&self, instance_id: &str) -> Result<(), MachineError> {
        check_id("instance", instance_id)?;
        let listeners = lock(&self.inner.instances)
            .get_mut(instance_id)
            .and_then(|slot| slot.listeners.take());
        if let Some(listeners) = listeners {
            listeners.close();
        }
        Ok(())
    }

    /// Stops every instance this simulator started (shutdown path).
    pub fn stop_all(&self) {
        stop_every(&self.inner.instances);
    }

    /// Stops the instance and removes the simulator's files about it (host key included), for
    /// DeleteInstance. A later instance never reuses the id, so nothing needs the key again.
    pub fn forget_instance(&self, instance_id: &str) -> Result<(), MachineError> {
        self.stop_instance(instance_id)?;
        rootfs::remove_tree(&self.instance_files(instance_id)?.dir)
    }

    /// The instance's SSH host public key (`ssh-ed25519 AAAA… comment`), stable for the life of
    /// the instance; `None` before its SSH first opened.
    pub fn host_public_key(&self, instance_id: &str) -> Result<Option<String>, MachineError> {
        self.instance_files(instance_id)?.host_public_key()
    }

    /// Host pid of the instance's init while it is up (for tests and diagnostics).
    pub fn instance_pid(&self, instance_id: &str) -> Option<u32> {
        let instances = lock(&self.inner.instances);
        let pid = instances.get(instance_id)?.running.shared.init_pid()?;
        u32::try_from(pid).ok()
    }

    /// How many times the instance booted since it was started (reboots from inside count).
    pub fn boot_count(&self, instance_id: &str) -> u64 {
        lock(&self.inner.instances)
            .get(instance_id)
            .map_or(0, |slot| slot.running.shared.boots())
    }

    /// Whether the instance runs (or is between two boots of a reboot).
    pub fn is_running(&self, instance_id: &str) -> bool {
        lock(&self.inner.instances)
            .get(instance_id)
            .is_some_and(|slot| slot.running.is_alive())
    }

    /// Whether the instance's port 22 is open.
    pub fn ssh_open(&self, instance_id: &str) -> bool {
        lock(&self.inner.instances)
            .get(instance_id)
            .is_some_and(|slot| slot.listeners.is_some() && slot.running.is_alive())
    }

    /// Runs `request` inside the instance as its root, in all of its namespaces (no SSH), and
    /// returns its exit code and output. The instance must be up.
    ///
    /// Guarantees: the command sees only the instance (its files, processes and network); on a
    /// timeout it is killed and `timed_out` is set.
    pub fn exec_in_instance(
        &self,
        instance_id: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, MachineError> {
        let init = self.init_of(instance_id)?;
        exec::run(&self.inner.exe, init, request).map_err(|source| MachineError::Exec {
            instance: instance_id.to_string(),
            source,
        })
    }

    fn init_of(&self, instance_id: &str) -> Result<sys::Pid, MachineError> {
        check_id("instance", instance_id)?;
        let instances = lock(&self.inner.instances);
        instances
            .get(instance_id)
            .and_then(|slot| slot.running.shared.init_pid())
            .ok_or_else(|| MachineError::NotRunning {
                instance: instance_id.to_string(),
            })
    }

    /// The root filesystem directory of disk `disk_id` (may not exist).
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
