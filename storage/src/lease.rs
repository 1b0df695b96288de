//! Leases: at most one executor per stream, with takeover from dead or expired holders.
//!
//! A lease is a key/value entry (namespace `leases`, key the stream id
//! big-endian) changed only by compare-and-swap against the exact bytes
//! read, so two processes deciding at once cannot both win.

use rustix::io::Errno;
use rustix::process::Pid;
use serde::{Deserialize, Serialize};

use crate::{KvState, Result, StorageError, StreamId};

/// The key/value namespace holding leases.
const LEASES_NAMESPACE: &str = "leases";

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Unique per process, e.g. `"host:pid:start-nanos"`: a pid alone is
    /// reused by the OS, the owner string is not.
    pub owner: String,
    /// The host name the holder runs on; its pid means something only there.
    pub host: String,
    /// The holder's process id on `host`.
    pub pid: u32,
    /// When the lease lapses unless renewed, in milliseconds since the Unix
    /// epoch.
    pub expires_at_ms: u64,
}

/// The result of [`KvState::acquire_lease`](crate::KvState::acquire_lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease was free or already ours; it is ours now.
    Acquired,
    /// The lease was someone else's, who is gone; it is ours now.
    TakenOver {
        /// The holder we replaced.
        previous: LeaseHolder,
        /// Why we could: "holder pid 123 is not running" or "lease expired
        /// at 1700000000000 ms".
        reason: String,
    },
    /// Someone else holds the lease and may still be running.
    Held(LeaseHolder),
}

/// Whether `holder` may still be running, seen from host `this_host`.
///
/// On the same host this asks the kernel (`kill(pid, 0)`): `ESRCH` means no
/// such process, `EPERM` means one exists that we may not signal. On another
/// host we cannot know, so the answer is `true` and only expiry frees the
/// lease. A pid that cannot name a single process (0, or above `i32::MAX`)
/// is not a running holder. A zombie (exited, not yet reaped by its parent)
/// still counts as running.
pub fn holder_is_alive(holder: &LeaseHolder, this_host: &str) -> bool {
    if holder.host != this_host {
        return true;
    }
    // kill(0, ..) and negative pids address process groups, never one holder.
    let Some(pid) = i32::try_from(holder.pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(Errno::SRCH) => false,
        // EPERM: it exists. Anything else: we cannot tell, so assume alive
        // and let the lease expire rather than risk two executors.
        Err(_) => true,
    }
}

/// The stored form of a lease; separate from [`LeaseHolder`] so the public
/// type stays free of serialisation concerns.
#[derive(Serialize, Deserialize)]
struct StoredLease {
    owner: String,
    host: String,
    pid: u32,
    expires_at_ms: u64,
}

fn encode(holder: &LeaseHolder) -> Result<Vec<u8>> {
    let stored = StoredLease {
        owner: holder.owner.clone(),
        host: holder.host.clone(),
        pid: holder.pid,
        expires_at_ms: holder.expires_at_ms,
    };
    serde_json::to_vec(&stored).map_err(|error| StorageError::Backend {
        context: format!("encoding lease of owner {}", holder.owner),
        message: error.to_string(),
    })
}

fn decode(stream: StreamId, value: &[u8]) -> Result<LeaseHolder> {
    let stored: StoredLease = serde_json::from_slice(value).map_err(|error| StorageError::Backend {
        context: format!("decoding lease of stream {stream}"),
        message: error.to_string(),
    })?;
    Ok(LeaseHolder { owner: stored.owner, host: stored.host, pid: stored.pid, expires_at_ms: stored.expires_at_ms })
}

fn key(stream: StreamId) -> [u8; 8] {
    stream.to_be_bytes()
}

pub(crate) fn holder<S: KvState + ?Sized>(store: &S, stream: StreamId) -> Result<Option<LeaseHolder>> {
    store.kv_get(LEASES_NAMESPACE, &key(stream))?.map(|value| decode(stream, &value)).transpose()
}

pub(crate) fn acquire<S: KvState + ?Sized>(
    store: &S,
    stream: StreamId,
    me: &LeaseHolder,
    now_ms: u64,
) -> Result<LeaseOutcome> {
    let mine = encode(me)?;
    // Each round reads the lease, decides, and writes only if nobody changed
    // it in between; a lost race means deciding again on what won.
    loop {
        let current = store.kv_get(LEASES_NAMESPACE, &key(stream))?;
        let outcome = match &current {
            None => LeaseOutcome::Acquired,
            Some(value) => {
                let previous = decode(stream, value)?;
                if previous.owner == me.owner {
                    LeaseOutcome::Acquired
                } else if previous.host == me.host && !holder_is_alive(&previous, &me.host) {
                    let reason = format!("holder pid {} is not running", previous.pid);
                    LeaseOutcome::TakenOver { previous, reason }
                } else if previous.expires_at_ms <= now_ms {
                    let reason = format!("lease expired at {} ms", previous.expires_at_ms);
                    LeaseOutcome::TakenOver { previous, reason }
                } else {
                    return Ok(LeaseOutcome::Held(previous));
                }
            }
        };
        if store.kv_compare_and_swap(LEASES_NAMESPACE, &key(stream), current.as_deref(), Some(&mine))?.is_ok() {
            return Ok(outcome);
        }
    }
}

pub(crate) fn renew<S: KvState + ?Sized>(store: &S, stream: StreamId, me: &LeaseHolder, now_ms: u64) -> Result<bool> {
    let mine = encode(me)?;
    loop {
        let Some(current) = store.kv_get(LEASES_NAMESPACE, &key(stream))? else {
            return Ok(false);
        };
        let previous = decode(stream, &current)?;
        if previous.owner != me.owner {
            return Ok(false);
        }
        if previous.expires_at_ms <= now_ms {
            // Still ours because nobody claimed it; worth knowing when
            // renewals run late.
            tracing::warn!(stream, expired_at_ms = previous.expires_at_ms, now_ms, "renewing an expired lease");
        }
        if store.kv_compare_and_swap(LEASES_NAMESPACE, &key(stream), Some(&current), Some(&mine))?.is_ok() {
            return Ok(true);
        }
    }
}

pub(crate) fn release<S: KvState + ?Sized>(store: &S, stream: StreamId, owner: &str) -> Result<()> {
    loop {
        let Some(current) = store.kv_get(LEASES_NAMESPACE, &key(stream))? else {
            return Ok(());
        };
        if decode(stream, &current)?.owner != owner {
            return Ok(());
        }
        if store.kv_compare_and_swap(LEASES_NAMESPACE, &key(stream), Some(&current), None)?.is_ok() {
            return Ok(());
        }
    }
}
