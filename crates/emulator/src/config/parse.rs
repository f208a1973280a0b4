//! The `Config.json` walker: every error names the JSON path of the offending field.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use fleet_bus::PropertyValue;
use serde_json::{Map, Value};

use super::{
    CorrelationFilter, DEFAULT_DUPLICATE_WINDOW, Filter, QueueConfig, ReceiveSettings, Rule,
    SubscriptionConfig, TopicConfig, Topology,
};
use crate::duration;
use crate::error::EmulatorError;

/// Entity and rule names longer than this are refused (Service Bus' limit for queue paths).
const MAX_NAME_LEN: usize = 260;
/// More entities than this is not a local topology.
const MAX_ENTITIES: usize = 10_000;

type Result<T> = std::result::Result<T, EmulatorError>;

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| EmulatorError::config(path, "expected an object"))
}

fn field<'a>(obj: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a Value> {
    obj.get(key)
        .ok_or_else(|| EmulatorError::config(&format!("{path}.{key}"), "required"))
}

fn array<'a>(obj: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a [Value]> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(EmulatorError::config(
            &format!("{path}.{key}"),
            "expected an array",
        )),
    }
}

fn string(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(EmulatorError::config(
            &format!("{path}.{key}"),
            format!("expected a string, got {other}"),
        )),
    }
}

/// A string where `""` means "not set", as the official samples write unused fields.
fn optional_string(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>> {
    Ok(string(obj, path, key)?.filter(|s| !s.is_empty()))
}

fn boolean(obj: &Map<String, Value>, path: &str, key: &str, default: bool) -> Result<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(EmulatorError::config(
            &format!("{path}.{key}"),
            format!("expected true or false, got {other}"),
        )),
    }
}

