//! `runbook bench`: measures the engine on the disk of the store, against the floor of that disk.
//!
//! Every figure comes from the real engine in this process (`Engine::execute`
//! over a `Journal` on a `SledStore` with group commit and `fdatasync`), in a
//! fresh directory beside the store, so that the disk is the store's disk.
//! The store itself is never opened: the bench works while another process
//! holds it. Each phase gets a store of its own, so that its bytes per event
//! are its own; the directory is removed at the end.
//!
//! The floor is the median latency of appending 200 bytes to a file and
//! `fdatasync`ing it: the physical limit of one durable step on this disk.
//! The other figures are printed with their ratio to it, because on a noisy
//! machine the ratios are what stays put. docs/performance.md says what
//! bounds each figure.

use anyhow::{Context as _, Result};
use chrono::Utc;
use runbook_engine::event::{EventKind, Outputs};
use runbook_engine::executor::{Engine, Observed, RunControl, RunEnvironment};
use runbook_engine::ids::{Attempt, RunId, StepId};
use runbook_engine::journal::Journal;
use runbook_engine::load::{LoadedWorkflow, load_str};
use runbook_engine::state::RunStatus;
use runbook_storage::SledStore;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::exit;

/// How much work each phase does.
#[derive(Debug, Clone, Copy)]
struct Counts {
    fsync_samples: usize,
    sequential_steps: usize,
    concurrent_runs: usize,
    concurrent_steps_per_run: usize,
    shell_steps: usize,
    replay_events: u64,
    resume_events: u64,
}

impl Counts {
    /// The figures of the issue: what `runbook bench` measures.
    const FULL: Counts = Counts {
        fsync_samples: 1_000,
        sequential_steps: 1_000,
        concurrent_runs: 200,
        concurrent_steps_per_run: 10,
        shell_steps: 200,
        replay_events: 100_000,
        resume_events: 10_000,
    };

    /// `--quick`: small enough for CI on a debug build, large enough to run every code path.
    const QUICK: Counts = Counts {
        fsync_samples: 50,
        sequential_steps: 50,
        concurrent_runs: 20,
        concurrent_steps_per_run: 5,
        shell_steps: 10,
        replay_events: 2_000,
        resume_events: 1_000,
    };
}

/// What `runbook bench --json` prints: one object, every value a number.
///
/// Peak RSS and bytes per event are per phase, one key each, so that the
/// object stays flat.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Median of append + `fdatasync` of a 200-byte record, ms.
    pub fsync_floor_ms: f64,
    /// One run of chained `set` steps: wall time / steps, ms.
    pub sequential_ms_per_step: f64,
    /// Many runs of `set` steps started together: steps / wall time.
    pub concurrent_steps_per_s: f64,
    /// One run of chained `run: "true"` steps: wall time / steps, ms.
    pub shell_ms_per_step: f64,
    /// The same bash process started bare, side by side with the shell phase: ms each.
    pub bash_spawn_ms: f64,
    /// Events folded per second by `Journal::load` of one long run.
    pub replay_events_per_s: f64,
    /// From `resume` of an interrupted run to its next `step_started` being durable, ms.
    pub resume_ms: f64,
    pub peak_rss_mib_sequential: f64,
    pub peak_rss_mib_concurrent: f64,
    pub peak_rss_mib_shell: f64,
    pub peak_rss_mib_replay: f64,
    /// Size of the phase's store directory after its last flush / events in it.
    pub bytes_per_event_sequential: f64,
    pub bytes_per_event_concurrent: f64,
    pub bytes_per_event_shell: f64,
    pub bytes_per_event_replay: f64,
}

