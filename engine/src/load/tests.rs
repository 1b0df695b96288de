//! Unit tests of the loader: YAML text in, the diagnostics `runbook validate` would print out.
//!
//! Each case is a call to [`check`] with the workflow (indented like the code around
//! it: the common indentation is removed, so line 1 is the first line after the
//! opening quote) and every diagnostic expected, in order, as `file:line:col: field:
//! message`. An empty list means the workflow loads. A few tests at the end look at
//! the model a valid workflow loads into.

use async_trait::async_trait;
use std::path::Path;

use super::{LoadedWorkflow, load_str};
use crate::step::{ConfigCheck, Registry, StepKind, StepRequest, StepResult};
use crate::testkit::{FakeRun, FakeSet};
use crate::yaml::{Node, Value};

/// A `workflow` kind, for the `on_failure: {workflow: ...}` shorthand: a mapping with `name`.
struct FakeWorkflow;

#[async_trait]
impl StepKind for FakeWorkflow {
    fn name(&self) -> &'static str {
        "workflow"
    }
    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        let Value::Map(entries) = &config.value else {
            check.error(config.position, "", "expected a mapping with `name`");
            return config.to_json();
        };
        match entries.iter().find(|(key, _)| key.name == "name") {
            Some((_, name)) if matches!(name.value, Value::String(_)) => {}
            Some((_, name)) => check.error(name.position, "name", "expected the name of a workflow"),
            None => check.error(config.position, "", "missing key `name`"),
        }
        config.to_json()
    }
    async fn execute(&self, _request: StepRequest) -> StepResult {
        StepResult::failed("the test kind does not execute")
    }
}

/// A probe kind that provides a `result` output undeclared and is not safe to repeat by default.
struct FakeProbe;

#[async_trait]
impl StepKind for FakeProbe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn idempotent_by_default(&self, _config: &serde_json::Value) -> bool {
        false
    }
    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        vec!["result".to_owned()]
    }
    fn check_config(&self, config: &Node, _check: &mut ConfigCheck<'_>) -> serde_json::Value {
        config.to_json()
    }
    async fn execute(&self, _request: StepRequest) -> StepResult {
        StepResult::failed("the test kind does not execute")
    }
}

fn registry() -> Registry {
    Registry::new().with(FakeRun).with(FakeSet).with(FakeWorkflow).with(FakeProbe)
}

/// `text` without the indentation its non-blank lines share, and without a first line that is blank.
fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines().map(|line| line.get(indent..).unwrap_or("").trim_end()).collect::<Vec<_>>().join("\n") + "\n"
}

fn load(yaml: &str) -> Result<LoadedWorkflow, Vec<String>> {
    load_str(Path::new("w.yaml"), &dedent(yaml), &registry())
        .map_err(|diagnostics| diagnostics.0.iter().map(ToString::to_string).collect())
}

/// Loads `yaml` and compares every diagnostic, in order, with `expected`.
#[track_caller]
fn check(yaml: &str, expected: &[&str]) {
    let actual = load(yaml).err().unwrap_or_default();
    assert!(
        actual == expected,
        "diagnostics differ for\n{}\nexpected:\n{}\nactual:\n{}\n",
        dedent(yaml),
        expected.join("\n"),
        actual.join("\n")
    );
}

/// Loads `yaml`, which must be valid.
#[track_caller]
fn loaded(yaml: &str) -> crate::model::Workflow {
    match load(yaml) {
        Ok(loaded) => loaded.workflow,
        Err(diagnostics) => panic!("does not load:\n{}", diagnostics.join("\n")),
    }
}

