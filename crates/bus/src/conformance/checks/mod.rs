//! The checks. Each starts from empty entities and leaves them empty.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CheckResult, QUIET_WAIT};
use crate::{
    Bus, BusError, BusErrorKind, BusReceiver, EntityPath, Message, PropertyValue, ReceiveOptions,
    ReceivedMessage,
};

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

pub(super) fn ctx(what: &'static str) -> impl FnOnce(BusError) -> String {
    move |e| format!("{what}: {e}")
}

pub(super) fn expect_kind<T>(
    result: Result<T, BusError>,
    kind: BusErrorKind,
    what: &str,
) -> Result<BusError, String> {
    match result {
        Ok(_) => Err(format!("{what}: succeeded, expected {kind}")),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(format!("{what}: expected {kind}, got {e}")),
    }
}

pub(super) fn id() -> String {
    Uuid::new_v4().to_string()
}

pub(super) async fn receiver(
    bus: &dyn Bus,
    path: EntityPath,
    options: ReceiveOptions,
) -> Result<Box<dyn BusReceiver>, String> {
    bus.receiver(&path, options)
        .await
        .map_err(|e| format!("receiver {path}: {e}"))
}

pub(super) async fn one(
    r: &dyn BusReceiver,
    wait: Duration,
    what: &str,
) -> Result<ReceivedMessage, String> {
    let mut got = r
        .receive(1, wait)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        got.len() == 1,
        "{what}: expected one message, got {}",
        got.len()
    );
    Ok(got.remove(0))
}

pub(super) async fn nothing(r: &dyn BusReceiver, what: &str) -> CheckResult {
    let got = r
        .receive(10, QUIET_WAIT)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        got.is_empty(),
        "{what}: expected nothing, got sequence numbers {:?}",
        got.iter().map(|m| m.sequence_number).collect::<Vec<_>>()
    );
    Ok(())
}

pub(super) async fn send(bus: &dyn Bus, entity: &str, msg: Message) -> CheckResult {
    let sender = bus
        .sender(entity)
        .await
        .map_err(|e| format!("sender {entity}: {e}"))?;
    sender
        .send(msg)
        .await
        .map_err(|e| format!("send to {entity}: {e}"))
}

pub(super) fn full_message() -> Message {
    let at = DateTime::<Utc>::from_timestamp_millis(1_767_225_600_123).unwrap_or_default();
    Message {
        body: bytes::Bytes::from_static(b"{\"hello\":\"world\"}"),
        message_id: Some(id()),
        correlation_id: Some("corr-1".into()),
        subject: Some("RuntimeDeploymentRequested".into()),
        content_type: Some("application/json".into()),
        ..Message::default()
    }
    .with_property("tenantId", "tenant-a")
    .with_property("eventVersion", 2i64)
    .with_property("ratio", PropertyValue::Double(0.25))
    .with_property("flag", true)
    .with_property("at", PropertyValue::Timestamp(at))
    .with_property("uuid", PropertyValue::Uuid(Uuid::nil()))
}

mod delivery;
mod settlement;

pub(super) use delivery::*;
pub(super) use settlement::*;
