//! Durable storage for runbook: streams of opaque records, small key/value state and leases.
//!
//! This crate knows nothing of workflows. A stream is an append-only sequence
//! of byte records numbered from 1 (a run's events are one stream); key/value
//! namespaces hold small state that can be rebuilt or that coordinates
//! processes (the run index, schedule state, leases).
//!
//! Two traits state what a backend promises, so that another backend (a
//! shared database) can replace sled and pass the same conformance tests:
//! - [`EventLog`]: an append that returned `Ok` is durable.
//! - [`KvState`]: key/value namespaces, and the leases built on them.
//!
//! [`SledStore`] implements both on one sled database directory, with a
//! write-ahead log of its own and group commit: concurrent writers share one
//! log append and one `fdatasync`.

mod commit;
mod error;
mod lease;
mod record;
mod sled_store;
mod wal;

pub use error::{Result, StorageError};
pub use lease::{LeaseHolder, LeaseOutcome, holder_is_alive};
pub use sled_store::{SledStore, StoreOptions, wait_until_released};

/// Identifies a stream (a run). Never 0.
pub type StreamId = u64;

/// Position of a record in its stream; the first record has seq 1.
pub type Seq = u64;

/// An append-only log of opaque records grouped into streams.
///
/// **The promise: an append that returned `Ok` is durable.** It survives the
/// process being killed and, through `fdatasync`, a power loss, whole. An
/// append that had not returned when the process died may be absent after a
/// restart, whole, or (in [`SledStore`]) a prefix of its records; never a
/// gap. Appends are optimistic: each names the seq it expects to write, so
/// two writers can never both write seq N.
pub trait EventLog: Send + Sync {
    /// Appends `records` at seqs `expected_next`, `expected_next + 1`, ...
    /// and returns the stream's new next seq.
    ///
    /// Fails with [`StorageError::Conflict`] if the stream's next seq is not
    /// `expected_next`. Returns only once the records are durable; concurrent
    /// appenders share one flush. An empty `records` writes nothing but still
    /// checks `expected_next`.
    ///
    /// Any other error leaves the outcome unknown: the records may be visible
    /// and may survive a restart, or not. Read `next_seq` before deciding
    /// what to append next. After a failed flush (ENOSPC, EIO) the store
    /// refuses durable writes until it is reopened.
    fn append(&self, stream: StreamId, expected_next: Seq, records: &[&[u8]]) -> Result<Seq>;

    /// The records of `stream` from seq `from` (inclusive) in seq order, each
    /// checksum verified.
    ///
    /// A corrupt or missing record yields [`StorageError::Corrupt`] and ends
    /// the iteration: nothing after it is returned, so it cannot be skipped.
    /// Records appended while the iterator is alive may or may not appear.
    fn read(&self, stream: StreamId, from: Seq) -> Box<dyn Iterator<Item = Result<(Seq, Vec<u8>)>> + Send + '_>;

    /// The seq the next append to `stream` must use: 1 for an empty or
    /// unknown stream.
    fn next_seq(&self, stream: StreamId) -> Result<Seq>;

    /// Every stream that has at least one record, ascending.
    fn streams(&self) -> Result<Vec<StreamId>>;

    /// A new stream id: never 0, unique in this store and greater than every
    /// id handed out before or used by a stream in it, across restarts.
    /// Durable on return.
    fn allocate_stream_id(&self) -> Result<StreamId>;

    /// Removes a whole stream, atomically and durably. Deleting an unknown
    /// stream does nothing. An id from [`EventLog::allocate_stream_id`] is
    /// not handed out again after its stream is deleted.
    fn delete_stream(&self, stream: StreamId) -> Result<()>;
}

/// Small key/value state in named namespaces, and leases built on it.
///
/// Namespaces are short names (`"runs"`, `"schedules"`); keys and values are
/// opaque bytes, scanned in byte order. Values carry no checksum: this is
/// for state that is small and either rebuildable from the event log or
/// self-validating (leases decode or fail loudly). Writes are durable on
/// return, except [`KvState::kv_put_unsynced`].
///
/// The lease methods are provided on top of
/// [`KvState::kv_compare_and_swap`], so every backend gets the same rules;
/// see [`KvState::acquire_lease`].
pub trait KvState: Send + Sync {
    /// The value of `key` in namespace `ns`, if any.
    fn kv_get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Sets `key` to `value`; durable on return.
    fn kv_put(&self, ns: &str, key: &[u8], value: &[u8]) -> Result<()>;

    /// Sets `key` to `value` without waiting for a flush: for projections
    /// that can be rebuilt, where losing the last writes to a crash is fine.
    /// The write becomes durable with the next flush of any other write.
    fn kv_put_unsynced(&self, ns: &str, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key`; durable on return. Removing an absent key is fine.
    fn kv_delete(&self, ns: &str, key: &[u8]) -> Result<()>;

    /// Sets `key` to `new` (`None` removes it) if its current value is `old`
    /// (`None`: absent). Returns `Ok(Err(current))` on mismatch, writing
    /// nothing; durable on return when it succeeds.
    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Option<Vec<u8>>>>;

    /// Every key and value of namespace `ns`, in key order.
    fn kv_scan(&self, ns: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Takes the lease of `stream` for `me`, as of `now_ms` (milliseconds
    /// since the Unix epoch; the clock is the caller's, never read here).
    ///
    /// - no holder: [`LeaseOutcome::Acquired`];
    /// - held by `me.owner` already: renewed with `me`, `Acquired`;
    /// - held by a process on `me.host` that is not running:
    ///   [`LeaseOutcome::TakenOver`] at once, whatever the expiry;
    /// - held by anyone else with `expires_at_ms <= now_ms`: `TakenOver`;
    /// - otherwise [`LeaseOutcome::Held`] with the current holder.
    ///
    /// Decided with compare-and-swap, so of two racing processes one wins.
    fn acquire_lease(&self, stream: StreamId, me: &LeaseHolder, now_ms: u64) -> Result<LeaseOutcome> {
        lease::acquire(self, stream, me, now_ms)
    }

    /// Extends the lease with `me` (its new `expires_at_ms`) if `me.owner`
    /// still holds it, and returns `true`. Returns `false` if it does not:
    /// someone else took it over or it was released, and the caller must
    /// stop acting on the stream.
    fn renew_lease(&self, stream: StreamId, me: &LeaseHolder, now_ms: u64) -> Result<bool> {
        lease::renew(self, stream, me, now_ms)
    }

    /// Releases the lease of `stream` if `owner` holds it; otherwise does
    /// nothing (the lease was taken over and is not ours to remove).
    fn release_lease(&self, stream: StreamId, owner: &str) -> Result<()> {
        lease::release(self, stream, owner)
    }

    /// The current holder of the lease of `stream`, expired or not.
    fn lease_holder(&self, stream: StreamId) -> Result<Option<LeaseHolder>> {
        lease::holder(self, stream)
    }
}
