//! Typed payloads: one struct per event type and version, and the [`Payload`] enum over them.
//!
//! Structs are named after their event type for version 1; a later version of a type gets a
//! `…V2` struct and variant next to the v1 one, so old events stay readable.

mod configuration;
mod deployment;
mod drift;
mod health;
mod inventory;
pub(crate) mod rules;
mod secret;

use serde::Deserialize;
use serde_json::Value;

pub use configuration::{ConfigurationPublished, ConfigurationSynced, SyncOutcome};
pub use deployment::{
    DeploymentOutcome, DeploymentReason, Platform, RuntimeDeploymentCompleted,
    RuntimeDeploymentRequested,
};
pub use drift::{DesiredStateSource, DriftKind, FindingStatus, RuntimeDriftDetected};
pub use health::{
    HealthCheckCompleted, HealthStatus, MetricReading, ProbeKind, ProbeResult,
    ScalingPolicyApplied, Window,
};
pub use inventory::{InventoryChange, ObservedRuntime, RuntimeInventoryUpdated};
pub use secret::{RotationReason, SecretRotated, SecretRotationFailed, SecretRotationRequested};

use crate::data::Data;
use crate::error::FieldError;
use crate::event_type::EventType;
use crate::parse::Path;
use crate::schema;

macro_rules! catalog {
    ($($name:ident),* $(,)?) => {
        /// The typed `data` of an envelope: one variant per event type (and version).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Payload {
            $(
                #[doc = concat!("`", stringify!($name), "` v1.")]
                $name($name),
            )*
        }

        impl Payload {
            /// The event type this payload belongs to.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Payload::$name(_) => EventType::$name,)*
                }
            }

            /// The payload's schema version (the envelope's `eventVersion`).
            pub fn event_version(&self) -> u32 {
                match self {
                    $(Payload::$name(_) => 1,)*
                }
            }

            /// The payload as the envelope's `data` object.
            pub fn to_data(&self) -> Value {
                // Payload structs have string keys and no custom serializers, so this cannot fail.
                let value = match self {
                    $(Payload::$name(p) => serde_json::to_value(p),)*
                };
                value.unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
            }

            /// The payload as `data` JSON text, serialized straight from the struct.
            pub fn to_json(&self) -> Data {
                let data = match self {
                    $(Payload::$name(p) => Data::from_serialize(p),)*
                };
                data.unwrap_or_default()
            }

            /// The typed read of text that passed [`data_passes`].
            fn typed_from_str(event_type: EventType, text: &str) -> Option<Payload> {
                match event_type {
                    $(EventType::$name => serde_json::from_str::<$name>(text).ok().map(Payload::$name),)*
                }
            }

            fn typed(event_type: EventType, data: &Value, errors: &mut Vec<FieldError>) -> Option<Payload> {
                match event_type {
                    $(EventType::$name => typed::<$name>(event_type, data, errors).map(Payload::$name),)*
                }
            }
        }

        $(
            impl From<$name> for Payload {
                fn from(p: $name) -> Payload {
                    Payload::$name(p)
                }
            }
        )*

        /// The generated JSON Schema of `event_type`'s v1 payload.
        pub(crate) fn payload_root_schema(event_type: EventType) -> schemars::Schema {
            match event_type {
                $(EventType::$name => schemars::schema_for!($name),)*
            }
        }
    };
}

catalog!(
    RuntimeDeploymentRequested,
    RuntimeDeploymentCompleted,
    HealthCheckCompleted,
    ScalingPolicyApplied,
    RuntimeDriftDetected,
    ConfigurationPublished,
    ConfigurationSynced,
    SecretRotationRequested,
    SecretRotated,
    SecretRotationFailed,
    RuntimeInventoryUpdated,
);

