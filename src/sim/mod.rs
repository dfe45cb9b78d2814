//! `bakerd sim`: a local ECS simulator speaking the real RPC API (see `docs/ecs-api.md`), whose
//! instances are isolated like VMs (user, mount, PID, network… namespaces) and run their own
//! OpenSSH server ([`machine`]).
//!
//! Layout: [`core`] is the request pipeline, [`server`] the HTTP glue, [`auth`] signature checks,
//! [`actions`] the ECS actions, [`store`] records and persistence, [`lifecycle`] the ticker that drives
//! asynchronous states and sshd's, [`faults`] fault injection, [`idempotency`] ClientToken.

mod actions;
pub mod auth;
mod catalog;
pub mod core;
pub mod error;
pub mod faults;
mod idempotency;
mod inventory;
pub mod lifecycle;
pub mod machine;
pub mod params;
mod server;
pub mod store;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use self::auth::Credentials;
use self::faults::{FaultConfig, FaultKind, Faults};
use self::lifecycle::{Latencies, Profile};
use self::machine::Machines;

/// Options of `bakerd sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8086")]
    pub listen: std::net::SocketAddr,
    /// Directory holding the simulator's state and machine filesystems (created 0700; may be
    /// anywhere, /tmp included).
    #[arg(long, default_value = "./.sim-data")]
    pub data_dir: PathBuf,
    /// Accepted access key as `<id>:<secret>` (repeatable). Default: the documented test pair.
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    pub access_keys: Vec<String>,
    /// Accepted STS SecurityToken (repeatable).
    #[arg(long = "sts-token", value_name = "TOKEN")]
    pub sts_tokens: Vec<String>,
    /// Latency profile.
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Probability (0..1) that a call is answered `Throttling`.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Probability (0..1) that a call gets one of the `--fault-kind`s.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Fault kinds injected at `--fault-rate` (repeatable). Default: all.
    #[arg(long = "fault-kind", value_enum)]
    pub fault_kinds: Vec<FaultKind>,
    /// Restrict random faults to these actions (repeatable). Default: every action.
    #[arg(long = "fault-action")]
    pub fault_actions: Vec<String>,
    /// Probability (0..1) that a new snapshot ends `failed`.
    #[arg(long, default_value_t = 0.0)]
    pub snapshot_failure_rate: f64,
    /// Probability (0..1) that a new image ends `CreateFailed`.
    #[arg(long, default_value_t = 0.0)]
    pub image_failure_rate: f64,
    /// Seed of the fault-injection RNG.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The documented test access key pair (`docs/ecs-api.md` V1-a).
pub const DEFAULT_ACCESS_KEY: (&str, &str) = ("testid", "testsecret");

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimStartError {
    #[error("--access-key must be <id>:<secret>")]
    BadAccessKey,
    #[error("creating data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("preparing machines: {0}")]
    Machine(#[from] machine::MachineError),
    #[error("{0}")]
    Preflight(#[from] machine::preflight::PreflightError),
    #[error("finding the bakerd executable: {0}")]
    OwnExe(#[source] std::io::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs `bakerd sim` until SIGINT/SIGTERM.
pub fn run_cli(args: SimArgs) -> ExitCode {
    if let Err(e) = preflight() {
        eprintln!("bakerd sim: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bakerd sim: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bakerd sim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks, before anything starts, that this machine can run instances (see
/// [`machine::preflight`]).
fn preflight() -> Result<(), SimStartError> {
    let exe = std::env::current_exe().map_err(SimStartError::OwnExe)?;
    machine::preflight::check(&exe)?;
    Ok(())
}

fn credentials(args: &SimArgs) -> Result<Credentials, SimStartError> {
    let mut creds = Credentials::default();
    for pair in &args.access_keys {
        let (id, secret) = pair.split_once(':').ok_or(SimStartError::BadAccessKey)?;
        creds.keys.insert(id.to_string(), secret.to_string());
    }
    if creds.keys.is_empty() {
        let (id, secret) = DEFAULT_ACCESS_KEY;
        creds.keys.insert(id.into(), secret.into());
    }
    creds.sts_tokens = args.sts_tokens.iter().cloned().collect();
    Ok(creds)
}

fn fault_config(args: &SimArgs) -> FaultConfig {
    FaultConfig {
        throttle_rate: args.throttle_rate.clamp(0.0, 1.0),
        fault_rate: args.fault_rate.clamp(0.0, 1.0),
        fault_kinds: if args.fault_kinds.is_empty() {
            FaultKind::ALL_FAULTS.to_vec()
        } else {
            args.fault_kinds.clone()
        },
        snapshot_failure_rate: args.snapshot_failure_rate.clamp(0.0, 1.0),
        image_failure_rate: args.image_failure_rate.clamp(0.0, 1.0),
        actions: args.fault_actions.clone(),
        one_shot: Vec::new(),
    }
}

fn create_data_dir(path: &std::path::Path) -> Result<(), SimStartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| SimStartError::DataDir {
            path: path.to_path_buf(),
            source,
        })
}

/// Builds the simulator from its options: state, machines and base images.
fn build(args: &SimArgs) -> Result<Arc<core::Sim>, SimStartError> {
    create_data_dir(&args.data_dir)?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .map_err(|source| SimStartError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
    let state = store::load(&data_dir)?;
    let machines = Machines::new(&data_dir)?;
    for image in catalog::SYSTEM_IMAGES {
        machines.ensure_base_image(image.id, image.os_release)?;
    }
    let faults = Faults::new(fault_config(args), args.seed);
    Ok(Arc::new(core::Sim::new(
        data_dir,
        credentials(args)?,
        Latencies::for_profile(args.profile),
        machines,
        state,
        faults,
    )))
}

async fn run(args: SimArgs) -> Result<(), SimStartError> {
    let sim = build(&args)?;
    {
        // Persist a new data dir's IP plan at once, so a restart keeps the same addresses.
        let state = sim.lock_state();
        store::save(&sim.data_dir, &state).map_err(|source| SimStartError::DataDir {
            path: sim.data_dir.clone(),
            source,
        })?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| SimStartError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimStartError::Listen {
            addr: args.listen,
            source,
        })?;
    println!("bakerd-sim listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = lifecycle::spawn_ticker(sim.clone(), stop.clone());
    let served = axum::serve(listener, server::router(sim.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    stop.store(true, Ordering::SeqCst);
    ticker.join();
    sim.machines.stop_all();
    let state = sim.lock_state();
    if let Err(e) = store::save(&sim.data_dir, &state) {
        tracing::warn!(error = %e, "final state save failed");
    }
    served.map_err(SimStartError::Serve)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
