//! Artifacts: files under the store that keep what steps printed, referenced
//! from events by path, size and sha256 so that events stay small.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::mask::Masker;

/// The default cap on one captured stream (stdout or stderr) of one attempt.
pub const DEFAULT_CAPTURE_CAP_BYTES: usize = 4 * 1024 * 1024;

/// A file kept for a step attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// `stdout`, `stderr`, or a name the kind chose.
    pub name: String,
    /// Relative to the store directory.
    pub path: String,
    /// Bytes kept (after masking), at most the cap.
    pub size: u64,
    pub sha256: String,
    /// Bytes the step wrote beyond the cap, which were dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a step attempt writes its artifacts: masked, capped, hashed and synced to disk.
#[derive(Debug, Clone)]
pub struct ArtifactSink {
    store_dir: PathBuf,
    /// `artifacts/RUN/STEP.ATTEMPT`
    prefix: String,
    masker: Arc<Masker>,
    cap_bytes: usize,
}

impl ArtifactSink {
    pub fn new(store_dir: &Path, prefix: String, masker: Arc<Masker>, cap_bytes: usize) -> ArtifactSink {
        ArtifactSink { store_dir: store_dir.to_path_buf(), prefix, masker, cap_bytes }
    }

    /// The most bytes of one stream worth capturing; beyond it, count and drop.
    pub fn cap_bytes(&self) -> usize {
        self.cap_bytes
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Masks and writes `bytes` (already capped by the caller, who counted
    /// `dropped_bytes` beyond the cap) as artifact `name`, durably.
    pub fn write(&self, name: &str, bytes: &[u8], dropped_bytes: u64) -> std::io::Result<ArtifactRef> {
        let masked = self.masker.mask_bytes(bytes);
        let relative = format!("{}.{name}", self.prefix);
        let path = self.store_dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&masked)?;
        // The event that names this file is appended next; the file must be on disk first.
        // An empty file has nothing to lose, and its directory entry is not synced anyway.
        if !masked.is_empty() {
            file.sync_data()?;
        }
        Ok(ArtifactRef {
            name: name.to_owned(),
            path: relative,
            size: masked.len() as u64,
            sha256: hex::encode(Sha256::digest(&masked)),
            dropped_bytes,
        })
    }
}
