//! Command-line parsing and dispatch. Each command's options live with the module that runs it.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "bakerd",
    version,
    about = "Build Alibaba Cloud ECS images, resumably"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local ECS simulator (real HTTP API, instances are real OpenSSH servers).
    Sim(crate::sim::SimArgs),
    /// Print the bakerd YAML spec equivalent to a Packer JSON template (secrets as env references).
    Convert(crate::spec::source::ConvertArgs),
}

/// Entry point of the `bakerd` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Sim(args) => crate::sim::run_cli(args),
        Command::Convert(args) => crate::spec::source::run_convert(args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
