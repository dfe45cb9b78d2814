//! One OpenSSH `sshd` per reachable instance: its files (config, host key, authorized keys, pid
//! file, log), starting it as a child that dies with the simulator, waiting until it listens, and
//! stopping it together with every session it spawned.

use super::procs::{self, Pid};
use super::rootfs::ensure_dir;
use super::MachineError;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The sshd binary of Debian's `openssh-server`.
const SSHD: &str = "/usr/sbin/sshd";
/// sshd refuses to start without its privilege-separation directory.
const PRIVSEP_DIR: &str = "/run/sshd";
/// How long a freshly started sshd may take to listen on all its addresses.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many log lines an error about a failed sshd carries.
const LOG_TAIL_LINES: usize = 15;

/// The files of one instance's sshd under `<data>/sshd/<instance-id>/` (mode 0700, outside the
/// chroot so that nothing inside the instance can read the host key or change the accepted keys).
#[derive(Debug, Clone)]
pub(crate) struct SshdFiles {
    /// The instance's sshd directory.
    pub dir: PathBuf,
    /// Generated `sshd_config`, rewritten before every start.
    pub config: PathBuf,
    /// Private ed25519 host key, generated once and kept across restarts so pinned keys hold.
    pub host_key: PathBuf,
    /// Keys accepted for root (0600), read by sshd on every login.
    pub authorized_keys: PathBuf,
    /// Written by sshd; read by a later simulator run to kill an sshd left behind.
    pub pid_file: PathBuf,
    /// sshd's own log (`-E`), whose tail goes into start-up errors.
    pub log: PathBuf,
}

impl SshdFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            config: dir.join("sshd_config"),
            host_key: dir.join("ssh_host_ed25519_key"),
            authorized_keys: dir.join("authorized_keys"),
            pid_file: dir.join("sshd.pid"),
            log: dir.join("sshd.log"),
            dir,
        }
    }

    /// The public half of the host key, as an OpenSSH public key line; `None` before the first
    /// start of the instance.
    pub(crate) fn host_public_key(&self) -> Result<Option<String>, MachineError> {
        let public = self.host_key.with_extension("pub");
        match fs::read_to_string(&public) {
            Ok(line) => Ok(Some(line.trim().to_string())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MachineError::Io {
                what: "read host public key",
                path: public,
                source,
            }),
        }
    }
}

/// A running sshd this simulator started.
#[derive(Debug)]
pub(crate) struct RunningSshd {
    /// The listener process; kept so it can be killed and reaped.
    pub child: Child,
    /// The config it was started with; an identical wish keeps it running.
    pub config: String,
    /// Its chroot, whose leftover session processes die with it.
    pub rootfs: PathBuf,
    /// Its pid file, removed once it is stopped.
    pub pid_file: PathBuf,
}

