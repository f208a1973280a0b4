//! The Prometheus/OpenMetrics text exposition of every Fleet metric.

use fleet_telemetry::Metrics;

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[track_caller]
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(has_line(text, line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn counters_render_with_total_suffix_and_labels() {
    let metrics = Metrics::new();
    metrics.processed("runtime-deployment", "RuntimeDeploymentRequested");
    metrics.processed("runtime-deployment", "RuntimeDeploymentRequested");
    metrics.failed(
        "runtime-deployment",
        "RuntimeDeploymentRequested",
        "Transient",
    );
    metrics.retried("runtime-deployment", "RuntimeDeploymentRequested");
    metrics.dead_lettered("runtime-deployment", "MaxRetriesExceeded");
    metrics.dead_lettered("runtime-deployment", "MalformedEnvelope");
    metrics.dead_lettered("runtime-deployment", "MalformedEnvelope");
    metrics.dedupe_hit("runtime-deployment");
    metrics.tenant_rejected("runtime-deployment", "TenantMismatch");
    metrics.abandoned("runtime-deployment");
    metrics.events_emitted("runtime-deployment", "RuntimeDeploymentCompleted", 2);
    metrics.outbox_published("runtime-deployment", 5);
    metrics.outbox_publish_failed("runtime-deployment");
    metrics.timer_fired("runtime-health", "probe");

    let text = metrics.render_prometheus();
    assert_lines(
        &text,
        &[
            "# TYPE fleet_messages_processed counter",
            r#"fleet_messages_processed_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 2"#,
            r#"fleet_messages_failed_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested",kind="Transient"} 1"#,
            r#"fleet_messages_retried_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 1"#,
            r#"fleet_messages_dead_lettered_total{worker="runtime-deployment",reason="MaxRetriesExceeded"} 1"#,
            r#"fleet_messages_dead_lettered_total{worker="runtime-deployment",reason="MalformedEnvelope"} 2"#,
            r#"fleet_dedupe_hits_total{worker="runtime-deployment"} 1"#,
            r#"fleet_tenant_rejections_total{worker="runtime-deployment",reason="TenantMismatch"} 1"#,
            r#"fleet_messages_abandoned_total{worker="runtime-deployment"} 1"#,
            r#"fleet_events_emitted_total{worker="runtime-deployment",event_type="RuntimeDeploymentCompleted"} 2"#,
            r#"fleet_outbox_published_total{worker="runtime-deployment"} 5"#,
            r#"fleet_outbox_publish_failures_total{worker="runtime-deployment"} 1"#,
            r#"fleet_timer_fires_total{worker="runtime-health",timer="probe"} 1"#,
        ],
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn handler_latency_is_a_seconds_histogram() {
    let metrics = Metrics::new();
    metrics.observe_handler_latency("scaling-policy", "HealthCheckCompleted", 0.02);
    metrics.observe_handler_latency("scaling-policy", "HealthCheckCompleted", 3.0);
    let text = metrics.render_prometheus();
    assert_lines(
        &text,
        &[
            "# TYPE fleet_handler_duration_seconds histogram",
            "# UNIT fleet_handler_duration_seconds seconds",
            r#"fleet_handler_duration_seconds_count{worker="scaling-policy",event_type="HealthCheckCompleted"} 2"#,
            r#"fleet_handler_duration_seconds_sum{worker="scaling-policy",event_type="HealthCheckCompleted"} 3.02"#,
            r#"fleet_handler_duration_seconds_bucket{le="0.01",worker="scaling-policy",event_type="HealthCheckCompleted"} 0"#,
            r#"fleet_handler_duration_seconds_bucket{le="0.025",worker="scaling-policy",event_type="HealthCheckCompleted"} 1"#,
            r#"fleet_handler_duration_seconds_bucket{le="2.5",worker="scaling-policy",event_type="HealthCheckCompleted"} 1"#,
            r#"fleet_handler_duration_seconds_bucket{le="5.0",worker="scaling-policy",event_type="HealthCheckCompleted"} 2"#,
            r#"fleet_handler_duration_seconds_bucket{le="+Inf",worker="scaling-policy",event_type="HealthCheckCompleted"} 2"#,
        ],
    );
}

#[test]
fn gauges_move_both_ways() {
    let metrics = Metrics::new();
    metrics.in_flight_add("drift-detection", 3);
    metrics.in_flight_add("drift-detection", -2);
    metrics.set_outbox_pending("drift-detection", 7);
    metrics.set_outbox_pending("drift-detection", 4);
    let text = metrics.render_prometheus();
    assert_lines(
        &text,
        &[
            "# TYPE fleet_messages_in_flight gauge",
            r#"fleet_messages_in_flight{worker="drift-detection"} 1"#,
            r#"fleet_outbox_pending_messages{worker="drift-detection"} 4"#,
        ],
    );
}

#[test]
fn registering_a_worker_exposes_zero_series() {
    let metrics = Metrics::new();
    metrics.register_worker("secret-rotation");
    let text = metrics.render_prometheus();
    assert_lines(
        &text,
        &[
            r#"fleet_dedupe_hits_total{worker="secret-rotation"} 0"#,
            r#"fleet_messages_abandoned_total{worker="secret-rotation"} 0"#,
            r#"fleet_messages_in_flight{worker="secret-rotation"} 0"#,
            r#"fleet_outbox_pending_messages{worker="secret-rotation"} 0"#,
        ],
    );
}

#[test]
fn clones_share_values() {
    let metrics = Metrics::new();
    let clone = metrics.clone();
    clone.dedupe_hit("w");
    metrics.dedupe_hit("w");
    assert!(has_line(
        &metrics.render_prometheus(),
        r#"fleet_dedupe_hits_total{worker="w"} 2"#
    ));
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new();
    metrics.dead_lettered("w", "odd \"reason\"\nhere");
    let text = metrics.render_prometheus();
    assert!(
        has_line(
            &text,
            r#"fleet_messages_dead_lettered_total{worker="w",reason="odd \"reason\"\nhere"} 1"#
        ),
        "{text}"
    );
}
