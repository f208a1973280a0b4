//! From a pipeline verdict and the attempt history to a [`Disposition`], and the broker
//! properties that carry that history across delayed retries and into the dead-letter queue.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_bus::{PropertyValue, ReceivedMessage};
use rand::Rng;

use crate::disposition::{DeadLetterReason, Disposition};
use crate::handler_error::HandlerErrorKind;
use crate::retry::RetryPolicy;

/// Attempts made before this delivery (set on delayed-retry copies).
pub const PROP_ATTEMPT: &str = "fleet-attempt";
/// When the first attempt failed (set on delayed-retry copies and dead-letters).
pub const PROP_FIRST_FAILURE: &str = "fleet-first-failure";
/// When the last attempt failed.
pub const PROP_LAST_FAILURE: &str = "fleet-last-failure";
/// The last error's kind and message.
pub const PROP_LAST_ERROR: &str = "fleet-last-error";
/// Total attempts, on dead-lettered messages.
pub const PROP_ATTEMPTS: &str = "fleet-attempts";
/// The worker that dead-lettered the message.
pub const PROP_DEAD_LETTER_WORKER: &str = "fleet-dead-letter-worker";
/// The subscription a delayed-retry copy is meant for (its subscription has a rule on it).
pub const PROP_RETRY_FOR: &str = "fleet-retry-for";
/// The original broker `Subject` of a delayed-retry copy (the copy's own is [`RETRY_SUBJECT`]).
pub const PROP_ORIGINAL_SUBJECT: &str = "fleet-original-subject";
/// `Subject` of delayed-retry copies, so no other subscription's `Subject` rule matches them.
pub const RETRY_SUBJECT: &str = "fleet.retry";

// Dead-letter descriptions and the last-error property stay short: they are for humans and the
// broker bounds header sizes.
const MAX_TEXT: usize = 1024;

/// What the pipeline concluded, before retry accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled and committed, or already handled (`dedupe`).
    Done {
        /// True when the inbox already had the event.
        dedupe: bool,
    },
    /// The run failed; the kind decides between retry and dead-letter.
    Failed {
        /// Error classification.
        kind: HandlerErrorKind,
        /// Error text (kind + message), never secrets.
        error: String,
    },
    /// Refused before the handler (rules 1–3) or by it (permanent).
    Rejected {
        /// Dead-letter reason.
        reason: DeadLetterReason,
        /// Dead-letter description.
        description: String,
    },
}

/// The attempt history of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1-based number of this attempt.
    pub number: u32,
    /// When the first failure happened, if an earlier attempt failed.
    pub first_failure: Option<DateTime<Utc>>,
}

