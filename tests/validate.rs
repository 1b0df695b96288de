//! `runbook validate`: malformed workflows are rejected with exit 2 at their `file:line`, valid ones pass.
//!
//! Covers the corpus in tests/fixtures/malformed (one file per case, then all
//! in one invocation), a directory mixing a good and a bad file, a workflow
//! using every core key, and unreadable, binary, truncated and empty files.
//!
//! Each fixture starts with comment lines that say what `validate` must report:
//!
//! ```text
//! # expect: LINE: SUBSTRING   a diagnostic `FILE:LINE:...` contains SUBSTRING
//! # forbid: SUBSTRING         no diagnostic of the file contains SUBSTRING
//! # any other comment         why the case exists
//! ```
//!
//! A fixture lists every diagnostic it should produce: a diagnostic line that no
//! `# expect:` matches is a mismatch too (it is usually a follow-on error that
//! misleads, such as "unknown step" for a step that exists but is itself invalid).

use std::path::{Path, PathBuf};

use crate::util::{Run, Sandbox};

/// The fewest cases the corpus may have.
const MIN_CASES: usize = 25;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed")
}

/// The corpus files, sorted.
#[track_caller]
fn corpus() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// One `# expect: LINE: SUBSTRING` line.
#[derive(Debug)]
struct Expect {
    line: u32,
    substring: String,
}

/// What a fixture's leading comments ask for.
#[derive(Debug, Default)]
struct Expectations {
    expects: Vec<Expect>,
    forbids: Vec<String>,
}

/// Reads the `# expect:` and `# forbid:` lines at the top of a fixture.
#[track_caller]
fn expectations(path: &Path) -> Expectations {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut found = Expectations::default();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            let (number, substring) = rest
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: `{line}` is not `# expect: LINE: SUBSTRING`", path.display()));
            let line_number = number
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{}: `{line}` does not start with a line number", path.display()));
            found.expects.push(Expect { line: line_number, substring: substring.trim().to_owned() });
        } else if let Some(rest) = line.strip_prefix("# forbid:") {
            found.forbids.push(rest.trim().to_owned());
        }
    }
    assert!(text.starts_with("# expect:"), "{}: the first line must be `# expect: LINE: SUBSTRING`", path.display());
    found
}

/// The diagnostic lines of `stderr` about `file` (they start with `FILE:`).
fn diagnostics<'a>(stderr: &'a str, file: &str) -> Vec<&'a str> {
    let prefix = format!("{file}:");
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Does `line` report `expect` for `file`?
fn matches(line: &str, file: &str, expect: &Expect) -> bool {
    line.starts_with(&format!("{file}:{}:", expect.line)) && line.contains(&expect.substring)
}

/// The `# expect:` lines of the fixture at `path` that no diagnostic in `stderr` matches.
fn missing(path: &Path, stderr: &str) -> Vec<String> {
    let file = path.to_str().expect("fixture paths are UTF-8");
    let lines = diagnostics(stderr, file);
    expectations(path)
        .expects
        .iter()
        .filter(|expect| !lines.iter().any(|l| matches(l, file, expect)))
        .map(|expect| format!("missing: line {} containing `{}`", expect.line, expect.substring))
        .collect()
}

/// Every way the diagnostics of the fixture at `path` in `stderr` differ from
/// what it asks for: missing, unexpected or containing forbidden text.
fn mismatches(path: &Path, stderr: &str) -> Vec<String> {
    let file = path.to_str().expect("fixture paths are UTF-8");
    let wanted = expectations(path);
    let mut problems = missing(path, stderr);
    for line in diagnostics(stderr, file) {
        if !wanted.expects.iter().any(|e| matches(line, file, e)) {
            problems.push(format!("unexpected: {line}"));
        }
        for forbidden in &wanted.forbids {
            if line.contains(forbidden.as_str()) {
                problems.push(format!("forbidden `{forbidden}` in: {line}"));
            }
        }
    }
    problems
}

/// The name of a fixture, for messages.
fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Fails with every collected problem, one block per file, if there is any.
#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(failures.is_empty(), "{} problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Checks the things every rejected file has in common: exit 2 and no panic.
fn rejected(run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    if run.code != 2 {
        problems.push(format!("exit code {}, expected 2", run.code));
    }
    if run.stderr.contains("panicked") {
        problems.push("the validator panicked".to_owned());
    }
    problems
}

#[test]
fn every_malformed_workflow_is_reported_at_its_line() {
    let files = corpus();
    assert!(files.len() >= MIN_CASES, "the corpus has {} cases, expected at least {MIN_CASES}", files.len());
    let sandbox = Sandbox::new();
    let mut failures = Vec::new();
    for path in &files {
        let file = path.to_str().expect("fixture paths are UTF-8");
        let run = sandbox.run(&["validate", file]);
        let mut problems = rejected(&run);
        problems.extend(mismatches(path, &run.stderr));
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}\n  stderr:\n{}", name(path), problems.join("\n  "), indent(&run.stderr)));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn the_whole_corpus_in_one_invocation_reports_each_file() {
    let files = corpus();
    let sandbox = Sandbox::new();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(|p| p.to_str().expect("fixture paths are UTF-8")));
    let run = sandbox.run(&args);
    let mut failures = rejected(&run);
    // The strict comparison is the test above; here each file's problems must be there.
    for path in &files {
        let problems = missing(path, &run.stderr);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", name(path), problems.join("\n  ")));
        }
    }
    let summary = format!("{} of {} workflow files are invalid", files.len(), files.len());
    if !run.stderr.contains(&summary) {
        failures.push(format!("no summary line `{summary}`"));
    }
    if !failures.is_empty() {
        failures.push(format!("stderr:\n{}", indent(&run.stderr)));
    }
    assert_no_failures(&failures);
}

