//! Table tests of `apply` and `decide`: a workflow, a list of events, and what must be decided next.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::event::{Event, EventKind, RunStarted};
use crate::ids::{Attempt, RunId, StepId};
use crate::mask::Masker;
use crate::step::StepResult;
use crate::template::Templates;
use crate::testkit::workflow;

const DIAMOND: &str = "
name: diamond
steps:
  - id: a
    run: echo a
  - id: b
    needs: [a]
    run: echo b
  - id: c
    needs: [a]
    run: echo c
  - id: d
    needs: [b, c]
    run: echo d
";

const BRANCH: &str = "
name: branch
steps:
  - id: x
    run: exit 1
    continue_on_error: true
  - id: on_failure
    needs: [x]
    if: steps.x.outcome == 'failure'
    run: echo plan b
  - id: on_success
    needs: [x]
    if: steps.x.outcome == 'success'
    run: echo fine
  - id: after
    needs: [x]
    run: echo after
";

const RETRY: &str = "
name: retry
steps:
  - id: flaky
    run: exit 1
    retry: { attempts: 3, delay: 2s, backoff: 2.0 }
  - id: next
    needs: [flaky]
    run: echo next
";

const UNSAFE: &str = "
name: unsafe
steps:
  - id: read
    run: echo read
  - id: write
    run: echo write
    idempotent: false
  - id: last
    needs: [read, write]
    run: echo last
";

const WIDE: &str = "
name: wide
max_parallel: 2
steps:
  - id: s1
    run: 'true'
  - id: s2
    run: 'true'
  - id: s3
    run: 'true'
";

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + seconds, 0).single().expect("valid time")
}

fn id(s: &str) -> StepId {
    StepId::new(s).expect("valid id")
}

fn started(step: &str, attempt: u32) -> EventKind {
    EventKind::StepStarted { step: id(step), attempt: Attempt(attempt) }
}

fn ok(step: &str, attempt: u32) -> EventKind {
    EventKind::StepSucceeded {
        step: id(step),
        attempt: Attempt(attempt),
        outputs: serde_json::Map::new(),
        exit_code: Some(0),
        artifacts: vec![],
        duration_ms: 1,
    }
}

fn failed(step: &str, attempt: u32, retry_at: Option<i64>) -> EventKind {
    EventKind::StepFailed {
        step: id(step),
        attempt: Attempt(attempt),
        error: "exit status 1".to_owned(),
        outputs: serde_json::Map::new(),
        retry_at: retry_at.map(t),
        exit_code: Some(1),
        artifacts: vec![],
        duration_ms: 1,
    }
}

fn skipped(step: &str) -> EventKind {
    EventKind::StepSkipped { step: id(step), reason: "test".to_owned() }
}

fn resumed(rerun: &[&str], skip: &[&str]) -> EventKind {
    EventKind::RunResumed { rerun: rerun.iter().map(|s| id(s)).collect(), skip: skip.iter().map(|s| id(s)).collect() }
}

fn fold(yaml: &str, events: &[EventKind]) -> RunState {
    let loaded = workflow(yaml);
    let first = Event {
        at: t(0),
        kind: EventKind::RunStarted(Box::new(RunStarted {
            workflow: loaded.workflow,
            source_hash: loaded.source_hash,
            source_path: "test.yaml".to_owned(),
            inputs: serde_json::Map::new(),
            parent: None,
        })),
    };
    let run_id = RunId::new(1).expect("non-zero");
    let mut state = RunState::start(run_id, &first).expect("run_started");
    for (i, kind) in events.iter().enumerate() {
        let event = Event { at: t(i as i64 + 1), kind: kind.clone() };
        state.apply(&event).unwrap_or_else(|e| panic!("event {i} does not apply: {e}"));
    }
    state
}

