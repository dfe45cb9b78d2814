//! `bakerd sim`: a local ECS simulator speaking the real RPC API (see `docs/ecs-api.md`), whose
//! instances are isolated like VMs (user, mount, PID, network… namespaces) and run their own
//! OpenSSH server ([`machine`]).
//!
//! Layout: [`core`] is the request pipeline, [`server`] the HTTP glue, [`serve`] the accept loop and
//! its limits, [`guard`] what keeps browsers off, [`auth`] signature checks, [`nonces`] the persistent
//! nonce cache, [`calllog`] the call log, [`keys`] where accepted keys come from, [`actions`] the ECS actions, [`store`] records
//! and their file, [`commit`] when it is written, [`lifecycle`] the ticker that drives asynchronous states and sshd's, [`faults`]
//! fault injection, [`idempotency`] ClientToken, [`timeline`] how long each status lasted.

mod actions;
pub mod assistant;
pub mod auth;
pub mod calllog;
mod catalog;
mod commit;
pub mod core;
pub mod error;
pub mod faults;
pub mod guard;
mod idempotency;
mod inventory;
pub mod keys;
pub mod lifecycle;
pub mod machine;
mod metadata;
pub mod nonces;
pub mod params;
pub mod quotas;
mod serve;
mod server;
pub mod store;
mod sts;
pub mod timeline;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use self::faults::{FaultConfig, FaultKind, Faults};
use self::guard::SimToken;
use self::keys::{KeySources, KeysError};
use self::lifecycle::{Latencies, Profile};
use self::machine::Machines;

/// Options of `bakerd sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (the chosen one is printed). Loopback only,
    /// unless `--allow-remote`.
    #[arg(long, default_value = "127.0.0.1:8086")]
    pub listen: std::net::SocketAddr,
    /// Allow `--listen` on an address other machines can reach. The simulator is for one machine's
    /// trusted users: its default key is public and its instances are real sshd's.
    #[arg(long)]
    pub allow_remote: bool,
    /// Directory holding the simulator's state and machine filesystems (created 0700; may be
    /// anywhere, /tmp included).
    #[arg(long, default_value = "./.sim-data")]
    pub data_dir: PathBuf,
    /// Accepted access key as `<id>:<secret>` (repeatable). Visible to every local user in `ps`:
    /// prefer `--access-key-file` or `BAKERD_SIM_ACCESS_KEYS`. Default: the documented test pair.
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    pub access_keys: Vec<String>,
    /// File of accepted access keys, one `ID:SECRET` a line (`#` comments); must be mode 0600.
    #[arg(long = "access-key-file", value_name = "PATH")]
    pub access_key_files: Vec<PathBuf>,
    /// Accepted STS SecurityToken (repeatable; visible in `ps`, see `--sts-token-file`).
    #[arg(long = "sts-token", value_name = "TOKEN")]
    pub sts_tokens: Vec<String>,
    /// RAM role attached to "the instance" bakerd runs on: the metadata service at
    /// `/latest/meta-data/ram/security-credentials/<role>` hands out its keys (repeatable).
    #[arg(
        long = "ecs-ram-role",
        value_name = "ROLE",
        default_value = "bakerd-sim-role"
    )]
    pub ecs_ram_roles: Vec<String>,
    /// File of accepted STS tokens, one a line; must be mode 0600.
    #[arg(long = "sts-token-file", value_name = "PATH")]
    pub sts_token_files: Vec<PathBuf>,
    /// Seconds a client may take to send a request's headers (also the idle time of a kept-alive
    /// connection), and again its body.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub read_timeout: u64,
    /// HTTP connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub max_connections: usize,
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
    /// An account quota as `NAME=VALUE` (repeatable), e.g. `max-postpaid-instance-vcpu-count=4`:
    /// DescribeAccountAttributes reports it and RunInstances, CreateInstance and
    /// CreateSecurityGroup enforce it (docs/quotas.md).
    #[arg(long = "quota", value_name = "NAME=VALUE")]
    pub quotas: Vec<String>,
    /// Answer this action `Forbidden.RAM`, as for a RAM user whose policy lacks it (repeatable).
    #[arg(long = "deny-action", value_name = "ACTION")]
    pub deny_actions: Vec<String>,
}