impl RunningSshd {
    /// Whether the listener still runs (reaps it if it exited on its own).
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Generates the instance's host key unless it exists.
///
/// Guarantees: the key appears complete or not at all (generated under a temporary name, the
/// private key renamed last); it is never regenerated, so a host key pinned by a client stays
/// valid across stop/start of the same instance.
pub(crate) fn ensure_host_key(files: &SshdFiles, instance: &str) -> Result<(), MachineError> {
    ensure_dir(&files.dir, 0o700)?;
    if files.host_key.exists() {
        return Ok(());
    }
    let temp = files
        .dir
        .join(format!(".keygen-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("bakerd-sim-{instance}"))
        .arg("-f")
        .arg(&temp)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| MachineError::HostKey {
            instance: instance.to_string(),
            detail: format!("cannot run ssh-keygen (install openssh-client): {source}"),
        })?;
    if !output.status.success() {
        return Err(MachineError::HostKey {
            instance: instance.to_string(),
            detail: format!(
                "ssh-keygen {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let rename = |from: PathBuf, to: &Path| {
        fs::rename(&from, to).map_err(|source| MachineError::Io {
            what: "install host key",
            path: from,
            source,
        })
    };
    rename(
        temp.with_extension("pub"),
        &files.host_key.with_extension("pub"),
    )?;
    rename(temp, &files.host_key)
}

/// Replaces the accepted keys atomically (0600, root-owned as StrictModes demands).
pub(crate) fn write_authorized_keys(files: &SshdFiles, keys: &str) -> Result<(), MachineError> {
    let temp = files.dir.join(format!(
        ".authorized_keys-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let io_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| MachineError::Io { what, path, source }
    };
    let mut contents = keys.trim().to_string();
    if !contents.is_empty() {
        contents.push('\n');
    }
    fs::write(&temp, contents).map_err(io_err("write authorized keys", &temp))?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &temp))?;
    fs::rename(&temp, &files.authorized_keys)
        .map_err(io_err("install authorized keys", &files.authorized_keys))
}

/// `%` starts a token in ChrootDirectory/AuthorizedKeysFile; double quotes allow spaces.
fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display().to_string().replace('%', "%%"))
}

/// The sshd_config for an instance: root by key only, chrooted into `rootfs`, on `addresses`:22.
pub(crate) fn render_config(files: &SshdFiles, rootfs: &Path, addresses: &[Ipv4Addr]) -> String {
    let mut config = String::from("# Generated by bakerd sim; rewritten on every start.\n");
    for address in addresses {
        config.push_str(&format!("ListenAddress {address}:22\n"));
    }
    config.push_str(&format!(
        "HostKey {}\nPidFile {}\nChrootDirectory {}\nAuthorizedKeysFile {}\n",
        quoted(&files.host_key),
        quoted(&files.pid_file),
        quoted(rootfs),
        quoted(&files.authorized_keys),
    ));
    config.push_str(concat!(
        "PermitRootLogin prohibit-password\n",
        "PubkeyAuthentication yes\n",
        "PasswordAuthentication no\n",
        "KbdInteractiveAuthentication no\n",
        "UsePAM no\n",
        "StrictModes yes\n",
        "UseDNS no\n",
        "PrintMotd no\n",
        "PrintLastLog no\n",
        "X11Forwarding no\n",
        "LogLevel VERBOSE\n",
        "Subsystem sftp internal-sftp\n",
    ));
    config
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` on one thread that lives as long as the process.
///
/// Why: `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process.
/// Spawning from a tokio blocking-pool thread (which exits after being idle) would kill a healthy
/// sshd seconds later; a never-ending spawner thread makes the signal mean "simulator died".
fn spawn_on_keeper_thread(command: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<Option<Mutex<mpsc::Sender<SpawnRequest>>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("bakerd-sshd-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(requests))
    });
    let unavailable = || io::Error::other("the sshd spawner thread is not running");
    let (reply, answer) = mpsc::channel();
    keeper
        .as_ref()
        .ok_or_else(unavailable)?
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| unavailable())?;
    answer.recv().map_err(|_| unavailable())?
}

/// `sshd -D -f <config> -E <log>`, set to receive SIGKILL when the simulator dies.
fn sshd_command(files: &SshdFiles) -> Result<Command, MachineError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .map_err(|source| MachineError::Io {
            what: "open sshd log",
            path: files.log.clone(),
            source,
        })?;
    let mut command = Command::new(SSHD);
    command
        .arg("-D")
        .arg("-f")
        .arg(&files.config)
        .arg("-E")
        .arg(&files.log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: getpid has no preconditions.
    let simulator = unsafe { libc::getpid() };
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The simulator may have died between fork and prctl; then nobody would kill us.
            if libc::getppid() != simulator {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(command)
}

/// Writes `config` and starts sshd with it, returning once it accepts TCP connections on every
/// address.
///
/// Assumptions: host key and authorized keys are in place; no sshd of this instance runs.
/// Caveats: blocks (up to [`READY_TIMEOUT`]); call it from a blocking context.
pub(crate) fn start(
    files: &SshdFiles,
    instance: &str,
    config: String,
    rootfs: &Path,
    addresses: &[Ipv4Addr],
) -> Result<RunningSshd, MachineError> {
    let sockets: Vec<SocketAddr> = addresses
        .iter()
        .map(|ip| SocketAddr::from((*ip, 22)))
        .collect();
    if let Some(taken) = sockets.iter().find(|socket| accepts(socket)) {
        return Err(MachineError::Sshd {
            instance: instance.to_string(),
            message: format!(
                "{taken} is already in use by another process; stop it or choose another address"
            ),
        });
    }
    ensure_dir(Path::new(PRIVSEP_DIR), 0o755)?;
    fs::write(&files.config, &config).map_err(|source| MachineError::Io {
        what: "write sshd config",
        path: files.config.clone(),
        source,
    })?;
    let child =
        spawn_on_keeper_thread(sshd_command(files)?).map_err(|source| MachineError::SpawnSshd {
            instance: instance.to_string(),
            source,
        })?;
    let mut running = RunningSshd {
        child,
        config,
        rootfs: rootfs.to_path_buf(),
        pid_file: files.pid_file.clone(),
    };
    if let Err(error) = wait_listening(&mut running, files, instance, sockets) {
        stop(running);
        return Err(error);
    }
    Ok(running)
}

fn accepts(socket: &SocketAddr) -> bool {
    TcpStream::connect_timeout(socket, Duration::from_millis(200)).is_ok()
}

fn wait_listening(
    running: &mut RunningSshd,
    files: &SshdFiles,
    instance: &str,
    mut pending: Vec<SocketAddr>,
) -> Result<(), MachineError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let failure = |what: String| MachineError::Sshd {
            instance: instance.to_string(),
            message: format!(
                "{what}; last lines of {}:\n{}",
                files.log.display(),
                log_tail(&files.log)
            ),
        };
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(failure(format!("sshd exited ({status}) before listening")));
        }
        pending.retain(|socket| !accepts(socket));
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failure(format!(
                "sshd not listening on {pending:?} after {READY_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Kills the sshd, every process it spawned and every process still chrooted in its disk, and
/// reaps it.
pub(crate) fn stop(mut running: RunningSshd) {
    procs::kill_tree(running.child.id() as Pid);
    let _ = running.child.wait();
    procs::kill_rooted_under(&running.rootfs);
    let _ = fs::remove_file(&running.pid_file);
}

/// Kills an sshd left running by an earlier simulator on the same data dir, found through its
/// pid file. The pid counts only if that process runs with this very config file, so a recycled
/// pid is left alone.
pub(crate) fn kill_stale(files: &SshdFiles) {
    let Some(pid) = fs::read_to_string(&files.pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<Pid>().ok())
    else {
        return;
    };
    if procs::cmdline_contains(pid, &files.config.display().to_string()) {
        tracing::info!(pid, config = %files.config.display(), "killing sshd left by an earlier simulator run");
        procs::kill_tree(pid);
        let deadline = Instant::now() + Duration::from_secs(2);
        while procs::is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = fs::remove_file(&files.pid_file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_each_address_and_quotes_paths_with_percent_escaped() {
        let files = SshdFiles::new(PathBuf::from("/data/sshd/i-1"));
        let addresses = [Ipv4Addr::new(127, 77, 0, 1), Ipv4Addr::new(127, 78, 0, 2)];
        let config = render_config(&files, Path::new("/data/disks/d 50%/rootfs"), &addresses);
        assert!(config.contains("ListenAddress 127.77.0.1:22\nListenAddress 127.78.0.2:22\n"));
        assert!(config.contains("ChrootDirectory \"/data/disks/d 50%%/rootfs\"\n"));
        assert!(config.contains("AuthorizedKeysFile \"/data/sshd/i-1/authorized_keys\"\n"));
        assert!(config.contains("PasswordAuthentication no\n"));
    }
}
