//! The `run` kind: a bash script, run as `bash -euo pipefail -c SCRIPT` in its
//! own process group so that a timeout or cancel stops everything it started.
//!
//! Values interpolated into the script are shell-quoted by the engine's shell
//! templates; stdout and stderr are captured (capped) into artifacts; the
//! step's `outputs` templates see `stdout` (trimmed), `json` (stdout parsed,
//! when it is JSON) and `exit_code`.
//!
//! When the engine dies (SIGKILL, OOM), what a step started must not run on
//! unseen. Two layers, the second covering what the first cannot:
//! - one guard process per engine (a small bash script, `runbook-step-guard`,
//!   started with the first step, in a process group of its own) reads a pipe
//!   whose other end only the engine holds. The engine writes `+PGID` when a
//!   step's process group starts and `-PGID` once it is gone; when the engine
//!   dies, the read ends and the guard kills every group still listed,
//!   grandchildren included. One guard for all steps, rather than one per
//!   step, keeps a second bash off every step's start;
//! - right after spawning, the step records its process group in
//!   `STORE/artifacts/RUN/STEP.ATTEMPT.pgid`; a resumed run reaps an orphaned
//!   attempt's group ([`StepKind::reap_orphan`]) before anything runs again, if
//!   that group is still the step's (same leader start time, or members that
//!   carry the attempt's `RUNBOOK_*` variables).
//!
//! A process that leaves the group on purpose (`setsid`) escapes both.
//! There is deliberately no parent-death signal (`PR_SET_PDEATHSIG`): setting it
//! needs `pre_exec`, which makes the standard library fork the whole engine
//! instead of using `posix_spawn` (ten times the cost of a short step, and a
//! window in which the child holds the engine's open files, the store's lock
//! among them), and the guard already covers what it would.

use async_trait::async_trait;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult, attempt_artifacts_prefix};
use runbook_engine::yaml::{Node, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How long a step's processes get between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The guard: keeps the set of live step groups the engine announces on its stdin
/// (`+PGID`, `-PGID`); at end of input, which comes only when the engine dies or exits,
/// kills every group left in it. `read` and `kill` are builtins.
const GUARD_SCRIPT: &str = r#"declare -A groups
while read -r line; do
  case $line in
    +[0-9]*) groups[${line#+}]=1 ;;
    -[0-9]*) unset "groups[${line#-}]" ;;
  esac
done
for pgid in "${!groups[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null; done
exit 0"#;

/// The guard's `$0`, so that `ps` says what it is.
const GUARD_NAME: &str = "runbook-step-guard";

/// How long reaping an orphaned group waits for its processes to vanish.
const REAP_WAIT: Duration = Duration::from_secs(3);

/// The `run` step kind.
pub struct RunKind;

#[async_trait]
impl StepKind for RunKind {
    fn name(&self) -> &'static str {
        "run"
    }

    fn output_locals(&self) -> &'static [&'static str] {
        &["stdout", "json", "exit_code"]
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        vec!["exit_code".to_owned()]
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        match &config.value {
            Value::String(script) if !script.trim().is_empty() => {}
            Value::String(_) => check.error(config.position, "", "the command is empty"),
            other => check.error(
                config.position,
                "",
                format!(
                    "expected a command (a string, quoted if it starts with a YAML symbol), found {}",
                    other.kind_name()
                ),
            ),
        }
        config.to_json()
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let Some(template) = request.config.as_str() else {
            return StepResult::failed("the `run` configuration is not a string");
        };
        let script = match request.templates.render_shell(template, &request.context) {
            Ok(script) => script,
            Err(problem) => return StepResult::failed(format!("cannot render the command: {problem}")),
        };
        run_script(&script, &request).await
    }

    fn reap_orphan(&self, artifacts: &Path) {
        let record = group_record_path(artifacts);
        let Ok(text) = std::fs::read_to_string(&record) else { return };
        match GroupRecord::parse(&text) {
            Some(group) => group.reap(),
            None => {
                tracing::warn!(record = %record.display(), "cannot read the process group record of an orphaned step")
            }
        }
        let _ = std::fs::remove_file(&record);
    }
}

