//! The official Python SDK (`azure-servicebus` 7.x) against the listener over the real engine.
//!
//! Requires `python3` with `azure-servicebus` installed (`pip install azure-servicebus`); the
//! test fails, naming what is missing, when they are not there.

mod support;

use std::process::Stdio;
use std::time::Duration;

use fleet_amqp::{ListenerOptions, SasKey};
use support::Harness;
use tokio::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/servicebus_client.py"
);

async fn require_python_sdk() {
    let probe = Command::new("python3")
        .args(["-c", "import azure.servicebus as s; print(s.__version__)"])
        .output()
        .await;
    match probe {
        Err(err) => panic!("python3 is required for this test and could not be started: {err}"),
        Ok(out) if !out.status.success() => panic!(
            "the Python package azure-servicebus (7.x) is required for this test \
             (pip install azure-servicebus): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(out) => {
            let version = String::from_utf8_lossy(&out.stdout);
            assert!(
                version.starts_with("7."),
                "azure-servicebus 7.x is required, found {version}"
            );
        }
    }
}

#[tokio::test]
async fn the_python_sdk_sends_receives_settles_renews_peeks_and_schedules() {
    require_python_sdk().await;
    // The connection string signs with key "k" = "v": require it, so Python's SAS tokens are
    // validated too.
    let options = ListenerOptions {
        keys: vec![SasKey::new("k", "v")],
        ..ListenerOptions::default()
    };
    let harness = Harness::start("127.0.0.30", options).await;
    let child = Command::new("python3")
        .arg(SCRIPT)
        .arg(harness.connection_string())
        .arg("q1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the Python client finishes within 120 s")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "OK"),
        "the Python client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    harness.stop().await;
}
