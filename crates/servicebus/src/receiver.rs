//! [`BusReceiver`] over an azservicebus receiver link.
//!
//! azservicebus settles a message through the link (and the `ServiceBusReceivedMessage`) it
//! arrived on, so the receiver keeps every message it handed out in peek-lock mode, keyed by
//! lock token, until it is settled or its lock runs out. The client's link dispositions are
//! fire-and-forget (the broker's outcome is not reported back), so lock loss is decided here:
//! a token this receiver does not hold (never issued, already settled, from another receiver),
//! a lock past its `locked_until`, or a message whose link has since been replaced fails with
//! `MessageLockLost` without touching the broker — the broker redelivers it once the lock ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use azservicebus::receiver::DeadLetterOptions as SbDeadLetterOptions;
use azservicebus::{
    ServiceBusReceiveMode, ServiceBusReceivedMessage, ServiceBusReceiver,
    ServiceBusReceiverOptions, SubQueue as SbSubQueue,
};
use chrono::{DateTime, Utc};
use fleet_bus::{
    BusError, BusErrorKind, BusReceiver, DeadLetterOptions, EntityPath, PropertyValue, ReceiveMode,
    ReceiveOptions, ReceivedMessage, SubQueue,
};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::connection::{Connection, timeout};
use crate::convert::{Seen, annotated_lock_token, from_amqp, from_offset, to_modify};
use crate::error::{Op, classify, needs_reconnect};

/// A message this receiver holds a lock on.
struct Held {
    // What azservicebus needs to settle it (delivery info or request-response lock token).
    message: ServiceBusReceivedMessage,
    // The connection generation of the link it came on: another link cannot settle it.
    generation: u64,
    // Expiry as last reported by the broker (receive or renew).
    locked_until: Option<DateTime<Utc>>,
}

/// The link and the generation it belongs to.
type Link = (ServiceBusReceiver, u64);

/// Receives from one queue or subscription (or its dead-letter subqueue).
pub(crate) struct SbReceiver {
    conn: Arc<Connection>,
    path: EntityPath,
    options: ServiceBusReceiverOptions,
    peek_lock: bool,
    // `None` after a connection failure: the next call attaches a new link.
    link: Mutex<Option<Link>>,
    // Messages handed out under a lock, by lock token.
    held: parking_lot::Mutex<HashMap<Uuid, Held>>,
    // Where a `peek` without a start continues (survives link re-creation).
    last_peeked: AtomicI64,
    closed: AtomicBool,
}

/// The azservicebus options for a port path and options.
pub(crate) fn client_options(
    path: &EntityPath,
    options: ReceiveOptions,
) -> ServiceBusReceiverOptions {
    let dead_letter = path.is_dead_letter() || options.sub_queue == SubQueue::DeadLetter;
    ServiceBusReceiverOptions {
        prefetch_count: options.prefetch,
        receive_mode: match options.mode {
            ReceiveMode::PeekLock => ServiceBusReceiveMode::PeekLock,
            ReceiveMode::ReceiveAndDelete => ServiceBusReceiveMode::ReceiveAndDelete,
        },
        identifier: None,
        sub_queue: if dead_letter {
            SbSubQueue::DeadLetter
        } else {
            SbSubQueue::None
        },
    }
}

