//! Control-plane failures as handler errors: the kind decides retry or dead-letter.

use fleet_cloud::{CloudError, CloudErrorKind};
use fleet_runtime::HandlerError;

/// Maps a port failure to the handler error kind the runtime acts on, prefixing `what` (e.g.
/// `applying svc-1`) to the message.
///
/// Transient failures and conflicts (an operation already in flight) are retried with backoff;
/// throttling waits at least the control plane's `Retry-After`; everything else (invalid,
/// unauthorized, not found, permanent) cannot improve by retrying and is dead-lettered.
pub fn cloud_error(what: &str, e: CloudError) -> HandlerError {
    let message = format!("{what}: {e}");
    let err = match e.kind() {
        CloudErrorKind::Transient | CloudErrorKind::Conflict => HandlerError::transient(message),
        CloudErrorKind::Throttled { retry_after } => HandlerError::throttled(retry_after, message),
        CloudErrorKind::NotFound
        | CloudErrorKind::Invalid
        | CloudErrorKind::Unauthorized
        | CloudErrorKind::Permanent => HandlerError::permanent(message),
    };
    err.with_source(e)
}

/// True when `e` says the resource does not exist.
pub fn is_not_found(e: &CloudError) -> bool {
    e.kind() == CloudErrorKind::NotFound
}

/// A payload that does not read as the handler's type: retrying cannot fix it.
pub fn bad_payload(e: fleet_envelope::EnvelopeError) -> HandlerError {
    HandlerError::permanent(format!("payload: {e}"))
}

/// The handler received a payload of another type than it registered for.
pub fn unexpected(event_type: fleet_envelope::EventType) -> HandlerError {
    HandlerError::permanent(format!("unexpected payload type {}", event_type.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_runtime::HandlerErrorKind;
    use std::time::Duration;

    #[test]
    fn kinds_map_to_dispositions() {
        let t = cloud_error("x", CloudError::throttled(Duration::from_secs(9), "429"));
        assert_eq!(
            t.kind(),
            HandlerErrorKind::Throttled {
                retry_after: Duration::from_secs(9)
            }
        );
        assert_eq!(
            cloud_error("x", CloudError::conflict("busy")).kind(),
            HandlerErrorKind::Transient
        );
        assert_eq!(
            cloud_error("x", CloudError::invalid("bad")).kind(),
            HandlerErrorKind::Permanent
        );
        assert!(
            cloud_error("applying svc-1", CloudError::transient("503"))
                .message()
                .starts_with("applying svc-1: ")
        );
    }
}
