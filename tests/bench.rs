//! `runbook bench`: it runs every phase on the store's disk and reports numbers, beside the store.

use crate::util::Sandbox;

/// The keys of `runbook bench --json`, exactly (docs/performance.md says what each one means).
const KEYS: [&str; 15] = [
    "fsync_floor_ms",
    "sequential_ms_per_step",
    "concurrent_steps_per_s",
    "shell_ms_per_step",
    "bash_spawn_ms",
    "replay_events_per_s",
    "resume_ms",
    "peak_rss_mib_sequential",
    "peak_rss_mib_concurrent",
    "peak_rss_mib_shell",
    "peak_rss_mib_replay",
    "bytes_per_event_sequential",
    "bytes_per_event_concurrent",
    "bytes_per_event_shell",
    "bytes_per_event_replay",
];

#[test]
fn bench_json_is_one_object_of_positive_numbers_with_exactly_its_keys() {
    let sandbox = Sandbox::new();
    let result = sandbox.run(&["bench", "--json", "--quick"]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let figures: serde_json::Value = serde_json::from_str(&result.stdout).expect("one JSON object on stdout");
    let object = figures.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    for (key, value) in object {
        let number = value.as_f64().unwrap_or_else(|| panic!("`{key}` is {value}, not a number"));
        assert!(number > 0.0 && number.is_finite(), "`{key}` is {number}");
    }
    // The bench never opens the store, and leaves nothing beside it.
    assert!(!sandbox.store().exists(), "the bench created the store");
    let left: Vec<_> = std::fs::read_dir(sandbox.path()).expect("sandbox").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bench_runs_while_another_process_holds_the_store() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "wait.yaml",
        "name: wait\nsteps:\n  - id: hold\n    run: \"touch started; while [ ! -e release ]; do sleep 0.05; done\"\n",
    );
    let mut holder = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sandbox.path().join("started").exists() {
        assert!(std::time::Instant::now() < deadline, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let result = sandbox.run(&["bench", "--quick"]);
    std::fs::write(sandbox.path().join("release"), "").expect("release the run");
    assert_eq!(holder.wait().expect("holder").code(), Some(0));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    for figure in ["fsync_floor_ms", "sequential_ms_per_step", "bytes_per_event_replay"] {
        assert!(result.stdout.contains(figure), "{figure} missing from:\n{}", result.stdout);
    }
}
