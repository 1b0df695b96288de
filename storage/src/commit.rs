//! Group commit: one flusher thread makes every waiting write durable with a single flush.
//!
//! A writer inserts into sled first and only then takes a [`Ticket`] for the
//! pending batch. The flusher takes the whole pending batch, flushes, and
//! completes every ticket of that batch at once; tickets taken while a flush
//! runs join the next batch, whose flush necessarily starts after their
//! inserts. So a ticket completes only after a flush that began after its
//! write, and under load one flush serves many writers.
//!
//! A flush is `Db::flush` (which in sled 0.34.7 ends in `sync_file_range`,
//! enough against a killed process but not against power loss), then
//! `fsync` of any new blob file (sled writes values larger than about
//! 128 KiB to `blobs/` and never syncs them), then `fdatasync` of the `db`
//! file through a handle of our own.
//!
//! A failed flush fails every later one too, until the store is reopened.
//! So does a failed write ([`GroupCommit::poison`]): sled 0.34.7 can leave
//! its log unflushable after an IO error inside a write (measured: when
//! writing a blob hits ENOSPC, the writer's claim on the log buffer is never
//! released, and every later `flush` waits forever). Poisoning completes
//! the waiting batches with the error at once, and a poisoned store neither
//! flushes at shutdown nor waits for a flusher that may be stuck in sled.
//! sled itself refuses all writes after an IO error in its log (measured:
//! after ENOSPC, freeing space does not help; reopening does, with every
//! acknowledged record intact). And after a failed `fdatasync` the kernel
//! may have dropped the dirty pages, so a later successful one would not
//! prove that earlier writes reached the disk.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::watch;

use crate::error::{copy_io_error, recover_os_error};
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
}

struct State {
    /// The batch the next flush will complete; `None` when nobody waits.
    pending: Option<Arc<Batch>>,
    /// The batch whose flush is running, so that [`GroupCommit::poison`]
    /// can release its waiters if that flush never returns.
    flushing: Option<Arc<Batch>>,
    /// The first failed flush or write; once set, nothing is flushed any more.
    failed: Option<Arc<FlushFailure>>,
    shutdown: bool,
}

/// Writers waiting for the same flush.
struct Batch {
    outcome: OnceLock<Result<(), FlushError>>,
    /// Turns `true` once `outcome` is set, for async waiters.
    finished: watch::Sender<bool>,
}

/// Why a flush failed.
#[derive(Debug)]
enum FlushFailure {
    Io(io::Error),
    Backend(String),
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
    /// Starts the flusher thread for `db`, whose directory is `dir`.
    pub(crate) fn start(
        db: sled::Db,
        db_file: File,
        dir: PathBuf,
    ) -> io::Result<(Arc<GroupCommit>, std::thread::JoinHandle<()>)> {
        let commit = Arc::new(GroupCommit {
            state: Mutex::new(State { pending: None, flushing: None, failed: None, shutdown: false }),
            work: Condvar::new(),
            done: Condvar::new(),
            context: format!("flushing store {}", dir.display()),
            flushes: AtomicU64::new(0),
        });
        let mut flusher = Flusher { db, db_file, blobs_dir: dir.join("blobs"), synced_blobs: HashSet::new() };
        let thread_commit = Arc::clone(&commit);
        let thread = std::thread::Builder::new()
            .name("runbook-storage-flush".to_owned())
            .spawn(move || flusher.run(&thread_commit))?;
        Ok((commit, thread))
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
    db: sled::Db,
    db_file: File,
    blobs_dir: PathBuf,
    /// Blob files already synced; starts empty so that the first flush also
    /// syncs blobs a previous, killed process left only in the page cache.
    synced_blobs: HashSet<OsString>,
}

impl Flusher {
    fn run(&mut self, commit: &GroupCommit) {
        loop {
            let (batch, failed) = {
                let mut state = commit.lock();
                loop {
                    if let Some(batch) = state.pending.take() {
                        state.flushing = Some(Arc::clone(&batch));
                        break (Some(batch), state.failed.clone());
                    }
                    if state.shutdown {
                        break (None, state.failed.clone());
                    }
                    state = commit.work.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let Some(batch) = batch else { break };
            let outcome = match failed {
                Some(failure) => Err(FlushError { failure, earlier: true }),
                None => self.flush().map_err(|failure| {
                    tracing::error!(error = ?failure, "{}", commit.context);
                    let failure = Arc::new(failure);
                    let mut state = commit.lock();
                    state.failed.get_or_insert_with(|| Arc::clone(&failure));
                    FlushError { failure, earlier: false }
                }),
            };
            commit.lock().flushing = None;
            commit.complete(&batch, outcome);
        }
        // Writes made without waiting (`kv_put_unsynced`) get the same
        // treatment as the rest on a clean shutdown.
        if !commit.is_poisoned()
            && let Err(failure) = self.flush()
        {
            tracing::warn!(error = ?failure, "{} at shutdown", commit.context);
        }
    }

    fn flush(&mut self) -> Result<(), FlushFailure> {
        self.db.flush().map_err(|error| match error {
            sled::Error::Io(error) => FlushFailure::Io(recover_os_error(error)),
            other => FlushFailure::Backend(other.to_string()),
        })?;
        // Blobs before the log that points at them.
        self.sync_new_blobs().map_err(FlushFailure::Io)?;
        self.db_file.sync_data().map_err(FlushFailure::Io)
    }

    fn sync_new_blobs(&mut self) -> io::Result<()> {
        let entries = match fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(entry.path()).and_then(|file| file.sync_all()) {
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

    /// `fdatasync` on a pipe fails with EINVAL: a flush failure on demand.
    fn unsyncable_file() -> File {
        let (_reader, writer) = io::pipe().unwrap();
        File::from(OwnedFd::from(writer))
    }

    #[test]
    fn a_failed_flush_fails_every_waiter_and_every_later_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        let (commit, flusher) = GroupCommit::start(db.clone(), unsyncable_file(), dir.path().to_path_buf()).unwrap();
        db.insert(b"key", b"value").unwrap();

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
                    assert_eq!(source.raw_os_error(), Some(Errno::INVAL.raw_os_error()));
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
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        let db_file = File::open(dir.path().join("db")).unwrap();
        let (commit, flusher) = GroupCommit::start(db.clone(), db_file, dir.path().to_path_buf()).unwrap();
        db.insert(b"key", b"value").unwrap();
        commit.ticket().wait().unwrap();

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