#[test]
fn valid_workflows() {
    check("{name: w, steps: [{id: a, run: echo}]}", &[]);
    check(
        "
        name: full
        description: every key once
        max_parallel: 2
        inputs:
          host: string
          port: {type: int, default: 443}
          zone: {type: string, pattern: '[a-z]+', required: true, description: where}
        secrets: [API_TOKEN]
        schedule:
          - cron: '*/5 * * * *'
            timezone: Europe/Paris
            inputs: {host: example.org, zone: eu}
            overlap: queue_one
            catch_up: once
            starting_deadline: 30s
            pause_while_escalated: true
            cooldown: 10m
        steps:
          - id: look
            description: has it happened
            run: 'curl {{ inputs.host }}:{{ inputs.port }}'
            timeout: 30s
            retry: {attempts: 3, delay: 1s, backoff: 2, max_delay: 10s, jitter: true}
            env:
              TOKEN: '{{ secrets.API_TOKEN }}'
            outputs:
              body: '{{ stdout }}'
          - id: wait
            needs: look
            if: steps.look.outcome == 'success'
            run: echo
            until: outputs.ready == 'yes'
            poll: {interval: 2s, timeout: 1m}
            outputs:
              ready: '{{ json.ready }}'
          - id: act
            needs: [look, wait]
            run: 'echo {{ steps.look.outputs.body }} {{ run.id }} {{ run.workflow }}'
            idempotent: false
            continue_on_error: true
            check:
              run: echo
              done: json.done == true
          - id: probe
            needs: [act]
            probe: {target: x}
            timeout: '{{ inputs.port }}s'
        on_failure:
          - id: page
            set: {reason: '{{ failure }}', last: '{{ steps.probe.outputs.result }}'}
        outputs:
          body: '{{ steps.look.outputs.body }} {{ steps.act.outcome }} {{ inputs.zone }}'
        ",
        &[],
    );
    // `{{ expr }}` is accepted for `if` and `until` as the bare expression.
    check(
        "
        name: w
        steps:
          - {id: a, run: echo}
          - {id: b, needs: [a], if: '{{ steps.a.outcome == \"failure\" }}', run: echo}
        ",
        &[],
    );
    // `until` without `poll` polls with the default policy; `retry: 3` is `{attempts: 3}`.
    check("{name: w, steps: [{id: a, run: echo, until: 'outputs.x == 1', outputs: {x: '1'}, retry: 3}]}", &[]);
    // The `on_failure` shorthand: one `workflow` step.
    check("{name: w, steps: [{id: a, run: echo}], on_failure: {workflow: page, inputs: {why: x}}}", &[]);
    // A single schedule, a cron string.
    check("{name: w, schedule: '0 9 * * 1-5', steps: [{id: a, run: echo}]}", &[]);
}

#[test]
fn the_document_and_its_top_level_keys() {
    check("- a\n", &["w.yaml:1:1: expected a mapping with `name` and `steps`, found a list"]);
    check("name: [\n", &["w.yaml:1:7: invalid YAML: unclosed bracket '['"]);
    check(
        "{description: x}",
        &[
            "w.yaml:1:1: name: missing key `name`: every workflow has a name ([a-z0-9-]+)",
            "w.yaml:1:1: steps: missing key `steps`: a workflow needs at least one step",
        ],
    );
    check(
        "{name: Not_Valid, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:8: name: `Not_Valid` is not a valid workflow name: use lowercase letters, digits and `-`"],
    );
    check(
        "{name: w, descripton: x, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:11: descripton: unknown key `descripton` (did you mean `description`?)"],
    );
    check(
        "{name: w, zzz: 1, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:11: zzz: unknown key `zzz`; expected one of: name, description, inputs, secrets, steps, outputs, on_failure, schedule, max_parallel",
        ],
    );
    check(
        "{name: w, max_parallel: 0, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:25: max_parallel: expected a whole number of at least 1"],
    );
    check("{name: w, steps: []}", &["w.yaml:1:18: steps: a workflow needs at least one step"]);
    check("{name: w, steps: {id: a}}", &["w.yaml:1:18: steps: expected a list of steps, found a mapping"]);
    check(
        "{name: w, description: [x], steps: [{id: a, run: echo}]}",
        &["w.yaml:1:24: description: expected a string, found a list"],
    );
}