const GOOD: &str = "\
name: good
steps:
  - id: check
    run: echo hi
";

const BAD: &str = "\
name: bad
steps:
  - id: check
    run: echo hi
    timeout: 10
";

#[test]
fn a_directory_reports_ok_files_and_fails_for_one_bad_file() {
    let sandbox = Sandbox::new();
    sandbox.write("flows/good.yaml", GOOD);
    sandbox.write("flows/bad.yaml", BAD);
    let dir = sandbox.path().join("flows");
    let run = sandbox.run(&["validate", dir.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, 2, "{run:?}");
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    assert!(
        run.stdout.lines().any(|l| l.starts_with(&format!("{}: ok", good.display()))),
        "no `ok` for good.yaml: {run:?}"
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with(&format!("{}:5:", bad.display())) && l.contains("`10` is not a duration")),
        "bad.yaml not reported at line 5: {run:?}"
    );
    assert!(!run.stdout.contains("bad.yaml: ok"), "bad.yaml reported ok: {run:?}");
    assert!(run.stderr.contains("1 of 2 workflow files are invalid"), "{run:?}");
}

/// Every core key of the workflow vocabulary, used correctly.
const EVERY_CORE_KEY: &str = r#"
name: every-core-key
description: every key of the core vocabulary, used once
inputs:
  namespace: { type: string, default: mini-xdr, description: where the service lives }
  port: { type: int, default: 443 }
  verbose: { type: bool, default: false }
  public_ip: { type: ip, default: 203.0.113.25 }
  allowed: { type: cidr, default: 203.0.113.0/24 }
secrets: [API_TOKEN, _OTHER_SECRET2]
max_parallel: 4
schedule:
  - "*/5 * * * *"
  - cron: "0 0 9 * * 1-5"
    timezone: Europe/Paris
    inputs: { namespace: kube-system }
    overlap: skip
    catch_up: once
steps:
  - id: check_service
    description: read the service
    run: |
      echo "namespace {{ inputs.namespace }}" >&2
      echo '{"ip": "203.0.113.25"}'
    timeout: 30s
    retry: { attempts: 3, delay: 250ms, backoff: 2.0, max_delay: 1m, jitter: true }
    idempotent: true
    outputs:
      ip: "{{ json.ip }}"
      raw: "{{ stdout }}"
      code: "{{ exit_code }}"
    env:
      NAMESPACE: "{{ inputs.namespace }}"
      PORT: "{{ inputs.port }}"
  - id: probe
    needs: [check_service]
    if: steps.check_service.outputs.ip != ''
    run: echo probing {{ steps.check_service.outputs.ip }}:{{ inputs.port }} {{ inputs.allowed }} {{ inputs.public_ip }}
    continue_on_error: true
    idempotent: false
    retry: 2
  - id: fallback
    needs: [probe]
    if: "{{ steps.probe.outcome == 'failure' and inputs.verbose }}"
    run: echo plan B for run {{ run.id }} of {{ run.workflow }}
    timeout: 1h30m
"#;

#[test]
fn a_workflow_using_every_core_key_is_valid() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("every-core-key.yaml", EVERY_CORE_KEY);
    let run = sandbox.run(&["validate", path.to_str().expect("UTF-8 path")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("{}: ok", path.display())), "{run:?}");
    assert_eq!(run.stderr.trim(), "", "{run:?}");
}

#[test]
fn unreadable_and_empty_files_are_reported_not_panicked_on() {
    let sandbox = Sandbox::new();
    let cases: [(&str, &[u8]); 4] = [
        ("binary.yaml", &[0xff, 0xfe, 0x00, 0x6e]),
        ("invalid-utf8.yaml", b"name: x\nsteps:\n  - id: a\n    run: echo \xff\n"),
        ("truncated.yaml", b"name: x\nsteps:\n  - id: a\n    run: \"ec"),
        ("empty.yaml", b""),
    ];
    let mut failures = Vec::new();
    for (file, bytes) in cases {
        let path = sandbox.path().join(file);
        std::fs::write(&path, bytes).expect("write the file");
        let shown = path.to_str().expect("UTF-8 path");
        let run = sandbox.run(&["validate", shown]);
        let mut problems = rejected(&run);
        if diagnostics(&run.stderr, shown).is_empty() {
            problems.push("no diagnostic line names the file".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!("{file}:\n  {}\n  stderr:\n{}", problems.join("\n  "), indent(&run.stderr)));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn a_missing_file_is_reported() {
    let sandbox = Sandbox::new();
    let path = sandbox.path().join("nowhere.yaml");
    let shown = path.to_str().expect("UTF-8 path");
    let run = sandbox.run(&["validate", shown]);
    assert!(rejected(&run).is_empty(), "{run:?}");
    assert!(diagnostics(&run.stderr, shown).iter().any(|l| l.contains("cannot read")), "{run:?}");
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
