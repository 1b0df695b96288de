//! Group commit: one flusher thread makes every waiting write durable with one write-ahead log append.
//!
//! A writer applies its write to sled and encodes it into the log buffer in
//! one critical section ([`GroupCommit::logged`]), and only then takes a
//! [`Ticket`] for the pending batch. The flusher takes the whole pending
//! batch, then the buffer, appends the buffer to the current log segment
//! and `fdatasync`s it, and completes every ticket of that batch at once;
//! tickets taken while a flush runs join the next batch, whose flush takes
//! the buffer after their writes. So a ticket completes only after a sync
//! of its write, and under load one sync serves many writers.
//!
//! When the segment grows past the checkpoint size
//! ([`wal::CHECKPOINT_BYTES`] unless the store was opened with another), the flusher starts
//! a new one and a checkpoint thread makes sled's files durable (`Db::flush`,
//! which in sled 0.34.7 ends in `sync_file_range`, then `fsync` of any new
//! blob file, since sled writes values larger than about 128 KiB to `blobs/`
//! and never syncs them, then `fdatasync` of the `db` file) and removes the
//! older segments. Closing the store checkpoints everything.
//!
//! A failed flush fails every later one too, until the store is reopened.
//! So does a failed write ([`GroupCommit::poison`]): sled 0.34.7 can leave
//! its log unflushable after an IO error inside a write (measured: when
//! writing a blob hits ENOSPC, the writer's claim on the log buffer is never
//! released, and every later `flush` waits forever). Poisoning completes
//! the waiting batches with the error at once, and a poisoned store neither
//! checkpoints at shutdown nor waits for a flusher that may be stuck in sled.
//! sled itself refuses all writes after an IO error in its log (measured:
//! after ENOSPC, freeing space does not help; reopening does, with every
//! acknowledged record intact). And after a failed `fdatasync` the kernel
//! may have dropped the dirty pages, so a later successful one would not
//! prove that earlier writes reached the disk.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::watch;

use crate::error::{copy_io_error, recover_os_error};
use crate::wal::{self, Segment};
use crate::{Result, StorageError};

/// State shared between writers and the flusher thread.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Wakes the flusher when a batch is pending or on shutdown.
    work: Condvar,
    /// Wakes blocking waiters when a batch completes.
    done: Condvar,
    /// "flushing store DIR", the context of every flush error.
    context: String,
    flushes: AtomicU64,
    /// Frames of the writes applied to sled since the last flush took the
    /// buffer, in the order sled applied them.
    log: Mutex<Vec<u8>>,
}

struct State {
    /// The batch the next flush will complete; `None` when nobody waits.
    pending: Option<Arc<Batch>>,
    /// The batch whose flush is running, so that [`GroupCommit::poison`]
    /// can release its waiters if that flush never returns.
    flushing: Option<Arc<Batch>>,
    /// The first failed flush or write; once set, nothing is flushed any more.
    failed: Option<Arc<FlushFailure>>,
    /// The pending batch also waits for a checkpoint.
    checkpoint: bool,
    shutdown: bool,
}

/// Writers waiting for the same flush.
struct Batch {
    outcome: OnceLock<Result<(), FlushError>>,
    /// Turns `true` once `outcome` is set, for async waiters.
    finished: watch::Sender<bool>,
}

/// Why a flush or a checkpoint failed.
#[derive(Debug)]
pub(crate) enum FlushFailure {
    Io(io::Error),
    Backend(String),
}

impl FlushFailure {
    /// The error, with `context` naming what was being done.
    pub(crate) fn into_error(self, context: String) -> StorageError {
        match self {
            FlushFailure::Io(source) => StorageError::Io { context, source },
            FlushFailure::Backend(message) => StorageError::Backend { context, message },
        }
    }
}

/// A batch's failure: the first failed flush, shared by its waiters and by
/// every later batch.
#[derive(Debug, Clone)]
struct FlushError {
    failure: Arc<FlushFailure>,
    /// This batch was not flushed because an earlier flush had failed.
    earlier: bool,
}

impl Batch {
    fn new() -> Batch {
        let (finished, _) = watch::channel(false);
        Batch { outcome: OnceLock::new(), finished }
    }
}

/// A writer's claim on the flush that will make its write durable.
pub(crate) struct Ticket {
    commit: Arc<GroupCommit>,
    batch: Arc<Batch>,
}

