//! Step kinds and vocabulary beyond `run`: `set`, polling with `until`, child runs with `workflow`.

use crate::util::{Sandbox, of_type, step_statuses};

#[test]
fn polling_keeps_going_until_the_condition_holds() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "poll.yaml",
        r#"
name: poll
steps:
  - id: wait_ip
    # The external IP appears on the third look.
    run: |
      echo x >> polls
      if [ "$(wc -l < polls)" -ge 3 ]; then echo '{"ip": "127.0.0.9"}'; else echo '{"ip": ""}'; fi
    outputs:
      ip: "{{ json.ip }}"
    until: outputs.ip != ''
    poll: { interval: 100ms, timeout: 10s }
  - id: verdict
    needs: [wait_ip]
    set:
      ip: "{{ steps.wait_ip.outputs.ip }}"
      found: "{{ steps.wait_ip.outputs.ip != '' }}"
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert_eq!(sandbox.count("polls"), 3);
    let events = sandbox.events(result.run_id());
    let polled = of_type(&events, "step_polled");
    assert_eq!(polled.len(), 2, "two polls that did not meet the condition");
    assert!(polled.iter().all(|e| e["next_at"].is_string()));
    let status = sandbox.status(result.run_id());
    assert_eq!(status["steps"][1]["outputs"], serde_json::json!({"ip": "127.0.0.9", "found": true}));
}

#[test]
fn polling_gives_up_after_its_timeout() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "never.yaml",
        r#"
name: never
steps:
  - id: wait
    run: |
      echo '{"ready": false}'
    outputs:
      ready: "{{ json.ready }}"
    until: outputs.ready
    poll: { interval: 100ms, timeout: 400ms }
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    let status = sandbox.status(result.run_id());
    let error = status["steps"][0]["error"].as_str().expect("error");
    assert!(error.contains("was still false after 400ms"), "{error}");
    assert_eq!(status["steps"][0]["outputs"]["ready"], false, "the last poll's outputs are kept");
}

#[test]
fn a_crash_while_polling_resumes_the_poll_not_from_zero() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "poll.yaml",
        r#"
name: poll
steps:
  - id: wait
    run: |
      echo x >> polls
      if [ "$(wc -l < polls)" -ge 4 ]; then echo '{"ok": true}'; else echo '{"ok": false}'; fi
    outputs:
      ok: "{{ json.ok }}"
    until: outputs.ok
    poll: { interval: 100ms, timeout: 30s }
"#,
    );
    // run_started, then (started, polled) twice, then crash.
    let mut command = sandbox.command(&["run", workflow.to_str().expect("utf-8 path")]);
    command.env("RUNBOOK_CRASH_AFTER_EVENTS", "5");
    let crashed = crate::util::Run::from(command.output().expect("run"));
    assert_ne!(crashed.code, 0);
    assert_eq!(sandbox.count("polls"), 2);
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sandbox.count("polls"), 4, "polling went on from the third attempt");
    let events = sandbox.events(1);
    let attempts: Vec<u64> =
        of_type(&events, "step_started").iter().map(|e| e["attempt"].as_u64().expect("attempt")).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

const CHILD: &str = r#"
name: child
inputs:
  target: { type: string }
  fail: { type: bool, default: false }
outputs:
  verdict: "{{ steps.look.outputs.said }}"
steps:
  - id: look
    run: echo "looked at {{ inputs.target }}"; echo x >> look.count
    outputs:
      said: "{{ stdout }}"
  - id: maybe_fail
    needs: [look]
    run: '[ {{ inputs.fail }} = false ] || [ -e fixed ]'
"#;

const PARENT: &str = r#"
name: parent
inputs:
  fail: { type: bool, default: false }
steps:
  - id: diagnose
    workflow:
      name: child
      inputs:
        target: lb
        fail: "{{ inputs.fail }}"
  - id: report
    needs: [diagnose]
    run: echo child said {{ steps.diagnose.outputs.verdict }} in run {{ steps.diagnose.outputs.run_id }}
    outputs:
      line: "{{ stdout }}"
"#;

