//! The shipped LoadBalancer runbooks, rehearsed with `runbook demo` in each
//! scenario of the simulator: the exact path through `lb-incident`, the final
//! status, and that every command line the runbooks issue is one the
//! simulator knows (strict mode).

use crate::util::{Sandbox, step_statuses};

/// Runs the demo in `scenario` on a fresh store and returns its `--json` answer.
fn demo(sandbox: &Sandbox, scenario: &str) -> serde_json::Value {
    let result = sandbox.run(&["demo", "--scenario", scenario, "--json"]);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    assert_eq!(
        result.code, 0,
        "the rehearsal of {scenario} played out as its scenario says:\n{}\n{}",
        result.stdout, result.stderr
    );
    serde_json::from_str(&result.stdout)
        .unwrap_or_else(|e| panic!("demo --json prints an object ({e}):\n{}\n{}", result.stdout, result.stderr))
}

/// Every call the runbooks made to the simulated az, kubectl and helm was a known command line.
#[track_caller]
fn assert_strict(sandbox: &Sandbox) {
    let demo_dir = sandbox.store().join("demo");
    let mut calls = 0;
    for entry in std::fs::read_dir(&demo_dir).expect("demo directory").flatten() {
        let log = entry.path().join("simulator/calls.jsonl");
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        for line in text.lines() {
            let call: serde_json::Value = serde_json::from_str(line).expect("a JSON call record");
            assert_eq!(call["known"], true, "a runbook issued a command line the simulator does not know: {call}");
            calls += 1;
        }
    }
    assert!(calls > 10, "the runbooks called the simulated CLIs ({calls} calls)");
}

#[track_caller]
fn check(scenario: &str, status: &str, path: &[&str]) -> (Sandbox, serde_json::Value) {
    let sandbox = Sandbox::new();
    let answer = demo(&sandbox, scenario);
    assert_eq!(answer["status"], status, "{scenario}: {answer}");
    let run = answer["run_id"].as_u64().expect("run_id");
    assert_eq!(step_statuses(&sandbox.status(run)), path, "{scenario}: the path through lb-incident");
    assert_strict(&sandbox);
    (sandbox, answer)
}

#[test]
fn healthy_runs_no_remediation() {
    let (_, answer) = check(
        "healthy",
        "succeeded",
        &[
            "diagnose=succeeded",
            "ingress=skipped",
            "recreate=skipped",
            "capture=skipped",
            "escalate=skipped",
            "not_fixed=skipped",
        ],
    );
    assert!(answer["bundle"].is_null());
}

#[test]
fn ingress_fixes_stops_after_ingress() {
    check(
        "ingress-fixes",
        "succeeded",
        &[
            "diagnose=succeeded",
            "ingress=succeeded",
            "recreate=skipped",
            "capture=skipped",
            "escalate=skipped",
            "not_fixed=skipped",
        ],
    );
}

#[test]
fn recreate_fixes_stops_after_recreate() {
    check(
        "recreate-fixes",
        "succeeded",
        &[
            "diagnose=succeeded",
            "ingress=failed",
            "recreate=succeeded",
            "capture=skipped",
            "escalate=skipped",
            "not_fixed=skipped",
        ],
    );
}

#[test]
fn nothing_fixes_escalates_with_a_bundle_holding_the_capture() {
    let (sandbox, answer) = check(
        "nothing-fixes",
        "failed",
        &[
            "diagnose=succeeded",
            "ingress=failed",
            "recreate=failed",
            "capture=succeeded",
            "escalate=succeeded",
            "not_fixed=failed",
        ],
    );
    let bundle = std::path::PathBuf::from(answer["bundle"].as_str().expect("a bundle path"));
    assert!(bundle.is_file(), "{} exists", bundle.display());
    let archive = zip::ZipArchive::new(std::fs::File::open(&bundle).expect("open bundle")).expect("a zip archive");
    let names: Vec<String> = archive.file_names().map(|n| n.expect("an entry name").into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with("SUMMARY.md")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("captures/") && n.ends_with(".cap")), "a packet capture: {names:?}");
    assert!(names.iter().any(|n| n.ends_with("kubectl-get-svc-all.yaml")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("az-network-lb-show.json")), "{names:?}");
    // The incident's signature was measured, not assumed.
    let diagnose = sandbox.status(2);
    let outputs = &diagnose["steps"].as_array().expect("steps").iter().find(|s| s["id"] == "verdict").expect("verdict")
        ["outputs"];
    assert_eq!(outputs["ping_answers"], true, "{outputs}");
    assert_eq!(outputs["tcp_result"], "timed_out", "{outputs}");
    assert_eq!(outputs["nodeport_ok"], true, "{outputs}");
}
