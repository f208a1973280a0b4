//! Group commit: one thread owns the SQLite connection and turns every batch of queued changes
//! into one transaction. Callers queue their changes in the order the engine made them (while
//! holding the engine's lock) and await the acknowledgement, which comes only after the
//! transaction containing them committed — so an acknowledged operation is durable, and many
//! concurrent operations share one commit (and one fsync under `Durability::Full`).

use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::{Meta, Write, row_key};

/// Upper bound of jobs folded into one transaction, so one commit never grows without limit.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// The outcome of a commit, shared by every job in it.
pub(crate) type CommitResult = Result<(), Arc<str>>;

struct Job {
    writes: Vec<Write>,
    ack: Option<oneshot::Sender<CommitResult>>,
}

/// The handle the engine holds; dropping it lets the thread finish the queue and exit.
pub(crate) struct Writer {
    // `None` once shutting down, so the thread sees the channel close.
    tx: Option<mpsc::UnboundedSender<Job>>,
    // Joined on drop so a reopened data file never races the previous writer.
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = std::thread::Builder::new()
            .name("emulator-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues `writes`; the receiver resolves once they are committed. Call with the engine's
    /// lock held so the queue order is the order the changes were made in.
    pub(crate) fn submit(&self, writes: Vec<Write>) -> oneshot::Receiver<CommitResult> {
        let (ack, rx) = oneshot::channel();
        let job = Job {
            writes,
            ack: Some(ack),
        };
        if let Some(tx) = &self.tx {
            // A closed channel drops the job and with it the ack sender: the caller sees an error.
            let _ = tx.send(job);
        }
        rx
    }

    /// Queues `writes` without waiting for them (background expiry; a later acknowledged
    /// operation's commit covers them, since commits happen in queue order).
    pub(crate) fn submit_detached(&self, writes: Vec<Write>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job { writes, ack: None });
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &jobs).map_err(|e| Arc::<str>::from(e.to_string()));
        if let Err(e) = &result {
            tracing::error!(error = %e, "emulator storage commit failed");
        }
        for job in jobs.drain(..) {
            if let Some(ack) = job.ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}

fn commit(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for job in jobs {
        for write in &job.writes {
            apply(&tx, write)?;
        }
    }
    tx.commit()
}

fn meta_params(meta: &Meta) -> [Box<dyn rusqlite::ToSql + '_>; 11] {
    let dl = meta.dead_letter.as_deref();
    [
        Box::new(meta.dlq),
        Box::new(meta.state),
        Box::new(meta.enqueued),
        Box::new(meta.scheduled),
        Box::new(meta.expires),
        Box::new(meta.delivery_count),
        Box::new(meta.lock.map(|(_, until)| until)),
        Box::new(meta.lock.map(|(token, _)| token.as_bytes().to_vec())),
        Box::new(dl.map(|d| d.reason.as_str())),
        Box::new(dl.map(|d| d.description.as_str())),
        Box::new(dl.map(|d| d.source.as_str())),
    ]
}

fn apply(tx: &Transaction<'_>, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Put {
            entity,
            seq,
            meta,
            headers,
            body,
        } => {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (dlq, state, enqueued, scheduled, expires, delivery_count, \
                 locked_until, lock_token, dl_reason, dl_description, dl_source, id, headers, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let m = meta_params(meta);
            let key = row_key(*entity, *seq);
            let headers: &[u8] = headers;
            let body: &[u8] = body;
            stmt.execute(params![
                m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], key, headers,
                body
            ])?;
        }
        Write::Update { entity, seq, meta } => {
            let mut stmt = tx.prepare_cached(
                "UPDATE messages SET dlq = ?1, state = ?2, enqueued = ?3, scheduled = ?4, expires = ?5, \
                 delivery_count = ?6, locked_until = ?7, lock_token = ?8, dl_reason = ?9, dl_description = ?10, \
                 dl_source = ?11 WHERE id = ?12",
            )?;
            let m = meta_params(meta);
            stmt.execute(params![
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                m[6],
                m[7],
                m[8],
                m[9],
                m[10],
                row_key(*entity, *seq)
            ])?;
        }
        Write::Delete { entity, seq } => {
            tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                .execute(params![row_key(*entity, *seq)])?;
        }
        Write::NextSeq { entity, next } => {
            tx.prepare_cached("UPDATE entities SET next_seq = ?1 WHERE id = ?2")?
                .execute(params![next, entity])?;
        }
        Write::Seen {
            entity,
            message_id,
            at,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO seen_ids (entity, message_id, seen) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![entity, message_id, at])?;
        }
        Write::ForgetSeen { entity, before } => {
            tx.prepare_cached("DELETE FROM seen_ids WHERE entity = ?1 AND seen < ?2")?
                .execute(params![entity, before])?;
        }
    }
    Ok(())
}
