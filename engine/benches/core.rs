//! Micro-benchmarks of the pure core: the event codec, `apply` (a fold) and `decide`.
//!
//! `cargo bench -p runbook-engine`; `runbook bench` measures the whole engine on disk.
//! These isolate what a replay and each decision cost, without the disk or tokio.

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use runbook_engine::event::{self, Event, EventKind, Outputs, RunStarted};
use runbook_engine::ids::{Attempt, RunId, StepId};
use runbook_engine::load::load_str;
use runbook_engine::state::{RunState, decide};
use runbook_engine::step::{ConfigCheck, Registry, StepKind, StepRequest, StepResult};
use runbook_engine::template::Templates;
use runbook_engine::yaml::Node;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

/// A `set` kind that is never executed: the core only needs its name.
struct Set;

#[async_trait]
impl StepKind for Set {
    fn name(&self) -> &'static str {
        "set"
    }
    fn check_config(&self, config: &Node, _check: &mut ConfigCheck<'_>) -> serde_json::Value {
        config.to_json()
    }
    fn provided_outputs(&self, config: &serde_json::Value) -> Vec<String> {
        config.as_object().map(|map| map.keys().cloned().collect()).unwrap_or_default()
    }
    async fn execute(&self, _request: StepRequest) -> StepResult {
        StepResult::failed("the bench kind does not execute")
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).single().unwrap_or_default()
}

fn id(text: &str) -> StepId {
    StepId::new(text).unwrap_or_else(|message| panic!("{message}"))
}

/// `run_started` for a workflow of `steps` steps, each needing the one before (with `if` when `conditions`).
fn started(steps: usize, conditions: bool) -> Event {
    let mut yaml = "name: bench\nsteps:\n  - id: s0\n    set: { n: 0 }\n".to_owned();
    for i in 1..steps {
        let _ = write!(yaml, "  - id: s{i}\n    needs: [s{p}]\n", p = i - 1);
        if conditions {
            let _ = writeln!(yaml, "    if: steps.s{p}.outputs.n >= 0", p = i - 1);
        }
        let _ = write!(yaml, "    set:\n      n: \"{{{{ steps.s{p}.outputs.n + 1 }}}}\"\n", p = i - 1);
    }
    let registry = Registry::new().with(Set);
    let loaded = load_str(Path::new("bench.yaml"), &yaml, &registry).unwrap_or_else(|d| panic!("{d}"));
    Event {
        at: at(),
        kind: EventKind::RunStarted(Box::new(RunStarted {
            workflow: loaded.workflow,
            source_hash: loaded.source_hash,
            source_path: "bench.yaml".to_owned(),
            inputs: serde_json::Map::new(),
            parent: None,
        })),
    }
}

fn step_started(step: &str, attempt: u32) -> Event {
    Event { at: at(), kind: EventKind::StepStarted { step: id(step), attempt: Attempt(attempt) } }
}

fn step_succeeded(step: &str, n: usize) -> Event {
    let mut outputs = Outputs::new();
    outputs.insert("n".to_owned(), serde_json::json!(n));
    Event {
        at: at(),
        kind: EventKind::StepSucceeded {
            step: id(step),
            attempt: Attempt(1),
            outputs,
            exit_code: None,
            artifacts: Vec::new(),
            duration_ms: 3,
        },
    }
}

/// The events after `run_started` of a run whose first `finished` steps succeeded.
fn finished_steps(finished: usize) -> Vec<Event> {
    (0..finished).flat_map(|i| [step_started(&format!("s{i}"), 1), step_succeeded(&format!("s{i}"), i)]).collect()
}

fn fold(first: &Event, events: &[Event]) -> RunState {
    let mut state = RunState::start(RunId::new(1).unwrap_or_else(|| unreachable!()), first)
        .unwrap_or_else(|e| panic!("{}", e.message));
    for event in events {
        state.apply(event).unwrap_or_else(|e| panic!("{}", e.message));
    }
    state
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let succeeded = step_succeeded("probe_tcp", 7);
    let started = step_started("probe_tcp", 2);
    let encoded_succeeded = event::encode(&succeeded).unwrap_or_default();
    let encoded_started = event::encode(&started).unwrap_or_default();
    group.bench_function("encode step_succeeded", |b| b.iter(|| event::encode(black_box(&succeeded))));
    group.bench_function("decode step_started", |b| b.iter(|| event::decode(black_box(&encoded_started))));
    group.bench_function("decode step_succeeded", |b| b.iter(|| event::decode(black_box(&encoded_succeeded))));
    group.finish();
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    let first = started(1_000, false);
    let events = finished_steps(1_000);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("fold 2,000 events of a 1,000-step run", |b| b.iter(|| fold(&first, black_box(&events))));
    let encoded: Vec<Vec<u8>> = events.iter().map(|e| event::encode(e).unwrap_or_default()).collect();
    group.bench_function("decode and fold 2,000 events", |b| {
        b.iter(|| {
            let mut state = fold(&first, &[]);
            for bytes in &encoded {
                let event = event::decode(black_box(bytes)).unwrap_or_else(|e| panic!("{e}"));
                state.apply(&event).unwrap_or_else(|e| panic!("{}", e.message));
            }
            state
        })
    });
    group.finish();
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let templates = Templates::new();
    for conditions in [false, true] {
        let first = started(1_000, conditions);
        // Half done: the next step is ready.
        let state = fold(&first, &finished_steps(500));
        let name = if conditions { "1,000-step run, half done, with `if`" } else { "1,000-step run, half done" };
        group.bench_function(name, |b| b.iter(|| decide(black_box(&state), at(), &templates)));
    }
    let state = fold(&started(1_000, false), &finished_steps(500));
    group.bench_function("template context of one named step", |b| {
        b.iter(|| black_box(&state).template_context_of(Some(&[499])))
    });
    group.bench_function("template context of every step", |b| b.iter(|| black_box(&state).template_context()));
    group.bench_function("clone a 1,000-step state", |b| {
        b.iter_batched(|| (), |()| black_box(&state).clone(), BatchSize::SmallInput)
    });
    group.finish();
}

/// `run_started` for a chain of `steps` steps (each needing the one before), built from a
/// loaded two-step workflow rather than validated whole, so that a 10,000-step run is quick to set up.
fn chain(steps: usize) -> Event {
    let mut first = started(2, false);
    if let EventKind::RunStarted(started) = &mut first.kind {
        let template = started.workflow.steps[1].clone();
        started.workflow.steps.truncate(1);
        for i in 1..steps {
            let mut spec = template.clone();
            spec.id = id(&format!("s{i}"));
            spec.needs = vec![id(&format!("s{}", i - 1))];
            started.workflow.steps.push(spec);
        }
    }
    first
}

/// A decision's cost against the number of finished steps: the run is a chain, every step
/// but the last has succeeded, and the last one is ready.
fn decision_by_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide, all but the last step finished");
    let templates = Templates::new();
    for steps in [10, 1_000, 10_000] {
        let state = fold(&chain(steps), &finished_steps(steps - 1));
        group.bench_function(format!("{steps} steps"), |b| b.iter(|| decide(black_box(&state), at(), &templates)));
    }
    group.finish();
}

criterion_group!(benches, codec, apply, decision, decision_by_size);
criterion_main!(benches);