pub use self::keys::DEFAULT_ACCESS_KEY;

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimStartError {
    #[error("--listen {0} is reachable from other machines; the simulator is for one machine's trusted users (its default key is public). Listen on 127.0.0.1, or add --allow-remote")]
    RemoteListen(std::net::SocketAddr),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Quota(#[from] quotas::QuotaError),
    #[error("writing the /_sim token {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Nonces(#[from] nonces::NonceLogError),
    #[error("creating data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    CallLog(#[from] calllog::CallLogError),
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
}

impl SimStartError {
    /// 2 for what the user wrote (options, key files), 1 for the rest.
    fn exit_code(&self) -> ExitCode {
        match self {
            SimStartError::RemoteListen(_) | SimStartError::Keys(_) | SimStartError::Quota(_) => {
                ExitCode::from(2)
            }
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs `bakerd sim` until SIGINT/SIGTERM.
pub fn run_cli(args: SimArgs) -> ExitCode {
    // Read (and unset) the secret-bearing variables while the process is still single-threaded.
    let (access_keys_env, sts_tokens_env) = keys::take_env();
    let creds = check_listen(&args)
        .and_then(|()| preflight())
        .and_then(|()| {
            Ok(keys::load(&KeySources {
                access_keys: &args.access_keys,
                access_key_files: &args.access_key_files,
                sts_tokens: &args.sts_tokens,
                sts_token_files: &args.sts_token_files,
                access_keys_env,
                sts_tokens_env,
            })?)
        });
    let creds = match creds {
        Ok(mut c) => {
            c.instance_roles = args.ecs_ram_roles.clone();
            c
        }
        Err(e) => {
            eprintln!("bakerd sim: {e}");
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bakerd sim: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, creds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bakerd sim: {e}");
            e.exit_code()
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

/// A non-loopback `--listen` needs `--allow-remote`, and then gets a warning.
fn check_listen(args: &SimArgs) -> Result<(), SimStartError> {
    if args.listen.ip().is_loopback() {
        return Ok(());
    }
    if !args.allow_remote {
        return Err(SimStartError::RemoteListen(args.listen));
    }
    eprintln!(
        "bakerd sim: warning: listening on {}, reachable from other machines; anyone who can connect and knows an access key (the default one is public) can start instances here",
        args.listen
    );
    Ok(())
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
fn build(args: &SimArgs, creds: auth::Credentials) -> Result<Arc<core::Sim>, SimStartError> {
    let quotas = quotas::Quotas::parse(&args.quotas, &args.deny_actions)?;
    create_data_dir(&args.data_dir)?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .map_err(|source| SimStartError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
    let mut state = store::load(&data_dir)?;
    assistant::interrupt_running(&mut state, store::now_ms());
    let calls = calllog::CallLog::open(&data_dir, std::mem::take(&mut state.legacy_calls))?;
    let machines = Machines::new(&data_dir)?;
    for image in catalog::SYSTEM_IMAGES {
        machines.ensure_base_image(image.id, image.os_release)?;
    }
    let faults = Faults::new(fault_config(args), args.seed);
    let nonces = nonces::NonceCache::open(&data_dir, store::now_ms())?;
    Ok(Arc::new(
        core::Sim::new(
            data_dir,
            creds,
            Latencies::for_profile(args.profile),
            machines,
            faults,
            core::Stores {
                state,
                calls,
                nonces,
            },
        )
        .with_quotas(quotas),
    ))
}

async fn run(args: SimArgs, creds: auth::Credentials) -> Result<(), SimStartError> {
    let sim = build(&args, creds)?;
    let token = SimToken::create(&sim.data_dir).map_err(|source| SimStartError::Token {
        path: sim.data_dir.join(guard::TOKEN_FILE),
        source,
    })?;
    // Persist a new data dir's IP plan at once, so a restart keeps the same addresses (and a
    // migrated state file without its old call log).
    sim.mark_dirty();
    sim.flush().map_err(|source| SimStartError::DataDir {
        path: sim.data_dir.clone(),
        source,
    })?;
    let (listener, addr) = bind(args.listen).await?;
    println!("bakerd-sim listening on http://{addr}");
    println!(
        "bakerd-sim /_sim token in {} (send it as header X-Bakerd-Sim-Token)",
        token.path.display()
    );
    let _ = std::io::stdout().flush();
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = lifecycle::spawn_ticker(sim.clone(), stop.clone());
    let runner = assistant::spawn_runner(sim.clone(), Arc::new(sim.machines.clone()), stop.clone());
    let limits = serve::Limits {
        read_timeout: std::time::Duration::from_secs(args.read_timeout.max(1)),
        max_connections: args.max_connections,
    };
    serve::serve(
        listener,
        server::router(sim.clone(), token),
        limits,
        shutdown_signal(),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    ticker.join();
    runner.join();
    sim.machines.stop_all();
    if let Err(e) = sim.flush() {
        tracing::warn!(error = %e, "final state save failed");
    }
    Ok(())
}

/// Binds `listen`; returns the listener and the address it got (the port, when 0 was asked).
async fn bind(
    listen: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), SimStartError> {
    let failed = |source| SimStartError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
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