async fn run_script(script: &str, request: &StepRequest) -> StepResult {
    let mut command = Command::new("bash");
    if let Some(vars) = &request.inherited_env {
        command.env_clear().envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(dir) = &request.working_dir {
        command.current_dir(dir);
    }
    command
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUNBOOK_RUN_ID", request.run_id.to_string())
        .env("RUNBOOK_STEP", request.step.as_str())
        .env("RUNBOOK_ATTEMPT", request.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C at the terminal does not reach it, and
        // a timeout or cancel can signal the whole group, grandchildren included.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return StepResult::failed(format!("cannot start bash: {e}")),
    };
    let pid = child.id();
    let record = pid.and_then(|pid| record_group(pid, request));
    let guarded = pid.is_some_and(|pid| guard::announce('+', pid));
    let cap = request.artifacts.cap_bytes();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(capture(stdout, cap));
    let err_task = tokio::spawn(capture(stderr, cap));

    let cancelled = tokio::select! {
        status = child.wait() => Err(status),
        () = request.cancel.cancelled() => Ok(()),
    };
    let status = match cancelled {
        Err(status) => status,
        Ok(()) => {
            stop_group(pid, &mut child).await;
            child.wait().await
        }
    };
    // Grandchildren may still hold the pipes open; they share the group, so stop them too.
    if let Some(pid) = pid {
        let _ = signal_group(pid, rustix::process::Signal::KILL);
        if guarded {
            guard::announce('-', pid);
        }
    }
    if let Some(record) = record {
        // The group is gone: nothing for a resume to reap.
        let _ = std::fs::remove_file(record);
    }
    let (out, out_dropped) = out_task.await.unwrap_or_default();
    let (err, err_dropped) = err_task.await.unwrap_or_default();

    let mut artifacts = Vec::new();
    for (name, bytes, dropped) in [("stdout", &out, out_dropped), ("stderr", &err, err_dropped)] {
        match request.artifacts.write(name, bytes, dropped) {
            Ok(artifact) => artifacts.push(artifact),
            Err(e) => {
                return StepResult {
                    error: Some(format!("cannot keep the step's {name}: {e}")),
                    artifacts,
                    ..StepResult::default()
                };
            }
        }
    }
    if request.cancel.is_cancelled() {
        return StepResult { error: Some("stopped".to_owned()), artifacts, ..StepResult::default() };
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return StepResult {
                error: Some(format!("cannot wait for bash: {e}")),
                artifacts,
                ..StepResult::default()
            };
        }
    };
    let exit_code = status.code();
    if !status.success() {
        let how = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended abnormally".to_owned(),
        };
        let masked_err = request.artifacts.masker().mask_bytes(&err);
        let last_line =
            String::from_utf8_lossy(&masked_err).lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned);
        let error = match last_line {
            Some(line) => format!("{how}: {}", truncate(line.trim(), 300)),
            None => how,
        };
        let mut values = serde_json::Map::new();
        if let Some(code) = exit_code {
            values.insert("exit_code".to_owned(), serde_json::Value::from(code));
        }
        return StepResult { values, error: Some(error), exit_code, artifacts, notes: Vec::new() };
    }
    let masked_out = request.artifacts.masker().mask_bytes(&out);
    let stdout_text = String::from_utf8_lossy(&masked_out).trim().to_owned();
    let mut values = serde_json::Map::new();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&stdout_text) {
        values.insert("json".to_owned(), json);
    }
    values.insert("stdout".to_owned(), serde_json::Value::String(stdout_text));
    values.insert("exit_code".to_owned(), serde_json::Value::from(exit_code.unwrap_or(0)));
    StepResult { values, error: None, exit_code, artifacts, notes: Vec::new() }
}