#[test]
fn inputs_and_secrets() {
    check(
        "{name: w, inputs: {port: integer}, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:26: inputs.port: unknown input type `integer` (did you mean `int`?); expected one of string, int, bool, ip, cidr",
        ],
    );
    check(
        "{name: w, inputs: {Port: int}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:20: inputs.Port: `Port` is not a valid input name: use lowercase letters, digits and `_`"],
    );
    check(
        "{name: w, inputs: {port: {type: int, default: eighty}}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:47: inputs.port.default: `eighty` is not an integer"],
    );
    check(
        "{name: w, inputs: {port: {type: int, required: true, default: 80}}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:26: inputs.port: an input with a default is not required; drop one of the two"],
    );
    check(
        "{name: w, inputs: {port: {type: int, pattern: '[0-9]+'}}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:47: inputs.port.pattern: `pattern` applies to string inputs, not int"],
    );
    check(
        "{name: w, inputs: {zone: {type: string, pattern: '[a-z'}}, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:50: inputs.zone.pattern: `[a-z` is not a regular expression: regex parse error:\n    ^(?:[a-z)$\n        ^\nerror: unclosed character class",
        ],
    );
    check(
        "{name: w, inputs: {zone: {type: string, default: EU, pattern: '[a-z]+'}}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:50: inputs.zone.default: `EU` does not match the pattern `[a-z]+`"],
    );
    check(
        "{name: w, inputs: {zone: {required: false, typ: string}}, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:26: inputs.zone: missing key `type`: one of string, int, bool, ip, cidr",
            "w.yaml:1:44: inputs.zone.typ: unknown key `typ` (did you mean `type`?)",
        ],
    );
    check(
        "{name: w, inputs: [port], steps: [{id: a, run: echo}]}",
        &["w.yaml:1:19: inputs: expected a mapping of input names to their types, found a list"],
    );
    check(
        "{name: w, secrets: [API_TOKEN, api-token], steps: [{id: a, run: echo}]}",
        &["w.yaml:1:32: secrets[1]: `api-token` is not an environment variable name"],
    );
    check(
        "{name: w, secrets: API_TOKEN, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:20: secrets: expected a list of environment variable names"],
    );
}

#[test]
fn schedules() {
    check(
        "{name: w, schedule: '* * * *', steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:21: schedule: `* * * *` has 4 fields; a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)",
        ],
    );
    check(
        "{name: w, schedule: [{cron: '0 * * * *', timezone: Mars/Olympus}], steps: [{id: a, run: echo}]}",
        &["w.yaml:1:52: schedule[0].timezone: `Mars/Olympus` is not an IANA time zone name (like UTC or Europe/Paris)"],
    );
    check(
        "{name: w, schedule: {cron: '0 * * * *', overlap: sometimes}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:50: schedule.overlap: `sometimes` is not one of skip, queue_one, allow, cancel_previous"],
    );
    check(
        "{name: w, schedule: {cron: '0 * * * *', starting_deadline: 0s}, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:60: schedule.starting_deadline: a starting deadline of 0s would drop every fire; give it room, like 30s",
        ],
    );
    check(
        "{name: w, schedule: {timezone: UTC}, steps: [{id: a, run: echo}]}",
        &["w.yaml:1:21: schedule: missing key `cron`"],
    );
    check(
        "{name: w, schedule: {cron: '0 * * * *', every: 1h}, steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:41: schedule.every: unknown key `every`; expected one of: cron, timezone, inputs, overlap, catch_up, starting_deadline, pause_while_escalated, cooldown",
        ],
    );
    check(
        "
        name: w
        inputs: {host: string, port: {type: int, default: 80}}
        schedule:
          - cron: '0 * * * *'
            inputs: {hots: x, port: eighty}
        steps: [{id: a, run: echo}]
        ",
        &[
            "w.yaml:5:13: schedule[0].inputs: the schedule does not give required input `host`, so every scheduled run would fail; add it under `inputs`",
            "w.yaml:5:14: schedule[0].inputs.hots: unknown input `hots` (did you mean `host`?)",
            "w.yaml:5:29: schedule[0].inputs.port: `eighty` is not an integer",
        ],
    );
    check(
        "{name: w, inputs: {host: string}, schedule: '0 * * * *', steps: [{id: a, run: echo}]}",
        &[
            "w.yaml:1:45: schedule: the schedule does not give required input `host`, so every scheduled run would fail; add it under `inputs`",
        ],
    );
}

