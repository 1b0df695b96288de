//! The sled backend: one database directory holding the event log, key/value namespaces and leases.
//!
//! Trees:
//! - `events`: record key (stream, seq) → checksummed record. A stream's
//!   head is its last key. Every write runs under the write-ahead log's lock
//!   ([`GroupCommit::logged`]), which makes the compare-and-swap of an
//!   append (read the head, insert after it) safe without a sled
//!   transaction. An append inserts its records one by one in seq order, so
//!   what sled recovers of a stream after a crash is a prefix of what was
//!   written, never a gap (sled recovers a prefix of its own log). sled's
//!   multi-key transactions would also make an append atomic inside sled,
//!   but each one makes sled write its log buffer out, twice, with a
//!   `sync_file_range` each time, on every append: the write-ahead log is
//!   what makes an acknowledged append whole;
//! - `meta`: the last stream id handed out;
//! - `kv:NAME`: one per key/value namespace.
//!
//! Stores written before kept each stream's head in a `heads` tree, which
//! nothing reads any more.

use std::fs::{self, DirBuilder, File};
use std::future::Future;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::transaction::TransactionError;

use crate::commit::{Checkpointer, GroupCommit, Ticket};
use crate::record::{decode_record, decode_u64, encode_record, parse_record_key, record_key};
use crate::wal::{self, Op, Segment};
use crate::{EventLog, KvState, Result, Seq, StorageError, StreamId};

/// sled's page cache budget. Its default (1 GiB) is far more than an event
/// log read mostly at resume needs; sled measures on-disk bytes, and real
/// memory use is larger still.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// How a store is opened; `StoreOptions::default()` is what `runbook` uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A log segment this large is followed by a checkpoint (sled's files
    /// made durable, older segments removed): the bound on what a store
    /// opened after a crash replays.
    pub checkpoint_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { checkpoint_bytes: wal::CHECKPOINT_BYTES }
    }
}

/// The tree of store-wide counters.
const META_TREE: &str = "meta";

/// Key in `meta` of the last stream id handed out (big-endian u64).
const LAST_STREAM_ID_KEY: &[u8] = b"last_stream_id";

/// A store on sled: an [`EventLog`] and [`KvState`] in one directory.
///
/// Cheap to clone; clones share the database and its flusher thread, which
/// stops (after a last flush) when the last clone is dropped. Only one
/// process can open a directory at a time.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    events: sled::Tree,
    meta: sled::Tree,
    commit: Arc<GroupCommit>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Appends that wrote records and waited for a flush.
    appends: AtomicU64,
    /// Last, so that it drops after every sled handle above.
    release: AwaitRelease,
}

impl SledStore {
    /// Opens the store in `dir`, creating the directory (mode 0700) if it
    /// is missing.
    ///
    /// Fails with [`StorageError::Locked`] if another process (or another
    /// open store in this process) holds it.
    pub fn open(dir: &Path) -> Result<SledStore> {
        SledStore::open_with(dir, &StoreOptions::default())
    }

