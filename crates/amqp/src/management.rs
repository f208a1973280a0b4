//! `$management` request/response operations of a Service Bus entity.
//!
//! A request names its `operation` in the application properties and carries an amqp-value
//! map body; the reply carries `statusCode` (int), `statusDescription`, `errorCondition` on
//! errors, `correlation-id` = the request's `message-id`, and an amqp-value map body. The rule
//! operations' bodies are in [`crate::rules`].

use std::sync::Arc;

use fe2o3_amqp_types::messaging::{AmqpValue, Body};
use fe2o3_amqp_types::primitives::{Array, OrderedMap, SimpleValue, Symbol, Value};
use fleet_bus::{
    BusError, BusErrorKind, BusReceiver, BusSender, DeadLetterOptions, EntityPath, ReceiveOptions,
};
use uuid::Uuid;

use crate::connection::Connection;
use crate::convert::{self, Purpose};
use crate::locks::Lock;
use crate::rules::{self, field};
use crate::settle::Settlement;

/// Most messages one peek reply carries.
const MAX_PEEK: usize = 250;
/// Most items (tokens, sequence numbers) one request may name.
const MAX_ITEMS: usize = 5_000;

/// An operation's result before encoding.
struct Reply {
    code: i32,
    description: String,
    condition: Option<&'static str>,
    body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            code: 200,
            description: "OK".to_owned(),
            condition: None,
            body,
        }
    }

    fn fail(code: i32, condition: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            condition: Some(condition),
            body: Value::Map(OrderedMap::new()),
        }
    }

    fn bad_request(description: impl Into<String>) -> Self {
        Self::fail(400, "com.microsoft:argument-error", description)
    }

    fn from_bus(err: &BusError) -> Self {
        let (code, condition) = match err.kind() {
            BusErrorKind::MessageLockLost => (410, "com.microsoft:message-lock-lost"),
            BusErrorKind::EntityNotFound => (404, "amqp:not-found"),
            BusErrorKind::MessageNotFound => (404, "com.microsoft:message-not-found"),
            BusErrorKind::InvalidArgument => (400, "com.microsoft:argument-error"),
            BusErrorKind::AlreadyExists => (409, "com.microsoft:entity-already-exists"),
            BusErrorKind::QuotaExceeded => (403, "com.microsoft:quota-exceeded"),
            BusErrorKind::MessageSizeExceeded => (413, "com.microsoft:message-size-exceeded"),
            BusErrorKind::ServiceBusy => (503, "com.microsoft:server-busy"),
            BusErrorKind::Timeout => (408, "com.microsoft:timeout"),
            BusErrorKind::Unauthorized => (401, "amqp:unauthorized-access"),
            _ => (500, "amqp:internal-error"),
        };
        Self::fail(code, condition, err.to_string())
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::String(k.to_owned()), v))
            .collect(),
    )
}