#[test]
fn a_workflow_step_runs_a_child_and_receives_its_outputs() {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    let parent = sandbox.write("parent.yaml", PARENT);
    let result = sandbox.run(&["run", parent.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert!(result.stdout.contains("diagnose › look"), "child steps show under their parent step:\n{}", result.stdout);
    let status = sandbox.status(1);
    assert_eq!(status["steps"][1]["outputs"]["line"], "child said looked at lb in run 2");
    let child = sandbox.status(2);
    assert_eq!(child["workflow"], "child");
    assert_eq!(child["status"], "succeeded");
    let child_events = sandbox.events(2);
    assert_eq!(child_events[0]["parent"], serde_json::json!({"run_id": 1, "step": "diagnose"}));
}

#[test]
fn resuming_the_parent_resumes_the_child_without_redoing_its_steps() {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    let parent = sandbox.write("parent.yaml", PARENT);
    let failed = sandbox.run(&["run", parent.to_str().expect("utf-8 path"), "-i", "fail=true"]);
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    assert_eq!(step_statuses(&sandbox.status(1)), ["diagnose=failed", "report=skipped"]);
    std::fs::write(sandbox.path().join("fixed"), "").expect("fix");
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(sandbox.count("look.count"), 1, "the child's finished step did not run again");
    let runs = sandbox.run(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "no second child run was started");
}

#[test]
fn a_call_to_a_child_workflow_is_checked_when_the_parent_is_validated() {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    let parent = sandbox.write(
        "parent.yaml",
        r#"
name: parent
steps:
  - id: diagnose
    workflow:
      name: child
      inputs:
        targte: lb
  - id: missing
    workflow: nosuchchild
  - id: report
    needs: [diagnose]
    run: echo {{ steps.diagnose.outputs.verdikt }}
"#,
    );
    let result = sandbox.run(&["validate", parent.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 2);
    assert!(result.stderr.contains("no input `targte` (did you mean `target`?)"), "{}", result.stderr);
    assert!(result.stderr.contains("requires input `target`"), "{}", result.stderr);
    assert!(result.stderr.contains("no workflow `nosuchchild`"), "{}", result.stderr);
    assert!(result.stderr.contains("has no output `verdikt` (did you mean `verdict`?)"), "{}", result.stderr);
}

#[test]
fn on_failure_runs_when_the_run_fails_and_sees_what_failed() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "handler.yaml",
        r#"
name: handler
inputs:
  break_it: { type: bool, default: true }
steps:
  - id: remediate
    run: echo "LB rule missing" >&2; [ {{ inputs.break_it }} = false ]
  - id: verify
    needs: [remediate]
    run: echo verified
on_failure:
  - id: page
    run: echo {{ failure.steps[0].id }} failed with {{ failure.steps[0].error }} > paged
  - id: after_page
    needs: [page]
    run: echo x >> after_page
"#,
    );
    let path = workflow.to_str().expect("utf-8 path");
    let failed = sandbox.run(&["run", path]);
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    let paged = std::fs::read_to_string(sandbox.path().join("paged")).expect("the handler ran");
    assert_eq!(paged.trim(), "remediate failed with exited with status 1: LB rule missing");
    assert_eq!(sandbox.count("after_page"), 1);
    assert_eq!(
        step_statuses(&sandbox.status(1)),
        ["remediate=failed", "verify=skipped", "page=succeeded", "after_page=succeeded"]
    );

    let fine = sandbox.run(&["run", path, "-i", "break_it=false"]);
    assert_eq!(fine.code, 0, "{}\n{}", fine.stdout, fine.stderr);
    assert_eq!(
        step_statuses(&sandbox.status(2)),
        ["remediate=succeeded", "verify=succeeded", "page=skipped", "after_page=skipped"]
    );
    assert_eq!(sandbox.count("after_page"), 1, "the handler did not run for a run that did not fail");
}

#[test]
fn on_failure_steps_cannot_be_needed_by_the_main_graph() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "bad.yaml",
        r#"
name: bad
steps:
  - id: main
    needs: [page]
    run: echo {{ failure.steps }}
on_failure:
  - id: page
    needs: [main]
    run: echo paging
"#,
    );
    let result = sandbox.run(&["validate", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 2);
    assert!(result.stderr.contains("`page` is an on_failure step"), "{}", result.stderr);
    assert!(result.stderr.contains("names only other on_failure steps"), "{}", result.stderr);
    assert!(result.stderr.contains("unknown variable `failure`"), "{}", result.stderr);
}