    /// Opens like [`SledStore::open`], with `options`.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<SledStore> {
        let context = || format!("opening store {}", dir.display());
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| StorageError::io(context(), e))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            // We flush ourselves, on every durable write (group commit);
            // sled's timer would only add flushes nobody waits for.
            .flush_every_ms(None)
            .open()
            .map_err(|error| match error {
                sled::Error::Io(source) if is_lock_error(&source) => StorageError::Locked { path: dir.to_path_buf() },
                other => StorageError::from_sled(context(), other),
            })?;
        SledStore::start(dir, db, options).inspect_err(|_| {
            // Every handle is gone; a caller trying again at once must not
            // find the store locked by sled's IO threads.
            let _ = wait_until_released(dir, RELEASE_TIMEOUT);
        })
    }

    /// The rest of opening, once sled has opened the database: replay the
    /// log a process that did not close the store left, start the flusher.
    fn start(dir: &Path, db: sled::Db, options: &StoreOptions) -> Result<SledStore> {
        let context = || format!("opening store {}", dir.display());
        let db_path = dir.join("db");
        // Read-only is enough for fdatasync, and cannot write by mistake.
        let db_file = File::open(&db_path)
            .map_err(|e| StorageError::io(format!("opening store file {}", db_path.display()), e))?;
        let wal_dir = dir.join(wal::DIR_NAME);
        // No log directory yet: a store this code never opened. It is
        // created only after the flush below, so that a process killed in
        // between leaves the flush still to do.
        let first_open = match fs::symlink_metadata(&wal_dir) {
            Ok(_) => false,
            Err(error) if error.kind() == io::ErrorKind::NotFound => true,
            Err(error) => {
                return Err(StorageError::io(format!("looking for log directory {}", wal_dir.display()), error));
            }
        };
        let open_tree = |name: &str| db.open_tree(name).map_err(|e| StorageError::from_sled(context(), e));
        let events = open_tree("events")?;
        let meta = open_tree(META_TREE)?;
        let mut checkpointer = Checkpointer::new(db.clone(), db_file, dir);
        // sled removes, when it opens a database, the blob files a killed
        // process wrote beyond what its log kept, but only once something
        // of its log was ever made durable: otherwise they stay, and sled,
        // handing out the same log sequence numbers again, fails to create
        // them anew (EEXIST), as replaying the log would. The trees just
        // opened are something: a store is flushed the first time this code
        // opens it, and has a durable log from then on (stores written
        // before were flushed on every write).
        if first_open {
            checkpointer.run(0).map_err(|failure| failure.into_error(context()))?;
            DirBuilder::new().mode(0o700).create(&wal_dir).or_else(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(StorageError::io(format!("creating log directory {}", wal_dir.display()), error)),
            })?;
            // sled may just have created `db`, `conf` and `blobs/`, and we
            // `wal/`: their entries are durable only once the directory is.
            wal::sync_dir(dir)
                .map_err(|e| StorageError::io(format!("syncing store directory {}", dir.display()), e))?;
        }
        let next_segment = recover(&db, &events, &wal_dir, &mut checkpointer)?;
        let segment = Segment::create(&wal_dir, next_segment)
            .map_err(|e| StorageError::io(format!("creating a log segment in {}", wal_dir.display()), e))?;
        let (commit, flusher) = GroupCommit::start(checkpointer, segment, dir, options.checkpoint_bytes)
            .map_err(|e| StorageError::io(format!("starting the flusher thread of store {}", dir.display()), e))?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                path: dir.to_path_buf(),
                db,
                events,
                meta,
                commit,
                flusher: Mutex::new(Some(flusher)),
                appends: AtomicU64::new(0),
                release: AwaitRelease { path: dir.to_path_buf(), wait: true },
            }),
        })
    }

    /// The store directory, as given to [`SledStore::open`].
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends like [`EventLog::append`], waiting for durability without
    /// blocking a runtime thread.
    ///
    /// The records are written (or the conflict detected) when this is
    /// called; the returned future only waits for the flush, so it can be
    /// spawned. Dropping the future does not undo the append: the records
    /// stay and become durable with the next flush.
    pub fn append_async(
        &self,
        stream: StreamId,
        expected_next: Seq,
        records: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Seq>> + Send + use<> {
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let written = self.write_records(stream, expected_next, &records);
        async move {
            let (next, ticket) = written?;
            if let Some(ticket) = ticket {
                ticket.wait_async().await?;
            }
            Ok(next)
        }
    }

    /// Bytes used by the store directory, all files included.
    pub fn size_on_disk(&self) -> Result<u64> {
        directory_size(&self.inner.path)
            .map_err(|e| StorageError::io(format!("measuring store {}", self.inner.path.display()), e))
    }

    /// `(flushes, appends)` since open: how many flushes ran and how many
    /// appends waited for one. Fewer flushes than appends is group commit
    /// at work.
    pub fn flush_stats(&self) -> (u64, u64) {
        (self.inner.commit.flushes(), self.inner.appends.load(Ordering::Relaxed))
    }

    /// Writes the records and, if there were any, returns the ticket of
    /// the flush that will make them durable.
    fn write_records(&self, stream: StreamId, expected_next: Seq, records: &[&[u8]]) -> Result<(Seq, Option<Ticket>)> {
        let inner = &self.inner;
        if records.is_empty() {
            let actual_next = self.next_seq(stream)?;
            if actual_next != expected_next {
                return Err(StorageError::Conflict { stream, expected: expected_next, actual_next });
            }
            // The head read may come from another writer's append that is
            // not durable yet: answer only once it is.
            return Ok((expected_next, Some(inner.commit.ticket())));
        }
        self.writable()?;
        let values: Vec<Vec<u8>> = records.iter().map(|payload| encode_record(payload)).collect();
        let next = inner.commit.logged(|log| {
            // No other write runs until this one is in the log buffer, so
            // the head read here is still the head when the records go in.
            let actual_next = self.next_seq(stream)?;
            if expected_next != actual_next {
                return Err(StorageError::Conflict { stream, expected: expected_next, actual_next });
            }
            for (seq, value) in (expected_next..).zip(&values) {
                inner.events.insert(record_key(stream, seq), value.as_slice()).map_err(|error| {
                    self.write_failed(StorageError::from_sled(self.context_for(stream, "appending to"), error))
                })?;
            }
            wal::encode_append(log, stream, expected_next, &values);
            Ok(expected_next + values.len() as u64)
        })?;
        // After the write is in the log buffer, never before: the ticket's
        // flush must take the buffer after it.
        let ticket = inner.commit.ticket();
        inner.appends.fetch_add(1, Ordering::Relaxed);
        Ok((next, Some(ticket)))
    }

    fn context_for(&self, stream: StreamId, action: &str) -> String {
        format!("{action} stream {stream} in store {}", self.inner.path.display())
    }

    /// The seq of the stream's last record; 0 when it has none.
    fn head(&self, stream: StreamId) -> Result<Seq> {
        let last = self.inner.events.range(record_key(stream, 0)..=record_key(stream, Seq::MAX)).next_back();
        match last {
            None => Ok(0),
            Some(Ok((key, _))) => Ok(parse_record_key(&key).map_or(0, |(_, seq)| seq)),
            Some(Err(error)) => Err(StorageError::from_sled(self.context_for(stream, "reading the head of"), error)),
        }
    }

    /// The tree of namespace `ns`, and its name.
    fn kv_tree(&self, ns: &str) -> Result<(sled::Tree, String)> {
        let name = format!("kv:{ns}");
        let tree = self.inner.db.open_tree(&name).map_err(|error| {
            StorageError::from_sled(
                format!("opening key/value namespace {ns} in store {}", self.inner.path.display()),
                error,
            )
        })?;
        Ok((tree, name))
    }

    fn kv_context(&self, action: &str, ns: &str) -> String {
        format!("{action} key/value namespace {ns} in store {}", self.inner.path.display())
    }

    /// A write sled reported as failed may leave its log unflushable (see
    /// `commit`): no later write is made durable until the store is reopened.
    fn write_failed(&self, error: StorageError) -> StorageError {
        self.inner.commit.poison(&error);
        error
    }

    /// Makes everything written so far durable in sled's own files and
    /// removes the write-ahead log that held it, as closing the store does:
    /// what is on disk afterwards is the store at rest.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.commit.checkpoint()
    }

    /// Refuses a write once the store has failed: nothing would make it
    /// durable, and an unsynced write would be lost without a word.
    fn writable(&self) -> Result<()> {
        self.inner.commit.failure().map_or(Ok(()), Err)
    }

    /// Waits for a flush covering the writes made so far.
    fn sync(&self) -> Result<()> {
        self.inner.commit.ticket().wait()
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.commit.shut_down();
        let flusher = self.flusher.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if self.commit.is_poisoned() {
            // sled flushes when its last handle is dropped, and after a
            // failed write that flush may wait forever (see `commit`), as
            // may the flusher thread: keep the handles alive and let it go.
            // The store is unusable until reopened anyway.
            std::mem::forget((self.db.clone(), self.events.clone(), self.meta.clone()));
            self.release.wait = false;
            return;
        }
        if let Some(flusher) = flusher
            && flusher.join().is_err()
        {
            tracing::error!(store = %self.path.display(), "the flusher thread panicked");
        }
    }
}