#[test]
fn a_step_and_its_common_keys() {
    check("{name: w, steps: [{run: echo}]}", &["w.yaml:1:19: steps[0].id: missing key `id`: every step has an id"]);
    check(
        "{name: w, steps: [{id: Check, run: echo}]}",
        &[
            "w.yaml:1:24: steps[0].id: `Check` is not a valid step id: use lowercase letters, digits and `_`, not starting with a digit",
        ],
    );
    check(
        "
        name: w
        steps:
          - {id: a, run: echo}
          - {id: a, run: echo}
        ",
        &["w.yaml:4:5: steps[1].id: duplicate step id `a` (first used at line 3)"],
    );
    check(
        "{name: w, steps: [{id: a}]}",
        &["w.yaml:1:19: steps[0]: step `a` has no kind: add one of `probe`, `run`, `set`, `workflow`"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, set: {x: 1}}]}",
        &["w.yaml:1:38: steps[0]: step `a` has two kinds, `run` and `set`: a step does one thing"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, neds: [b]}]}",
        &["w.yaml:1:38: steps[0].neds: unknown key `neds` (did you mean `needs`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, zzz: 1}]}",
        &[
            "w.yaml:1:38: steps[0].zzz: unknown key `zzz`; expected one of: id, description, needs, if, timeout, retry, continue_on_error, idempotent, outputs, env, until, poll, check, probe, run, set, workflow",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, idempotent: maybe, continue_on_error: 1}]}",
        &[
            "w.yaml:1:50: steps[0].idempotent: expected true or false, found a string",
            "w.yaml:1:76: steps[0].continue_on_error: expected true or false, found an integer",
        ],
    );
    // Two problems at one place keep the order in which they were found.
    check(
        "{name: w, steps: [{description: x}]}",
        &[
            "w.yaml:1:19: steps[0].id: missing key `id`: every step has an id",
            "w.yaml:1:19: steps[0]: steps[0] has no kind: add one of `probe`, `run`, `set`, `workflow`",
        ],
    );
    check(
        "{name: w, steps: [a]}",
        &["w.yaml:1:19: steps[0]: expected a step (a mapping with `id` and a kind such as `run`), found a string"],
    );
    // The kind checks its own configuration, under the kind's field.
    check("{name: w, steps: [{id: a, run: {x: 1}}]}", &["w.yaml:1:32: steps[0].run: expected a command (a string)"]);
}

#[test]
fn needs_and_the_graph() {
    check(
        "{name: w, steps: [{id: check, run: echo}, {id: b, needs: [chek], run: echo}]}",
        &["w.yaml:1:59: steps[1].needs: unknown step `chek` in needs (did you mean `check`?)"],
    );
    check("{name: w, steps: [{id: a, needs: a, run: echo}]}", &["w.yaml:1:34: steps[0].needs: step `a` needs itself"]);
    check(
        "
        name: w
        steps:
          - {id: a, needs: [c], run: echo}
          - {id: b, needs: [a], run: echo}
          - {id: c, needs: [b], run: echo}
        ",
        &["w.yaml:4:5: steps[1].needs: the steps form a cycle: b -> c -> a -> b"],
    );
    check(
        "{name: w, steps: [{id: a, needs: [B], run: echo}]}",
        &[
            "w.yaml:1:35: steps[0].needs: `B` is not a valid step id: use lowercase letters, digits and `_`, not starting with a digit",
        ],
    );
    check(
        "{name: w, steps: [{id: a, needs: [page], run: echo}], on_failure: [{id: page, run: echo}]}",
        &[
            "w.yaml:1:35: steps[0].needs: `page` is an on_failure step, which runs after every other step: no step can need it",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: [{id: page, needs: [a], run: echo}]}",
        &[
            "w.yaml:1:72: on_failure[0].needs: on_failure steps run after every other step: `needs` names only other on_failure steps, not `a`",
        ],
    );
    // An invalid step is not reported again as an unknown need.
    check(
        "{name: w, steps: [{id: a, run: echo, timeout: 10}, {id: b, needs: [a], run: echo}]}",
        &["w.yaml:1:47: steps[0].timeout: `10` is not a duration: write a number and a unit, like 250ms, 30s, 5m, 1h"],
    );
}

