//! Watching the fleet work: every bus call of every worker goes through [`ObservedBus`], which
//! turns publishes and settlements into [`FlowEvent`]s — one readable line each — and keeps what
//! the summary and the idle check need (published envelopes, activity time, dedupe hits).
//!
//! Observing at the bus port, rather than inside the runtime, sees exactly what a broker would:
//! which events were published (by the outbox relay of any worker), and how each delivery was
//! settled by each subscription's worker.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fleet_bus::{
    Bus, BusError, BusReceiver, BusSender, DeadLetterOptions, EntityPath, Message, PropertyValue,
    ReceiveOptions, ReceivedMessage, RuleManager,
};
use fleet_envelope::Envelope;
use fleet_runtime::{PROP_RETRY_FOR, RETRY_SUBJECT};
use parking_lot::Mutex;
use serde::Serialize;
use uuid::Uuid;

use crate::clock::FleetClock;

/// What an observed message was, as far as its body tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageInfo {
    /// `eventId`, when the body carries a readable one.
    pub event_id: Option<Uuid>,
    /// `eventType`, or `(not an envelope)` when the body names none.
    pub event_type: String,
    /// `subject` of the envelope.
    pub subject: Option<String>,
    /// `correlationId`.
    pub correlation_id: Option<String>,
    /// Whether the body is a valid envelope.
    pub valid: bool,
}

impl MessageInfo {
    /// Reads what it can from a bus message; never fails.
    pub fn of(msg: &Message) -> MessageInfo {
        if let Ok(env) = Envelope::decode_with_content_type(&msg.body, msg.content_type.as_deref())
        {
            return MessageInfo {
                event_id: Some(env.event_id),
                event_type: env.event_type.as_str().to_owned(),
                subject: env.subject,
                correlation_id: Some(env.correlation_id),
                valid: true,
            };
        }
        // Bad input still deserves a name on its line: whatever fields survive. Never the
        // Subject: input naming no routable type travels under the front door's.
        let loose: Option<serde_json::Value> = serde_json::from_slice(&msg.body).ok();
        let text = |k: &str| {
            loose
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        MessageInfo {
            event_id: text("eventId").and_then(|s| s.parse().ok()),
            event_type: text("eventType").unwrap_or_else(|| "(not an envelope)".to_owned()),
            subject: text("subject"),
            correlation_id: text("correlationId"),
            valid: false,
        }
    }
}

/// How a worker settled a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Outcome {
    /// Handled (or a no-op) and completed.
    Handled,
    /// Completed without handling: the worker's inbox already had the event.
    Duplicate,
    /// A delayed retry copy was scheduled and the original completed.
    RetryScheduled,
    /// Moved to the dead-letter subqueue.
    DeadLettered {
        /// `DeadLetterReason`.
        reason: String,
        /// `DeadLetterErrorDescription`.
        description: String,
    },
    /// Released for redelivery (shutdown).
    Abandoned,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Handled => f.write_str("handled"),
            Outcome::Duplicate => f.write_str("duplicate (dedupe hit, not re-handled)"),
            Outcome::RetryScheduled => f.write_str("failed, retry scheduled"),
            Outcome::DeadLettered { reason, .. } => write!(f, "dead-lettered: {reason}"),
            Outcome::Abandoned => f.write_str("abandoned for redelivery"),
        }
    }
}

/// One line of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum FlowEvent {
    /// A message reached the topic.
    Published {
        /// Simulated time.
        at: DateTime<Utc>,
        /// Who published it: a worker, or `fleetctl` for injected input.
        by: String,
        /// What it is.
        message: MessageInfo,
    },
    /// A worker settled a delivery of it.
    Settled {
        /// Simulated time.
        at: DateTime<Utc>,
        /// The worker (its subscription).
        worker: String,
        /// What it was.
        message: MessageInfo,
        /// How it ended.
        outcome: Outcome,
    },
}

impl FlowEvent {
    /// The line printed for it: time, worker, direction, event type, subject, outcome.
    pub fn line(&self) -> String {
        match self {
            FlowEvent::Published { at, by, message } => format!(
                "{}  {:<20} → {:<28} {:<28} published",
                at.format("%H:%M:%S%.3f"),
                by,
                message.event_type,
                message.subject.as_deref().unwrap_or("-"),
            ),
            FlowEvent::Settled {
                at,
                worker,
                message,
                outcome,
            } => format!(
                "{}  {:<20} ← {:<28} {:<28} {outcome}",
                at.format("%H:%M:%S%.3f"),
                worker,
                message.event_type,
                message.subject.as_deref().unwrap_or("-"),
            ),
        }
    }
}

/// Receives every flow event as it happens (the CLI prints them).
pub type FlowSink = Arc<dyn Fn(&FlowEvent) + Send + Sync>;