/// The last field of [`Inner`]: once every sled handle has dropped, waits
/// for sled to let the store go. sled's background IO threads hold the
/// database file, and with it the directory's lock, a moment longer than
/// the last handle; without this wait, a store closed and opened again at
/// once in the same process could be refused as locked.
struct AwaitRelease {
    path: PathBuf,
    wait: bool,
}

impl Drop for AwaitRelease {
    fn drop(&mut self) {
        if !self.wait {
            return;
        }
        match wait_until_released(&self.path, RELEASE_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(store = %self.path.display(), "sled still holds the store after closing"),
            Err(error) => {
                tracing::warn!(store = %self.path.display(), %error, "cannot tell whether sled let the store go")
            }
        }
    }
}

/// How long closing a store waits for sled's IO threads to let it go.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until no handle in this process or another holds the lock sled
/// takes on the store in `dir` (an exclusive `flock` on its `db` file), up
/// to `timeout`. True once it is free (or the store has no `db` file).
///
/// Dropping a sled database returns before its background IO threads drop
/// their reference to the locked file; this is how a caller that closed a
/// store, through [`SledStore`] or through sled itself, waits for that.
pub fn wait_until_released(dir: &Path, timeout: Duration) -> io::Result<bool> {
    let file = match File::open(dir.join("db")) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(error) => return Err(error),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            // Closing `file` releases the probe's own lock.
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(errno) => return Err(errno.into()),
        }
    }
}

