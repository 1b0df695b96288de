//! Running workflows: graph order, outputs between steps, retries, conditions, quoting, secrets.

use crate::util::{Sandbox, of_type, step_statuses};

#[test]
fn diamond_runs_every_step_once_in_graph_order() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "diamond.yaml",
        r#"
name: diamond
steps:
  - id: top
    run: echo top >> order; echo x >> top.count
  - id: left
    needs: [top]
    run: echo left >> order; echo x >> left.count
  - id: right
    needs: [top]
    run: echo right >> order; echo x >> right.count
  - id: bottom
    needs: [left, right]
    run: echo bottom >> order; echo x >> bottom.count
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    for step in ["top", "left", "right", "bottom"] {
        assert_eq!(sandbox.count(&format!("{step}.count")), 1, "{step} ran once");
    }
    let order = std::fs::read_to_string(sandbox.path().join("order")).expect("order file");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.first(), Some(&"top"));
    assert_eq!(order.last(), Some(&"bottom"));
    let status = sandbox.status(result.run_id());
    assert_eq!(status["status"], "succeeded");
    assert_eq!(step_statuses(&status), ["top=succeeded", "left=succeeded", "right=succeeded", "bottom=succeeded"]);
    let events = sandbox.events(result.run_id());
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seqs are contiguous from 1");
    assert_eq!(events[0]["type"], "run_started");
    assert_eq!(events.last().map(|e| e["type"].clone()), Some("run_succeeded".into()));
    assert_eq!(of_type(&events, "step_succeeded").len(), 4);
}

#[test]
fn outputs_flow_between_steps_as_json_values() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "outputs.yaml",
        r#"
name: outputs
steps:
  - id: service
    run: |
      echo '{"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.7"}]}}, "ports": [80, 443]}'
    outputs:
      ip: "{{ json.status.loadBalancer.ingress[0].ip }}"
      ports: "{{ json.ports }}"
      raw: "{{ stdout | length }}"
  - id: use
    needs: [service]
    if: steps.service.outputs.ip != ''
    run: echo "ip={{ steps.service.outputs.ip }} first={{ steps.service.outputs.ports[0] }}"
    outputs:
      line: "{{ stdout }}"
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let status: serde_json::Value = serde_json::from_str(&result.stdout).expect("--json prints the status");
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["steps"][0]["outputs"]["ip"], "127.0.0.7");
    assert_eq!(status["steps"][0]["outputs"]["ports"], serde_json::json!([80, 443]));
    assert_eq!(status["steps"][1]["outputs"]["line"], "ip=127.0.0.7 first=80");
}

#[test]
fn retries_are_counted_and_spaced() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "retry.yaml",
        r#"
name: retry
steps:
  - id: flaky
    # Fails twice, then succeeds.
    run: |
      echo x >> attempts
      [ "$(wc -l < attempts)" -ge 3 ]
    retry: { attempts: 5, delay: 100ms, backoff: 2.0 }
  - id: hopeless
    run: echo x >> hopeless; exit 7
    retry: { attempts: 2, delay: 50ms }
    continue_on_error: true
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert_eq!(sandbox.count("attempts"), 3);
    assert_eq!(sandbox.count("hopeless"), 2, "attempts counts every attempt, the first included");
    let events = sandbox.events(result.run_id());
    let failures: Vec<_> = of_type(&events, "step_failed").into_iter().filter(|e| e["step"] == "flaky").collect();
    assert_eq!(failures.len(), 2);
    for failure in &failures {
        assert!(failure["retry_at"].is_string(), "a failure with attempts left names its retry time: {failure}");
    }
    let last_hopeless =
        of_type(&events, "step_failed").into_iter().rfind(|e| e["step"] == "hopeless").expect("failure");
    assert!(last_hopeless.get("retry_at").is_none(), "the last attempt has no retry");
    assert_eq!(last_hopeless["exit_code"], 7);
    assert!(last_hopeless["error"].as_str().is_some_and(|e| e.contains("exited with status 7")), "{last_hopeless}");
    // The second retry waits twice the first: 100ms then 200ms.
    let at = |e: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("at")).expect("time");
    let retry_at = |e: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(e["retry_at"].as_str().expect("retry_at")).expect("time")
    };
    assert_eq!((retry_at(failures[0]) - at(failures[0])).num_milliseconds(), 100);
    assert_eq!((retry_at(failures[1]) - at(failures[1])).num_milliseconds(), 200);
}

#[test]
fn a_failure_branches_to_its_handler_and_continue_on_error_keeps_the_run_green() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "branch.yaml",
        r#"
