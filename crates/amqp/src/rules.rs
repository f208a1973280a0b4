//! The bodies of the `$management` rule operations of a subscription — `com.microsoft:add-rule`,
//! `com.microsoft:remove-rule`, `com.microsoft:enumerate-rules` — to and from the Bus port's
//! [`RuleDescription`].
//!
//! Requests are amqp-value maps: `rule-name` (string) and `rule-description` (a map holding a
//! `sql-filter` or a `correlation-filter` map, and an optional `sql-rule-action` map) for
//! add-rule, `rule-name` for remove-rule, `skip` and `top` (ints) for enumerate-rules. The
//! enumerate-rules reply is `{"rules": [{"rule-description": <described list>}, …]}` with the
//! described types and codes the Service Bus clients decode.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fe2o3_amqp_types::primitives::{OrderedMap, Value};
use fleet_bus::{CorrelationRuleFilter, PropertyValue, RuleDescription, RuleFilter};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

use crate::convert;

/// `com.microsoft:rule-description:list`.
const RULE_DESCRIPTION: u64 = 0x0000_0137_0000_0004;
/// `com.microsoft:empty-rule-action:list`.
const EMPTY_RULE_ACTION: u64 = 0x0000_0137_0000_0005;
/// `com.microsoft:sql-rule-action:list`.
const SQL_RULE_ACTION: u64 = 0x0000_0137_0000_0006;
/// `com.microsoft:sql-filter:list` (the filter codes have one hex digit fewer than the others,
/// as Service Bus defines them).
const SQL_FILTER: u64 = 0x0000_0013_7000_0006;
/// `com.microsoft:true-filter:list`.
const TRUE_FILTER: u64 = 0x0000_0013_7000_0007;
/// `com.microsoft:false-filter:list`.
const FALSE_FILTER: u64 = 0x0000_0013_7000_0008;
/// `com.microsoft:correlation-filter:list`.
const CORRELATION_FILTER: u64 = 0x0000_0013_7000_0009;
/// The SQL compatibility level Service Bus reports with SQL filters and actions.
const COMPATIBILITY_LEVEL: i32 = 20;

/// The value of `key` in a request map whose keys are strings or symbols.
pub(crate) fn field<'a>(body: &'a OrderedMap<Value, Value>, key: &str) -> Option<&'a Value> {
    body.iter().find_map(|(k, v)| match k {
        Value::String(s) if s == key => Some(v),
        Value::Symbol(s) if s.as_str() == key => Some(v),
        _ => None,
    })
}

fn describe(value: &Value) -> String {
    match value {
        Value::Map(_) => "a map".to_owned(),
        Value::List(_) => "a list".to_owned(),
        Value::Described(d) => format!("a described value ({:?})", d.descriptor),
        other => format!("{other:?}"),
    }
}

/// An optional text field: absent or null is `None`; anything but a string or symbol is an
/// error naming the field.
fn text(map: &OrderedMap<Value, Value>, key: &str, within: &str) -> Result<Option<String>, String> {
    match field(map, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Symbol(s)) => Ok(Some(s.as_str().to_owned())),
        Some(other) => Err(format!(
            "{within}\"{key}\" must be a string, got {}",
            describe(other)
        )),
    }
}

fn sub_map<'a>(
    map: &'a OrderedMap<Value, Value>,
    key: &str,
    within: &str,
) -> Result<Option<&'a OrderedMap<Value, Value>>, String> {
    match field(map, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Map(m)) => Ok(Some(m)),
        Some(other) => Err(format!(
            "{within}\"{key}\" must be a map, got {}",
            describe(other)
        )),
    }
}

/// The `rule-name` of an add-rule or remove-rule request.
pub(crate) fn rule_name(body: &OrderedMap<Value, Value>) -> Result<String, String> {
    text(body, "rule-name", "")?.ok_or_else(|| "the request has no \"rule-name\"".to_owned())
}

