//! Group commit: one thread owns the SQLite connection and turns every batch of queued changes
//! into one transaction. Callers queue their changes in the order the engine made them (while
//! holding the engine's lock) and await the acknowledgement, which comes only after the
//! transaction containing them committed — so an acknowledged operation is durable, and many
//! concurrent operations share one commit (and one fsync under `Durability::Full`).

use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, Statement, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Meta, Write, row_key};

/// Upper bound of jobs folded into one transaction, so one commit never grows without limit.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// Commits between two checkpoint requests (each commit adds a few pages to the WAL).
const COMMITS_PER_CHECKPOINT: u32 = 64;

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
    // Ends when the writer thread does (its request channel closes); joined after it.
    checkpointer: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn` and the checkpointer thread on `side` (a second
    /// connection to the same file). Checkpoints copy the WAL back into the database file; done
    /// by the writer they would stall every commit queued behind them, so the writer only asks
    /// for one every few commits and a passive checkpoint runs beside it.
    pub(crate) fn start(conn: Connection, side: Connection) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (checkpoint_tx, checkpoint_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let checkpointer = std::thread::Builder::new()
            .name("emulator-checkpoint".into())
            .spawn(move || {
                while checkpoint_rx.recv().is_ok() {
                    if let Err(e) = side.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "emulator checkpoint failed; the WAL keeps growing until one succeeds");
                    }
                }
            })?;
        let handle = std::thread::Builder::new()
            .name("emulator-writer".into())
            .spawn(move || run(conn, rx, checkpoint_tx))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
            checkpointer: Some(checkpointer),
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
        for handle in [self.handle.take(), self.checkpointer.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let mut stmts = match Statements::prepare(&conn) {
        Ok(stmts) => stmts,
        Err(e) => {
            // Every queued and future job fails: dropping the acks tells their callers.
            tracing::error!(error = %e, "emulator storage cannot prepare its statements");
            return;
        }
    };
    let mut jobs = Vec::new();
    let mut commits = 0u32;
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = commit(&conn, &mut stmts, &jobs).map_err(|e| Arc::<str>::from(e.to_string()));
        if let Err(e) = &result {
            tracing::error!(error = %e, "emulator storage commit failed");
        }
        commits = commits.wrapping_add(1);
        if commits.is_multiple_of(COMMITS_PER_CHECKPOINT) {
            // Full channel: a checkpoint is already pending, which covers this request.
            let _ = checkpoint.try_send(());
        }
        for job in jobs.drain(..) {
            if let Some(ack) = job.ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}

/// The writer's statements, prepared once for the life of the connection.
struct Statements<'c> {
    put_meta: Statement<'c>,
    put_content: Statement<'c>,
    update: Statement<'c>,
    delete_meta: Statement<'c>,
    delete_content: Statement<'c>,
    next_seq: Statement<'c>,
    seen: Statement<'c>,
    forget_seen: Statement<'c>,
    clear_rules: Statement<'c>,
    put_rule: Statement<'c>,
    rule_set: Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            put_meta: conn.prepare(
                "INSERT OR REPLACE INTO messages (dlq, state, enqueued, scheduled, expires, delivery_count, \
                 locked_until, lock_token, dl_reason, dl_description, dl_source, id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            put_content: conn.prepare("INSERT OR REPLACE INTO contents (id, headers, body) VALUES (?1, ?2, ?3)")?,
            update: conn.prepare(
                "UPDATE messages SET dlq = ?1, state = ?2, enqueued = ?3, scheduled = ?4, expires = ?5, \
                 delivery_count = ?6, locked_until = ?7, lock_token = ?8, dl_reason = ?9, dl_description = ?10, \
                 dl_source = ?11 WHERE id = ?12",
            )?,
            delete_meta: conn.prepare("DELETE FROM messages WHERE id = ?1")?,
            delete_content: conn.prepare("DELETE FROM contents WHERE id = ?1")?,
            next_seq: conn.prepare("UPDATE entities SET next_seq = ?1 WHERE id = ?2")?,
            seen: conn.prepare("INSERT OR REPLACE INTO seen_ids (entity, message_id, seen) VALUES (?1, ?2, ?3)")?,
            forget_seen: conn.prepare("DELETE FROM seen_ids WHERE entity = ?1 AND seen < ?2")?,
            clear_rules: conn.prepare("DELETE FROM rules WHERE entity = ?1")?,
            put_rule: conn.prepare(
                "INSERT INTO rules (entity, position, name, filter, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            rule_set: conn.prepare("INSERT OR REPLACE INTO rule_sets (entity, changed) VALUES (?1, ?2)")?,
        })
    }
}

fn commit(conn: &Connection, stmts: &mut Statements<'_>, jobs: &[Job]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    let applied = jobs
        .iter()
        .flat_map(|job| &job.writes)
        .try_for_each(|write| apply(stmts, write));
    match applied {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Binds the metadata columns (?1–?11) and the key (?12), then runs `stmt`.
fn exec_meta(stmt: &mut Statement<'_>, key: i64, meta: &Meta) -> rusqlite::Result<usize> {
    let dl = meta.dead_letter.as_deref();
    let token: Option<[u8; 16]> = meta.lock.map(|(token, _): (Uuid, i64)| *token.as_bytes());
    stmt.execute(params![
        meta.dlq,
        meta.state,
        meta.enqueued,
        meta.scheduled,
        meta.expires,
        meta.delivery_count,
        meta.lock.map(|(_, until)| until),
        token.as_ref().map(|t| &t[..]),
        dl.map(|d| d.reason.as_str()),
        dl.map(|d| d.description.as_str()),
        dl.map(|d| d.source.as_str()),
        key,
    ])
}

fn apply(stmts: &mut Statements<'_>, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Put {
            entity,
            seq,
            meta,
            headers,
            body,
        } => {
            let key = row_key(*entity, *seq);
            exec_meta(&mut stmts.put_meta, key, meta)?;
            let headers: &[u8] = headers;
            let body: &[u8] = body;
            stmts.put_content.execute(params![key, headers, body])?;
        }
        Write::Update { entity, seq, meta } => {
            exec_meta(&mut stmts.update, row_key(*entity, *seq), meta)?;
        }
        Write::Delete { entity, seq } => {
            let key = row_key(*entity, *seq);
            stmts.delete_meta.execute(params![key])?;
            stmts.delete_content.execute(params![key])?;
        }
        Write::NextSeq { entity, next } => {
            stmts.next_seq.execute(params![next, entity])?;
        }
        Write::Seen {
            entity,
            message_id,
            at,
        } => {
            stmts.seen.execute(params![entity, message_id, at])?;
        }
        Write::ForgetSeen { entity, before } => {
            stmts.forget_seen.execute(params![entity, before])?;
        }
        Write::Rules { entity, rules, at } => {
            stmts.clear_rules.execute(params![entity])?;
            for (position, rule) in rules.iter().enumerate() {
                stmts.put_rule.execute(params![
                    entity,
                    position as i64,
                    rule.name,
                    rule.filter,
                    rule.created
                ])?;
            }
            stmts.rule_set.execute(params![entity, at])?;
        }
    }
    Ok(())
}
