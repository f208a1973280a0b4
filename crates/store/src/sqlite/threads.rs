//! The SQLite connection layout: one writer thread that owns the only connection allowed to
//! write, and a small pool of reader connections used from `spawn_blocking`.
//!
//! Serialising writes in one thread means SQLite never reports `SQLITE_BUSY` between callers of
//! the same store, and a commit never blocks a Tokio worker thread. In WAL mode readers do not
//! block the writer nor each other, so they get their own connections.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::{Semaphore, oneshot};

use super::Synchronous;
use super::ops::{self, sql_err};
use crate::error::StoreError;
use crate::unit::UnitOfWork;

/// Work for the writer thread. Commits are a variant of their own so the writer can coalesce
/// the ones queued together into one transaction.
enum Job {
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
    Commit(UnitOfWork, oneshot::Sender<Result<(), StoreError>>),
}

/// Most units one coalesced transaction takes.
const MAX_COALESCED: usize = 256;

/// How long the checkpointer gathers commit notifications before checkpointing: a burst of
/// commits costs one checkpoint.
const CHECKPOINT_PACE: Duration = Duration::from_millis(200);

/// Handle to the writer thread. Dropping the last handle ends the thread after it finishes the
/// jobs already queued, so no accepted commit is lost.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread. With `checkpointer`, the writer nudges it after every job so
    /// WAL checkpoints (and their fsyncs) happen off the commit path.
    pub(crate) fn spawn(
        conn: Connection,
        checkpointer: Option<mpsc::SyncSender<()>>,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("fleet-store-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                let mut next = None;
                loop {
                    let job = match next.take() {
                        Some(job) => job,
                        None => match queue.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        },
                    };
                    // A panicking job (a bug) must not take the writer down with it: its caller
                    // sees the dropped reply as an error, and the next job runs as usual. An open
                    // transaction was rolled back while unwinding.
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match job {
                        Job::Run(f) => {
                            f(&mut conn);
                            None
                        }
                        Job::Commit(uow, reply) => commit_coalesced(&mut conn, &queue, uow, reply),
                    }));
                    next = ran.unwrap_or(None);
                    if let Some(nudge) = &checkpointer {
                        // Full means a nudge is already pending: nothing to add.
                        let _ = nudge.try_send(());
                    }
                }
            })
            .map_err(|e| {
                StoreError::with_source(
                    crate::StoreErrorKind::Unavailable,
                    "sqlite: cannot start the writer thread",
                    e,
                )
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the writer connection and waits for its result without blocking the runtime.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Run(Box::new(move |conn| {
                // The caller may have gone away (cancelled); the work is done either way.
                let _ = tx.send(f(conn));
            })))
            .map_err(|_| StoreError::unavailable("sqlite: the writer thread has stopped"))?;
        rx.await.map_err(|_| {
            StoreError::new(
                crate::StoreErrorKind::Internal,
                "sqlite: the write was abandoned (the writer failed while running it)",
            )
        })?
    }

    /// Commits one unit. Units that concurrent callers queue while the writer is busy are
    /// committed together in one transaction, each in its own savepoint: the same outcome as
    /// committing them one after another, for the cost of one commit.
    pub(crate) async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Commit(uow, tx))
            .map_err(|_| StoreError::unavailable("sqlite: the writer thread has stopped"))?;
        rx.await.map_err(|_| {
            StoreError::new(
                crate::StoreErrorKind::Internal,
                "sqlite: the write was abandoned (the writer failed while running it)",
            )
        })?
    }
}