/// The engine's one guard process (see the module doc).
mod guard {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Mutex, PoisonError};

    use super::{GUARD_NAME, GUARD_SCRIPT};

    struct Guard {
        child: Child,
        /// The engine's end of the guard's stdin; the guard acts when it closes.
        engine_end: std::io::PipeWriter,
    }

    static GUARD: Mutex<Option<Guard>> = Mutex::new(None);

    /// Tells the guard that step group `pgid` started (`+`) or is gone (`-`), starting
    /// the guard first if there is none (or it died). False, logged, if the guard cannot
    /// be reached: the group record and the reaping on resume still hold.
    pub(super) fn announce(op: char, pgid: u32) -> bool {
        let mut guard = GUARD.lock().unwrap_or_else(PoisonError::into_inner);
        let line = format!("{op}{pgid}\n");
        for _ in 0..2 {
            if guard.is_none() {
                match spawn() {
                    Ok(started) => *guard = Some(started),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start the step guard");
                        return false;
                    }
                }
            }
            let Some(current) = guard.as_mut() else { return false };
            match current.engine_end.write_all(line.as_bytes()) {
                Ok(()) => return true,
                Err(error) => {
                    // The guard died (someone killed it): reap it and start another.
                    tracing::warn!(%error, "the step guard is gone; starting another");
                    let _ = current.child.kill();
                    let _ = current.child.wait();
                    *guard = None;
                }
            }
        }
        false
    }

    fn spawn() -> std::io::Result<Guard> {
        let (guard_end, engine_end) = std::io::pipe()?;
        let child = Command::new("bash")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg(GUARD_NAME)
            // Nothing from the environment is needed (BASH_ENV would even run a file).
            .env_clear()
            .stdin(Stdio::from(guard_end))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Ctrl-C at the terminal must not take the guard away.
            .process_group(0)
            // A long-lived process holds no directory anyone may want to remove.
            .current_dir("/")
            .spawn()?;
        Ok(Guard { child, engine_end })
    }
}

/// The file recording an attempt's process group: `STORE/artifacts/RUN/STEP.ATTEMPT.pgid`.
fn group_record_path(artifacts: &Path) -> PathBuf {
    let mut path = artifacts.as_os_str().to_owned();
    path.push(".pgid");
    PathBuf::from(path)
}

/// Records the step's process group for a later resume to reap, and returns the file.
///
/// Not synced: it matters only if the engine dies while this machine keeps running; a
/// crash of the machine ends the group too.
fn record_group(pgid: u32, request: &StepRequest) -> Option<PathBuf> {
    let leader = ProcessInfo::read(pgid)?;
    let record = GroupRecord {
        pgid,
        leader_start: leader.start,
        boot_id: boot_id(),
        marker: AttemptMarker {
            run: request.run_id.to_string(),
            step: request.step.to_string(),
            attempt: request.attempt.to_string(),
        },
    };
    let prefix =
        request.history.store_dir().join(attempt_artifacts_prefix(request.run_id, &request.step, request.attempt));
    let path = group_record_path(&prefix);
    let written =
        path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, record.to_line()));
    match written {
        Ok(()) => Some(path),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot record the step's process group");
            None
        }
    }
}

/// The `RUNBOOK_*` variables every process of an attempt inherits from its bash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttemptMarker {
    run: String,
    step: String,
    attempt: String,
}

impl AttemptMarker {
    /// Whether a process's environment (`/proc/PID/environ`) carries this attempt's variables.
    fn matches_environ(&self, environ: &[u8]) -> bool {
        let wanted = [
            format!("RUNBOOK_RUN_ID={}", self.run),
            format!("RUNBOOK_STEP={}", self.step),
            format!("RUNBOOK_ATTEMPT={}", self.attempt),
        ];
        wanted.iter().all(|entry| environ.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
    }
}

/// What a step recorded of its process group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRecord {
    pgid: u32,
    /// The leader's (bash's) start time, in clock ticks since boot (`/proc/PID/stat` field 22).
    leader_start: u64,
    /// Start times count from boot: after a reboot they mean nothing (nor does the group).
    boot_id: String,
    marker: AttemptMarker,
}

impl GroupRecord {
    fn to_line(&self) -> String {
        format!(
            "pgid={} start={} boot={} run={} step={} attempt={}\n",
            self.pgid, self.leader_start, self.boot_id, self.marker.run, self.marker.step, self.marker.attempt
        )
    }

