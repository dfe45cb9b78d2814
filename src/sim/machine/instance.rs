//! The simulator's side of one running instance: it spawns the launcher (`bakerd __sim-instance`),
//! follows its reports (boots, reboots, power-off) on a reader thread, and stops it.
//!
//! Guarantees: after [`RunningInstance::stop`] returns, no process of the instance runs (the
//! launcher kills the instance's init, which takes the whole PID namespace with it, and is
//! reaped). The launcher dies with the simulator (`PR_SET_PDEATHSIG`), and so, in a chain, does
//! every process of the instance.

use super::launcher::{LaunchSpec, EXIT_POWEROFF};
use super::spawn::spawn_on_keeper_thread;
use super::sys::{self, Pid};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an instance may take from launch to a ready init.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped launcher may take to end its instance before it is killed outright.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How an instance's launcher ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The instance powered itself off (`poweroff`, `halt`).
    PoweredOff,
    /// Stopped by the simulator.
    Stopped,
    /// The launcher failed; the reason is in the instance log.
    Failed(String),
}

/// What the reader thread learned from the launcher.
#[derive(Debug, Default)]
pub(crate) struct Power {
    /// Host pid of the instance's init while it is up.
    pub init: Option<Pid>,
    /// Completed boots (1 after the first start, +1 per reboot).
    pub boots: u64,
    /// When (ms since the epoch) the instance rebooted itself, not yet collected by
    /// [`Shared::take_reboots`].
    pub reboots: Vec<u64>,
    pub ended: Option<Ended>,
    /// When the launcher ended (ms since the epoch), for the simulator's timeline.
    pub ended_ms: Option<u64>,
}

/// Shared between the simulator's handle, the reader thread and the SSH listeners.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    power: Mutex<Power>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut Power)) {
        change(&mut super::lock(&self.power));
        self.changed.notify_all();
    }

    /// Host pid of the instance's init, if it is up right now.
    pub(crate) fn init_pid(&self) -> Option<Pid> {
        super::lock(&self.power).init
    }

    pub(crate) fn boots(&self) -> u64 {
        super::lock(&self.power).boots
    }

    pub(crate) fn ended(&self) -> Option<Ended> {
        super::lock(&self.power).ended.clone()
    }

    /// The moments the instance rebooted itself since the last call.
    pub(crate) fn take_reboots(&self) -> Vec<u64> {
        std::mem::take(&mut super::lock(&self.power).reboots)
    }

    /// When the launcher ended, if it did.
    pub(crate) fn ended_ms(&self) -> Option<u64> {
        super::lock(&self.power).ended_ms
    }
}

/// Milliseconds since the Unix epoch (the simulator's timeline clock).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A launched instance.
#[derive(Debug)]
pub(crate) struct RunningInstance {
    pub spec: LaunchSpec,
    pub shared: Arc<Shared>,
    launcher: Arc<Mutex<Option<Child>>>,
    log: PathBuf,
}

impl RunningInstance {
    /// Launches the instance and waits until its init is up.
    pub(crate) fn start(exe: &Path, spec: LaunchSpec, log: &Path) -> Result<Self, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|error| format!("opening {}: {error}", log.display()))?;
        let json = serde_json::to_string(&spec).map_err(|error| error.to_string())?;
        let mut command = Command::new(exe);
        command
            .arg("__sim-instance")
            .arg(json)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = spawn_on_keeper_thread(command)
            .map_err(|error| format!("starting {}: {error}", exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let instance = Self {
            spec,
            shared: Arc::new(Shared::default()),
            launcher: Arc::new(Mutex::new(Some(child))),
            log: log.to_path_buf(),
        };
        instance.follow(stdout);
        instance.wait_up()?;
        Ok(instance)
    }

    /// Reads the launcher's reports until it exits, then reaps it (unless `stop` did).
    fn follow(&self, stdout: std::process::ChildStdout) {
        let shared = self.shared.clone();
        let launcher = self.launcher.clone();
        let id = self.spec.instance_id.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(pid) = line.strip_prefix("up ").and_then(|p| p.parse().ok()) {
                    shared.update(|p| {
                        p.init = Some(pid);
                        p.boots += 1;
                    });
                } else if line == "rebooted" {
                    tracing::info!(instance = %id, "instance rebooted itself");
                    shared.update(|p| {
                        p.init = None;
                        p.reboots.push(now_ms());
                    });
                }
            }
            let status = super::lock(&launcher).take().map(|mut child| child.wait());
            let ended = match status {
                None => Ended::Stopped,
                Some(Ok(status)) if status.code() == Some(EXIT_POWEROFF) => {
                    tracing::info!(instance = %id, "instance powered itself off");
                    Ended::PoweredOff
                }
                Some(Ok(status)) if status.success() => Ended::Stopped,
                Some(Ok(status)) => Ended::Failed(format!("launcher exited with {status}")),
                Some(Err(error)) => Ended::Failed(error.to_string()),
            };
            shared.update(|p| {
                p.init = None;
                p.ended.get_or_insert(ended);
                p.ended_ms.get_or_insert_with(now_ms);
            });
        });
    }

    fn wait_up(&self) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut power = super::lock(&self.shared.power);
        loop {
            if power.init.is_some() {
                return Ok(());
            }
            if let Some(ended) = &power.ended {
                return Err(format!(
                    "it ended before it was up ({ended:?}); {}",
                    self.log_tail()
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(power);
                self.stop();
                return Err(format!(
                    "not up after {BOOT_TIMEOUT:?}; {}",
                    self.log_tail()
                ));
            }
            power = self
                .shared
                .changed
                .wait_timeout(power, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The last lines of the instance's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(10)..].join("\n")
        )
    }

    /// Whether the instance's launcher still runs (it may be between two boots).
    pub(crate) fn is_alive(&self) -> bool {
        self.shared.ended().is_none()
    }

    /// Ends the instance: SIGTERM to the launcher (it kills the init, so every process of the
    /// instance, and reaps it), SIGKILL to both if that takes too long. Idempotent.
    pub(crate) fn stop(&self) {
        let Some(mut child) = super::lock(&self.launcher).take() else {
            return;
        };
        sys::kill(child.id() as Pid, libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return self.mark_stopped();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(init) = self.shared.init_pid() {
            sys::kill(init, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        self.mark_stopped();
    }

    fn mark_stopped(&self) {
        self.shared.update(|p| {
            p.init = None;
            p.ended.get_or_insert(Ended::Stopped);
            p.ended_ms.get_or_insert_with(now_ms);
        });
    }
}