name: branch
steps:
  - id: probe
    run: exit 1
    continue_on_error: true
  - id: plan_b
    needs: [probe]
    if: steps.probe.outcome == 'failure'
    run: echo x >> plan_b
  - id: all_good
    needs: [probe]
    if: steps.probe.outcome == 'success'
    run: echo x >> all_good
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert_eq!(sandbox.count("plan_b"), 1);
    assert_eq!(sandbox.count("all_good"), 0);
    let status = sandbox.status(result.run_id());
    assert_eq!(status["status"], "succeeded");
    assert_eq!(step_statuses(&status), ["probe=failed", "plan_b=succeeded", "all_good=skipped"]);
}

#[test]
fn a_failed_step_fails_the_run_and_skips_its_dependents() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "fail.yaml",
        r#"
name: fail
steps:
  - id: broken
    run: echo "something broke" >&2; exit 3
  - id: after
    needs: [broken]
    run: echo x >> after
  - id: independent
    run: echo x >> independent
"#,
    );
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    assert!(result.stdout.contains("runbook logs"), "the last line says what to type next: {}", result.stdout);
    assert_eq!(sandbox.count("after"), 0);
    assert_eq!(sandbox.count("independent"), 1);
    let status = sandbox.status(result.run_id());
    assert_eq!(status["status"], "failed");
    assert_eq!(status["steps"][0]["error"], "exited with status 3: something broke");
    let logs = sandbox.run(&["logs", &result.run_id().to_string(), "broken"]);
    assert!(logs.stdout.contains("something broke"), "{}", logs.stdout);
}

#[test]
fn inputs_reach_the_shell_as_literal_text() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "quote.yaml",
        r#"
name: quote
inputs:
  text: { type: string }
steps:
  - id: echo
    run: printf '%s' {{ inputs.text }} > received
"#,
    );
    let hostile = "; touch pwned1 && $(touch pwned2) `touch pwned3` 'quoted' \"double\" \\ $HOME";
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path"), "-i", &format!("text={hostile}")]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    for file in ["pwned1", "pwned2", "pwned3"] {
        assert!(!sandbox.path().join(file).exists(), "{file} was created: the input was executed");
    }
    let received = std::fs::read_to_string(sandbox.path().join("received")).expect("received");
    assert_eq!(received, hostile);
}

#[test]
fn typed_inputs_are_checked_before_anything_runs() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "typed.yaml",
        r#"
name: typed
inputs:
  public_ip: { type: ip, required: true }
  port: { type: int, default: 80 }
steps:
  - id: touch
    run: echo x >> touched
"#,
    );
    let path = workflow.to_str().expect("utf-8 path");
    let bad = sandbox.run(&["run", path, "-i", "public_ip=4.156.121", "-i", "prot=80"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("`4.156.121` is not an IP address"), "{}", bad.stderr);
    assert!(bad.stderr.contains("unknown input `prot` (did you mean `port`?)"), "{}", bad.stderr);
    let missing = sandbox.run(&["run", path]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("missing required input `public_ip`"), "{}", missing.stderr);
    assert_eq!(sandbox.count("touched"), 0);
}

#[test]
fn secrets_are_masked_in_everything_the_store_keeps() {
    let sandbox = Sandbox::new();
    let canary = "canary-5f3a9c1e-secret";
    let workflow = sandbox.write(
        "secret.yaml",
        r#"
name: secret
secrets: [API_TOKEN]
steps:
  - id: leak
    run: |
      echo "token is $API_TOKEN"
      echo "stderr $API_TOKEN" >&2
    outputs:
      said: "{{ stdout }}"
  - id: fail
    run: echo "failing with $API_TOKEN" >&2; exit 1
    continue_on_error: true
"#,
    );
    let mut command = sandbox.command(&["run", workflow.to_str().expect("utf-8 path")]);
    command.env("API_TOKEN", canary);
    let result = crate::util::Run::from(command.output().expect("run"));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert!(!result.stdout.contains(canary) && !result.stderr.contains(canary));
    let status = sandbox.status(result.run_id());
    assert_eq!(status["steps"][0]["outputs"]["said"], "token is ***");
    for entry in walk(&sandbox.store()) {
        let bytes = std::fs::read(&entry).expect("read store file");
        assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()), "the secret is in {}", entry.display());
    }
    let logs = sandbox.run(&["logs", &result.run_id().to_string()]);
    assert!(logs.stdout.contains("token is ***") && !logs.stdout.contains(canary), "{}", logs.stdout);

    let mut missing = sandbox.command(&["run", workflow.to_str().expect("utf-8 path")]);
    missing.env_remove("API_TOKEN");
    let missing = crate::util::Run::from(missing.output().expect("run"));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("API_TOKEN"), "{}", missing.stderr);
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "timeout.yaml",
        r#"
name: timeout
steps:
  - id: hang
    run: |
      (sleep 30; echo x >> grandchild_survived) &
      sleep 30
    timeout: 300ms
