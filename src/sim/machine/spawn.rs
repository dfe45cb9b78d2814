//! Spawning the instance launchers from one long-lived thread.

use std::io;
use std::process::{Child, Command};
use std::sync::{mpsc, Mutex, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` on one thread that lives as long as the process, with `PR_SET_PDEATHSIG`
/// set to SIGKILL in the child.
///
/// Why: the parent-death signal fires when the *thread* that forked the child exits, not the
/// process. Spawning from a tokio blocking-pool thread (which exits after being idle) would kill
/// a healthy instance seconds later; a never-ending spawner thread makes the signal mean "the
/// simulator died".
pub(crate) fn spawn_on_keeper_thread(mut command: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<Option<Mutex<mpsc::Sender<SpawnRequest>>>> = OnceLock::new();
    let simulator = super::sys::getpid();
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            super::sys::die_with_parent(simulator)
        });
    }
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("bakerd-instance-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(requests))
    });
    let unavailable = || io::Error::other("the instance spawner thread is not running");
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
