//! `runbook`: run incident runbooks as durable, resumable step graphs.
//!
//! Parse flags, set up tracing, run the command through the one table from command to handler
//! (`commands::dispatch`), which opens the store only for commands that ask for it (or has the
//! process that holds it run them), and map the outcome to the contract's exit codes.

mod commands;
mod context;
mod exit;
mod flags;
mod holder;
mod progress;
mod remote;
mod schema;
mod term;

use clap::Parser as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::context::{Caller, Context};
use crate::flags::{Cli, LogFormat};
use crate::holder::Holder;
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
        let holder = Arc::new(Holder::new(cli.store));
        let caller = Caller::here(&cli.workflows);
        let mut context = Context::here(Term::Local, caller, runbook_steps::registry(), holder.clone());
        let outcome = commands::dispatch(cli.command, &mut context).await;
        // Commands other processes handed over end before the store is let go.
        holder.release().await;
        exit::code(outcome, &Term::Local)
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