impl EventLog for SledStore {
    fn append(&self, stream: StreamId, expected_next: Seq, records: &[&[u8]]) -> Result<Seq> {
        let (next, ticket) = self.write_records(stream, expected_next, records)?;
        if let Some(ticket) = ticket {
            ticket.wait()?;
        }
        Ok(next)
    }

    fn read(&self, stream: StreamId, from: Seq) -> Box<dyn Iterator<Item = Result<(Seq, Vec<u8>)>> + Send + '_> {
        let first = from.max(1);
        let range = self.inner.events.range(record_key(stream, first)..=record_key(stream, Seq::MAX));
        Box::new(Records { store: self, range, stream, expected: first, finished: false })
    }

    fn next_seq(&self, stream: StreamId) -> Result<Seq> {
        Ok(self.head(stream)?.saturating_add(1))
    }

    fn streams(&self) -> Result<Vec<StreamId>> {
        let context = || format!("listing streams in store {}", self.inner.path.display());
        let mut streams = Vec::new();
        let mut from = record_key(0, 0);
        // One seek per stream: from each stream's first key to the next stream.
        while let Some(entry) = self.inner.events.range(from..).next() {
            let (key, _) = entry.map_err(|e| StorageError::from_sled(context(), e))?;
            let Some((stream, _)) = parse_record_key(&key) else {
                return Err(StorageError::Backend {
                    context: context(),
                    message: format!("a record key is {} bytes, expected 16", key.len()),
                });
            };
            streams.push(stream);
            match stream.checked_add(1) {
                Some(next) => from = record_key(next, 0),
                None => break,
            }
        }
        Ok(streams)
    }

    fn allocate_stream_id(&self) -> Result<StreamId> {
        let context = || format!("allocating a stream id in store {}", self.inner.path.display());
        let meta = &self.inner.meta;
        self.writable()?;
        // Under the log's lock, so that no write comes between reading the
        // counter and the highest stream and moving the counter on.
        let id = self.inner.commit.logged(|log| {
            let current = meta.get(LAST_STREAM_ID_KEY).map_err(|e| StorageError::from_sled(context(), e))?;
            let last_handed_out = match &current {
                None => 0,
                Some(value) => decode_u64(value).ok_or_else(|| StorageError::Backend {
                    context: context(),
                    message: format!("last stream id is {} bytes, expected 8", value.len()),
                })?,
            };
            // Also above any stream written under an id this counter did not
            // hand out, so a new id never lands in an existing stream.
            let highest_stream = match self.inner.events.last().map_err(|e| StorageError::from_sled(context(), e))? {
                Some((key, _)) => parse_record_key(&key).map_or(0, |(stream, _)| stream),
                None => 0,
            };
            let id = last_handed_out.max(highest_stream).checked_add(1).ok_or_else(|| StorageError::Backend {
                context: context(),
                message: "stream ids are exhausted".to_owned(),
            })?;
            meta.insert(LAST_STREAM_ID_KEY, &id.to_be_bytes())
                .map_err(|e| self.write_failed(StorageError::from_sled(context(), e)))?;
            wal::encode_put(log, META_TREE.as_bytes(), LAST_STREAM_ID_KEY, Some(&id.to_be_bytes()));
            Ok(id)
        })?;
        self.sync()?;
        Ok(id)
    }

    fn delete_stream(&self, stream: StreamId) -> Result<()> {
        let inner = &self.inner;
        self.writable()?;
        inner.commit.logged(|log| {
            // Under the log's lock no append can come in between. Seqs run
            // from 1 to the head, so the keys are known without a scan
            // (sled transactions cannot scan); one transaction, so that sled
            // never recovers half a deletion.
            let head = self.head(stream)?;
            if head == 0 {
                return Ok(());
            }
            let removed: Result<(), TransactionError<()>> = inner.events.transaction(|events| {
                for seq in 1..=head {
                    events.remove(&record_key(stream, seq))?;
                }
                Ok(())
            });
            removed.map_err(|error| {
                let error = match error {
                    TransactionError::Storage(error) => error,
                    TransactionError::Abort(()) => sled::Error::ReportableBug("an abort nobody asked for".to_owned()),
                };
                self.write_failed(StorageError::from_sled(self.context_for(stream, "deleting"), error))
            })?;
            wal::encode_delete_stream(log, stream);
            Ok(())
        })?;
        // Also when there was nothing to delete: another writer's deletion,
        // which this answer relies on, may not be durable yet.
        self.sync()
    }
}

