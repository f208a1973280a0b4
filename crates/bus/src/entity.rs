//! Entity addresses in Service Bus path syntax.

use std::fmt;
use std::str::FromStr;

use crate::error::BusError;

/// The path suffix Service Bus uses for a dead-letter subqueue.
pub const DEAD_LETTER_SUFFIX: &str = "$DeadLetterQueue";

/// A queue, topic or subscription — or the dead-letter subqueue of a queue or subscription.
///
/// Paths follow Service Bus: `q`, `q/$DeadLetterQueue`, `t/Subscriptions/s`,
/// `t/Subscriptions/s/$DeadLetterQueue`. A bare name parses as [`EntityPath::Queue`]; the
/// engine resolves it to a topic when that is what exists (senders address both the same way).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityPath {
    /// A queue.
    Queue(String),
    /// A topic (send only).
    Topic(String),
    /// A topic subscription.
    Subscription {
        /// The topic's name.
        topic: String,
        /// The subscription's name.
        subscription: String,
    },
    /// The dead-letter subqueue of the queue or subscription inside.
    DeadLetter(Box<EntityPath>),
}

impl EntityPath {
    /// A queue path.
    pub fn queue(name: impl Into<String>) -> Self {
        Self::Queue(name.into())
    }

    /// A subscription path.
    pub fn subscription(topic: impl Into<String>, subscription: impl Into<String>) -> Self {
        Self::Subscription {
            topic: topic.into(),
            subscription: subscription.into(),
        }
    }

    /// The dead-letter subqueue of this entity (idempotent).
    pub fn dead_letter(self) -> Self {
        match self {
            Self::DeadLetter(_) => self,
            other => Self::DeadLetter(Box::new(other)),
        }
    }

    /// Whether this addresses a dead-letter subqueue.
    pub fn is_dead_letter(&self) -> bool {
        matches!(self, Self::DeadLetter(_))
    }

    /// The entity without any dead-letter suffix.
    pub fn base(&self) -> &EntityPath {
        match self {
            Self::DeadLetter(inner) => inner.base(),
            other => other,
        }
    }

    /// Parses a Service Bus entity path; errors name the path.
    pub fn parse(path: &str) -> Result<Self, BusError> {
        let bad = |why: &str| BusError::invalid(format!("invalid entity path \"{path}\": {why}"));
        let trimmed = path.trim_matches('/');
        let mut parts: Vec<&str> = trimmed.split('/').collect();
        let dead_letter = parts
            .last()
            .is_some_and(|p| p.eq_ignore_ascii_case(DEAD_LETTER_SUFFIX));
        if dead_letter {
            parts.pop();
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty segment"));
        }
        let base = match parts.as_slice() {
            [name] => Self::Queue((*name).to_owned()),
            [topic, keyword, sub] if keyword.eq_ignore_ascii_case("Subscriptions") => {
                Self::subscription(*topic, *sub)
            }
            _ => {
                return Err(bad(
                    "expected NAME, NAME/$DeadLetterQueue or TOPIC/Subscriptions/NAME",
                ));
            }
        };
        Ok(if dead_letter {
            base.dead_letter()
        } else {
            base
        })
    }
}

impl FromStr for EntityPath {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(name) | Self::Topic(name) => f.write_str(name),
            Self::Subscription {
                topic,
                subscription,
            } => {
                write!(f, "{topic}/Subscriptions/{subscription}")
            }
            Self::DeadLetter(inner) => write!(f, "{inner}/{DEAD_LETTER_SUFFIX}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (text, path) in [
            ("q1", EntityPath::queue("q1")),
            ("q1/$DeadLetterQueue", EntityPath::queue("q1").dead_letter()),
            ("t1/Subscriptions/s1", EntityPath::subscription("t1", "s1")),
            (
                "t1/Subscriptions/s1/$DeadLetterQueue",
                EntityPath::subscription("t1", "s1").dead_letter(),
            ),
        ] {
            assert_eq!(EntityPath::parse(text).unwrap(), path, "{text}");
            assert_eq!(path.to_string(), text);
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let path = EntityPath::parse("t1/subscriptions/s1/$deadletterqueue").unwrap();
        assert_eq!(path, EntityPath::subscription("t1", "s1").dead_letter());
    }

    #[test]
    fn malformed_paths_are_rejected_naming_the_path() {
        for text in ["", "a//b", "t1/Queues/s1", "a/b"] {
            let err = EntityPath::parse(text).unwrap_err();
            assert!(err.to_string().contains(&format!("\"{text}\"")), "{err}");
        }
    }

    #[test]
    fn dead_letter_is_idempotent() {
        let dl = EntityPath::queue("q").dead_letter().dead_letter();
        assert_eq!(dl.to_string(), "q/$DeadLetterQueue");
        assert_eq!(dl.base(), &EntityPath::queue("q"));
    }
}
