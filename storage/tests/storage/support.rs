//! Test support: temporary stores, and this test binary re-run as a child process.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use runbook_storage::SledStore;

/// Set in a child process to the role it plays; see [`child_role`].
const ROLE_VARIABLE: &str = "RUNBOOK_STORAGE_TEST_ROLE";
/// Set in a child process to the store directory it works on.
const DIR_VARIABLE: &str = "RUNBOOK_STORAGE_TEST_DIR";

/// A fresh temporary directory for a store.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("runbook-storage-").tempdir().unwrap()
}

/// Opens (or reopens) the store in `dir`.
pub fn open(dir: &Path) -> SledStore {
    SledStore::open(dir).unwrap()
}

/// In a child started by [`spawn_child`]: the role to play and the store
/// directory. `None` in the test process cargo started.
pub fn child_role() -> Option<(String, std::path::PathBuf)> {
    let role = std::env::var(ROLE_VARIABLE).ok()?;
    let dir = std::env::var_os(DIR_VARIABLE)?;
    Some((role, dir.into()))
}

/// A child process: this test binary running only `test_name`, which sees
/// `role` through [`child_role`]. Its stdout is piped for the parent to read.
pub struct ChildProcess {
    pub child: Child,
    pub lines: Lines<BufReader<ChildStdout>>,
}

pub fn spawn_child(test_name: &str, role: &str, dir: &Path) -> ChildProcess {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VARIABLE, role)
        .env(DIR_VARIABLE, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    ChildProcess { child, lines }
}

/// Starts what a child prints for the parent. The test harness prints the
/// test's name without a newline before the test runs, so the first message
/// shares its line: messages are found by this marker, not at line starts.
pub const MESSAGE_MARKER: &str = "@@ ";

/// The message on a line of a child's stdout, if there is one.
pub fn message(line: &str) -> Option<&str> {
    line.split_once(MESSAGE_MARKER).map(|(_, message)| message)
}

impl ChildProcess {
    /// Reads stdout until the message `wanted`; panics at end of output.
    pub fn wait_for_message(&mut self, wanted: &str) {
        for line in &mut self.lines {
            if message(&line.unwrap()) == Some(wanted) {
                return;
            }
        }
        panic!("child ended without printing {wanted:?}");
    }
}

impl Drop for ChildProcess {
    /// A failing parent must not leave its child running (or holding a store).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
