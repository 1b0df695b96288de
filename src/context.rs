//! What every command works with: where it came from ([`Caller`]), where its output goes
//! ([`Term`]), the step kinds, and the open store ([`App`]), opened only when the command asks.
//!
//! A command started here asks [`Context::app`] for the store, which opens it, or, when another
//! process holds it, has that process run the whole command (the `Served` exit). A command
//! served over the store's socket gets the holder's store. How the store is opened and served is
//! `holder`'s business, behind [`OpenStore`], so that this module depends on no command.

use anyhow::{Result, anyhow};
use runbook_engine::executor::{Engine, RunControl, RunEnvironment};
use runbook_engine::ids::{RunId, StepId};
use runbook_engine::journal::Journal;
use runbook_engine::state::RunStatus;
use runbook_engine::step::Registry;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::exit::{Served, UsageError};
use crate::term::Term;

/// Everything a command needs that lives as long as the open store.
pub struct App {
    pub engine: Arc<Engine>,
    /// Cancelled on Ctrl-C/SIGTERM: every run executing here is interrupted.
    pub shutdown: CancellationToken,
}

impl App {
    pub fn new(engine: Arc<Engine>) -> Arc<App> {
        Arc::new(App { engine, shutdown: CancellationToken::new() })
    }

    pub fn journal(&self) -> &Arc<Journal> {
        self.engine.journal()
    }

    pub fn registry(&self) -> &Registry {
        self.engine.registry()
    }

    /// The control of a run this process executes.
    pub fn control_of(&self, run: RunId) -> Option<RunControl> {
        self.engine.control_of(run)
    }

    /// Whether this process is executing the run. The store admits one process,
    /// so a run nobody here executes is executed nowhere.
    pub fn is_executing(&self, run: RunId) -> bool {
        self.control_of(run).is_some()
    }

    /// A run's status as users see it: `running` in the log but executed by nobody is `interrupted`.
    pub fn visible_status(&self, run: RunId, logged: RunStatus) -> RunStatus {
        if logged == RunStatus::Running && !self.is_executing(run) { RunStatus::Interrupted } else { logged }
    }
}

/// Where a command came from: this process, or another process through the socket.
#[derive(Debug, Clone)]
pub struct Caller {
    pub environment: RunEnvironment,
    /// The caller's `--workflows` directory, absolute.
    pub workflows_dir: PathBuf,
    /// Cancelled when the caller goes away (Ctrl-C in the other process).
    pub gone: CancellationToken,
}

impl Caller {
    /// A command started in this process, with its `--workflows` directory.
    pub fn here(workflows: &Path) -> Caller {
        // A working directory that cannot be read leaves the directory relative: a workflow
        // looked up in it is then not found, and says where it was looked for.
        let workflows_dir = match std::env::current_dir() {
            Ok(cwd) if workflows.is_relative() => cwd.join(workflows),
            _ => workflows.to_path_buf(),
        };
        let environment = RunEnvironment { workflows_dir: Some(workflows_dir.clone()), ..RunEnvironment::default() };
        Caller { environment, workflows_dir, gone: CancellationToken::new() }
    }
}

/// Who stops the runs on Ctrl-C or SIGTERM in the process that opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignals {
    /// The first signal interrupts every run executing here (resumably).
    InterruptRuns,
    /// The command listens for them itself (`runbook daemon`: a grace period first).
    LeftToTheCommand,
}

/// What opening the store came to.
pub enum Reached {
    /// This process holds the store now.
    Opened(Arc<App>),
    /// Another process holds it and has run the command; its exit code.
    Served(u8),
}

/// A future returned through a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a command started in this process reaches the store.
pub trait OpenStore: Send + Sync {
    /// The store's directory, without opening it.
    fn dir(&self) -> Result<PathBuf>;

    /// Opens the store with these step kinds and serves it to other processes, or has the
    /// process that holds it run the command.
    fn open(&self, registry: Registry, signals: StopSignals) -> BoxFuture<'_, Result<Reached>>;
}

enum Store {
    /// Not opened yet: opened on the command's first ask.
    Closed(Arc<dyn OpenStore>),
    Open(Arc<App>),
}

/// One command's context.
pub struct Context {
    pub term: Term,
    pub caller: Caller,
    registry: Registry,
    store: Store,
}

impl Context {
    /// A command started in this process: the store is opened through `opener` when asked for.
    pub fn here(term: Term, caller: Caller, registry: Registry, opener: Arc<dyn OpenStore>) -> Context {
        Context { term, caller, registry, store: Store::Closed(opener) }
    }

    /// A command served to another process by the store's holder.
    pub fn served(app: Arc<App>, term: Term, caller: Caller) -> Context {
        Context { term, caller, registry: app.registry().clone(), store: Store::Open(app) }
    }

    /// The step kinds workflows may use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The store's directory, without opening the store.
    pub fn store_dir(&self) -> Result<PathBuf> {
        match &self.store {
            Store::Closed(opener) => opener.dir(),
            Store::Open(app) => Ok(app.journal().store().path().to_path_buf()),
        }
    }

    /// The open store; Ctrl-C and SIGTERM interrupt the runs it executes. A command asks for it
    /// before it does anything else: when another process holds the store, that process runs
    /// the whole command and this ends with the `Served` exit.
    pub async fn app(&mut self) -> Result<Arc<App>> {
        self.open(StopSignals::InterruptRuns).await
    }

    /// The open store, like [`Context::app`], for a command that handles Ctrl-C and SIGTERM itself.
    pub async fn app_handling_signals_itself(&mut self) -> Result<Arc<App>> {
        self.open(StopSignals::LeftToTheCommand).await
    }

    async fn open(&mut self, signals: StopSignals) -> Result<Arc<App>> {
        let opener = match &self.store {
            Store::Open(app) => return Ok(Arc::clone(app)),
            Store::Closed(opener) => Arc::clone(opener),
        };
        match opener.open(self.registry.clone(), signals).await? {
            Reached::Opened(app) => {
                self.store = Store::Open(Arc::clone(&app));
                Ok(app)
            }
            Reached::Served(code) => Err(anyhow!(Served(code))),
        }
    }
}

pub fn parse_run(text: &str) -> Result<RunId> {
    text.parse::<RunId>().map_err(|m| anyhow!(UsageError(m)))
}

pub fn parse_step(text: &str) -> Result<StepId> {
    StepId::new(text).map_err(|m| anyhow!(UsageError(m)))
}

/// A workflow argument: a path to a file, or a name in the workflows directory.
pub fn resolve_workflow(argument: &str, workflows_dir: &Path, cwd: Option<&Path>) -> Result<PathBuf> {
    let absolute = |p: &Path| match cwd {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    };
    let as_path = absolute(Path::new(argument));
    if as_path.is_file() {
        return Ok(as_path);
    }
    let dir = absolute(workflows_dir);
    for candidate in [dir.join(format!("{argument}.yaml")), dir.join(format!("{argument}.yml")), dir.join(argument)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(anyhow!(UsageError(format!(
        "no workflow `{argument}`: not a file, and not found as {}/{argument}.yaml (set the directory with --workflows DIR)",
        dir.display()
    ))))
}