/// `runbook bench [--json] [--quick]`: runs every phase in a directory beside the store and
/// prints the figures.
pub async fn bench(context: &mut Context, json: bool, quick: bool) -> Result<u8> {
    let store_dir = context.store_dir()?;
    let term = &context.term;
    let counts = if quick { Counts::QUICK } else { Counts::FULL };
    let scratch = Scratch::create(&store_dir)?;
    if !json {
        term.out(format!(
            "runbook bench{}: {} CPUs, scratch directory {} (removed at the end)",
            if quick { " --quick" } else { "" },
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            scratch.path.display()
        ));
    }
    // Ctrl-C stops the bench, and its directory still goes.
    let measured = tokio::select! {
        figures = measure(&scratch.path, counts) => Some(figures),
        _ = tokio::signal::ctrl_c() => None,
    };
    drop(scratch);
    let Some(figures) = measured else { return Ok(exit::INTERRUPTED) };
    let figures = figures?;
    if json {
        term.out(serde_json::to_string_pretty(&figures)?);
    } else {
        term.out(report(&figures));
    }
    Ok(exit::OK)
}

async fn measure(dir: &Path, counts: Counts) -> Result<Figures> {
    // The floor is sampled before each phase, so that a disk busy with other work for a while
    // weighs on the floor as on the figures it is the reference of.
    let mut floor = FsyncFloor::new(dir)?;
    let samples_per_round = counts.fsync_samples.div_ceil(4);

    floor.sample(samples_per_round)?;
    let peak = PeakRss::start();
    let (sequential_ms_per_step, bytes_per_event_sequential) =
        sequential(&dir.join("sequential"), counts.sequential_steps).await?;
    let peak_rss_mib_sequential = peak.finish();

    floor.sample(samples_per_round)?;
    let peak = PeakRss::start();
    let (concurrent_steps_per_s, bytes_per_event_concurrent) =
        concurrent(&dir.join("concurrent"), counts.concurrent_runs, counts.concurrent_steps_per_run).await?;
    let peak_rss_mib_concurrent = peak.finish();

    floor.sample(samples_per_round)?;
    let peak = PeakRss::start();
    let (shell_ms_per_step, bash_spawn_ms, bytes_per_event_shell) =
        shell(&dir.join("shell"), counts.shell_steps).await?;
    let peak_rss_mib_shell = peak.finish();

    floor.sample(samples_per_round)?;
    let Replay { replay_events_per_s, resume_ms, bytes_per_event_replay, peak_rss_mib_replay } =
        replay(&dir.join("replay"), counts.replay_events, counts.resume_events).await?;
    let fsync_floor_ms = floor.median_ms();

    Ok(Figures {
        fsync_floor_ms,
        sequential_ms_per_step,
        concurrent_steps_per_s,
        shell_ms_per_step,
        bash_spawn_ms,
        replay_events_per_s,
        resume_ms,
        peak_rss_mib_sequential,
        peak_rss_mib_concurrent,
        peak_rss_mib_shell,
        peak_rss_mib_replay,
        bytes_per_event_sequential,
        bytes_per_event_concurrent,
        bytes_per_event_shell,
        bytes_per_event_replay,
    })
}

/// The text report: each figure, its ratio to the floor, and its target.
fn report(f: &Figures) -> String {
    let floor = f.fsync_floor_ms;
    let mut text = String::new();
    let mut line = |name: &str, value: String, ratio: String, target: &str| {
        let _ = writeln!(text, "{name:<28} {value:>14}  {ratio:<26} {target}");
    };
    line("fsync_floor_ms", format!("{floor:.3}"), "the floor".to_owned(), "");
    line(
        "sequential_ms_per_step",
        format!("{:.3}", f.sequential_ms_per_step),
        format!("{:.2} × floor", f.sequential_ms_per_step / floor),
        "target ≤ 1.5 × floor",
    );
    line(
        "concurrent_steps_per_s",
        format!("{:.0}", f.concurrent_steps_per_s),
        format!("{:.1} steps per floor", f.concurrent_steps_per_s * floor / 1000.0),
        "target ≥ 10000",
    );
    let overhead = f.shell_ms_per_step - f.bash_spawn_ms;
    line(
        "shell_ms_per_step",
        format!("{:.3}", f.shell_ms_per_step),
        format!("{overhead:.3} ms over bash = {:.2} × floor", overhead / floor),
        "target ≤ 1 ms over bash",
    );
    line("bash_spawn_ms", format!("{:.3}", f.bash_spawn_ms), format!("{:.2} × floor", f.bash_spawn_ms / floor), "");
    line(
        "replay_events_per_s",
        format!("{:.0}", f.replay_events_per_s),
        format!("{:.0} events per floor", f.replay_events_per_s * floor / 1000.0),
        "target ≥ 1000000",
    );
    line("resume_ms", format!("{:.3}", f.resume_ms), format!("{:.1} × floor", f.resume_ms / floor), "target ≤ 50");
    for (phase, rss, bytes) in [
        ("sequential", f.peak_rss_mib_sequential, f.bytes_per_event_sequential),
        ("concurrent", f.peak_rss_mib_concurrent, f.bytes_per_event_concurrent),
        ("shell", f.peak_rss_mib_shell, f.bytes_per_event_shell),
        ("replay", f.peak_rss_mib_replay, f.bytes_per_event_replay),
    ] {
        let rss_target = if phase == "sequential" { "target ≤ 50 (a 1,000-step run)" } else { "" };
        line(&format!("peak_rss_mib_{phase}"), format!("{rss:.1}"), String::new(), rss_target);
        line(&format!("bytes_per_event_{phase}"), format!("{bytes:.0}"), String::new(), "target ≤ 400");
    }
    text.truncate(text.trim_end().len());
    text
}

