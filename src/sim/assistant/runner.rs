//! The runner: delivers pending targets to their instances (or aborts them after the delivery
//! window), runs them through [`GuestExec`] on a thread each, and records the outcome.
//!
//! Guarantees: the state lock is never held while a program runs; a target's result is written
//! only if it is still `Running` (a `StopInvocation` in between wins).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::exec::{GuestExec, GuestOutput};
use super::records::{AssistantState, Invocation};
use super::{agent_online, delivery_window_ms, OUTPUT_CAP};
use crate::sim::core::Sim;
use crate::sim::store::{now_ms, State};

const TICK: Duration = Duration::from_millis(100);
/// How often a running command's output so far is read back (as the real agent reports it while
/// the command runs).
const OUTPUT_POLL: Duration = Duration::from_millis(300);
/// Where the agent keeps scripts inside the instance (the real agent's work directory).
const SCRIPT_DIR: &str = "/usr/local/share/aliyun-assist/work/script";
/// Staging a script or reading one back is quick; only the script itself gets the user timeout.
const STAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit code of the runner's wrapper when `WorkingDir` does not exist.
const NO_WORKING_DIR: i32 = 252;
/// Exit code of the file-send script when the file exists and `Overwrite` is false.
const FILE_EXISTS: i32 = 17;
/// Exit code of the file-send script when the owner or group is unknown.
const BAD_OWNER: i32 = 18;

/// Which table a target lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Commands,
    Files,
}

fn table(a: &mut AssistantState, t: Table) -> &mut std::collections::BTreeMap<String, Invocation> {
    match t {
        Table::Commands => &mut a.invocations,
        Table::Files => &mut a.file_sends,
    }
}

/// A delivered target to run.
struct Job {
    table: Table,
    invoke_id: String,
    index: usize,
    instance_id: String,
    invocation: Invocation,
}

/// The runner thread; stops when its flag is set.
pub struct Runner(std::thread::JoinHandle<()>);

impl Runner {
    /// Waits for the delivery thread (jobs already started finish on their own threads).
    pub fn join(self) {
        let _ = self.0.join();
    }
}

/// Starts delivering invocations until `stop` is set.
pub fn spawn_runner(sim: Arc<Sim>, exec: Arc<dyn GuestExec>, stop: Arc<AtomicBool>) -> Runner {
    Runner(std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            for job in deliver(&sim) {
                let (sim, exec) = (sim.clone(), exec.clone());
                std::thread::spawn(move || run_job(&sim, exec.as_ref(), job));
            }
            std::thread::sleep(TICK);
        }
    }))
}

/// After a restart: targets that were running lost their process with the instance.
pub fn interrupt_running(state: &mut State, now: u64) {
    let a = &mut state.assistant;
    for inv in a.invocations.values_mut().chain(a.file_sends.values_mut()) {
        for t in inv.targets.iter_mut().filter(|t| t.status == "Running") {
            t.end(
                "Failed",
                "ExecutionInterrupted",
                "the command execution has been interrupted",
                now,
            );
        }
    }
}

/// What to do with one pending target now.
enum Decision {
    Run,
    Abort(&'static str, &'static str),
    Wait,
}

fn decide(state: &State, sim: &Sim, instance_id: &str, created_ms: u64, now: u64) -> Decision {
    let Some(inst) = state.instances.get(instance_id) else {
        return Decision::Abort(
            "InstanceNotExists",
            "the specified instance does not exists",
        );
    };
    if !inst.meta.live() {
        return Decision::Abort(
            "InstanceReleased",
            "the instance has released when create task",
        );
    }
    if agent_online(state, inst, &sim.latencies, now) {
        return Decision::Run;
    }
    if now < created_ms + delivery_window_ms(&sim.latencies) {
        return Decision::Wait;
    }
    if inst.status != "Running" {
        Decision::Abort(
            "InstanceNotRunning",
            "the instance is not running when create task",
        )
    } else {
        Decision::Abort(
            "ClientNotRunning",
            "the aliyun service is not running on the instance",
        )
    }
}

