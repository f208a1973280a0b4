//! The real HTTP health endpoints of simulated services, on one loopback server:
//! `/svc/{tenant}/{environment}/{service}/live`, `…/ready`, `…/deps` and `…/deps/{name}`.
//! Their answers follow the simulated state at the clock's current time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::{ServiceRecord, key};
use crate::world::Inner;

/// Health faults injected into one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthFaults {
    /// Liveness (and so readiness) answers 503.
    pub liveness_down: bool,
    /// Readiness answers 503 while liveness stays up.
    pub readiness_down: bool,
    /// These dependencies answer 503 (and so does the aggregate `deps`).
    pub dependencies_down: BTreeSet<String>,
    /// Every endpoint of the service waits this long before answering (probe timeouts).
    pub delay_ms: u64,
    /// The next this-many probe requests (any endpoint of the service) answer 503, then the
    /// service answers normally again: a flapping endpoint, for retry tests.
    pub fail_next: u32,
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/svc/{tenant}/{environment}/{service}/{probe}", get(probe))
        .route(
            "/svc/{tenant}/{environment}/{service}/deps/{dependency}",
            get(dependency),
        )
        .with_state(inner)
}

type Answer = (StatusCode, serde_json::Value);

fn unavailable(reason: impl Into<String>) -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "reason": reason.into()}),
    )
}

fn ok(detail: serde_json::Value) -> Answer {
    (StatusCode::OK, json!({"status": "ok", "detail": detail}))
}

fn not_found() -> Answer {
    (StatusCode::NOT_FOUND, json!({"status": "notFound"}))
}

fn liveness(s: &ServiceRecord) -> Answer {
    if s.health.liveness_down {
        unavailable("liveness fault injected")
    } else if s.is_broken() {
        unavailable(format!(
            "container crash-looping: image {} exits on start",
            s.image
        ))
    } else if s.replicas == 0 {
        unavailable("no replicas running")
    } else {
        ok(json!({"generation": s.generation}))
    }
}

fn readiness(s: &ServiceRecord, now: chrono::DateTime<chrono::Utc>) -> Answer {
    let live = liveness(s);
    if live.0 != StatusCode::OK {
        return live;
    }
    if let Some(p) = s.converging(now).filter(|p| p.ready_during == 0) {
        return unavailable(format!(
            "rollout converging (generation {}, {:?} until {})",
            s.generation, p.kind, p.completes_at
        ));
    }
    if s.health.readiness_down {
        return unavailable("readiness fault injected");
    }
    ok(json!({"readyReplicas": s.ready_replicas(now)}))
}

fn dependencies(s: &ServiceRecord) -> Answer {
    let down: Vec<_> = s
        .dependencies
        .iter()
        .filter(|d| s.health.dependencies_down.contains(*d))
        .collect();
    if down.is_empty() {
        ok(json!({"dependencies": s.dependencies}))
    } else {
        unavailable(format!("dependencies down: {down:?}"))
    }
}

async fn answer(
    inner: &Inner,
    tenant: &str,
    env: &str,
    service: &str,
    pick: impl FnOnce(&ServiceRecord, chrono::DateTime<chrono::Utc>) -> Answer,
) -> Response {
    let now = inner.now();
    let (answer, delay) = {
        let mut state = match inner.lock() {
            Ok(state) => state,
            Err(e) => {
                let body = json!({"status": "error", "reason": e.to_string()});
                return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
            }
        };
        match state
            .services
            .get_mut(&key(tenant, env, service))
            .filter(|s| !s.is_deleted(now))
        {
            Some(s) if s.health.fail_next > 0 => {
                s.health.fail_next -= 1;
                (unavailable("transient failure injected"), s.health.delay_ms)
            }
            Some(s) => (pick(s, now), s.health.delay_ms),
            None => (not_found(), 0),
        }
    };
    if delay > 0 {
        // Real time on purpose: the prober's timeout is real time too.
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    (answer.0, axum::Json(answer.1)).into_response()
}

async fn probe(
    State(inner): State<Arc<Inner>>,
    Path((tenant, env, service, probe)): Path<(String, String, String, String)>,
) -> Response {
    match probe.as_str() {
        "live" => answer(&inner, &tenant, &env, &service, |s, _| liveness(s)).await,
        "ready" => answer(&inner, &tenant, &env, &service, readiness).await,
        "deps" => answer(&inner, &tenant, &env, &service, |s, _| dependencies(s)).await,
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"status": "notFound"})),
        )
            .into_response(),
    }
}

async fn dependency(
    State(inner): State<Arc<Inner>>,
    Path((tenant, env, service, dep)): Path<(String, String, String, String)>,
) -> Response {
    answer(&inner, &tenant, &env, &service, |s, _| {
        if !s.dependencies.contains(&dep) {
            not_found()
        } else if s.health.dependencies_down.contains(&dep) {
            unavailable(format!("dependency {dep} down"))
        } else {
            ok(json!({"dependency": dep}))
        }
    })
    .await
}
