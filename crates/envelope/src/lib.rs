//! Fleet's canonical event envelope (v1): the one JSON shape every worker consumes and emits.
//!
//! Start at [`Envelope`]: [`Envelope::decode`] reads and checks a body (size, UTF-8, JSON syntax,
//! depth, duplicate keys, every field rule, and the typed payload of its event type and version),
//! reporting every problem at once as an [`EnvelopeError`] whose lines name the field
//! (`tenantId: required`, `data.replicas: must be an integer >= 0 (got -1)`).
//! [`Envelope::payload`] gives the typed [`Payload`]; [`Envelope::new`] and [`Envelope::caused`]
//! build new events, the latter with deterministic ids ([`emitted_event_id`]).
//!
//! Around it: the catalog ([`EventType`], [`payload`]), the Service Bus property mapping
//! ([`servicebus`]), the CloudEvents 1.0 mapping ([`cloudevents`]), and the JSON Schemas
//! generated from the payload types ([`schema`]). The full specification is `docs/envelope.md`.
//!
//! ```
//! use fleet_envelope::{examples, Envelope, EventType, Payload};
//!
//! let body = examples::sample_envelope(EventType::ScalingPolicyApplied).encode();
//! let envelope = Envelope::decode(&body)?;
//! if let Payload::ScalingPolicyApplied(p) = envelope.payload()? {
//!     assert_eq!((p.from_replicas, p.to_replicas), (3, 5));
//! }
//!
//! let err = Envelope::decode(br#"{"eventType":"ScalingPolicyApplied","data":{}}"#).unwrap_err();
//! assert!(err.to_string().lines().any(|line| line == "tenantId: required"));
//! # Ok::<(), fleet_envelope::EnvelopeError>(())
//! ```

mod data;
mod decode;
mod envelope;
mod error;
mod event_type;
mod ids;
mod parse;
mod rules;

pub mod cloudevents;
pub mod examples;
pub mod payload;
pub mod schema;
pub mod servicebus;

pub use data::Data;
pub use decode::{Format, check_size};
pub use envelope::{Envelope, FIELD_NAMES};
pub use error::{EnvelopeError, ErrorKind, FieldError};
pub use event_type::{EventType, UnknownEventType};
pub use ids::{FLEET_NAMESPACE, derived_span_id, emitted_event_id, timer_event_id};
pub use payload::Payload;

/// The largest envelope accepted, in bytes: 256 KiB, the Service Bus standard-tier message limit.
/// Checked before a body is parsed.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;