impl SbReceiver {
    pub(crate) fn new(
        conn: Arc<Connection>,
        path: EntityPath,
        options: ReceiveOptions,
        link: Link,
    ) -> Self {
        Self {
            options: client_options(&path, options),
            conn,
            path,
            peek_lock: options.mode == ReceiveMode::PeekLock,
            link: Mutex::new(Some(link)),
            held: parking_lot::Mutex::new(HashMap::new()),
            last_peeked: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::new(
                BusErrorKind::Closed,
                format!("receiver for \"{}\" is closed", self.path),
            ));
        }
        Ok(())
    }

    /// Converts what the link delivered and remembers the locked ones.
    fn adopt(&self, got: Vec<ServiceBusReceivedMessage>, generation: u64) -> Vec<ReceivedMessage> {
        let mut out = Vec::with_capacity(got.len());
        let mut held = self.held.lock();
        for message in got {
            let raw = message.raw_amqp_message();
            let token = self.peek_lock.then(|| {
                annotated_lock_token(raw)
                    .unwrap_or_else(|| Uuid::from_bytes(*message.lock_token().as_inner()))
            });
            let received = from_amqp(raw, token, Seen::Delivered);
            if let Some(token) = token {
                held.insert(
                    token,
                    Held {
                        message,
                        generation,
                        locked_until: received.locked_until,
                    },
                );
            }
            out.push(received);
        }
        out
    }

    /// Forgets locks that ran out without being settled (their messages are redelivered).
    fn prune(&self) {
        let now = Utc::now();
        self.held
            .lock()
            .retain(|_, h| h.locked_until.is_none_or(|until| until > now));
    }

    /// Takes the message held under `m`'s token, or says why its lock is lost.
    fn take_held(&self, m: &ReceivedMessage, what: &str) -> Result<Held, BusError> {
        self.check_open()?;
        let Some(token) = m.lock_token else {
            return Err(BusError::lock_lost(format!(
                "{what}: message {} carries no lock token (received without a lock)",
                m.sequence_number
            )));
        };
        let Some(held) = self.held.lock().remove(&token) else {
            return Err(BusError::lock_lost(format!(
                "{what}: lock token {token} is not held by this receiver on \"{}\" (settled, expired or issued elsewhere)",
                self.path
            )));
        };
        if let Some(until) = held.locked_until.filter(|u| *u <= Utc::now()) {
            return Err(BusError::lock_lost(format!(
                "{what}: the lock of token {token} expired at {until}"
            )));
        }
        if held.generation != self.conn.generation() {
            return Err(BusError::lock_lost(format!(
                "{what}: the link that received token {token} was lost; the message returns when its lock expires"
            )));
        }
        Ok(held)
    }

    /// After a settlement: a failure for a transient reason keeps the message held so the
    /// caller may try again; a broken link means the lock is gone with it.
    fn finish_settle(
        &self,
        token: Uuid,
        held: Held,
        result: Result<(), BusError>,
        what: &str,
    ) -> Result<(), BusError> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if needs_reconnect(&e) => Err(BusError::lock_lost(format!(
                "{what}: the link broke while settling; the message returns when its lock expires ({e})"
            ))),
            Err(e) => {
                self.held.lock().insert(token, held);
                Err(e)
            }
        }
    }
}