/// Reads one stream in seq order, verifying each record, and stops at the
/// first error.
struct Records<'a> {
    store: &'a SledStore,
    range: sled::Iter,
    stream: StreamId,
    /// The seq the next record must have: seqs have no gaps.
    expected: Seq,
    finished: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<(Seq, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let (stream, expected) = (self.stream, self.expected);
        let item = match self.range.next()? {
            Err(error) => Err(StorageError::from_sled(self.store.context_for(stream, "reading"), error)),
            Ok((key, value)) => match parse_record_key(&key) {
                Some((_, seq)) if seq == expected => decode_record(stream, seq, &value).map(|payload| (seq, payload)),
                Some((_, seq)) => Err(StorageError::Corrupt {
                    stream,
                    seq: expected,
                    reason: format!("record is missing, the next one present is seq {seq}"),
                }),
                _ => Err(StorageError::Corrupt {
                    stream,
                    seq: expected,
                    reason: format!("a key of {} bytes lies among the stream's records", key.len()),
                }),
            },
        };
        match &item {
            Ok(_) => self.expected = expected.saturating_add(1),
            Err(_) => self.finished = true,
        }
        Some(item)
    }
}

impl KvState for SledStore {
    fn kv_get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value =
            self.kv_tree(ns)?.0.get(key).map_err(|e| StorageError::from_sled(self.kv_context("reading", ns), e))?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn kv_put(&self, ns: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.kv_put_unsynced(ns, key, value)?;
        self.sync()
    }

    fn kv_put_unsynced(&self, ns: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.writable()?;
        let (tree, name) = self.kv_tree(ns)?;
        self.inner
            .commit
            .logged(|log| {
                tree.insert(key, value)?;
                wal::encode_put(log, name.as_bytes(), key, Some(value));
                Ok(())
            })
            .map_err(|e| self.write_failed(StorageError::from_sled(self.kv_context("writing", ns), e)))
    }

    fn kv_delete(&self, ns: &str, key: &[u8]) -> Result<()> {
        self.writable()?;
        let (tree, name) = self.kv_tree(ns)?;
        self.inner
            .commit
            .logged(|log| {
                tree.remove(key)?;
                wal::encode_put(log, name.as_bytes(), key, None);
                Ok(())
            })
            .map_err(|e| self.write_failed(StorageError::from_sled(self.kv_context("deleting from", ns), e)))?;
        self.sync()
    }

