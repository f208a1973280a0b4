//! Rule descriptions of the Bus port ([`fleet_bus::RuleDescription`]) to and from the rules the
//! engine evaluates, and rule management of [`InProcessBus`].
//!
//! The engine evaluates correlation filters and the true and false filters; everything else a
//! Service Bus client can ask for (other SQL expressions, session fields, SQL actions) is
//! refused with `InvalidArgument` naming the value, as `Config.json` loading refuses it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fleet_bus::{
    BusError, CorrelationRuleFilter, DEFAULT_RULE_NAME, EntityPath, RuleDescription, RuleFilter,
    RuleManager,
};

use crate::config::{CorrelationFilter, Filter, Rule, sql_filter};
use crate::inprocess::InProcessBus;

/// Longest rule name Service Bus accepts.
pub const MAX_RULE_NAME_LEN: usize = 50;

fn check_name(name: &str, subscription: &EntityPath) -> Result<(), BusError> {
    if name.is_empty() {
        return Err(BusError::invalid(format!(
            "a rule of subscription \"{subscription}\" needs a name"
        )));
    }
    if name.chars().count() > MAX_RULE_NAME_LEN {
        return Err(BusError::invalid(format!(
            "rule name \"{name}\" is longer than {MAX_RULE_NAME_LEN} characters"
        )));
    }
    if name.eq_ignore_ascii_case(DEFAULT_RULE_NAME) {
        return Ok(());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(BusError::invalid(format!(
            "rule name \"{name}\" contains '{bad}' (allowed: letters, digits, . - _)"
        )));
    }
    Ok(())
}

/// The engine's rule for a port description, or `InvalidArgument` naming what is not emulated.
pub(crate) fn to_engine(
    rule: RuleDescription,
    subscription: &EntityPath,
) -> Result<Rule, BusError> {
    let name = rule.name;
    check_name(&name, subscription)?;
    if let Some(action) = rule.action.filter(|a| !a.trim().is_empty()) {
        return Err(BusError::invalid(format!(
            "rule \"{name}\": SQL action \"{action}\" is not emulated (rule actions are not supported)"
        )));
    }
    let filter = match rule.filter {
        RuleFilter::True => Filter::True,
        RuleFilter::False => Filter::False,
        RuleFilter::Sql(expression) => sql_filter(&expression).ok_or_else(|| {
            BusError::invalid(format!(
                "rule \"{name}\": unsupported SQL filter \"{expression}\" \
                 (only 1=1 / TRUE and 1=0 / FALSE are emulated)"
            ))
        })?,
        RuleFilter::Correlation(c) => {
            for (field, value) in [
                ("session-id", &c.session_id),
                ("reply-to-session-id", &c.reply_to_session_id),
            ] {
                if let Some(value) = value {
                    return Err(BusError::invalid(format!(
                        "rule \"{name}\": correlation filter on {field} \"{value}\" is not \
                         emulated (sessions are not supported)"
                    )));
                }
            }
            Filter::Correlation(CorrelationFilter {
                content_type: c.content_type,
                correlation_id: c.correlation_id,
                subject: c.subject,
                message_id: c.message_id,
                reply_to: c.reply_to,
                to: c.to,
                properties: c.properties,
            })
        }
    };
    Ok(Rule { name, filter })
}

/// The port description of an engine rule.
pub(crate) fn to_port(rule: Rule, created_at: Option<DateTime<Utc>>) -> RuleDescription {
    let filter = match rule.filter {
        Filter::True => RuleFilter::True,
        Filter::False => RuleFilter::False,
        Filter::Correlation(c) => RuleFilter::Correlation(CorrelationRuleFilter {
            correlation_id: c.correlation_id,
            message_id: c.message_id,
            to: c.to,
            reply_to: c.reply_to,
            subject: c.subject,
            session_id: None,
            reply_to_session_id: None,
            content_type: c.content_type,
            properties: c.properties,
        }),
    };
    RuleDescription {
        name: rule.name,
        filter,
        action: None,
        created_at,
    }
}

#[async_trait]
impl RuleManager for InProcessBus {
    async fn add_rule(
        &self,
        subscription: &EntityPath,
        rule: RuleDescription,
    ) -> Result<(), BusError> {
        self.emulator().add_rule(subscription, rule).await
    }

    async fn remove_rule(&self, subscription: &EntityPath, name: &str) -> Result<(), BusError> {
        self.emulator().remove_rule(subscription, name).await
    }

    async fn rules(&self, subscription: &EntityPath) -> Result<Vec<RuleDescription>, BusError> {
        self.emulator().rules(subscription).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_bus::BusErrorKind;

    fn sub() -> EntityPath {
        EntityPath::subscription("t", "s")
    }

    fn invalid(rule: RuleDescription) -> String {
        let err = to_engine(rule, &sub()).unwrap_err();
        assert_eq!(err.kind(), BusErrorKind::InvalidArgument, "{err}");
        err.to_string()
    }

    #[test]
    fn what_is_not_emulated_is_refused_by_name() {
        let msg = invalid(RuleDescription::new(
            "r",
            RuleFilter::Sql("color = 'red'".into()),
        ));
        assert!(msg.contains("\"color = 'red'\""), "{msg}");
        let mut with_action = RuleDescription::new("r", RuleFilter::True);
        with_action.action = Some("SET a = 1".into());
        assert!(invalid(with_action).contains("\"SET a = 1\""));
        let session = RuleFilter::Correlation(CorrelationRuleFilter {
            session_id: Some("s1".into()),
            ..CorrelationRuleFilter::default()
        });
        assert!(invalid(RuleDescription::new("r", session)).contains("session-id \"s1\""));
        assert!(invalid(RuleDescription::new("a b", RuleFilter::True)).contains("\"a b\""));
        assert!(invalid(RuleDescription::new("", RuleFilter::True)).contains("needs a name"));
        let long = "x".repeat(MAX_RULE_NAME_LEN + 1);
        assert!(invalid(RuleDescription::new(long.clone(), RuleFilter::True)).contains(&long));
    }

    #[test]
    fn sql_true_and_false_and_blank_actions_are_accepted() {
        let mut rule = RuleDescription::new("$Default", RuleFilter::Sql(" 1 = 1 ".into()));
        rule.action = Some("  ".into());
        assert_eq!(to_engine(rule, &sub()).unwrap().filter, Filter::True);
        let rule = RuleDescription::new("no", RuleFilter::Sql("FALSE".into()));
        assert_eq!(to_engine(rule, &sub()).unwrap().filter, Filter::False);
    }

    #[test]
    fn correlation_filters_round_trip() {
        let mut c = CorrelationRuleFilter {
            subject: Some("Deploy".into()),
            content_type: Some("application/json".into()),
            ..CorrelationRuleFilter::default()
        };
        c.properties.insert("tenant".into(), "t1".into());
        let port = RuleDescription::new("deploys", RuleFilter::Correlation(c));
        let engine = to_engine(port.clone(), &sub()).unwrap();
        assert_eq!(to_port(engine, None), port);
    }
}