#[test]
fn timeout_retry_and_poll() {
    check(
        "{name: w, steps: [{id: a, run: echo, timeout: 5 minutes}]}",
        &[
            "w.yaml:1:47: steps[0].timeout: `5 minutes` is not a duration: write a number and a unit, like 250ms, 30s, 5m, 1h",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, timeout: 0s}]}",
        &["w.yaml:1:47: steps[0].timeout: a timeout must be longer than 0s"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, retry: 0}]}",
        &[
            "w.yaml:1:45: steps[0].retry.attempts: retry.attempts is 0: it counts every attempt, the first included, so it is at least 1",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, retry: {attempts: 10001}}]}",
        &["w.yaml:1:56: steps[0].retry.attempts: retry.attempts is 10001: at most 10000"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, retry: {atempts: 3}}]}",
        &["w.yaml:1:46: steps[0].retry.atempts: unknown key `atempts` (did you mean `attempts`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, retry: {attempts: three, delay: 1 sec, backoff: 0.5, jitter: yes}}]}",
        &[
            "w.yaml:1:56: steps[0].retry.attempts: expected a whole number of at least 1, found a string",
            "w.yaml:1:70: steps[0].retry.delay: `1 sec` is not a duration: write a number and a unit, like 250ms, 30s, 5m, 1h",
            "w.yaml:1:86: steps[0].retry.backoff: expected a number of at least 1.0 (the factor between successive delays)",
            "w.yaml:1:99: steps[0].retry.jitter: expected true or false, found a string",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, retry: [3]}]}",
        &["w.yaml:1:45: steps[0].retry: expected a number of attempts or a mapping with `attempts`, found a list"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, until: 'true', poll: {interval: 0s, every: 1s}}]}",
        &[
            "w.yaml:1:70: steps[0].poll.interval: a poll interval must be longer than 0s",
            "w.yaml:1:74: steps[0].poll.every: unknown key `every`; expected one of: interval, timeout",
        ],
    );
    // `poll` without `until` is accepted as it is.
    check("{name: w, steps: [{id: a, run: echo, poll: {interval: 1s}}]}", &[]);
    check(
        "{name: w, inputs: {every: string}, steps: [{id: a, run: echo, until: 'true', poll: {interval: '{{ inputs.evry }}'}}]}",
        &["w.yaml:1:95: steps[0].poll.interval: unknown input `evry` (did you mean `inputs.every`?)"],
    );
}

#[test]
fn conditions_and_templates() {
    check(
        "{name: w, steps: [{id: a, run: echo}, {id: b, needs: [a], if: 'steps.a.outcome ==', run: echo}]}",
        &[
            "w.yaml:1:63: steps[1].if: malformed condition `steps.a.outcome ==`: syntax error: unexpected end of input, expected expression",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}, {id: b, if: steps.a.outcome == 'success', run: echo}]}",
        &[
            "w.yaml:1:51: steps[1].if: step `b` refers to `steps.a`, which is not among its needs (direct or indirect): add `needs: [a]`",
        ],
    );
    check(
        "{name: w, steps: [{id: look, run: echo}, {id: b, needs: [look], if: steps.lok.outcome == 'success', run: echo}]}",
        &["w.yaml:1:69: steps[1].if: unknown step `lok` (did you mean `steps.look`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}, {id: b, needs: [a], if: steps.a.status == 'ok', run: echo}]}",
        &["w.yaml:1:63: steps[1].if: `steps.a.status`: a step exposes `outcome` and `outputs`"],
    );
    check(
        "{name: w, steps: [{id: a, run: 'echo {{ inputs.x '}]}",
        &[
            "w.yaml:1:32: steps[0].run: malformed template: syntax error: unexpected end of input, expected end of variable block",
        ],
    );
    check(
        "{name: w, inputs: {host: string}, steps: [{id: a, run: 'ping {{ inputs.hots }}'}]}",
        &["w.yaml:1:56: steps[0].run: unknown input `hots` (did you mean `inputs.host`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: '{{ input.x }}'}]}",
        &[
            "w.yaml:1:32: steps[0].run: unknown variable `input` (did you mean `inputs`?); templates may use inputs, steps, run",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, env: {OUT: '{{ stdout }}'}}]}",
        &[
            "w.yaml:1:49: steps[0].env.OUT: `stdout` exists only in the step's `outputs` templates, once the step has run; other steps read `steps.a.outputs.NAME`",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, outputs: {x: '{{ stdot }}'}}]}",
        &[
            "w.yaml:1:51: steps[0].outputs.x: unknown variable `stdot` (did you mean `stdout`?); templates may use inputs, steps, run, stdout, json, exit_code",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, outputs: {x: '1'}}, {id: b, needs: [a], run: '{{ steps.a.outputs.y }}'}]}",
        &["w.yaml:1:83: steps[1].run: step `a` has no output `y`"],
    );
    check(
        "{name: w, steps: [{id: a, probe: {}}, {id: b, needs: [a], run: '{{ steps.a.outputs.reslt }}'}]}",
        &["w.yaml:1:64: steps[1].run: step `a` has no output `reslt` (did you mean `result`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: '{{ secrets.TOKEN }} {{ run.name }}'}]}",
        &[
            "w.yaml:1:32: steps[0].run: `run.name` is unknown: `run` has `id` and `workflow`",
            "w.yaml:1:32: steps[0].run: `secrets.TOKEN` is not declared: add `TOKEN` to the workflow's `secrets`",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, until: 'outputs.redy', outputs: {ready: '1'}}]}",
        &["w.yaml:1:45: steps[0].until: step `a` has no output `redy` (did you mean `ready`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: '{{ failure }}'}], on_failure: [{id: b, run: '{{ failure }}'}]}",
        &["w.yaml:1:32: steps[0].run: unknown variable `failure`; templates may use inputs, steps, run"],
    );
}

