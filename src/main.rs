//! `runbook`: run incident runbooks as durable, resumable step graphs.
//!
//! Parse flags, set up tracing, open the store (or reach the process that
//! holds it), run the command, map the outcome to the contract's exit codes.

mod app;
mod bench;
mod completions;
mod daemon;
mod demo;
mod flags;
mod graph;
mod progress;
mod remote;
mod schema;
mod term;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use runbook_engine::error::EngineError;
use runbook_engine::executor::{Engine, RunEnvironment};
use runbook_engine::journal::Journal;
use runbook_engine::state::RunStatus;
use runbook_storage::{SledStore, StorageError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Caller, UsageError, exit};
use crate::flags::{Cli, Command, LogFormat};
use crate::term::Term;

fn main() -> ExitCode {
    // Invoked as `az`, `kubectl` or `helm` (the links `runbook demo` puts on
    // PATH for its steps), this binary is the simulator.
    if let Some(code) = simulated_tool() {
        return code;
    }
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("{}", error_text(&error));
                error_exit_code(&error)
            }
        }
    });
    // Step processes were stopped by the runs; do not wait on stray blocking tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

/// Answers as the simulator when argv[0] names one of its tools.
fn simulated_tool() -> Option<ExitCode> {
    let mut argv = std::env::args();
    let program = argv.next()?;
    let name = std::path::Path::new(&program).file_name()?.to_str()?.to_owned();
    let tool = runbook_sim::Tool::from_name(&name)?;
    let args: Vec<String> = argv.collect();
    let reply = runbook_sim::state_dir_from_env().and_then(|dir| runbook_sim::invoke(tool, &args, &dir));
    Some(match reply {
        Ok(reply) => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            ExitCode::from(u8::try_from(reply.code).unwrap_or(1))
        }
        Err(error) => {
            eprintln!("{name} (simulated by runbook): {error}");
            ExitCode::from(125)
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(color);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The store directory: `--store`, `$RUNBOOK_STORE`, `$XDG_DATA_HOME/runbook`, `~/.local/share/runbook`.
fn store_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = match flag.or_else(|| non_empty("RUNBOOK_STORE")) {
        Some(dir) => dir,
        None => match non_empty("XDG_DATA_HOME") {
            Some(data) => data.join("runbook"),
            None => non_empty("HOME")
                .map(|home| home.join(".local/share/runbook"))
                .context("cannot find a store: set --store DIR, RUNBOOK_STORE or HOME")?,
        },
    };
    if dir.is_relative() {
        return Ok(std::env::current_dir().context("reading the working directory")?.join(dir));
    }
    Ok(dir)
}

async fn run(cli: Cli) -> Result<u8> {
    let registry = runbook_steps::registry();
    if let Command::Validate { paths } = &cli.command {
        return Ok(app::validate(&registry, paths, &Term::Local, &RunEnvironment::default()));
    }
    // What needs no store: generated texts, and the graph of a workflow file.
    match &cli.command {
        Command::Schema => return Ok(completions::schema(&Term::Local)),
        Command::Completions { shell } => return Ok(completions::completions(*shell, &Term::Local)),
        Command::Man { out } => return completions::man(out.as_deref(), &Term::Local),
        Command::Graph { target, format } if !graph::is_run_id(target, &cli.workflows, None) => {
            return graph::of_workflow(target, &cli.workflows, None, &registry, *format, &Term::Local);
        }
        _ => {}
    }
    let dir = store_dir(cli.store.clone())?;
    // The bench opens stores of its own beside the store, never the store: it runs while another process holds it.
    if let Command::Bench { json, quick } = &cli.command {
        return bench::run(&dir, *json, *quick, &Term::Local).await;
    }
    // The holder may be starting or exiting: retry for a while before giving up.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match SledStore::open(&dir) {
            Ok(store) => return hold(store, cli, registry).await,
            Err(StorageError::Locked { .. }) => {
                if let Some(code) = remote::forward(&dir).await? {
                    return Ok(code);
                }
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "store {} is locked by another process that does not answer on {}; if no `runbook` process is running, check for other programs using the store",
                        dir.display(),
                        dir.join(remote::SOCKET_NAME).display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("cannot open the store {}", dir.display())),
        }
    }
}

/// Runs the command as the store's holder, serving other processes meanwhile.
async fn hold(store: SledStore, cli: Cli, registry: runbook_engine::step::Registry) -> Result<u8> {
    let dir = store.path().to_path_buf();
    let crash_after = match std::env::var("RUNBOOK_CRASH_AFTER_EVENTS") {
        Ok(text) => Some(
            text.trim()
                .parse::<u64>()
                .map_err(|_| UsageError(format!("RUNBOOK_CRASH_AFTER_EVENTS is `{text}`, not a number of events")))?,
        ),
        Err(_) => None,
    };
    let journal = Journal::new(store, crash_after);
    let engine = Arc::new(Engine::new(journal, registry));
    let app = App::new(engine);
    let listener = remote::bind(&dir)?;
    let in_flight = Arc::new(remote::InFlight::default());
    let stop = CancellationToken::new();
    let server = tokio::spawn(remote::serve(Arc::clone(&app), listener, Arc::clone(&in_flight), stop.clone()));

    // The daemon handles SIGTERM/SIGINT itself: runs get a grace period before they are interrupted.
    if !matches!(cli.command, Command::Daemon(_)) {
        let shutdown = app.shutdown.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            shutdown.cancel();
        });
    }

    let workflows_dir = if cli.workflows.is_relative() {
        std::env::current_dir().context("reading the working directory")?.join(&cli.workflows)
    } else {
        cli.workflows.clone()
    };
    let environment = RunEnvironment { workflows_dir: Some(workflows_dir.clone()), ..RunEnvironment::default() };
    let caller = Caller { environment, workflows_dir, gone: CancellationToken::new() };
    let result = app.dispatch(cli.command, &Term::Local, &caller).await;
    // Runs handed over by other processes end before the store is let go.
    in_flight.wait_idle().await;
    stop.cancel();
    let _ = server.await;
    let _ = std::fs::remove_file(dir.join(remote::SOCKET_NAME));
    result
}

async fn wait_for_stop_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The message for an error: diagnostics as they are, anything else as its chain.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    if let Some(EngineError::Invalid(diagnostics)) = error.downcast_ref::<EngineError>() {
        return diagnostics.to_string();
    }
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
    }
    text
}

/// The exit code for an error: 2 for what the caller got wrong, 3 for a run that needs a decision, else 1.
pub(crate) fn error_exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<UsageError>().is_some() {
        return exit::INVALID;
    }
    match error.downcast_ref::<EngineError>() {
        Some(
            EngineError::Invalid(_)
            | EngineError::Inputs { .. }
            | EngineError::UnknownRun(_)
            | EngineError::UnknownStep { .. }
            | EngineError::MissingSecret { .. },
        ) => exit::INVALID,
        Some(EngineError::NotResumable { status: RunStatus::NeedsAttention, .. }) => exit::NEEDS_ATTENTION,
        _ => exit::FAILED,
    }
}
