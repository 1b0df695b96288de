//! Identifiers: runs, steps, sequence numbers and attempts, each its own type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A run's id: the number of its event stream in the store (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(u64);

impl RunId {
    /// A run id from a stream id; `None` for 0, which no stream has.
    pub fn new(id: u64) -> Option<RunId> {
        (id != 0).then_some(RunId(id))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for RunId {
    type Err = String;
    fn from_str(text: &str) -> Result<RunId, String> {
        text.trim().parse::<u64>().ok().and_then(RunId::new).ok_or_else(|| {
            format!("`{text}` is not a run id (run ids are positive numbers, as `runbook runs` lists them)")
        })
    }
}

/// A step's id within its workflow: `[a-z_][a-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    /// Checks the form `[a-z_][a-z0-9_]*`.
    pub fn new(id: &str) -> Result<StepId, String> {
        let mut chars = id.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            Ok(StepId(id.to_owned()))
        } else {
            Err(format!(
                "`{id}` is not a valid step id: use lowercase letters, digits and `_`, not starting with a digit"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The position of an event in its run's stream, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The number of an attempt of a step, from 1; resumes and retries count on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attempt(pub u32);

impl Attempt {
    pub const FIRST: Attempt = Attempt(1);
    pub fn next(self) -> Attempt {
        Attempt(self.0.saturating_add(1))
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Checks a workflow name: `[a-z0-9-]+`.
pub fn check_workflow_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid workflow name: use lowercase letters, digits and `-`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids() {
        assert!(StepId::new("check_service").is_ok());
        assert!(StepId::new("_x1").is_ok());
        for bad in ["", "1a", "Check", "a-b", "a b", "é"] {
            assert!(StepId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_ids() {
        assert_eq!("42".parse::<RunId>().map(RunId::get), Ok(42));
        assert!("0".parse::<RunId>().is_err());
        assert!("abc".parse::<RunId>().is_err());
    }
}
