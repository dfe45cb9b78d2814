//! The state directory under stress, with the real binary: a second writing bakerd is turned away
//! while a build holds the lock (readers use its snapshot, see tests/daily_use.rs) (and gets in once the holder is killed), and a truncated or corrupted
//! state directory gives a clear error (exit 3), never a panic.

mod common;
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::Workspace;

/// A build that sits in its first provisioner for a while (once per instance).
fn long_spec() -> String {
    harness::small_spec("long").replace(
        "        - mkdir -p /etc/crash\n",
        "        - mkdir -p /etc/crash\n        - if [ ! -f /etc/slept ]; then touch /etc/slept; sleep 20; fi\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_bakerd_on_a_locked_state_dir_exits_at_once_naming_the_holder() {
    let sim = common::SimProcess::start("lock");
    let ws = Workspace::new(&sim);
    let state = ws.state_dir();
    let spec = ws.spec_file(&long_spec());
    let mut holder = ws.apply(&state, &spec).spawn().expect("spawn apply");
    let pid = holder.id().expect("holder pid");
    // The holder writes its pid into the lock file right after taking the lock.
    let lock = state.join("lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&format!("{pid} "))) {
        assert!(Instant::now() < deadline, "the apply never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    let second = harness::run(ws.apply(&state, &spec)).await;
    let took = asked.elapsed();
    println!(
        "locking figures: second bakerd answered in {:.3} s",
        took.as_secs_f64()
    );
    assert_eq!(second.code(), Some(3), "apply on a locked dir: {second:?}");
    assert!(
        second.stderr.contains(&format!("locked by pid {pid}")),
        "the error should name the holder's pid {pid}: {}",
        second.stderr
    );
    let resume = harness::run(ws.command(&state, &["resume", "b-0000000000"])).await;
    assert_eq!(resume.code(), Some(3), "resume on a locked dir: {resume:?}");
    holder.start_kill().expect("kill holder");
    holder.wait().await.expect("reap holder");
    let builds = harness::builds(&ws, &state).await;
    assert_eq!(
        builds.len(),
        1,
        "after the holder died, status works and shows its build: {builds:?}"
    );
    let id = builds[0].0.clone();
    let resumed = harness::resume_until_done(&ws, &state, &id, 3).await;
    assert_eq!(
        resumed.phase, "succeeded",
        "the killed build resumes: {resumed:?}"
    );
    let audit = harness::audit_succeeded(&sim.inventory().await, &sim.calls().await, &id, 1);
    assert!(audit.clean(), "{audit:?}");
}

/// Copies a state directory (files only, as they are on disk).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every regular file under `dir/db`.
fn db_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("db"), &mut out);
    out
}

/// Ways to damage a state directory.
fn damage(dir: &Path, how: &str) {
    match how {
        "truncate every db file to half" => {
            for f in db_files(dir) {
                let len = std::fs::metadata(&f).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
        }
        "truncate every db file to zero" => {
            for f in db_files(dir) {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
        }
        "overwrite the middle of every db file" => {
            use std::io::{Seek, SeekFrom, Write};
            for f in db_files(dir) {
                let len = std::fs::metadata(&f).unwrap().len();
                let mut file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
                file.seek(SeekFrom::Start(len / 3)).unwrap();
                file.write_all(&vec![0xA5; (len / 3).max(1) as usize])
                    .unwrap();
            }
        }
        "delete the database" => std::fs::remove_dir_all(dir.join("db")).unwrap(),
        "garbage in the commit journal" => {
            std::fs::write(dir.join("committed"), "not a number\n").unwrap()
        }
        other => panic!("unknown damage {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_corrupted_state_dir_gives_a_clear_error_and_no_panic() {
    let sim = common::SimProcess::start("damaged");
    let ws = Workspace::new(&sim);
    let good = ws.state_dir();
    let spec = ws.spec_file(&harness::small_spec("damaged"));
    // With the `failpoints` feature the build is cut mid-way, so `resume` has real work to refuse.
    let mut apply = ws.apply(&good, &spec);
    apply.env("BAKERD_CRASH_AT", "provisioner-0:finished");
    let r = harness::run(apply).await;
    let id = r.build_id().expect("build id");
    let ways = [
        "truncate every db file to half",
        "truncate every db file to zero",
        "overwrite the middle of every db file",
        "delete the database",
        "garbage in the commit journal",
    ];
    let mut clear = 0;
    for how in ways {
        let dir = ws.state_dir();
        copy_dir(&good, &dir);
        damage(&dir, how);
        for args in [
            vec!["status"],
            vec!["resume", id.as_str()],
            vec!["show", id.as_str()],
        ] {
            let r = harness::run(ws.command(&dir, &args)).await;
            println!(
                "damaged state [{how}] `bakerd {}` → exit {:?}: {}",
                args.join(" "),
                r.code(),
                r.stderr.trim().lines().last().unwrap_or("")
            );
            assert!(
                !r.stderr.contains("panicked"),
                "{how}: bakerd {args:?} panicked:\n{}",
                r.stderr
            );
            assert_eq!(
                r.code(),
                Some(3),
                "{how}: bakerd {args:?} should fail with exit 3: {r:?}"
            );
            assert!(
                r.stderr.contains("damaged") && r.stderr.contains(dir.to_str().unwrap()),
                "{how}: the error should say the state dir is damaged and name it: {}",
                r.stderr
            );
            clear += 1;
        }
    }
    println!(
        "damaged state figures: {} kinds of damage, {clear} clear errors, 0 panics",
        ways.len()
    );
    // The undamaged original still resumes to the end.
    let resumed = harness::resume_until_done(&ws, &good, &id, 3).await;
    assert_eq!(resumed.phase, "succeeded");
}
