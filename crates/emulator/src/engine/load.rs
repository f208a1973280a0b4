//! Building the in-memory state at open: entities from the topology, messages and
//! duplicate-detection history from the data file.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::Connection;

use super::queue::{Content, Msg, Queue};
use super::state::{Dedupe, Entity, Kind, Limits, RuleEntry, State, millis};
use crate::config::{Filter, ReceiveSettings, Rule, SubscriptionConfig, Topology};
use crate::error::{EmulatorError, EmulatorErrorKind};
use crate::store;

/// Lower-cased path → (entity index, role).
pub(crate) type Names = HashMap<String, (usize, Role)>;

/// What a name resolves to, fixed for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Queue,
    Topic,
    Subscription,
}

fn entity(
    conn: &Connection,
    key: &str,
    path: String,
    kind: Kind,
    settings: ReceiveSettings,
) -> Result<Entity, EmulatorError> {
    let (id, next_seq) = store::entity_id(conn, key)?;
    Ok(Entity {
        id,
        path,
        kind,
        settings,
        topic_ttl: None,
        dedupe: None,
        next_seq,
        main: Queue::default(),
        dlq: Queue::default(),
        bytes: 0,
    })
}

fn dedupe(
    conn: &Connection,
    e: &mut Entity,
    window: Option<std::time::Duration>,
    now: i64,
) -> Result<(), EmulatorError> {
    let Some(window) = window else { return Ok(()) };
    let window = millis(window);
    let mut d = Dedupe {
        window,
        ..Dedupe::default()
    };
    for (id, at) in store::load_seen(conn, e.id, now.saturating_sub(window))? {
        d.seen.insert(id.clone(), at);
        d.order.push_back((at, id));
    }
    e.dedupe = Some(d);
    Ok(())
}

/// The rules `Config.json` gives a subscription: its `Rules`, or Service Bus' `$Default` true
/// rule when it lists none.
pub(crate) fn configured_rules(sub: &SubscriptionConfig) -> Vec<RuleEntry> {
    if sub.rules.is_empty() {
        return vec![RuleEntry {
            rule: Rule {
                name: fleet_bus::DEFAULT_RULE_NAME.to_owned(),
                filter: Filter::True,
            },
            created: None,
        }];
    }
    sub.rules
        .iter()
        .map(|rule| RuleEntry {
            rule: rule.clone(),
            created: None,
        })
        .collect()
}

/// The rules in force on subscription `e`: the set stored by run-time rule management when
/// there is one (it wins over `Config.json`, which then only seeded it), else the configured.
fn rules(
    conn: &Connection,
    e: &Entity,
    sub: &SubscriptionConfig,
) -> Result<Vec<RuleEntry>, EmulatorError> {
    let configured = configured_rules(sub);
    let Some(stored) = store::load_rules(conn, e.id)? else {
        return Ok(configured);
    };
    let mut rules = Vec::with_capacity(stored.len());
    for row in stored {
        let filter = store::codec::decode_filter(&row.filter).map_err(|why| {
            EmulatorError::new(
                EmulatorErrorKind::Storage,
                format!("rule \"{}\" of \"{}\" is corrupt: {why}", row.name, e.path),
            )
        })?;
        rules.push(RuleEntry {
            rule: Rule {
                name: row.name,
                filter,
            },
            created: row.created,
        });
    }
    let same = rules.len() == configured.len()
        && rules.iter().zip(&configured).all(|(a, b)| a.rule == b.rule);
    if !same {
        tracing::warn!(
            subscription = %e.path,
            stored = rules.len(),
            configured = configured.len(),
            "the subscription's rules were changed at run time; the stored rules apply and its \
             Rules in Config.json are ignored"
        );
    }
    Ok(rules)
}

/// The state for `topology`, with every message stored in `conn`.
pub(crate) fn state(
    conn: &Connection,
    topology: &Topology,
    limits: Limits,
    now: i64,
) -> Result<(State, Names), EmulatorError> {
    let mut entities = Vec::new();
    let mut names = HashMap::new();
    for q in &topology.queues {
        let mut e = entity(
            conn,
            &q.name.to_ascii_lowercase(),
            q.name.clone(),
            Kind::Queue,
            q.settings.clone(),
        )?;
        dedupe(conn, &mut e, q.duplicate_detection, now)?;
        names.insert(q.name.to_ascii_lowercase(), (entities.len(), Role::Queue));
        entities.push(e);
    }
    for t in &topology.topics {
        let topic_idx = entities.len();
        let mut e = entity(
            conn,
            &t.name.to_ascii_lowercase(),
            t.name.clone(),
            Kind::Topic {
                subscriptions: Vec::new(),
            },
            ReceiveSettings::default(),
        )?;
        e.topic_ttl = t.default_ttl;
        dedupe(conn, &mut e, t.duplicate_detection, now)?;
        names.insert(t.name.to_ascii_lowercase(), (topic_idx, Role::Topic));
        entities.push(e);
        let mut subs = Vec::new();
        for s in &t.subscriptions {
            let path = format!("{}/Subscriptions/{}", t.name, s.name);
            let key = path.to_ascii_lowercase();
            let kind = Kind::Subscription {
                topic: topic_idx,
                rules: Vec::new(),
            };
            let mut e = entity(conn, &key, path, kind, s.settings.clone())?;
            let rules = rules(conn, &e, s)?;
            e.kind = Kind::Subscription {
                topic: topic_idx,
                rules,
            };
            names.insert(key, (entities.len(), Role::Subscription));
            subs.push(entities.len());
            entities.push(e);
        }
        entities[topic_idx].kind = Kind::Topic {
            subscriptions: subs,
        };
    }
    for idx in 0..entities.len() {
        load_messages(conn, &mut entities, idx)?;
    }
    let mut state = State {
        entities,
        names: HashMap::new(),
        next_due: i64::MIN,
        limits,
    };
    state.names = names.iter().map(|(k, (i, _))| (k.clone(), *i)).collect();
    Ok((state, names))
}

fn load_messages(
    conn: &Connection,
    entities: &mut [Entity],
    idx: usize,
) -> Result<(), EmulatorError> {
    let rows = store::load_messages(conn, entities[idx].id)?;
    let mut max_seq = None;
    for row in rows {
        let message = store::codec::decode(&row.headers, Bytes::from(row.body)).map_err(|why| {
            EmulatorError::new(
                EmulatorErrorKind::Storage,
                format!(
                    "message {} of \"{}\" is corrupt: {why}",
                    row.seq, entities[idx].path
                ),
            )
        })?;
        let size = message.size() as u64;
        let msg = Msg {
            seq: row.seq,
            content: Arc::new(Content {
                message,
                headers: Arc::new(row.headers),
            }),
            meta: row.meta,
            size,
        };
        max_seq = max_seq.max(Some(row.seq));
        let e = &mut entities[idx];
        e.bytes += size;
        if msg.meta.dlq {
            e.dlq.insert(msg)
        } else {
            e.main.insert(msg)
        }
    }
    // Copies in subscriptions carry their topic's sequence numbers: keep the topic's counter ahead.
    let owner = match entities[idx].kind {
        Kind::Subscription { topic, .. } => topic,
        _ => idx,
    };
    if let Some(max) = max_seq {
        let e = &mut entities[owner];
        e.next_seq = e.next_seq.max(max + 1);
    }
    Ok(())
}