#[derive(Default)]
struct State {
    // Every valid envelope published, in order: chains are checked against these.
    published: Vec<Envelope>,
    events: Vec<FlowEvent>,
    // (worker, eventId) already handled: a later completion of the same pair is a duplicate.
    handled: HashSet<(String, Uuid)>,
    // (worker, eventId) whose retry copy was just scheduled: the next completion is the original's.
    retrying: HashSet<(String, Uuid)>,
    counts: BTreeMap<String, u64>,
}

/// The shared record of everything observed.
pub struct Flow {
    clock: FleetClock,
    state: Mutex<State>,
    last_activity: Mutex<Instant>,
    sink: Option<FlowSink>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow").finish_non_exhaustive()
    }
}

impl Flow {
    /// A flow timed by `clock`, reporting each event to `sink`.
    pub fn new(clock: FleetClock, sink: Option<FlowSink>) -> Arc<Flow> {
        Arc::new(Flow {
            clock,
            state: Mutex::new(State::default()),
            last_activity: Mutex::new(Instant::now()),
            sink,
        })
    }

    /// Real time since the last publish or settlement.
    pub fn quiet_for(&self) -> Duration {
        self.last_activity.lock().elapsed()
    }

    /// Every valid envelope published so far, in order.
    pub fn published(&self) -> Vec<Envelope> {
        self.state.lock().published.clone()
    }

    /// Every flow event so far, in order.
    pub fn events(&self) -> Vec<FlowEvent> {
        self.state.lock().events.clone()
    }

    /// Published messages per event type.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().counts.clone()
    }

    fn touch(&self) {
        *self.last_activity.lock() = Instant::now();
    }

    fn record(&self, event: FlowEvent) {
        self.touch();
        if let Some(sink) = &self.sink {
            sink(&event);
        }
        self.state.lock().events.push(event);
    }

    fn published_msg(&self, by: &str, msg: &Message) {
        // A retry copy is the worker's own business, not a new event on the topic.
        if msg.subject.as_deref() == Some(RETRY_SUBJECT) {
            self.touch();
            return;
        }
        let info = MessageInfo::of(msg);
        let env = Envelope::decode_with_content_type(&msg.body, msg.content_type.as_deref()).ok();
        let by = env
            .as_ref()
            .and_then(|e| e.source.strip_prefix("/workers/").map(str::to_owned))
            .unwrap_or_else(|| by.to_owned());
        {
            let mut st = self.state.lock();
            *st.counts.entry(info.event_type.clone()).or_default() += 1;
            if let Some(env) = env {
                st.published.push(env);
            }
        }
        self.record(FlowEvent::Published {
            at: self.clock.now(),
            by,
            message: info,
        });
    }

    fn retry_scheduled(&self, worker: &str, msg: &Message) {
        if let Some(id) = MessageInfo::of(msg).event_id {
            self.state.lock().retrying.insert((worker.to_owned(), id));
        }
        self.touch();
    }

    fn completed(&self, worker: &str, m: &ReceivedMessage) {
        let info = MessageInfo::of(&m.message);
        let outcome = match info.event_id {
            Some(id) => {
                let key = (worker.to_owned(), id);
                let mut st = self.state.lock();
                if st.retrying.remove(&key) {
                    Outcome::RetryScheduled
                } else if st.handled.insert(key) {
                    Outcome::Handled
                } else {
                    Outcome::Duplicate
                }
            }
            None => Outcome::Handled,
        };
        self.settled(worker, info, outcome);
    }

    fn settled(&self, worker: &str, message: MessageInfo, outcome: Outcome) {
        self.record(FlowEvent::Settled {
            at: self.clock.now(),
            worker: worker.to_owned(),
            message,
            outcome,
        });
    }
}

/// A bus that reports to a [`Flow`]: one per worker (named by it) plus one for injected input.
pub struct ObservedBus {
    inner: Arc<dyn Bus>,
    // The worker this bus serves; `fleetctl` for input from outside.
    who: String,
    flow: Arc<Flow>,
}

impl ObservedBus {
    /// Wraps `inner` for `who`.
    pub fn new(inner: Arc<dyn Bus>, who: &str, flow: Arc<Flow>) -> Arc<ObservedBus> {
        Arc::new(ObservedBus {
            inner,
            who: who.to_owned(),
            flow,
        })
    }
}

#[async_trait]
impl Bus for ObservedBus {
    async fn sender(&self, entity: &str) -> Result<Box<dyn BusSender>, BusError> {
        Ok(Box::new(Sender {
            inner: self.inner.sender(entity).await?,
            who: self.who.clone(),
            flow: self.flow.clone(),
        }))
    }