/// A directory beside the store, on the same filesystem, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(store_dir: &Path) -> Result<Scratch> {
        // The store's parent, or its nearest ancestor that exists: the store may not exist yet.
        let mut base = store_dir.parent().unwrap_or(store_dir);
        while !base.is_dir() {
            base = base.parent().context("no existing directory above the store")?;
        }
        let path = base.join(format!(".runbook-bench-{}", std::process::id()));
        if path.exists() {
            // Left by a killed bench of a process that had our pid.
            std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating the bench directory {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(%error, dir = %self.path.display(), "cannot remove the bench directory");
        }
    }
}

/// Latencies of append + `fdatasync` of a 200-byte record to a file of its own.
struct FsyncFloor {
    path: PathBuf,
    file: std::fs::File,
    latencies: Vec<Duration>,
}

impl FsyncFloor {
    fn new(dir: &Path) -> Result<FsyncFloor> {
        let path = dir.join("fsync-floor");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut floor = FsyncFloor { path, file, latencies: Vec::new() };
        // The first syncs of a new file also write its directory entry and first blocks: not the steady state.
        floor.sample(10)?;
        floor.latencies.clear();
        Ok(floor)
    }

    fn sample(&mut self, samples: usize) -> Result<()> {
        let record = [b'x'; 200];
        for _ in 0..samples {
            let started = Instant::now();
            self.file.write_all(&record)?;
            self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))?;
            self.latencies.push(started.elapsed());
        }
        Ok(())
    }

    /// The median of every sample, ms.
    fn median_ms(&mut self) -> f64 {
        self.latencies.sort();
        self.latencies.get(self.latencies.len() / 2).map_or(0.0, |median| ms(*median))
    }
}

/// An engine on a fresh store in `dir`.
fn engine(dir: &Path) -> Result<Arc<Engine>> {
    let store = SledStore::open(dir).with_context(|| format!("opening the bench store {}", dir.display()))?;
    Ok(Arc::new(Engine::new(Journal::new(store, None), runbook_steps::registry())))
}

fn workflow(engine: &Engine, name: &str, yaml: &str) -> Result<LoadedWorkflow> {
    load_str(Path::new(&format!("{name}.yaml")), yaml, engine.registry())
        .map_err(|diagnostics| anyhow::anyhow!("the bench's own workflow is invalid:\n{diagnostics}"))
}

/// `steps` chained `set` steps, each computing from the one before it.
fn chained_set_steps(name: &str, steps: usize) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n  - id: s0\n    set: {{ n: 0 }}\n");
    for i in 1..steps {
        let _ = write!(
            yaml,
            "  - id: s{i}\n    needs: [s{p}]\n    set:\n      n: \"{{{{ steps.s{p}.outputs.n + 1 }}}}\"\n",
            p = i - 1
        );
    }
    yaml
}

