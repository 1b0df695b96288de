//! Sharing the store between processes. sled admits one process per store,
//! so the process that holds it serves it on `STORE/runbook.sock` (mode
//! 0600) and every other `runbook` command talks to that process instead.
//!
//! Protocol: the client sends one JSON line, a [`Request`] with its argv,
//! working directory and environment; the server runs the command as if it
//! had been started there and answers with [`Frame`] lines (stdout, stderr,
//! then the exit code). A client that goes away interrupts what it started.
//! The server runs a command through the same table as `main`, `commands::dispatch`.

use anyhow::{Context as _, Result, anyhow};
use clap::Parser as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::context::{App, Caller, Context};
use crate::exit;
use crate::flags::Cli;
use crate::term::{Frame, Term};
use runbook_engine::executor::RunEnvironment;

/// The socket's file name inside the store directory.
pub const SOCKET_NAME: &str = "runbook.sock";

/// What a client asks the store's holder to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The command line, program name first.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// Connections being served, so the holder does not exit under them.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn enter(self: &Arc<InFlight>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    /// Waits until no connection is being served.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Binds the store's socket, replacing a stale one left by a holder that died.
pub fn bind(store_dir: &Path) -> Result<UnixListener> {
    let path = store_dir.join(SOCKET_NAME);
    // We hold the store's lock, so no live process serves this socket.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot serve the store on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
    Ok(listener)
}

/// Serves connections until `stop` is cancelled.
pub async fn serve(app: Arc<App>, listener: UnixListener, in_flight: Arc<InFlight>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let guard = in_flight.enter();
                let app = Arc::clone(&app);
                tokio::spawn(async move {
                    if let Err(error) = serve_one(app, stream).await {
                        tracing::warn!(%error, "serving a client failed");
                    }
                    drop(guard);
                });
            }
            Err(error) => tracing::warn!(%error, "accepting a client failed"),
        }
    }
}

async fn serve_one(app: Arc<App>, stream: UnixStream) -> Result<()> {
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let request: Request = serde_json::from_str(&line).context("reading a client's request")?;

    // The client going away (Ctrl-C there) shows as the end of its half of the socket.
    let gone = CancellationToken::new();
    let gone_signal = gone.clone();
    tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut rest).await;
        gone_signal.cancel();
    });

    let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let Ok(mut bytes) = serde_json::to_vec(&frame) else { continue };
            bytes.push(b'\n');
            if write_half.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let term = Term::Remote(tx.clone());
    let code = match Cli::try_parse_from(&request.argv) {
        Ok(cli) => {
            let workflows_dir =
                if cli.workflows.is_relative() { request.cwd.join(&cli.workflows) } else { cli.workflows.clone() };
            let caller = Caller {
                environment: RunEnvironment {
                    vars: Some(Arc::new(request.env)),
                    dir: Some(request.cwd),
                    workflows_dir: Some(workflows_dir.clone()),
                },
                workflows_dir,
                gone,
            };
            let mut context = Context::served(Arc::clone(&app), term.clone(), caller);
            let outcome = commands::dispatch(cli.command, &mut context).await;
            exit::code(outcome, &term)
        }
        Err(error) => {
            term.err(error.to_string());
            exit::INVALID
        }
    };
    let _ = tx.send(Frame::Exit(code));
    drop(term);
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Runs this command in the process that holds the store; `None` when no process serves it.
pub async fn forward(store_dir: &Path) -> Result<Option<u8>> {
    let path = store_dir.join(SOCKET_NAME);
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        // No holder, or one that just died (a reset): the caller opens the store or tries again.
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(error) => {
            return Err(anyhow!(error).context(format!("cannot reach the store's holder on {}", path.display())));
        }
    };
    let request = Request {
        argv: std::env::args().collect(),
        cwd: std::env::current_dir().context("reading the working directory")?,
        env: std::env::vars().collect(),
    };
    let (read_half, mut write_half) = stream.into_split();
    let mut bytes = serde_json::to_vec(&request)?;
    bytes.push(b'\n');
    write_half.write_all(&bytes).await?;
    let mut lines = BufReader::new(read_half).lines();
    let local = Term::Local;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = &mut interrupted => {
                // Closing our half tells the holder to interrupt what we started.
                drop(write_half);
                return Ok(Some(exit::INTERRUPTED));
            }
        };
        let Some(line) = line else {
            return Err(anyhow!("the store's holder closed the connection before the command finished"));
        };
        match serde_json::from_str::<Frame>(&line)? {
            Frame::Out(text) => local.out_bytes(text.as_bytes()),
            Frame::Err(text) => {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                local.err(text);
            }
            Frame::Exit(code) => return Ok(Some(code)),
        }
    }
}