    async fn receiver(
        &self,
        entity: &EntityPath,
        options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError> {
        Ok(Box::new(Receiver {
            inner: self.inner.receiver(entity, options).await?,
            who: self.who.clone(),
            flow: self.flow.clone(),
        }))
    }

    /// Rule changes are not message flow: they go straight to the wrapped bus.
    fn rule_manager(&self) -> Option<&dyn RuleManager> {
        self.inner.rule_manager()
    }
}

struct Sender {
    inner: Box<dyn BusSender>,
    who: String,
    flow: Arc<Flow>,
}

fn is_retry_of(msg: &Message, who: &str) -> bool {
    matches!(msg.application_properties.get(PROP_RETRY_FOR), Some(PropertyValue::String(s)) if s == who)
}

#[async_trait]
impl BusSender for Sender {
    async fn send(&self, msg: Message) -> Result<(), BusError> {
        let copy = msg.clone();
        self.inner.send(msg).await?;
        self.flow.published_msg(&self.who, &copy);
        Ok(())
    }

    async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), BusError> {
        let copies = msgs.clone();
        self.inner.send_batch(msgs).await?;
        for m in &copies {
            self.flow.published_msg(&self.who, m);
        }
        Ok(())
    }

    async fn schedule(&self, msg: Message, at: DateTime<Utc>) -> Result<i64, BusError> {
        let retry = is_retry_of(&msg, &self.who);
        let copy = msg.clone();
        let seq = self.inner.schedule(msg, at).await?;
        if retry {
            self.flow.retry_scheduled(&self.who, &copy);
        } else {
            self.flow.published_msg(&self.who, &copy);
        }
        Ok(seq)
    }

    async fn cancel_scheduled(&self, sequence_number: i64) -> Result<(), BusError> {
        self.inner.cancel_scheduled(sequence_number).await
    }
}

struct Receiver {
    inner: Box<dyn BusReceiver>,
    who: String,
    flow: Arc<Flow>,
}

#[async_trait]
impl BusReceiver for Receiver {
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        let got = self.inner.receive(max, max_wait).await?;
        if !got.is_empty() {
            self.flow.touch();
        }
        Ok(got)
    }

    async fn complete(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.inner.complete(m).await?;
        self.flow.completed(&self.who, m);
        Ok(())
    }

    async fn complete_many(&self, ms: &[ReceivedMessage]) -> Vec<Result<(), BusError>> {
        // Forwarded as one call so the adapter keeps its batched settlement.
        let results = self.inner.complete_many(ms).await;
        for (m, r) in ms.iter().zip(&results) {
            if r.is_ok() {
                self.flow.completed(&self.who, m);
            }
        }
        results
    }

    async fn abandon(
        &self,
        m: &ReceivedMessage,
        properties_to_modify: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        self.inner.abandon(m, properties_to_modify).await?;
        self.flow
            .settled(&self.who, MessageInfo::of(&m.message), Outcome::Abandoned);
        Ok(())
    }

    async fn dead_letter(
        &self,
        m: &ReceivedMessage,
        opts: DeadLetterOptions,
    ) -> Result<(), BusError> {
        let outcome = Outcome::DeadLettered {
            reason: opts.reason.clone(),
            description: opts.description.clone(),
        };
        self.inner.dead_letter(m, opts).await?;
        self.flow
            .settled(&self.who, MessageInfo::of(&m.message), outcome);
        Ok(())
    }

    async fn defer(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.inner.defer(m).await
    }

    async fn receive_deferred(
        &self,
        sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.inner.receive_deferred(sequence_numbers).await
    }

    async fn renew_lock(&self, m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError> {
        self.inner.renew_lock(m).await
    }

    async fn peek(
        &self,
        from_sequence_number: Option<i64>,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        self.inner.peek(from_sequence_number, max).await
    }

    async fn close(&self) -> Result<(), BusError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fleet_bus::{Bus, EntityPath};
    use fleet_emulator::{
        Emulator, EmulatorOptions, InProcessBus, SubscriptionConfig, SystemClock, TopicConfig,
        Topology,
    };

    use super::{Flow, ObservedBus};

    #[tokio::test]
    async fn rule_management_reaches_the_wrapped_bus() {
        let dir = tempfile::tempdir().unwrap();
        let mut topic = TopicConfig::new("t");
        topic.subscriptions.push(SubscriptionConfig::new("s"));
        let emulator = Emulator::open(
            Topology::default().with_topic(topic),
            dir.path(),
            Arc::new(SystemClock),
            EmulatorOptions::default(),
        )
        .await
        .unwrap();
        let inner: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator));
        let flow = Flow::new(crate::clock::FleetClock::real_time(), None);
        let observed = ObservedBus::new(inner, "fleetctl", flow);
        let rules = observed
            .rule_manager()
            .expect("the in-process bus manages rules, so the observed one must too");
        let sub = EntityPath::subscription("t", "s");
        rules
            .remove_rule(&sub, fleet_bus::DEFAULT_RULE_NAME)
            .await
            .unwrap();
        assert!(rules.rules(&sub).await.unwrap().is_empty());
    }
}
