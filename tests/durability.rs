//! Durability: `verify` and `prune`, a corrupt record, step processes orphaned by a killed
//! engine, a full disk, lease takeover, and a soak of random SIGKILLs.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbook_storage::{KvState, LeaseHolder, LeaseOutcome, SledStore};

use crate::util::{Sandbox, of_type, sigkill};

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_file(sandbox: &Sandbox, name: &str) {
    wait_for(&format!("{name} appears"), Duration::from_secs(20), || sandbox.path().join(name).exists());
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A live (not zombie) process, as `/proc` shows it.
#[derive(Debug)]
struct Process {
    pid: u32,
    parent: Option<u32>,
    cwd: Option<PathBuf>,
    cmdline: String,
}

/// Every live process.
fn processes() -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the command name, in parentheses: the state, then the parent's pid. Zombies run nothing.
        let mut fields = stat.rfind(')').map(|end| stat[end + 1..].split_whitespace()).into_iter().flatten();
        if fields.next() == Some("Z") {
            continue;
        }
        let parent = fields.next().and_then(|ppid| ppid.parse().ok());
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_owned();
        found.push(Process { pid, parent, cwd, cmdline });
    }
    found
}

/// Live processes whose working directory is `dir`: everything a test's `runbook` started.
fn processes_in(dir: &Path) -> Vec<Process> {
    let dir = dir.canonicalize().expect("canonical sandbox path");
    processes().into_iter().filter(|p| p.cwd.as_deref() == Some(dir.as_path())).collect()
}

/// The step guards (`runbook-step-guard`) that process `parent` started.
fn guards_of(parent: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.parent == Some(parent) && p.cmdline.contains("runbook-step-guard"))
        .map(|p| p.pid)
        .collect()
}

fn runs_json(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    let mut runs = sandbox.run(&["runs", "--json"]);
    // Seen rarely right after a SIGKILL of the holder: `runs` finds the store still locked, reaches
    // the dead holder's socket and gets `Connection reset by peer`. Likely cause: a child the
    // holder was forking keeps copies of its descriptors (the lock, the socket) until it execs.
    // The CLI should retry that (reported with this issue); this test checks durability, so it
    // retries briefly rather than fail on it.
    for _ in 0..10 {
        if runs.code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        runs = sandbox.run(&["runs", "--json"]);
    }
    assert_eq!(runs.code, 0, "runs --json: {}; processes: {:?}", runs.stderr, processes_in(sandbox.path()));
    serde_json::from_str::<Vec<serde_json::Value>>(&runs.stdout).expect("runs --json is a JSON array")
}

/// Opens the store in this process once the killed holder's lock is gone (see [`runs_json`]).
fn open_store(sandbox: &Sandbox) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SledStore::open(&sandbox.store()) {
            Ok(store) => return store,
            Err(runbook_storage::StorageError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("cannot open the store: {error}"),
        }
    }
}

/// Flips one bit in the middle of the payload of record `seq` of run `run`, keeping its
/// length, with sled opened directly (no `runbook` process may hold the store).
fn corrupt_record(store: &Path, run: u64, seq: u64) {
    let db = sled::Config::new().path(store).open().expect("open the store's sled database");
    let events = db.open_tree("events").expect("events tree");
    let mut key = run.to_be_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    let mut value = events.get(&key).expect("read record").expect("record exists").to_vec();
    // [crc32: 4 bytes][payload]: flip a bit inside the payload.
    let at = 4 + (value.len() - 4) / 2;
    value[at] ^= 0x01;
    events.insert(&key, value).expect("write record");
    db.flush().expect("flush");
    drop((events, db));
    let released = runbook_storage::wait_until_released(store, Duration::from_secs(10)).expect("probe the store lock");
    assert!(released, "sled still holds {} after closing", store.display());
}

const OK: &str = r#"
name: ok
steps:
  - id: first
    run: echo one
  - id: second
    needs: [first]
    run: echo two
"#;

/// A step that waits forever the first time and is quick when resumed.
const SLOW: &str = r#"
name: slow
steps:
  - id: wait
    run: if [ -e started ]; then echo again; else touch started; sleep 300; fi
"#;