#[test]
fn outputs_and_env() {
    check(
        "{name: w, steps: [{id: a, run: echo, outputs: {Bad-Name: x}}]}",
        &[
            "w.yaml:1:48: steps[0].outputs.Bad-Name: `Bad-Name` is not a valid output name: use lowercase letters, digits and `_`",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, env: {my-var: x, 1X: y}}]}",
        &[
            "w.yaml:1:44: steps[0].env.my-var: `my-var` is not an environment variable name: use letters, digits and `_`, not starting with a digit",
            "w.yaml:1:55: steps[0].env.1X: `1X` is not an environment variable name: use letters, digits and `_`, not starting with a digit",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, outputs: [x]}]}",
        &["w.yaml:1:47: steps[0].outputs: expected a mapping of output names to templates, found a list"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], outputs: {x: '{{ steps.b.outcome }}', y: '{{ steps.a.outputs.z }}', Z: '1'}}",
        &[
            "w.yaml:1:53: outputs.x: unknown step `b`",
            "w.yaml:1:81: outputs.y: step `a` has no output `z`",
            "w.yaml:1:108: outputs.Z: `Z` is not a valid output name: use lowercase letters, digits and `_`",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], outputs: {x: '{{ stdout }}'}}",
        &["w.yaml:1:53: outputs.x: unknown variable `stdout`; workflow outputs may use inputs, steps, run"],
    );
}

#[test]
fn check_of_a_step_not_safe_to_repeat() {
    check(
        "{name: w, steps: [{id: a, run: echo, check: {run: echo, done: 'true'}}]}",
        &[
            "w.yaml:1:38: steps[0].check: `check` is for steps marked `idempotent: false`: a step safe to repeat is simply run again",
        ],
    );
    // A kind that is not safe to repeat by default still needs `idempotent: false` written for `check`.
    check(
        "{name: w, steps: [{id: a, probe: {}, check: {run: echo, done: 'true'}}]}",
        &[
            "w.yaml:1:38: steps[0].check: `check` is for steps marked `idempotent: false`: a step safe to repeat is simply run again",
        ],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, idempotent: false, check: {run: echo}}]}",
        &["w.yaml:1:64: steps[0].check: missing key `done`: the expression that is true when the effect is there"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, idempotent: false, check: {run: echo, set: {}, done: 'true'}}]}",
        &["w.yaml:1:64: steps[0].check: a check has exactly one kind (such as `run`): the read-only look"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, idempotent: false, check: {run: echo, done: 'true', when: x}}]}",
        &["w.yaml:1:90: steps[0].check.when: unknown key `when`; expected one of: done, probe, run, set, workflow"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo, idempotent: false, check: {run: echo, done: 'jsn.done'}}]}",
        &[
            "w.yaml:1:82: steps[0].check.done: unknown variable `jsn` (did you mean `json`?); templates may use inputs, steps, run, stdout, json, exit_code",
        ],
    );
}

