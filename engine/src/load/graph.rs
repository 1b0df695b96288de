//! The checks across steps, once every step is read: ids are unique, `needs` name other
//! steps (on_failure steps only each other), the steps form no cycle; then what each
//! step may refer to (its ancestors), against which `references` checks its templates.

use std::collections::{BTreeSet, HashMap};

use crate::diag::did_you_mean;
use crate::ids::StepId;
use crate::model::InputSpec;

use super::step::DraftStep;
use super::{Checker, join};

impl Checker<'_> {
    /// Checks the steps together, then each step's templates and expressions against the steps before it.
    pub(super) fn check_graph(&mut self, drafts: &[DraftStep], inputs: &[InputSpec]) {
        let first_by_id = self.unique_ids(drafts);
        self.needs_name_other_steps(drafts, &first_by_id);
        let cycle = self.no_cycle(drafts);
        // With a cycle "ancestor" means nothing: check the rest of each reference against every step.
        let mut ancestors = match cycle {
            None => ancestors(drafts),
            Some(_) => vec![(0..drafts.len()).collect(); drafts.len()],
        };
        // A handler runs after every other step, so it may refer to any of them.
        let main: Vec<usize> = (0..drafts.len()).filter(|&i| !drafts[i].spec.handler).collect();
        for (index, draft) in drafts.iter().enumerate() {
            if draft.spec.handler {
                ancestors[index].extend(main.iter().copied());
            }
        }
        for (index, draft) in drafts.iter().enumerate() {
            self.step_references(draft, &ancestors[index], drafts, inputs);
        }
    }

    /// Reports every step whose id an earlier step has; the first step of each id.
    fn unique_ids<'d>(&mut self, drafts: &'d [DraftStep]) -> HashMap<&'d StepId, &'d DraftStep> {
        let mut seen: HashMap<&StepId, &DraftStep> = HashMap::new();
        for draft in drafts {
            if let Some(first) = seen.get(&draft.spec.id) {
                let message =
                    format!("duplicate step id `{}` (first used at line {})", draft.spec.id, first.position.line);
                self.error(draft.position, join(&draft.field, "id"), message);
            } else {
                seen.insert(&draft.spec.id, draft);
            }
        }
        seen
    }

    /// Needs name existing steps, other than the step itself; on_failure steps need only each other.
    fn needs_name_other_steps(&mut self, drafts: &[DraftStep], first_by_id: &HashMap<&StepId, &DraftStep>) {
        let ids: Vec<&str> = drafts.iter().map(|d| d.spec.id.as_str()).collect();
        for draft in drafts {
            for (i, need) in draft.spec.needs.iter().enumerate() {
                let position = draft.needs_positions.get(i).copied().unwrap_or(draft.position);
                let field = format!("{}.needs", draft.field);
                let needed_handler = first_by_id.get(need).map(|d| d.spec.handler);
                if need == &draft.spec.id {
                    self.error(position, field, format!("step `{need}` needs itself"));
                } else if needed_handler == Some(true) && !draft.spec.handler {
                    self.error(
                        position,
                        field,
                        format!(
                            "`{need}` is an on_failure step, which runs after every other step: no step can need it"
                        ),
                    );
                } else if needed_handler == Some(false) && draft.spec.handler {
                    self.error(position, field, format!("on_failure steps run after every other step: `needs` names only other on_failure steps, not `{need}`"));
                } else if !first_by_id.contains_key(need) {
                    let hint = did_you_mean(need.as_str(), ids.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.error(position, field, format!("unknown step `{need}` in needs{hint}"));
                }
            }
        }
    }

    /// Reports a cycle in the needs graph, at its first step; the cycle, if there is one.
    fn no_cycle(&mut self, drafts: &[DraftStep]) -> Option<Vec<usize>> {
        let cycle = find_cycle(drafts)?;
        let first = &drafts[cycle[0]];
        let names: Vec<&str> =
            cycle.iter().map(|&i| drafts[i].spec.id.as_str()).chain([first.spec.id.as_str()]).collect();
        self.error(
            first.position,
            format!("{}.needs", first.field),
            format!("the steps form a cycle: {}", names.join(" -> ")),
        );
        Some(cycle)
    }
}

/// A cycle in the needs graph as indexes in order, if there is one.
fn find_cycle(drafts: &[DraftStep]) -> Option<Vec<usize>> {
    let index: HashMap<&StepId, usize> = drafts.iter().enumerate().map(|(i, d)| (&d.spec.id, i)).collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; drafts.len()];
    let mut path = Vec::new();
    fn visit(
        node: usize,
        drafts: &[DraftStep],
        index: &HashMap<&StepId, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[node] = 1;
        path.push(node);
        for need in &drafts[node].spec.needs {
            let Some(&next) = index.get(need) else { continue };
            if next == node {
                // Reported as "needs itself".
                continue;
            }
            if state[next] == 1 {
                let start = path.iter().position(|&p| p == next).unwrap_or(0);
                // The path runs from dependents to what they need; report it in run order.
                let mut cycle: Vec<usize> = path[start..].to_vec();
                cycle.reverse();
                return Some(cycle);
            }
            if state[next] == 0
                && let Some(cycle) = visit(next, drafts, index, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state[node] = 2;
        None
    }
    for start in 0..drafts.len() {
        if state[start] == 0
            && let Some(cycle) = visit(start, drafts, &index, &mut state, &mut path)
        {
            return Some(cycle);
        }
    }
    None
}

/// For each step, the indexes of the steps it needs directly or indirectly (the graph has no cycle).
fn ancestors(drafts: &[DraftStep]) -> Vec<BTreeSet<usize>> {
    let index: HashMap<&StepId, usize> = drafts.iter().enumerate().map(|(i, d)| (&d.spec.id, i)).collect();
    let mut result: Vec<Option<BTreeSet<usize>>> = vec![None; drafts.len()];
    fn compute(
        node: usize,
        drafts: &[DraftStep],
        index: &HashMap<&StepId, usize>,
        result: &mut Vec<Option<BTreeSet<usize>>>,
    ) -> BTreeSet<usize> {
        if let Some(done) = &result[node] {
            return done.clone();
        }
        let mut set = BTreeSet::new();
        for need in &drafts[node].spec.needs {
            if let Some(&parent) = index.get(need).filter(|&&p| p != node) {
                set.insert(parent);
                set.extend(compute(parent, drafts, index, result));
            }
        }
        result[node] = Some(set.clone());
        set
    }
    (0..drafts.len()).map(|i| compute(i, drafts, &index, &mut result)).collect()
}