/// Executes a run to the end and checks that it succeeded.
async fn execute(engine: &Arc<Engine>, run: RunId) -> Result<()> {
    let status = engine.execute(run, RunControl::default(), RunEnvironment::default(), None).await?;
    anyhow::ensure!(status == RunStatus::Succeeded, "bench run {run} ended {}", status.as_str());
    Ok(())
}

/// Store size after a checkpoint (the store at rest, as closing leaves it) / events in it.
fn bytes_per_event(engine: &Engine) -> Result<f64> {
    let store = engine.journal().store();
    store.checkpoint()?;
    let events: u64 = runbook_storage::EventLog::streams(store)?
        .into_iter()
        .map(|stream| runbook_storage::EventLog::next_seq(store, stream).map(|next| next - 1))
        .sum::<runbook_storage::Result<u64>>()?;
    Ok(store.size_on_disk()? as f64 / events.max(1) as f64)
}

/// One run of `steps` chained `set` steps: ms per step, and bytes per event.
async fn sequential(dir: &Path, steps: usize) -> Result<(f64, f64)> {
    let engine = engine(dir)?;
    let loaded = workflow(&engine, "bench-sequential", &chained_set_steps("bench-sequential", steps))?;
    let run = engine.start_run(&loaded, serde_json::Map::new(), None, &RunEnvironment::default()).await?;
    let started = Instant::now();
    execute(&engine, run).await?;
    let per_step = ms(started.elapsed()) / steps as f64;
    Ok((per_step, bytes_per_event(&engine)?))
}

/// `runs` runs of `steps` chained `set` steps, executed together: steps per second, and bytes per event.
async fn concurrent(dir: &Path, runs: usize, steps: usize) -> Result<(f64, f64)> {
    let engine = engine(dir)?;
    let loaded = workflow(&engine, "bench-concurrent", &chained_set_steps("bench-concurrent", steps))?;
    let mut ids = Vec::with_capacity(runs);
    for _ in 0..runs {
        ids.push(engine.start_run(&loaded, serde_json::Map::new(), None, &RunEnvironment::default()).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|run| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move { execute(&engine, run).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let per_second = (runs * steps) as f64 / started.elapsed().as_secs_f64();
    Ok((per_second, bytes_per_event(&engine)?))
}

/// One run of `steps` chained `run: "true"` steps, and the same bash started bare as many times:
/// ms per step, ms per bare bash, bytes per event.
async fn shell(dir: &Path, steps: usize) -> Result<(f64, f64, f64)> {
    let engine = engine(dir)?;
    let mut yaml = "name: bench-shell\nsteps:\n  - id: s0\n    run: \"true\"\n".to_owned();
    for i in 1..steps {
        let _ = write!(yaml, "  - id: s{i}\n    needs: [s{p}]\n    run: \"true\"\n", p = i - 1);
    }
    let loaded = workflow(&engine, "bench-shell", &yaml)?;
    // Side by side: bare bash, the run, bare bash again; the floor is the mean of both bare rounds.
    let bare_before = bare_bash(steps / 2 + 1).await?;
    let run = engine.start_run(&loaded, serde_json::Map::new(), None, &RunEnvironment::default()).await?;
    let started = Instant::now();
    execute(&engine, run).await?;
    let per_step = ms(started.elapsed()) / steps as f64;
    let bare_after = bare_bash(steps / 2 + 1).await?;
    Ok((per_step, (bare_before + bare_after) / 2.0, bytes_per_event(&engine)?))
}

/// Starts `bash -euo pipefail -c true` the way the `run` kind does (own process group, piped
/// output read to the end), `times` times in a row: ms each.
async fn bare_bash(times: usize) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..times {
        let mut child = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting bash")?;
        let mut stdout = child.stdout.take().context("bash's stdout")?;
        let mut stderr = child.stderr.take().context("bash's stderr")?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err, status) = tokio::join!(
            tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out),
            tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut err),
            child.wait()
        );
        read_out?;
        read_err?;
        anyhow::ensure!(status?.success(), "bash -c true failed");
    }
    Ok(ms(started.elapsed()) / times as f64)
}

