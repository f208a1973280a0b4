//! Worker configuration, read only from `FLEET_*` environment variables through [`Env`].
//!
//! Every variable is an `ENV_*` constant. Log format, log filter and OTLP export are read by
//! `fleet-telemetry` (`FLEET_LOG_FORMAT`, `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`). A malformed value is an error that names the variable
//! and the value; binaries turn it into exit code 64 (see [`crate::main_support`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RuntimeError;
use crate::retry::RetryPolicy;

/// Name of the worker: inbox rows, idempotency keys and emitted ids are scoped by it.
pub const ENV_WORKER_NAME: &str = "FLEET_WORKER_NAME";
/// Store URL: `sqlite://path`, `sqlite::memory:` or `postgres://…`.
pub const ENV_STORE_URL: &str = "FLEET_STORE_URL";
/// Address of the health / metrics HTTP server.
pub const ENV_HTTP_ADDR: &str = "FLEET_HTTP_ADDR";
/// Bound on messages handled at once by one replica.
pub const ENV_MAX_IN_FLIGHT: &str = "FLEET_MAX_IN_FLIGHT";
/// Seconds in-flight work may take to finish after SIGTERM before it is abandoned.
pub const ENV_SHUTDOWN_GRACE_SECS: &str = "FLEET_SHUTDOWN_GRACE_SECS";
/// Days inbox rows and idempotency keys are kept (the dedupe window).
pub const ENV_DEDUPE_WINDOW_DAYS: &str = "FLEET_DEDUPE_WINDOW_DAYS";
/// Hours dispatched outbox rows are kept for audit.
pub const ENV_OUTBOX_AUDIT_HOURS: &str = "FLEET_OUTBOX_AUDIT_HOURS";
/// Topic the worker's subscription belongs to; delayed retries are scheduled onto it.
pub const ENV_TOPIC: &str = "FLEET_TOPIC";
/// Subscription the worker receives from.
pub const ENV_SUBSCRIPTION: &str = "FLEET_SUBSCRIPTION";
/// Topic emitted events are published to.
pub const ENV_PUBLISH_TOPIC: &str = "FLEET_PUBLISH_TOPIC";
/// Overrides the worker's maximum number of attempts.
pub const ENV_RETRY_MAX_ATTEMPTS: &str = "FLEET_RETRY_MAX_ATTEMPTS";
/// Overrides the first retry delay, in milliseconds.
pub const ENV_RETRY_BASE_MS: &str = "FLEET_RETRY_BASE_MS";
/// Overrides the largest retry delay, in seconds.
pub const ENV_RETRY_CAP_SECS: &str = "FLEET_RETRY_CAP_SECS";
/// Seconds between outbox relay sweeps (rows left behind by a crash).
pub const ENV_RELAY_INTERVAL_SECS: &str = "FLEET_RELAY_INTERVAL_SECS";
/// Seconds between janitor passes.
pub const ENV_JANITOR_INTERVAL_SECS: &str = "FLEET_JANITOR_INTERVAL_SECS";

/// Every variable the runtime reads, for `--help` texts and docs.
pub const ALL_ENV: &[&str] = &[
    ENV_WORKER_NAME,
    ENV_STORE_URL,
    ENV_HTTP_ADDR,
    ENV_MAX_IN_FLIGHT,
    ENV_SHUTDOWN_GRACE_SECS,
    ENV_DEDUPE_WINDOW_DAYS,
    ENV_OUTBOX_AUDIT_HOURS,
    ENV_TOPIC,
    ENV_SUBSCRIPTION,
    ENV_PUBLISH_TOPIC,
    ENV_RETRY_MAX_ATTEMPTS,
    ENV_RETRY_BASE_MS,
    ENV_RETRY_CAP_SECS,
    ENV_RELAY_INTERVAL_SECS,
    ENV_JANITOR_INTERVAL_SECS,
];

