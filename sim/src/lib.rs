//! runbook-sim: `azsim`, a simulated `az`, `kubectl` and `helm` for tests and the
//! runbook demo. One binary answers as whichever program it is invoked as
//! (argv[0]), from a scenario's state kept in `$AZSIM_STATE`, with the JSON
//! shapes, messages and exit codes of the real command lines. A command line the
//! simulator does not know fails as the real CLI would and names the line.
//!
//! Module map: `cli` (command tables, argument grammars), `az`, `kubectl`,
//! `helm` (the handlers), `world` (the state and the Azure views derived from
//! it), `scenario` (built-in scenarios and overrides), `store` (locking and
//! persistence), `format` (output formats), `pcap` (capture files).

pub mod az;
pub mod cli;
pub mod error;
pub mod format;
pub mod helm;
pub mod kubectl;
pub mod pcap;
pub mod scenario;
pub mod store;
pub mod world;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

pub use cli::{Reply, Tool};
pub use error::SimError;

use crate::cli::{Arity, Flag};
use crate::scenario::Scenario;
use crate::store::Store;
use crate::world::World;

/// The environment variable naming the state directory.
pub const STATE_ENV: &str = "AZSIM_STATE";

/// What a handler works on: the world, the state directory (for produced files) and the time.
pub struct Ctx<'a> {
    pub world: &'a mut World,
    pub dir: &'a Path,
    pub now: DateTime<Utc>,
}

/// Writes the initial state of a scenario into `dir` (replacing any previous state and call log).
pub fn init(dir: &Path, scenario: &str, overrides: &[String]) -> Result<World, SimError> {
    let scenario = Scenario::load(scenario, overrides)?;
    let store = Store::create(dir)?;
    let world = World::new(scenario, Utc::now());
    for stale in [store::CALLS_FILE, "blobs", "node"] {
        let path = dir.join(stale);
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(SimError::io(path, e)),
            _ => {}
        }
    }
    store.save(&world)?;
    Ok(world)
}

/// The state directory from `$AZSIM_STATE`.
pub fn state_dir_from_env() -> Result<PathBuf, SimError> {
    std::env::var_os(STATE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from).ok_or(SimError::NoStateDir)
}

/// Runs one command line of a simulated tool against the state in `dir`: takes the
/// lock, loads, runs, saves, and appends the call to `calls.jsonl`.
pub fn invoke(tool: Tool, tokens: &[String], dir: &Path) -> Result<Reply, SimError> {
    let store = Store::open(dir)?;
    let mut world = store.load()?;
    world.invocations += 1;
    let now = Utc::now();
    let (reply, known) = {
        let mut ctx = Ctx { world: &mut world, dir: store.dir(), now };
        match tool {
            Tool::Az => az::run(&mut ctx, tokens),
            Tool::Kubectl => kubectl::run(&mut ctx, tokens),
            Tool::Helm => helm::run(&mut ctx, tokens),
        }
    };
    let seq = world.invocations;
    store.save(&world)?;
    store.log_call(&json!({
        "seq": seq,
        "at": world::k8s_time(now),
        "tool": tool.name(),
        "argv": tokens,
        "exit": reply.code,
        "known": known,
    }))?;
    Ok(reply)
}

/// `network lb show --resource-group/-g --name/-n [--ids ...]`: a table entry as `azsim commands` prints it.
pub fn describe_command(path: &[&str], flags: &[Flag]) -> String {
    let mut line = path.join(" ");
    for flag in flags {
        let names = flag.names.join("/");
        let shown = match flag.arity {
            Arity::Switch => names,
            Arity::One => format!("{names} V"),
            Arity::Many => format!("{names} V..."),
            Arity::Unsupported(_) => continue,
        };
        if flag.required {
            line.push_str(&format!(" {shown}"));
        } else {
            line.push_str(&format!(" [{shown}]"));
        }
    }
    line
}

/// Every known command line shape with its summary, for `azsim commands`.
pub fn command_table() -> Vec<(String, &'static str)> {
    let mut all = az::describe();
    all.extend(kubectl::describe());
    all.extend(helm::describe());
    all
}