/// Runs `$body` (an async block using `$link` and `$generation`) on the receiver's link,
/// attaching one if needed. A connection failure drops the link and the connection; with
/// `$retry` the call is tried again on a new link with backoff.
macro_rules! on_link {
    ($self:ident, $what:expr, $op:expr, $retry:expr, |$link:ident, $generation:ident| $body:expr) => {{
        let config = &$self.conn.config;
        let mut attempt = 0u32;
        loop {
            if let Err(e) = $self.check_open() {
                break Err(e);
            }
            let result = {
                let mut guard = $self.link.lock().await;
                let current = $self.conn.generation();
                if guard.as_ref().is_some_and(|(_, g)| *g != current) {
                    dispose_later(guard.take());
                }
                let ready = match guard.take() {
                    Some(link) => Ok(link),
                    None => $self.conn.receiver(&$self.path, $self.options.clone()).await,
                };
                match ready {
                    Ok((link, $generation)) => {
                        let ($link, _) = guard.insert((link, $generation));
                        let outcome = match tokio::time::timeout(config.operation_timeout, $body).await {
                            Ok(Ok(v)) => Ok(v),
                            Ok(Err(e)) => Err(classify(e, $op, $what)),
                            Err(_) => Err(timeout($what, config.operation_timeout)),
                        };
                        if outcome.as_ref().is_err_and(needs_reconnect) {
                            dispose_later(guard.take());
                            $self.conn.invalidate($generation).await;
                        }
                        outcome
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Err(e) if $retry && needs_reconnect(&e) && attempt + 1 < config.backoff.attempts => {
                    let delay = config.backoff.delay(attempt);
                    tracing::warn!(error = %e, ?delay, entity = %$self.path, "receiver failed; retrying on a new link");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Settles the message held under `$m`'s token with `$body` (using `$link` and `$msg`).
macro_rules! settle {
    ($self:ident, $m:expr, $what:expr, |$link:ident, $msg:ident| $body:expr) => {{
        let held = $self.take_held($m, $what)?;
        let token = $m.lock_token.unwrap_or_default();
        let held_generation = held.generation;
        let $msg = &held.message;
        let result: Result<bool, BusError> =
            on_link!($self, $what, Op::Receive, false, |$link, generation| {
                async {
                    if generation != held_generation {
                        return Ok(false);
                    }
                    $body.await.map(|()| true)
                }
            });
        let result = match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(BusError::lock_lost(format!(
                "{}: the link that received the message was lost",
                $what
            ))),
            Err(e) => Err(e),
        };
        $self.finish_settle(token, held, result, $what)
    }};
}

impl Drop for SbReceiver {
    fn drop(&mut self) {
        // A receiver dropped without `close` still detaches its link, so the broker stops
        // delivering to it and releases what it prefetched.
        if !self.closed.load(Ordering::Acquire) && tokio::runtime::Handle::try_current().is_ok() {
            dispose_later(self.link.get_mut().take());
        }
    }
}

fn dispose_later(link: Option<Link>) {
    if let Some((link, _)) = link {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), link.dispose()).await;
        });
    }
}

fn count(max: usize) -> u32 {
    u32::try_from(max.max(1)).unwrap_or(u32::MAX)
}

#[async_trait]
impl BusReceiver for SbReceiver {
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.prune();
        if max == 0 {
            return Ok(Vec::new());
        }
        let what = format!("receive from \"{}\"", self.path);
        let deadline = tokio::time::Instant::now() + max_wait;
        let slice = self
            .conn
            .config
            .receive_slice
            .max(Duration::from_millis(10));
        let linger = self.conn.config.batch_linger;
        // Wait for the first message in slices, releasing the link between them so
        // settlements and renewals of other messages are not held up by an idle wait.
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = left.min(slice);
            let got: (Vec<ServiceBusReceivedMessage>, u64) = on_link!(
                self,
                &what,
                Op::Receive,
                true,
                |link, generation| async move {
                    let first = link.receive_messages_with_max_wait_time(1, wait).await?;
                    if first.is_empty() || max == 1 {
                        return Ok((first, generation));
                    }
                    // The batch fills from what is already here (prefetched or in flight).
                    let mut all = first;
                    let more = link
                        .receive_messages_with_max_wait_time(count(max - 1), linger)
                        .await?;
                    all.extend(more);
                    Ok((all, generation))
                }
            )?;
            let (messages, generation) = got;
            if !messages.is_empty() || left <= wait {
                return Ok(self.adopt(messages, generation));
            }
        }
    }

    async fn complete(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        let what = format!(
            "complete message {} on \"{}\"",
            m.sequence_number, self.path
        );
        settle!(self, m, &what, |link, msg| link.complete_message(msg))
    }

    /// One link acquisition for the whole burst instead of one per message; azservicebus still
    /// writes one disposition per message (it has no range form), which the listener coalesces.
    async fn complete_many(&self, ms: &[ReceivedMessage]) -> Vec<Result<(), BusError>> {
        let what = |m: &ReceivedMessage| {
            format!(
                "complete message {} on \"{}\"",
                m.sequence_number, self.path
            )
        };
        let mut results: Vec<Option<Result<(), BusError>>> = Vec::with_capacity(ms.len());
        let mut taken = Vec::with_capacity(ms.len());
        for (index, m) in ms.iter().enumerate() {
            match self.take_held(m, &what(m)) {
                Ok(held) => {
                    results.push(None);
                    taken.push((index, m.lock_token.unwrap_or_default(), held));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if taken.is_empty() {
            return results.into_iter().flatten().collect();
        }
        let burst = format!("complete {} messages on \"{}\"", taken.len(), self.path);
        // How many of `taken` were dealt with, and on which link generation: a failure stops
        // the burst at the message that failed.
        let mut sent = 0usize;
        let mut on_generation = None;
        let outcome: Result<(), BusError> =
            on_link!(self, &burst, Op::Receive, false, |link, generation| {
                async {
                    on_generation = Some(generation);
                    for (_, _, held) in &taken[sent..] {
                        // A message of an earlier link cannot be settled on this one.
                        if held.generation == generation {
                            link.complete_message(&held.message).await?;
                        }
                        sent += 1;
                    }
                    Ok(())
                }
            });
        for (position, (index, token, held)) in taken.into_iter().enumerate() {
            let m = &ms[index];
            let result = match &outcome {
                Err(e) if position >= sent => Err(BusError::new(e.kind(), e.message().to_owned())),
                _ if on_generation == Some(held.generation) => Ok(()),
                _ => Err(BusError::lock_lost(format!(
                    "{}: the link that received the message was lost",
                    what(m)
                ))),
            };
            results[index] = Some(self.finish_settle(token, held, result, &what(m)));
        }
        results.into_iter().flatten().collect()
    }

    async fn abandon(
        &self,
        m: &ReceivedMessage,
        properties_to_modify: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        let what = format!("abandon message {} on \"{}\"", m.sequence_number, self.path);
        let props = to_modify(&properties_to_modify);
        settle!(self, m, &what, |link, msg| link
            .abandon_message(msg, props.clone()))
    }

    async fn dead_letter(
        &self,
        m: &ReceivedMessage,
        opts: DeadLetterOptions,
    ) -> Result<(), BusError> {
        let what = format!(
            "dead-letter message {} on \"{}\"",
            m.sequence_number, self.path
        );
        let options = SbDeadLetterOptions {
            dead_letter_reason: Some(opts.reason.clone()),
            dead_letter_error_description: Some(opts.description.clone()),
            properties_to_modify: to_modify(&opts.properties_to_modify),
        };
        settle!(self, m, &what, |link, msg| link
            .dead_letter_message(msg, options.clone()))
    }

    async fn defer(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        let what = format!("defer message {} on \"{}\"", m.sequence_number, self.path);
        settle!(self, m, &what, |link, msg| link.defer_message(msg, None))
    }

    async fn receive_deferred(
        &self,
        sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        if sequence_numbers.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!(
            "receive deferred {sequence_numbers:?} from \"{}\"",
            self.path
        );
        let numbers = sequence_numbers.to_vec();
        let (messages, generation): (Vec<ServiceBusReceivedMessage>, u64) =
            on_link!(self, &what, Op::Management, true, |link, generation| {
                let numbers = numbers.clone();
                async move {
                    let got = link.receive_deferred_messages(numbers).await?;
                    Ok((got, generation))
                }
            })?;
        if messages.len() < sequence_numbers.len() {
            let found: Vec<i64> = messages.iter().map(|m| m.sequence_number()).collect();
            let missing = sequence_numbers.iter().find(|n| !found.contains(n));
            let mut adopted = self.adopt(messages, generation);
            // Locks we will never hand out are released rather than left to expire.
            for m in &mut adopted {
                let _ = self.abandon(m, BTreeMap::new()).await;
            }
            return Err(BusError::new(
                BusErrorKind::MessageNotFound,
                format!("{what}: message {missing:?} is not a deferred message"),
            ));
        }
        Ok(self.adopt(messages, generation))
    }

    async fn renew_lock(&self, m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError> {
        let what = format!(
            "renew the lock of message {} on \"{}\"",
            m.sequence_number, self.path
        );
        let Some(token) = m.lock_token else {
            return Err(BusError::lock_lost(format!(
                "{what}: the message has no lock token"
            )));
        };
        // Renewal goes by lock token over the management link, so any link of this receiver
        // can do it; take the message out only for the duration of the call.
        let Some(mut held) = self.held.lock().remove(&token) else {
            return Err(BusError::lock_lost(format!(
                "{what}: lock token {token} is not held by this receiver"
            )));
        };
        let result: Result<(), BusError> =
            on_link!(self, &what, Op::Management, true, |link, _generation| link
                .renew_message_lock(&mut held.message));
        match result {
            Ok(()) => {
                let until = held.message.locked_until().map(from_offset);
                held.locked_until = until;
                self.held.lock().insert(token, held);
                until.ok_or_else(|| {
                    BusError::new(
                        BusErrorKind::Other,
                        format!("{what}: no expiry in the reply"),
                    )
                })
            }
            Err(e) if e.kind() == BusErrorKind::MessageLockLost => Err(e),
            Err(e) => {
                self.held.lock().insert(token, held);
                Err(e)
            }
        }
    }

    async fn peek(
        &self,
        from_sequence_number: Option<i64>,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let from = from_sequence_number
            .unwrap_or_else(|| self.last_peeked.load(Ordering::Acquire).saturating_add(1));
        let what = format!("peek \"{}\" from {from}", self.path);
        let peeked: Vec<azservicebus::ServiceBusPeekedMessage> =
            on_link!(self, &what, Op::Management, true, |link, _generation| link
                .peek_messages(count(max), Some(from)))?;
        let out: Vec<ReceivedMessage> = peeked
            .iter()
            .map(|p| from_amqp(p.raw_amqp_message(), None, Seen::Peeked))
            .collect();
        if let Some(last) = out.last() {
            self.last_peeked
                .store(last.sequence_number, Ordering::Release);
        }
        Ok(out)
    }

    async fn close(&self) -> Result<(), BusError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.held.lock().clear();
        let link = self.link.lock().await.take();
        if let Some((link, _)) = link {
            let what = format!("close receiver for \"{}\"", self.path);
            // Closing the link releases prefetched messages back to the entity.
            match tokio::time::timeout(self.conn.config.operation_timeout, link.dispose()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %classify(e, Op::Receive, &what), "closing the receiver link failed");
                }
                Err(_) => tracing::debug!("{what}: timed out"),
            }
        }
        Ok(())
    }
}
