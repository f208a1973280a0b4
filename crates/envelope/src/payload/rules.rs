//! Payload rules a JSON Schema cannot say, because they relate two fields.
//!
//! They run on the `data` object after its schema check passed, so every member they read has
//! the right shape already. They read a shallow [`Fact`] view rather than the typed struct:
//! the streaming check builds that view from the text in the same pass (borrowing its strings),
//! and the full check builds it from the parsed `Value`, so both paths apply the same rules.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Number, Value};

use crate::error::FieldError;
use crate::event_type::EventType;
use crate::rules::timestamp;

/// A shallow view of a JSON value: scalars, array lengths, and the members of objects down to
/// the capture depth it was built with; everything deeper is [`Fact::Other`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fact<'a> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array, by its length.
    Array(usize),
    /// An object's members, in order.
    Object(Vec<(Cow<'a, str>, Fact<'a>)>),
    /// Not captured (deeper than the capture depth).
    Other,
}

impl<'a> Fact<'a> {
    /// The view of `value` (borrowed) with `capture` levels: scalars need 1, an object's members 2.
    pub(crate) fn of(value: &'a Value, capture: u8) -> Fact<'a> {
        match value {
            Value::Array(a) => Fact::Array(a.len()),
            _ if capture == 0 => Fact::Other,
            Value::Null => Fact::Null,
            Value::Bool(b) => Fact::Bool(*b),
            Value::Number(n) => Fact::Num(n.clone()),
            Value::String(s) => Fact::Str(Cow::Borrowed(s)),
            Value::Object(m) if capture >= 2 => Fact::Object(
                m.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Fact::of(v, capture - 1)))
                    .collect(),
            ),
            Value::Object(_) => Fact::Other,
        }
    }

    /// Like [`Fact::of`], taking ownership of `value`.
    pub(crate) fn of_owned(value: Value, capture: u8) -> Fact<'static> {
        match value {
            Value::Array(a) => Fact::Array(a.len()),
            _ if capture == 0 => Fact::Other,
            Value::Null => Fact::Null,
            Value::Bool(b) => Fact::Bool(b),
            Value::Number(n) => Fact::Num(n),
            Value::String(s) => Fact::Str(Cow::Owned(s)),
            Value::Object(m) if capture >= 2 => Fact::Object(
                m.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Fact::of_owned(v, capture - 1)))
                    .collect(),
            ),
            Value::Object(_) => Fact::Other,
        }
    }

    /// The member `key` of an object.
    fn get(&self, key: &str) -> Option<&Fact<'a>> {
        match self {
            Fact::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Fact::Str(s) => Some(s),
            _ => None,
        }
    }
}

type Data<'f, 'a> = &'f Fact<'a>;

fn str_of<'f>(d: Data<'f, '_>, key: &str) -> Option<&'f str> {
    d.get(key).and_then(Fact::as_str)
}

fn present(d: Data<'_, '_>, key: &str) -> bool {
    d.get(key).is_some_and(|v| *v != Fact::Null)
}

fn time_of(d: Data<'_, '_>, key: &str) -> Option<DateTime<Utc>> {
    str_of(d, key).and_then(|s| timestamp(s).ok())
}

fn push(errors: &mut Vec<FieldError>, path: &str, rule: &str) {
    errors.push(FieldError::new(path, rule));
}

/// Pushes an error for every cross-field rule of `event_type`'s v1 payload that `data` breaks.
pub(crate) fn check(event_type: EventType, d: &Fact<'_>, errors: &mut Vec<FieldError>) {
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
            let (start, end) = match d.get("window") {
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
            let no_fields = !matches!(d.get("changedFields"), Some(Fact::Array(n)) if *n > 0);
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