#[test]
fn a_corrupt_record_is_named_by_verify_and_refused_by_status_and_resume_while_other_runs_work() {
    let sandbox = Sandbox::new();
    let ok = sandbox.write("ok.yaml", OK);
    let slow = sandbox.write("slow.yaml", SLOW);
    assert_eq!(sandbox.run(&["run", utf8(&ok)]).code, 0);
    let mut holder = sandbox.spawn(&["run", utf8(&slow)]);
    wait_for_file(&sandbox, "started");
    sigkill(&mut holder);
    assert_eq!(sandbox.run(&["run", utf8(&ok)]).code, 0);

    let clean = sandbox.run(&["verify"]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    let total_events: usize = (1..=3).map(|run| sandbox.events(run).len()).sum();
    assert_eq!(clean.stdout.trim(), format!("3 runs, {total_events} events checked, no problems"));

    // Run 2 was killed mid-step: its events are run_started and step_started.
    corrupt_record(&sandbox.store(), 2, 2);

    let verify = sandbox.run(&["verify"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    let lines: Vec<&str> = verify.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one problem and the summary:\n{}", verify.stdout);
    assert!(lines[0].starts_with("run 2 seq 2: corrupt record: checksum mismatch"), "{}", lines[0]);
    assert_eq!(lines[1], format!("3 runs, {total_events} events checked, 1 problem"));
    assert_eq!(sandbox.run(&["verify", "1"]).code, 0, "another run verifies clean");
    let json = sandbox.run(&["verify", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("verify --json");
    assert_eq!(json["problems"][0]["run"], 2);
    assert_eq!(json["problems"][0]["seq"], 2);

    for args in [&["status", "2"][..], &["resume", "2"], &["events", "2"]] {
        let refused = sandbox.run(args);
        assert_ne!(refused.code, 0, "{args:?} must refuse: {}", refused.stdout);
        assert!(
            refused.stderr.contains("run 2: event 2 is corrupt (checksum mismatch")
                && refused.stderr.contains("`runbook verify 2`"),
            "{args:?}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("panicked"), "{}", refused.stderr);
    }

    assert_eq!(sandbox.status(1)["status"], "succeeded", "other runs are unaffected");
    assert_eq!(sandbox.status(3)["status"], "succeeded");
    let runs = sandbox.run(&["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    let listed: Vec<&str> = runs.stdout.lines().skip(1).collect();
    assert_eq!(listed.len(), 2, "runs 3 and 1 are listed:\n{}", runs.stdout);
    assert!(listed[0].trim_start().starts_with("3 ") && listed[1].trim_start().starts_with("1 "), "{}", runs.stdout);
    assert!(
        runs.stderr.contains("warning: not listed: run 2: event 2 is corrupt"),
        "the bad run is flagged: {}",
        runs.stderr
    );
    let runs = runs_json(&sandbox);
    let statuses: Vec<(u64, &str)> =
        runs.iter().map(|r| (r["run_id"].as_u64().unwrap_or(0), r["status"].as_str().unwrap_or("?"))).collect();
    assert_eq!(statuses, [(3, "succeeded"), (2, "unreadable"), (1, "succeeded")]);
    assert_eq!(runs[1]["workflow"], "slow", "the index still knows its workflow");
}

const CHILD: &str = r#"
name: child
inputs:
  fail: { type: bool, default: false }
steps:
  - id: work
    run: echo child-output; test {{ inputs.fail }} = false
"#;

fn parent(fail: bool) -> String {
    format!(
        r#"
name: parent
steps:
  - id: before
    run: echo parent-output
  - id: call
    needs: [before]
    workflow:
      name: child
      inputs:
        fail: {fail}
"#
    )
}

fn artifact_bytes(sandbox: &Sandbox, runs: &[u64]) -> u64 {
    let mut total = 0;
    for run in runs {
        for entry in std::fs::read_dir(sandbox.store().join("artifacts").join(run.to_string())).expect("artifacts") {
            total += entry.expect("entry").metadata().expect("metadata").len();
        }
    }
    total
}

#[test]
fn prune_removes_old_finished_trees_whole_and_keeps_what_is_unfinished_or_failed() {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    let good = sandbox.write("good.yaml", &parent(false));
    let bad = sandbox.write("bad.yaml", &parent(true));
    let slow = sandbox.write("slow.yaml", SLOW);
    let run = |path: &PathBuf| sandbox.run(&["run", utf8(path)]);
    assert_eq!(run(&good).code, 0, "runs 1 (parent) and 2 (child) succeed");
    assert_eq!(run(&bad).code, 1, "runs 3 (parent) and 4 (child) fail");
    let mut holder = sandbox.spawn(&["run", utf8(&slow)]);
    wait_for_file(&sandbox, "started");
    sigkill(&mut holder);
    let statuses: Vec<String> =
        runs_json(&sandbox).iter().map(|r| format!("{}={}", r["run_id"], r["status"])).collect();
    assert_eq!(
        statuses,
        [r#"5="interrupted""#, r#"4="failed""#, r#"3="failed""#, r#"2="succeeded""#, r#"1="succeeded""#]
    );
    let events_1_2 = (sandbox.events(1).len() + sandbox.events(2).len()) as u64;
    let bytes_1_2 = artifact_bytes(&sandbox, &[1, 2]);
    assert!(bytes_1_2 > 0);

    let recent = sandbox.run(&["prune", "--older-than", "1h"]);
    assert_eq!(recent.code, 0, "{}", recent.stderr);
    assert!(recent.stdout.starts_with("nothing to prune"), "{}", recent.stdout);

    let dry = sandbox.run(&["prune", "--older-than", "0s", "--keep-failed", "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry: serde_json::Value = serde_json::from_str(&dry.stdout).expect("prune --json");
    assert_eq!(dry["runs"], serde_json::json!([1, 2]));
    assert_eq!(dry["kept"][0]["run_id"], 3);
    assert_eq!(dry["kept"][0]["reason"], "run 3 failed (--keep-failed)");
    assert_eq!(runs_json(&sandbox).len(), 5, "a dry run removes nothing");

    let pruned = sandbox.run(&["prune", "--older-than", "0s", "--keep-failed", "--json"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let pruned: serde_json::Value = serde_json::from_str(&pruned.stdout).expect("prune --json");
    assert_eq!(pruned["runs"], serde_json::json!([1, 2]), "the parent goes with its child");
    assert_eq!(pruned["events"], events_1_2);
    assert_eq!(pruned["artifact_bytes"], bytes_1_2);
    assert!(!sandbox.store().join("artifacts/1").exists() && !sandbox.store().join("artifacts/2").exists());
    assert!(sandbox.store().join("artifacts/3").exists());
    let status = sandbox.run(&["status", "1"]);
    assert_eq!(status.code, 2, "a pruned run is unknown: {}", status.stderr);
    let verify = sandbox.run(&["verify"]);
    assert_eq!(verify.code, 0, "no link or index entry of a pruned run is left: {}", verify.stdout);

    let rest = sandbox.run(&["prune", "--older-than", "0s"]);
    assert_eq!(rest.code, 0, "{}", rest.stderr);
    assert!(rest.stdout.starts_with("pruned 2 runs (3, 4): "), "{}", rest.stdout);
    let left: Vec<u64> = runs_json(&sandbox).iter().filter_map(|r| r["run_id"].as_u64()).collect();
    assert_eq!(left, [5], "an interrupted run is never pruned");
    assert_eq!(sandbox.status(5)["status"], "interrupted");
    assert_eq!(sandbox.run(&["verify"]).stdout.trim(), format!("1 run, {} events checked, no problems", 2));
}

const ORPHANS: &str = r#"
name: orphans
steps:
  - id: long
    run: if [ -e started ]; then echo again; else touch started; sleep 300 & sleep 300; fi
"#;

/// Starts the orphans workflow and waits until its two sleeps run.
fn start_orphans(sandbox: &Sandbox) -> Child {
    let workflow = sandbox.write("orphans.yaml", ORPHANS);
    let holder = sandbox.spawn(&["run", utf8(&workflow)]);
    wait_for_file(sandbox, "started");
    wait_for("both sleeps run", Duration::from_secs(10), || {
        processes_in(sandbox.path()).iter().filter(|p| p.cmdline == "sleep 300").count() == 2
    });
    holder
}

#[test]
fn a_killed_engine_leaves_no_step_process_running() {
    let sandbox = Sandbox::new();
    let mut holder = start_orphans(&sandbox);
    sigkill(&mut holder);
    // The guard kills the step's whole group when the engine dies.
    wait_for("the step's processes end with the engine", Duration::from_secs(5), || {
        processes_in(sandbox.path()).is_empty()
    });
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let left = processes_in(sandbox.path());
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!sandbox.store().join("artifacts/1/long.1.pgid").exists(), "the orphan's group record is gone");
}

#[test]
fn one_guard_stops_every_step_still_running_when_the_engine_dies() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "parallel.yaml",
        r#"
name: parallel
steps:
  - id: quick
    run: "true"
  - id: left
    needs: [quick]
    run: sleep 301
  - id: right
    needs: [quick]
    run: sleep 302 & sleep 303
"#,
    );
    let mut holder = sandbox.spawn(&["run", utf8(&workflow)]);
    wait_for("three sleeps run", Duration::from_secs(10), || {
        processes_in(sandbox.path()).iter().filter(|p| p.cmdline.starts_with("sleep 30")).count() == 3
    });
    assert_eq!(guards_of(holder.id()).len(), 1, "one guard for the engine, not one per step");
    sigkill(&mut holder);
    wait_for("every step's processes end with the engine", Duration::from_secs(5), || {
        processes_in(sandbox.path()).is_empty()
    });
}

#[test]
fn a_resume_reaps_what_outlived_the_engine() {
    let sandbox = Sandbox::new();
    let mut holder = start_orphans(&sandbox);
    assert!(sandbox.store().join("artifacts/1/long.1.pgid").exists(), "the step recorded its process group");
    // Without its guard, nothing stops the step's processes when the engine dies: they live on.
    let guards = guards_of(holder.id());
    assert_eq!(guards.len(), 1, "one guard for the engine, whatever its steps");
    for guard in guards {
        let pid = rustix::process::Pid::from_raw(guard as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill the guard");
    }
    sigkill(&mut holder);
    std::thread::sleep(Duration::from_millis(300));
    let sleeps = || processes_in(sandbox.path()).iter().filter(|p| p.cmdline == "sleep 300").count();
    assert_eq!(sleeps(), 2, "the sleeps outlived the engine: {:?}", processes_in(sandbox.path()));

    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let left = processes_in(sandbox.path());
    assert!(left.is_empty(), "the resume reaped the old attempt's group: {left:?}");
    let events = sandbox.events(1);
    let done = of_type(&events, "step_succeeded");
    assert_eq!((done.len(), done[0]["attempt"].as_u64()), (1, Some(2)), "attempt 2 ran after the reaping");
}

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`) at `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("mounting a tmpfs needs root".to_owned());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", utf8(dir)])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process still in it must not leave the mount behind.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Skips a test that needs root, loudly; under CI (which runs as root) a skip is a failure.
fn skip_or_fail(test: &str, why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} cannot run under CI: {why}");
    eprintln!("skipping {test}: {why}");
}

/// A workflow whose first step fills the disk the store is on, and whose other steps each
/// record an event of 60 kB, so that the store needs room it does not have.
fn filling_workflow() -> String {
    let mut text = String::from(
        "name: filling\nsteps:\n  - id: fill\n    run: '[ -e store/filled ] || { touch store/filled; dd if=/dev/zero of=store/filler bs=64k 2>/dev/null || true; }'\n",
    );
    let mut previous = "fill".to_owned();
    for i in 0..20 {
        text.push_str(&format!(
            "  - id: big_{i}\n    needs: [{previous}]\n    set:\n      value: \"{{{{ 'x' * 60000 }}}}\"\n"
        ));
        previous = format!("big_{i}");
    }
    text
}

#[test]
fn a_full_disk_interrupts_the_run_cleanly_and_resume_goes_on_once_there_is_room() {
    let sandbox = Sandbox::new();
    // Room for the run twice over: until a checkpoint, the store holds its
    // writes both in sled's files and in its write-ahead log.
    let _tmpfs = match Tmpfs::mount(&sandbox.store(), "8m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => return skip_or_fail("a_full_disk_interrupts_the_run_cleanly", &why),
    };
    let workflow = sandbox.write("filling.yaml", &filling_workflow());
    let full = sandbox.run(&["run", utf8(&workflow)]);
    assert_eq!(full.code, 130, "interrupted:\n{}\n{}", full.stdout, full.stderr);
    assert!(full.stderr.contains("No space left on device"), "the OS error is shown: {}", full.stderr);
    assert!(
        full.stderr.contains("run 1 is interrupted") && full.stderr.contains("`runbook resume 1`"),
        "{}",
        full.stderr
    );
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);

    std::fs::remove_file(sandbox.store().join("filler")).expect("remove the filler");
    assert_eq!(sandbox.status(1)["status"], "interrupted");
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let events = sandbox.events(1);
    let succeeded = of_type(&events, "step_succeeded");
    assert_eq!(succeeded.len(), 21, "every step succeeded once");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let verify = sandbox.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn a_killed_holders_lease_is_taken_over_at_once_not_at_expiry() {
    let sandbox = Sandbox::new();
    let slow = sandbox.write("slow.yaml", SLOW);
    let mut holder = sandbox.spawn(&["run", utf8(&slow)]);
    let holder_pid = holder.id();
    wait_for_file(&sandbox, "started");
    sigkill(&mut holder);
    {
        let store = open_store(&sandbox);
        let lease = store.lease_holder(1).expect("read the lease").expect("the dead holder's lease is left");
        assert_eq!(lease.pid, holder_pid);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        assert!(lease.expires_at_ms > now_ms + 10_000, "the lease has long to run: {lease:?}");
    }
    let started = Instant::now();
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}: it waited for the lease", started.elapsed());
    let store = open_store(&sandbox);
    assert_eq!(store.lease_holder(1).expect("read the lease"), None, "released at the end");
}

#[test]
fn a_live_holder_keeps_its_lease_and_a_dead_one_loses_it_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open a store");
    let host = runbook_engine::executor::host_name();
    let mut other = std::process::Command::new("sleep").arg("30").spawn().expect("spawn a holder");
    let far = u64::MAX / 2;
    let theirs = LeaseHolder { owner: "other".to_owned(), host: host.clone(), pid: other.id(), expires_at_ms: far };
    let mine = LeaseHolder { owner: "me".to_owned(), host, pid: std::process::id(), expires_at_ms: far };
    assert_eq!(store.acquire_lease(9, &theirs, 0).expect("acquire"), LeaseOutcome::Acquired);
    assert_eq!(store.acquire_lease(9, &mine, 0).expect("acquire"), LeaseOutcome::Held(theirs.clone()));
    assert_eq!(store.lease_holder(9).expect("read"), Some(theirs.clone()), "a live holder is not displaced");
    other.kill().expect("kill the holder");
    other.wait().expect("reap the holder");
    let outcome = store.acquire_lease(9, &mine, 0).expect("acquire");
    let reason = format!("holder pid {} is not running", theirs.pid);
    assert_eq!(outcome, LeaseOutcome::TakenOver { previous: theirs, reason }, "long before expiry");
}

/// A little deterministic generator, so that a failing soak replays from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

const SOAK: &str = r#"
name: soak
steps:
  - id: a
    run: echo "$RUNBOOK_RUN_ID a" >> effects.log; sleep 0.2
  - id: b1
    needs: [a]
    run: echo "$RUNBOOK_RUN_ID b1" >> effects.log; sleep 0.3
  - id: b2
    needs: [a]
    run: echo "$RUNBOOK_RUN_ID b2" >> effects.log; sleep 0.4
  - id: b3
    needs: [a]
    run: echo "$RUNBOOK_RUN_ID b3" >> effects.log; sleep 0.2
  - id: b4
    needs: [a]
    set:
      value: "{{ steps.a.outcome }}"
  - id: c
    needs: [b1, b2, b3, b4]
    run: echo "$RUNBOOK_RUN_ID c" >> effects.log; sleep 0.3
  - id: d
    needs: [c]
    run: echo "$RUNBOOK_RUN_ID d" >> effects.log; sleep 0.1
"#;

const SOAK_STEPS: [&str; 7] = ["a", "b1", "b2", "b3", "b4", "c", "d"];

/// What one soak round did.
#[derive(Debug, Default)]
struct SoakFigures {
    runs: usize,
    kills: usize,
    events: usize,
    passes: usize,
}

/// One store, `runs` workflows submitted at once to one holder (the others forward to it),
/// the holder and its clients SIGKILLed at random times, then every unfinished run resumed,
/// again and again until every run has ended. From the 9th pass one in four (and every pass
/// from the 40th) is left to finish, so that a round ends however the kills fall.
fn soak_round(rng: &mut XorShift, runs: usize) -> SoakFigures {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("soak.yaml", SOAK);
    let mut figures = SoakFigures::default();
    loop {
        figures.passes += 1;
        assert!(figures.passes <= 50, "runs still unfinished after 50 passes: {:?}", runs_json(&sandbox));
        let listed = if figures.passes == 1 { Vec::new() } else { runs_json(&sandbox) };
        let unfinished: Vec<u64> =
            listed.iter().filter(|r| r["status"] != "succeeded").filter_map(|r| r["run_id"].as_u64()).collect();
        let missing = runs.saturating_sub(listed.len());
        if unfinished.is_empty() && missing == 0 {
            break;
        }
        let mut processes: Vec<Child> = Vec::new();
        for _ in 0..missing {
            processes.push(sandbox.spawn(&["run", utf8(&workflow)]));
        }
        for run in &unfinished {
            processes.push(sandbox.spawn(&["resume", &run.to_string()]));
        }
        let spare = figures.passes >= 40 || (figures.passes > 8 && rng.between(1, 4) == 1);
        let kill_after = if spare { Duration::from_secs(60) } else { Duration::from_millis(rng.between(20, 700)) };
        let deadline = Instant::now() + kill_after;
        while Instant::now() < deadline && processes.iter_mut().any(|p| p.try_wait().ok().flatten().is_none()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if processes.iter_mut().any(|p| p.try_wait().ok().flatten().is_none()) {
            figures.kills += 1;
        }
        for process in &mut processes {
            sigkill(process);
        }
    }
    let listed = runs_json(&sandbox);
    figures.runs = listed.len();
    assert_eq!(figures.runs, runs);
    for run in listed {
        let id = run["run_id"].as_u64().expect("run id");
        assert_eq!(run["status"], "succeeded", "run {id}");
        let events = sandbox.events(id);
        figures.events += events.len();
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "run {id}: seqs contiguous");
        for step in SOAK_STEPS {
            let done = of_type(&events, "step_succeeded").into_iter().filter(|e| e["step"] == step).count();
            assert_eq!(done, 1, "run {id}: step {step} has exactly one step_succeeded");
        }
        assert_eq!(of_type(&events, "run_succeeded").len(), 1, "run {id}: one run_succeeded");
    }
    let effects = std::fs::read_to_string(sandbox.path().join("effects.log")).unwrap_or_default();
    for step in SOAK_STEPS.iter().filter(|s| **s != "b4") {
        let ran = effects.lines().filter(|l| l.ends_with(&format!(" {step}"))).count();
        assert!(ran >= runs, "step {step} ran {ran} times for {runs} runs: at least once each");
    }
    let verify = sandbox.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    let left = processes_in(sandbox.path());
    assert!(left.is_empty(), "nothing of a killed attempt runs on: {left:?}");
    figures
}

#[test]
fn random_sigkills_of_the_holder_lose_no_event_and_repeat_no_completion() {
    let seed = match std::env::var("RUNBOOK_SOAK_SEED") {
        Ok(text) => text.trim().parse::<u64>().expect("RUNBOOK_SOAK_SEED is a number"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 | 1,
    };
    let rounds: usize = std::env::var("RUNBOOK_SOAK_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    eprintln!("soak: seed {seed} (replay with RUNBOOK_SOAK_SEED={seed}), {rounds} rounds");
    let mut rng = XorShift(seed);
    let started = Instant::now();
    let mut total = SoakFigures::default();
    for round in 1..=rounds {
        let figures = soak_round(&mut rng, 6);
        eprintln!("soak round {round}: {figures:?}");
        total.runs += figures.runs;
        total.kills += figures.kills;
        total.events += figures.events;
        total.passes += figures.passes;
    }
    eprintln!(
        "soak: {} runs, {} kills, {} events, {} passes in {:.1}s (seed {seed})",
        total.runs,
        total.kills,
        total.events,
        total.passes,
        started.elapsed().as_secs_f64()
    );
    assert!(total.kills > 0, "the soak killed nothing: seed {seed}");
}