fn correlation(map: &OrderedMap<Value, Value>) -> Result<CorrelationRuleFilter, String> {
    let within = "correlation-filter ";
    let mut properties = BTreeMap::new();
    if let Some(props) = sub_map(map, "properties", within)? {
        for (key, value) in props {
            let Some(name) = (match key {
                Value::String(s) => Some(s.clone()),
                Value::Symbol(s) => Some(s.as_str().to_owned()),
                _ => None,
            }) else {
                return Err(format!(
                    "correlation-filter property name {} is not a string",
                    describe(key)
                ));
            };
            if let Some(value) = convert::value_to_property(&name, value.clone())
                .map_err(|why| format!("correlation-filter {why}"))?
            {
                properties.insert(name, value);
            }
        }
    }
    Ok(CorrelationRuleFilter {
        correlation_id: text(map, "correlation-id", within)?,
        message_id: text(map, "message-id", within)?,
        to: text(map, "to", within)?,
        reply_to: text(map, "reply-to", within)?,
        subject: text(map, "label", within)?,
        session_id: text(map, "session-id", within)?,
        reply_to_session_id: text(map, "reply-to-session-id", within)?,
        content_type: text(map, "content-type", within)?,
        properties,
    })
}

/// The rule an add-rule request describes; the error names the missing or malformed field.
pub(crate) fn add_rule_request(body: &OrderedMap<Value, Value>) -> Result<RuleDescription, String> {
    let name = rule_name(body)?;
    let description = sub_map(body, "rule-description", "")?
        .ok_or_else(|| format!("rule \"{name}\": the request has no \"rule-description\""))?;
    let within = format!("rule \"{name}\": ");
    let sql = sub_map(description, "sql-filter", &within)?;
    let correlation_map = sub_map(description, "correlation-filter", &within)?;
    let filter = match (sql, correlation_map) {
        (Some(sql), None) => {
            let expression = text(sql, "expression", &format!("{within}sql-filter "))?
                .ok_or_else(|| format!("{within}sql-filter has no \"expression\""))?;
            RuleFilter::Sql(expression)
        }
        (None, Some(c)) => {
            RuleFilter::Correlation(correlation(c).map_err(|e| within.clone() + &e)?)
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "{within}rule-description has both a \"sql-filter\" and a \"correlation-filter\""
            ));
        }
        (None, None) => {
            return Err(format!(
                "{within}rule-description has neither a \"sql-filter\" nor a \"correlation-filter\""
            ));
        }
    };
    // Clients send an empty `sql-rule-action` map when the rule has no action.
    let action = match sub_map(description, "sql-rule-action", &within)? {
        Some(action) => text(action, "expression", &format!("{within}sql-rule-action "))?,
        None => None,
    }
    .filter(|a| !a.trim().is_empty());
    Ok(RuleDescription {
        name,
        filter,
        action,
        created_at: None,
    })
}

/// `skip` and `top` of an enumerate-rules request; absent means 0 and all.
pub(crate) fn page(body: &OrderedMap<Value, Value>) -> Result<(usize, usize), String> {
    let number = |key: &str, default: usize| -> Result<usize, String> {
        let value = match field(body, key) {
            None | Some(Value::Null) => return Ok(default),
            Some(v) => v,
        };
        let n = match value {
            Value::Int(n) => i64::from(*n),
            Value::Long(n) => *n,
            Value::Uint(n) => i64::from(*n),
            Value::Short(n) => i64::from(*n),
            Value::Ulong(n) => i64::try_from(*n).unwrap_or(i64::MAX),
            other => {
                return Err(format!("\"{key}\" must be an int, got {}", describe(other)));
            }
        };
        usize::try_from(n).map_err(|_| format!("\"{key}\" must not be negative, got {n}"))
    };
    Ok((number("skip", 0)?, number("top", usize::MAX)?))
}

fn described(code: u64, fields: Vec<Value>) -> Value {
    Value::Described(Box::new(Described {
        descriptor: Descriptor::Code(code),
        value: Value::List(fields),
    }))
}

fn optional(text: &Option<String>) -> Value {
    text.clone().map_or(Value::Null, Value::String)
}

