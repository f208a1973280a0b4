//! Process metrics in the Prometheus/OpenMetrics text format. One [`Metrics`] per process,
//! shared by every worker it runs (labels carry the worker).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of [`Metrics::render_prometheus`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Handler latency buckets in seconds: 5 ms … 60 s covers a store commit through a slow
/// control-plane long-running operation.
const LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabels {
    worker: String,
    event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    worker: String,
    event_type: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    worker: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimerLabels {
    worker: String,
    timer: String,
}

type Counters<L> = Family<L, Counter>;

struct Inner {
    /// Owns the registrations; the families below are handles to the same metrics.
    registry: Registry,
    processed: Counters<EventTypeLabels>,
    failed: Counters<FailureLabels>,
    retried: Counters<EventTypeLabels>,
    dead_lettered: Counters<ReasonLabels>,
    abandoned: Counters<WorkerLabels>,
    dedupe_hits: Counters<WorkerLabels>,
    tenant_rejections: Counters<ReasonLabels>,
    events_emitted: Counters<EventTypeLabels>,
    outbox_published: Counters<WorkerLabels>,
    outbox_publish_failures: Counters<WorkerLabels>,
    timer_fires: Counters<TimerLabels>,
    handler_duration: Family<EventTypeLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<WorkerLabels, Gauge>,
    outbox_pending: Family<WorkerLabels, Gauge>,
}

/// `fleet_messages_in_flight` of one worker (see [`Metrics::in_flight_gauge`]). Clones update the
/// same series.
#[derive(Clone, Debug)]
pub struct InFlightGauge(Gauge);

impl InFlightGauge {
    /// Adds `delta` (negative to remove).
    pub fn add(&self, delta: i64) {
        self.0.inc_by(delta);
    }
}

/// `fleet_messages_processed_total` and `fleet_handler_duration_seconds` of one worker and event
/// type (see [`Metrics::processed_series`]). Clones update the same series.
#[derive(Clone, Debug)]
pub struct ProcessedSeries {
    processed: Counter,
    latency: Histogram,
}

impl ProcessedSeries {
    /// Counts one processed message that ran for `seconds`.
    pub fn record(&self, seconds: f64) {
        self.processed.inc();
        self.latency.observe(seconds);
    }
}

/// The metric set. Cheap to clone (an `Arc` inside); clones share the same values.
///
/// Label values must come from bounded sets (worker names, catalog event types, error kinds,
/// dead-letter reasons), never from message content, so the series count stays bounded.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counters<L>(registry: &mut Registry, name: &str, help: &str) -> Counters<L>
where
    L: EncodeLabelSet + Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
{
    let family = Counters::<L>::default();
    registry.register(name, help, family.clone());
    family
}

fn worker(worker: &str) -> WorkerLabels {
    WorkerLabels {
        worker: worker.to_owned(),
    }
}

fn event_type(worker: &str, event_type: &str) -> EventTypeLabels {
    EventTypeLabels {
        worker: worker.to_owned(),
        event_type: event_type.to_owned(),
    }
}

fn reason(worker: &str, reason: &str) -> ReasonLabels {
    ReasonLabels {
        worker: worker.to_owned(),
        reason: reason.to_owned(),
    }
}

impl Metrics {
    /// Registers every Fleet metric in a fresh registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        // Counter names are registered without `_total`; the encoder appends it.
        let processed = counters(
            &mut registry,
            "fleet_messages_processed",
            "Messages handled and committed successfully",
        );
        let failed = counters(
            &mut registry,
            "fleet_messages_failed",
            "Handler attempts that returned an error, by error kind",
        );
        let retried = counters(
            &mut registry,
            "fleet_messages_retried",
            "Messages rescheduled for a delayed retry",
        );
        let dead_lettered = counters(
            &mut registry,
            "fleet_messages_dead_lettered",
            "Messages moved to the dead-letter queue, by reason",
        );
        let abandoned = counters(
            &mut registry,
            "fleet_messages_abandoned",
            "Messages released unprocessed for redelivery (shutdown)",
        );
        let dedupe_hits = counters(
            &mut registry,
            "fleet_dedupe_hits",
            "Deliveries of an event already in the inbox, completed without handling",
        );
        let tenant_rejections = counters(
            &mut registry,
            "fleet_tenant_rejections",
            "Messages refused by the tenant guard, by reason",
        );
        let events_emitted = counters(
            &mut registry,
            "fleet_events_emitted",
            "Events written to the outbox by handlers",
        );
        let outbox_published = counters(
            &mut registry,
            "fleet_outbox_published",
            "Outbox messages sent to the bus",
        );
        let outbox_publish_failures = counters(
            &mut registry,
            "fleet_outbox_publish_failures",
            "Outbox send attempts that failed (retried later)",
        );
        let timer_fires = counters(&mut registry, "fleet_timer_fires", "Timer windows fired");

        let handler_duration: Family<EventTypeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "fleet_handler_duration",
            "Handler run time, whatever the outcome",
            Unit::Seconds,
            handler_duration.clone(),
        );
        let in_flight = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "fleet_messages_in_flight",
            "Messages being processed now",
            in_flight.clone(),
        );
        let outbox_pending = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "fleet_outbox_pending_messages",
            "Outbox rows not yet dispatched, as last seen by the relay",
            outbox_pending.clone(),
        );

        Metrics {
            inner: Arc::new(Inner {
                registry,
                processed,
                failed,
                retried,
                dead_lettered,
                abandoned,
                dedupe_hits,
                tenant_rejections,
                events_emitted,
                outbox_published,
                outbox_publish_failures,
                timer_fires,
                handler_duration,
                in_flight,
                outbox_pending,
            }),
        }
    }

    /// Creates the zero-valued series that carry only the worker label, so dashboards and
    /// `rate()` see them before the first occurrence. Call once per worker at start-up.
    pub fn register_worker(&self, worker: &str) {
        let labels = self::worker(worker);
        let inner = &self.inner;
        for family in [
            &inner.abandoned,
            &inner.dedupe_hits,
            &inner.outbox_published,
            &inner.outbox_publish_failures,
        ] {
            drop(family.get_or_create(&labels));
        }
        drop(inner.in_flight.get_or_create(&labels));
        drop(inner.outbox_pending.get_or_create(&labels));
    }

    /// The in-flight gauge of `worker`, resolved once: updating the handle is one atomic add,
    /// where [`Metrics::in_flight_add`] looks the series up by label every time.
    pub fn in_flight_gauge(&self, worker: &str) -> InFlightGauge {
        InFlightGauge(
            self.inner
                .in_flight
                .get_or_create_owned(&self::worker(worker)),
        )
    }

    /// The series [`crate::events::MessageProcessed`] updates for one worker and event type,
    /// resolved once for the per-message path.
    pub fn processed_series(&self, worker: &str, event_type: &str) -> ProcessedSeries {
        let labels = self::event_type(worker, event_type);
        ProcessedSeries {
            processed: self.inner.processed.get_or_create_owned(&labels),
            latency: self.inner.handler_duration.get_or_create_owned(&labels),
        }
    }

    /// A message was handled and its unit of work committed.
    pub fn processed(&self, worker: &str, event_type: &str) {
        self.inner
            .processed
            .get_or_create(&self::event_type(worker, event_type))
            .inc();
    }

    /// A handler attempt failed with an error of `kind` (e.g. `Transient`, `Permanent`).
    pub fn failed(&self, worker: &str, event_type: &str, kind: &str) {
        let labels = FailureLabels {
            worker: worker.to_owned(),
            event_type: event_type.to_owned(),
            kind: kind.to_owned(),
        };
        self.inner.failed.get_or_create(&labels).inc();
    }

    /// A delayed retry was scheduled.
    pub fn retried(&self, worker: &str, event_type: &str) {
        self.inner
            .retried
            .get_or_create(&self::event_type(worker, event_type))
            .inc();
    }

    /// A message was dead-lettered with `reason` (e.g. `MalformedEnvelope`).
    pub fn dead_lettered(&self, worker: &str, reason: &str) {
        self.inner
            .dead_lettered
            .get_or_create(&self::reason(worker, reason))
            .inc();
    }

    /// A message was abandoned (released for redelivery without processing).
    pub fn abandoned(&self, worker: &str) {
        self.inner
            .abandoned
            .get_or_create(&self::worker(worker))
            .inc();
    }

    /// A delivery was recognised as a duplicate by the inbox.
    pub fn dedupe_hit(&self, worker: &str) {
        self.inner
            .dedupe_hits
            .get_or_create(&self::worker(worker))
            .inc();
    }

    /// The tenant guard refused a message (`UnknownEnvironment`, `TenantMismatch`).
    pub fn tenant_rejected(&self, worker: &str, reason: &str) {
        self.inner
            .tenant_rejections
            .get_or_create(&self::reason(worker, reason))
            .inc();
    }

    /// A handler emitted `count` events of `event_type` into the outbox.
    pub fn events_emitted(&self, worker: &str, event_type: &str, count: u64) {
        self.inner
            .events_emitted
            .get_or_create(&self::event_type(worker, event_type))
            .inc_by(count);
    }

    /// The outbox relay sent `count` messages.
    pub fn outbox_published(&self, worker: &str, count: u64) {
        self.inner
            .outbox_published
            .get_or_create(&self::worker(worker))
            .inc_by(count);
    }

    /// An outbox send attempt failed.
    pub fn outbox_publish_failed(&self, worker: &str) {
        self.inner
            .outbox_publish_failures
            .get_or_create(&self::worker(worker))
            .inc();
    }

    /// Sets the number of undispatched outbox rows last observed.
    pub fn set_outbox_pending(&self, worker: &str, pending: u64) {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        self.inner
            .outbox_pending
            .get_or_create(&self::worker(worker))
            .set(pending);
    }

    /// A timer window fired.
    pub fn timer_fired(&self, worker: &str, timer: &str) {
        let labels = TimerLabels {
            worker: worker.to_owned(),
            timer: timer.to_owned(),
        };
        self.inner.timer_fires.get_or_create(&labels).inc();
    }

    /// Records one handler run time in seconds.
    pub fn observe_handler_latency(&self, worker: &str, event_type: &str, seconds: f64) {
        self.inner
            .handler_duration
            .get_or_create(&self::event_type(worker, event_type))
            .observe(seconds);
    }

    /// Adds `delta` (negative to remove) to the in-flight gauge.
    pub fn in_flight_add(&self, worker: &str, delta: i64) {
        self.inner
            .in_flight
            .get_or_create(&self::worker(worker))
            .inc_by(delta);
    }

    /// Renders every metric in the OpenMetrics text format (which Prometheus scrapes; serve it
    /// with [`METRICS_CONTENT_TYPE`]). Counters end in `_total`; the output ends with `# EOF`.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and the label types above always encode.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
