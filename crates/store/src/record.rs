//! Typed records over the one `records` document table.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// The kind of a platform record: the first part of its key in the `records` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// [`crate::records::RuntimeService`].
    Service,
    /// [`crate::records::RuntimeDeployment`].
    Deployment,
    /// [`crate::records::HealthCheckResult`].
    HealthCheck,
    /// [`crate::records::ScalingPolicy`].
    ScalingPolicy,
    /// [`crate::records::RuntimeDriftFinding`].
    DriftFinding,
    /// [`crate::records::RuntimeConfiguration`].
    Configuration,
    /// [`crate::records::SecretBinding`].
    SecretBinding,
}

impl RecordKind {
    /// Every kind, in declaration order.
    pub const ALL: [RecordKind; 7] = [
        Self::Service,
        Self::Deployment,
        Self::HealthCheck,
        Self::ScalingPolicy,
        Self::DriftFinding,
        Self::Configuration,
        Self::SecretBinding,
    ];

    /// The name stored in the `kind` column. Stable: changing one orphans stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Deployment => "deployment",
            Self::HealthCheck => "health_check",
            Self::ScalingPolicy => "scaling_policy",
            Self::DriftFinding => "drift_finding",
            Self::Configuration => "configuration",
            Self::SecretBinding => "secret_binding",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::corrupt(format!("unknown record kind {s:?}")))
    }
}

/// A platform record stored as a JSON document. The key is (`KIND`, tenant, id); the
/// environment is indexed so a worker can list one environment's records.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    /// Which kind of record this type is.
    const KIND: RecordKind;
    /// The record's id, unique within its kind and tenant.
    fn id(&self) -> &str;
    /// The tenant owning the record.
    fn tenant_id(&self) -> &str;
    /// The environment the record belongs to.
    fn environment_id(&self) -> &str;
}

/// A record together with the version that optimistic concurrency compares against.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// Starts at 1 on insert and grows by one on every update.
    pub version: i64,
    /// When the stored row was last written.
    pub updated_at: DateTime<Utc>,
    /// The decoded record.
    pub record: T,
}

/// A stored record before decoding into its Rust type.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The record kind.
    pub kind: RecordKind,
    /// The owning tenant.
    pub tenant_id: String,
    /// The environment, indexed for listing.
    pub environment_id: String,
    /// The record id.
    pub id: String,
    /// The optimistic-concurrency version.
    pub version: i64,
    /// The JSON document.
    pub body: serde_json::Value,
    /// When the row was last written.
    pub updated_at: DateTime<Utc>,
}

impl RawRecord {
    /// Decodes the body as `R`, checking the kind matches.
    pub fn decode<R: Record>(self) -> Result<Versioned<R>, StoreError> {
        if self.kind != R::KIND {
            return Err(StoreError::invalid(format!(
                "record {}/{}/{} is a {}, not a {}",
                self.kind,
                self.tenant_id,
                self.id,
                self.kind,
                R::KIND
            )));
        }
        let record = serde_json::from_value(self.body).map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Corrupt,
                format!(
                    "record {}/{}/{} does not decode",
                    self.kind, self.tenant_id, self.id
                ),
                e,
            )
        })?;
        Ok(Versioned {
            version: self.version,
            updated_at: self.updated_at,
            record,
        })
    }
}

/// Which tenant owns an environment, and where that environment's workloads run. The runtime's
/// tenant guard reads it before any handler runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantBinding {
    /// The environment (primary key).
    pub environment_id: String,
    /// The only tenant allowed to act on the environment.
    pub tenant_id: String,
    /// Platform targets (subscription, resource group, cluster...), opaque to the store.
    pub targets: serde_json::Value,
}