fn iso_duration(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<Duration>> {
    let Some(text) = optional_string(obj, path, key)? else {
        return Ok(None);
    };
    let parsed = duration::parse(&text).map_err(|why| {
        EmulatorError::config(
            &format!("{path}.{key}"),
            format!("invalid ISO-8601 duration \"{text}\" ({why})"),
        )
    })?;
    Ok(Some(parsed))
}

fn name(obj: &Map<String, Value>, path: &str) -> Result<String> {
    let value = field(obj, path, "Name")?;
    let name = value
        .as_str()
        .ok_or_else(|| EmulatorError::config(&format!("{path}.Name"), "expected a string"))?;
    check_name(name, &format!("{path}.Name"))?;
    Ok(name.to_owned())
}

fn check_name(name: &str, path: &str) -> Result<()> {
    if name.is_empty() {
        return Err(EmulatorError::config(path, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(EmulatorError::config(
            path,
            format!("\"{name}\" is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(EmulatorError::config(
            path,
            format!("\"{name}\" contains '{bad}' (allowed: letters, digits, . - _)"),
        ));
    }
    Ok(())
}

fn not_emulated(obj: &Map<String, Value>, path: &str, key: &str, what: &str) -> Result<()> {
    if let Some(value) = optional_string(obj, path, key)? {
        return Err(EmulatorError::config(
            &format!("{path}.{key}"),
            format!("\"{value}\": {what} is not emulated"),
        ));
    }
    Ok(())
}

fn receive_settings(props: &Map<String, Value>, path: &str) -> Result<ReceiveSettings> {
    let mut settings = ReceiveSettings::default();
    if let Some(lock) = iso_duration(props, path, "LockDuration")? {
        if lock.is_zero() {
            return Err(EmulatorError::config(
                &format!("{path}.LockDuration"),
                "must be longer than zero",
            ));
        }
        settings.lock_duration = lock;
    }
    match props.get("MaxDeliveryCount") {
        None | Some(Value::Null) => {}
        Some(value) => {
            settings.max_delivery_count = value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    EmulatorError::config(
                        &format!("{path}.MaxDeliveryCount"),
                        format!("expected an integer ≥ 1, got {value}"),
                    )
                })?;
        }
    }
    settings.default_ttl =
        iso_duration(props, path, "DefaultMessageTimeToLive")?.filter(|d| *d < duration::FOREVER);
    settings.dead_lettering_on_expiration =
        boolean(props, path, "DeadLetteringOnMessageExpiration", false)?;
    if boolean(props, path, "RequiresSession", false)? {
        return Err(EmulatorError::config(
            &format!("{path}.RequiresSession"),
            "true: sessions are not emulated",
        ));
    }
    not_emulated(props, path, "ForwardTo", "auto-forwarding")?;
    not_emulated(
        props,
        path,
        "ForwardDeadLetteredMessagesTo",
        "auto-forwarding",
    )?;
    Ok(settings)
}

fn duplicate_detection(props: &Map<String, Value>, path: &str) -> Result<Option<Duration>> {
    let window = iso_duration(props, path, "DuplicateDetectionHistoryTimeWindow")?
        .unwrap_or(DEFAULT_DUPLICATE_WINDOW);
    Ok(boolean(props, path, "RequiresDuplicateDetection", false)?.then_some(window))
}

fn properties<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
) -> Result<(&'a Map<String, Value>, String)> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let props_path = format!("{path}.Properties");
    match obj.get("Properties") {
        None | Some(Value::Null) => Ok((EMPTY.get_or_init(Map::new), props_path)),
        Some(value) => Ok((object(value, &props_path)?, props_path)),
    }
}

fn queue(value: &Value, path: &str) -> Result<QueueConfig> {
    let obj = object(value, path)?;
    let name = name(obj, path)?;
    let (props, props_path) = properties(obj, path)?;
    Ok(QueueConfig {
        name,
        settings: receive_settings(props, &props_path)?,
        duplicate_detection: duplicate_detection(props, &props_path)?,
    })
}

fn topic(value: &Value, path: &str) -> Result<TopicConfig> {
    let obj = object(value, path)?;
    let name = name(obj, path)?;
    let (props, props_path) = properties(obj, path)?;
    let mut subscriptions = Vec::new();
    for (i, sub) in array(obj, path, "Subscriptions")?.iter().enumerate() {
        subscriptions.push(subscription(sub, &format!("{path}.Subscriptions[{i}]"))?);
    }
    Ok(TopicConfig {
        name,
        default_ttl: iso_duration(props, &props_path, "DefaultMessageTimeToLive")?
            .filter(|d| *d < duration::FOREVER),
        duplicate_detection: duplicate_detection(props, &props_path)?,
        subscriptions,
    })
}

fn subscription(value: &Value, path: &str) -> Result<SubscriptionConfig> {
    let obj = object(value, path)?;
    let name = name(obj, path)?;
    let (props, props_path) = properties(obj, path)?;
    let mut rules = Vec::new();
    for (i, rule_value) in array(obj, path, "Rules")?.iter().enumerate() {
        rules.push(rule(rule_value, &format!("{path}.Rules[{i}]"))?);
    }
    Ok(SubscriptionConfig {
        name,
        settings: receive_settings(props, &props_path)?,
        rules,
    })
}

fn rule(value: &Value, path: &str) -> Result<Rule> {
    let obj = object(value, path)?;
    let name = name(obj, path)?;
    let (props, props_path) = properties(obj, path)?;
    if let Some(action) = props.get("Action").filter(|a| !a.is_null()) {
        let action_path = format!("{props_path}.Action");
        let expr = string(object(action, &action_path)?, &action_path, "SqlExpression")?
            .unwrap_or_default();
        if !expr.trim().is_empty() {
            return Err(EmulatorError::config(
                &format!("{action_path}.SqlExpression"),
                format!("\"{expr}\": rule actions are not emulated"),
            ));
        }
    }
    let kind = string(props, &props_path, "FilterType")?.ok_or_else(|| {
        EmulatorError::config(
            &format!("{props_path}.FilterType"),
            "required (Correlation or Sql)",
        )
    })?;
    let filter = match kind.to_ascii_lowercase().as_str() {
        "correlation" | "correlationfilter" => {
            let filter_path = format!("{props_path}.CorrelationFilter");
            correlation(
                object(
                    field(props, &props_path, "CorrelationFilter")?,
                    &filter_path,
                )?,
                &filter_path,
            )?
        }
        "sql" | "sqlfilter" => {
            let filter_path = format!("{props_path}.SqlFilter");
            let sql = object(field(props, &props_path, "SqlFilter")?, &filter_path)?;
            let expr = string(sql, &filter_path, "SqlExpression")?.unwrap_or_default();
            sql_filter(&expr).ok_or_else(|| {
                EmulatorError::config(
                    &format!("{filter_path}.SqlExpression"),
                    format!("unsupported SQL filter \"{expr}\" (only 1=1 / TRUE and 1=0 / FALSE are emulated)"),
                )
            })?
        }
        _ => {
            return Err(EmulatorError::config(
                &format!("{props_path}.FilterType"),
                format!("unknown filter type \"{kind}\" (expected Correlation or Sql)"),
            ));
        }
    };
    Ok(Rule { name, filter })
}

/// The SQL filters the engine evaluates: the true and false filters Service Bus itself
/// special-cases. Anything else needs a SQL-92 subset interpreter, which is not emulated.
pub(crate) fn sql_filter(expr: &str) -> Option<Filter> {
    let normalized: String = expr
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    match normalized.as_str() {
        "1=1" | "TRUE" => Some(Filter::True),
        "1=0" | "FALSE" => Some(Filter::False),
        _ => None,
    }
}

fn correlation(obj: &Map<String, Value>, path: &str) -> Result<Filter> {
    for key in ["SessionId", "ReplyToSessionId"] {
        not_emulated(obj, path, key, "session filtering")?;
    }
    let mut properties = BTreeMap::new();
    if let Some(value) = obj.get("Properties").filter(|v| !v.is_null()) {
        let props_path = format!("{path}.Properties");
        for (key, v) in object(value, &props_path)? {
            let prop = match v {
                Value::String(s) => PropertyValue::String(s.clone()),
                Value::Bool(b) => PropertyValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => PropertyValue::Int(i),
                    None => PropertyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => {
                    return Err(EmulatorError::config(
                        &format!("{props_path}.{key}"),
                        format!("expected a string, number or boolean, got {other}"),
                    ));
                }
            };
            properties.insert(key.clone(), prop);
        }
    }
    Ok(Filter::Correlation(CorrelationFilter {
        content_type: optional_string(obj, path, "ContentType")?,
        correlation_id: optional_string(obj, path, "CorrelationId")?,
        subject: optional_string(obj, path, "Label")?,
        message_id: optional_string(obj, path, "MessageId")?,
        reply_to: optional_string(obj, path, "ReplyTo")?,
        to: optional_string(obj, path, "To")?,
        properties,
    }))
}

pub(super) fn topology(root: &Value) -> Result<Topology> {
    let root = object(root, "Config.json")?;
    let user = object(field(root, "Config.json", "UserConfig")?, "UserConfig")?;
    let namespaces = array(user, "UserConfig", "Namespaces")?;
    let [ns] = namespaces else {
        return Err(EmulatorError::config(
            "UserConfig.Namespaces",
            format!("expected exactly one namespace, found {}", namespaces.len()),
        ));
    };
    let path = "UserConfig.Namespaces[0]";
    let ns = object(ns, path)?;
    let mut topology = Topology {
        namespace: name(ns, path)?,
        ..Topology::default()
    };
    for (i, q) in array(ns, path, "Queues")?.iter().enumerate() {
        topology
            .queues
            .push(queue(q, &format!("{path}.Queues[{i}]"))?);
    }
    for (i, t) in array(ns, path, "Topics")?.iter().enumerate() {
        topology
            .topics
            .push(topic(t, &format!("{path}.Topics[{i}]"))?);
    }
    validate_names(&topology)?;
    Ok(topology)
}

/// Queue and topic names share one case-insensitive namespace; subscription names are unique
/// within their topic and rule names within their subscription.
pub(super) fn validate_names(topology: &Topology) -> Result<()> {
    let path = "UserConfig.Namespaces[0]";
    let mut seen = HashSet::new();
    let mut count = 0usize;
    let entities = topology
        .queues
        .iter()
        .map(|q| (&q.name, "Queues"))
        .chain(topology.topics.iter().map(|t| (&t.name, "Topics")));
    for (i, (name, list)) in entities.enumerate() {
        let index = if list == "Queues" {
            i
        } else {
            i - topology.queues.len()
        };
        let name_path = format!("{path}.{list}[{index}].Name");
        check_name(name, &name_path)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(EmulatorError::config(
                &name_path,
                format!("\"{name}\" is defined twice"),
            ));
        }
        count += 1;
    }
    for (t, topic) in topology.topics.iter().enumerate() {
        let mut subs = HashSet::new();
        for (s, sub) in topic.subscriptions.iter().enumerate() {
            let sub_path = format!("{path}.Topics[{t}].Subscriptions[{s}]");
            check_name(&sub.name, &format!("{sub_path}.Name"))?;
            if !subs.insert(sub.name.to_ascii_lowercase()) {
                return Err(EmulatorError::config(
                    &format!("{sub_path}.Name"),
                    format!("\"{}\" is defined twice", sub.name),
                ));
            }
            let mut rules = HashSet::new();
            for (r, rule) in sub.rules.iter().enumerate() {
                if !rules.insert(rule.name.to_ascii_lowercase()) {
                    return Err(EmulatorError::config(
                        &format!("{sub_path}.Rules[{r}].Name"),
                        format!("\"{}\" is defined twice", rule.name),
                    ));
                }
            }
            count += 1;
        }
    }
    if count > MAX_ENTITIES {
        return Err(EmulatorError::config(
            path,
            format!("{count} entities, more than the {MAX_ENTITIES} accepted"),
        ));
    }
    Ok(())
}
