//! The per-replica HTTP server: `/healthz` (alive), `/readyz` (bus and store reachable and not
//! draining), `/metrics` (Prometheus text from fleet-telemetry).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use fleet_store::Store;
use fleet_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::shared::WorkerStats;

// A readiness probe must answer quickly even when the store hangs.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) worker: Arc<str>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Metrics,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: HttpState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    if s.stats.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
    }
    if !s.stats.is_running() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into());
    }
    if !s.stats.bus_healthy.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "bus unreachable\n".into());
    }
    // An index lookup of an id that never exists: cheap, and proves a round trip.
    match tokio::time::timeout(
        STORE_CHECK_TIMEOUT,
        s.store.inbox_contains(&s.worker, uuid::Uuid::nil()),
    )
    .await
    {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unreachable: {}\n", e.kind().as_str()),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store did not answer in time\n".into(),
        ),
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render_prometheus(),
    )
}