/// Where configuration comes from: the process environment in binaries, a map in tests.
pub trait Env {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed map, for tests.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Builds a map from `(key, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        MapEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// The typed configuration of one worker replica.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Scopes inbox rows, idempotency keys, emitted ids and metrics.
    pub worker_name: String,
    /// Where records, inbox, keys and outbox live.
    pub store_url: String,
    /// Health / readiness / metrics endpoint address.
    pub http_addr: SocketAddr,
    /// Upper bound of concurrently handled messages.
    pub max_in_flight: usize,
    /// Time in-flight work gets to finish on shutdown (Container Apps kills after 30 s).
    pub shutdown_grace: Duration,
    /// How long inbox rows and idempotency keys are kept.
    pub dedupe_window: Duration,
    /// How long dispatched outbox rows are kept.
    pub outbox_audit: Duration,
    /// Topic of the input subscription (also where delayed retries are scheduled).
    pub topic: String,
    /// Input subscription.
    pub subscription: String,
    /// Destination of emitted events.
    pub publish_topic: String,
    /// Delayed-retry policy (worker default, overridable by env).
    pub retry: RetryPolicy,
    /// Period of the outbox relay's crash sweep.
    pub relay_interval: Duration,
    /// Period of the janitor.
    pub janitor_interval: Duration,
}

impl RuntimeConfig {
    /// Defaults for `worker_name`, suitable for tests and local runs.
    pub fn new(worker_name: &str) -> Self {
        RuntimeConfig {
            worker_name: worker_name.to_owned(),
            store_url: "sqlite://fleet.db".to_owned(),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_in_flight: 16,
            shutdown_grace: Duration::from_secs(25),
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            outbox_audit: Duration::from_secs(24 * 3600),
            topic: "fleet-events".to_owned(),
            subscription: worker_name.to_owned(),
            publish_topic: "fleet-events".to_owned(),
            retry: RetryPolicy::default(),
            relay_interval: Duration::from_secs(5),
            janitor_interval: Duration::from_secs(3600),
        }
    }

    /// Reads the configuration; `worker_name` and `retry` are the worker's own defaults.
    pub fn from_env(
        env: &dyn Env,
        worker_name: &str,
        retry: RetryPolicy,
    ) -> Result<Self, RuntimeError> {
        let mut c = RuntimeConfig::new(worker_name);
        c.retry = retry;
        if let Some(name) = env.get(ENV_WORKER_NAME) {
            if !valid_name(&name) {
                return Err(RuntimeError::config(
                    ENV_WORKER_NAME,
                    &name,
                    "letters, digits, '-', '_' or '.'",
                ));
            }
            c.worker_name = name;
        }
        c.subscription = c.worker_name.clone();
        if let Some(v) = non_empty(env, ENV_STORE_URL)? {
            c.store_url = v;
        }
        c.http_addr =
            parse(env, ENV_HTTP_ADDR, "a socket address like 0.0.0.0:8080")?.unwrap_or(c.http_addr);
        if let Some(n) = parse::<usize>(env, ENV_MAX_IN_FLIGHT, "an integer from 1 to 10000")? {
            if !(1..=10_000).contains(&n) {
                return Err(raw_err(
                    env,
                    ENV_MAX_IN_FLIGHT,
                    "an integer from 1 to 10000",
                ));
            }
            c.max_in_flight = n;
        }
        if let Some(s) = parse::<u64>(env, ENV_SHUTDOWN_GRACE_SECS, "whole seconds")? {
            c.shutdown_grace = Duration::from_secs(s);
        }
        if let Some(d) = parse::<u64>(env, ENV_DEDUPE_WINDOW_DAYS, "whole days >= 1")? {
            if d == 0 {
                return Err(raw_err(env, ENV_DEDUPE_WINDOW_DAYS, "whole days >= 1"));
            }
            c.dedupe_window = Duration::from_secs(d * 24 * 3600);
        }
        if let Some(h) = parse::<u64>(env, ENV_OUTBOX_AUDIT_HOURS, "whole hours")? {
            c.outbox_audit = Duration::from_secs(h * 3600);
        }
        if let Some(v) = non_empty(env, ENV_TOPIC)? {
            c.topic = v.clone();
            c.publish_topic = v;
        }
        if let Some(v) = non_empty(env, ENV_SUBSCRIPTION)? {
            c.subscription = v;
        }
        if let Some(v) = non_empty(env, ENV_PUBLISH_TOPIC)? {
            c.publish_topic = v;
        }
        if let Some(n) = parse::<u32>(env, ENV_RETRY_MAX_ATTEMPTS, "an integer >= 1")? {
            if n == 0 {
                return Err(raw_err(env, ENV_RETRY_MAX_ATTEMPTS, "an integer >= 1"));
            }
            c.retry.max_attempts = n;
        }
        if let Some(ms) = parse::<u64>(env, ENV_RETRY_BASE_MS, "milliseconds")? {
            c.retry.base_delay = Duration::from_millis(ms);
        }
        if let Some(s) = parse::<u64>(env, ENV_RETRY_CAP_SECS, "whole seconds")? {
            c.retry.max_delay = Duration::from_secs(s);
        }
        if let Some(s) = parse::<u64>(env, ENV_RELAY_INTERVAL_SECS, "whole seconds >= 1")? {
            if s == 0 {
                return Err(raw_err(env, ENV_RELAY_INTERVAL_SECS, "whole seconds >= 1"));
            }
            c.relay_interval = Duration::from_secs(s);
        }
        if let Some(s) = parse::<u64>(env, ENV_JANITOR_INTERVAL_SECS, "whole seconds >= 1")? {
            if s == 0 {
                return Err(raw_err(
                    env,
                    ENV_JANITOR_INTERVAL_SECS,
                    "whole seconds >= 1",
                ));
            }
            c.janitor_interval = Duration::from_secs(s);
        }
        Ok(c)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 120
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn raw_err(env: &dyn Env, key: &str, expected: &str) -> RuntimeError {
    RuntimeError::config(key, &env.get(key).unwrap_or_default(), expected)
}

fn non_empty(env: &dyn Env, key: &str) -> Result<Option<String>, RuntimeError> {
    match env.get(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Err(RuntimeError::config(key, &v, "a non-empty value")),
        Some(v) => Ok(Some(v)),
    }
}

fn parse<T: FromStr>(env: &dyn Env, key: &str, expected: &str) -> Result<Option<T>, RuntimeError> {
    match env.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| RuntimeError::config(key, &v, expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RuntimeErrorKind;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = RuntimeConfig::from_env(&MapEnv::default(), "w1", RetryPolicy::default()).unwrap();
        assert_eq!(c, RuntimeConfig::new("w1"));
        assert_eq!(c.shutdown_grace, Duration::from_secs(25));
        assert_eq!(c.dedupe_window, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn every_variable_is_read() {
        let env = MapEnv::from_pairs([
            (ENV_WORKER_NAME, "scaling-policy"),
            (ENV_STORE_URL, "postgres://db/fleet"),
            (ENV_HTTP_ADDR, "127.0.0.1:9090"),
            (ENV_MAX_IN_FLIGHT, "4"),
            (ENV_SHUTDOWN_GRACE_SECS, "10"),
            (ENV_DEDUPE_WINDOW_DAYS, "2"),
            (ENV_OUTBOX_AUDIT_HOURS, "3"),
            (ENV_TOPIC, "events"),
            (ENV_SUBSCRIPTION, "scaling"),
            (ENV_PUBLISH_TOPIC, "out"),
            (ENV_RETRY_MAX_ATTEMPTS, "9"),
            (ENV_RETRY_BASE_MS, "50"),
            (ENV_RETRY_CAP_SECS, "7"),
            (ENV_RELAY_INTERVAL_SECS, "2"),
            (ENV_JANITOR_INTERVAL_SECS, "60"),
        ]);
        let c = RuntimeConfig::from_env(&env, "ignored", RetryPolicy::default()).unwrap();
        assert_eq!(c.worker_name, "scaling-policy");
        assert_eq!(c.store_url, "postgres://db/fleet");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(c.max_in_flight, 4);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.dedupe_window, Duration::from_secs(2 * 86_400));
        assert_eq!(c.outbox_audit, Duration::from_secs(3 * 3600));
        assert_eq!(
            (
                c.topic.as_str(),
                c.subscription.as_str(),
                c.publish_topic.as_str()
            ),
            ("events", "scaling", "out")
        );
        assert_eq!(c.retry.max_attempts, 9);
        assert_eq!(c.retry.base_delay, Duration::from_millis(50));
        assert_eq!(c.retry.max_delay, Duration::from_secs(7));
        assert_eq!(c.relay_interval, Duration::from_secs(2));
        assert_eq!(c.janitor_interval, Duration::from_secs(60));
    }

    #[test]
    fn subscription_defaults_to_the_worker_name_and_publish_topic_to_the_topic() {
        let env = MapEnv::from_pairs([(ENV_WORKER_NAME, "drift"), (ENV_TOPIC, "t")]);
        let c = RuntimeConfig::from_env(&env, "x", RetryPolicy::default()).unwrap();
        assert_eq!(
            (c.subscription.as_str(), c.publish_topic.as_str()),
            ("drift", "t")
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        for (key, value) in [
            (ENV_MAX_IN_FLIGHT, "lots"),
            (ENV_MAX_IN_FLIGHT, "0"),
            (ENV_HTTP_ADDR, "localhost"),
            (ENV_SHUTDOWN_GRACE_SECS, "-1"),
            (ENV_DEDUPE_WINDOW_DAYS, "0"),
            (ENV_WORKER_NAME, "a b"),
            (ENV_STORE_URL, " "),
            (ENV_RETRY_MAX_ATTEMPTS, "0"),
        ] {
            let err = RuntimeConfig::from_env(
                &MapEnv::from_pairs([(key, value)]),
                "w",
                RetryPolicy::default(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), RuntimeErrorKind::Config);
            let text = err.to_string();
            assert!(text.contains(key) && text.contains(value), "{text}");
        }
    }
}