/// What the replay phase measures.
struct Replay {
    replay_events_per_s: f64,
    resume_ms: f64,
    bytes_per_event_replay: f64,
    /// Of the fold and the resume, not of writing the runs they read.
    peak_rss_mib_replay: f64,
}

/// Folds a run of `replay_events` events, and resumes a run of `resume_events` events.
async fn replay(dir: &Path, replay_events: u64, resume_events: u64) -> Result<Replay> {
    let (long_run, resumable) = {
        let engine = engine(dir)?;
        let long_run = write_polling_run(&engine, replay_events).await?;
        let resumable = write_interrupted_run(&engine, resume_events).await?;
        (long_run, resumable)
    };
    // Reopened, as after a restart: sled's cache is cold, the kernel's page cache is not.
    let peak = PeakRss::start();
    let engine = engine(dir)?;
    let started = Instant::now();
    let (state, next) = engine.journal().load(long_run)?;
    let elapsed = started.elapsed();
    anyhow::ensure!(next.0 == replay_events + 1, "the long run has {} events, not {replay_events}", next.0 - 1);
    anyhow::ensure!(state.events == replay_events, "the fold saw {} events", state.events);
    let per_second = replay_events as f64 / elapsed.as_secs_f64();

    let (observer, mut observed) = mpsc::unbounded_channel::<Observed>();
    let started = Instant::now();
    engine.resume_run(resumable, Vec::new(), Vec::new()).await?;
    let executing = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            engine.execute(resumable, RunControl::default(), RunEnvironment::default(), Some(observer)).await
        })
    };
    let mut resume_ms = None;
    while let Some(Observed { event, .. }) = observed.recv().await {
        if matches!(event.kind, EventKind::StepStarted { .. }) {
            resume_ms = Some(ms(started.elapsed()));
            break;
        }
    }
    drop(observed);
    let status = executing.await??;
    anyhow::ensure!(status == RunStatus::Succeeded, "the resumed run ended {}", status.as_str());
    let resume_ms = resume_ms.context("the resumed run started no step")?;
    let peak_rss_mib_replay = peak.finish();
    Ok(Replay {
        replay_events_per_s: per_second,
        resume_ms,
        bytes_per_event_replay: bytes_per_event(&engine)?,
        peak_rss_mib_replay,
    })
}

/// Records events in batches of this many: the fixtures are written, not executed.
const FIXTURE_BATCH: usize = 1_000;

/// Records `events` on a new run, in batches, each checked against the run by `Journal::record`
/// as any event recorded from outside an executor is. Only the fixtures' writing pays for the
/// checks: the replay and resume figures are measured on the runs once written.
async fn record_all(engine: &Engine, run: RunId, events: impl Iterator<Item = EventKind>) -> Result<u64> {
    let mut batch = Vec::with_capacity(FIXTURE_BATCH);
    for kind in events {
        batch.push(kind);
        if batch.len() == FIXTURE_BATCH {
            engine.journal().record(run, std::mem::take(&mut batch)).await?;
        }
    }
    let state = engine.journal().record(run, batch).await?;
    Ok(state.events)
}

