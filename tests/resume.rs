//! Crashes and resumes: a killed process loses nothing recorded and repeats no completed step.

use std::time::{Duration, Instant};

use crate::util::{Run, Sandbox, of_type, step_statuses};

const COUNTERS: &str = r#"
name: counters
steps:
  - id: first
    run: echo x >> first.count
  - id: slow
    needs: [first]
    run: echo x >> slow.count; sleep 2; echo x >> slow.done
  - id: side
    needs: [first]
    run: echo x >> side.count
  - id: last
    needs: [slow, side]
    run: echo x >> last.count
"#;

fn wait_for_file(sandbox: &Sandbox, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sandbox.path().join(name).exists() {
        assert!(Instant::now() < deadline, "{name} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_mid_run_then_resume_repeats_no_completed_step() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("counters.yaml", COUNTERS);
    let mut child = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_for_file(&sandbox, "slow.count");
    // The first step has finished and `slow` is mid-way: kill the engine without warning.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let _ = child.wait();

    let listed = sandbox.run(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout)
        .unwrap_or_else(|e| panic!("runs --json ({e}), exit {}:\n{}\n{}", listed.code, listed.stdout, listed.stderr));
    assert_eq!(runs[0]["status"], "interrupted", "a run nobody executes shows as interrupted");
    let run_id = runs[0]["run_id"].as_u64().expect("run id");

    let resumed = sandbox.run(&["resume", &run_id.to_string()]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sandbox.count("first.count"), 1, "a completed step never runs again");
    // A parallel sibling in flight at the kill may run again: it is safe to repeat.
    assert!((1..=2).contains(&sandbox.count("side.count")));
    assert_eq!(sandbox.count("last.count"), 1);
    assert!(sandbox.count("slow.count") <= 2, "the interrupted step is repeated at most once");
    let events = sandbox.events(run_id);
    assert_eq!(of_type(&events, "run_resumed").len(), 1);
    for step in ["first", "slow", "side", "last"] {
        let done: Vec<_> = of_type(&events, "step_succeeded").into_iter().filter(|e| e["step"] == step).collect();
        assert_eq!(done.len(), 1, "{step} has exactly one step_succeeded");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn crash_after_every_event_then_resume_reaches_the_same_end() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "quick.yaml",
        r#"
name: quick
steps:
  - id: a
    run: echo x >> a.count
  - id: b
    needs: [a]
    run: echo x >> b.count
  - id: c
    needs: [a]
    run: echo x >> c.count
  - id: d
    needs: [b, c]
    run: echo x >> d.count
"#,
    );
    let path = workflow.to_str().expect("utf-8 path");
    let clean = sandbox.run(&["run", path]);
    assert_eq!(clean.code, 0);
    let total = sandbox.events(clean.run_id()).len() as u64;
    for n in 1..total {
        let crash_dir = Sandbox::new();
        let workflow = crash_dir.write("quick.yaml", &std::fs::read_to_string(path).expect("read"));
        let mut command = crash_dir.command(&["run", workflow.to_str().expect("utf-8 path")]);
        command.env("RUNBOOK_CRASH_AFTER_EVENTS", n.to_string());
        let crashed = Run::from(command.output().expect("run"));
        assert_ne!(crashed.code, 0, "N={n}: the process must abort");
        let mut resumes = 0;
        loop {
            let status = crash_dir.status(1);
            if status["status"] == "succeeded" {
                break;
            }
            resumes += 1;
            assert!(resumes <= 2, "N={n}: still {} after resuming", status["status"]);
            let resumed = crash_dir.run(&["resume", "1"]);
            assert_eq!(resumed.code, 0, "N={n}: {}\n{}", resumed.stdout, resumed.stderr);
        }
        let events = crash_dir.events(1);
        for step in ["a", "b", "c", "d"] {
            let done = of_type(&events, "step_succeeded").into_iter().filter(|e| e["step"] == step).count();
            assert_eq!(done, 1, "N={n}: {step} has one step_succeeded");
            let ran = crash_dir.count(&format!("{step}.count"));
            assert!((1..=2).contains(&ran), "N={n}: {step} ran {ran} times");
        }
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "N={n}: seqs contiguous");
    }
}

#[test]
fn a_step_that_is_not_safe_to_repeat_waits_for_the_operator() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "unsafe.yaml",
        r#"
name: unsafe
steps:
  - id: recreate
    run: echo x >> recreate.count; sleep 2
    idempotent: false
  - id: after
    needs: [recreate]
    run: echo x >> after.count
"#,
    );
    let mut child = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_for_file(&sandbox, "recreate.count");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let _ = child.wait();

    let first = sandbox.run(&["resume", "1"]);
    assert_eq!(first.code, 3, "{}\n{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("recreate"), "{}", first.stdout);
    assert_eq!(sandbox.status(1)["status"], "needs_attention");
    assert_eq!(sandbox.count("recreate.count"), 1, "not repeated without a decision");

    let again = sandbox.run(&["resume", "1"]);
    assert_eq!(again.code, 3, "resume without a decision is refused: {}", again.stderr);
    assert!(again.stderr.contains("--rerun recreate"), "{}", again.stderr);

    let skipped = sandbox.run(&["resume", "1", "--skip", "recreate"]);
    assert_eq!(skipped.code, 0, "{}\n{}", skipped.stdout, skipped.stderr);
    assert_eq!(sandbox.count("recreate.count"), 1);
    assert_eq!(step_statuses(&sandbox.status(1)), ["recreate=skipped", "after=skipped"]);
}

