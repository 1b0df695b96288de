//! Opening the store for a command started in this process: find its directory, open it and
//! serve it to other `runbook` processes while the command runs, or, when another process holds
//! it, have that process run the command (`remote::forward`).

use anyhow::{Context as _, Result};
use runbook_engine::executor::Engine;
use runbook_engine::journal::Journal;
use runbook_engine::step::Registry;
use runbook_storage::{SledStore, StorageError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::context::{App, BoxFuture, OpenStore, Reached, StopSignals};
use crate::exit::UsageError;
use crate::remote;

/// How long to keep trying while another process holds the store but does not answer on its
/// socket yet: it may be starting, or exiting.
const REACH_DEADLINE: Duration = Duration::from_secs(15);

/// The store of a command started here, opened on the command's first ask.
pub struct Holder {
    /// `--store`, if given.
    flag: Option<PathBuf>,
    held: tokio::sync::Mutex<Option<Held>>,
}

/// What holding the store involves besides the store itself: the socket it is served on.
struct Held {
    dir: PathBuf,
    in_flight: Arc<remote::InFlight>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Holder {
    pub fn new(flag: Option<PathBuf>) -> Holder {
        Holder { flag, held: tokio::sync::Mutex::new(None) }
    }

    /// Lets the store go, once the commands other processes handed over have ended.
    pub async fn release(&self) {
        let Some(held) = self.held.lock().await.take() else { return };
        held.in_flight.wait_idle().await;
        held.stop.cancel();
        let _ = held.server.await;
        let _ = std::fs::remove_file(held.dir.join(remote::SOCKET_NAME));
    }

    async fn open_or_reach(&self, registry: Registry, signals: StopSignals) -> Result<Reached> {
        let dir = store_dir(self.flag.clone())?;
        let deadline = Instant::now() + REACH_DEADLINE;
        loop {
            match SledStore::open(&dir) {
                Ok(store) => return self.hold(store, registry, signals).await.map(Reached::Opened),
                Err(StorageError::Locked { .. }) => {
                    if let Some(code) = remote::forward(&dir).await? {
                        return Ok(Reached::Served(code));
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

    /// Holds the store: the engine on it, and the socket serving other processes meanwhile.
    async fn hold(&self, store: SledStore, registry: Registry, signals: StopSignals) -> Result<Arc<App>> {
        let dir = store.path().to_path_buf();
        let crash_after =
            match std::env::var("RUNBOOK_CRASH_AFTER_EVENTS") {
                Ok(text) => Some(text.trim().parse::<u64>().map_err(|_| {
                    UsageError(format!("RUNBOOK_CRASH_AFTER_EVENTS is `{text}`, not a number of events"))
                })?),
                Err(_) => None,
            };
        let journal = Journal::new(store, crash_after);
        let app = App::new(Arc::new(Engine::new(journal, registry)));
        let listener = remote::bind(&dir)?;
        let in_flight = Arc::new(remote::InFlight::default());
        let stop = CancellationToken::new();
        let server = tokio::spawn(remote::serve(Arc::clone(&app), listener, Arc::clone(&in_flight), stop.clone()));
        *self.held.lock().await = Some(Held { dir, in_flight, stop, server });

        if signals == StopSignals::InterruptRuns {
            let shutdown = app.shutdown.clone();
            tokio::spawn(async move {
                wait_for_stop_signal().await;
                shutdown.cancel();
            });
        }
        Ok(app)
    }
}

impl OpenStore for Holder {
    fn dir(&self) -> Result<PathBuf> {
        store_dir(self.flag.clone())
    }

    fn open(&self, registry: Registry, signals: StopSignals) -> BoxFuture<'_, Result<Reached>> {
        Box::pin(self.open_or_reach(registry, signals))
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
