//! Classifies azservicebus failures into [`BusErrorKind`]s.
//!
//! azservicebus reports everything as an `azure_core::Error` wrapping its own (mostly private)
//! error enums, which carry the AMQP error condition Service Bus sent, a management status code,
//! or a transport failure. The structure is only reachable through `Debug`, so classification
//! looks for the Service Bus condition names and status codes in it (conditions are stable
//! protocol names). The message handed on is the error's `Display`, which never includes
//! credentials.

use fleet_bus::{BusError, BusErrorKind};

/// Which kind of call failed: a management status 404 means "no such message" there, but
/// "no such entity" when attaching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Connecting or attaching a link.
    Attach,
    /// Sending on a link.
    Send,
    /// Receiving or settling on a link.
    Receive,
    /// A `$management` request (schedule, cancel, peek, deferred, renew).
    Management,
}

/// Maps a client error to a [`BusError`] whose message starts with `what`.
pub(crate) fn classify(err: azure_core_sb::Error, op: Op, what: &str) -> BusError {
    let debug = format!("{err:?}");
    let kind = kind_of(&debug, op);
    BusError::new(kind, format!("{what}: {err}")).with_source(err)
}

/// The kind a client error's `Debug` text indicates.
pub(crate) fn kind_of(debug: &str, op: Op) -> BusErrorKind {
    let has = |needle: &str| debug.contains(needle);
    // Conditions first: they are the most specific signal.
    if has("lock-lost") || has("MessageLockLost") || has("StatusCode(410)") {
        return BusErrorKind::MessageLockLost;
    }
    if has("message-not-found") || has("MessageNotFound") {
        return BusErrorKind::MessageNotFound;
    }
    if has("message-size-exceeded") || has("BatchFull") || has("StatusCode(413)") {
        return BusErrorKind::MessageSizeExceeded;
    }
    if has("quota-exceeded") {
        return BusErrorKind::QuotaExceeded;
    }
    if has("server-busy") || has("ServiceBusy") || has("StatusCode(503)") {
        return BusErrorKind::ServiceBusy;
    }
    if has("unauthorized-access")
        || has("UnauthorizedAccess")
        || has("StatusCode(401)")
        || has("Credential")
    {
        return BusErrorKind::Unauthorized;
    }
    if has("StatusCode(403)") {
        return if op == Op::Management {
            BusErrorKind::QuotaExceeded
        } else {
            BusErrorKind::Unauthorized
        };
    }
    if has("amqp:not-found") || has("entity-not-found") || has("NotFound") {
        return BusErrorKind::EntityNotFound;
    }
    if has("StatusCode(404)") {
        return if op == Op::Management {
            BusErrorKind::MessageNotFound
        } else {
            BusErrorKind::EntityNotFound
        };
    }
    if has("argument-error") || has("argument-out-of-range") || has("StatusCode(400)") {
        return BusErrorKind::InvalidArgument;
    }
    if has("com.microsoft:timeout") || has("Elapsed") || has("StatusCode(408)") {
        return BusErrorKind::Timeout;
    }
    if is_connection(debug) {
        return BusErrorKind::Connection;
    }
    BusErrorKind::Other
}

/// Whether the text describes a broken transport, session or link (worth reconnecting).
fn is_connection(debug: &str) -> bool {
    const SIGNS: &[&str] = &[
        "IllegalSessionState",
        "IllegalConnectionState",
        "IllegalState",
        "RemoteDetached",
        "DetachedByRemote",
        "RemoteClosed",
        "ClosedByRemote",
        "ConnectionError",
        "connection:forced",
        "Io(",
        "ConnectionRefused",
        "ConnectionReset",
        "BrokenPipe",
        "UnexpectedEof",
        "disposed",
        "Disposed",
        "TransportError",
        "Open(",
        "Begin(",
        "Detach",
        "Transport",
    ];
    SIGNS.iter().any(|s| debug.contains(s))
}

/// Whether an error means the client, session or link is unusable and must be re-created.
pub(crate) fn needs_reconnect(err: &BusError) -> bool {
    matches!(err.kind(), BusErrorKind::Connection | BusErrorKind::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_bus_conditions_map_to_their_kinds() {
        for (text, op, kind) in [
            (
                r#"Rejected(Rejected { error: Some(Error { condition: Custom(Symbol("com.microsoft:message-size-exceeded")) }) })"#,
                Op::Send,
                BusErrorKind::MessageSizeExceeded,
            ),
            (
                r#"Custom(Symbol("com.microsoft:message-lock-lost"))"#,
                Op::Receive,
                BusErrorKind::MessageLockLost,
            ),
            (
                r#"Status(StatusError { code: StatusCode(404), description: Some("no") })"#,
                Op::Management,
                BusErrorKind::MessageNotFound,
            ),
            (
                r#"Status(StatusError { code: StatusCode(401), description: None })"#,
                Op::Attach,
                BusErrorKind::Unauthorized,
            ),
            (
                r#"RemoteDetachedWithError(Error { condition: AmqpError(NotFound) })"#,
                Op::Attach,
                BusErrorKind::EntityNotFound,
            ),
            (
                r#"Custom(Symbol("com.microsoft:server-busy"))"#,
                Op::Send,
                BusErrorKind::ServiceBusy,
            ),
            (
                r#"Custom(Symbol("com.microsoft:quota-exceeded"))"#,
                Op::Send,
                BusErrorKind::QuotaExceeded,
            ),
            ("Elapsed(())", Op::Receive, BusErrorKind::Timeout),
            (
                "Open(Io(Os { code: 111, kind: ConnectionRefused }))",
                Op::Attach,
                BusErrorKind::Connection,
            ),
            (
                "LinkStateError(IllegalSessionState)",
                Op::Send,
                BusErrorKind::Connection,
            ),
            ("something new", Op::Send, BusErrorKind::Other),
        ] {
            assert_eq!(kind_of(text, op), kind, "{text}");
        }
    }
}