#[test]
fn rerun_decision_runs_the_step_again() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "unsafe.yaml",
        r#"
name: unsafe
steps:
  - id: recreate
    run: echo x >> recreate.count; [ -e second ] || { touch second; sleep 30; }
    idempotent: false
"#,
    );
    let mut child = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_for_file(&sandbox, "second");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let _ = child.wait();
    let rerun = sandbox.run(&["resume", "1", "--rerun", "recreate"]);
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    assert_eq!(sandbox.count("recreate.count"), 2);
}

#[test]
fn ctrl_c_records_the_interruption_and_resume_goes_on() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "ctrlc.yaml",
        r#"
name: ctrlc
steps:
  - id: long
    run: echo x >> long.count; [ -e fast ] || sleep 30
  - id: next
    needs: [long]
    run: echo x >> next.count
"#,
    );
    let mut child = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_for_file(&sandbox, "long.count");
    let started = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::INT,
    )
    .expect("send SIGINT");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(15), "the step's process group was not stopped");
    let events = sandbox.events(1);
    let interrupted = of_type(&events, "run_interrupted");
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["running"], serde_json::json!(["long"]));
    assert_eq!(sandbox.status(1)["status"], "interrupted");

    // The step is safe to repeat: resume runs it again (it is quick now) and goes on.
    sandbox.write("ctrlc.yaml", "# changed on disk; the run keeps its own definition\n");
    std::fs::write(sandbox.path().join("fast"), "").expect("marker");
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stderr.contains("has changed since the run started"), "{}", resumed.stderr);
    assert_eq!(sandbox.count("long.count"), 2, "the interrupted step ran again");
    assert_eq!(sandbox.count("next.count"), 1);
}

const CHECKED: &str = r#"
name: checked
steps:
  - id: recreate
    # Takes effect (when told to), then takes long: the test kills the engine meanwhile.
    run: |
      echo x >> recreate.count
      if [ "$(wc -l < recreate.count)" -ge 2 ]; then echo '{"value": "v2"}'; exit 0; fi
      if [ -e make_effect ]; then echo v1 > effect; fi
      touch started
      sleep 30
    idempotent: false
    check:
      run: |
        if [ -e effect ]; then printf '{"there": true, "value": "%s"}\n' "$(cat effect)"; else echo '{"there": false}'; fi
      done: json.there
    outputs:
      value: "{{ json.value }}"
  - id: after
    needs: [recreate]
    run: echo {{ steps.recreate.outputs.value }} > after.out
"#;

/// Starts the workflow, waits until `recreate` is mid-way, and SIGKILLs the engine.
fn crash_in_the_middle_of_recreate(sandbox: &Sandbox) {
    let workflow = sandbox.write("checked.yaml", CHECKED);
    let mut child = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_for_file(sandbox, "started");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let _ = child.wait();
}

#[test]
fn a_check_that_finds_the_effect_records_success_without_running_the_step_again() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path().join("make_effect"), "").expect("marker");
    crash_in_the_middle_of_recreate(&sandbox);
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sandbox.count("recreate.count"), 1, "the step did not run again");
    let after = std::fs::read_to_string(sandbox.path().join("after.out")).expect("after ran");
    assert_eq!(after.trim(), "v1", "the step's outputs come from what the check saw");
    let events = sandbox.events(1);
    let checked = of_type(&events, "step_checked");
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0]["done"], true);
    assert_eq!(of_type(&events, "step_check_started").len(), 1);
    assert_eq!(sandbox.status(1)["steps"][0]["status"], "succeeded");
}

#[test]
fn a_check_that_finds_no_effect_runs_the_step_again() {
    let sandbox = Sandbox::new();
    crash_in_the_middle_of_recreate(&sandbox);
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sandbox.count("recreate.count"), 2, "the step ran again");
    let after = std::fs::read_to_string(sandbox.path().join("after.out")).expect("after ran");
    assert_eq!(after.trim(), "v2");
    let events = sandbox.events(1);
    assert_eq!(of_type(&events, "step_checked")[0]["done"], false);
}
