//! Connection options, parsed from a `postgres://` URL.

use std::time::Duration;

use tokio_postgres::Config;

use crate::error::{StoreError, StoreErrorKind, redact_url};

/// How to connect to PostgreSQL. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Driver configuration (host, user, password, database...).
    pub config: Config,
    /// The schema the store's tables live in; created by `migrate()` when missing.
    pub schema: String,
    /// Maximum open connections.
    pub pool_size: usize,
}

impl PostgresOptions {
    /// Parses `postgres://user:password@host:port/db?schema=name&pool_size=N&<driver options>`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut schema = "public".to_string();
        let mut pool_size = 8;
        let mut passthrough = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("schema", value) => schema = value.to_string(),
                ("pool_size", value) => {
                    pool_size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        StoreError::invalid(format!(
                            "pool_size={value:?} is not a positive integer"
                        ))
                    })?;
                }
                _ => passthrough.push(pair),
            }
        }
        let driver_url = if passthrough.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passthrough.join("&"))
        };
        let mut config: Config = driver_url.parse().map_err(|e| {
            StoreError::with_source(
                StoreErrorKind::Invalid,
                format!(
                    "store URL {:?} is not a valid PostgreSQL URL",
                    redact_url(url)
                ),
                e,
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let options = Self {
            config,
            schema,
            pool_size,
        };
        options.validate()?;
        Ok(options)
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let s = &self.schema;
        let valid = !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(())
        } else {
            Err(StoreError::invalid(format!(
                "schema {s:?} is not a plain identifier (letters, digits, _; at most 63)"
            )))
        }
    }
}
