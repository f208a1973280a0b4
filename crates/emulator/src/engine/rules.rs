//! Subscription rules changed at run time: add, remove, list. A change takes effect for the
//! next message routed (it is made under the state lock every send takes) and is durable before
//! the call returns (the whole rule set is written through the group-commit writer).

use fleet_bus::{BusError, BusErrorKind, EntityPath, RuleDescription};

use super::load::Role;
use super::state::{Ctx, Kind, RuleEntry, State};
use super::{Emulator, queue};
use crate::config::Rule;
use crate::rules as convert;
use crate::store::{StoredRule, Write, codec};

/// Most rules one subscription may hold (Service Bus' quota).
pub const MAX_RULES_PER_SUBSCRIPTION: usize = 2000;

impl State {
    fn rules_of(&mut self, idx: usize) -> &mut Vec<RuleEntry> {
        match &mut self.entities[idx].kind {
            Kind::Subscription { rules, .. } => rules,
            // Callers resolve `idx` as a subscription first.
            _ => unreachable!("rule management on an entity that is not a subscription"),
        }
    }

    fn persist_rules(&mut self, idx: usize, ctx: &mut Ctx) {
        let entity = self.entities[idx].id;
        let rules = self
            .rules_of(idx)
            .iter()
            .map(|r| StoredRule {
                name: r.rule.name.clone(),
                filter: codec::encode_filter(&r.rule.filter),
                created: r.created,
            })
            .collect();
        ctx.writes.push(Write::Rules {
            entity,
            rules,
            at: ctx.now,
        });
    }

    /// Adds `rule` to subscription `idx`; `AlreadyExists` when a rule of that name (compared
    /// case-insensitively) is there.
    pub(crate) fn add_rule(
        &mut self,
        idx: usize,
        rule: Rule,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let path = self.entities[idx].path.clone();
        let rules = self.rules_of(idx);
        if let Some(existing) = rules
            .iter()
            .find(|r| r.rule.name.eq_ignore_ascii_case(&rule.name))
        {
            return Err(BusError::new(
                BusErrorKind::AlreadyExists,
                format!(
                    "rule \"{}\" already exists in subscription \"{path}\"",
                    existing.rule.name
                ),
            ));
        }
        if rules.len() >= MAX_RULES_PER_SUBSCRIPTION {
            return Err(BusError::new(
                BusErrorKind::QuotaExceeded,
                format!(
                    "subscription \"{path}\" has {} rules, the most Service Bus allows; \
                     rule \"{}\" was not added",
                    rules.len(),
                    rule.name
                ),
            ));
        }
        rules.push(RuleEntry {
            rule,
            created: Some(ctx.now),
        });
        self.persist_rules(idx, ctx);
        Ok(())
    }

    /// Removes the rule named `name` (case-insensitively) from subscription `idx`.
    pub(crate) fn remove_rule(
        &mut self,
        idx: usize,
        name: &str,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let path = self.entities[idx].path.clone();
        let rules = self.rules_of(idx);
        let Some(at) = rules
            .iter()
            .position(|r| r.rule.name.eq_ignore_ascii_case(name))
        else {
            return Err(BusError::new(
                BusErrorKind::EntityNotFound,
                format!("rule \"{name}\" does not exist in subscription \"{path}\""),
            ));
        };
        rules.remove(at);
        self.persist_rules(idx, ctx);
        Ok(())
    }
}

impl Emulator {
    fn resolve_subscription(&self, subscription: &EntityPath) -> Result<usize, BusError> {
        if subscription.is_dead_letter() {
            return Err(BusError::invalid(format!(
                "\"{subscription}\" is a dead-letter subqueue; rules belong to topic subscriptions"
            )));
        }
        let (idx, role) = self.lookup(&subscription.to_string(), subscription)?;
        if role != Role::Subscription {
            let what = if role == Role::Queue {
                "a queue"
            } else {
                "a topic"
            };
            return Err(BusError::invalid(format!(
                "\"{subscription}\" is {what}; rules belong to topic subscriptions"
            )));
        }
        Ok(idx)
    }

    /// Adds a rule to a topic subscription. Messages sent (or scheduled messages enqueued)
    /// after it returns are routed by it; the change is committed before it returns.
    ///
    /// Errors: `EntityNotFound` for an unknown subscription; `AlreadyExists` when the name is
    /// taken; `InvalidArgument` naming a bad name, an SQL filter other than the true and false
    /// filters, a session field of a correlation filter, or an action (none are emulated);
    /// `QuotaExceeded` past 2000 rules.
    pub async fn add_rule(
        &self,
        subscription: &EntityPath,
        rule: RuleDescription,
    ) -> Result<(), BusError> {
        let idx = self.resolve_subscription(subscription)?;
        let rule = convert::to_engine(rule, subscription)?;
        self.exec(|st, ctx| st.add_rule(idx, rule, ctx)).await
    }

    /// Removes a rule from a topic subscription by name (case-insensitive); `EntityNotFound`
    /// naming the rule when there is none, or naming the subscription when it does not exist.
    /// Removing every rule, `$Default` included, leaves a subscription that takes no messages.
    pub async fn remove_rule(&self, subscription: &EntityPath, name: &str) -> Result<(), BusError> {
        let idx = self.resolve_subscription(subscription)?;
        self.exec(|st, ctx| st.remove_rule(idx, name, ctx)).await
    }

    /// The rules in force on a topic subscription, in the order they were added: the
    /// configured ones (or `$Default`, a true filter, when `Config.json` lists none) until the
    /// first run-time change, the stored set afterwards.
    pub async fn rules(&self, subscription: &EntityPath) -> Result<Vec<RuleDescription>, BusError> {
        let idx = self.resolve_subscription(subscription)?;
        let rules = self.exec(|st, _| Ok(st.rules_of(idx).clone())).await?;
        Ok(rules
            .into_iter()
            .map(|r| convert::to_port(r.rule, r.created.map(queue::to_time)))
            .collect())
    }
}
