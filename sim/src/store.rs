//! The state directory: `state.json` (the world), `state.lock` (an exclusive
//! flock held for a whole invocation, so parallel runbook steps never interleave
//! their read-modify-write), `calls.jsonl` (one line per invocation) and the
//! files the simulation produces (blobs, node files).
//!
//! Writes go to `state.json.tmp`, are synced, then renamed over `state.json`:
//! a killed invocation leaves the previous state intact.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::error::SimError;
use crate::world::World;

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The invocation log's name inside the state directory.
pub const CALLS_FILE: &str = "calls.jsonl";
const LOCK_FILE: &str = "state.lock";

/// An open state directory, locked exclusively until dropped.
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

impl Store {
    /// Takes the lock (waiting for other invocations) of an initialised state directory.
    pub fn open(dir: &Path) -> Result<Store, SimError> {
        if !dir.join(STATE_FILE).exists() {
            return Err(SimError::NotInitialised { path: dir.to_owned() });
        }
        Store::lock(dir)
    }

    /// Creates the directory if needed and takes the lock.
    pub fn create(dir: &Path) -> Result<Store, SimError> {
        std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
        Store::lock(dir)
    }

    fn lock(dir: &Path) -> Result<Store, SimError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SimError::io(&path, e))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| SimError::io(&path, e.into()))?;
        Ok(Store { dir: dir.to_owned(), _lock: file })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn load(&self) -> Result<World, SimError> {
        let path = self.dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| SimError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| SimError::Corrupt { path, message: e.to_string() })
    }

    pub fn save(&self, world: &World) -> Result<(), SimError> {
        let path = self.dir.join(STATE_FILE);
        let temporary = self.dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(world)
            .map_err(|e| SimError::Corrupt { path: path.clone(), message: e.to_string() })?;
        let mut file = File::create(&temporary).map_err(|e| SimError::io(&temporary, e))?;
        file.write_all(&text).and_then(|()| file.sync_data()).map_err(|e| SimError::io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| SimError::io(&path, e))
    }

    /// Appends one line to `calls.jsonl`.
    pub fn log_call(&self, entry: &serde_json::Value) -> Result<(), SimError> {
        let path = self.dir.join(CALLS_FILE);
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| SimError::io(&path, e))?;
        writeln!(file, "{entry}").map_err(|e| SimError::io(&path, e))
    }
}