    fn parse(text: &str) -> Option<GroupRecord> {
        let mut fields = std::collections::HashMap::new();
        for pair in text.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            fields.insert(key, value);
        }
        Some(GroupRecord {
            pgid: fields.get("pgid")?.parse().ok()?,
            leader_start: fields.get("start")?.parse().ok()?,
            boot_id: (*fields.get("boot")?).to_owned(),
            marker: AttemptMarker {
                run: (*fields.get("run")?).to_owned(),
                step: (*fields.get("step")?).to_owned(),
                attempt: (*fields.get("attempt")?).to_owned(),
            },
        })
    }

    /// Kills the group if it still exists and is still the step's, and waits for it to go.
    fn reap(&self) {
        if self.boot_id != boot_id() {
            return;
        }
        let members = group_members(self.pgid);
        if !members.iter().any(|p| !p.zombie) || !self.is_ours(&members) {
            return;
        }
        tracing::info!(pgid = self.pgid, step = %self.marker.step, "stopping what an orphaned step left running");
        let _ = signal_group(self.pgid, rustix::process::Signal::KILL);
        let deadline = Instant::now() + REAP_WAIT;
        while group_members(self.pgid).iter().any(|p| !p.zombie) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The group is the step's when its leader is the process recorded (same start time; a
    /// zombie counts, as bash stays one when nobody reaps it), or, with the leader gone, when
    /// a live member carries the attempt's variables and started after the leader. A pgid is
    /// not reused while any process of the group lives, so a leader with another start time
    /// means the step's group is gone.
    fn is_ours(&self, members: &[ProcessInfo]) -> bool {
        if let Some(leader) = members.iter().find(|p| p.pid == self.pgid) {
            return leader.start == self.leader_start;
        }
        members.iter().any(|p| {
            !p.zombie
                && p.start >= self.leader_start
                && std::fs::read(format!("/proc/{}/environ", p.pid)).is_ok_and(|env| self.marker.matches_environ(&env))
        })
    }
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessInfo {
    pid: u32,
    pgid: u32,
    start: u64,
    zombie: bool,
}

impl ProcessInfo {
    fn read(pid: u32) -> Option<ProcessInfo> {
        ProcessInfo::parse(pid, &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Fields after the command name, which is in parentheses and may hold spaces: state (3),
    /// ppid (4), pgrp (5), ..., starttime (22).
    fn parse(pid: u32, stat: &str) -> Option<ProcessInfo> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcessInfo {
            pid,
            pgid: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
            zombie: *fields.first()? == "Z",
        })
    }
}

/// Every process (zombies included) whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(ProcessInfo::read)
        .filter(|p| p.pgid == pgid)
        .collect()
}

/// This boot's id; empty where the kernel does not say.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|id| id.trim().to_owned()).unwrap_or_default()
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}…")
}

/// SIGTERM to the group, then SIGKILL after the grace period if bash is still there.
async fn stop_group(pid: Option<u32>, child: &mut tokio::process::Child) {
    let Some(pid) = pid else { return };
    let _ = signal_group(pid, rustix::process::Signal::TERM);
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        let _ = signal_group(pid, rustix::process::Signal::KILL);
    }
}

