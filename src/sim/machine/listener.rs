//! An instance's port 22: the simulator binds `IP:22` on the host for each of the instance's
//! addresses and hands every accepted connection to `sshd -i` started inside the instance (via
//! the enter helper), so the SSH server, its sessions and everything they run live in the
//! instance's namespaces as the instance's root.
//!
//! Caveats: a connection accepted while the instance reboots is closed at once (as a VM's port
//! is closed while it boots); clients retry.

use super::instance::Shared;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The instance's own sshd, its config written by the simulator into the instance.
const SSHD_ARGV: [&str; 5] = ["/usr/sbin/sshd", "-i", "-e", "-f", "/etc/ssh/sshd_config"];

/// Open listeners of one instance.
#[derive(Debug)]
pub(crate) struct Listeners {
    pub addresses: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
    sockets: Vec<(TcpListener, JoinHandle<()>)>,
}

/// What an accepted connection needs to start a session.
#[derive(Debug, Clone)]
struct Handoff {
    exe: PathBuf,
    log: PathBuf,
    instance: Arc<Shared>,
}

/// Binds port 22 on every address and starts accepting. Fails (binding nothing) if any address
/// is taken.
pub(crate) fn open(
    addresses: &[Ipv4Addr],
    instance: Arc<Shared>,
    exe: &Path,
    log: &Path,
) -> io::Result<Listeners> {
    let bound: Vec<TcpListener> = addresses
        .iter()
        .map(|ip| TcpListener::bind((*ip, 22)))
        .collect::<io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handoff = Handoff {
        exe: exe.to_path_buf(),
        log: log.to_path_buf(),
        instance,
    };
    let mut sockets = Vec::new();
    for listener in bound {
        let accepting = listener.try_clone()?;
        let (stop, handoff) = (stop.clone(), handoff.clone());
        let thread = std::thread::Builder::new()
            .name("bakerd-ssh-listener".into())
            .spawn(move || accept_loop(accepting, &stop, &handoff))?;
        sockets.push((listener, thread));
    }
    Ok(Listeners {
        addresses: addresses.to_vec(),
        stop,
        sockets,
    })
}

fn accept_loop(listener: TcpListener, stop: &AtomicBool, handoff: &Handoff) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if let Err(error) = hand_to_sshd(stream, handoff) {
            tracing::warn!(error = %error, "could not start sshd for an SSH connection");
        }
    }
}

/// Starts `sshd -i` in the instance on `stream`; a thread reaps it when the session ends.
fn hand_to_sshd(stream: TcpStream, handoff: &Handoff) -> io::Result<()> {
    let Some(init) = handoff.instance.init_pid() else {
        return Ok(()); // between two boots: the connection is closed, as by a booting VM
    };
    let log = File::options()
        .create(true)
        .append(true)
        .open(&handoff.log)?;
    let mut child = Command::new(&handoff.exe)
        .arg("__sim-enter")
        .arg(init.to_string())
        .args(["exec", "--"])
        .args(SSHD_ARGV)
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(stream.try_clone()?)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(stream)))
        .stderr(log)
        .spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

impl Listeners {
    /// Stops accepting and frees the ports. Sessions already running go on until the instance
    /// stops.
    pub(crate) fn close(self) {
        self.stop.store(true, Ordering::SeqCst);
        for (listener, _) in &self.sockets {
            // SAFETY: shutdown on a listening socket we own wakes its blocked accept().
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for (listener, thread) in self.sockets {
            let _ = thread.join();
            drop(listener);
        }
    }
}
