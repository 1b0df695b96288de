//! What `runbook daemon` costs while nothing is due: 1,000 workflows with one idle schedule each.
//!
//! `cargo bench --bench idle_schedules` writes the workflows into a temporary directory, starts
//! the release `runbook daemon` on a fresh store there, lets the start settle, then samples the
//! daemon's resident memory and CPU time from /proc before and after an idle window of
//! `RUNBOOK_DAEMON_BENCH_SECS` seconds (60 by default), prints one line of figures, and stops
//! the daemon with SIGTERM. docs/operations.md quotes the figures.
//!
//! Linux only (/proc). Not a test: `cargo test` does not run it, and a build of it in test mode
//! (`cargo test --benches`) exits at once, since only `cargo bench` passes `--bench`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many workflows, one idle schedule each.
const WORKFLOWS: usize = 1_000;
/// Once a year: nothing fires during the window.
const IDLE_CRON: &str = "0 0 1 1 *";
/// How long the daemon may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// Left to the start (first schedule states written, threads parked) before the window opens.
const SETTLE: Duration = Duration::from_secs(2);
/// How long the daemon may take to stop after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

type BenchResult<T> = Result<T, Box<dyn Error>>;

fn main() -> BenchResult<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("idle_schedules: a benchmark; run it with `cargo bench --bench idle_schedules`");
        return Ok(());
    }
    let seconds: u64 = match std::env::var("RUNBOOK_DAEMON_BENCH_SECS") {
        Ok(text) => text.parse().map_err(|e| format!("RUNBOOK_DAEMON_BENCH_SECS={text}: {e}"))?,
        Err(_) => 60,
    };
    let dir = tempfile::tempdir()?;
    write_workflows(&dir.path().join("wf"))?;

    let started = Instant::now();
    let mut daemon = Daemon::start(dir.path())?;
    daemon.wait_for_ready(READY_WITHIN)?;
    let ready_after = started.elapsed();
    let pid = daemon.child.id();
    // Let the start settle, then measure the idle time only.
    std::thread::sleep(SETTLE);
    let (rss_before, cpu_before) = sample(pid)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let (rss_after, cpu_after) = sample(pid)?;
    daemon.stop()?;

    let cpu_per_minute = (cpu_after - cpu_before) * 60.0 / seconds.max(1) as f64;
    println!(
        "1000 idle schedules: ready after {:.2}s; RSS {:.1} MiB -> {:.1} MiB; CPU {:.3} s per minute idle ({:.3}%)",
        ready_after.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        cpu_per_minute,
        cpu_per_minute / 60.0 * 100.0
    );
    Ok(())
}

/// `wf/idle-0000.yaml` to `wf/idle-0999.yaml`, each a one-step workflow with one idle schedule.
fn write_workflows(dir: &Path) -> BenchResult<()> {
    std::fs::create_dir_all(dir)?;
    for n in 0..WORKFLOWS {
        let text = format!("name: idle-{n:04}\nschedule: \"{IDLE_CRON}\"\nsteps:\n  - id: a\n    run: echo\n");
        std::fs::write(dir.join(format!("idle-{n:04}.yaml")), text)?;
    }
    Ok(())
}

/// The `runbook daemon` under measurement; killed if the benchmark ends without stopping it.
struct Daemon {
    child: Child,
    /// Its stderr, where it says when it is ready.
    log: PathBuf,
}

impl Daemon {
    /// Starts `runbook --store STORE --workflows wf daemon` in `dir`, with stderr to `dir/daemon.log`.
    fn start(dir: &Path) -> BenchResult<Daemon> {
        let log = dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .arg("--store")
            .arg(dir.join("store"))
            .args(["--workflows", "wf", "daemon"])
            .current_dir(dir)
            .env_remove("RUNBOOK_STORE")
            .env_remove("RUNBOOK_CRASH_AFTER_EVENTS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_runbook")))?;
        Ok(Daemon { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon logs `ready:`; an error if it exits or takes longer than `within`.
    fn wait_for_ready(&mut self, within: Duration) -> BenchResult<()> {
        let deadline = Instant::now() + within;
        while !self.log().contains("ready:") {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("the daemon exited ({status}) before it was ready:\n{}", self.log()).into());
            }
            if Instant::now() >= deadline {
                return Err(format!("the daemon was not ready within {within:?}:\n{}", self.log()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM, and waits for the daemon to exit.
    fn stop(&mut self) -> BenchResult<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                return Err(format!("the daemon exited with {status}:\n{}", self.log()).into());
            }
            if Instant::now() >= deadline {
                return Err(format!("the daemon did not stop within {STOP_WITHIN:?} of SIGTERM").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The resident set (KiB) and the CPU time (user + system, seconds) of a process, from /proc.
fn sample(pid: u32) -> BenchResult<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in /proc/PID/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or("short /proc/PID/stat");
    // /proc counts in USER_HZ, which Linux fixes at 100 ticks a second for user space.
    Ok((rss, (ticks(11)? + ticks(12)?) as f64 / 100.0))
}
