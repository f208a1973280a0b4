//! Subscription rules managed at run time: what a backend that supports rule management
//! implements ([`RuleManager`], reached through [`Bus::rule_manager`](crate::Bus::rule_manager)),
//! and the rule descriptions it takes and returns.
//!
//! The types carry everything a Service Bus client can ask for (SQL filters of any text,
//! session fields of correlation filters, SQL actions); a backend refuses what it does not
//! evaluate with `InvalidArgument` naming the value, rather than storing a rule that would
//! route differently from Service Bus.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::entity::EntityPath;
use crate::error::BusError;
use crate::message::PropertyValue;

/// The name Service Bus gives the rule every new subscription starts with (a true filter).
pub const DEFAULT_RULE_NAME: &str = "$Default";

/// What a rule matches.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleFilter {
    /// Every message.
    True,
    /// No message.
    False,
    /// A SQL filter expression, as written.
    Sql(String),
    /// Equality on system and application properties.
    Correlation(CorrelationRuleFilter),
}

/// A correlation filter: every field that is set must equal the message's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorrelationRuleFilter {
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `message-id`.
    pub message_id: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `reply-to`.
    pub reply_to: Option<String>,
    /// The subject (`label` on the wire).
    pub subject: Option<String>,
    /// `session-id`.
    pub session_id: Option<String>,
    /// `reply-to-session-id`.
    pub reply_to_session_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// Application properties.
    pub properties: BTreeMap<String, PropertyValue>,
}

/// A rule of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDescription {
    /// Its name, unique (case-insensitively) within the subscription.
    pub name: String,
    /// What it matches.
    pub filter: RuleFilter,
    /// A SQL action applied to matching messages; `None`: no action.
    pub action: Option<String>,
    /// When it was created, when the backend knows.
    pub created_at: Option<DateTime<Utc>>,
}

impl RuleDescription {
    /// A rule without an action.
    pub fn new(name: impl Into<String>, filter: RuleFilter) -> Self {
        Self {
            name: name.into(),
            filter,
            action: None,
            created_at: None,
        }
    }
}

/// Changes and lists the rules of topic subscriptions at run time.
///
/// Errors: an unknown subscription is `EntityNotFound` naming it; adding a name that exists
/// is `AlreadyExists` naming the rule; removing an unknown rule is `EntityNotFound` naming the
/// rule; a filter or action the backend cannot evaluate is `InvalidArgument` naming the value.
#[async_trait]
pub trait RuleManager: Send + Sync {
    /// Adds `rule` to `subscription`; messages sent afterwards are routed by it.
    async fn add_rule(
        &self,
        subscription: &EntityPath,
        rule: RuleDescription,
    ) -> Result<(), BusError>;

    /// Removes the rule named `name` from `subscription`.
    async fn remove_rule(&self, subscription: &EntityPath, name: &str) -> Result<(), BusError>;

    /// The rules of `subscription`, in the order they were added.
    async fn rules(&self, subscription: &EntityPath) -> Result<Vec<RuleDescription>, BusError>;
}
