//! The HTTP prober against a real loopback server: healthy, unhealthy, timeout, retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use fleet_cloud::{HealthProber, ProbeConfig, ProbeStatus};

struct Server {
    base: String,
    flaky_calls: Arc<AtomicU32>,
    release: Arc<tokio::sync::Notify>,
}

async fn server() -> Server {
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let calls = flaky_calls.clone();
    let hold = release.clone();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/flaky",
            get(move || {
                let calls = calls.clone();
                async move {
                    // Fails twice, then recovers: the third attempt must succeed.
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .route(
            "/hang",
            get(move || {
                let hold = hold.clone();
                async move {
                    hold.notified().await;
                    "late"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base,
        flaky_calls,
        release,
    }
}

fn prober(timeout_ms: u64) -> HealthProber {
    HealthProber::new(ProbeConfig {
        timeout: Duration::from_millis(timeout_ms),
        attempts: 3,
        retry_delay: Duration::from_millis(10),
    })
    .unwrap()
}

#[tokio::test]
async fn healthy_endpoint_succeeds_on_the_first_attempt() {
    let s = server().await;
    let r = prober(2000).probe(&format!("{}/ok", s.base)).await;
    assert_eq!(
        (r.status, r.http_status, r.attempts),
        (ProbeStatus::Healthy, Some(200), 1)
    );
    assert!(r.error.is_none());
}

#[tokio::test]
async fn failing_endpoint_is_unhealthy_after_three_attempts() {
    let s = server().await;
    let r = prober(2000).probe(&format!("{}/down", s.base)).await;
    assert_eq!(
        (r.status, r.http_status, r.attempts),
        (ProbeStatus::Unhealthy, Some(503), 3)
    );
    assert_eq!(r.error.as_deref(), Some("HTTP 503"));
}

#[tokio::test]
async fn flaky_endpoint_recovers_within_the_retries() {
    let s = server().await;
    let r = prober(2000).probe(&format!("{}/flaky", s.base)).await;
    assert_eq!((r.status, r.attempts), (ProbeStatus::Healthy, 3));
    assert_eq!(s.flaky_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn hanging_endpoint_times_out() {
    let s = server().await;
    let r = prober(100).probe(&format!("{}/hang", s.base)).await;
    s.release.notify_waiters();
    assert_eq!((r.status, r.attempts), (ProbeStatus::TimedOut, 3));
    assert!(r.latency >= Duration::from_millis(100));
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = prober(1000).probe(&format!("http://{addr}/live")).await;
    assert_eq!((r.status, r.attempts), (ProbeStatus::Unreachable, 3));
    assert!(r.error.is_some());
}

#[tokio::test]
async fn probe_many_keeps_input_order() {
    let s = server().await;
    let urls: Vec<String> = (0..20)
        .map(|i| format!("{}/{}", s.base, if i % 2 == 0 { "ok" } else { "down" }))
        .collect();
    let results = prober(2000).probe_many(&urls, 4).await;
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.url, urls[i]);
        assert_eq!(r.is_healthy(), i % 2 == 0);
    }
}

#[test]
fn zero_attempts_is_refused() {
    let err = HealthProber::new(ProbeConfig {
        attempts: 0,
        ..ProbeConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("attempts"));
}
