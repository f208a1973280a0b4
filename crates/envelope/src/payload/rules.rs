//! Payload rules a JSON Schema cannot say, because they relate two fields.
//!
//! They run on the `data` object after its schema check passed, so every member they read has
//! the right shape already. They read the `Value` rather than the typed struct because decoding
//! must not pay for a second, typed copy of every string; the typed read happens once, when a
//! handler asks for [`crate::Envelope::payload`].

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::event_type::EventType;
use crate::rules::timestamp;

type Data = Map<String, Value>;

fn str_of<'a>(d: &'a Data, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str)
}

fn present(d: &Data, key: &str) -> bool {
    d.get(key).is_some_and(|v| !v.is_null())
}

fn time_of(d: &Data, key: &str) -> Option<DateTime<Utc>> {
    str_of(d, key).and_then(|s| timestamp(s).ok())
}

fn push(errors: &mut Vec<FieldError>, path: &str, rule: &str) {
    errors.push(FieldError::new(path, rule));
}

/// Pushes an error for every cross-field rule of `event_type`'s v1 payload that `data` breaks.
pub(crate) fn check(event_type: EventType, d: &Data, errors: &mut Vec<FieldError>) {
    match event_type {
        EventType::RuntimeDeploymentRequested => {
            if present(d, "configurationVersion") && !present(d, "configurationId") {
                push(
                    errors,
                    "data.configurationId",
                    "required when configurationVersion is present",
                );
            }
        }
        EventType::RuntimeDeploymentCompleted => {
            if time_of(d, "completedAt") < time_of(d, "startedAt") {
                push(errors, "data.completedAt", "must not be before startedAt");
            }
            if str_of(d, "outcome") != Some("succeeded") && !present(d, "failedStep") {
                push(
                    errors,
                    "data.failedStep",
                    "required when outcome is not succeeded",
                );
            }
        }
        EventType::HealthCheckCompleted => {
            let window = d.get("window").and_then(Value::as_object);
            let (start, end) = match window {
                Some(w) => (time_of(w, "start"), time_of(w, "end")),
                None => (None, None),
            };
            if end <= start {
                push(errors, "data.window.end", "must be after window.start");
            }
        }
        EventType::ScalingPolicyApplied => {
            // The worker is a no-op at target, so an event that changes nothing is a bug upstream.
            if d.get("fromReplicas") == d.get("toReplicas") {
                push(errors, "data.toReplicas", "must differ from fromReplicas");
            }
        }
        EventType::RuntimeDriftDetected => {
            if time_of(d, "lastSeenAt") < time_of(d, "firstSeenAt") {
                push(errors, "data.lastSeenAt", "must not be before firstSeenAt");
            }
        }
        EventType::ConfigurationPublished => match (present(d, "values"), present(d, "ref")) {
            (true, true) => push(errors, "data.ref", "must be absent when values is present"),
            (false, false) => push(errors, "data.values", "one of values or ref is required"),
            _ => {}
        },
        EventType::ConfigurationSynced => {
            if str_of(d, "outcome") == Some("failed") && !present(d, "error") {
                push(errors, "data.error", "required when outcome is failed");
            }
        }
        EventType::SecretRotationRequested => {}
        EventType::SecretRotated => {
            if str_of(d, "previousVersion").is_some()
                && str_of(d, "previousVersion") == str_of(d, "newVersion")
            {
                push(
                    errors,
                    "data.newVersion",
                    "must differ from previousVersion",
                );
            }
        }
        EventType::SecretRotationFailed => {
            if time_of(d, "lastFailureAt") < time_of(d, "firstFailureAt") {
                push(
                    errors,
                    "data.lastFailureAt",
                    "must not be before firstFailureAt",
                );
            }
        }
        EventType::RuntimeInventoryUpdated => {
            let change = str_of(d, "change");
            match (change, present(d, "observed")) {
                (Some("removed"), true) => push(
                    errors,
                    "data.observed",
                    "must be absent when change is removed",
                ),
                (Some("added" | "updated"), false) => {
                    push(errors, "data.observed", "required unless change is removed")
                }
                _ => {}
            }
            let no_fields = d
                .get("changedFields")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if change == Some("updated") && no_fields {
                push(
                    errors,
                    "data.changedFields",
                    "must name at least one field when change is updated",
                );
            }
        }
    }
}