const APPROVAL: &str = r#"
name: gate
steps:
  - id: ask
    approval:
      prompt: "Recreate the Service? Expect a short outage."
      approvers: [alice]
      timeout: 20s
  - id: recreate
    needs: [ask]
    run: echo x >> recreated
  - id: escalate
    needs: [ask]
    if: steps.ask.outcome == 'failure'
    run: echo {{ steps.ask.outputs.by }} said no >> escalated
"#;

/// Waits until step `step` of run 1 is running.
fn wait_running(sandbox: &Sandbox, step: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let result = sandbox.run(&["status", "1", "--json"]);
        if result.code == 0 {
            let status: serde_json::Value = serde_json::from_str(&result.stdout).expect("json");
            if status["steps"][step]["status"] == "running" {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "step {step} never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_approval_waits_for_an_allowed_operator() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("gate.yaml", APPROVAL);
    let mut run = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_running(&sandbox, 0);
    let mut intruder = sandbox.command(&["approve", "1", "ask"]);
    intruder.env("USER", "mallory");
    let intruder = crate::util::Run::from(intruder.output().expect("approve"));
    assert_eq!(intruder.code, 2, "{}", intruder.stderr);
    assert!(intruder.stderr.contains("mallory may not answer step `ask`"), "{}", intruder.stderr);
    let mut alice = sandbox.command(&["approve", "1", "ask", "--comment", "go ahead"]);
    alice.env("USER", "alice");
    let alice = crate::util::Run::from(alice.output().expect("approve"));
    assert_eq!(alice.code, 0, "{}", alice.stderr);
    assert_eq!(run.wait().expect("wait").code(), Some(0));
    assert_eq!(sandbox.count("recreated"), 1);
    let events = sandbox.events(1);
    let approved = of_type(&events, "step_approved");
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["by"], "alice");
    assert_eq!(approved[0]["comment"], "go ahead");
    assert_eq!(step_statuses(&sandbox.status(1)), ["ask=succeeded", "recreate=succeeded", "escalate=skipped"]);
}

#[test]
fn a_rejection_fails_the_step_and_the_graph_branches() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("gate.yaml", APPROVAL);
    let mut run = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_running(&sandbox, 0);
    let mut alice = sandbox.command(&["reject", "1", "ask", "--comment", "not during peak"]);
    alice.env("USER", "alice");
    assert_eq!(alice.status().expect("reject").code(), Some(0));
    assert_eq!(run.wait().expect("wait").code(), Some(1));
    assert_eq!(sandbox.count("recreated"), 0);
    assert_eq!(sandbox.count("escalated"), 1);
    let status = sandbox.status(1);
    assert_eq!(status["steps"][0]["error"], "rejected by alice: not during peak");
}

#[test]
fn an_unanswered_approval_times_out_as_configured_even_across_a_resume() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "gate.yaml",
        r#"
name: gate
steps:
  - id: ask
    approval:
      prompt: "Go?"
      timeout: 1500ms
      on_timeout: reject
  - id: next
    needs: [ask]
    run: echo x >> next
"#,
    );
    let mut run = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    wait_running(&sandbox, 0);
    // Kill the engine while it waits; the deadline is in the log, not in the process.
    crate::util::sigkill(&mut run);
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let started = std::time::Instant::now();
    let resumed = sandbox.run(&["resume", "1"]);
    assert_eq!(resumed.code, 1, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "the expired deadline was honoured at once");
    let status = sandbox.status(1);
    assert_eq!(status["steps"][0]["error"], "no answer within 1s500ms; on_timeout: reject");
    assert_eq!(sandbox.count("next"), 0);
}
