//! Choosing a backend from a URL.

use std::sync::Arc;

use crate::error::{StoreError, redact_url};
use crate::postgres::{PostgresOptions, PostgresStore};
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;

/// A parsed store URL.
#[derive(Debug, Clone)]
pub enum StoreUrl {
    /// `sqlite://path`, `sqlite:path` or `sqlite::memory:`, with optional
    /// `?synchronous=off|normal|full|extra&readers=N`.
    Sqlite(SqliteOptions),
    /// `postgres://…` or `postgresql://…`, with optional `?schema=name&pool_size=N`; other query
    /// parameters go to the PostgreSQL driver.
    Postgres(Box<PostgresOptions>),
}

impl StoreUrl {
    /// Parses a URL. Errors name the offending part, with any password removed.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url == "sqlite::memory:" || url.starts_with("sqlite::memory:?") {
            let mut options = SqliteOptions::memory();
            apply_sqlite_query(&mut options, url.split_once('?').map(|(_, q)| q))?;
            return Ok(Self::Sqlite(options));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(StoreError::invalid(format!(
                    "store URL {url:?} names no database file"
                )));
            }
            let mut options = SqliteOptions::file(path);
            apply_sqlite_query(&mut options, query)?;
            return Ok(Self::Sqlite(options));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PostgresOptions::from_url(url).map(|o| Self::Postgres(Box::new(o)));
        }
        Err(StoreError::invalid(format!(
            "store URL {:?} is neither sqlite://…, sqlite::memory: nor postgres://…",
            redact_url(url)
        )))
    }
}

fn apply_sqlite_query(options: &mut SqliteOptions, query: Option<&str>) -> Result<(), StoreError> {
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "synchronous" => options.synchronous = value.parse()?,
            "readers" => {
                options.readers = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::invalid(format!("readers={value:?} is not a positive integer"))
                })?
            }
            _ => {
                return Err(StoreError::invalid(format!(
                    "unknown sqlite store URL parameter {key:?} (known: synchronous, readers)"
                )));
            }
        }
    }
    Ok(())
}

/// Opens the store a URL names and migrates it (idempotent; concurrent migrators are safe).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = open_unmigrated(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store a URL names without touching its schema.
pub async fn open_unmigrated(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(options) => Arc::new(SqliteStore::open(options).await?),
        StoreUrl::Postgres(options) => Arc::new(PostgresStore::connect(*options).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::Synchronous;

    #[test]
    fn sqlite_urls_parse() {
        let StoreUrl::Sqlite(o) = StoreUrl::parse("sqlite://data/fleet.db").unwrap() else {
            panic!("not sqlite")
        };
        assert_eq!(
            o.path.as_deref(),
            Some(std::path::Path::new("data/fleet.db"))
        );
        assert_eq!(o.synchronous, Synchronous::Normal);

        let StoreUrl::Sqlite(o) =
            StoreUrl::parse("sqlite:///var/lib/fleet.db?synchronous=full&readers=2").unwrap()
        else {
            panic!("not sqlite")
        };
        assert_eq!(
            o.path.as_deref(),
            Some(std::path::Path::new("/var/lib/fleet.db"))
        );
        assert_eq!(o.synchronous, Synchronous::Full);
        assert_eq!(o.readers, 2);

        assert!(matches!(
            StoreUrl::parse("sqlite::memory:").unwrap(),
            StoreUrl::Sqlite(o) if o == SqliteOptions::memory()
        ));
    }

    #[test]
    fn bad_urls_name_the_bad_part() {
        let err = StoreUrl::parse("sqlite://x.db?synchronous=sometimes").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = StoreUrl::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(err.to_string().contains("mysql://u:***@h/db"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let err = StoreUrl::parse("sqlite://").unwrap_err();
        assert!(err.to_string().contains("no database file"), "{err}");
    }
}
