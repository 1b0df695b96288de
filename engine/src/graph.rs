//! A workflow's step graph as text for people and tools: Mermaid (`flowchart TD`) and Graphviz `dot`.
//!
//! Edges come from `needs` and carry the `if` condition of the step they lead to.
//! Steps of the workflow's `on_failure` handler are grouped apart, dashed.
//! Given the step states of a run, nodes are coloured by status: succeeded
//! green, failed red, skipped grey, running yellow, pending white.
//! Used by `runbook graph` and by the escalation bundle's SUMMARY.md.

use std::fmt::Write as _;

use crate::model::{StepSpec, Workflow};
use crate::state::StepState;

/// The statuses a node can show, with their fill and stroke colours.
const STATUS_COLOURS: &[(&str, &str, &str)] = &[
    ("succeeded", "#c8e6c9", "#2e7d32"),
    ("failed", "#ffcdd2", "#c62828"),
    ("skipped", "#e0e0e0", "#757575"),
    ("running", "#fff59d", "#f9a825"),
    ("pending", "#ffffff", "#9e9e9e"),
];

/// One node: the step, and its status when a run is drawn.
struct Node<'a> {
    spec: &'a StepSpec,
    status: Option<&'static str>,
    attempts: u32,
}

fn nodes<'a>(workflow: &'a Workflow, states: Option<&[StepState]>) -> Vec<Node<'a>> {
    workflow
        .steps
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let state = states.and_then(|s| s.get(i));
            Node { spec, status: state.map(|s| s.phase.status()), attempts: state.map_or(0, |s| s.attempt.0) }
        })
        .collect()
}

/// What a node says: the step id, its kind, and with a run its status.
fn node_lines(node: &Node<'_>) -> Vec<String> {
    let mut lines = vec![node.spec.id.to_string()];
    let mut second = node.spec.kind.clone();
    if let Some(status) = node.status {
        second.push_str(&format!(" · {status}"));
        if node.attempts > 1 {
            second.push_str(&format!(" ({} attempts)", node.attempts));
        }
    }
    lines.push(second);
    if node.spec.needs.is_empty()
        && let Some(condition) = &node.spec.condition
    {
        // Without needs there is no edge to carry the condition.
        lines.push(format!("if {condition}"));
    }
    lines
}

/// The step graph as a Mermaid `flowchart TD`, for Markdown (SUMMARY.md) and mermaid.live.
pub fn mermaid(workflow: &Workflow, states: Option<&[StepState]>) -> String {
    let nodes = nodes(workflow, states);
    let mut out = String::from("flowchart TD\n");
    let node_line = |out: &mut String, node: &Node<'_>, indent: &str| {
        let label = node_lines(node).iter().map(|l| mermaid_text(l)).collect::<Vec<_>>().join("<br/>");
        let _ = writeln!(out, "{indent}{}[\"{label}\"]", mermaid_id(node.spec));
    };
    for node in nodes.iter().filter(|n| !n.spec.handler) {
        node_line(&mut out, node, "    ");
    }
    if nodes.iter().any(|n| n.spec.handler) {
        out.push_str("    subgraph on_failure [\"on_failure: runs when the run fails\"]\n");
        for node in nodes.iter().filter(|n| n.spec.handler) {
            node_line(&mut out, node, "        ");
        }
        out.push_str("    end\n");
        out.push_str("    style on_failure stroke-dasharray: 5 5\n");
    }
    for node in &nodes {
        for need in &node.spec.needs {
            let Some(from) = workflow.step(need) else { continue };
            match &node.spec.condition {
                Some(condition) => {
                    let label = wrap(&format!("if {condition}"))
                        .iter()
                        .map(|l| mermaid_text(l))
                        .collect::<Vec<_>>()
                        .join("<br/>");
                    let _ = writeln!(out, "    {} -->|\"{label}\"| {}", mermaid_id(from), mermaid_id(node.spec));
                }
                None => {
                    let _ = writeln!(out, "    {} --> {}", mermaid_id(from), mermaid_id(node.spec));
                }
            }
        }
    }
    if states.is_some() {
        for (status, fill, stroke) in STATUS_COLOURS {
            let members: Vec<String> =
                nodes.iter().filter(|n| n.status == Some(status)).map(|n| mermaid_id(n.spec)).collect();
            if members.is_empty() {
                continue;
            }
            let _ = writeln!(out, "    classDef {status} fill:{fill},stroke:{stroke},color:#000");
            let _ = writeln!(out, "    class {} {status}", members.join(","));
        }
    }
    out
}