fn typed<T>(event_type: EventType, data: &Value, errors: &mut Vec<FieldError>) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    match T::deserialize(data) {
        Ok(p) => Some(p),
        Err(e) => {
            // The schema check passed, so this is a gap between schema and type: still an error
            // for the sender, never a panic.
            errors.push(FieldError::new(
                "data",
                format!("does not match the {event_type} v1 payload: {e}"),
            ));
            None
        }
    }
}

impl Payload {
    /// Reads `data` as the payload of `event_type` at `event_version`, reporting every broken rule
    /// with a `data.<field>` path.
    pub fn from_data(
        event_type: EventType,
        event_version: u32,
        data: &Value,
    ) -> Result<Payload, crate::EnvelopeError> {
        if !event_type.supports_version(event_version) {
            let rule = unsupported_version(event_type, event_version);
            return Err(crate::EnvelopeError::from_errors(
                vec![FieldError::new("eventVersion", rule)],
                1,
            ));
        }
        let mut errors = Vec::new();
        check_data(event_type, data, &mut errors);
        if errors.is_empty()
            && let Some(p) = Payload::typed(event_type, data, &mut errors)
        {
            return Ok(p);
        }
        Err(crate::EnvelopeError::from_errors(errors, 0))
    }
}

impl Payload {
    /// Reads `data` JSON text as the typed payload of `event_type` and `event_version`, checking
    /// every rule [`Payload::from_data`] checks. Text that passes takes one streaming check and
    /// one typed parse; anything else gets the full check and its complete error list.
    pub fn from_json(
        event_type: EventType,
        event_version: u32,
        data: &Data,
    ) -> Result<Payload, crate::EnvelopeError> {
        if event_type.supports_version(event_version)
            && (data.is_checked_as(event_type, event_version)
                || data_passes(event_type, data.as_str()))
            && let Some(p) = Payload::typed_from_str(event_type, data.as_str())
        {
            return Ok(p);
        }
        Payload::from_data(event_type, event_version, data.value())
    }
}

/// The fast verdict on `data`'s JSON text: `true` only when [`check_data`] would report nothing
/// (see [`schema::stream`]). `false` means "run the full check", not necessarily "invalid".
pub(crate) fn data_passes(event_type: EventType, text: &str) -> bool {
    let Ok(node) = schema::compiled(event_type) else {
        return false;
    };
    schema::stream::accepts(node, text)
        .is_some_and(|fact| matches!(fact, rules::Fact::Object(_)) && rules_pass(event_type, &fact))
}

/// Whether the `data` view passes every cross-field rule of `event_type`.
pub(crate) fn rules_pass(event_type: EventType, fact: &rules::Fact<'_>) -> bool {
    let mut errors = Vec::new();
    rules::check(event_type, fact, &mut errors);
    errors.is_empty()
}

/// The rule text for a version the type does not have.
pub(crate) fn unsupported_version(event_type: EventType, version: u32) -> String {
    let supported: Vec<String> = event_type
        .supported_versions()
        .iter()
        .map(u32::to_string)
        .collect();
    format!(
        "unsupported version {version} of {event_type} (supported: {})",
        supported.join(", ")
    )
}

/// Checks `data` against the payload schema, then the cross-field rules; all errors go to
/// `errors`. A `data` that passes is guaranteed to read as the typed payload (a property test
/// holds the schema and the types to that).
pub(crate) fn check_data(event_type: EventType, data: &Value, errors: &mut Vec<FieldError>) {
    if !data.is_object() {
        errors.push(FieldError::new(
            "data",
            format!(
                "must be a JSON object (got {})",
                crate::rules::kind_of(data)
            ),
        ));
        return;
    }
    let before = errors.len();
    match schema::compiled(event_type) {
        Ok(node) => schema::check::check(node, data, &Path::Key(&Path::Root, "data"), errors),
        Err(e) => errors.push(FieldError::new(
            "data",
            format!("cannot check the {event_type} payload: {e}"),
        )),
    }
    if errors.len() == before {
        rules::check(
            event_type,
            &rules::Fact::of(data, crate::schema::stream::CAPTURE_ROOT),
            errors,
        );
    }
}
