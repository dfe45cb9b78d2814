//! The one thing the Cloud Assistant runner needs from the machine layer: run a program as root
//! inside an instance (its own namespaces, no SSH), with stdin, bounded by a timeout.

use std::time::Duration;

/// What a finished (or timed-out) program left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestOutput {
    /// Exit code; `None` when it was killed (by the timeout or a signal).
    pub exit_code: Option<i32>,
    /// Standard output (the runner merges stderr into it with `2>&1`).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Whether the timeout ended it.
    pub timed_out: bool,
}

/// Why a program could not be run at all (not: it ran and failed).
#[derive(Debug, thiserror::Error)]
#[error("running a program in instance {instance}: {source}")]
pub struct GuestExecError {
    pub instance: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Runs programs inside instances.
///
/// Guarantees an implementation must give: `argv` runs as the instance's root, confined to the
/// instance (filesystem, processes, network); it is killed when `timeout` passes.
pub trait GuestExec: Send + Sync + 'static {
    /// Runs `argv` in instance `instance_id`, feeding it `stdin`; blocks until it ends.
    fn exec(
        &self,
        instance_id: &str,
        argv: &[&str],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<GuestOutput, GuestExecError>;
}

/// The simulator's machines run programs through the machine layer's isolated exec.
impl GuestExec for crate::sim::machine::Machines {
    fn exec(
        &self,
        instance_id: &str,
        argv: &[&str],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<GuestOutput, GuestExecError> {
        let request = crate::sim::machine::ExecRequest {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            stdin: stdin.to_vec(),
            env: Vec::new(),
            timeout,
        };
        let out = self
            .exec_in_instance(instance_id, &request)
            .map_err(|e| GuestExecError {
                instance: instance_id.to_string(),
                source: Box::new(e),
            })?;
        Ok(GuestOutput {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: out.timed_out,
        })
    }
}
