//! The engine: [`Emulator`] owns the in-memory state, the group-commit writer and the timer that
//! fires scheduled enqueues, lock expiries and message expiries.

mod load;
mod queue;
mod rules;
mod settle;
mod state;
mod timer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_bus::{
    BusError, BusErrorKind, DeadLetterOptions, EntityPath, Message, PropertyValue, ReceiveMode,
    ReceivedMessage,
};
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

pub use self::rules::MAX_RULES_PER_SUBSCRIPTION;

use self::load::Role;
use self::state::{Ctx, Limits, State};
use crate::clock::Clock;
use crate::config::Topology;
use crate::error::{EmulatorError, EmulatorErrorKind};
use crate::store::writer::{CommitResult, Writer};
use crate::store::{self, Durability};

/// The Service Bus standard-tier message size limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Service Bus' default entity size (1024 MB).
pub const DEFAULT_MAX_ENTITY_BYTES: u64 = 1024 * 1024 * 1024;
/// The file name used when `open` is given a directory.
pub const DATA_FILE_NAME: &str = "emulator.sqlite3";

/// Engine settings beyond the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// How hard commits are made durable.
    pub durability: Durability,
    /// Messages larger than this are refused with `MessageSizeExceeded`.
    pub max_message_bytes: usize,
    /// A queue or subscription holding this many bytes refuses more with `QuotaExceeded`.
    pub max_entity_bytes: u64,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_entity_bytes: DEFAULT_MAX_ENTITY_BYTES,
        }
    }
}

impl EmulatorOptions {
    /// Defaults with this durability.
    pub fn with_durability(durability: Durability) -> Self {
        Self {
            durability,
            ..Self::default()
        }
    }
}

/// A resolved entity: what senders and receivers hold so operations skip name lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityHandle {
    index: usize,
    dead_letter: bool,
    path: String,
}

impl EntityHandle {
    /// The entity's path as configured (`q`, `t/Subscriptions/s`, `…/$DeadLetterQueue`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is a dead-letter subqueue.
    pub fn is_dead_letter(&self) -> bool {
        self.dead_letter
    }
}

pub(crate) struct Inner {
    state: Mutex<State>,
    // Immutable after open, so resolving a name takes no lock.
    names: HashMap<String, (usize, Role)>,
    // One per entity: [main, dead-letter]. Receivers register before looking, senders notify after.
    notifies: Vec<[Arc<Notify>; 2]>,
    clock: Arc<dyn Clock>,
    writer: Writer,
    topology: Topology,
    // The deadline the timer sleeps towards; an operation that creates an earlier one wakes it.
    timer_target: AtomicI64,
    timer_wake: Arc<Notify>,
    // Set when a commit failed: memory and disk may disagree, so everything stops.
    poisoned: Mutex<Option<Arc<str>>>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.timer_wake.notify_one();
    }
}

/// The local Service Bus engine. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("namespace", &self.inner.topology.namespace)
            .finish_non_exhaustive()
    }
}

fn data_file(path: &Path) -> Result<PathBuf, EmulatorError> {
    if path.is_dir() {
        return Ok(path.join(DATA_FILE_NAME));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            EmulatorError::new(
                EmulatorErrorKind::Io,
                format!("cannot create {}", parent.display()),
            )
            .with_source(e)
        })?;
    }
    Ok(path.to_path_buf())
}

impl Emulator {
    /// Opens the engine on a data file (or a directory, which gets `emulator.sqlite3`), creating
    /// it if needed and restoring every stored message, lock and delivery count. Must be called
    /// inside a Tokio runtime (the timer is a task).
    pub async fn open(
        topology: Topology,
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        options: EmulatorOptions,
    ) -> Result<Self, EmulatorError> {
        topology.validate()?;
        let file = data_file(path.as_ref())?;
        let conn = store::open(&file, options.durability)?;
        let limits = Limits {
            max_message_bytes: options.max_message_bytes,
            max_entity_bytes: options.max_entity_bytes,
        };
        let (state, names) = load::state(&conn, &topology, limits, clock.now().timestamp_millis())?;
        let notifies = (0..state.entities.len())
            .map(|_| [Arc::new(Notify::new()), Arc::new(Notify::new())])
            .collect();
        let side = store::open_side(&file)?;
        let writer = Writer::start(conn, side).map_err(|e| {
            EmulatorError::new(EmulatorErrorKind::Storage, "cannot start the writer thread")
                .with_source(e)
        })?;
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            names,
            notifies,
            clock: clock.clone(),
            writer,
            topology,
            timer_target: AtomicI64::new(i64::MIN),
            timer_wake: Arc::new(Notify::new()),
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(timer::run(
            Arc::downgrade(&inner),
            inner.timer_wake.clone(),
            clock.changes(),
        ));
        let emulator = Self { inner };
        // Process what fell due while the engine was down (expired locks redeliver) before anyone looks.
        emulator
            .exec(|_, _| Ok(()))
            .await
            .map_err(|e| EmulatorError::new(EmulatorErrorKind::Storage, e.to_string()))?;
        Ok(emulator)
    }

