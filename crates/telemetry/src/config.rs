//! Telemetry configuration, read from the environment through a lookup function so tests can
//! pass a map instead of mutating the process environment.

use std::fmt;
use std::str::FromStr;

use crate::error::{TelemetryError, TelemetryErrorKind};

/// Log output format: `json` (default) or `pretty`.
pub const ENV_LOG_FORMAT: &str = "FLEET_LOG_FORMAT";
/// Log filter directives in `tracing-subscriber`'s `EnvFilter` syntax, e.g. `info,fleet_runtime=debug`.
pub const ENV_LOG_FILTER: &str = "RUST_LOG";
/// Base URL of an OTLP/HTTP receiver; spans are posted to `<endpoint>/v1/traces`. Unset: no export.
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// OTLP protocol; only `http/protobuf` is built in.
pub const ENV_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// Overrides the service name reported on spans (`service.name`).
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// The filter used when [`ENV_LOG_FILTER`] is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line with the message context flattened in (production).
    #[default]
    Json,
    /// Human-readable single lines with span context, coloured on a terminal (local runs).
    Pretty,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        })
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            _ => Err(TelemetryError::new(
                TelemetryErrorKind::Config,
                format!("{ENV_LOG_FORMAT}={s:?} is not a log format (expected json or pretty)"),
            )),
        }
    }
}

/// Everything [`crate::init`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `service.name` on every span, normally the worker binary name.
    pub service_name: String,
    /// JSON for production, pretty for a terminal.
    pub log_format: LogFormat,
    /// `EnvFilter` directives for log lines. The message span itself is always recorded so that
    /// traces and log context do not depend on log verbosity.
    pub log_filter: String,
    /// OTLP/HTTP base URL (`http://collector:4318`); `None` keeps spans in-process only (their
    /// ids still appear in logs and in emitted events).
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// A JSON-logging, non-exporting configuration at `info`.
    pub fn new(service_name: impl Into<String>) -> Self {
        TelemetryConfig {
            service_name: service_name.into(),
            log_format: LogFormat::Json,
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
            otlp_endpoint: None,
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_process_env(default_service_name: &str) -> Result<Self, TelemetryError> {
        Self::from_env(default_service_name, |name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (variable name → value). Empty values count as
    /// unset. A bad value yields an error naming the variable and the value.
    pub fn from_env(
        default_service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let log_format = match get(ENV_LOG_FORMAT) {
            Some(v) => v.parse()?,
            None => LogFormat::Json,
        };
        if let Some(protocol) = get(ENV_OTLP_PROTOCOL)
            && protocol.trim() != "http/protobuf"
        {
            return Err(TelemetryError::new(
                TelemetryErrorKind::Config,
                format!(
                    "{ENV_OTLP_PROTOCOL}={protocol:?} is not supported (only http/protobuf is built in)"
                ),
            ));
        }
        let otlp_endpoint = get(ENV_OTLP_ENDPOINT).map(|v| v.trim().to_owned());
        if let Some(endpoint) = &otlp_endpoint {
            traces_url(endpoint)?;
        }
        Ok(TelemetryConfig {
            service_name: get(ENV_SERVICE_NAME).unwrap_or_else(|| default_service_name.to_owned()),
            log_format,
            log_filter: get(ENV_LOG_FILTER).unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
            otlp_endpoint,
        })
    }
}

/// Turns an OTLP base endpoint into the traces URL, following the OTLP exporter specification
/// (`<base>/v1/traces`). Only `http://` is accepted because no TLS stack is compiled in; an
/// `https://` endpoint would otherwise fail on every export, long after start-up.
pub(crate) fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let bad = |why: &str| {
        TelemetryError::new(
            TelemetryErrorKind::Config,
            format!("{ENV_OTLP_ENDPOINT}={endpoint:?} {why}"),
        )
    };
    let rest = if let Some(rest) = endpoint.strip_prefix("http://") {
        rest
    } else if endpoint.starts_with("https://") {
        return Err(bad(
            "uses https, which this build cannot export to; point it at a collector or agent over http",
        ));
    } else {
        return Err(bad("is not an http:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(bad("has no host"));
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = TelemetryConfig::from_env("scaling-policy-worker", env(&[])).unwrap();
        assert_eq!(config, TelemetryConfig::new("scaling-policy-worker"));
    }

    #[test]
    fn every_variable_is_read() {
        let config = TelemetryConfig::from_env(
            "w",
            env(&[
                (ENV_LOG_FORMAT, "Pretty"),
                (ENV_LOG_FILTER, "debug,hyper=warn"),
                (ENV_OTLP_ENDPOINT, "http://otel:4318"),
                (ENV_OTLP_PROTOCOL, "http/protobuf"),
                (ENV_SERVICE_NAME, "custom"),
            ]),
        )
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.log_filter, "debug,hyper=warn");
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://otel:4318"));
        assert_eq!(config.service_name, "custom");
    }

    #[test]
    fn bad_log_format_names_the_variable_and_value() {
        let err = TelemetryConfig::from_env("w", env(&[(ENV_LOG_FORMAT, "xml")])).unwrap_err();
        assert_eq!(err.kind(), TelemetryErrorKind::Config);
        assert!(
            err.to_string().contains("FLEET_LOG_FORMAT=\"xml\""),
            "{err}"
        );
    }

    #[test]
    fn grpc_protocol_is_rejected_with_its_value() {
        let err = TelemetryConfig::from_env("w", env(&[(ENV_OTLP_PROTOCOL, "grpc")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\""),
            "{err}"
        );
    }

    #[test]
    fn https_and_garbage_endpoints_are_rejected_at_start_up() {
        for value in ["https://otel:4318", "otel:4318", "http://", "http:// x"] {
            let err =
                TelemetryConfig::from_env("w", env(&[(ENV_OTLP_ENDPOINT, value)])).unwrap_err();
            assert!(err.to_string().contains(value), "{err}");
        }
    }

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(
            traces_url("http://c:4318").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/otlp").unwrap(),
            "http://c:4318/otlp/v1/traces"
        );
    }
}
