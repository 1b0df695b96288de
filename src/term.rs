//! Where a command's output goes: this process's stdout/stderr, or, for a
//! command served to another `runbook` process, frames on its socket.

use serde::{Deserialize, Serialize};
use std::io::Write;
use tokio::sync::mpsc;

/// One piece of a served command's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    Out(String),
    Err(String),
    Exit(u8),
}

/// A command's two output streams.
#[derive(Debug, Clone)]
pub enum Term {
    Local,
    Remote(mpsc::UnboundedSender<Frame>),
}

impl Term {
    /// Writes a line to standard output.
    pub fn out(&self, line: impl AsRef<str>) {
        match self {
            // A closed stdout (`runbook runs | head`) is not an error worth a panic.
            Term::Local => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}", line.as_ref());
                let _ = stdout.flush();
            }
            Term::Remote(tx) => {
                let _ = tx.send(Frame::Out(format!("{}\n", line.as_ref())));
            }
        }
    }

    /// Writes raw bytes (a step's captured output) to standard output.
    pub fn out_bytes(&self, bytes: &[u8]) {
        match self {
            Term::Local => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(bytes);
                let _ = stdout.flush();
            }
            Term::Remote(tx) => {
                let _ = tx.send(Frame::Out(String::from_utf8_lossy(bytes).into_owned()));
            }
        }
    }

    /// Writes a line to standard error.
    pub fn err(&self, line: impl AsRef<str>) {
        match self {
            Term::Local => {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{}", line.as_ref());
            }
            Term::Remote(tx) => {
                let _ = tx.send(Frame::Err(format!("{}\n", line.as_ref())));
            }
        }
    }
}