    fn kv_compare_and_swap(
        &self,
        ns: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Option<Vec<u8>>>> {
        self.writable()?;
        let (tree, name) = self.kv_tree(ns)?;
        let swapped = self
            .inner
            .commit
            .logged(|log| {
                let swapped = tree.compare_and_swap(key, old, new);
                if let Ok(Ok(())) = swapped {
                    wal::encode_put(log, name.as_bytes(), key, new);
                }
                swapped
            })
            .map_err(|e| self.write_failed(StorageError::from_sled(self.kv_context("writing", ns), e)))?;
        // A mismatch is an answer too, and the value it reports may come
        // from a write that is not durable yet.
        self.sync()?;
        Ok(swapped.map_err(|mismatch| mismatch.current.map(|current| current.to_vec())))
    }

    fn kv_scan(&self, ns: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.kv_tree(ns)?
            .0
            .iter()
            .map(|entry| {
                entry
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .map_err(|e| StorageError::from_sled(self.kv_context("scanning", ns), e))
            })
            .collect()
    }
}

/// Replays the log segments left by a process that did not close the store,
/// makes the result durable in sled's own files, removes the segments, and
/// returns the number of the next one.
fn recover(db: &sled::Db, events: &sled::Tree, wal_dir: &Path, checkpointer: &mut Checkpointer) -> Result<u64> {
    let segments = wal::segments(wal_dir)
        .map_err(|e| StorageError::io(format!("listing log segments in {}", wal_dir.display()), e))?;
    let Some(&(last, _)) = segments.last() else { return Ok(1) };
    let context = |path: &Path| format!("replaying log segment {}", path.display());
    let mut replayed = 0_usize;
    for (index, (_, path)) in segments.iter().enumerate() {
        let bytes = fs::read(path).map_err(|e| StorageError::io(context(path), e))?;
        let wal::Decoded { ops, end } = wal::decode_frames(&bytes);
        match end {
            wal::End::Clean => {}
            // Only the last segment is written when a process dies; an older
            // one that does not end cleanly has lost acknowledged writes.
            wal::End::Torn { at } | wal::End::Damaged { at } if index + 1 < segments.len() => {
                return Err(damaged(context(path), at, bytes.len(), "in a segment completed before a newer one began"));
            }
            wal::End::Damaged { at } => {
                return Err(damaged(context(path), at, bytes.len(), "and a later batch follows it"));
            }
            wal::End::Torn { at } => tracing::warn!(
                segment = %path.display(),
                at,
                bytes = bytes.len() - at,
                "the log ends in a batch a crash cut short, never acknowledged; replaying up to it"
            ),
        }
        replayed += ops.len();
        for op in ops {
            replay(db, events, op).map_err(|problem| match problem {
                ReplayProblem::Sled(error) => StorageError::from_sled(context(path), error),
                ReplayProblem::Differs { stream, seq } => StorageError::Corrupt {
                    stream,
                    seq,
                    reason: format!(
                        "the store holds another record than the write-ahead log ({}) for it",
                        path.display()
                    ),
                },
            })?;
        }
    }
    checkpointer.run(u64::MAX).map_err(|failure| {
        failure.into_error(format!("making the replayed log of store {} durable", wal_dir.display()))
    })?;
    tracing::info!(segments = segments.len(), writes = replayed, "replayed the log of a store that was not closed");
    Ok(last + 1)
}

/// Why a logged write could not be applied again.
enum ReplayProblem {
    Sled(sled::Error),
    /// The store has a record at this place, and not the one the log has:
    /// a stream deleted and written again under the same id, which stream
    /// ids handed out by the store never are.
    Differs {
        stream: StreamId,
        seq: Seq,
    },
}

impl From<sled::Error> for ReplayProblem {
    fn from(error: sled::Error) -> ReplayProblem {
        ReplayProblem::Sled(error)
    }
}

/// A log segment that replay cannot use whole: what it would skip was acknowledged.
fn damaged(context: String, at: usize, len: usize, why: &str) -> StorageError {
    StorageError::Backend {
        context,
        message: format!(
            "the frame at byte {at} of {len} is damaged, {why}; the store is left as it is \
             (restore it from a backup, or move the segment away to give up the writes it holds)"
        ),
    }
}

/// Applies one logged write again, over whatever sled recovered (see `wal`).
fn replay(db: &sled::Db, events: &sled::Tree, op: Op) -> Result<(), ReplayProblem> {
    match op {
        Op::Append { stream, first, values } => {
            if first > 1 && !events.contains_key(record_key(stream, first - 1))? {
                // A deletion sled recovered, never acknowledged, removed the
                // stream after this append: half a stream must not return.
                return Ok(());
            }
            for (seq, value) in (first..).zip(values) {
                let key = record_key(stream, seq);
                match events.get(key)? {
                    None => {
                        events.insert(key, value)?;
                    }
                    Some(present) if present == value => {}
                    Some(_) => return Err(ReplayProblem::Differs { stream, seq }),
                }
            }
        }
        Op::DeleteStream { stream } => {
            for key in events.scan_prefix(stream.to_be_bytes()).keys() {
                events.remove(key?)?;
            }
        }
        Op::Put { tree, key, value } => {
            db.open_tree(tree)?.insert(key, value)?;
        }
        Op::Remove { tree, key } => {
            db.open_tree(tree)?.remove(key)?;
        }
    }
    Ok(())
}

/// sled 0.34.7 reports a held `flock` on its `db` file as an `Other` IO
/// error with this message (wrapping `WouldBlock`), not as its own variant.
fn is_lock_error(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock || error.to_string().contains("could not acquire lock")
}

fn directory_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() { directory_size(&entry.path())? } else { metadata.len() };
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    struct Trees {
        _dir: tempfile::TempDir,
        db: sled::Db,
        events: sled::Tree,
    }

