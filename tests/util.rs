//! Helpers: run the `runbook` binary on a temporary store and look at what it did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary directory with a store and room for workflow files and side-effect counters.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("temporary directory") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    /// Writes a file in the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `runbook` command on this sandbox's store, run in the sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .arg("--store")
            .arg(self.store())
            .args(args)
            .current_dir(self.path())
            .env_remove("RUNBOOK_STORE")
            .env_remove("RUNBOOK_CRASH_AFTER_EVENTS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Starts `runbook ARGS` in the background, its output discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn runbook")
    }

    /// Runs `runbook ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run runbook");
        Run::from(output)
    }

    /// Lines in a side-effect counter file (0 when it does not exist).
    pub fn count(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path().join(name)).map(|s| s.lines().count()).unwrap_or(0)
    }

    /// `runbook status RUN --json`, parsed.
    pub fn status(&self, run: u64) -> serde_json::Value {
        let result = self.run(&["status", &run.to_string(), "--json"]);
        assert_eq!(result.code, 0, "status failed: {}", result.stderr);
        serde_json::from_str(&result.stdout).expect("status --json is JSON")
    }

    /// `runbook events RUN`, parsed.
    pub fn events(&self, run: u64) -> Vec<serde_json::Value> {
        let result = self.run(&["events", &run.to_string()]);
        assert_eq!(result.code, 0, "events failed: {}", result.stderr);
        result.stdout.lines().map(|l| serde_json::from_str(l).expect("each event line is JSON")).collect()
    }
}

/// SIGKILLs a `runbook` process (`Child::kill` sends SIGKILL) and reaps it.
pub fn sigkill(child: &mut std::process::Child) {
    // Unless it has exited and been reaped already (its pid may be another's now).
    let _ = child.kill();
    let _ = child.wait();
}

/// What a finished `runbook` process did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        use std::os::unix::process::ExitStatusExt as _;
        let code = output.status.code().unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The run id announced on the first line (`run N: ...`).
    pub fn run_id(&self) -> u64 {
        let line = self.stdout.lines().next().unwrap_or_default();
        line.strip_prefix("run ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no run id in output:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// The status of each step in `status --json`, as `id=status` pairs.
pub fn step_statuses(status: &serde_json::Value) -> Vec<String> {
    status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| format!("{}={}", s["id"].as_str().unwrap_or("?"), s["status"].as_str().unwrap_or("?")))
        .collect()
}

/// Events of one type, in order.
pub fn of_type<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}
