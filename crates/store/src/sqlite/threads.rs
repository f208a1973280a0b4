//! The SQLite connection layout: one writer thread that owns the only connection allowed to
//! write, and a small pool of reader connections used from `spawn_blocking`.
//!
//! Serialising writes in one thread means SQLite never reports `SQLITE_BUSY` between callers of
//! the same store, and a commit never blocks a Tokio worker thread. In WAL mode readers do not
//! block the writer nor each other, so they get their own connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::{Semaphore, oneshot};

use super::Synchronous;
use super::ops::sql_err;
use crate::error::StoreError;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the writer thread. Dropping the last handle ends the thread after it finishes the
/// jobs already queued, so no accepted commit is lost.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("fleet-store-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
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
            .send(Box::new(move |conn| {
                // The caller may have gone away (cancelled); the work is done either way.
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::unavailable("sqlite: the writer thread has stopped"))?;
        rx.await.map_err(|_| {
            StoreError::unavailable("sqlite: the writer thread stopped mid-operation")
        })?
    }
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
    }
    // Statements are few and reused on every commit; keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}
