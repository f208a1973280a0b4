//! A worker's definition: its name, handlers per event type and version, timers, ordering
//! keys and retry policy. Built once, shared by every replica task.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_envelope::{Envelope, EventType};

use crate::error::{RuntimeError, RuntimeErrorKind};
use futures::future::BoxFuture;

use crate::context::HandlerContext;
use crate::handler::{Handler, HandlerResult, TimerHandler};
use crate::retry::RetryPolicy;
use crate::timer::TimerTick;

/// Derives the ordering key of an envelope; `None` means "no serialization needed".
pub type OrderingKeyFn = Arc<dyn Fn(&Envelope) -> Option<String> + Send + Sync>;

pub(crate) struct Route<P> {
    pub(crate) handler: Arc<dyn Handler<P>>,
    pub(crate) ordering_key: OrderingKeyFn,
}

pub(crate) struct TimerDef<P> {
    pub(crate) name: String,
    pub(crate) period: Duration,
    pub(crate) handler: Arc<dyn TimerHandler<P>>,
}

/// Everything that makes a worker what it is, independent of where it runs.
pub struct WorkerDefinition<P> {
    pub(crate) name: Arc<str>,
    pub(crate) routes: HashMap<(EventType, u32), Route<P>>,
    pub(crate) timers: Vec<TimerDef<P>>,
    pub(crate) retry: RetryPolicy,
}

impl<P> std::fmt::Debug for WorkerDefinition<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<_> = self
            .routes
            .keys()
            .map(|(t, v)| format!("{}/v{v}", t.as_str()))
            .collect();
        routes.sort();
        let timers: Vec<_> = self.timers.iter().map(|t| (&t.name, t.period)).collect();
        f.debug_struct("WorkerDefinition")
            .field("name", &self.name)
            .field("routes", &routes)
            .field("timers", &timers)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<P> WorkerDefinition<P> {
    /// Starts a definition for the worker `name` with the default retry policy.
    pub fn builder(name: &str) -> WorkerBuilder<P> {
        WorkerBuilder {
            def: WorkerDefinition {
                name: Arc::from(name),
                routes: HashMap::default(),
                timers: Vec::new(),
                retry: RetryPolicy::default(),
            },
            default_key: Arc::new(default_ordering_key),
            error: None,
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Whether a handler is registered for `event_type` at `version`.
    pub fn handles(&self, event_type: EventType, version: u32) -> bool {
        self.routes.contains_key(&(event_type, version))
    }

    /// Overrides the retry policy (configuration from the environment wins over the code's).
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }
}

/// The default ordering key: the envelope's subject (e.g. `services/svc-42`), scoped by tenant
/// so two tenants' entities never block each other.
pub fn default_ordering_key(env: &Envelope) -> Option<String> {
    env.subject
        .as_ref()
        .map(|s| format!("{}/{}", env.tenant_id, s))
}

/// Builds a [`WorkerDefinition`].
pub struct WorkerBuilder<P> {
    def: WorkerDefinition<P>,
    default_key: OrderingKeyFn,
    // The first registration mistake, reported by `build` so the chain stays fluent.
    error: Option<RuntimeError>,
}

impl<P: Send + Sync + 'static> WorkerBuilder<P> {
    /// Sets the retry policy (e.g. §5's "5, then DLQ" is `RetryPolicy::attempts(5)`).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.def.retry = retry;
        self
    }

    /// Sets the ordering key used by handlers registered after this call.
    pub fn ordering_key(
        mut self,
        key: impl Fn(&Envelope) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.default_key = Arc::new(key);
        self
    }

    /// Registers a handler function for `event_type`, version 1:
    /// `.on(EventType::X, |env, ctx| Box::pin(on_x(env, ctx)))`.
    pub fn on<F>(self, event_type: EventType, handler: F) -> Self
    where
        F: for<'a> Fn(&'a Envelope, &'a mut HandlerContext<P>) -> BoxFuture<'a, HandlerResult>
            + Send
            + Sync
            + 'static,
    {
        self.on_version(event_type, 1, handler)
    }

    /// Registers a handler function for one version of `event_type`.
    pub fn on_version<F>(self, event_type: EventType, version: u32, handler: F) -> Self
    where
        F: for<'a> Fn(&'a Envelope, &'a mut HandlerContext<P>) -> BoxFuture<'a, HandlerResult>
            + Send
            + Sync
            + 'static,
    {
        self.handler(event_type, version, handler)
    }

    /// Registers any [`Handler`] implementation for one version of `event_type`.
    pub fn handler(
        mut self,
        event_type: EventType,
        version: u32,
        handler: impl Handler<P>,
    ) -> Self {
        let route = Route {
            handler: Arc::new(handler),
            ordering_key: self.default_key.clone(),
        };
        if self
            .def
            .routes
            .insert((event_type, version), route)
            .is_some()
        {
            self.fail(format!(
                "two handlers for {} version {version}",
                event_type.as_str()
            ));
        }
        self
    }

    /// Registers a timer function firing once per `period` window (windows align to the Unix
    /// epoch): `.timer("probe", period, |tick, ctx| Box::pin(on_probe(tick, ctx)))`.
    pub fn timer<F>(self, name: &str, period: Duration, handler: F) -> Self
    where
        F: for<'a> Fn(&'a TimerTick, &'a mut HandlerContext<P>) -> BoxFuture<'a, HandlerResult>
            + Send
            + Sync
            + 'static,
    {
        self.timer_handler(name, period, handler)
    }

    /// Registers any [`TimerHandler`] implementation.
    pub fn timer_handler(
        mut self,
        name: &str,
        period: Duration,
        handler: impl TimerHandler<P>,
    ) -> Self {
        if period < Duration::from_millis(1) {
            self.fail(format!("timer {name:?} has a period below 1 ms"));
        }
        if self.def.timers.iter().any(|t| t.name == name) {
            self.fail(format!("two timers named {name:?}"));
        }
        self.def.timers.push(TimerDef {
            name: name.to_owned(),
            period,
            handler: Arc::new(handler),
        });
        self
    }

    /// Finishes the definition.
    pub fn build(self) -> Result<WorkerDefinition<P>, RuntimeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.def),
        }
    }

    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(RuntimeError::new(
                RuntimeErrorKind::Definition,
                format!("worker {}: {message}", self.def.name),
            ));
        }
    }
}
