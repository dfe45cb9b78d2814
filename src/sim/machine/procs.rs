//! Process-tree work on Linux `/proc`: finding an sshd's descendants (its per-connection monitors
//! and the chrooted session shells) and every process whose root directory is an instance's disk,
//! so that stopping an instance leaves nothing of it running.
//!
//! Caveats: `/proc` is a moving target — processes appear and vanish while it is read. Every
//! function here treats a vanished process as "already gone" and never fails on it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Process id as the kernel hands it out.
pub(crate) type Pid = libc::pid_t;

/// Every live process id with its parent's id, read from `/proc/<pid>/stat`.
fn parent_map() -> HashMap<Pid, Pid> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<Pid>().ok())
        else {
            continue;
        };
        if let Some(ppid) = read_ppid(pid) {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The parent pid of `pid`, or `None` if it vanished. The command name in `stat` may contain
/// spaces and parentheses, so the fields are read after its last `)`.
fn read_ppid(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `ancestor` (children, grandchildren, …), not `ancestor` itself.
pub(crate) fn descendants(ancestor: Pid) -> Vec<Pid> {
    let parents = parent_map();
    let mut found = vec![ancestor];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| **ppid == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    found.remove(0);
    found
}

/// Processes whose root directory (`/proc/<pid>/root`) is `dir` or lies below it: the shells and
/// commands of SSH sessions chrooted into a disk, even after their sshd is gone.
pub(crate) fn rooted_under(dir: &Path) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<Pid>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/root"))
                .map(|root| root.starts_with(dir))
                .unwrap_or(false)
        })
        .collect()
}

/// Whether `pid` is alive and its command line contains `needle` (guards against killing a
/// recycled pid that now belongs to someone else).
pub(crate) fn cmdline_contains(pid: Pid, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .contains(needle)
        })
        .unwrap_or(false)
}

/// Whether `pid` still runs (exists and is not a zombie).
pub(crate) fn is_running(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn signal(pid: Pid, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a vanished pid just yields ESRCH.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Kills `root` and all its descendants with SIGKILL.
///
/// Guarantees: `root` is stopped (SIGSTOP) first so it cannot fork new children while its tree is
/// collected; descendants are stopped as they are found, then everything is killed. Does not reap
/// `root` — the caller that owns its `Child` must `wait()` on it.
pub(crate) fn kill_tree(root: Pid) {
    signal(root, libc::SIGSTOP);
    let mut tree = Vec::new();
    loop {
        let found: Vec<Pid> = descendants(root)
            .into_iter()
            .filter(|pid| !tree.contains(pid))
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in &found {
            signal(*pid, libc::SIGSTOP);
        }
        tree.extend(found);
    }
    for pid in tree.iter().chain(std::iter::once(&root)) {
        signal(*pid, libc::SIGKILL);
    }
}

/// Kills every process rooted under `dir` (see [`rooted_under`]) and waits briefly for them to
/// disappear, so a disk can be deleted or copied without a session still writing into it.
pub(crate) fn kill_rooted_under(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids: Vec<Pid> = rooted_under(dir)
            .into_iter()
            .filter(|pid| is_running(*pid))
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_of_a_shell_include_its_sleeping_grandchild() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & sleep 30; :"])
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as Pid;
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(pid).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let found = descendants(pid);
        assert_eq!(
            found.len(),
            2,
            "two sleeps under the shell, found {found:?}"
        );
        kill_tree(pid);
        child.wait().expect("reap sh");
        for sleeper in found {
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_running(sleeper) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(!is_running(sleeper), "sleep {sleeper} survived kill_tree");
        }
    }

    #[test]
    fn own_process_is_running_and_has_its_test_binary_in_its_command_line() {
        let me = std::process::id() as Pid;
        assert!(is_running(me));
        let exe = std::env::args().next().expect("argv[0]");
        assert!(cmdline_contains(me, &exe));
        assert!(!cmdline_contains(me, "no-such-needle-in-any-cmdline-\u{1}"));
    }
}
