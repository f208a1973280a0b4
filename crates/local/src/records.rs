//! The platform records of a local fleet, by kind, as `fleetctl inspect` shows them.

use std::path::Path;
use std::sync::Arc;

use fleet_store::{RecordKind, Store};
use serde::Serialize;
use serde_json::Value;

use crate::error::{LocalError, LocalErrorKind};

/// What `inspect` can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// `RuntimeService` records.
    Services,
    /// `RuntimeDeployment` records.
    Deployments,
    /// `HealthCheckResult` records.
    Health,
    /// `RuntimeDriftFinding` records.
    Findings,
    /// `SecretBinding` records.
    Secrets,
    /// `RuntimeConfiguration` records.
    Configs,
    /// `ScalingPolicy` records.
    Scaling,
}

impl View {
    /// Every view, in display order.
    pub const ALL: [View; 7] = [
        View::Services,
        View::Deployments,
        View::Health,
        View::Findings,
        View::Secrets,
        View::Configs,
        View::Scaling,
    ];

    /// The view's name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            View::Services => "services",
            View::Deployments => "deployments",
            View::Health => "health",
            View::Findings => "findings",
            View::Secrets => "secrets",
            View::Configs => "configs",
            View::Scaling => "scaling",
        }
    }

    /// The record kind it lists.
    pub fn kind(self) -> RecordKind {
        match self {
            View::Services => RecordKind::Service,
            View::Deployments => RecordKind::Deployment,
            View::Health => RecordKind::HealthCheck,
            View::Findings => RecordKind::DriftFinding,
            View::Secrets => RecordKind::SecretBinding,
            View::Configs => RecordKind::Configuration,
            View::Scaling => RecordKind::ScalingPolicy,
        }
    }

    /// Columns of the table view: header and the JSON pointer of the value.
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            View::Services => &[
                ("TENANT", "/tenantId"),
                ("ENVIRONMENT", "/environmentId"),
                ("SERVICE", "/id"),
                ("PLATFORM", "/platform"),
                ("IMAGE", "/image"),
                ("REPLICAS", "/replicas"),
                ("STATUS", "/status"),
            ],
            View::Deployments => &[
                ("DEPLOYMENT", "/id"),
                ("SERVICE", "/serviceId"),
                ("STATE", "/state"),
                ("IMAGE", "/spec/image"),
                ("REPLICAS", "/spec/replicas"),
                ("FAILURE", "/failureReason"),
            ],
            View::Health => &[
                ("SERVICE", "/serviceId"),
                ("STATUS", "/status"),
                ("LIVE", "/liveness/ok"),
                ("READY", "/readiness/ok"),
                ("FAILED WINDOWS", "/consecutiveFailedWindows"),
                ("CHECKED", "/checkedAt"),
            ],
            View::Findings => &[
                ("FINDING", "/id"),
                ("SERVICE", "/serviceId"),
                ("KIND", "/kind"),
                ("STATUS", "/status"),
                ("COUNT", "/count"),
                ("LAST SEEN", "/lastSeen"),
            ],
            View::Secrets => &[
                ("BINDING", "/id"),
                ("SECRET", "/secretName"),
                ("VERSION", "/currentVersion"),
                ("PREVIOUS", "/previousVersion"),
                ("LAST ROTATED", "/lastRotatedAt"),
            ],
            View::Configs => &[
                ("CONFIGURATION", "/id"),
                ("LATEST", "/latestVersion"),
                ("SERVICES", "/serviceIds"),
                ("APPLIED", "/applied"),
            ],
            View::Scaling => &[
                ("POLICY", "/id"),
                ("SERVICE", "/serviceId"),
                ("MIN", "/minReplicas"),
                ("MAX", "/maxReplicas"),
                ("METRIC", "/metric"),
                ("TARGET", "/target"),
                ("LAST ACTION", "/lastAction/toReplicas"),
            ],
        }
    }
}

impl std::str::FromStr for View {
    type Err = LocalError;

    fn from_str(s: &str) -> Result<View, LocalError> {
        View::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = View::ALL.iter().map(|v| v.name()).collect();
                LocalError::new(
                    LocalErrorKind::Input,
                    format!(
                        "unknown record view {s:?} (expected one of {})",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// One record as shown: its store version and document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShownRecord {
    /// Optimistic-concurrency version.
    pub version: i64,
    /// The record document.
    pub record: Value,
}

/// Every record of `view`, ordered by tenant, environment and id.
pub async fn list(store: &Arc<dyn Store>, view: View) -> Result<Vec<ShownRecord>, LocalError> {
    let mut rows = store.list_raw(view.kind(), None, None).await.map_err(|e| {
        LocalError::new(
            LocalErrorKind::DataDir,
            format!("reading {} records", view.name()),
        )
        .with_source(e)
    })?;
    rows.sort_by(|a, b| {
        (&a.tenant_id, &a.environment_id, &a.id).cmp(&(&b.tenant_id, &b.environment_id, &b.id))
    });
    Ok(rows
        .into_iter()
        .map(|r| ShownRecord {
            version: r.version,
            record: r.body,
        })
        .collect())
}

/// Opens the store of a data directory whose store file exists (never creates one).
pub async fn open_store(store_db: &Path) -> Result<Arc<dyn Store>, LocalError> {
    if !store_db.exists() {
        return Err(LocalError::new(
            LocalErrorKind::DataDir,
            format!("store file {} does not exist", store_db.display()),
        ));
    }
    fleet_store::open(&format!("sqlite://{}", store_db.display()))
        .await
        .map_err(|e| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot open the store {}", store_db.display()),
            )
            .with_source(e)
        })
}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<w$}  "));
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// A table cell for a JSON value: strings bare, absent as `-`, lists and maps compact.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v.get("version") {
                Some(ver) => format!("{k}=v{ver}"),
                None => format!("{k}={}", cell(Some(v))),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The table of `view` for `records`.
pub fn render(view: View, records: &[ShownRecord]) -> String {
    let cols = view.columns();
    let headers: Vec<&str> = cols.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            cols.iter()
                .map(|(_, p)| cell(r.record.pointer(p)))
                .collect()
        })
        .collect();
    table(&headers, &rows)
}
