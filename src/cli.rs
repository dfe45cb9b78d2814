//! Command-line parsing and dispatch. Each command's options live with the module that runs it.

use crate::reconciler::commands as build;
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
    /// Build the image a spec (or Packer template) describes, unless it is already up to date.
    Apply(build::ApplyArgs),
    /// Check specs without building: offline, or `--remote` also against the cloud (read-only).
    Validate(build::ValidateArgs),
    /// Continue an interrupted build from its last completed phase (a failed build retries its
    /// failed step).
    Resume(build::ResumeArgs),
    /// List builds with their phase.
    #[command(alias = "list")]
    Status(build::CommonArgs),
    /// Show one build: phase, resources, events with durations.
    Show(build::BuildArgs),
    /// Run a spec's `verify` checks on an existing image (boots a test instance, deletes it) and
    /// tag the image bakerd:verified=true|false.
    Verify(build::VerifyArgs),
    /// Stop a build and delete everything it created.
    Cancel(build::BuildArgs),
    /// Delete bakerd-tagged cloud resources no live build owns (dry run unless --yes); prune
    /// old build records.
    Gc(crate::reconciler::gc::GcArgs),
    /// Run the local ECS simulator (real HTTP API, instances are real OpenSSH servers).
    Sim(crate::sim::SimArgs),
    /// Print the bakerd YAML spec equivalent to a Packer template, JSON or HCL2 (secrets as env
    /// references).
    Convert(crate::spec::source::ConvertArgs),
}

/// Entry point of the `bakerd` binary.
pub fn main() -> ExitCode {
    // The simulator's instance processes: before anything that could start a thread.
    if let Some(code) = crate::sim::machine::hidden_entry() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse_from(packer_spellings(std::env::args_os()));
    init_tracing();
    crate::reconciler::crash::setup();
    crate::client::share_http_clients();
    match cli.command {
        Command::Sim(args) => crate::sim::run_cli(args),
        Command::Status(common) => {
            quiet_broken_pipe();
            let json = common.json;
            finish(build::status(common), json)
        }
        Command::Show(args) => {
            quiet_broken_pipe();
            let json = args.common.json;
            finish(build::show(args), json)
        }
        Command::Apply(args) => {
            let json = args.common.json;
            finish(block_on(build::apply(args)), json)
        }
        Command::Validate(args) => {
            let json = args.json;
            finish(block_on(build::validate(args)), json)
        }
        Command::Resume(args) => {
            let json = args.common.json;
            finish(block_on(build::resume(args)), json)
        }
        Command::Cancel(args) => {
            let json = args.common.json;
            finish(block_on(build::cancel(args)), json)
        }
        Command::Verify(args) => {
            let json = args.common.json;
            finish(block_on(build::verify(args)), json)
        }
        Command::Convert(args) => {
            quiet_broken_pipe();
            crate::spec::source::run_convert(args)
        }
        Command::Gc(args) => {
            let json = args.json;
            finish(block_on(crate::reconciler::gc::gc(args)), json)
        }
    }
}

/// Packer's single-dash flags (`-var`, `-var-file`, `-only`, also with `=value`) in bakerd's
/// spelling, so a Packer command line works as it is. Nothing else is rewritten.
fn packer_spellings(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> impl Iterator<Item = std::ffi::OsString> {
    args.map(|arg| {
        let Some(text) = arg.to_str() else {
            return arg;
        };
        for flag in ["-var", "-var-file", "-only"] {
            if text == flag
                || text
                    .strip_prefix(flag)
                    .is_some_and(|rest| rest.starts_with('='))
            {
                return format!("-{text}").into();
            }
        }
        arg
    })
}

/// For commands that only print: end quietly when the reader goes away (`bakerd show | head`),
/// as Unix tools do, instead of panicking on a broken pipe. Not for commands that talk to the
/// network, where an EPIPE must stay an error and not kill the process.
fn quiet_broken_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs an async command on a fresh runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("bakerd: cannot start the async runtime: {e}");
            std::process::exit(70);
        }
    }
}

/// Prints a command's error once (also as a JSON event on stdout under `--json`) and turns the
/// result into the process exit code.
fn finish(result: Result<u8, build::CommandError>, json: bool) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if json {
                let event = serde_json::json!({"event": "error", "exit_code": err.code, "message": err.message});
                println!("{event}");
            }
            eprintln!("bakerd: error: {}", err.message);
            ExitCode::from(err.code)
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `warn`; sled's own messages are off by
/// default because every sled failure reaches the user as a bakerd error saying what to do).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sled=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