impl Attempt {
    /// Reads the history from a delivered message's application properties.
    pub fn of(msg: &ReceivedMessage) -> Attempt {
        let props = &msg.message.application_properties;
        let prior = match props.get(PROP_ATTEMPT) {
            Some(PropertyValue::Int(n)) => u32::try_from(*n).unwrap_or(0),
            Some(PropertyValue::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let first_failure = match props.get(PROP_FIRST_FAILURE) {
            Some(PropertyValue::Timestamp(t)) => Some(*t),
            Some(PropertyValue::String(s)) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        };
        Attempt {
            number: prior.saturating_add(1),
            first_failure,
        }
    }
}

/// Decides what happens to a message.
pub fn decide(
    verdict: &Verdict,
    attempt: Attempt,
    policy: &RetryPolicy,
    rng: &mut impl Rng,
) -> Disposition {
    match verdict {
        Verdict::Done { .. } => Disposition::Complete,
        Verdict::Rejected {
            reason,
            description,
        } => Disposition::DeadLetter {
            reason: *reason,
            description: truncate(description),
        },
        Verdict::Failed {
            kind: HandlerErrorKind::Permanent,
            error,
        } => Disposition::DeadLetter {
            reason: DeadLetterReason::HandlerRejected,
            description: truncate(error),
        },
        Verdict::Failed { kind, error } => {
            if policy.may_retry(attempt.number) {
                let after = match kind {
                    HandlerErrorKind::Throttled { retry_after } => Some(*retry_after),
                    _ => None,
                };
                Disposition::Retry(policy.delay(attempt.number, after, rng))
            } else {
                Disposition::DeadLetter {
                    reason: DeadLetterReason::MaxRetriesExceeded,
                    description: truncate(&format!(
                        "gave up after {} attempts; last error: {error}",
                        attempt.number
                    )),
                }
            }
        }
    }
}

/// Properties added to a dead-lettered message (its own properties stay as they are).
pub fn dead_letter_properties(
    worker: &str,
    attempt: Attempt,
    now: DateTime<Utc>,
    last_error: &str,
) -> BTreeMap<String, PropertyValue> {
    let mut p = BTreeMap::new();
    p.insert(
        PROP_DEAD_LETTER_WORKER.to_owned(),
        PropertyValue::String(worker.to_owned()),
    );
    p.insert(
        PROP_ATTEMPTS.to_owned(),
        PropertyValue::Int(i64::from(attempt.number)),
    );
    p.insert(
        PROP_FIRST_FAILURE.to_owned(),
        PropertyValue::Timestamp(attempt.first_failure.unwrap_or(now)),
    );
    p.insert(PROP_LAST_FAILURE.to_owned(), PropertyValue::Timestamp(now));
    p.insert(
        PROP_LAST_ERROR.to_owned(),
        PropertyValue::String(truncate(last_error)),
    );
    p
}

/// The copy scheduled for a delayed retry: same body and properties, plus the history; a
/// `Subject` and `fleet-retry-for` that route it back to this subscription only; a fresh
/// deterministic `MessageId` so broker duplicate detection does not swallow it.
pub fn retry_copy(
    msg: &ReceivedMessage,
    subscription: &str,
    attempt: Attempt,
    now: DateTime<Utc>,
    last_error: &str,
    event_id: Option<uuid::Uuid>,
) -> fleet_bus::Message {
    let mut copy = msg.message.clone();
    let props = &mut copy.application_properties;
    props.insert(
        PROP_ATTEMPT.to_owned(),
        PropertyValue::Int(i64::from(attempt.number)),
    );
    props.insert(
        PROP_FIRST_FAILURE.to_owned(),
        PropertyValue::Timestamp(attempt.first_failure.unwrap_or(now)),
    );
    props.insert(PROP_LAST_FAILURE.to_owned(), PropertyValue::Timestamp(now));
    props.insert(
        PROP_LAST_ERROR.to_owned(),
        PropertyValue::String(truncate(last_error)),
    );
    props.insert(
        PROP_RETRY_FOR.to_owned(),
        PropertyValue::String(subscription.to_owned()),
    );
    if let (false, Some(subject)) = (
        props.contains_key(PROP_ORIGINAL_SUBJECT),
        &msg.message.subject,
    ) {
        props.insert(
            PROP_ORIGINAL_SUBJECT.to_owned(),
            PropertyValue::String(subject.clone()),
        );
    }
    copy.subject = Some(RETRY_SUBJECT.to_owned());
    let base = event_id
        .map(|id| id.to_string())
        .or_else(|| msg.message.message_id.clone())
        .unwrap_or_else(|| msg.sequence_number.to_string());
    let name = format!("{base}/{subscription}/attempt-{}", attempt.number + 1);
    copy.message_id =
        Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string());
    copy.scheduled_enqueue_time = None;
    copy
}

/// Adds `d` to `now`.
pub fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    crate::clock::add(now, d)
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn failed(kind: HandlerErrorKind) -> Verdict {
        Verdict::Failed {
            kind,
            error: "transient: timeout".into(),
        }
    }

    #[test]
    fn transient_failures_retry_until_the_policy_gives_up() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        };
        let mut rng = StdRng::seed_from_u64(3);
        let first = Attempt {
            number: 1,
            first_failure: None,
        };
        assert!(matches!(
            decide(
                &failed(HandlerErrorKind::Transient),
                first,
                &policy,
                &mut rng
            ),
            Disposition::Retry(_)
        ));
        let last = Attempt {
            number: 3,
            first_failure: None,
        };
        match decide(
            &failed(HandlerErrorKind::Transient),
            last,
            &policy,
            &mut rng,
        ) {
            Disposition::DeadLetter {
                reason,
                description,
            } => {
                assert_eq!(reason, DeadLetterReason::MaxRetriesExceeded);
                assert!(description.contains("3 attempts") && description.contains("timeout"));
            }
            other => panic!("expected a dead-letter, got {other:?}"),
        }
    }

    #[test]
    fn permanent_failures_dead_letter_at_once() {
        let d = decide(
            &failed(HandlerErrorKind::Permanent),
            Attempt {
                number: 1,
                first_failure: None,
            },
            &RetryPolicy::default(),
            &mut StdRng::seed_from_u64(0),
        );
        assert!(matches!(
            d,
            Disposition::DeadLetter {
                reason: DeadLetterReason::HandlerRejected,
                ..
            }
        ));
    }

    #[test]
    fn throttled_failures_wait_for_retry_after() {
        let kind = HandlerErrorKind::Throttled {
            retry_after: Duration::from_secs(42),
        };
        match decide(
            &failed(kind),
            Attempt {
                number: 1,
                first_failure: None,
            },
            &RetryPolicy::default(),
            &mut StdRng::seed_from_u64(0),
        ) {
            Disposition::Retry(d) => assert!(d >= Duration::from_secs(42)),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn long_descriptions_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let t = truncate(&long);
        assert!(t.len() <= MAX_TEXT + '…'.len_utf8());
    }
}
