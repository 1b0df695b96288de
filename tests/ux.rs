//! What people see: plain progress lines, the `status` table, `graph`, the
//! workflow JSON Schema (up to date, shipped workflows valid against it, in
//! step with the validator), completions and man pages, and live progress on
//! a terminal.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::Sandbox;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces what changes from run to run (durations, clock times, dates) with placeholders.
fn normalize(text: &str) -> String {
    let durations = regex::Regex::new(r"\b\d+(\.\d+)?(ms|s)\b|\b\d+m\d\ds\b").expect("regex");
    let times = regex::Regex::new(r"\b\d\d:\d\d:\d\d\b").expect("regex");
    let dates = regex::Regex::new(r"\b\d{4}-\d\d-\d\d\b").expect("regex");
    let text = durations.replace_all(text, "<T>");
    let text = times.replace_all(&text, "<hh:mm:ss>");
    let text = dates.replace_all(&text, "<date>");
    // Column padding follows the width of what was replaced.
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

const CHILD: &str = r#"
name: child
steps:
  - id: inner_ok
    run: echo inner
  - id: inner_bad
    needs: [inner_ok]
    run: echo "disk full" >&2; exit 4
"#;

const PARENT: &str = r#"
name: parent
steps:
  - id: greet
    run: echo hello
  - id: flaky
    needs: [greet]
    run: |
      echo x >> tries
      [ "$(wc -l < tries)" -ge 2 ] || { echo "not yet" >&2; exit 1; }
    retry: { attempts: 3, delay: 100ms }
  - id: call
    needs: [flaky]
    workflow: child
  - id: after
    needs: [call]
    run: echo never
"#;

/// A sandbox with a parent workflow whose child run fails, run once (plain output: stdout is a pipe).
fn failed_parent_run() -> (Sandbox, crate::util::Run) {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    let parent = sandbox.write("parent.yaml", PARENT);
    let result = sandbox.run(&["run", parent.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    (sandbox, result)
}

#[test]
fn plain_progress_is_stable_lines_without_escape_codes() {
    let (_sandbox, result) = failed_parent_run();
    assert!(!result.stdout.contains('\x1b'), "no escape codes when stdout is not a terminal:\n{}", result.stdout);
    assert_eq!(
        normalize(&result.stdout),
        normalize(
            "run 1: parent (4 steps)
  greet                 started (attempt 1)
  greet                 succeeded in <T>
  flaky                 started (attempt 1/3)
  flaky                 failed after <T>: exited with status 1: not yet; retrying in <T>
  flaky                 started (attempt 2/3)
  flaky                 succeeded in <T>
  call                  started (attempt 1)
  call                  child run 2: child
  call › inner_ok       started (attempt 1)
  call › inner_ok       succeeded in <T>
  call › inner_bad      started (attempt 1)
  call › inner_bad      failed after <T>: exited with status 4: disk full
  call                  failed after <T>: child run 2 (child) failed: `inner_bad` failed
  after                 skipped: needs `call`, which failed
run 1 failed in <T>: `call` failed; see `runbook logs 2 inner_bad`, then `runbook resume 1` to retry"
        )
    );
}

#[test]
fn status_shows_child_runs_under_their_step_and_the_next_command() {
    let (sandbox, _) = failed_parent_run();
    let status = sandbox.run(&["status", "1"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(!status.stdout.contains('\x1b'));
    assert_eq!(
        normalize(&status.stdout),
        normalize(
            "run 1  parent  failed  started <date> <hh:mm:ss> UTC, took <T>
  STEP           STATUS     ATTEMPTS  STARTED   DURATION  ERROR
  greet          succeeded         1  <hh:mm:ss>      <T>
  flaky          succeeded         2  <hh:mm:ss>      <T>
  call           failed            1  <hh:mm:ss>      <T>  child run 2 (child) failed: `inner_bad` failed
    ↳ run 2: child, failed
    inner_ok     succeeded         1  <hh:mm:ss>      <T>
    inner_bad    failed            1  <hh:mm:ss>      <T>  exited with status 4: disk full
  after          skipped           0  -                -  needs `call`, which failed
next: `runbook logs 2 inner_bad` shows its output; `runbook resume 1` retries"
        )
    );
    let logs = sandbox.run(&["logs", "2", "inner_bad"]);
    assert!(logs.stdout.contains("disk full"), "the command the table names shows the error: {}", logs.stdout);
}

#[test]
fn graph_of_a_run_colours_steps_by_status() {
    let (sandbox, _) = failed_parent_run();
    let graph = sandbox.run(&["graph", "1"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    let text = graph.stdout;
    assert!(text.starts_with("flowchart TD\n"), "{text}");
    assert!(text.contains("step_flaky[\"flaky<br/>run · succeeded (2 attempts)\"]"), "{text}");
    assert!(text.contains("class step_greet,step_flaky succeeded"), "{text}");
    assert!(text.contains("class step_call failed"), "{text}");
    assert!(text.contains("class step_after skipped"), "{text}");
    let unknown = sandbox.run(&["graph", "99"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no run 99"), "{}", unknown.stderr);
}

#[test]
fn graph_of_a_workflow_needs_no_store_and_labels_edges_with_conditions() {
    let sandbox = Sandbox::new();
    let workflow = repo().join("examples/hello.yaml");
    let graph = sandbox.run(&["graph", workflow.to_str().expect("utf-8 path"), "--format", "dot"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert!(
        graph.stdout.contains(r#""flaky_check" -> "plan_b" [label="if steps.flaky_check.outcome == 'failure'"];"#),
        "{}",
        graph.stdout
    );
    assert!(!sandbox.store().exists(), "graph of a file opens no store");
    let missing = sandbox.run(&["graph", "no-such-workflow"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no workflow `no-such-workflow`"), "{}", missing.stderr);
}

/// `dot` on the PATH, or why the test cannot run (a failure in CI, where .ci/run installs graphviz).
fn graphviz() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|p| p.join("dot")).find(|p| p.is_file()))
        .unwrap_or_default();
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "`dot` is missing in CI: .ci/run installs graphviz");
        eprintln!("skipped: Graphviz `dot` is not installed (apt-get install graphviz)");
    }
    found
}

/// Renders `runbook graph TARGET --format dot` through Graphviz and checks it made an SVG.
fn render_svg(sandbox: &Sandbox, dot: &Path, target: &str) {
    let graph = sandbox.run(&["graph", target, "--format", "dot"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    let mut child = Command::new(dot)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dot");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), graph.stdout.as_bytes()).expect("feed dot");
    let output = child.wait_with_output().expect("dot finishes");
    let svg = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "dot rejected the graph of {target}: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        graph.stdout
    );
    assert!(svg.contains("<svg"), "{svg}");
}

#[test]
fn graphviz_renders_the_dot_graph_of_lb_incident_and_of_a_run() {
    let Some(dot) = graphviz() else { return };
    let sandbox = Sandbox::new();
    let incident = repo().join("workflows/lb-incident.yaml");
    if incident.is_file() {
        render_svg(&sandbox, &dot, incident.to_str().expect("utf-8 path"));
    } else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "workflows/lb-incident.yaml is missing");
        eprintln!("workflows/lb-incident.yaml is missing: rendering examples/hello.yaml only");
    }
    render_svg(&sandbox, &dot, repo().join("examples/hello.yaml").to_str().expect("utf-8 path"));
    let (sandbox, _) = failed_parent_run();
    render_svg(&sandbox, &dot, "1");
}

/// The schema as `runbook schema` prints it.
fn printed_schema() -> String {
    let result = Sandbox::new().run(&["schema"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    result.stdout
}

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&printed_schema()).expect("the schema is JSON");
    jsonschema::draft7::new(&schema).expect("the schema is a valid draft-07 schema")
}

/// A workflow file's text as the JSON the schema judges.
fn yaml_to_json(text: &str) -> serde_json::Value {
    runbook_engine::yaml::parse(text).expect("valid YAML").to_json()
}

#[test]
fn the_checked_in_schema_is_up_to_date() {
    let path = repo().join("docs/workflow.schema.json");
    let printed = printed_schema();
    if std::env::var_os("RUNBOOK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &printed).expect("write docs/workflow.schema.json");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == printed,
        "docs/workflow.schema.json is stale: regenerate it with `cargo run -q -- schema > docs/workflow.schema.json` (or RUNBOOK_UPDATE_SCHEMA=1 cargo test ux::)"
    );
}

#[test]
fn every_shipped_workflow_names_the_schema_and_is_valid_against_it() {
    let validator = schema_validator();
    let mut files = Vec::new();
    for dir in ["workflows", "examples"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else { continue };
        files.extend(
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")),
        );
    }
    files.sort();
    assert!(!files.is_empty(), "no shipped workflow found");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read workflow");
        let first = text.lines().next().unwrap_or_default();
        let reference = first.strip_prefix("# yaml-language-server: $schema=").unwrap_or_else(|| {
            panic!(
                "{} does not start with `# yaml-language-server: $schema=../docs/workflow.schema.json`",
                file.display()
            )
        });
        let target = file.parent().expect("a directory").join(reference.trim());
        assert!(
            target.canonicalize().ok() == repo().join("docs/workflow.schema.json").canonicalize().ok(),
            "{}: the $schema line points at {}, not docs/workflow.schema.json",
            file.display(),
            target.display()
        );
        let errors: Vec<String> =
            validator.iter_errors(&yaml_to_json(&text)).map(|e| format!("  at {}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{} does not match the schema:\n{}", file.display(), errors.join("\n"));
    }
}

#[test]
fn the_schema_rejects_misspelt_keys_and_accepts_the_reference_examples() {
    let validator = schema_validator();
    let good = "name: ok\nsteps:\n  - id: a\n    run: echo\n    retry: 3\n    timeout: 30s\n";
    assert!(validator.is_valid(&yaml_to_json(good)));
    for (what, text) in [
        ("a misspelt kind", "name: ok\nsteps:\n  - id: a\n    rnu: echo\n"),
        ("a misspelt top-level key", "name: ok\nstpes:\n  - id: a\n    run: echo\n"),
        ("a misspelt http key", "name: ok\nsteps:\n  - id: a\n    http: { url: http://x/, metod: GET }\n"),
        ("two kinds", "name: ok\nsteps:\n  - id: a\n    run: echo\n    set: { x: 1 }\n"),
        ("no kind", "name: ok\nsteps:\n  - id: a\n"),
        ("a duration without a unit", "name: ok\nsteps:\n  - id: a\n    run: echo\n    timeout: '30'\n"),
    ] {
        assert!(!validator.is_valid(&yaml_to_json(text)), "the schema accepts {what}:\n{text}");
    }
}

/// The keys the validator lists when it meets an unknown key in `yaml` (its "expected one of" hint).
fn validator_keys(sandbox: &Sandbox, yaml: &str) -> BTreeSet<String> {
    let file = sandbox.write("keys.yaml", yaml);
    let result = sandbox.run(&["validate", file.to_str().expect("utf-8 path")]);
    let line = result
        .stderr
        .lines()
        .find(|l| l.contains("unknown key `zzzzzzzz`"))
        .unwrap_or_else(|| panic!("no unknown-key message for:\n{yaml}\n{}", result.stderr));
    let (_, list) = line.split_once("unknown key `zzzzzzzz`; ").expect("a list of keys");
    let list = list
        .trim_start_matches("expected one of: ")
        .trim_start_matches("expected one of ")
        .trim_start_matches("expected ");
    let list = list.split_once(" takes ").map_or(list, |(_, keys)| keys);
    list.split(", ").map(|k| k.trim().to_owned()).collect()
}

/// The property names of a schema definition (or of the root with `None`).
fn schema_keys(schema: &serde_json::Value, definition: Option<&str>) -> BTreeSet<String> {
    let node = match definition {
        Some(name) => &schema["definitions"][name],
        None => schema,
    };
    node["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {definition:?}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_schema_knows_exactly_the_keys_the_validator_knows() {
    let schema: serde_json::Value = serde_json::from_str(&printed_schema()).expect("JSON");
    let sandbox = Sandbox::new();
    let step = |body: &str| format!("name: keys\nsteps:\n  - id: a\n{body}\n");
    let bundle = |body: &str| step(&format!("    bundle:\n      title: t\n{body}"));
    let cases: Vec<(Option<&str>, String)> = vec![
        (None, "name: keys\nzzzzzzzz: 1\nsteps:\n  - id: a\n    run: echo\n".to_owned()),
        (
            Some("InputSpec"),
            "name: keys\ninputs:\n  x: { type: string, zzzzzzzz: 1 }\nsteps:\n  - id: a\n    run: echo\n".to_owned(),
        ),
        (Some("StepFile"), step("    run: echo\n    zzzzzzzz: 1")),
        (Some("RetryPolicy"), step("    run: echo\n    retry: { zzzzzzzz: 1 }")),
        (Some("Poll"), step("    run: echo\n    poll: { zzzzzzzz: 1 }")),
        (
            Some("ScheduleEntry"),
            "name: keys\nschedule:\n  - { cron: '* * * * *', zzzzzzzz: 1 }\nsteps:\n  - id: a\n    run: echo\n"
                .to_owned(),
        ),
        (
            Some("OnFailureWorkflow"),
            "name: keys\non_failure: { workflow: x, zzzzzzzz: 1 }\nsteps:\n  - id: a\n    run: echo\n".to_owned(),
        ),
        (Some("HttpConfig"), step("    http: { url: 'http://127.0.0.1/', zzzzzzzz: 1 }")),
        (Some("TcpConfig"), step("    tcp: { host: 127.0.0.1, port: 80, zzzzzzzz: 1 }")),
        (Some("PingConfig"), step("    ping: { host: 127.0.0.1, zzzzzzzz: 1 }")),
        (Some("ChildWorkflowConfig"), step("    workflow: { name: x, zzzzzzzz: 1 }")),
        (Some("ApprovalConfig"), step("    approval: { prompt: p, zzzzzzzz: 1 }")),
        (Some("BundleConfig"), bundle("      zzzzzzzz: 1")),
        (Some("BundleSummary"), bundle("      summary: { zzzzzzzz: 1 }")),
        (Some("BundleRemediation"), bundle("      remediations: [{ step: a, zzzzzzzz: 1 }]")),
        (Some("BundleFile"), bundle("      files: { x.txt: { step: a, zzzzzzzz: 1 } }")),
        (Some("NamedRedaction"), bundle("      redact: [{ pattern: x+, zzzzzzzz: 1 }]")),
        (Some("BundleEmailOptions"), bundle("      email: { zzzzzzzz: 1 }")),
        (Some("BundleTicket"), bundle("      ticket: { zzzzzzzz: 1 }")),
        (Some("BundleContact"), bundle("      ticket: { contact: { zzzzzzzz: 1 } }")),
    ];
    for (definition, yaml) in cases {
        let validator = validator_keys(&sandbox, &yaml);
        let described = schema_keys(&schema, definition);
        assert_eq!(
            described,
            validator,
            "{}: the schema (left) and the validator (right) disagree on the keys; update src/schema.rs and regenerate docs/workflow.schema.json",
            definition.unwrap_or("the workflow")
        );
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    let sandbox = Sandbox::new();
    let bash = sandbox.run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("_runbook()") && bash.stdout.contains("graph"), "{}", bash.stdout);
    let zsh = sandbox.run(&["completions", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef runbook"), "{}", zsh.stdout);
    for shell in ["fish", "elvish", "powershell"] {
        let script = sandbox.run(&["completions", shell]);
        assert!(script.code == 0 && !script.stdout.is_empty(), "{shell}: {}", script.stderr);
    }
    let page = sandbox.run(&["man"]);
    assert!(page.stdout.contains(".TH runbook 1"), "{}", page.stdout);
    let dir = sandbox.path().join("man");
    let written = sandbox.run(&["man", "--out", dir.to_str().expect("utf-8 path")]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    for page in ["runbook.1", "runbook-run.1", "runbook-graph.1", "runbook-completions.1"] {
        assert!(dir.join(page).is_file(), "{page} was not written: {}", written.stdout);
    }
    assert!(!sandbox.store().exists(), "generating opens no store");
}

/// Runs `runbook ARGS` on a pseudo-terminal (util-linux `script`), returning what the terminal received.
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let script = Path::new("/usr/bin/script");
    if !script.is_file() {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let mut command_line = format!("{} --store {}", env!("CARGO_BIN_EXE_runbook"), sandbox.store().display());
    for arg in args {
        command_line.push(' ');
        command_line.push_str(arg);
    }
    let mut command = Command::new(script);
    command.args(["-qfec", &command_line, "/dev/null"]).current_dir(sandbox.path()).env("TERM", "xterm-256color");
    command.env_remove("NO_COLOR").env_remove("RUNBOOK_STORE");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.stdin(Stdio::null()).output().expect("run script");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn live_progress_redraws_on_a_terminal_and_plain_lines_with_no_color() {
    let sandbox = Sandbox::new();
    sandbox.write("child.yaml", CHILD);
    sandbox.write("parent.yaml", PARENT);
    let Some(live) = on_a_terminal(&sandbox, &["run", "parent.yaml"], &[]) else { return };
    assert!(live.contains("\x1b["), "live progress moves the cursor:\n{live}");
    assert!(live.contains("✘"), "failed steps are marked:\n{live}");
    let last = live.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(
        last.contains("run 1 failed") && last.contains("runbook logs 2 inner_bad"),
        "the final line says what to type next:\n{live}"
    );
    std::fs::remove_file(sandbox.path().join("tries")).expect("reset the flaky step");
    let plain = on_a_terminal(&sandbox, &["run", "parent.yaml"], &[("NO_COLOR", "1")]).unwrap_or_default();
    assert!(!plain.contains('\x1b'), "NO_COLOR gives plain lines:\n{plain}");
    assert!(plain.contains("call › inner_bad"), "{plain}");
}
