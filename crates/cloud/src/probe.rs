//! The HTTP health prober: liveness, readiness and dependency probes with a timeout, per-probe
//! retries and bounded concurrency across many endpoints.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::CloudError;

/// Largest probe response body read before the connection is given up on.
const MAX_DRAINED_BODY: usize = 64 * 1024;

/// How probes behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Budget for one attempt (connect + response head).
    pub timeout: Duration,
    /// Attempts per probe before it is reported failed (the worker catalog asks for 3).
    pub attempts: u32,
    /// Pause between attempts, so a restarting endpoint gets a moment to come back.
    pub retry_delay: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            timeout: Duration::from_secs(5),
            attempts: 3,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeStatus {
    /// An attempt answered 2xx or 3xx (kubelet's rule).
    Healthy,
    /// Every attempt got an answer, the last one 4xx or 5xx.
    Unhealthy,
    /// The last attempt did not answer within the timeout.
    TimedOut,
    /// The last attempt could not connect (refused, reset, bad URL).
    Unreachable,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// The probed URL.
    pub url: String,
    /// Healthy or how it failed.
    pub status: ProbeStatus,
    /// HTTP status of the last answered attempt.
    pub http_status: Option<u16>,
    /// Duration of the last attempt.
    #[serde(with = "millis")]
    pub latency: Duration,
    /// Attempts made (1 when the first one succeeded).
    pub attempts: u32,
    /// Why the last attempt failed, when it did.
    pub error: Option<String>,
}

impl ProbeResult {
    /// True when the probe succeeded.
    pub fn is_healthy(&self) -> bool {
        self.status == ProbeStatus::Healthy
    }
}

/// Probes HTTP endpoints. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HealthProber {
    client: reqwest::Client,
    config: ProbeConfig,
}

impl HealthProber {
    /// A prober with `config` (rustls for HTTPS, no redirects followed, no proxy).
    pub fn new(config: ProbeConfig) -> Result<Self, CloudError> {
        if config.attempts == 0 {
            return Err(CloudError::invalid(
                "probe attempts must be at least 1, got 0",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect is an answer: following it would probe another service.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fleet-health-prober/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                CloudError::permanent("cannot build the probe HTTP client").with_source(e)
            })?;
        Ok(HealthProber { client, config })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Probes `url` with up to `attempts` tries; stops at the first healthy answer.
    pub async fn probe(&self, url: &str) -> ProbeResult {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let outcome = self.client.get(url).send().await;
            let latency = started.elapsed();
            let (status, http_status, error) = match outcome {
                Ok(mut resp) => {
                    let code = resp.status();
                    // Draining a small body lets the connection go back to the pool; a huge
                    // one is cut off (the status already is the answer).
                    let mut drained = 0usize;
                    while let Ok(Some(chunk)) = resp.chunk().await {
                        drained += chunk.len();
                        if drained > MAX_DRAINED_BODY {
                            break;
                        }
                    }
                    if code.is_success() || code.is_redirection() {
                        (ProbeStatus::Healthy, Some(code.as_u16()), None)
                    } else {
                        (
                            ProbeStatus::Unhealthy,
                            Some(code.as_u16()),
                            Some(format!("HTTP {}", code.as_u16())),
                        )
                    }
                }
                Err(e) if e.is_timeout() => (
                    ProbeStatus::TimedOut,
                    None,
                    Some(format!(
                        "no answer within {} ms",
                        self.config.timeout.as_millis()
                    )),
                ),
                Err(e) => (ProbeStatus::Unreachable, None, Some(describe(&e))),
            };
            if status == ProbeStatus::Healthy || attempt >= self.config.attempts {
                return ProbeResult {
                    url: url.to_owned(),
                    status,
                    http_status,
                    latency,
                    attempts: attempt,
                    error,
                };
            }
            tokio::time::sleep(self.config.retry_delay).await;
        }
    }

    /// Probes every URL with at most `concurrency` probes in flight; results keep input order.
    pub async fn probe_many<I, S>(&self, urls: I, concurrency: usize) -> Vec<ProbeResult>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        futures::stream::iter(urls.iter().map(|u| self.probe(u)))
            .buffered(concurrency.max(1))
            .collect()
            .await
    }
}

/// The error chain in one line: reqwest's top-level message alone rarely says what failed.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
