//! [`InProcessBus`]: the Bus port implemented directly over the engine, for tests and the
//! single-process local fleet.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fleet_bus::{
    Bus, BusError, BusErrorKind, BusReceiver, BusSender, DeadLetterOptions, EntityPath, Message,
    PropertyValue, ReceiveMode, ReceiveOptions, ReceivedMessage, SubQueue,
};
use parking_lot::Mutex;

use crate::engine::{Emulator, EntityHandle};

/// The Bus port over an in-process [`Emulator`].
#[derive(Debug, Clone)]
pub struct InProcessBus {
    emulator: Emulator,
}

impl InProcessBus {
    /// A bus over `emulator`.
    pub fn new(emulator: Emulator) -> Self {
        Self { emulator }
    }

    /// The engine underneath.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn sender(&self, entity: &str) -> Result<Box<dyn BusSender>, BusError> {
        let handle = self.emulator.resolve_sender(entity)?;
        Ok(Box::new(Sender {
            emulator: self.emulator.clone(),
            handle,
        }))
    }

    async fn receiver(
        &self,
        entity: &EntityPath,
        options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError> {
        let handle = self
            .emulator
            .resolve_receiver(entity, options.sub_queue == SubQueue::DeadLetter)?;
        Ok(Box::new(Receiver {
            emulator: self.emulator.clone(),
            handle,
            mode: options.mode,
            prefetch: usize::try_from(options.prefetch).unwrap_or(usize::MAX),
            buffer: Mutex::new(VecDeque::new()),
            peek_cursor: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        }))
    }

    fn rule_manager(&self) -> Option<&dyn fleet_bus::RuleManager> {
        Some(self)
    }
}

struct Sender {
    emulator: Emulator,
    handle: EntityHandle,
}

#[async_trait]
impl BusSender for Sender {
    async fn send(&self, msg: Message) -> Result<(), BusError> {
        self.emulator.send(&self.handle, vec![msg]).await.map(drop)
    }

    async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), BusError> {
        self.emulator.send(&self.handle, msgs).await.map(drop)
    }

    async fn schedule(&self, msg: Message, at: DateTime<Utc>) -> Result<i64, BusError> {
        let seqs = self.emulator.schedule(&self.handle, vec![msg], at).await?;
        seqs.first().copied().ok_or_else(|| {
            BusError::new(
                BusErrorKind::Other,
                "the engine returned no sequence number",
            )
        })
    }

    async fn cancel_scheduled(&self, sequence_number: i64) -> Result<(), BusError> {
        self.emulator
            .cancel_scheduled(&self.handle, &[sequence_number])
            .await
    }
}

struct Receiver {
    emulator: Emulator,
    handle: EntityHandle,
    mode: ReceiveMode,
    prefetch: usize,
    // Messages locked ahead of `receive` calls (prefetch); their locks run while they wait.
    buffer: Mutex<VecDeque<ReceivedMessage>>,
    // Where the next `peek` without a sequence number starts, as Service Bus receivers do.
    peek_cursor: AtomicI64,
    closed: AtomicBool,
}

impl Receiver {
    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::new(
                BusErrorKind::Closed,
                format!("the receiver on \"{}\" is closed", self.handle.path()),
            ));
        }
        Ok(())
    }

    /// Buffered messages still worth handing out (an expired lock would only fail to settle).
    fn take_buffered(&self, max: usize) -> Vec<ReceivedMessage> {
        let now = self.emulator.now();
        let mut buffer = self.buffer.lock();
        buffer.retain(|m| m.locked_until.is_none_or(|until| until > now));
        let n = max.min(buffer.len());
        buffer.drain(..n).collect()
    }
}

#[async_trait]
impl BusReceiver for Receiver {
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.check_open()?;
        let buffered = self.take_buffered(max);
        if !buffered.is_empty() {
            return Ok(buffered);
        }
        let mut msgs = self
            .emulator
            .receive(&self.handle, self.mode, max.max(self.prefetch), max_wait)
            .await?;
        if msgs.len() > max {
            let extra = msgs.split_off(max);
            self.buffer.lock().extend(extra);
        }
        Ok(msgs)
    }

    async fn complete(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.check_open()?;
        self.emulator.complete(&self.handle, m.lock_token).await
    }

    async fn complete_many(&self, ms: &[ReceivedMessage]) -> Vec<Result<(), BusError>> {
        if let Err(e) = self.check_open() {
            let (kind, message) = (e.kind(), e.to_string());
            return ms
                .iter()
                .map(|_| Err(BusError::new(kind, message.clone())))
                .collect();
        }
        let tokens: Vec<_> = ms.iter().map(|m| m.lock_token).collect();
        self.emulator.complete_many(&self.handle, &tokens).await
    }

    async fn abandon(
        &self,
        m: &ReceivedMessage,
        properties_to_modify: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        self.check_open()?;
        self.emulator
            .abandon(&self.handle, m.lock_token, properties_to_modify)
            .await
    }

    async fn dead_letter(
        &self,
        m: &ReceivedMessage,
        opts: DeadLetterOptions,
    ) -> Result<(), BusError> {
        self.check_open()?;
        self.emulator
            .dead_letter(&self.handle, m.lock_token, opts)
            .await
    }

    async fn defer(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.check_open()?;
        self.emulator.defer(&self.handle, m.lock_token).await
    }

    async fn receive_deferred(
        &self,
        sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.check_open()?;
        self.emulator
            .receive_deferred(&self.handle, self.mode, sequence_numbers)
            .await
    }

    async fn renew_lock(&self, m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError> {
        self.check_open()?;
        self.emulator.renew_lock(&self.handle, m.lock_token).await
    }

    async fn peek(
        &self,
        from_sequence_number: Option<i64>,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.check_open()?;
        let from = from_sequence_number.unwrap_or_else(|| self.peek_cursor.load(Ordering::Acquire));
        let msgs = self.emulator.peek(&self.handle, from, max).await?;
        if let Some(last) = msgs.last() {
            self.peek_cursor
                .store(last.sequence_number + 1, Ordering::Release);
        }
        Ok(msgs)
    }

    async fn close(&self) -> Result<(), BusError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let buffered: Vec<ReceivedMessage> = self.buffer.lock().drain(..).collect();
        for m in buffered.iter().filter(|m| m.lock_token.is_some()) {
            // A lock that expired meanwhile was already released by the engine.
            match self
                .emulator
                .abandon(&self.handle, m.lock_token, BTreeMap::new())
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind() == BusErrorKind::MessageLockLost => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
