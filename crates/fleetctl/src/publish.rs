//! `fleetctl publish`: sends envelopes to a Service Bus topic through the production adapter,
//! with the envelope's Service Bus properties (`MessageId` = eventId, `Subject` = eventType, ...).
//!
//! Exit codes: 0 every envelope sent; 1 some input was invalid (its line is reported, and it is
//! not sent unless `--raw`) or sending failed; 2 usage (no connection string, unreadable file);
//! 64 a bad connection string (never echoed).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fleet_bus::{Bus, Message, PropertyValue};
use fleet_envelope::Envelope;
use fleet_envelope::servicebus::{self, to_message_properties};
use fleet_servicebus::{ENV_CONNECTION, ServiceBusBus};

/// `fleetctl publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Service Bus connection string (`UseDevelopmentEmulator=true` for a local emulator).
    #[arg(long, value_name = "CS", env = ENV_CONNECTION, hide_env_values = true)]
    connection: Option<String>,
    /// Destination topic.
    #[arg(long, default_value = "fleet-events")]
    topic: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Send invalid lines too, as raw bodies without envelope properties.
    #[arg(long)]
    raw: bool,
    /// Envelopes as JSON lines, or one JSON document; `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    input: PathBuf,
}

/// One input item: its line, and the envelope or why it is not one.
#[derive(Debug)]
struct Item {
    line: usize,
    body: Vec<u8>,
    envelope: Result<Envelope, String>,
}

/// Splits the input into items: one JSON document (an object, or an array of objects) when the
/// whole text parses as one, else one item per non-blank line.
fn items(text: &str) -> Vec<Item> {
    let item = |line: usize, body: Vec<u8>| {
        let envelope = Envelope::decode(&body).map_err(|e| e.to_string());
        Item {
            line,
            body,
            envelope,
        }
    };
    let trimmed = text.trim_start();
    let first_line = text.len() - trimmed.len();
    let first_line = text[..first_line].matches('\n').count() + 1;
    if text.lines().filter(|l| !l.trim().is_empty()).count() > 1
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
    {
        return match value {
            serde_json::Value::Array(values) => values
                .into_iter()
                .map(|v| item(first_line, v.to_string().into_bytes()))
                .collect(),
            other => vec![item(first_line, other.to_string().into_bytes())],
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| item(n + 1, l.trim().as_bytes().to_vec()))
        .collect()
}

/// The bus message of a valid envelope: body plus the standard Service Bus mapping.
fn envelope_message(envelope: &Envelope) -> Message {
    let props = to_message_properties(envelope);
    let mut msg = Message::new(envelope.encode());
    msg.message_id = Some(props.message_id);
    msg.correlation_id = Some(props.correlation_id);
    msg.subject = Some(props.subject);
    msg.content_type = Some(props.content_type);
    for (k, v) in props.application_properties {
        let v = match v {
            servicebus::PropertyValue::String(s) => PropertyValue::String(s),
            servicebus::PropertyValue::Int(i) => PropertyValue::Int(i),
        };
        msg.application_properties.insert(k, v);
    }
    msg
}

fn read_input(input: &PathBuf) -> std::io::Result<String> {
    if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(input)
    }
}

