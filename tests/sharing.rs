//! The store is shared: while one process runs a workflow and holds the store, others still work.

use std::time::{Duration, Instant};

use crate::util::Sandbox;

#[test]
fn status_and_runs_answer_while_a_run_holds_the_store() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "hold.yaml",
        r#"
name: hold
steps:
  - id: wait
    run: touch started; while [ ! -e release ]; do sleep 0.05; done
  - id: after
    needs: [wait]
    run: echo done
"#,
    );
    let mut holder = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sandbox.path().join("started").exists() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = sandbox.status(1);
    assert_eq!(status["status"], "running", "the holder answers, and knows the run is executing");
    assert_eq!(status["steps"][0]["status"], "running");
    let runs = sandbox.run(&["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    assert!(runs.stdout.contains("hold"), "{}", runs.stdout);

    // A second run is handed to the holder and followed from here.
    let second_workflow =
        sandbox.write("second.yaml", "name: second\nsteps:\n  - id: only\n    run: echo second-output\n");
    let second = sandbox.run(&["run", second_workflow.to_str().expect("utf-8 path")]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("run 2 succeeded"), "{}", second.stdout);

    // Resuming the run that is executing is refused with a clear message.
    let resume = sandbox.run(&["resume", "1"]);
    assert_eq!(resume.code, 1);
    assert!(resume.stderr.contains("run 1 is being executed"), "{}", resume.stderr);

    std::fs::write(sandbox.path().join("release"), "").expect("release");
    let status = holder.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(sandbox.status(1)["status"], "succeeded");
}