"#,
    );
    let started = std::time::Instant::now();
    let result = sandbox.run(&["run", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the step was not stopped");
    let status = sandbox.status(result.run_id());
    assert_eq!(status["steps"][0]["error"], "timed out after 300ms");
    let marker = format!("{}", sandbox.path().display());
    let survivors = std::process::Command::new("pgrep").args(["-f", "sleep 30"]).output();
    if let Ok(output) = survivors {
        let pids = String::from_utf8_lossy(&output.stdout);
        for pid in pids.split_whitespace() {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            assert!(!cwd.display().to_string().starts_with(&marker), "process {pid} of the step survived the timeout");
        }
    }
}

/// Every file under a directory.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn inputs_come_from_a_file_and_the_command_line_overrides_it() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "inputs.yaml",
        r#"
name: inputs
inputs:
  public_ip: { type: ip }
  port: { type: int, default: 80 }
  namespace: { type: string }
steps:
  - id: show
    run: echo {{ inputs.public_ip }} {{ inputs.port }} {{ inputs.namespace }} > shown
"#,
    );
    sandbox.write("incident.yaml", "public_ip: 4.156.121.111\nport: 443\nnamespace: mini-xdr\n");
    let path = workflow.to_str().expect("utf-8 path");
    let result = sandbox.run(&["run", path, "--inputs-file", "incident.yaml", "-i", "namespace=other"]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let shown = std::fs::read_to_string(sandbox.path().join("shown")).expect("shown");
    assert_eq!(shown.trim(), "4.156.121.111 443 other");
    sandbox.write("bad.yaml", "public_ip: not-an-ip\nprot: 1\n");
    let bad = sandbox.run(&["run", path, "--inputs-file", "bad.yaml", "-i", "namespace=x"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("`not-an-ip` is not an IP address"), "{}", bad.stderr);
    assert!(bad.stderr.contains("unknown input `prot` (did you mean `port`?)"), "{}", bad.stderr);
}

#[test]
fn a_string_input_may_carry_a_pattern() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "pattern.yaml",
        r#"
name: pattern
inputs:
  namespace: { type: string, pattern: "[a-z0-9-]+", default: mini-xdr }
steps:
  - id: show
    run: echo {{ inputs.namespace }}
"#,
    );
    let path = workflow.to_str().expect("utf-8 path");
    assert_eq!(sandbox.run(&["run", path, "-i", "namespace=prod-1"]).code, 0);
    let bad = sandbox.run(&["run", path, "-i", "namespace=Prod 1; rm -rf /"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("does not match the pattern `[a-z0-9-]+`"), "{}", bad.stderr);
    let invalid = sandbox.write(
        "invalid.yaml",
        "name: invalid\ninputs:\n  a: { type: string, pattern: \"[a-z\" }\n  b: { type: int, pattern: \"1+\" }\n  c: { type: string, pattern: \"[a-z]+\", default: ABC }\nsteps:\n  - id: s\n    run: 'true'\n",
    );
    let result = sandbox.run(&["validate", invalid.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 2);
    assert!(
        result.stderr.contains(":3:") && result.stderr.contains("is not a regular expression"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains(":4:") && result.stderr.contains("applies to string inputs"), "{}", result.stderr);
    assert!(result.stderr.contains(":5:") && result.stderr.contains("does not match the pattern"), "{}", result.stderr);
}

#[test]
fn templates_may_use_declared_secrets_which_never_reach_the_store() {
    let sandbox = Sandbox::new();
    let canary = "canary-7d1e-template-secret";
    let workflow = sandbox.write(
        "secret-template.yaml",
        r#"
name: secret-template
secrets: [API_TOKEN]
steps:
  - id: use
    env:
      TOKEN: "Bearer {{ secrets.API_TOKEN }}"
    run: printf '%s' "$TOKEN" > received; echo "sent $TOKEN"
    outputs:
      said: "{{ stdout }}"
"#,
    );
    let mut command = sandbox.command(&["run", workflow.to_str().expect("utf-8 path")]);
    command.env("API_TOKEN", canary);
    let result = crate::util::Run::from(command.output().expect("run"));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let received = std::fs::read_to_string(sandbox.path().join("received")).expect("received");
    assert_eq!(received, format!("Bearer {canary}"), "the step got the secret");
    assert_eq!(sandbox.status(1)["steps"][0]["outputs"]["said"], "sent Bearer ***");
    for entry in walk(&sandbox.store()) {
        let bytes = std::fs::read(&entry).expect("read store file");
        assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()), "the secret is in {}", entry.display());
    }
    let undeclared = sandbox.write(
        "undeclared.yaml",
        "name: undeclared\nsecrets: [API_TOKEN]\nsteps:\n  - id: use\n    run: echo {{ secrets.OTHER_TOKEN }}\n",
    );
    let invalid = sandbox.run(&["validate", undeclared.to_str().expect("utf-8 path")]);
    assert_eq!(invalid.code, 2);
    assert!(
        invalid.stderr.contains(":5:") && invalid.stderr.contains("`secrets.OTHER_TOKEN` is not declared"),
        "{}",
        invalid.stderr
    );
}