fn property_value(value: &PropertyValue) -> Value {
    match value {
        PropertyValue::String(s) => Value::String(s.clone()),
        PropertyValue::Int(n) => Value::Long(*n),
        PropertyValue::Double(f) => Value::Double((*f).into()),
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::Timestamp(t) => Value::Timestamp(convert::timestamp(*t)),
        PropertyValue::Uuid(u) => Value::Uuid((*u).into()),
    }
}

fn filter_value(filter: &RuleFilter) -> Value {
    let sql = |code, expression: &str| {
        described(
            code,
            vec![
                Value::String(expression.to_owned()),
                Value::Int(COMPATIBILITY_LEVEL),
            ],
        )
    };
    match filter {
        // Empty lists: azservicebus 0.25 decodes these two as fieldless types and fails on
        // anything inside them.
        RuleFilter::True => described(TRUE_FILTER, Vec::new()),
        RuleFilter::False => described(FALSE_FILTER, Vec::new()),
        RuleFilter::Sql(expression) => sql(SQL_FILTER, expression),
        RuleFilter::Correlation(c) => described(
            CORRELATION_FILTER,
            vec![
                optional(&c.correlation_id),
                optional(&c.message_id),
                optional(&c.to),
                optional(&c.reply_to),
                optional(&c.subject),
                optional(&c.session_id),
                optional(&c.reply_to_session_id),
                optional(&c.content_type),
                Value::Map(
                    c.properties
                        .iter()
                        .map(|(k, v)| (Value::String(k.clone()), property_value(v)))
                        .collect(),
                ),
            ],
        ),
    }
}

fn created(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| Value::Timestamp(convert::timestamp(t)))
}

/// One rule as Service Bus lists it: a `rule-description` described list of filter, action,
/// name and creation time.
pub(crate) fn rule_value(rule: &RuleDescription) -> Value {
    let action = match &rule.action {
        Some(expression) => described(
            SQL_RULE_ACTION,
            vec![
                Value::String(expression.clone()),
                Value::Int(COMPATIBILITY_LEVEL),
            ],
        ),
        None => described(EMPTY_RULE_ACTION, Vec::new()),
    };
    described(
        RULE_DESCRIPTION,
        vec![
            filter_value(&rule.filter),
            action,
            Value::String(rule.name.clone()),
            created(rule.created_at),
        ],
    )
}