/// The step graph in Graphviz's `dot` language (`runbook graph X --format dot | dot -Tsvg > graph.svg`).
pub fn dot(workflow: &Workflow, states: Option<&[StepState]>) -> String {
    let nodes = nodes(workflow, states);
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_text(&workflow.name));
    out.push_str("    rankdir=TB;\n");
    out.push_str("    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    let node_line = |out: &mut String, node: &Node<'_>, indent: &str| {
        let label = node_lines(node).iter().map(|l| escape_dot(l)).collect::<Vec<_>>().join("\\n");
        let mut attributes = format!("label=\"{label}\"");
        if let Some((_, fill, stroke)) = STATUS_COLOURS.iter().find(|(s, _, _)| Some(*s) == node.status) {
            attributes.push_str(&format!(", fillcolor=\"{fill}\", color=\"{stroke}\""));
        }
        if node.spec.handler {
            attributes.push_str(", style=\"rounded,filled,dashed\"");
        }
        let _ = writeln!(out, "{indent}{} [{attributes}];", dot_text(node.spec.id.as_str()));
    };
    for node in nodes.iter().filter(|n| !n.spec.handler) {
        node_line(&mut out, node, "    ");
    }
    if nodes.iter().any(|n| n.spec.handler) {
        out.push_str("    subgraph cluster_on_failure {\n");
        out.push_str("        label=\"on_failure: runs when the run fails\";\n");
        out.push_str("        style=dashed;\n");
        out.push_str("        fontname=\"Helvetica\";\n");
        for node in nodes.iter().filter(|n| n.spec.handler) {
            node_line(&mut out, node, "        ");
        }
        out.push_str("    }\n");
    }
    for node in &nodes {
        for need in &node.spec.needs {
            let Some(from) = workflow.step(need) else { continue };
            let label = match &node.spec.condition {
                Some(condition) => {
                    let lines: Vec<String> = wrap(&format!("if {condition}")).iter().map(|l| escape_dot(l)).collect();
                    format!(" [label=\"{}\"]", lines.join("\\n"))
                }
                None => String::new(),
            };
            let _ = writeln!(out, "    {} -> {}{label};", dot_text(from.id.as_str()), dot_text(node.spec.id.as_str()));
        }
    }
    out.push_str("}\n");
    out
}

/// Long conditions broken into lines at spaces, so that a graph stays about as wide as its nodes.
fn wrap(text: &str) -> Vec<String> {
    const WIDTH: usize = 48;
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > WIDTH {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// A node id Mermaid cannot mistake for a keyword (`end`) or an edge shape (`o`, `x`).
fn mermaid_id(spec: &StepSpec) -> String {
    format!("step_{}", spec.id)
}

/// Text inside a quoted Mermaid label: entity codes for what the syntax would read.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '|' => out.push_str("#124;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A quoted `dot` string.
fn dot_text(text: &str) -> String {
    format!("\"{}\"", escape_dot(text))
}

fn escape_dot(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, RunStarted};
    use crate::ids::RunId;
    use crate::state::{RunState, StepPhase};

    const WORKFLOW: &str = r#"
name: lb-check
steps:
  - id: probe
    run: curl http://127.0.0.1/
    outputs: { exit_code: "{{ exit_code }}" }
  - id: end
    needs: [probe]
    if: steps.probe.outputs.exit_code == "<0>"
    run: echo done
on_failure:
  - id: notify
    run: echo failed
"#;

    /// A run of [`WORKFLOW`] whose steps are in these phases.
    fn states(phases: &[StepPhase]) -> Vec<StepState> {
        let workflow = crate::testkit::workflow(WORKFLOW).workflow;
        let started = RunStarted {
            workflow,
            source_hash: String::new(),
            source_path: String::new(),
            inputs: serde_json::Map::new(),
            parent: None,
        };
        let first = Event { at: chrono::DateTime::UNIX_EPOCH, kind: EventKind::RunStarted(Box::new(started)) };
        let run = RunId::new(1).expect("non-zero");
        let mut state = RunState::start(run, &first).expect("run_started");
        for (step, phase) in state.steps.iter_mut().zip(phases) {
            step.phase = *phase;
        }
        state.steps
    }

    #[test]
    fn mermaid_draws_needs_conditions_and_the_handler_group() {
        let workflow = crate::testkit::workflow(WORKFLOW).workflow;
        assert_eq!(
            mermaid(&workflow, None),
            r#"flowchart TD
    step_probe["probe<br/>run"]
    step_end["end<br/>run"]
    subgraph on_failure ["on_failure: runs when the run fails"]
        step_notify["notify<br/>run"]
    end
    style on_failure stroke-dasharray: 5 5
    step_probe -->|"if steps.probe.outputs.exit_code == #quot;#lt;0#gt;#quot;"| step_end
"#
        );
    }

    #[test]
    fn long_conditions_are_wrapped_at_spaces() {
        let condition = "if steps.recreate.outcome == 'failure' or (steps.diagnose.outputs.lb_path_broken and not x)";
        let lines = wrap(condition);
        assert_eq!(
            lines,
            ["if steps.recreate.outcome == 'failure' or", "(steps.diagnose.outputs.lb_path_broken and not", "x)"]
        );
        assert_eq!(lines.join(" "), condition);
    }

    #[test]
    fn dot_quotes_conditions_and_colours_a_run() {
        let workflow = crate::testkit::workflow(WORKFLOW).workflow;
        let states = states(&[StepPhase::Succeeded, StepPhase::Failed, StepPhase::Pending]);
        let text = dot(&workflow, Some(&states));
        assert!(text.contains(r#""probe" -> "end" [label="if steps.probe.outputs.exit_code == \"<0>\""];"#), "{text}");
        assert!(text.contains(r##""probe" [label="probe\nrun · succeeded", fillcolor="#c8e6c9""##), "{text}");
        assert!(text.contains(r##""end" [label="end\nrun · failed", fillcolor="#ffcdd2""##), "{text}");
        assert!(text.contains("subgraph cluster_on_failure {"), "{text}");
        assert!(text.contains("style=\"rounded,filled,dashed\""), "{text}");
        let text = mermaid(&workflow, Some(&states));
        assert!(text.contains("class step_probe succeeded"), "{text}");
        assert!(text.contains("class step_end failed"), "{text}");
        assert!(text.contains("class step_notify pending"), "{text}");
    }
}