/// Moves pending targets to Running (returning them as jobs) or Aborted.
fn deliver(sim: &Sim) -> Vec<Job> {
    let now = now_ms();
    let mut state = sim.lock_state();
    let mut pending = Vec::new();
    for t in [Table::Commands, Table::Files] {
        for (id, inv) in table(&mut state.assistant, t).iter() {
            for (index, target) in inv.targets.iter().enumerate() {
                if target.status == "Pending" {
                    let (instance, created) = (target.instance_id.clone(), target.created_ms);
                    pending.push((t, id.clone(), index, instance, created));
                }
            }
        }
    }
    let mut jobs = Vec::new();
    for (t, invoke_id, index, instance_id, created) in pending {
        let decision = decide(&state, sim, &instance_id, created, now);
        let inv = table(&mut state.assistant, t)
            .get_mut(&invoke_id)
            .expect("listed");
        let target = &mut inv.targets[index];
        match decision {
            Decision::Wait => continue,
            Decision::Abort(code, info) => target.end("Aborted", code, info, now),
            Decision::Run => {
                target.status = "Running".into();
                target.start_ms = Some(now);
                let invocation = inv.clone();
                jobs.push(Job {
                    table: t,
                    invoke_id,
                    index,
                    instance_id,
                    invocation,
                });
            }
        }
        sim.mark_dirty();
    }
    jobs
}

/// Runs one job and records its outcome.
fn run_job(sim: &Sim, exec: &dyn GuestExec, job: Job) {
    let timeout = Duration::from_secs(job.invocation.timeout_s.max(1));
    let ran = match job.table {
        Table::Commands => run_script(sim, exec, &job, timeout),
        Table::Files => send_file(exec, &job, timeout),
    };
    let now = now_ms();
    update_running(sim, &job, |inv, target| {
        match ran {
            Err(e) => {
                tracing::warn!(error = %e, invoke = %job.invoke_id, "cloud assistant exec failed");
                target.end(
                    "Error",
                    "ExecutionException",
                    "the command execution got an exception",
                    now,
                );
            }
            Ok(out) => record_output(target, &out, job.table, now),
        }
        // A delivered file's bytes are not needed any more; keeping them would make every
        // state write carry them.
        if job.table == Table::Files
            && target.finished()
            && inv
                .targets
                .iter()
                .enumerate()
                .all(|(i, t)| i == job.index || t.finished())
        {
            inv.content = Vec::new();
        }
    });
}

/// Applies `change` to the job's invocation and target under the state lock, if the target is
/// still `Running` (a `StopInvocation` in between wins), and marks the state dirty. Returns
/// whether it did.
fn update_running(
    sim: &Sim,
    job: &Job,
    change: impl FnOnce(&mut Invocation, &mut super::Target),
) -> bool {
    let mut state = sim.lock_state();
    let Some(inv) = table(&mut state.assistant, job.table).get_mut(&job.invoke_id) else {
        return false;
    };
    let Some(mut target) = inv.targets.get(job.index).cloned() else {
        return false;
    };
    if target.status != "Running" {
        return false;
    }
    change(inv, &mut target);
    inv.targets[job.index] = target;
    drop(state);
    sim.mark_dirty();
    true
}

fn record_output(target: &mut super::Target, out: &GuestOutput, t: Table, now: u64) {
    let kept = out.stdout.len().min(OUTPUT_CAP);
    target.output = out.stdout[..kept].to_vec();
    target.dropped = (out.stdout.len() - kept) as u64;
    target.exit_code = out.exit_code.map(i64::from);
    let no_dir = out.exit_code == Some(NO_WORKING_DIR) && out.stderr.starts_with(b"bakerd-sim:");
    match (out.timed_out, out.exit_code, t) {
        (true, _, _) => target.end(
            "Timeout",
            "ExecutionTimeout",
            "the command execution has been timeout",
            now,
        ),
        (_, Some(0), _) => target.end("Success", "", "", now),
        _ if no_dir => target.end(
            "Failed",
            "DirectoryNotExists",
            "the specified directory does not exists",
            now,
        ),
        (_, Some(FILE_EXISTS), Table::Files) => target.end(
            "Failed",
            "FileAlreadyExists",
            "the file already exists",
            now,
        ),
        (_, Some(BAD_OWNER), Table::Files) => target.end(
            "Failed",
            "UserOrGroupNotExists",
            "the specified user or group does not exists",
            now,
        ),
        (_, _, Table::Files) => target.end(
            "Failed",
            "ExecutionException",
            "the file could not be written",
            now,
        ),
        (_, _, Table::Commands) => target.end(
            "Failed",
            "ExitCodeNonzero",
            "the command execution exit code is not zero",
            now,
        ),
    }
}

