//! Typed records over the one `records` document table.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
        check_kind::<R>(self.kind, &self.tenant_id, &self.id)?;
        let record = serde_json::from_value(self.body)
            .map_err(|e| undecodable(self.kind, &self.tenant_id, &self.id, e))?;
        Ok(Versioned {
            version: self.version,
            updated_at: self.updated_at,
            record,
        })
    }
}

/// A record's JSON document, held as encoded text.
///
/// Writes carry documents in this form so a typed record is serialized once, straight to the
/// text the backends store, and reads hand it back the same way so [`crate::StoreExt`] decodes
/// it straight into the typed record, with no `serde_json::Value` in between. A `Document` always
/// holds one valid JSON value. Equality compares the text, not the JSON meaning (`{"a":1,"b":2}`
/// and `{"b":2,"a":1}` differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document(String);

impl Document {
    /// Serializes `value` as a document.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    /// Checks that `text` is one JSON value and keeps it as it is.
    pub fn parse(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        let text = text.into();
        let mut de = serde_json::Deserializer::from_str(&text);
        serde::de::IgnoredAny::deserialize(&mut de)?;
        de.end()?;
        Ok(Self(text))
    }

    /// Text read back from a backend, which only ever stores documents. A damaged one fails to
    /// decode later, as `Corrupt`.
    pub(crate) fn stored(text: String) -> Self {
        Self(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document as a JSON value.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Decodes the document as `T`, borrowing strings from it where `T` allows.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Document {
    /// A JSON object written member by member, for hot paths where building a
    /// `serde_json::Value` or running a serializer costs more than the data is worth. Names and
    /// string values are escaped as JSON requires, so the result is always one valid object.
    pub fn object(build: impl FnOnce(&mut ObjectWriter)) -> Self {
        let mut w = ObjectWriter {
            out: String::with_capacity(512),
            first: true,
        };
        w.out.push('{');
        build(&mut w);
        w.out.push('}');
        Self(w.out)
    }
}

/// Writes the members of a [`Document::object`].
#[derive(Debug)]
pub struct ObjectWriter {
    out: String,
    first: bool,
}

impl ObjectWriter {
    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(&mut self.out, name);
        self.out.push(':');
    }

    /// A string member.
    pub fn string(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        push_json_string(&mut self.out, value);
        self
    }

    /// An integer member.
    pub fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.name(name);
        // Writing into a String cannot fail.
        let _ = write!(self.out, "{value}");
        self
    }

    /// A nested object member.
    pub fn object(&mut self, name: &str, build: impl FnOnce(&mut ObjectWriter)) -> &mut Self {
        self.name(name);
        let mut inner = ObjectWriter {
            out: std::mem::take(&mut self.out),
            first: true,
        };
        inner.out.push('{');
        build(&mut inner);
        inner.out.push('}');
        self.out = inner.out;
        self
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // A fold without early exit, which the compiler turns into a vector loop.
    let plain = !s.bytes().fold(false, |hit, b| {
        hit | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

impl From<serde_json::Value> for Document {
    fn from(value: serde_json::Value) -> Self {
        Self(value.to_string())
    }
}

impl From<&serde_json::Value> for Document {
    fn from(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored record with its document still encoded: what typed reads decode from.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRecord {
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
    pub body: Document,
    /// When the row was last written.
    pub updated_at: DateTime<Utc>,
}

impl EncodedRecord {
    /// Decodes the body as `R`, checking the kind matches.
    pub fn decode<R: Record>(&self) -> Result<Versioned<R>, StoreError> {
        check_kind::<R>(self.kind, &self.tenant_id, &self.id)?;
        let record = self
            .body
            .decode()
            .map_err(|e| undecodable(self.kind, &self.tenant_id, &self.id, e))?;
        Ok(Versioned {
            version: self.version,
            updated_at: self.updated_at,
            record,
        })
    }

    /// The record with its body parsed into a JSON value; `Corrupt` when the stored text is not
    /// JSON.
    pub fn into_raw(self) -> Result<RawRecord, StoreError> {
        let body = self
            .body
            .to_value()
            .map_err(|e| undecodable(self.kind, &self.tenant_id, &self.id, e))?;
        Ok(RawRecord {
            kind: self.kind,
            tenant_id: self.tenant_id,
            environment_id: self.environment_id,
            id: self.id,
            version: self.version,
            body,
            updated_at: self.updated_at,
        })
    }
}

impl From<RawRecord> for EncodedRecord {
    fn from(raw: RawRecord) -> Self {
        Self {
            kind: raw.kind,
            tenant_id: raw.tenant_id,
            environment_id: raw.environment_id,
            id: raw.id,
            version: raw.version,
            body: Document::from(raw.body),
            updated_at: raw.updated_at,
        }
    }
}

fn check_kind<R: Record>(kind: RecordKind, tenant_id: &str, id: &str) -> Result<(), StoreError> {
    if kind == R::KIND {
        return Ok(());
    }
    Err(StoreError::invalid(format!(
        "record {kind}/{tenant_id}/{id} is a {kind}, not a {}",
        R::KIND
    )))
}

fn undecodable(kind: RecordKind, tenant_id: &str, id: &str, err: serde_json::Error) -> StoreError {
    StoreError::with_source(
        crate::StoreErrorKind::Corrupt,
        format!("record {kind}/{tenant_id}/{id} does not decode"),
        err,
    )
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
