//! `bakerd sim`: a local ECS simulator speaking the real RPC API.

pub mod machine;

use std::process::ExitCode;

/// Options of `bakerd sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

/// Runs `bakerd sim` until SIGINT/SIGTERM.
pub fn run_cli(_args: SimArgs) -> ExitCode {
    ExitCode::SUCCESS
}