impl GroupCommit {
    /// Starts the flusher thread, appending to `segment` and checkpointing
    /// through `checkpointer`; `dir` is the store directory.
    pub(crate) fn start(
        checkpointer: Checkpointer,
        segment: Segment,
        dir: &Path,
        checkpoint_bytes: u64,
    ) -> io::Result<(Arc<GroupCommit>, std::thread::JoinHandle<()>)> {
        let commit = Arc::new(GroupCommit {
            state: Mutex::new(State {
                pending: None,
                flushing: None,
                failed: None,
                checkpoint: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            context: format!("flushing store {}", dir.display()),
            flushes: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let mut flusher =
            Flusher { segment, spare: Vec::new(), checkpoint: CheckpointState::Idle(checkpointer), checkpoint_bytes };
        let thread_commit = Arc::clone(&commit);
        let thread = std::thread::Builder::new()
            .name("runbook-storage-flush".to_owned())
            .spawn(move || flusher.run(&thread_commit))?;
        Ok((commit, thread))
    }

    /// Runs `write`, which applies a write to sled and, if it changed
    /// anything, encodes it into the log buffer it is given, while no other
    /// write can: the frames are in the order sled applied the writes. Take
    /// a [`ticket`](Self::ticket) afterwards to wait until it is durable.
    pub(crate) fn logged<T>(&self, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        // `write` encodes a frame only after sled applied the write, and
        // encoding cannot fail (running out of memory aborts): a panic in
        // sled leaves the buffer without a partial frame, usable.
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        write(&mut log)
    }

    /// Joins the pending batch. Call only after the write to be made durable
    /// has been applied to sled: the batch's flush has not started yet, so it
    /// will cover that write.
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let mut state = self.lock();
        if let Some(failure) = state.failed.clone() {
            // Nothing will be flushed any more: fail the ticket at once.
            drop(state);
            let batch = Arc::new(Batch::new());
            self.complete(&batch, Err(FlushError { failure, earlier: true }));
            return Ticket { commit: Arc::clone(self), batch };
        }
        let batch = state.pending.get_or_insert_with(|| Arc::new(Batch::new())).clone();
        drop(state);
        self.work.notify_one();
        Ticket { commit: Arc::clone(self), batch }
    }

    /// Waits until everything written so far is durable in sled's own files
    /// and the log segments holding it are removed.
    pub(crate) fn checkpoint(self: &Arc<Self>) -> Result<()> {
        self.lock().checkpoint = true;
        self.ticket().wait()
    }

    /// How many flushes have completed, successful or not.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Marks the store as failed after a write that sled reported as failed:
    /// every waiting and later ticket fails with `error`, now, even if a
    /// flush already running never returns. Only the first failure is kept.
    pub(crate) fn poison(&self, error: &StorageError) {
        let failure = match error {
            StorageError::Io { source, .. } => FlushFailure::Io(copy_io_error(source)),
            other => FlushFailure::Backend(other.to_string()),
        };
        let mut state = self.lock();
        if state.failed.is_some() {
            return;
        }
        tracing::error!(error = ?failure, "{}: a write failed, no further writes are made durable", self.context);
        let failure = Arc::new(failure);
        state.failed = Some(Arc::clone(&failure));
        let waiting: Vec<Arc<Batch>> = state.pending.take().into_iter().chain(state.flushing.take()).collect();
        drop(state);
        for batch in waiting {
            self.complete(&batch, Err(FlushError { failure: Arc::clone(&failure), earlier: true }));
        }
    }

    /// The error every write gets once a flush or a write has failed.
    pub(crate) fn failure(&self) -> Option<StorageError> {
        let failure = self.lock().failed.clone()?;
        Some(self.error(&FlushError { failure, earlier: true }))
    }

    /// Whether a flush or a write has failed: the flusher may then be stuck
    /// inside sled, and must not be waited for.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.lock().failed.is_some()
    }

    /// Asks the flusher to complete what is pending, do a last flush and stop.
    pub(crate) fn shut_down(&self) {
        self.lock().shutdown = true;
        self.work.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is an Option and a flag, each written in one assignment:
        // a panic elsewhere cannot leave it half-updated, so poison is moot.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed flush or checkpoint: nothing is flushed any more.
    fn fail(&self, failure: FlushFailure) -> FlushError {
        tracing::error!(error = ?failure, "{}", self.context);
        let failure = Arc::new(failure);
        self.lock().failed.get_or_insert_with(|| Arc::clone(&failure));
        FlushError { failure, earlier: false }
    }

    fn complete(&self, batch: &Batch, outcome: Result<(), FlushError>) {
        // The flusher completes a batch after taking it out of `pending`;
        // `poison` may have completed it first, and then the first outcome stays.
        if batch.outcome.set(outcome).is_err() {
            return;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        batch.finished.send_replace(true);
        // Taking the lock orders this wake-up after any blocking waiter's
        // check of `outcome`, so none sleeps through it.
        drop(self.lock());
        self.done.notify_all();
    }

    fn error(&self, error: &FlushError) -> StorageError {
        let context = if error.earlier {
            format!("{}, which failed earlier and must be reopened", self.context)
        } else {
            self.context.clone()
        };
        match &*error.failure {
            FlushFailure::Io(source) => StorageError::Io { context, source: copy_io_error(source) },
            FlushFailure::Backend(message) => StorageError::Backend { context, message: message.clone() },
        }
    }
}

impl Ticket {
    /// Blocks until the flush covering this write has completed.
    pub(crate) fn wait(self) -> Result<()> {
        let mut state = self.commit.lock();
        loop {
            if let Some(outcome) = self.batch.outcome.get() {
                return self.result(outcome);
            }
            state = self.commit.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits, without blocking a runtime thread, until the flush covering
    /// this write has completed.
    pub(crate) async fn wait_async(self) -> Result<()> {
        let mut finished = self.batch.finished.subscribe();
        // The sender lives in the batch, which this ticket keeps alive, so
        // `wait_for` can only return once the value turned true.
        let _ = finished.wait_for(|finished| *finished).await;
        match self.batch.outcome.get() {
            Some(outcome) => self.result(outcome),
            None => Err(StorageError::Backend {
                context: self.commit.context.clone(),
                message: "the flusher stopped before completing the flush".to_owned(),
            }),
        }
    }

    fn result(&self, outcome: &Result<(), FlushError>) -> Result<()> {
        outcome.as_ref().map_err(|error| self.commit.error(error)).copied()
    }
}

/// The flusher thread's own handles.
struct Flusher {
    segment: Segment,
    /// The buffer swapped with the writers' on each flush, kept for its capacity.
    spare: Vec<u8>,
    checkpoint: CheckpointState,
    /// A segment this large is followed by a checkpoint.
    checkpoint_bytes: u64,
}

/// The checkpointer, idle or at work on a thread of its own.
enum CheckpointState {
    Idle(Checkpointer),
    Running(std::thread::JoinHandle<(Checkpointer, Result<(), FlushFailure>)>),
    /// The checkpointer was lost (its thread panicked or could not start):
    /// the segments stay, and the next open replays them.
    Gone,
}

impl Flusher {
    fn run(&mut self, commit: &GroupCommit) {
        loop {
            let (batch, failed, checkpoint) = {
                let mut state = commit.lock();
                loop {
                    if let Some(batch) = state.pending.take() {
                        state.flushing = Some(Arc::clone(&batch));
                        break (Some(batch), state.failed.clone(), std::mem::take(&mut state.checkpoint));
                    }
                    if state.shutdown {
                        break (None, state.failed.clone(), false);
                    }
                    state = commit.work.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let Some(batch) = batch else { break };
            let outcome = match failed {
                Some(failure) => Err(FlushError { failure, earlier: true }),
                None => self
                    .flush(commit)
                    .and_then(|()| if checkpoint { self.checkpoint_now() } else { Ok(()) })
                    .map_err(|failure| commit.fail(failure)),
            };
            commit.lock().flushing = None;
            commit.complete(&batch, outcome);
            if commit.is_poisoned() {
                continue;
            }
            if let Err(failure) = self.maybe_checkpoint(commit) {
                commit.fail(failure);
            }
        }
        if commit.is_poisoned() {
            return;
        }
        // A clean shutdown: what is still buffered (`kv_put_unsynced`), then
        // a checkpoint of everything, which leaves no segment behind.
        let last = self.flush(commit).and_then(|()| {
            let mut checkpointer = self.finish_checkpoint()?;
            checkpointer.run(u64::MAX)
        });
        if let Err(failure) = last {
            tracing::warn!(error = ?failure, "{} at shutdown", commit.context);
        }
    }

    /// Appends the buffered frames to the segment and syncs them.
    fn flush(&mut self, commit: &GroupCommit) -> Result<(), FlushFailure> {
        {
            let mut log = commit.log.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *log, &mut self.spare);
        }
        if self.spare.is_empty() {
            // Every frame buffered before this batch's tickets is already
            // in a flush that completed: there is nothing to wait for.
            return Ok(());
        }
        let written = self.segment.write_batch(&mut self.spare).map_err(FlushFailure::Io);
        self.spare.clear();
        written
    }

    /// Once the segment is large enough and no checkpoint runs, starts a
    /// new segment and a checkpoint that removes the older ones.
    fn maybe_checkpoint(&mut self, commit: &GroupCommit) -> Result<(), FlushFailure> {
        if let CheckpointState::Running(thread) = &self.checkpoint
            && thread.is_finished()
        {
            let checkpointer = self.finish_checkpoint()?;
            self.checkpoint = CheckpointState::Idle(checkpointer);
        }
        if self.segment.len() < self.checkpoint_bytes {
            return Ok(());
        }
        let CheckpointState::Idle(_) = &self.checkpoint else { return Ok(()) };
        let CheckpointState::Idle(mut checkpointer) = std::mem::replace(&mut self.checkpoint, CheckpointState::Gone)
        else {
            return Ok(());
        };
        let next = self.segment.number + 1;
        self.segment = Segment::create(&checkpointer.wal_dir, next).map_err(FlushFailure::Io)?;
        let context = commit.context.clone();
        let thread = std::thread::Builder::new().name("runbook-storage-checkpoint".to_owned()).spawn(move || {
            let outcome = checkpointer.run(next);
            if let Err(failure) = &outcome {
                tracing::error!(error = ?failure, "{context}: checkpoint failed");
            }
            (checkpointer, outcome)
        });
        match thread {
            Ok(thread) => self.checkpoint = CheckpointState::Running(thread),
            // The segments stay until the store is closed or reopened.
            Err(error) => tracing::warn!(%error, "{}: cannot start a checkpoint thread", commit.context),
        }
        Ok(())
    }

    /// Starts a new segment and checkpoints everything before it, here and now.
    fn checkpoint_now(&mut self) -> Result<(), FlushFailure> {
        let mut checkpointer = self.finish_checkpoint()?;
        let next = self.segment.number + 1;
        self.segment = Segment::create(&checkpointer.wal_dir, next).map_err(FlushFailure::Io)?;
        checkpointer.run(next)?;
        self.checkpoint = CheckpointState::Idle(checkpointer);
        Ok(())
    }

    /// Waits for a running checkpoint and returns the checkpointer, or the
    /// checkpoint's failure.
    fn finish_checkpoint(&mut self) -> Result<Checkpointer, FlushFailure> {
        match std::mem::replace(&mut self.checkpoint, CheckpointState::Gone) {
            CheckpointState::Idle(checkpointer) => Ok(checkpointer),
            CheckpointState::Running(thread) => match thread.join() {
                Ok((checkpointer, Ok(()))) => Ok(checkpointer),
                Ok((_, Err(failure))) => Err(failure),
                Err(_) => Err(FlushFailure::Backend("the checkpoint thread panicked".to_owned())),
            },
            CheckpointState::Gone => Err(FlushFailure::Backend("no checkpointer is left".to_owned())),
        }
    }
}

/// Makes sled's own files durable, so that log segments can go.
pub(crate) struct Checkpointer {
    db: sled::Db,
    db_file: File,
    blobs_dir: PathBuf,
    pub(crate) wal_dir: PathBuf,
    /// Blob files already synced; starts empty so that the first checkpoint
    /// also syncs blobs a previous, killed process left only in the page cache.
    synced_blobs: HashSet<OsString>,
}

impl Checkpointer {
    /// For `db` in store directory `dir`; `db_file` is a handle of our own
    /// on sled's `db` file.
    pub(crate) fn new(db: sled::Db, db_file: File, dir: &Path) -> Checkpointer {
        Checkpointer {
            db,
            db_file,
            blobs_dir: dir.join("blobs"),
            wal_dir: dir.join(wal::DIR_NAME),
            synced_blobs: HashSet::new(),
        }
    }

    /// Makes everything sled has applied durable in sled's own files, then
    /// removes the log segments numbered below `keep_from`.
    pub(crate) fn run(&mut self, keep_from: u64) -> Result<(), FlushFailure> {
        // Writers go on during a checkpoint, and sled writes a large value's
        // blob file inside the insert: a file listed now belongs to an insert
        // that began before the flush below, which waits for it, so it is
        // whole once the flush returns. One that appears later may still be
        // being written; its write is in a segment this checkpoint keeps, and
        // the next checkpoint syncs it.
        let blobs = self.list_blobs().map_err(FlushFailure::Io)?;
        self.db.flush().map_err(|error| match error {
            sled::Error::Io(error) => FlushFailure::Io(recover_os_error(error)),
            other => FlushFailure::Backend(other.to_string()),
        })?;
        // Blobs before the log that points at them.
        self.sync_blobs(blobs).map_err(FlushFailure::Io)?;
        self.db_file.sync_data().map_err(FlushFailure::Io)?;
        let mut removed = false;
        for (number, path) in wal::segments(&self.wal_dir).map_err(FlushFailure::Io)? {
            if number < keep_from {
                fs::remove_file(&path).map_err(FlushFailure::Io)?;
                removed = true;
            }
        }
        if removed {
            wal::sync_dir(&self.wal_dir).map_err(FlushFailure::Io)?;
        }
        Ok(())
    }

    /// The names of the files in `blobs/`.
    fn list_blobs(&self) -> io::Result<Vec<OsString>> {
        let entries = match fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        entries.map(|entry| entry.map(|entry| entry.file_name())).collect()
    }

    /// Syncs the blob files of `listed` not synced before.
    fn sync_blobs(&mut self, listed: Vec<OsString>) -> io::Result<()> {
        let mut present = HashSet::new();
        let mut synced_any = false;
        for name in listed {
            if !self.synced_blobs.contains(&name) {
                match File::open(self.blobs_dir.join(&name)).and_then(|file| file.sync_all()) {
                    Ok(()) => synced_any = true,
                    // sled removed it since the listing: nothing left to sync.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
            }
            present.insert(name);
        }
        self.synced_blobs = present;
        if synced_any {
            // New directory entries are durable only once the directory is.
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use std::os::fd::OwnedFd;

    use rustix::io::Errno;

    use super::*;

    /// A group commit on a sled database in `dir`, appending to `segment`.
    fn start(dir: &Path, segment: Segment) -> (sled::Db, Arc<GroupCommit>, std::thread::JoinHandle<()>) {
        let db = sled::Config::new().path(dir).flush_every_ms(None).open().unwrap();
        let db_file = File::open(dir.join("db")).unwrap();
        let (commit, flusher) =
            GroupCommit::start(Checkpointer::new(db.clone(), db_file, dir), segment, dir, wal::CHECKPOINT_BYTES)
                .unwrap();
        (db, commit, flusher)
    }

    /// Writes `key` to sled and to the log, as the store does.
    fn write(db: &sled::Db, commit: &GroupCommit, key: &[u8]) {
        commit.logged(|log| {
            db.insert(key, b"value").unwrap();
            wal::encode_put(log, b"__sled__default", key, Some(b"value"));
        });
    }

    #[test]
    fn a_failed_flush_fails_every_waiter_and_every_later_flush() {
        let dir = tempfile::tempdir().unwrap();
        // A segment writes at offsets, which a pipe refuses with ESPIPE: a
        // flush failure on demand.
        let (_reader, writer) = io::pipe().unwrap();
        let (db, commit, flusher) = start(dir.path(), Segment::over(File::from(OwnedFd::from(writer))));
        write(&db, &commit, b"key");

        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let ticket = commit.ticket();
                std::thread::spawn(move || ticket.wait())
            })
            .collect();
        for waiter in waiters {
            match waiter.join().unwrap() {
                Err(StorageError::Io { context, source }) => {
                    assert!(context.starts_with(&format!("flushing store {}", dir.path().display())), "{context}");
                    assert_eq!(source.raw_os_error(), Some(Errno::SPIPE.raw_os_error()));
                }
                other => panic!("expected the flush to fail, got {other:?}"),
            }
        }
        let later = commit.ticket();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        match runtime.block_on(later.wait_async()) {
            Err(error @ StorageError::Io { .. }) => {
                assert_eq!(
                    error.to_string(),
                    format!("flushing store {}, which failed earlier and must be reopened", dir.path().display())
                );
            }
            other => panic!("expected the later flush to fail, got {other:?}"),
        }
        commit.shut_down();
        flusher.join().unwrap();
    }

    #[test]
    fn a_poisoned_store_fails_waiting_and_later_tickets_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(wal::DIR_NAME);
        fs::create_dir(&wal_dir).unwrap();
        let (db, commit, flusher) = start(dir.path(), Segment::create(&wal_dir, 1).unwrap());
        write(&db, &commit, b"key");
        commit.ticket().wait().unwrap();
        assert!(fs::metadata(wal::segment_path(&wal_dir, 1)).unwrap().len() > 0, "the write is in the log");

        let full = StorageError::Io { context: "appending".to_owned(), source: io::Error::from_raw_os_error(28) };
        commit.poison(&full);
        assert!(commit.is_poisoned());
        // A second failure does not replace the first.
        commit.poison(&StorageError::Io { context: "again".to_owned(), source: io::Error::from_raw_os_error(5) });
        match commit.ticket().wait() {
            Err(StorageError::Io { context, source }) => {
                assert!(context.ends_with("which failed earlier and must be reopened"), "{context}");
                assert_eq!(source.raw_os_error(), Some(28));
            }
            other => panic!("expected the ticket to fail, got {other:?}"),
        }
        commit.shut_down();
        flusher.join().unwrap();
    }
}
