//! `$cbs` put-token: validate a SAS token and authorise its audience on this connection.
//!
//! Replies carry `status-code` (int; 202 accepted, 401 refused) and `status-description`, with
//! `correlation-id` = the request's `message-id`. The Rust client requires 202 exactly.

use fe2o3_amqp_types::messaging::{AmqpValue, Body};
use fe2o3_amqp_types::primitives::{SimpleValue, Value};

use crate::connection::Connection;
use crate::{address, auth, convert};

/// Most token scopes one connection keeps.
const MAX_SCOPES: usize = 1_024;

impl Connection {
    /// Handles one put-token request; returns (reply-to, encoded reply), `None` when the
    /// request is too broken to answer.
    pub(crate) fn put_token(&mut self, payload: &[u8]) -> Option<(Option<String>, Vec<u8>)> {
        let request = match convert::decode_message(payload) {
            Ok(msg) => msg,
            Err(why) => {
                tracing::debug!(%why, "dropping an undecodable put-token request");
                return None;
            }
        };
        let properties = request.properties.clone().unwrap_or_default();
        let app = request
            .application_properties
            .as_ref()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        let text = |key: &str| match app.get(key) {
            Some(SimpleValue::String(s)) => Some(s.clone()),
            Some(SimpleValue::Symbol(s)) => Some(s.as_str().to_owned()),
            _ => None,
        };
        let operation = text("operation").unwrap_or_default();
        let name = text("name").unwrap_or_default();
        let token = match &request.body {
            Body::Value(AmqpValue(Value::String(s))) => Some(s.clone()),
            _ => None,
        };
        let outcome = if operation != "put-token" {
            Err((400, format!("unsupported CBS operation \"{operation}\"")))
        } else if name.is_empty() {
            Err((400, "the put-token request names no audience".to_owned()))
        } else {
            let keys = &self.shared.options.keys;
            let now = chrono::Utc::now().timestamp();
            match (keys.is_empty(), token) {
                (true, _) => Ok(()),
                (false, None) => Err((401, "the put-token request carries no token".to_owned())),
                (false, Some(token)) => {
                    auth::validate(&token, &name, keys, now).map_err(|why| (401, why))
                }
            }
        };
        let (code, description) = match outcome {
            Ok(()) => {
                let scope = address::key(&name);
                if !self.authorized.contains(&scope) {
                    // Bounded: a client putting endless tokens must not grow this forever.
                    if self.authorized.len() >= MAX_SCOPES {
                        self.authorized.remove(0);
                    }
                    self.authorized.push(scope);
                }
                (202, "Accepted".to_owned())
            }
            Err((code, why)) => {
                tracing::info!(audience = %name, %why, "put-token refused");
                (code, why)
            }
        };
        let reply = convert::encode_reply(
            properties.message_id,
            vec![
                ("status-code", SimpleValue::Int(code)),
                ("status-description", SimpleValue::String(description)),
            ],
            Value::Null,
        );
        match reply {
            Ok(bytes) => Some((properties.reply_to, bytes)),
            Err(why) => {
                tracing::error!(%why, "cannot encode a put-token reply");
                None
            }
        }
    }
}