fn items(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(Array(items))) | Some(Value::List(items)) => items.iter().collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        Value::Uint(n) => Some(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).ok(),
        Value::Short(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn as_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn lock_tokens(body: &OrderedMap<Value, Value>) -> Result<Vec<Uuid>, Reply> {
    let tokens = items(field(body, "lock-tokens"));
    if tokens.len() > MAX_ITEMS {
        return Err(Reply::bad_request(format!(
            "{} lock tokens exceed the limit of {MAX_ITEMS}",
            tokens.len()
        )));
    }
    tokens
        .into_iter()
        .map(|v| match v {
            Value::Uuid(u) => Ok(Uuid::from(u.clone())),
            other => Err(Reply::bad_request(format!(
                "lock token {other:?} is not a uuid"
            ))),
        })
        .collect()
}

fn sequence_numbers(body: &OrderedMap<Value, Value>) -> Result<Vec<i64>, Reply> {
    let numbers = items(field(body, "sequence-numbers"));
    if numbers.len() > MAX_ITEMS {
        return Err(Reply::bad_request(format!(
            "{} sequence numbers exceed the limit of {MAX_ITEMS}",
            numbers.len()
        )));
    }
    numbers
        .into_iter()
        .map(|v| {
            as_i64(v)
                .ok_or_else(|| Reply::bad_request(format!("sequence number {v:?} is not a long")))
        })
        .collect()
}

impl Connection {
    /// Checks that a management node's entity exists (caching the backend handle).
    pub(crate) async fn check_entity(&mut self, entity: &EntityPath) -> Result<(), BusError> {
        match entity {
            EntityPath::Queue(_) | EntityPath::Topic(_) => {
                self.mgmt_sender(entity).await.map(|_| ())
            }
            _ => self.mgmt_receiver(entity).await.map(|_| ()),
        }
    }

    async fn mgmt_sender(&mut self, entity: &EntityPath) -> Result<Arc<dyn BusSender>, BusError> {
        let key = entity.to_string().to_ascii_lowercase();
        if let Some(sender) = self.mgmt_senders.get(&key) {
            return Ok(sender.clone());
        }
        let sender: Arc<dyn BusSender> =
            Arc::from(self.shared.bus.sender(&entity.to_string()).await?);
        self.mgmt_senders.insert(key, sender.clone());
        Ok(sender)
    }

    async fn mgmt_receiver(
        &mut self,
        entity: &EntityPath,
    ) -> Result<Arc<dyn BusReceiver>, BusError> {
        let key = entity.to_string().to_ascii_lowercase();
        if let Some(receiver) = self.mgmt_receivers.get(&key) {
            return Ok(receiver.clone());
        }
        let receiver: Arc<dyn BusReceiver> = Arc::from(
            self.shared
                .bus
                .receiver(entity, ReceiveOptions::peek_lock())
                .await?,
        );
        self.mgmt_receivers.insert(key, receiver.clone());
        Ok(receiver)
    }

    /// Handles one management request; returns (reply-to, encoded reply).
    pub(crate) async fn management(
        &mut self,
        entity: &EntityPath,
        payload: &[u8],
    ) -> Option<(Option<String>, Vec<u8>)> {
        let request = match convert::decode_message(payload) {
            Ok(msg) => msg,
            Err(why) => {
                tracing::debug!(%why, "dropping an undecodable management request");
                return None;
            }
        };
        let properties = request.properties.clone().unwrap_or_default();
        let operation = match request
            .application_properties
            .as_ref()
            .and_then(|a| a.0.get("operation"))
        {
            Some(SimpleValue::String(s)) => s.clone(),
            Some(SimpleValue::Symbol(s)) => s.as_str().to_owned(),
            _ => String::new(),
        };
        let body = match request.body {
            Body::Value(AmqpValue(Value::Map(m))) => m,
            _ => OrderedMap::new(),
        };
        let reply = self.operation(entity, &operation, &body).await;
        tracing::debug!(%operation, entity = %entity, status = reply.code, "management request");
        let mut app = vec![
            ("statusCode", SimpleValue::Int(reply.code)),
            ("statusDescription", SimpleValue::String(reply.description)),
        ];
        if let Some(condition) = reply.condition {
            app.push((
                "errorCondition",
                SimpleValue::Symbol(Symbol::from(condition)),
            ));
        }
        match convert::encode_reply(properties.message_id, app, reply.body) {
            Ok(bytes) => Some((properties.reply_to, bytes)),
            Err(why) => {
                tracing::error!(%why, "cannot encode a management reply");
                None
            }
        }
    }

    async fn operation(
        &mut self,
        entity: &EntityPath,
        operation: &str,
        body: &OrderedMap<Value, Value>,
    ) -> Reply {
        let result = match operation {
            "com.microsoft:renew-lock" => self.renew_lock(body).await,
            "com.microsoft:schedule-message" => self.schedule(entity, body).await,
            "com.microsoft:cancel-scheduled-message" => self.cancel_scheduled(entity, body).await,
            "com.microsoft:peek-message" => self.peek(entity, body).await,
            "com.microsoft:receive-by-sequence-number" => self.receive_deferred(entity, body).await,
            "com.microsoft:update-disposition" => self.update_disposition(body).await,
            "com.microsoft:add-rule"
            | "com.microsoft:remove-rule"
            | "com.microsoft:enumerate-rules" => self.rule_operation(entity, operation, body).await,
            other => Err(Reply::fail(
                501,
                "amqp:not-implemented",
                format!("unknown management operation \"{other}\""),
            )),
        };
        result.unwrap_or_else(|reply| reply)
    }

    /// add-rule, remove-rule and enumerate-rules on a subscription's management node, through
    /// the backend's rule management (501 when it has none).
    async fn rule_operation(
        &mut self,
        entity: &EntityPath,
        operation: &str,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let shared = self.shared.clone();
        let manager = shared.bus.rule_manager().ok_or_else(|| {
            Reply::fail(
                501,
                "amqp:not-implemented",
                format!("{operation} is not supported by this backend"),
            )
        })?;
        match operation {
            "com.microsoft:add-rule" => {
                let rule = rules::add_rule_request(body).map_err(Reply::bad_request)?;
                manager
                    .add_rule(entity, rule)
                    .await
                    .map_err(|e| Reply::from_bus(&e))?;
                Ok(Reply::ok(map(vec![])))
            }
            "com.microsoft:remove-rule" => {
                let name = rules::rule_name(body).map_err(Reply::bad_request)?;
                manager
                    .remove_rule(entity, &name)
                    .await
                    .map_err(|e| Reply::from_bus(&e))?;
                Ok(Reply::ok(map(vec![])))
            }
            _ => {
                let (skip, top) = rules::page(body).map_err(Reply::bad_request)?;
                let all = manager
                    .rules(entity)
                    .await
                    .map_err(|e| Reply::from_bus(&e))?;
                let page: Vec<_> = all.into_iter().skip(skip).take(top).collect();
                // Always 200, an empty list past the end: azservicebus 0.25 treats any other
                // status (Service Bus answers 204 for an empty page) as a failure of get_rules.
                Ok(Reply::ok(rules::enumerate_reply(&page)))
            }
        }
    }

    async fn renew_lock(&mut self, body: &OrderedMap<Value, Value>) -> Result<Reply, Reply> {
        let mut expirations = Vec::new();
        for token in lock_tokens(body)? {
            let lock = self.shared.locks.get(&token).ok_or_else(|| {
                Reply::fail(
                    410,
                    "com.microsoft:message-lock-lost",
                    format!("lock token {token} is not held"),
                )
            })?;
            let until = lock
                .receiver
                .renew_lock(&lock.message)
                .await
                .map_err(|e| Reply::from_bus(&e))?;
            self.shared.locks.update_locked_until(&token, until);
            expirations.push(Value::Timestamp(convert::timestamp(until)));
        }
        Ok(Reply::ok(map(vec![(
            "expirations",
            Value::Array(Array(expirations)),
        )])))
    }

    async fn schedule(
        &mut self,
        entity: &EntityPath,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let sender = self
            .mgmt_sender(entity)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        let entries = items(field(body, "messages"));
        if entries.len() > MAX_ITEMS {
            return Err(Reply::bad_request("too many messages to schedule"));
        }
        let mut numbers = Vec::new();
        for entry in entries {
            let Value::Map(entry) = entry else {
                return Err(Reply::bad_request("each scheduled message must be a map"));
            };
            let Some(Value::Binary(bytes)) = field(entry, "message") else {
                return Err(Reply::bad_request(
                    "a scheduled message has no binary \"message\"",
                ));
            };
            let message = convert::decode_message(bytes)
                .and_then(convert::to_bus_message)
                .map_err(Reply::bad_request)?;
            let at = message.scheduled_enqueue_time.ok_or_else(|| {
                Reply::bad_request("a scheduled message carries no x-opt-scheduled-enqueue-time")
            })?;
            let number = sender
                .schedule(message, at)
                .await
                .map_err(|e| Reply::from_bus(&e))?;
            numbers.push(Value::Long(number));
        }
        Ok(Reply::ok(map(vec![(
            "sequence-numbers",
            Value::Array(Array(numbers)),
        )])))
    }

    async fn cancel_scheduled(
        &mut self,
        entity: &EntityPath,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let sender = self
            .mgmt_sender(entity)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        for number in sequence_numbers(body)? {
            sender
                .cancel_scheduled(number)
                .await
                .map_err(|e| Reply::from_bus(&e))?;
        }
        Ok(Reply::ok(map(vec![])))
    }

    async fn peek(
        &mut self,
        entity: &EntityPath,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let receiver = self
            .mgmt_receiver(entity)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        let from = field(body, "from-sequence-number").and_then(as_i64);
        let count = field(body, "message-count")
            .and_then(as_i64)
            .unwrap_or(1)
            .clamp(1, MAX_PEEK as i64) as usize;
        let messages = receiver
            .peek(from, count)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        if messages.is_empty() {
            return Ok(Reply {
                code: 204,
                description: "No messages".to_owned(),
                condition: None,
                body: map(vec![]),
            });
        }
        let mut list = Vec::with_capacity(messages.len());
        for message in &messages {
            let bytes = convert::encode_received(message, Purpose::Peek)
                .map_err(|why| Reply::fail(500, "amqp:internal-error", why))?;
            list.push(map(vec![("message", convert::binary(bytes))]));
        }
        Ok(Reply::ok(map(vec![("messages", Value::List(list))])))
    }

    async fn receive_deferred(
        &mut self,
        entity: &EntityPath,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let receiver = self
            .mgmt_receiver(entity)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        let numbers = sequence_numbers(body)?;
        // receiver-settle-mode 0 (first) is receive-and-delete.
        let delete = field(body, "receiver-settle-mode").and_then(as_i64) == Some(0);
        let messages = receiver
            .receive_deferred(&numbers)
            .await
            .map_err(|e| Reply::from_bus(&e))?;
        let mut list = Vec::with_capacity(messages.len());
        for message in messages {
            let token = message.lock_token.unwrap_or_else(Uuid::new_v4);
            let bytes = convert::encode_received(&message, Purpose::Delivery)
                .map_err(|why| Reply::fail(500, "amqp:internal-error", why))?;
            if delete {
                receiver
                    .complete(&message)
                    .await
                    .map_err(|e| Reply::from_bus(&e))?;
            } else if message.lock_token.is_some() {
                let lock = Lock {
                    receiver: receiver.clone(),
                    message,
                    connection: self.id,
                };
                self.shared.locks.insert(token, lock);
            }
            list.push(map(vec![
                ("lock-token", Value::Uuid(token.into())),
                ("message", convert::binary(bytes)),
            ]));
        }
        Ok(Reply::ok(map(vec![("messages", Value::List(list))])))
    }

    async fn update_disposition(
        &mut self,
        body: &OrderedMap<Value, Value>,
    ) -> Result<Reply, Reply> {
        let status = as_text(field(body, "disposition-status")).unwrap_or_default();
        let settlement = match status.as_str() {
            "completed" => Settlement::Complete,
            "abandoned" => Settlement::Abandon(self.properties_to_modify(body)?),
            "defered" | "deferred" => Settlement::Defer,
            "suspended" => {
                let mut options = DeadLetterOptions::new(
                    as_text(field(body, "deadletter-reason")).unwrap_or_default(),
                    as_text(field(body, "deadletter-description")).unwrap_or_default(),
                );
                options.properties_to_modify = self.properties_to_modify(body)?;
                Settlement::DeadLetter(options)
            }
            other => {
                return Err(Reply::bad_request(format!(
                    "unknown disposition-status \"{other}\""
                )));
            }
        };
        for token in lock_tokens(body)? {
            if let Err(kind) = self.settle(token, settlement.clone()).await {
                let err = BusError::new(kind, format!("settling lock token {token} failed"));
                return Err(Reply::from_bus(&err));
            }
        }
        Ok(Reply::ok(map(vec![])))
    }

    fn properties_to_modify(
        &self,
        body: &OrderedMap<Value, Value>,
    ) -> Result<std::collections::BTreeMap<String, fleet_bus::PropertyValue>, Reply> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(Value::Map(props)) = field(body, "properties-to-modify") {
            for (k, v) in props {
                let Some(name) = as_text(Some(k)) else {
                    continue;
                };
                if let Some(value) =
                    convert::value_to_property(&name, v.clone()).map_err(Reply::bad_request)?
                {
                    out.insert(name, value);
                }
            }
        }
        Ok(out)
    }
}