/// Commits `uow` together with the commits queued right behind it. Returns the first queued job
/// that is not a commit, which must run next to keep arrival order.
fn commit_coalesced(
    conn: &mut Connection,
    queue: &mpsc::Receiver<Job>,
    uow: UnitOfWork,
    reply: oneshot::Sender<Result<(), StoreError>>,
) -> Option<Job> {
    let mut units = vec![uow];
    let mut replies = vec![reply];
    let mut next = None;
    while units.len() < MAX_COALESCED {
        match queue.try_recv() {
            Ok(Job::Commit(uow, reply)) => {
                units.push(uow);
                replies.push(reply);
            }
            Ok(other) => {
                next = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    if let ([uow], [_]) = (units.as_slice(), replies.as_slice()) {
        let result = ops::commit(conn, uow);
        if let Some(reply) = replies.pop() {
            let _ = reply.send(result);
        }
    } else {
        for (reply, result) in replies.into_iter().zip(ops::commit_many(conn, &units)) {
            let _ = reply.send(result);
        }
    }
    next
}

/// Starts the checkpointer thread for a file database and returns the sender the writer nudges.
///
/// In WAL mode a checkpoint copies committed pages back into the database file and fsyncs it.
/// Left to SQLite's auto-checkpoint, that work (and the fsync) lands on whichever commit crosses
/// the threshold, stalling the writer. Here a separate connection runs PASSIVE checkpoints, which
/// never block the writer; the writer's own auto-checkpoint stays as a backstop at a larger
/// threshold in case this thread falls behind.
pub(crate) fn spawn_checkpointer(
    path: PathBuf,
    synchronous: Synchronous,
) -> Result<mpsc::SyncSender<()>, StoreError> {
    let conn = open_connection(&path, synchronous, false)?;
    let (nudge, nudges) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("fleet-store-sqlite-checkpointer".into())
        .spawn(move || {
            while nudges.recv().is_ok() {
                let deadline = Instant::now() + CHECKPOINT_PACE;
                loop {
                    match nudges.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            passive_checkpoint(&conn);
                            return;
                        }
                    }
                }
                passive_checkpoint(&conn);
            }
        })
        .map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Unavailable,
                "sqlite: cannot start the checkpointer thread",
                e,
            )
        })?;
    Ok(nudge)
}

fn passive_checkpoint(conn: &Connection) {
    // Busy (a concurrent checkpoint) or an I/O error: the next nudge retries, and the writer's
    // backstop keeps the WAL bounded meanwhile.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// Reader connections for a file database, opened lazily up to `max`.
pub(crate) struct Readers {
    path: PathBuf,
    synchronous: Synchronous,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, synchronous: Synchronous, max: usize) -> Arc<Self> {
        Arc::new(Self {
            path,
            synchronous,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1)),
        })
    }

    /// Runs `f` on a reader connection in the blocking pool.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::unavailable("sqlite: reader pool closed"))?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let idle = this.idle.lock().pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_connection(&this.path, this.synchronous, true)?,
            };
            let result = f(&conn);
            this.idle.lock().push(conn);
            result
        })
        .await
        .map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Internal,
                "sqlite: reader task failed",
                e,
            )
        })?
    }
}

/// Opens and configures a connection. `path` of `None` is a private in-memory database.
pub(crate) fn open_connection(
    path: &Path,
    synchronous: Synchronous,
    reader: bool,
) -> Result<Connection, StoreError> {
    let conn =
        Connection::open(path).map_err(|e| sql_err(&format!("open {}", path.display()), e))?;
    configure(&conn, synchronous, reader, true)?;
    Ok(conn)
}

pub(crate) fn configure(
    conn: &Connection,
    synchronous: Synchronous,
    reader: bool,
    wal: bool,
) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| sql_err("set busy_timeout", e))?;
    if wal && !reader {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| sql_err("set journal_mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::unavailable(format!(
                "sqlite: the database refused WAL mode (journal_mode is {mode})"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", synchronous.as_str())
        .map_err(|e| sql_err("set synchronous", e))?;
    if reader {
        conn.pragma_update(None, "query_only", "ON")
            .map_err(|e| sql_err("set query_only", e))?;
    } else {
        // The checkpointer thread keeps the WAL short; this is the backstop (about 32 MiB).
        conn.pragma_update(None, "wal_autocheckpoint", 8192)
            .map_err(|e| sql_err("set wal_autocheckpoint", e))?;
        // Up to 64 MiB of page cache (filled only as pages are touched): the hot right edges of
        // the time-ordered indexes stay cached, and a large unit (an inventory pass writing
        // 100,000 records dirties about 60 MiB) commits without spilling dirty pages into the
        // WAL mid-transaction and reading them back, which cost a quarter of such a commit.
        conn.pragma_update(None, "cache_size", -65536)
            .map_err(|e| sql_err("set cache_size", e))?;
        // Group commit wraps each unit in a savepoint, whose sub-journal otherwise goes to a
        // temporary file: a disk write per touched page.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(|e| sql_err("set temp_store", e))?;
    }
    // Statements are few and reused on every commit; keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_keeps_going() {
        let conn = Connection::open_in_memory().expect("open");
        let writer = Writer::spawn(conn, None).expect("spawn");
        let err = writer
            .run(|_conn| -> Result<(), StoreError> { panic!("a bug in a job") })
            .await
            .expect_err("the panicking job reports an error");
        assert_eq!(err.kind(), crate::StoreErrorKind::Internal, "{err}");
        let answer = writer
            .run(|conn| {
                conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| sql_err("select", e))
            })
            .await
            .expect("the writer still runs jobs");
        assert_eq!(answer, 42);
    }
}