#[test]
fn on_failure_forms() {
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: {workflow: page, input: {}}}",
        &["w.yaml:1:69: on_failure.input: unknown key `input` (did you mean `inputs`?)"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: page}",
        &["w.yaml:1:52: on_failure: expected a list of steps or a mapping with `workflow`, found a string"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: {run: echo}}",
        &["w.yaml:1:52: on_failure: expected a list of steps or a mapping with `workflow`, found a mapping"],
    );
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: [{id: a, run: echo}]}",
        &["w.yaml:1:53: on_failure[0].id: duplicate step id `a` (first used at line 1)"],
    );
    // The shorthand is a step with the id `on_failure`, whose kind checks its configuration.
    check(
        "{name: w, steps: [{id: a, run: echo}], on_failure: {workflow: [page]}}",
        &["w.yaml:1:63: on_failure.workflow.name: expected the name of a workflow"],
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    check(
        "
        name: W
        inputs: {port: integer}
        steps:
          - id: a
            run: echo
            retry: 0
            timeout: soon
          - id: b
            needs: [c]
            run: '{{ inputs.prot }}'
        frobnicate: true
        ",
        &[
            "w.yaml:1:7: name: `W` is not a valid workflow name: use lowercase letters, digits and `-`",
            "w.yaml:2:16: inputs.port: unknown input type `integer` (did you mean `int`?); expected one of string, int, bool, ip, cidr",
            "w.yaml:6:12: steps[0].retry.attempts: retry.attempts is 0: it counts every attempt, the first included, so it is at least 1",
            "w.yaml:7:14: steps[0].timeout: `soon` is not a duration: write a number and a unit, like 250ms, 30s, 5m, 1h",
            "w.yaml:9:13: steps[1].needs: unknown step `c` in needs",
            "w.yaml:10:10: steps[1].run: unknown input `prot`",
            "w.yaml:11:1: frobnicate: unknown key `frobnicate`; expected one of: name, description, inputs, secrets, steps, outputs, on_failure, schedule, max_parallel",
        ],
    );
}

#[test]
fn the_model_of_a_valid_workflow() {
    let workflow =
        loaded("{name: w, steps: [{id: a, run: echo, until: 'outputs.x == 1', outputs: {x: '1'}, retry: 3}]}");
    let step = &workflow.steps[0];
    assert_eq!(step.retry.attempts, 3);
    assert_eq!(step.poll, crate::model::PollPolicy::default());
    assert_eq!(step.until.as_deref(), Some("outputs.x == 1"));
    assert!(step.idempotent, "a `run` step is safe to repeat unless it says otherwise");
    assert_eq!(workflow.max_parallel, crate::model::DEFAULT_MAX_PARALLEL);

    let workflow = loaded("{name: w, steps: [{id: a, probe: {}}, {id: b, needs: a, if: '{{ true }}', run: echo}]}");
    assert!(!workflow.steps[0].idempotent, "the kind's default");
    assert_eq!(workflow.steps[1].condition.as_deref(), Some("true"));
    assert_eq!(workflow.steps[1].needs.iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["a"]);

    let workflow = loaded("{name: w, steps: [{id: a, run: echo}], on_failure: {workflow: page, inputs: {why: x}}}");
    let handler = &workflow.steps[1];
    assert_eq!((handler.id.as_str(), handler.kind.as_str(), handler.handler), ("on_failure", "workflow", true));
    assert_eq!(handler.config, serde_json::json!({"name": "page", "inputs": {"why": "x"}}));

    let workflow = loaded(
        "{name: w, inputs: {port: {type: int, default: '8080'}}, steps: [{id: a, run: echo, idempotent: false, check: {run: look, done: '{{ json.ok }}'}}]}",
    );
    let input = &workflow.inputs[0];
    assert_eq!((input.required, input.default.clone()), (false, Some(serde_json::json!(8080))));
    let check = workflow.steps[0].check.clone().expect("a check");
    assert_eq!(
        (check.kind.as_str(), check.config.clone(), check.done.as_str()),
        ("run", serde_json::json!("look"), "json.ok")
    );

    let workflow = loaded("{name: w, schedule: [' */5 * * * * ', {cron: '0 9 * * *'}], steps: [{id: a, run: echo}]}");
    let crons: Vec<&str> = workflow.schedules.iter().map(|s| s.cron.as_str()).collect();
    assert_eq!(crons, ["*/5 * * * *", "0 9 * * *"]);
}

#[test]
fn a_loaded_workflow_knows_its_source() {
    let text = "{name: w, steps: [{id: a, run: echo}]}\n";
    let loaded = load_str(Path::new("dir/w.yaml"), text, &registry()).expect("loads");
    assert_eq!(loaded.path, Path::new("dir/w.yaml"));
    assert_eq!(loaded.source_hash.len(), 64);
    let again = load_str(Path::new("other.yaml"), text, &registry()).expect("loads");
    assert_eq!(loaded.source_hash, again.source_hash, "the hash is of the text alone");
}
