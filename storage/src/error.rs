//! The one error type of the storage crate, each variant carrying the object it is about.

use std::io;
use std::path::PathBuf;

use crate::{Seq, StreamId};

/// Everything that can go wrong in the storage crate.
///
/// Messages are lowercase and name the object; an IO error keeps the OS error
/// as its `source` rather than repeating it in the message, so that a caller
/// printing the error chain shows it once.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process holds the store: sled takes an exclusive `flock` on
    /// its `db` file, released by the OS when that process dies.
    #[error("store {} is in use by another process", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },

    /// Optimistic concurrency conflict: the append expected the stream's next
    /// seq to be `expected`, but it is `actual_next` (higher when another
    /// writer appended first, lower when the append would have left a gap).
    #[error("conflicting append to stream {stream}: expected next seq {expected}, but the next seq is {actual_next}")]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// The next seq the caller expected.
        expected: Seq,
        /// The stream's actual next seq.
        actual_next: Seq,
    },

    /// A record whose checksum does not match, that is too short to hold
    /// one, or that is missing from the middle of a stream. Never skipped:
    /// a read stops at the first corrupt record.
    #[error("record {seq} of stream {stream} is corrupt: {reason}")]
    Corrupt {
        /// The stream holding the record.
        stream: StreamId,
        /// The record's seq.
        seq: Seq,
        /// What is wrong with it.
        reason: String,
    },

    /// An IO error (ENOSPC, EROFS, EACCES, EIO...). `context` names the
    /// operation and the path; the OS error is the source.
    #[error("{context}")]
    Io {
        /// The operation and the path, e.g. "flushing store /var/lib/runbook".
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Any other backend failure: a sled error that is not IO (sled reports
    /// its own corruption or a bug this way), or a stored value this crate
    /// cannot decode.
    #[error("{context}: {message}")]
    Backend {
        /// What was being done, naming the object.
        context: String,
        /// What went wrong.
        message: String,
    },
}

/// The storage crate's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// Wraps a sled error: IO errors keep their OS error as the source.
    pub(crate) fn from_sled(context: impl Into<String>, error: sled::Error) -> StorageError {
        match error {
            sled::Error::Io(source) => StorageError::Io { context: context.into(), source: recover_os_error(source) },
            other => StorageError::Backend { context: context.into(), message: other.to_string() },
        }
    }

    /// Wraps an IO error.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io { context: context.into(), source }
    }
}

/// Copies an IO error so that every waiter of a failed flush gets its own,
/// keeping the OS error code when there is one (`io::Error` is not `Clone`).
pub(crate) fn copy_io_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// Gives back the OS error code that sled 0.34.7 flattens into text: once an
/// IO error has stopped its log, sled returns clones of it, and its `Clone`
/// makes `io::Error::new(kind, format!("{:?}", error))`, so the message reads
/// `Os { code: 28, kind: StorageFull, message: "No space left on device" }`.
pub(crate) fn recover_os_error(error: io::Error) -> io::Error {
    if error.raw_os_error().is_some() {
        return error;
    }
    let code = error
        .get_ref()
        .map(ToString::to_string)
        .and_then(|text| text.strip_prefix("Os { code: ")?.split(',').next()?.parse::<i32>().ok());
    match code {
        Some(code) => io::Error::from_raw_os_error(code),
        None => error,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_flattened_by_sled_is_recovered() {
        let flattened = io::Error::new(io::ErrorKind::StorageFull, format!("{:?}", io::Error::from_raw_os_error(28)));
        let error = StorageError::from_sled("flushing store /s", sled::Error::Io(flattened));
        let StorageError::Io { context, source } = error else { panic!("not an IO error") };
        assert_eq!(context, "flushing store /s");
        assert_eq!(source.raw_os_error(), Some(28));
        let plain = io::Error::other("could not acquire lock");
        let StorageError::Io { source, .. } = StorageError::from_sled("opening store /s", sled::Error::Io(plain))
        else {
            panic!("not an IO error")
        };
        assert_eq!(source.to_string(), "could not acquire lock");
    }
}