    fn trees() -> Trees {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        let events = db.open_tree("events").unwrap();
        Trees { _dir: dir, db, events }
    }

    impl Trees {
        fn replay(&self, op: Op) {
            assert!(replay(&self.db, &self.events, op).is_ok());
        }

        fn append(&self, stream: StreamId, first: Seq, count: u64) -> Op {
            Op::Append { stream, first, values: (first..first + count).map(|seq| vec![seq as u8]).collect() }
        }

        /// Seqs of `stream`'s records.
        fn stream(&self, stream: StreamId) -> Vec<Seq> {
            self.events
                .scan_prefix(stream.to_be_bytes())
                .keys()
                .map(|key| parse_record_key(&key.unwrap()).unwrap().1)
                .collect()
        }
    }

    #[test]
    fn replaying_appends_sled_already_has_changes_nothing() {
        let trees = trees();
        trees.replay(trees.append(1, 1, 3));
        trees.replay(trees.append(1, 4, 2));
        assert_eq!(trees.stream(1), vec![1, 2, 3, 4, 5]);
        // sled recovered more than the log holds: replaying the log's
        // older appends leaves the newer records alone.
        trees.replay(trees.append(1, 1, 3));
        assert_eq!(trees.stream(1), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn an_append_to_a_stream_a_later_deletion_removed_is_skipped_not_half_restored() {
        let trees = trees();
        // Records 1-3 were checkpointed; then 4-5 were logged and a deletion
        // that sled recovered but the log lost removed the stream.
        trees.replay(trees.append(1, 4, 2));
        assert_eq!(trees.stream(1), Vec::<Seq>::new());
        // A stream begun after the checkpoint comes back whole.
        trees.replay(trees.append(2, 1, 2));
        trees.replay(trees.append(2, 3, 1));
        assert_eq!(trees.stream(2), vec![1, 2, 3]);
        trees.replay(Op::DeleteStream { stream: 2 });
        assert_eq!(trees.stream(2), Vec::<Seq>::new());
    }

    #[test]
    fn a_failed_store_refuses_every_write_unsynced_ones_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.kv_put_unsynced("ns", b"k", b"before").unwrap();
        let full = StorageError::Io { context: "writing".to_owned(), source: io::Error::from_raw_os_error(28) };
        store.inner.commit.poison(&full);
        let error = store.kv_put_unsynced("ns", b"k", b"after").unwrap_err();
        assert!(error.to_string().ends_with("which failed earlier and must be reopened"), "{error}");
        assert_eq!(store.kv_get("ns", b"k").unwrap().as_deref(), Some(&b"before"[..]), "sled was not written");
        assert!(store.append(1, 1, &[b"record"]).is_err());
        assert!(store.allocate_stream_id().is_err());
        assert_eq!(store.next_seq(1).unwrap(), 1);
    }

    #[test]
    fn a_record_the_store_holds_otherwise_than_the_log_is_refused() {
        let trees = trees();
        trees.replay(trees.append(1, 1, 2));
        let other = Op::Append { stream: 1, first: 2, values: vec![b"another".to_vec()] };
        assert!(matches!(replay(&trees.db, &trees.events, other), Err(ReplayProblem::Differs { stream: 1, seq: 2 })));
        assert_eq!(trees.stream(1), vec![1, 2], "nothing was changed");
    }

    #[test]
    fn key_value_writes_replay_in_order() {
        let trees = trees();
        let put = |value: &[u8]| Op::Put { tree: b"kv:state".to_vec(), key: b"k".to_vec(), value: value.to_vec() };
        trees.replay(put(b"one"));
        trees.replay(put(b"two"));
        let tree = trees.db.open_tree("kv:state").unwrap();
        assert_eq!(tree.get("k").unwrap().as_deref(), Some(&b"two"[..]));
        trees.replay(Op::Remove { tree: b"kv:state".to_vec(), key: b"k".to_vec() });
        assert_eq!(tree.get("k").unwrap(), None);
    }
}