/// Stages the script in the agent's work directory, then runs it in `WorkingDir`, stdout and
/// stderr merged (as the agent reports them) and copied to a log beside it, which is read back
/// while it runs so `DescribeInvocationResults` shows output as it comes; removes both.
fn run_script(
    sim: &Sim,
    exec: &dyn GuestExec,
    job: &Job,
    timeout: Duration,
) -> Result<GuestOutput, super::GuestExecError> {
    let inv = &job.invocation;
    let script = format!("{SCRIPT_DIR}/{}.sh", inv.id);
    let stage = format!("mkdir -p {SCRIPT_DIR} && cat > {script} && chmod 700 {script}");
    let staged = exec.exec(
        &job.instance_id,
        &["/bin/sh", "-c", &stage],
        &inv.content,
        STAGE_TIMEOUT,
    )?;
    if staged.exit_code != Some(0) {
        return Ok(staged);
    }
    let dir = quote(&inv.working_dir);
    let (log, rc) = (format!("{script}.out"), format!("{script}.rc"));
    let run = format!(
        "cd {dir} 2>/dev/null || {{ echo 'bakerd-sim: no such directory' >&2; exit {NO_WORKING_DIR}; }}\n\
         {{ {script} 2>&1; echo $? > {rc}; }} | tee {log}\n\
         rc=$(cat {rc} 2>/dev/null); rm -f {script} {rc} {log}; exit ${{rc:-1}}"
    );
    let (finished, done) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(|| poll_output(sim, exec, job, &log, done));
        let ran = exec.exec(&job.instance_id, &["/bin/sh", "-c", &run], b"", timeout);
        // Dropping the sender wakes the poller at once.
        drop(finished);
        ran
    })
}

/// While the command runs, copies the first [`OUTPUT_CAP`] bytes of its log into its target
/// (only while the target is still `Running`; the final output replaces it).
fn poll_output(
    sim: &Sim,
    exec: &dyn GuestExec,
    job: &Job,
    log: &str,
    done: std::sync::mpsc::Receiver<()>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let read = format!("head -c {OUTPUT_CAP} {log} 2>/dev/null");
    let mut seen = 0;
    while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(OUTPUT_POLL) {
        let argv = ["/bin/sh", "-c", read.as_str()];
        let Ok(out) = exec.exec(&job.instance_id, &argv, b"", STAGE_TIMEOUT) else {
            continue;
        };
        if out.stdout.len() <= seen {
            continue;
        }
        seen = out.stdout.len();
        if !update_running(sim, job, |_, target| target.output = out.stdout) {
            return;
        }
    }
}

/// Writes the file atomically (temp name, then rename), with its mode and owner.
fn send_file(
    exec: &dyn GuestExec,
    job: &Job,
    timeout: Duration,
) -> Result<GuestOutput, super::GuestExecError> {
    let inv = &job.invocation;
    let Some(file) = &inv.file else {
        return Ok(GuestOutput::default());
    };
    let (dir, name) = (quote(&file.target_dir), quote(&inv.name));
    let owner = quote(&format!("{}:{}", file.owner, file.group));
    let script = format!(
        "d={dir}; f=\"$d\"/{name}; t=\"$f.sim-send\"\n\
         mkdir -p \"$d\" || exit 3\n\
         if [ -e \"$f\" ] && [ {overwrite} != true ]; then echo 'file exists' >&2; exit {FILE_EXISTS}; fi\n\
         cat > \"$t\" || exit 4\n\
         chown {owner} \"$t\" 2>/dev/null || {{ rm -f \"$t\"; exit {BAD_OWNER}; }}\n\
         chmod {mode} \"$t\" && mv -f \"$t\" \"$f\"",
        overwrite = file.overwrite,
        mode = quote(&file.file_mode),
    );
    exec.exec(
        &job.instance_id,
        &["/bin/sh", "-c", &script],
        &inv.content,
        timeout,
    )
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
