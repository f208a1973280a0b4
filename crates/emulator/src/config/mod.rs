//! The topology the engine serves: queues, topics, subscriptions and their rules, with the
//! settings Service Bus gives them. Loaded from the official emulator's `Config.json`
//! ([`Topology::from_json`]) or built in code.

mod parse;

pub(crate) use parse::sql_filter;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fleet_bus::PropertyValue;

use crate::error::{EmulatorError, EmulatorErrorKind};

/// Service Bus' default lock duration.
pub const DEFAULT_LOCK_DURATION: Duration = Duration::from_secs(60);
/// Service Bus' default maximum delivery count.
pub const DEFAULT_MAX_DELIVERY_COUNT: u32 = 10;
/// Service Bus' default duplicate-detection history window.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// The largest `Config.json` accepted (bounded before parsing).
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// The whole namespace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Topology {
    /// The namespace name (informational; clients address entities by name alone).
    pub namespace: String,
    /// Queues.
    pub queues: Vec<QueueConfig>,
    /// Topics with their subscriptions.
    pub topics: Vec<TopicConfig>,
}

/// Settings of an entity messages are received from (a queue or a subscription).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveSettings {
    /// How long a peek-lock delivery stays locked.
    pub lock_duration: Duration,
    /// Deliveries after which an abandoned or expired-lock message is dead-lettered.
    pub max_delivery_count: u32,
    /// Time to live of messages that set none (and the cap for those that do); `None`: forever.
    pub default_ttl: Option<Duration>,
    /// Expired messages go to the dead-letter subqueue (`TTLExpiredException`) instead of away.
    pub dead_lettering_on_expiration: bool,
}

impl Default for ReceiveSettings {
    fn default() -> Self {
        Self {
            lock_duration: DEFAULT_LOCK_DURATION,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            default_ttl: None,
            dead_lettering_on_expiration: false,
        }
    }
}

/// A queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Its name.
    pub name: String,
    /// Lock, delivery and expiry settings.
    pub settings: ReceiveSettings,
    /// Duplicate detection on `MessageId` within this window; `None`: off.
    pub duplicate_detection: Option<Duration>,
}

impl QueueConfig {
    /// A queue with Service Bus' defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            settings: ReceiveSettings::default(),
            duplicate_detection: None,
        }
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// Its name.
    pub name: String,
    /// Time to live of messages that set none; `None`: forever.
    pub default_ttl: Option<Duration>,
    /// Duplicate detection on `MessageId` within this window; `None`: off.
    pub duplicate_detection: Option<Duration>,
    /// Its subscriptions.
    pub subscriptions: Vec<SubscriptionConfig>,
}

impl TopicConfig {
    /// A topic with Service Bus' defaults and no subscriptions.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            default_ttl: None,
            duplicate_detection: None,
            subscriptions: Vec::new(),
        }
    }
}

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionConfig {
    /// Its name.
    pub name: String,
    /// Lock, delivery and expiry settings.
    pub settings: ReceiveSettings,
    /// A message is copied here when any rule matches; no rules means every message.
    pub rules: Vec<Rule>,
}

impl SubscriptionConfig {
    /// A subscription with defaults and no rules (receives everything).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            settings: ReceiveSettings::default(),
            rules: Vec::new(),
        }
    }
}

/// A subscription rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// What it matches.
    pub filter: Filter,
}

/// The filters the engine evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches everything (SQL `1=1` / `TRUE`).
    True,
    /// Matches nothing (SQL `1=0` / `FALSE`).
    False,
    /// Exact matches on system and application properties, all of which must hold.
    Correlation(CorrelationFilter),
}

/// A correlation filter: every field that is set must equal the message's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorrelationFilter {
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Label`, i.e. the message subject.
    pub subject: Option<String>,
    /// `MessageId`.
    pub message_id: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// Application properties.
    pub properties: BTreeMap<String, PropertyValue>,
}

impl Topology {
    /// Parses the official Service Bus emulator's `Config.json`. Errors name the field, e.g.
    /// `UserConfig.Namespaces[0].Queues[1].Properties.LockDuration: invalid ISO-8601 duration "PT1X"`.
    pub fn from_json(text: &str) -> Result<Self, EmulatorError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(EmulatorError::config(
                "Config.json",
                format!(
                    "is {} bytes, more than the {MAX_CONFIG_BYTES} accepted",
                    text.len()
                ),
            ));
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| EmulatorError::config("Config.json", format!("not valid JSON: {e}")))?;
        parse::topology(&value)
    }

    /// Reads and parses a `Config.json` file.
    pub fn from_file(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            EmulatorError::new(
                EmulatorErrorKind::Io,
                format!("cannot read {}", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_json(&text)
    }

    /// Adds a queue.
    pub fn with_queue(mut self, queue: QueueConfig) -> Self {
        self.queues.push(queue);
        self
    }

    /// Adds a topic.
    pub fn with_topic(mut self, topic: TopicConfig) -> Self {
        self.topics.push(topic);
        self
    }

    /// Checks names (non-empty, allowed characters, unique case-insensitively) for topologies
    /// built in code; `from_json` checks the same while parsing.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        parse::validate_names(self)
    }
}