fn signal_group(pid: u32, signal: rustix::process::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw);
    match pid {
        Some(pid) => rustix::process::kill_process_group(pid, signal).map_err(std::io::Error::from),
        None => Ok(()),
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes and counting the rest.
async fn capture<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> (Vec<u8>, u64) {
    let Some(mut stream) = stream else { return (Vec::new(), 0) };
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                let keep = n.min(room);
                kept.extend_from_slice(&buffer[..keep]);
                dropped += (n - keep) as u64;
            }
        }
    }
    (kept, dropped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    fn marker() -> AttemptMarker {
        AttemptMarker { run: "7".to_owned(), step: "probe".to_owned(), attempt: "2".to_owned() }
    }

    #[test]
    fn a_group_record_round_trips_and_rejects_garbage() {
        let record = GroupRecord { pgid: 4242, leader_start: 99, boot_id: "b-1".to_owned(), marker: marker() };
        assert_eq!(GroupRecord::parse(&record.to_line()), Some(record));
        assert_eq!(GroupRecord::parse("pgid=1 start=x boot=b run=1 step=s attempt=1"), None);
        assert_eq!(GroupRecord::parse("pgid=1"), None);
        assert_eq!(GroupRecord::parse(""), None);
    }

    #[test]
    fn stat_lines_parse_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "123 (a (b) c) S 1 456 456 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100";
        let info = ProcessInfo::parse(123, stat).unwrap();
        assert_eq!(info, ProcessInfo { pid: 123, pgid: 456, start: 98765, zombie: false });
        let zombie = "9 (sleep) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert!(ProcessInfo::parse(9, zombie).unwrap().zombie);
        assert_eq!(ProcessInfo::parse(9, "9 (sleep) S 1"), None);
    }

    #[test]
    fn the_marker_matches_only_whole_variables() {
        let environ = b"PATH=/bin\0RUNBOOK_RUN_ID=7\0RUNBOOK_STEP=probe\0RUNBOOK_ATTEMPT=2\0";
        assert!(marker().matches_environ(environ));
        assert!(!marker().matches_environ(b"RUNBOOK_RUN_ID=77\0RUNBOOK_STEP=probe\0RUNBOOK_ATTEMPT=2\0"));
        assert!(!marker().matches_environ(b"RUNBOOK_RUN_ID=7\0RUNBOOK_STEP=probe\0"));
    }

    #[track_caller]
    fn check_ours(members: &[(u32, u64, bool)], expected: bool) {
        let record = GroupRecord { pgid: 100, leader_start: 50, boot_id: String::new(), marker: marker() };
        let members: Vec<ProcessInfo> =
            members.iter().map(|&(pid, start, zombie)| ProcessInfo { pid, pgid: 100, start, zombie }).collect();
        assert_eq!(record.is_ours(&members), expected, "{members:?}");
    }

    #[test]
    fn a_group_is_ours_only_with_its_recorded_leader() {
        check_ours(&[(100, 50, false), (101, 60, false)], true);
        // bash left as a zombie nobody reaps still names the group.
        check_ours(&[(100, 50, true), (101, 60, false)], true);
        // Another process took the pgid after the step's group ended.
        check_ours(&[(100, 51, false)], false);
        // Without the leader, members must carry the attempt's variables: these pids do not exist.
        check_ours(&[(u32::MAX - 1, 60, false)], false);
    }

    /// The pids of live processes in a group.
    fn live(pgid: u32) -> Vec<u32> {
        group_members(pgid).into_iter().filter(|p| !p.zombie).map(|p| p.pid).collect()
    }

    #[test]
    fn reaping_kills_what_a_dead_leader_left_in_its_group() {
        let mut bash = std::process::Command::new("bash")
            .arg("-c")
            .arg("sleep 60 & sleep 60")
            .env("RUNBOOK_RUN_ID", "7")
            .env("RUNBOOK_STEP", "probe")
            .env("RUNBOOK_ATTEMPT", "2")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = bash.id();
        let leader = ProcessInfo::read(pgid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while live(pgid).len() < 3 {
            assert!(Instant::now() < deadline, "the sleeps never started: {:?}", live(pgid));
            std::thread::sleep(Duration::from_millis(10));
        }
        // The leader dies as bash does when the engine dies; its children stay behind.
        bash.kill().unwrap();
        bash.wait().unwrap();
        assert_eq!(live(pgid).len(), 2, "the sleeps outlive bash");

        let other = GroupRecord {
            pgid,
            leader_start: leader.start,
            boot_id: boot_id(),
            marker: AttemptMarker { attempt: "3".to_owned(), ..marker() },
        };
        other.reap();
        assert_eq!(live(pgid).len(), 2, "another attempt's record must not kill this group");

        let record = GroupRecord { pgid, leader_start: leader.start, boot_id: boot_id(), marker: marker() };
        record.reap();
        assert_eq!(live(pgid), Vec::<u32>::new(), "reaped");
    }
}