    /// The topology being served.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn lookup(&self, key: &str, shown: &dyn std::fmt::Display) -> Result<(usize, Role), BusError> {
        self.inner
            .names
            .get(&key.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| BusError::entity_not_found(shown))
    }

    /// Resolves a queue or topic to send to.
    pub fn resolve_sender(&self, name: &str) -> Result<EntityHandle, BusError> {
        let path = EntityPath::parse(name)?;
        if path.is_dead_letter() {
            return Err(BusError::invalid(format!(
                "cannot send to dead-letter subqueue \"{name}\""
            )));
        }
        let (index, role) = self.lookup(&path.to_string(), &name)?;
        if role == Role::Subscription {
            return Err(BusError::invalid(format!(
                "cannot send to subscription \"{name}\"; send to its topic"
            )));
        }
        Ok(EntityHandle {
            index,
            dead_letter: false,
            path: self.entity_path(index),
        })
    }

    /// Resolves a queue or subscription (or its dead-letter subqueue) to receive from.
    pub fn resolve_receiver(
        &self,
        path: &EntityPath,
        dead_letter: bool,
    ) -> Result<EntityHandle, BusError> {
        let dead_letter = dead_letter || path.is_dead_letter();
        let (index, role) = self.lookup(&path.base().to_string(), path)?;
        if role == Role::Topic {
            return Err(BusError::invalid(format!(
                "cannot receive from topic \"{path}\"; receive from one of its subscriptions"
            )));
        }
        let base = self.entity_path(index);
        let path = if dead_letter {
            format!("{base}/{}", fleet_bus::DEAD_LETTER_SUFFIX)
        } else {
            base
        };
        Ok(EntityHandle {
            index,
            dead_letter,
            path,
        })
    }

    fn entity_path(&self, index: usize) -> String {
        self.inner.state.lock().entities[index].path.clone()
    }

    /// Runs `op` under the state lock after processing due deadlines; queues its changes for
    /// the writer before releasing the lock (so commit order is change order) and returns the
    /// acknowledgement to await.
    fn run<T>(
        &self,
        op: impl FnOnce(&mut State, &mut Ctx) -> Result<T, BusError>,
    ) -> (Result<T, BusError>, Option<oneshot::Receiver<CommitResult>>) {
        if let Err(e) = self.check_open() {
            return (Err(e), None);
        }
        let mut st = self.inner.state.lock();
        let mut ctx = Ctx::new(self.inner.clock.now().timestamp_millis());
        st.tick(&mut ctx);
        let result = op(&mut st, &mut ctx);
        let ack = (!ctx.writes.is_empty())
            .then(|| self.inner.writer.submit(std::mem::take(&mut ctx.writes)));
        let wake_timer = st.next_due < self.inner.timer_target.load(Ordering::Acquire);
        drop(st);
        self.wake(&mut ctx.wake);
        if wake_timer {
            self.inner.timer_wake.notify_one();
        }
        (result, ack)
    }

    fn wake(&self, queues: &mut Vec<(usize, bool)>) {
        queues.sort_unstable();
        queues.dedup();
        for (idx, dlq) in queues.drain(..) {
            self.inner.notifies[idx][usize::from(dlq)].notify_waiters();
        }
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BusError::new(
                BusErrorKind::Closed,
                "the emulator is closed",
            ));
        }
        if let Some(why) = self.inner.poisoned.lock().as_ref() {
            return Err(BusError::new(
                BusErrorKind::ServiceBusy,
                format!("the emulator stopped after a storage failure: {why}"),
            ));
        }
        Ok(())
    }

    async fn durable(&self, ack: Option<oneshot::Receiver<CommitResult>>) -> Result<(), BusError> {
        let Some(ack) = ack else { return Ok(()) };
        let failure: Arc<str> = match ack.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => Arc::from("the writer stopped"),
        };
        *self.inner.poisoned.lock() = Some(failure.clone());
        Err(BusError::new(
            BusErrorKind::ServiceBusy,
            format!("storage commit failed: {failure}"),
        ))
    }

    async fn exec<T>(
        &self,
        op: impl FnOnce(&mut State, &mut Ctx) -> Result<T, BusError>,
    ) -> Result<T, BusError> {
        let (result, ack) = self.run(op);
        let value = result?;
        self.durable(ack).await?;
        Ok(value)
    }

    /// Sends messages to a queue or topic atomically; returns their sequence numbers (a
    /// duplicate dropped by duplicate detection still consumes one).
    pub async fn send(&self, to: &EntityHandle, msgs: Vec<Message>) -> Result<Vec<i64>, BusError> {
        self.exec(|st, ctx| st.send(to.index, msgs, ctx)).await
    }

    /// Schedules messages for `at`; returns their sequence numbers.
    pub async fn schedule(
        &self,
        to: &EntityHandle,
        msgs: Vec<Message>,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, BusError> {
        let msgs = msgs
            .into_iter()
            .map(|m| Message {
                scheduled_enqueue_time: Some(at),
                ..m
            })
            .collect();
        self.send(to, msgs).await
    }

    /// Cancels scheduled messages; all or nothing.
    pub async fn cancel_scheduled(
        &self,
        to: &EntityHandle,
        sequence_numbers: &[i64],
    ) -> Result<(), BusError> {
        self.exec(|st, ctx| st.cancel(to.index, sequence_numbers, ctx))
            .await
    }

    /// Up to `max` messages, waiting up to `max_wait` for the first; woken by sends, not polling.
    pub async fn receive(
        &self,
        from: &EntityHandle,
        mode: ReceiveMode,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + max_wait;
        let notify = self.inner.notifies[from.index][usize::from(from.dead_letter)].clone();
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (result, ack) =
                self.run(|st, ctx| Ok(st.receive(from.index, from.dead_letter, mode, max, ctx)));
            let msgs = result?;
            self.durable(ack).await?;
            if !msgs.is_empty() {
                return Ok(msgs);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// Completes the delivery locked by `token`.
    pub async fn complete(&self, from: &EntityHandle, token: Option<Uuid>) -> Result<(), BusError> {
        self.exec(|st, ctx| st.complete(from.index, from.dead_letter, token, ctx))
            .await
    }

    /// Completes several deliveries in one transaction (one commit to wait for), one result
    /// per token in order; a stale token fails alone without affecting the others.
    pub async fn complete_many(
        &self,
        from: &EntityHandle,
        tokens: &[Option<Uuid>],
    ) -> Vec<Result<(), BusError>> {
        let (results, ack) = self.run(|st, ctx| {
            Ok(tokens
                .iter()
                .map(|token| st.complete(from.index, from.dead_letter, *token, ctx))
                .collect::<Vec<_>>())
        });
        match (results, self.durable(ack).await) {
            (Ok(results), Ok(())) => results,
            (Err(e), _) | (Ok(_), Err(e)) => {
                let message = e.to_string();
                let kind = e.kind();
                tokens
                    .iter()
                    .map(|_| Err(BusError::new(kind, message.clone())))
                    .collect()
            }
        }
    }

    /// Abandons the delivery locked by `token`, merging `props` into its properties.
    pub async fn abandon(
        &self,
        from: &EntityHandle,
        token: Option<Uuid>,
        props: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        self.exec(|st, ctx| st.abandon(from.index, from.dead_letter, token, props, ctx))
            .await
    }

    /// Dead-letters the delivery locked by `token`.
    pub async fn dead_letter(
        &self,
        from: &EntityHandle,
        token: Option<Uuid>,
        opts: DeadLetterOptions,
    ) -> Result<(), BusError> {
        self.exec(|st, ctx| st.dead_letter(from.index, from.dead_letter, token, opts, ctx))
            .await
    }

    /// Defers the delivery locked by `token`.
    pub async fn defer(&self, from: &EntityHandle, token: Option<Uuid>) -> Result<(), BusError> {
        self.exec(|st, ctx| st.defer(from.index, from.dead_letter, token, ctx))
            .await
    }

    /// Delivers deferred messages by sequence number; all or nothing.
    pub async fn receive_deferred(
        &self,
        from: &EntityHandle,
        mode: ReceiveMode,
        sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.exec(|st, ctx| {
            st.receive_deferred(from.index, from.dead_letter, mode, sequence_numbers, ctx)
        })
        .await
    }

    /// Renews the lock `token` holds; returns its new expiry.
    pub async fn renew_lock(
        &self,
        from: &EntityHandle,
        token: Option<Uuid>,
    ) -> Result<DateTime<Utc>, BusError> {
        let until = self
            .exec(|st, ctx| st.renew_lock(from.index, from.dead_letter, token, ctx))
            .await?;
        Ok(queue::to_time(until))
    }

    /// Up to `max` messages from sequence number `from_sequence_number` on, without locking.
    pub async fn peek(
        &self,
        from: &EntityHandle,
        from_sequence_number: i64,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.exec(|st, _| Ok(st.peek(from.index, from.dead_letter, from_sequence_number, max)))
            .await
    }

    /// Waits until every change made so far is committed, then refuses further operations.
    pub async fn close(&self) -> Result<(), BusError> {
        let (_, ack) = self.run(|_, _| Ok(()));
        let flush = self.inner.writer.submit(Vec::new());
        self.durable(ack).await?;
        self.durable(Some(flush)).await?;
        self.inner.closed.store(true, Ordering::Release);
        self.inner.timer_wake.notify_one();
        Ok(())
    }

    /// Processes due deadlines now and returns the next one (timer use).
    pub(crate) fn tick_detached(inner: &Arc<Inner>) -> Option<i64> {
        let mut st = inner.state.lock();
        let mut ctx = Ctx::new(inner.clock.now().timestamp_millis());
        st.tick(&mut ctx);
        if !ctx.writes.is_empty() {
            inner
                .writer
                .submit_detached(std::mem::take(&mut ctx.writes));
        }
        let next = st.next_due;
        inner.timer_target.store(next, Ordering::Release);
        drop(st);
        Emulator {
            inner: inner.clone(),
        }
        .wake(&mut ctx.wake);
        (!inner.closed.load(Ordering::Acquire)).then_some(next.saturating_sub(ctx.now))
    }
}