fn render(decision: &Decision) -> String {
    let mut parts: Vec<String> = decision
        .actions
        .iter()
        .map(|action| match action {
            Action::StartStep { step, attempt } => format!("start {step}#{attempt}"),
            Action::CheckStep { step, attempt } => format!("check {step}#{attempt}"),
            Action::SkipStep { step, reason } => format!("skip {step} ({reason})"),
            Action::FailStep { step, error } => format!("fail {step} ({error})"),
            Action::NeedsAttention { steps, .. } => {
                format!("attention {}", steps.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            }
            Action::FinishRun { succeeded: true, .. } => "succeed".to_owned(),
            Action::FinishRun { succeeded: false, failed_steps, .. } => {
                format!("fail run [{}]", failed_steps.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            }
        })
        .collect();
    if let Some(wake) = decision.wake_at {
        parts.push(format!("wake +{}s", (wake - t(0)).num_seconds()));
    }
    parts.join("; ")
}

/// Folds `events`, decides at time `now` (seconds after the start), and compares.
#[track_caller]
fn check(yaml: &str, events: &[EventKind], now: i64, expected: &str) {
    let state = fold(yaml, events);
    let decision = decide(&state, t(now), &Templates::new());
    assert_eq!(render(&decision), expected);
}

#[test]
fn diamond_runs_in_graph_order() {
    check(DIAMOND, &[], 1, "start a#1");
    check(DIAMOND, &[started("a", 1)], 1, "");
    check(DIAMOND, &[started("a", 1), ok("a", 1)], 2, "start b#1; start c#1");
    check(DIAMOND, &[started("a", 1), ok("a", 1), started("b", 1), started("c", 1), ok("b", 1)], 5, "");
    check(
        DIAMOND,
        &[started("a", 1), ok("a", 1), started("b", 1), started("c", 1), ok("b", 1), ok("c", 1)],
        6,
        "start d#1",
    );
    check(
        DIAMOND,
        &[
            started("a", 1),
            ok("a", 1),
            started("b", 1),
            started("c", 1),
            ok("b", 1),
            ok("c", 1),
            started("d", 1),
            ok("d", 1),
        ],
        9,
        "succeed",
    );
}

#[test]
fn failure_skips_dependents_and_fails_the_run() {
    check(
        DIAMOND,
        &[started("a", 1), failed("a", 1, None)],
        2,
        "skip b (needs `a`, which failed); skip c (needs `a`, which failed)",
    );
    check(
        DIAMOND,
        &[started("a", 1), failed("a", 1, None), skipped("b"), skipped("c")],
        2,
        "skip d (needs `b`, which was skipped)",
    );
    check(
        DIAMOND,
        &[started("a", 1), failed("a", 1, None), skipped("b"), skipped("c"), skipped("d")],
        2,
        "fail run [a]",
    );
}

#[test]
fn conditions_on_outcomes_and_continue_on_error() {
    let after_failure = [started("x", 1), failed("x", 1, None)];
    check(
        BRANCH,
        &after_failure,
        2,
        "start on_failure#1; skip on_success (condition `steps.x.outcome == 'success'` is false); start after#1",
    );
    let mut all = after_failure.to_vec();
    all.extend([
        started("on_failure", 1),
        skipped("on_success"),
        started("after", 1),
        ok("on_failure", 1),
        ok("after", 1),
    ]);
    check(BRANCH, &all, 9, "succeed");
    let after_success = [started("x", 1), ok("x", 1)];
    check(
        BRANCH,
        &after_success,
        2,
        "skip on_failure (condition `steps.x.outcome == 'failure'` is false); start on_success#1; start after#1",
    );
}

#[test]
fn retries_wait_for_retry_at() {
    check(RETRY, &[started("flaky", 1), failed("flaky", 1, Some(10))], 5, "wake +10s");
    check(RETRY, &[started("flaky", 1), failed("flaky", 1, Some(10))], 10, "start flaky#2");
    check(
        RETRY,
        &[started("flaky", 1), failed("flaky", 1, Some(10)), started("flaky", 2), failed("flaky", 2, None)],
        20,
        "skip next (needs `flaky`, which failed)",
    );
}

#[test]
fn retry_at_follows_the_policy() {
    let state = fold(RETRY, &[started("flaky", 1)]);
    let retry_at = state.retry_at_after_failure(&id("flaky"), Attempt(1), t(100), 0);
    assert_eq!(retry_at, Some(t(102)));
    let state = fold(RETRY, &[started("flaky", 1), failed("flaky", 1, Some(2)), started("flaky", 2)]);
    let retry_at = state.retry_at_after_failure(&id("flaky"), Attempt(2), t(100), 0);
    assert_eq!(retry_at, Some(t(104)));
    let state = fold(
        RETRY,
        &[
            started("flaky", 1),
            failed("flaky", 1, Some(2)),
            started("flaky", 2),
            failed("flaky", 2, Some(4)),
            started("flaky", 3),
        ],
    );
    let retry_at = state.retry_at_after_failure(&id("flaky"), Attempt(3), t(100), 0);
    assert_eq!(retry_at, None, "the third attempt was the last");
}

#[test]
fn resume_keeps_a_pending_retry_schedule() {
    // Crash while waiting for a retry: the resumed run waits out the same retry_at.
    check(RETRY, &[started("flaky", 1), failed("flaky", 1, Some(30)), resumed(&[], &[])], 12, "wake +30s");
}

#[test]
fn resume_repeats_safe_orphans_and_stops_for_unsafe_ones() {
    check(DIAMOND, &[started("a", 1), resumed(&[], &[])], 2, "start a#2");
    check(UNSAFE, &[started("read", 1), started("write", 1), resumed(&[], &[])], 3, "attention write");
    check(
        UNSAFE,
        &[started("read", 1), started("write", 1), ok("read", 1), resumed(&["write"], &[])],
        4,
        "start write#2",
    );
    check(
        UNSAFE,
        &[started("read", 1), started("write", 1), ok("read", 1), resumed(&[], &["write"])],
        4,
        "skip last (needs `write`, which was skipped)",
    );
    let needs_attention = EventKind::RunNeedsAttention { steps: vec![id("write")], reason: "test".to_owned() };
    check(UNSAFE, &[started("read", 1), started("write", 1), resumed(&[], &[]), needs_attention], 4, "");
}

#[test]
fn resume_of_a_failed_run_grants_a_fresh_budget() {
    let events = [
        started("flaky", 1),
        failed("flaky", 1, Some(2)),
        started("flaky", 2),
        failed("flaky", 2, Some(4)),
        started("flaky", 3),
        failed("flaky", 3, None),
        skipped("next"),
        EventKind::RunFailed { failed_steps: vec![id("flaky")], outputs: serde_json::Map::new(), error: None },
    ];
    check(RETRY, &events, 9, "");
    let mut resumed_events = events.to_vec();
    resumed_events.push(resumed(&[], &[]));
    check(RETRY, &resumed_events, 10, "start flaky#4");
    let state = fold(RETRY, &resumed_events);
    assert_eq!(state.status, RunStatus::Running);
    assert_eq!(state.step(&id("next")).map(|s| s.phase), Some(StepPhase::Pending));
    resumed_events.push(started("flaky", 4));
    let state = fold(RETRY, &resumed_events);
    let retry_at = state.retry_at_after_failure(&id("flaky"), Attempt(4), t(100), 0);
    assert_eq!(retry_at, Some(t(102)), "attempt 4 is the first of a fresh budget of 3");
}

#[test]
fn parallelism_is_bounded() {
    check(WIDE, &[], 0, "start s1#1; start s2#1");
    check(WIDE, &[started("s1", 1), started("s2", 1)], 0, "");
    check(WIDE, &[started("s1", 1), started("s2", 1), ok("s1", 1)], 0, "start s3#1");
}

#[test]
fn conditions_that_do_not_evaluate_fail_the_step() {
    let yaml = "
name: bad-condition
inputs:
  n: { type: int, default: 1 }
steps:
  - id: a
    run: echo
    outputs:
      value: '{{ stdout }}'
  - id: b
    needs: [a]
    if: steps.a.outputs.value.missing.deeper == 1
    run: echo
";
    check(
        yaml,
        &[started("a", 1), ok("a", 1)],
        2,
        "fail b (condition `steps.a.outputs.value.missing.deeper == 1` could not be evaluated: undefined value: `steps.a.outputs.value` is undefined)",
    );
}

#[test]
fn terminal_runs_decide_nothing() {
    let events = [started("a", 1), EventKind::RunCancelled { reason: "operator".to_owned() }];
    check(DIAMOND, &events, 2, "");
    let state = fold(DIAMOND, &events);
    assert_eq!(state.status, RunStatus::Cancelled);
    let events = [started("a", 1), EventKind::RunInterrupted { reason: "ctrl-c".to_owned(), running: vec![id("a")] }];
    let state = fold(DIAMOND, &events);
    assert_eq!(state.status, RunStatus::Interrupted);
    assert_eq!(state.step(&id("a")).map(|s| s.phase), Some(StepPhase::Orphan));
}

#[test]
fn events_that_do_not_fit_are_errors_not_panics() {
    let mut state = fold(DIAMOND, &[]);
    let event = |kind| Event { at: t(1), kind };
    assert!(state.apply(&event(ok("a", 1))).is_err(), "result without start");
    assert!(state.apply(&event(started("nope", 1))).is_err(), "unknown step");
    assert!(state.apply(&event(started("a", 1))).is_ok());
    assert!(state.apply(&event(started("a", 1))).is_err(), "started twice");
    assert!(state.apply(&event(ok("a", 2))).is_err(), "wrong attempt");
}

#[test]
fn template_context_has_finished_steps_only() {
    let state = fold(DIAMOND, &[started("a", 1), ok("a", 1), started("b", 1)]);
    let context = state.template_context();
    assert_eq!(context["steps"]["a"]["outcome"], json!("success"));
    assert!(context["steps"].get("b").is_none());
    assert_eq!(context["run"]["workflow"], json!("diamond"));
}

const CHECKED: &str = "
name: checked
steps:
  - id: read
    run: echo read
  - id: write
    run: echo write
    idempotent: false
    check:
      run: echo done
      done: stdout == 'done'
  - id: last
    needs: [write]
    run: echo last
";

fn check_started(step: &str, attempt: u32) -> EventKind {
    EventKind::StepCheckStarted { step: id(step), attempt: Attempt(attempt) }
}

fn checked(step: &str, attempt: u32, done: bool, error: Option<&str>) -> EventKind {
    EventKind::StepChecked {
        step: id(step),
        attempt: Attempt(attempt),
        done,
        outputs: serde_json::Map::new(),
        error: error.map(str::to_owned),
        artifacts: vec![],
    }
}

#[test]
fn an_unsafe_orphan_with_a_check_is_looked_at_before_anything_else() {
    let crashed = [started("read", 1), started("write", 1), resumed(&[], &[])];
    check(CHECKED, &crashed, 3, "check write#1");
    let mut looking = crashed.to_vec();
    looking.push(check_started("write", 1));
    check(CHECKED, &looking, 4, "");
    let mut found = looking.clone();
    found.push(checked("write", 1, true, None));
    check(CHECKED, &found, 5, "start read#2; start last#1");
    let mut not_found = looking.clone();
    not_found.push(checked("write", 1, false, None));
    check(CHECKED, &not_found, 5, "start read#2; start write#2");
    let mut failed = looking.clone();
    failed.push(checked("write", 1, false, Some("kubectl: connection refused")));
    check(CHECKED, &failed, 5, "attention write");
    let mut interrupted = looking;
    interrupted.push(resumed(&[], &[]));
    check(CHECKED, &interrupted, 5, "check write#1");
}

// What a finished attempt means: `RunState::on_step_finished`, `on_check_finished` and the
// run's end with its outputs. Times are seconds after the run started; the attempt finishes
// at `now`.

const POLL: &str = "
name: poll
steps:
  - id: wait
    run: echo
    outputs:
      status: '{{ stdout }}'
    until: outputs.status == 'ready'
    poll: { interval: 10s, timeout: 60s }
    retry: { attempts: 2, delay: 5s }
";

const OUTPUTS: &str = "
name: outputs
steps:
  - id: probe
    run: echo
    outputs:
      port: '{{ json.port }}'
    retry: { attempts: 3, delay: 4s, backoff: 1.0, jitter: true }
outputs:
  port: '{{ steps.probe.outputs.port }}'
  deeper: '{{ steps.probe.outputs.port.number.deeper }}'
";

fn values(pairs: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    pairs.as_object().cloned().unwrap_or_default()
}

/// An event a judgement produced, in a line: what a table row compares.
fn describe(kind: &EventKind) -> String {
    let after = |at: &DateTime<Utc>| (*at - t(0)).num_seconds();
    let outputs = |outputs: &serde_json::Map<String, serde_json::Value>| serde_json::Value::Object(outputs.clone());
    match kind {
        EventKind::StepSucceeded { outputs: o, .. } => format!("succeeded {}", outputs(o)),
        EventKind::StepPolled { outputs: o, next_at, .. } => format!("polled {} next +{}s", outputs(o), after(next_at)),
        EventKind::StepFailed { error, retry_at: Some(at), .. } => format!("failed ({error}) retry +{}s", after(at)),
        EventKind::StepFailed { error, retry_at: None, .. } => format!("failed ({error})"),
        EventKind::StepChecked { done, error: Some(error), .. } => format!("checked done={done} ({error})"),
        EventKind::StepChecked { done, outputs: o, .. } => format!("checked done={done} {}", outputs(o)),
        EventKind::RunSucceeded { outputs: o } => format!("run succeeded {}", outputs(o)),
        EventKind::RunFailed { failed_steps, outputs: o, error } => {
            let steps: Vec<String> = failed_steps.iter().map(ToString::to_string).collect();
            format!("run failed [{}] {} {}", steps.join(","), outputs(o), error.as_deref().unwrap_or("-"))
        }
        other => other.type_name().to_owned(),
    }
}

/// Folds `events`, hands the state attempt `attempt` of `step` finishing at `now` with
/// `result` (the kind provides no outputs; the masker hides `hunter2`), and compares what it
/// decides to record.
#[track_caller]
fn judge(yaml: &str, events: &[EventKind], step: &str, attempt: u32, result: StepResult, now: i64, expected: &str) {
    let state = fold(yaml, events);
    let masker = Masker::new(["hunter2".to_owned()]);
    let context = state.template_context();
    let judging = Judging {
        templates: &Templates::new(),
        masker: &masker,
        context: &context,
        provided: &[],
        now: t(now),
        jitter_seed: 0,
    };
    let attempted = Attempted { step: id(step), attempt: Attempt(attempt), result, duration_ms: 3 };
    let described: Vec<String> = state.on_step_finished(attempted, judging).iter().map(describe).collect();
    assert_eq!(described.join("; "), expected);
}

fn printed(stdout: &str) -> StepResult {
    StepResult::succeeded(values(json!({ "stdout": stdout })))
}

#[test]
fn a_poll_goes_on_until_its_expression_holds_or_its_deadline_passes() {
    let first = [started("wait", 1)];
    judge(POLL, &first, "wait", 1, printed("ready"), 3, r#"succeeded {"status":"ready"}"#);
    judge(POLL, &first, "wait", 1, printed("pending"), 3, r#"polled {"status":"pending"} next +13s"#);
    // The deadline counts from the first attempt (at +1s): a look at +61s would pass it.
    let later = [
        started("wait", 1),
        EventKind::StepPolled {
            step: id("wait"),
            attempt: Attempt(1),
            outputs: serde_json::Map::new(),
            next_at: t(41),
            artifacts: vec![],
            duration_ms: 1,
        },
        started("wait", 2),
    ];
    judge(POLL, &later, "wait", 2, printed("pending"), 50, r#"polled {"status":"pending"} next +60s"#);
    judge(
        POLL,
        &later,
        "wait",
        2,
        printed("pending"),
        52,
        // Polls count as attempts: the second was the last of the budget of 2.
        "failed (`until: outputs.status == 'ready'` was still false after 1m)",
    );
    // A failed attempt is not polled: it fails and the retry policy says when to go on.
    judge(POLL, &first, "wait", 1, StepResult::failed("exit status 1"), 3, "failed (exit status 1) retry +8s");
}

#[test]
fn an_output_that_does_not_evaluate_fails_the_attempt_and_keeps_the_others() {
    let first = [started("probe", 1)];
    judge(
        OUTPUTS,
        &first,
        "probe",
        1,
        StepResult::succeeded(values(json!({ "json": { "port": 8443 } }))),
        2,
        r#"succeeded {"port":8443}"#,
    );
    judge(
        OUTPUTS,
        &first,
        "probe",
        1,
        printed("not json"),
        2,
        "failed (output `port`: undefined value: `json` is undefined (the step's output is not JSON)) retry +4s",
    );
}

#[test]
fn retries_draw_their_jitter_from_the_seed_and_stop_when_the_budget_is_spent() {
    // Jitter draws from the upper half of the delay: seed 0 waits half of it (2s of 4s).
    judge(
        OUTPUTS,
        &[started("probe", 1)],
        "probe",
        1,
        StepResult::failed("refused"),
        10,
        "failed (refused) retry +12s",
    );
    let third = [
        started("probe", 1),
        failed("probe", 1, Some(12)),
        started("probe", 2),
        failed("probe", 2, Some(20)),
        started("probe", 3),
    ];
    judge(OUTPUTS, &third, "probe", 3, StepResult::failed("refused"), 30, "failed (refused)");
    // Another seed, another point in the same half: a replay of a seed agrees with itself.
    let state = fold(OUTPUTS, &[started("probe", 1)]);
    let late = state.retry_at_after_failure(&id("probe"), Attempt(1), t(10), u64::MAX);
    assert_eq!(late.map(|at| (at - t(10)).num_milliseconds()), Some(4_000));
}

#[test]
fn secrets_are_masked_in_what_a_result_records() {
    judge(
        DIAMOND,
        &[started("a", 1)],
        "a",
        1,
        StepResult::failed("login as admin:hunter2 refused"),
        2,
        "failed (login as admin:*** refused)",
    );
    let mut noted = StepResult::succeeded(serde_json::Map::new());
    noted.notes = vec![
        EventKind::EmailFailed { step: None, error: "SMTP AUTH hunter2 refused".to_owned() },
        EventKind::StepSkipped { step: id("b"), reason: "not a note: dropped".to_owned() },
    ];
    let state = fold(DIAMOND, &[started("a", 1)]);
    let masker = Masker::new(["hunter2".to_owned()]);
    let context = state.template_context();
    let judging = Judging {
        templates: &Templates::new(),
        masker: &masker,
        context: &context,
        provided: &[],
        now: t(2),
        jitter_seed: 0,
    };
    let events = state
        .on_step_finished(Attempted { step: id("a"), attempt: Attempt(1), result: noted, duration_ms: 1 }, judging);
    assert_eq!(events.len(), 2, "the note, then the result: {events:?}");
    assert!(
        matches!(&events[0], EventKind::EmailFailed { error, .. } if error == "SMTP AUTH *** refused"),
        "{events:?}"
    );
    assert!(matches!(events[1], EventKind::StepSucceeded { .. }));
}

#[test]
fn a_check_says_whether_the_effect_is_there() {
    let looking = [started("read", 1), started("write", 1), resumed(&[], &[]), check_started("write", 1)];
    let state = fold(CHECKED, &looking);
    let context = state.template_context();
    let masker = Masker::default();
    let judging = Judging {
        templates: &Templates::new(),
        masker: &masker,
        context: &context,
        provided: &[],
        now: t(5),
        jitter_seed: 0,
    };
    let look = |result: StepResult| {
        let attempted = Attempted { step: id("write"), attempt: Attempt(1), result, duration_ms: 1 };
        state.on_check_finished(attempted, judging).as_ref().map(describe).unwrap_or_default()
    };
    assert_eq!(look(printed("done")), "checked done=true {}");
    assert_eq!(look(printed("not yet")), "checked done=false {}");
    assert_eq!(
        look(StepResult::failed("kubectl: connection refused")),
        "checked done=false (kubectl: connection refused)"
    );
    assert_eq!(
        look(StepResult::succeeded(serde_json::Map::new())),
        "checked done=false (`done: stdout == 'done'` could not be evaluated: undefined value: `stdout` is undefined)"
    );
    let attempted = Attempted { step: id("read"), attempt: Attempt(1), result: printed("done"), duration_ms: 1 };
    assert_eq!(state.on_check_finished(attempted, judging), None, "a step without a check");
}

/// Decides on a finished run and describes the event that ends it.
#[track_caller]
fn finish(yaml: &str, events: &[EventKind], expected: &str) {
    let state = fold(yaml, events);
    let decision = decide(&state, t(99), &Templates::new());
    let ends: Vec<String> = decision
        .actions
        .iter()
        .filter(|action| matches!(action, Action::FinishRun { .. }))
        .map(|action| describe(&action.event_kind(&Masker::new(["8443".to_owned()]))))
        .collect();
    assert_eq!(ends.join("; "), expected);
}

#[test]
fn a_run_whose_outputs_do_not_evaluate_fails_and_a_failed_run_keeps_what_does() {
    let port = |n: serde_json::Value| {
        let mut outputs = serde_json::Map::new();
        outputs.insert("port".to_owned(), n);
        EventKind::StepSucceeded {
            step: id("probe"),
            attempt: Attempt(1),
            outputs,
            exit_code: Some(0),
            artifacts: vec![],
            duration_ms: 1,
        }
    };
    finish(
        OUTPUTS,
        &[started("probe", 1), port(json!(80))],
        "run failed [] {\"port\":80} workflow output `deeper`: undefined value: `steps.probe.outputs.port.number` is undefined",
    );
    // Outputs are masked like everything else the run records.
    finish(
        OUTPUTS,
        &[started("probe", 1), port(json!("8443"))],
        "run failed [] {\"port\":\"***\"} workflow output `deeper`: undefined value: `steps.probe.outputs.port.number` is undefined",
    );
    finish(OUTPUTS, &[started("probe", 1), failed("probe", 1, None)], "run failed [probe] {} -");
    finish(
        DIAMOND,
        &[
            started("a", 1),
            ok("a", 1),
            started("b", 1),
            started("c", 1),
            ok("b", 1),
            ok("c", 1),
            started("d", 1),
            ok("d", 1),
        ],
        "run succeeded {}",
    );
}

/// A deterministic generator for the simulation below (xorshift64*).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

/// Drives runs of several workflows with random results, crashes and resumes, and checks
/// after every event that the frontier `apply` keeps equals one worked out from scratch, and
/// that every run ends.
#[test]
fn the_kept_frontier_always_equals_one_worked_out_from_scratch() {
    const HANDLED: &str = "
name: handled
max_parallel: 3
steps:
  - id: a
    run: echo
    retry: { attempts: 2, delay: 1s }
  - id: b
    needs: [a]
    run: echo
    continue_on_error: true
  - id: c
    needs: [a]
    run: echo
    idempotent: false
  - id: d
    needs: [b, c]
    if: steps.b.outcome == 'success'
    run: echo
  - id: e
    needs: [a, d]
    run: echo
on_failure:
  - id: tell
    run: echo
";
    let seed = 0x5EED_u64;
    eprintln!("frontier simulation seed {seed:#x}");
    let mut dice = Dice(seed);
    let templates = Templates::new();
    for round in 0..400 {
        let yaml = [DIAMOND, BRANCH, RETRY, UNSAFE, WIDE, CHECKED, HANDLED][round % 7];
        let mut state = fold(yaml, &[]);
        let mut clock = 1;
        let apply = |state: &mut RunState, kind: EventKind, clock: &mut i64| {
            *clock += 1;
            state
                .apply(&Event { at: t(*clock), kind: kind.clone() })
                .unwrap_or_else(|e| panic!("round {round}: {kind:?} does not apply: {e}"));
            assert_eq!(state.frontier, Frontier::of(state), "round {round}, after {kind:?}");
        };
        for _ in 0..200 {
            let decision = decide(&state, t(clock), &templates);
            for action in &decision.actions {
                apply(&mut state, action.event_kind(&Masker::default()), &mut clock);
            }
            match state.status {
                RunStatus::Succeeded | RunStatus::Cancelled => break,
                RunStatus::Failed if dice.below(3) == 0 => break,
                RunStatus::Failed | RunStatus::Interrupted | RunStatus::NeedsAttention => {
                    let orphans: Vec<StepId> = state
                        .workflow
                        .steps
                        .iter()
                        .zip(&state.steps)
                        .filter(|(_, s)| s.phase == StepPhase::Orphan)
                        .map(|(spec, _)| spec.id.clone())
                        .collect();
                    let (rerun, skip) = if dice.below(2) == 0 { (orphans, vec![]) } else { (vec![], orphans) };
                    apply(&mut state, EventKind::RunResumed { rerun, skip }, &mut clock);
                    continue;
                }
                RunStatus::Running => {}
            }
            let busy: Vec<(StepId, StepPhase, Attempt)> = state
                .workflow
                .steps
                .iter()
                .zip(&state.steps)
                .filter(|(_, s)| matches!(s.phase, StepPhase::Running | StepPhase::Checking))
                .map(|(spec, s)| (spec.id.clone(), s.phase, s.attempt))
                .collect();
            if busy.is_empty() {
                // Nothing runs: only a retry is due later.
                clock += 60;
                continue;
            }
            let (step, phase, attempt) = busy[dice.below(busy.len())].clone();
            let kind = match (phase, dice.below(10)) {
                (_, 0) => EventKind::RunInterrupted { reason: "crash".to_owned(), running: vec![] },
                (StepPhase::Checking, n) => EventKind::StepChecked {
                    step,
                    attempt,
                    done: n % 2 == 0,
                    outputs: serde_json::Map::new(),
                    error: (n == 9).then(|| "cannot tell".to_owned()),
                    artifacts: vec![],
                },
                (_, 1..=2) => {
                    let retry_at = state.retry_at_after_failure(&step, attempt, t(clock), 0);
                    EventKind::StepFailed {
                        step,
                        attempt,
                        error: "exit status 1".to_owned(),
                        outputs: serde_json::Map::new(),
                        retry_at,
                        exit_code: Some(1),
                        artifacts: vec![],
                        duration_ms: 1,
                    }
                }
                (_, 3) => EventKind::StepPolled {
                    step,
                    attempt,
                    outputs: serde_json::Map::new(),
                    next_at: t(clock + 5),
                    artifacts: vec![],
                    duration_ms: 1,
                },
                _ => ok(step.as_str(), attempt.0),
            };
            apply(&mut state, kind, &mut clock);
        }
        assert!(
            matches!(state.status, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled),
            "round {round} ({}) did not end: {:?}",
            state.workflow.name,
            state.status
        );
    }
}