/// The body of an enumerate-rules reply.
pub(crate) fn enumerate_reply(rules: &[RuleDescription]) -> Value {
    let entries = rules
        .iter()
        .map(|rule| {
            let mut entry = OrderedMap::new();
            entry.insert(
                Value::String("rule-description".to_owned()),
                rule_value(rule),
            );
            Value::Map(entry)
        })
        .collect();
    let mut body = OrderedMap::new();
    body.insert(Value::String("rules".to_owned()), Value::List(entries));
    Value::Map(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> OrderedMap<Value, Value> {
        entries
            .into_iter()
            .map(|(k, v)| (Value::String(k.to_owned()), v))
            .collect()
    }

    fn add(name: Value, description: Value) -> OrderedMap<Value, Value> {
        map(vec![("rule-name", name), ("rule-description", description)])
    }

    #[test]
    fn decodes_what_the_clients_send() {
        // A SQL filter with the empty action map clients send when there is no action.
        let body = add(
            Value::String("r".into()),
            Value::Map(map(vec![
                (
                    "sql-filter",
                    Value::Map(map(vec![("expression", Value::String("1=1".into()))])),
                ),
                ("sql-rule-action", Value::Map(OrderedMap::new())),
            ])),
        );
        assert_eq!(
            add_rule_request(&body).unwrap(),
            RuleDescription::new("r", RuleFilter::Sql("1=1".into()))
        );
        // A correlation filter with properties of several types.
        let props = map(vec![
            ("tenant", Value::String("t1".into())),
            ("n", Value::Int(3)),
            ("none", Value::Null),
        ]);
        let body = add(
            Value::String("c".into()),
            Value::Map(map(vec![(
                "correlation-filter",
                Value::Map(map(vec![
                    ("label", Value::String("Deploy".into())),
                    ("correlation-id", Value::String("cid".into())),
                    ("properties", Value::Map(props)),
                ])),
            )])),
        );
        let rule = add_rule_request(&body).unwrap();
        let RuleFilter::Correlation(c) = rule.filter else {
            panic!("expected a correlation filter");
        };
        assert_eq!(c.subject.as_deref(), Some("Deploy"));
        assert_eq!(c.correlation_id.as_deref(), Some("cid"));
        assert_eq!(c.properties.len(), 2);
        assert_eq!(c.properties["n"], PropertyValue::Int(3));
        // An action is passed on for the backend to judge.
        let body = add(
            Value::String("a".into()),
            Value::Map(map(vec![
                (
                    "sql-filter",
                    Value::Map(map(vec![("expression", Value::String("1=1".into()))])),
                ),
                (
                    "sql-rule-action",
                    Value::Map(map(vec![("expression", Value::String("SET x=1".into()))])),
                ),
            ])),
        );
        assert_eq!(
            add_rule_request(&body).unwrap().action.as_deref(),
            Some("SET x=1")
        );
    }

    #[test]
    fn malformed_requests_are_refused_naming_the_field() {
        let cases: Vec<(OrderedMap<Value, Value>, &str)> = vec![
            (OrderedMap::new(), "\"rule-name\""),
            (
                map(vec![("rule-name", Value::Int(1))]),
                "\"rule-name\" must be a string",
            ),
            (
                map(vec![("rule-name", Value::String("r".into()))]),
                "no \"rule-description\"",
            ),
            (
                add(Value::String("r".into()), Value::String("x".into())),
                "\"rule-description\" must be a map",
            ),
            (
                add(Value::String("r".into()), Value::Map(OrderedMap::new())),
                "neither",
            ),
            (
                add(
                    Value::String("r".into()),
                    Value::Map(map(vec![("sql-filter", Value::Map(OrderedMap::new()))])),
                ),
                "sql-filter has no \"expression\"",
            ),
            (
                add(
                    Value::String("r".into()),
                    Value::Map(map(vec![(
                        "correlation-filter",
                        Value::Map(map(vec![(
                            "properties",
                            Value::Map(map(vec![("bad", Value::List(vec![]))])),
                        )])),
                    )])),
                ),
                "\"bad\"",
            ),
            (
                add(
                    Value::String("r".into()),
                    Value::Map(map(vec![(
                        "correlation-filter",
                        Value::Map(map(vec![("to", Value::Long(5))])),
                    )])),
                ),
                "\"to\" must be a string",
            ),
        ];
        for (body, expected) in cases {
            let err = add_rule_request(&body).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn paging_defaults_and_bad_values() {
        assert_eq!(page(&OrderedMap::new()).unwrap(), (0, usize::MAX));
        let body = map(vec![("skip", Value::Int(5)), ("top", Value::Int(100))]);
        assert_eq!(page(&body).unwrap(), (5, 100));
        let err = page(&map(vec![("top", Value::Int(-1))])).unwrap_err();
        assert!(err.contains("-1"), "{err}");
        let err = page(&map(vec![("skip", Value::String("x".into()))])).unwrap_err();
        assert!(err.contains("\"skip\""), "{err}");
    }

    #[test]
    fn replies_use_the_service_bus_descriptors() {
        let mut rule = RuleDescription::new("$Default", RuleFilter::True);
        rule.created_at = Some(DateTime::<Utc>::from_timestamp_millis(1_000).unwrap());
        let Value::Described(d) = rule_value(&rule) else {
            panic!("a rule description is a described value");
        };
        assert_eq!(d.descriptor, Descriptor::Code(RULE_DESCRIPTION));
        let Value::List(fields) = &d.value else {
            panic!("a described list");
        };
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[2], Value::String("$Default".into()));
        assert!(
            matches!(&fields[0], Value::Described(f) if f.descriptor == Descriptor::Code(TRUE_FILTER))
        );
        assert!(
            matches!(&fields[1], Value::Described(a) if a.descriptor == Descriptor::Code(EMPTY_RULE_ACTION))
        );
        assert!(matches!(fields[3], Value::Timestamp(_)));
    }
}
