//! Running the enter helper from the simulator: commands inside an instance (with output and a
//! timeout) and file installs into it.

use super::enter::FileToInstall;
use super::sys::{self, Pid};
use super::{ExecOutput, ExecRequest};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a file install may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long output is awaited after the command ended (a background process it left may keep
/// its stdout open; its output is then cut).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

fn helper(exe: &Path, init: Pid) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("__sim-enter")
        .arg(init.to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `request` through the helper (see [`super::Machines::exec_in_instance`]).
pub(crate) fn run(exe: &Path, init: Pid, request: &ExecRequest) -> io::Result<ExecOutput> {
    let mut command = helper(exe, init);
    command
        .args(["exec", "--"])
        .args(&request.argv)
        .envs(request.env.iter().map(|(k, v)| (k, v)));
    let child = command.spawn()?;
    collect(child, request.stdin.clone(), request.timeout)
}

/// Writes `files` into the instance as its root; the error carries the helper's message.
pub(crate) fn install(exe: &Path, init: Pid, files: &[FileToInstall]) -> Result<(), String> {
    let json = serde_json::to_vec(files).map_err(|error| error.to_string())?;
    let mut command = helper(exe, init);
    command.arg("install");
    let child = command.spawn().map_err(|error| error.to_string())?;
    let output = collect(child, json, INSTALL_TIMEOUT).map_err(|error| error.to_string())?;
    if output.exit_code == Some(0) {
        return Ok(());
    }
    Err(format!(
        "exit {:?}: {}",
        output.exit_code,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// Reads `from` to its end on a thread; the receiver gets everything once all writers closed
/// it (a process left running in the instance may hold it open: see [`gathered`]).
fn reader(mut from: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        let _ = send.send(bytes);
    });
    receive
}

/// What a reader got, waiting at most [`OUTPUT_GRACE`] after the command ended.
fn gathered(receiver: &mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    receiver.recv_timeout(OUTPUT_GRACE).unwrap_or_default()
}

/// Feeds stdin, gathers stdout/stderr, and waits up to `timeout` (then SIGKILL: the command in
/// the instance dies with its helper).
fn collect(mut child: Child, stdin: Vec<u8>, timeout: Duration) -> io::Result<ExecOutput> {
    let mut input = child.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = reader(child.stdout.take().expect("stdout is piped"));
    let stderr = reader(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            sys::kill(child.id() as Pid, libc::SIGKILL);
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    use std::os::unix::process::ExitStatusExt;
    Ok(ExecOutput {
        exit_code: status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
        stdout: gathered(&stdout),
        stderr: gathered(&stderr),
        timed_out: status.is_none(),
    })
}
