//! `fleetctl up`, `inspect` and `dlq list` run as processes against one data directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn fleetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run fleetctl: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&o.stdout)))
}

fn dir_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn up_runs_the_demo_to_idle_and_inspect_reads_what_it_left() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = dir_arg(&tmp.path().join("fleet"));
    let up = fleetctl(&[
        "up",
        "--scenario",
        "demo",
        "--until-idle",
        "--json",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.60:5672",
    ]);
    assert!(
        up.status.success(),
        "exit {:?}\n{}",
        up.status,
        text(&up.stderr)
    );
    // Without --transport the workers go over the wire, through the production client.
    assert!(
        text(&up.stderr).contains("workers over AMQP via 127.0.0.60:5672"),
        "{}",
        text(&up.stderr)
    );
    let summary = json_of(&up);
    assert_eq!(summary["events"]["RuntimeDeploymentRequested"], 1);
    assert!(summary["events"]["RuntimeDeploymentCompleted"].as_u64() >= Some(3));
    assert!(summary["events"]["HealthCheckCompleted"].as_u64() >= Some(9));
    assert_eq!(summary["deadLetters"], Value::Array(Vec::new()));
    assert_eq!(
        summary["records"]["services"].as_array().map(Vec::len),
        Some(9)
    );
    // The flow went to stderr, one line per event, so stdout stayed one JSON document.
    let flow = text(&up.stderr);
    assert!(flow.contains("accelerated clock"), "{flow}");
    assert!(
        flow.lines().any(|l| l.contains("runtime-deployment")
            && l.contains("RuntimeDeploymentRequested")
            && l.contains("handled")),
        "{flow}"
    );

    let services = fleetctl(&["inspect", "services", "--json", "--data-dir", &data]);
    assert!(services.status.success(), "{}", text(&services.stderr));
    let services = json_of(&services);
    let list = services.as_array().expect("an array");
    assert_eq!(list.len(), 9);
    assert!(
        list.iter()
            .any(|s| s["record"]["id"] == "payments" && s["record"]["status"] == "running")
    );

    let table = fleetctl(&["inspect", "deployments", "--data-dir", &data]);
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(table.starts_with("DEPLOYMENT"), "{table}");
    assert!(
        table.contains("demo-payments-1") && table.contains("Succeeded"),
        "{table}"
    );

    let dlq = fleetctl(&["dlq", "list", "--json", "--data-dir", &data]);
    assert!(dlq.status.success(), "{}", text(&dlq.stderr));
    assert_eq!(json_of(&dlq), Value::Array(Vec::new()));

    // The demo starts from scratch: an existing fleet is not silently overwritten.
    let again = fleetctl(&[
        "up",
        "--scenario",
        "demo",
        "--until-idle",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.60:5672",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--reset"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn readers_name_a_missing_data_directory_and_exit_1() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let missing = dir_arg(&tmp.path().join("no-fleet-here"));
    for args in [
        vec!["inspect", "services", "--data-dir", &missing],
        vec!["dlq", "list", "--json", "--data-dir", &missing],
    ] {
        let out = fleetctl(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&missing) && err.contains("does not exist"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn an_unknown_scenario_is_a_usage_error_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = dir_arg(tmp.path());
    let out = fleetctl(&[
        "up",
        "--scenario",
        "chaos",
        "--until-idle",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.61:5672",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("\"chaos\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_running_fleet_can_be_inspected_and_ctrl_c_drains_it_with_exit_0() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let tmp = tempfile::tempdir().expect("temp dir");
    let data = dir_arg(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args([
            "up",
            "--scenario",
            "demo",
            "--data-dir",
            &data,
            "--listen",
            "127.0.0.62:5672",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fleetctl: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait for the fleet to work, read it while it runs, then interrupt it as Ctrl-C would.
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("fleetctl up never started: {seen:?}"));
        // The first flow line: seeded, started, and the demo's deploy command is out.
        let started = line.contains("RuntimeDeploymentRequested") && line.contains("published");
        seen.push(line);
        if started {
            break;
        }
    }
    // A running fleet can be read concurrently (WAL databases, the emulator file read-only).
    let services = fleetctl(&["inspect", "services", "--json", "--data-dir", &data]);
    assert!(services.status.success(), "{}", text(&services.stderr));
    assert!(json_of(&services).as_array().is_some_and(|a| a.len() >= 8));
    let dlq = fleetctl(&["dlq", "list", "--json", "--data-dir", &data]);
    assert!(dlq.status.success(), "{}", text(&dlq.stderr));
    assert!(json_of(&dlq).is_array());
    // A second fleet on the same directory is refused while this one runs.
    let second = fleetctl(&[
        "up",
        "--until-idle",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.63:5672",
    ]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("in use"),
        "{}",
        text(&second.stderr)
    );

    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "a Ctrl-C stop is a clean exit");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.starts_with("Summary")), "{rest:?}");
}

#[test]
fn a_taken_listen_address_is_refused_with_a_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.64:5672").expect("bind the address first");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = dir_arg(tmp.path());
    let out = fleetctl(&[
        "up",
        "--until-idle",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.64:5672",
    ]);
    drop(taken);
    assert_eq!(out.status.code(), Some(70), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("127.0.0.64:5672") && err.contains("--transport inprocess"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