/// A run with `events` events: ten finished `set` steps, then one step polling (`until`) that
/// has been started and polled again and again, the way a long wait looks in the log.
async fn write_polling_run(engine: &Arc<Engine>, events: u64) -> Result<RunId> {
    let mut yaml = "name: bench-replay\nsteps:\n".to_owned();
    for i in 0..10 {
        let _ = write!(yaml, "  - id: s{i}\n    set: {{ n: {i}, label: \"step {i}\" }}\n");
    }
    yaml.push_str(
        "  - id: wait\n    needs: [s9]\n    set: { ready: false }\n    until: outputs.ready\n    poll: { interval: 1s, timeout: 1000h }\n",
    );
    let loaded = workflow(engine, "bench-replay", &yaml)?;
    let run = engine.start_run(&loaded, serde_json::Map::new(), None, &RunEnvironment::default()).await?;
    let at = Utc::now();
    let finished = (0..10).flat_map(move |i| {
        let step = step_id(&format!("s{i}"));
        let mut outputs = Outputs::new();
        outputs.insert("n".to_owned(), serde_json::json!(i));
        outputs.insert("label".to_owned(), serde_json::json!(format!("step {i}")));
        finished_step(step, outputs)
    });
    let wait = step_id("wait");
    let polls = (1..).flat_map(move |attempt| {
        let mut outputs = Outputs::new();
        outputs.insert("ready".to_owned(), serde_json::json!(false));
        [
            EventKind::StepStarted { step: wait.clone(), attempt: Attempt(attempt) },
            EventKind::StepPolled {
                step: wait.clone(),
                attempt: Attempt(attempt),
                outputs,
                next_at: at + chrono::Duration::seconds(1),
                artifacts: Vec::new(),
                duration_ms: 0,
            },
        ]
    });
    let remaining = usize::try_from(events.saturating_sub(1)).unwrap_or(usize::MAX);
    let written = record_all(engine, run, finished.chain(polls).take(remaining)).await?;
    anyhow::ensure!(written == events, "wrote {written} events, not {events}");
    Ok(run)
}

/// The two events of a step that started and succeeded at its first attempt.
fn finished_step(step: StepId, outputs: Outputs) -> [EventKind; 2] {
    [
        EventKind::StepStarted { step: step.clone(), attempt: Attempt(1) },
        EventKind::StepSucceeded {
            step,
            attempt: Attempt(1),
            outputs,
            exit_code: None,
            artifacts: Vec::new(),
            duration_ms: 0,
        },
    ]
}

/// An interrupted run with `events` events: `events / 2 - 1` finished `set` steps, and one more
/// step still pending, which a resume starts.
async fn write_interrupted_run(engine: &Arc<Engine>, events: u64) -> Result<RunId> {
    let finished_steps = (events / 2).saturating_sub(1).max(1);
    let mut yaml = "name: bench-resume\nsteps:\n".to_owned();
    for i in 0..finished_steps {
        let _ = write!(yaml, "  - id: s{i}\n    set: {{ n: {i} }}\n");
    }
    yaml.push_str("  - id: last\n    needs: [s0]\n    set:\n      n: \"{{ steps.s0.outputs.n + 1 }}\"\n");
    let loaded = workflow(engine, "bench-resume", &yaml)?;
    let run = engine.start_run(&loaded, serde_json::Map::new(), None, &RunEnvironment::default()).await?;
    let finished = (0..finished_steps).flat_map(move |i| {
        let step = step_id(&format!("s{i}"));
        let mut outputs = Outputs::new();
        outputs.insert("n".to_owned(), serde_json::json!(i));
        finished_step(step, outputs)
    });
    let interrupted =
        EventKind::RunInterrupted { reason: "bench: the process stopped".to_owned(), running: Vec::new() };
    record_all(engine, run, finished.chain(std::iter::once(interrupted))).await?;
    Ok(run)
}

fn step_id(id: &str) -> StepId {
    // The bench's own ids, all of the form `s12` or a plain word.
    StepId::new(id).unwrap_or_else(|_| unreachable!("`{id}` is a valid step id"))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The peak resident set of this process during a phase, MiB.
///
/// Linux keeps the peak in `VmHWM` and resets it when "5" is written to
/// `/proc/self/clear_refs`. Where that is refused, a thread samples `VmRSS`
/// every millisecond instead (which can miss a short spike).
struct PeakRss {
    sampler: Option<(Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>)>,
}

impl PeakRss {
    fn start() -> PeakRss {
        if std::fs::write("/proc/self/clear_refs", "5").is_ok() && status_kib("VmHWM").is_some() {
            return PeakRss { sampler: None };
        }
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(status_kib("VmRSS").unwrap_or(0)));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib("VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        PeakRss { sampler: Some((stop, peak, thread)) }
    }

    fn finish(self) -> f64 {
        let kib = match self.sampler {
            None => status_kib("VmHWM").unwrap_or(0),
            Some((stop, peak, thread)) => {
                stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
                peak.load(Ordering::Relaxed)
            }
        };
        kib as f64 / 1024.0
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}
