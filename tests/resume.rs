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
    crate::util::sigkill(&mut child);

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

/// A sequential part (`a`, then `d`) around a parallel part (`b`, `c`).
const CRASH_POINTS: &str = r#"
name: quick
inputs:
  fail_c: { type: bool, default: false }
steps:
  - id: a
    run: echo x >> a.count; echo a
    outputs: { said: "{{ stdout }}" }
  - id: b
    needs: [a]
    run: echo x >> b.count; echo b
    outputs: { said: "{{ stdout }}" }
  - id: c
    needs: [a]
    run: echo x >> c.count; [ {{ inputs.fail_c }} = false ]; echo c
    outputs: { said: "{{ stdout }}" }
  - id: d
    needs: [b, c]
    run: echo x >> d.count; echo d
    outputs: { said: "{{ stdout }}" }
"#;

/// Runs `yaml` cleanly, then once per event boundary N with `RUNBOOK_CRASH_AFTER_EVENTS=N`,
/// resuming until the run ends, and checks it ends as the clean run did with nothing lost or doubled.
fn crash_at_every_boundary(yaml: &str, inputs: &[&str], sequential: &[&str], parallel: &[&str]) {
    let run_args = |sandbox: &Sandbox| {
        let path = sandbox.write("workflow.yaml", yaml);
        let mut args = vec!["run".to_owned(), path.to_str().expect("utf-8 path").to_owned()];
        for input in inputs {
            args.extend(["-i".to_owned(), (*input).to_owned()]);
        }
        args
    };
    let clean_dir = Sandbox::new();
    let args = run_args(&clean_dir);
    let clean = clean_dir.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!clean.stderr.contains("panicked"));
    let clean_status = clean_dir.status(1);
    let total = clean_dir.events(1).len() as u64;
    let outputs = |status: &serde_json::Value| -> Vec<serde_json::Value> {
        status["steps"].as_array().expect("steps").iter().map(|s| s["outputs"].clone()).collect()
    };
    for n in 1..total {
        let crash_dir = Sandbox::new();
        let args = run_args(&crash_dir);
        let mut command = crash_dir.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        command.env("RUNBOOK_CRASH_AFTER_EVENTS", n.to_string());
        let crashed = Run::from(command.output().expect("run"));
        assert_ne!(crashed.code, 0, "N={n}: the process must abort");
        let mut resumes = 0;
        loop {
            let status = crash_dir.status(1);
            if status["status"] == "succeeded" || status["status"] == "failed" {
                break;
            }
            resumes += 1;
            assert!(resumes <= 2, "N={n}: still {} after resuming", status["status"]);
            let resumed = crash_dir.run(&["resume", "1"]);
            assert!(!resumed.stderr.contains("panicked"), "N={n}: {}", resumed.stderr);
        }
        let status = crash_dir.status(1);
        assert_eq!(status["status"], clean_status["status"], "N={n}: the same end as the clean run");
        assert_eq!(step_statuses(&status), step_statuses(&clean_status), "N={n}");
        assert_eq!(outputs(&status), outputs(&clean_status), "N={n}: the same outputs");
        let events = crash_dir.events(1);
        for step in sequential.iter().chain(parallel) {
            let results = events
                .iter()
                .filter(|e| {
                    e["step"] == *step
                        && (e["type"] == "step_succeeded"
                            || (e["type"] == "step_failed" && e.get("retry_at").is_none()))
                })
                .count();
            let expected = usize::from(
                clean_status["steps"]
                    .as_array()
                    .expect("steps")
                    .iter()
                    .any(|s| s["id"] == *step && s["status"] != "skipped"),
            );
            assert_eq!(results, expected, "N={n}: {step} has exactly one final result");
        }
        for step in sequential {
            let ran = crash_dir.count(&format!("{step}.count"));
            assert_eq!(
                ran,
                clean_dir.count(&format!("{step}.count")),
                "N={n}: sequential step {step} ran exactly as often as in the clean run"
            );
        }
        for step in parallel {
            let ran = crash_dir.count(&format!("{step}.count"));
            assert!(ran <= 2 * clean_dir.count(&format!("{step}.count")).max(1), "N={n}: {step} ran {ran} times");
        }
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "N={n}: seqs contiguous");
    }
}

#[test]
fn crash_after_every_event_then_resume_reaches_the_same_end() {
    crash_at_every_boundary(CRASH_POINTS, &[], &["a", "d"], &["b", "c"]);
}

#[test]
fn crash_after_every_event_of_a_failing_run_ends_in_the_same_failure() {
    crash_at_every_boundary(CRASH_POINTS, &["fail_c=true"], &["a", "d"], &["b", "c"]);
}

#[test]
fn a_resumed_run_waits_out_the_recorded_retry_time_rather_than_restarting_the_backoff() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "retry.yaml",
        r#"
name: retry
steps:
  - id: flaky
    run: echo x >> flaky.count; [ "$(wc -l < flaky.count)" -ge 2 ]
    retry: { attempts: 2, delay: 2s }
"#,
    );
    // run_started, step_started, step_failed (with retry_at): crash right there.
    let mut command = sandbox.command(&["run", workflow.to_str().expect("utf-8 path")]);
    command.env("RUNBOOK_CRASH_AFTER_EVENTS", "3");
    assert_ne!(Run::from(command.output().expect("run")).code, 0);
    std::thread::sleep(Duration::from_millis(1000));
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let events = sandbox.events(1);
    let time = |e: &serde_json::Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(e[field].as_str().expect("a time")).expect("rfc 3339")
    };
    let failed = of_type(&events, "step_failed")[0];
    let retry_at = time(failed, "retry_at");
    let second = of_type(&events, "step_started").into_iter().find(|e| e["attempt"] == 2).expect("attempt 2");
    let started = time(second, "at");
    assert!(started >= retry_at, "attempt 2 waited for its retry time");
    assert!(
        (started - retry_at).num_milliseconds() < 800,
        "attempt 2 started at the recorded retry time ({retry_at}), not a full delay after the resume ({started})"
    );
    assert_eq!(sandbox.count("flaky.count"), 2);
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
    crate::util::sigkill(&mut child);

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
    crate::util::sigkill(&mut child);
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
    crate::util::sigkill(&mut child);
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
