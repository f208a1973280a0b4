//! Rule evaluation: which subscriptions a topic message is copied to.

use fleet_bus::{Message, PropertyValue};

use crate::config::{CorrelationFilter, Filter, SubscriptionConfig};

impl Filter {
    /// Whether the message passes this filter.
    pub fn matches(&self, msg: &Message) -> bool {
        match self {
            Filter::True => true,
            Filter::False => false,
            Filter::Correlation(filter) => filter.matches(msg),
        }
    }
}

fn same(expected: &Option<String>, actual: &Option<String>) -> bool {
    expected.as_ref().is_none_or(|e| actual.as_ref() == Some(e))
}

fn same_value(expected: &PropertyValue, actual: &PropertyValue) -> bool {
    match (expected, actual) {
        // Config.json writes numbers without a type; compare them numerically.
        (PropertyValue::Int(a), PropertyValue::Double(b))
        | (PropertyValue::Double(b), PropertyValue::Int(a)) => (*a as f64) == *b,
        _ => expected == actual,
    }
}

impl CorrelationFilter {
    /// Every field the filter sets equals the message's (strings compare case-sensitively,
    /// as in Service Bus); a filter that sets nothing matches everything.
    pub fn matches(&self, msg: &Message) -> bool {
        same(&self.content_type, &msg.content_type)
            && same(&self.correlation_id, &msg.correlation_id)
            && same(&self.subject, &msg.subject)
            && same(&self.message_id, &msg.message_id)
            && same(&self.reply_to, &msg.reply_to)
            && same(&self.to, &msg.to)
            && self.properties.iter().all(|(name, expected)| {
                msg.application_properties
                    .get(name)
                    .is_some_and(|actual| same_value(expected, actual))
            })
    }
}

impl SubscriptionConfig {
    /// Any rule matches; a subscription without rules takes everything (Service Bus' `$Default`
    /// rule is a true filter).
    pub fn accepts(&self, msg: &Message) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|rule| rule.filter.matches(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rule;

    fn sub(rules: Vec<Filter>) -> SubscriptionConfig {
        let mut sub = SubscriptionConfig::new("s");
        sub.rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, filter)| Rule {
                name: format!("r{i}"),
                filter,
            })
            .collect();
        sub
    }

    #[test]
    fn correlation_filter_needs_every_set_field() {
        let mut filter = CorrelationFilter {
            subject: Some("Deploy".into()),
            ..Default::default()
        };
        filter.properties.insert("tenant".into(), "t1".into());
        let f = Filter::Correlation(filter);
        assert!(
            f.matches(
                &Message::new("x")
                    .with_subject("Deploy")
                    .with_property("tenant", "t1")
            )
        );
        assert!(!f.matches(&Message::new("x").with_subject("Deploy")));
        assert!(
            !f.matches(
                &Message::new("x")
                    .with_subject("deploy")
                    .with_property("tenant", "t1")
            )
        );
        assert!(!f.matches(&Message::new("x").with_property("tenant", "t1")));
    }

    #[test]
    fn numbers_compare_numerically() {
        let mut filter = CorrelationFilter::default();
        filter.properties.insert("v".into(), PropertyValue::Int(2));
        let f = Filter::Correlation(filter);
        assert!(f.matches(&Message::new("x").with_property("v", PropertyValue::Double(2.0))));
        assert!(!f.matches(&Message::new("x").with_property("v", "2")));
    }

    #[test]
    fn no_rules_means_everything_and_any_rule_suffices() {
        assert!(sub(vec![]).accepts(&Message::new("x")));
        assert!(!sub(vec![Filter::False]).accepts(&Message::new("x")));
        assert!(sub(vec![Filter::False, Filter::True]).accepts(&Message::new("x")));
    }
}