/// Runs `fleetctl publish`.
pub fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let Some(connection) = args.connection.filter(|c| !c.trim().is_empty()) else {
        eprintln!("fleetctl publish: pass --connection or set {ENV_CONNECTION}");
        return Ok(ExitCode::from(2));
    };
    let bus = match ServiceBusBus::from_connection_string(&connection) {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!(
                "fleetctl publish: {ENV_CONNECTION} / --connection: {}",
                e.message()
            );
            return Ok(ExitCode::from(64));
        }
    };
    let text = match read_input(&args.input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fleetctl publish: reading {}: {e}", args.input.display());
            return Ok(ExitCode::from(2));
        }
    };
    let items = items(&text);
    let rt = tokio::runtime::Runtime::new()?;
    let outcome = rt.block_on(send_all(&bus, &args.topic, &items, args.raw));
    let invalid: Vec<(usize, &str)> = items
        .iter()
        .filter_map(|i| i.envelope.as_ref().err().map(|e| (i.line, e.as_str())))
        .collect();
    let (sent, failure) = match outcome {
        Ok(n) => (n, None),
        Err((n, e)) => (n, Some(e)),
    };
    if args.json {
        let report = serde_json::json!({
            "topic": args.topic,
            "sent": sent,
            "invalid": invalid.iter().map(|(line, error)| serde_json::json!({"line": line, "error": error})).collect::<Vec<_>>(),
            "error": failure,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (line, error) in &invalid {
            eprintln!("line {line}: {error}");
        }
        if let Some(e) = &failure {
            eprintln!("fleetctl publish: {e}");
        }
        println!("sent {sent} message(s) to {}", args.topic);
    }
    Ok(if invalid.is_empty() && failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sends the valid items (and with `raw` the invalid ones as they are); the count sent, or the
/// count sent before a failure and the failure.
async fn send_all(
    bus: &ServiceBusBus,
    topic: &str,
    items: &[Item],
    raw: bool,
) -> Result<usize, (usize, String)> {
    let sender = bus
        .sender(topic)
        .await
        .map_err(|e| (0, format!("opening a sender to {topic}: {e}")))?;
    let mut sent = 0;
    for item in items {
        let msg = match &item.envelope {
            Ok(envelope) => envelope_message(envelope),
            Err(_) if raw => Message::new(item.body.clone()),
            Err(_) => continue,
        };
        sender
            .send(msg)
            .await
            .map_err(|e| (sent, format!("sending line {}: {e}", item.line)))?;
        sent += 1;
    }
    let _ = bus.close().await;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use fleet_bus::{EntityPath, ReceiveOptions};
    use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, SystemClock, Topology};
    use fleet_envelope::EventType;
    use fleet_envelope::examples::sample_envelope;

    use super::*;

    fn line(e: &Envelope) -> String {
        String::from_utf8(e.encode()).unwrap()
    }

    #[test]
    fn json_lines_report_their_line_numbers() {
        let a = sample_envelope(EventType::ConfigurationPublished);
        let text = format!("{}\n\nnot json\n{}\n", line(&a), line(&a));
        let items = items(&text);
        assert_eq!(items.len(), 3);
        assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 3, 4]);
        assert!(items[0].envelope.is_ok());
        assert!(items[1].envelope.is_err());
    }

    #[test]
    fn one_pretty_printed_document_is_one_envelope() {
        let a = sample_envelope(EventType::ConfigurationPublished);
        let value: serde_json::Value = serde_json::from_slice(&a.encode()).unwrap();
        let text = serde_json::to_string_pretty(&value).unwrap();
        let items = items(&text);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].envelope.as_ref().unwrap().event_id, a.event_id);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn valid_envelopes_arrive_with_their_properties_and_invalid_ones_stay_home() {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::open(
            Topology::from_json(crate::emulator_cmd::DEFAULT_CONFIG).unwrap(),
            dir.path(),
            Arc::new(SystemClock),
            EmulatorOptions::default(),
        )
        .await
        .unwrap();
        let backend = Arc::new(InProcessBus::new(emulator));
        let listener = tokio::net::TcpListener::bind(("127.0.0.152", 5672))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served: Arc<dyn Bus> = backend.clone();
        let server = tokio::spawn(fleet_amqp::serve(
            listener,
            served,
            fleet_amqp::ListenerOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let bus = ServiceBusBus::from_connection_string(
            "Endpoint=sb://127.0.0.152/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        let e = sample_envelope(EventType::ConfigurationPublished);
        let text = format!("{}\n{{\"eventId\": 1}}\n", line(&e));
        let sent = send_all(&bus, "fleet-events", &items(&text), false)
            .await
            .unwrap();
        assert_eq!(sent, 1, "the invalid line is not sent");
        let receiver = backend
            .receiver(
                &EntityPath::subscription("fleet-events", "configuration-sync"),
                ReceiveOptions::receive_and_delete(),
            )
            .await
            .unwrap();
        let got = receiver.receive(10, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0].message;
        assert_eq!(m.message_id, Some(e.event_id.to_string()));
        assert_eq!(m.subject.as_deref(), Some("ConfigurationPublished"));
        assert_eq!(Envelope::decode(&m.body).unwrap(), e);
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    }
}
