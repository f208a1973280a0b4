//! `init` installs the process-wide subscriber exactly once (its own test binary, since the
//! global default cannot be uninstalled).

use fleet_telemetry::{
    MessageSpanInfo, TelemetryConfig, TelemetryErrorKind, current_traceparent, init, message_span,
};

#[test]
fn init_installs_once_and_traces_messages() {
    let guard = init(TelemetryConfig::new("global-test")).expect("first init succeeds");
    assert!(!guard.is_exporting());

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let emitted = message_span(&MessageSpanInfo {
        worker: "w",
        destination: "t",
        traceparent: Some(traceparent),
        ..MessageSpanInfo::default()
    })
    .in_scope(current_traceparent)
    .expect("a traceparent under the global subscriber");
    assert!(
        emitted.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{emitted}"
    );
    assert!(
        !emitted.contains("00f067aa0ba902b7"),
        "the parent id must be replaced: {emitted}"
    );
    assert_eq!(current_traceparent(), None, "no span outside the message");

    let err = init(TelemetryConfig::new("again")).expect_err("second init fails");
    assert_eq!(err.kind(), TelemetryErrorKind::AlreadyInitialized);
    guard.shutdown().expect("shutdown without an exporter");
}
