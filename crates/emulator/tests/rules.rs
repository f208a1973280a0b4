//! Subscription rules changed at run time: add, remove and list, their effect on routing, their
//! errors, and their durability across restarts (including a `Config.json` that disagrees).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{
    Bus, BusErrorKind, CorrelationRuleFilter, DEFAULT_RULE_NAME, EntityPath, Message,
    PropertyValue, ReceiveMode, RuleDescription, RuleFilter,
};
use fleet_emulator::{
    Clock, CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, ManualClock, Rule,
    SubscriptionConfig, TopicConfig, Topology,
};
use proptest::prelude::*;

const NO_WAIT: Duration = Duration::ZERO;

/// Topic `t` with `all` (no configured rules: `$Default`) and `deploys` (a configured
/// correlation rule on the subject).
fn topology(deploys_subject: &str) -> Topology {
    let mut deploys = SubscriptionConfig::new("deploys");
    deploys.rules.push(Rule {
        name: "subject".into(),
        filter: Filter::Correlation(CorrelationFilter {
            subject: Some(deploys_subject.into()),
            ..CorrelationFilter::default()
        }),
    });
    let mut t = TopicConfig::new("t");
    t.subscriptions.push(SubscriptionConfig::new("all"));
    t.subscriptions.push(deploys);
    Topology::default().with_topic(t)
}

async fn open(dir: &Path, topology: Topology, clock: &Arc<ManualClock>) -> Emulator {
    Emulator::open(topology, dir, clock.clone(), EmulatorOptions::default())
        .await
        .expect("engine opens")
}

fn all() -> EntityPath {
    EntityPath::subscription("t", "all")
}

fn deploys() -> EntityPath {
    EntityPath::subscription("t", "deploys")
}

fn tenant_rule(name: &str, tenant: &str) -> RuleDescription {
    let mut filter = CorrelationRuleFilter::default();
    filter.properties.insert("tenant".into(), tenant.into());
    RuleDescription::new(name, RuleFilter::Correlation(filter))
}

fn names(rules: &[RuleDescription]) -> Vec<&str> {
    rules.iter().map(|r| r.name.as_str()).collect()
}

/// Sends `msg` to the topic and returns the bodies each of `subs` now holds (drained).
async fn route(engine: &Emulator, msg: Message, subs: &[EntityPath]) -> Vec<Vec<String>> {
    let t = engine.resolve_sender("t").expect("topic");
    engine.send(&t, vec![msg]).await.expect("send");
    let mut out = Vec::new();
    for sub in subs {
        let rx = engine.resolve_receiver(sub, false).expect("subscription");
        let got = engine
            .receive(&rx, ReceiveMode::ReceiveAndDelete, 100, NO_WAIT)
            .await
            .expect("receive");
        out.push(
            got.iter()
                .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
                .collect(),
        );
    }
    out
}

#[tokio::test]
async fn configured_rules_and_default_are_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    let rules = engine.rules(&all()).await.expect("list");
    assert_eq!(
        rules,
        vec![RuleDescription::new(DEFAULT_RULE_NAME, RuleFilter::True)]
    );
    let rules = engine.rules(&deploys()).await.expect("list");
    assert_eq!(names(&rules), ["subject"]);
    let RuleFilter::Correlation(c) = &rules[0].filter else {
        panic!("expected a correlation filter, got {:?}", rules[0].filter);
    };
    assert_eq!(c.subject.as_deref(), Some("Deploy"));
    assert_eq!(
        rules[0].created_at, None,
        "configured rules have no creation time"
    );
}

#[tokio::test]
async fn added_and_removed_rules_route_the_next_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    let subs = [all(), deploys()];
    let t1 = || Message::new("t1").with_property("tenant", "t1");

    // `$Default` takes everything; removing it leaves a subscription that takes nothing.
    assert_eq!(route(&engine, t1(), &subs).await, [vec!["t1"], vec![]]);
    engine
        .remove_rule(&all(), "$default")
        .await
        .expect("remove $Default (names are case-insensitive)");
    assert!(engine.rules(&all()).await.expect("list").is_empty());
    assert_eq!(
        route(&engine, t1(), &subs).await,
        [Vec::<&str>::new(), vec![]]
    );

    // A correlation rule added now routes the very next message.
    engine
        .add_rule(&all(), tenant_rule("tenant-t1", "t1"))
        .await
        .expect("add");
    let created = engine.rules(&all()).await.expect("list")[0].created_at;
    assert_eq!(
        created,
        Some(clock.now()),
        "creation time is the engine's clock"
    );
    assert_eq!(route(&engine, t1(), &subs).await, [vec!["t1"], vec![]]);
    let t2 = Message::new("t2").with_property("tenant", "t2");
    assert_eq!(
        route(&engine, t2, &subs).await,
        [Vec::<&str>::new(), vec![]]
    );

    // Any rule suffices: a second rule on the configured subscription widens it.
    engine
        .add_rule(&deploys(), tenant_rule("tenant-t1", "t1"))
        .await
        .expect("add to deploys");
    assert_eq!(
        names(&engine.rules(&deploys()).await.expect("list")),
        ["subject", "tenant-t1"]
    );
    assert_eq!(route(&engine, t1(), &subs).await, [vec!["t1"], vec!["t1"]]);
    let deploy = Message::new("d").with_subject("Deploy");
    assert_eq!(
        route(&engine, deploy, &subs).await,
        [Vec::<&str>::new(), vec!["d"]]
    );

    // After removal the rule no longer routes.
    engine
        .remove_rule(&all(), "tenant-t1")
        .await
        .expect("remove");
    assert_eq!(
        route(&engine, t1(), &subs).await,
        [Vec::<&str>::new(), vec!["t1"]]
    );

    // SQL true and false filters are evaluated.
    engine
        .add_rule(
            &all(),
            RuleDescription::new("never", RuleFilter::Sql("1=0".into())),
        )
        .await
        .expect("add false");
    assert_eq!(
        route(&engine, Message::new("x"), &subs).await,
        [Vec::<&str>::new(), vec![]]
    );
    engine
        .add_rule(&all(), RuleDescription::new("always", RuleFilter::True))
        .await
        .expect("add true");
    assert_eq!(
        route(&engine, Message::new("x"), &subs).await,
        [vec!["x"], vec![]]
    );
}

#[tokio::test]
async fn scheduled_messages_are_routed_by_the_rules_in_force_when_they_are_enqueued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    let t = engine.resolve_sender("t").expect("topic");
    engine
        .schedule(
            &t,
            vec![Message::new("later").with_property("tenant", "t9")],
            clock.now() + chrono::Duration::seconds(10),
        )
        .await
        .expect("schedule");
    engine
        .add_rule(&deploys(), tenant_rule("t9", "t9"))
        .await
        .expect("add");
    clock.advance(Duration::from_secs(11));
    let rx = engine.resolve_receiver(&deploys(), false).expect("sub");
    let got = engine
        .receive(
            &rx,
            ReceiveMode::ReceiveAndDelete,
            10,
            Duration::from_secs(5),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "the rule added after scheduling routes it");
}

#[tokio::test]
async fn bad_requests_fail_by_name_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    let before = engine.rules(&deploys()).await.expect("list");

    let err = engine
        .add_rule(&deploys(), tenant_rule("SUBJECT", "t1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("\"subject\""), "{err}");

    let err = engine.remove_rule(&deploys(), "nope").await.unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::EntityNotFound, "{err}");
    assert!(err.to_string().contains("rule \"nope\""), "{err}");

    let ghost = EntityPath::subscription("t", "ghost");
    for err in [
        engine.rules(&ghost).await.unwrap_err(),
        engine.remove_rule(&ghost, "x").await.unwrap_err(),
        engine
            .add_rule(&ghost, tenant_rule("x", "t1"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), BusErrorKind::EntityNotFound, "{err}");
        assert!(err.to_string().contains("t/Subscriptions/ghost"), "{err}");
    }

    let err = engine.rules(&EntityPath::queue("t")).await.unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("is a topic"), "{err}");
    let err = engine.rules(&deploys().dead_letter()).await.unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::InvalidArgument, "{err}");

    let err = engine
        .add_rule(
            &deploys(),
            RuleDescription::new("red", RuleFilter::Sql("color = 'red'".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("\"color = 'red'\""), "{err}");

    let mut with_action = RuleDescription::new("act", RuleFilter::True);
    with_action.action = Some("SET x = 1".into());
    let err = engine.add_rule(&deploys(), with_action).await.unwrap_err();
    assert!(err.to_string().contains("\"SET x = 1\""), "{err}");

    assert_eq!(engine.rules(&deploys()).await.expect("list"), before);
}

#[tokio::test]
async fn the_in_process_bus_offers_rule_management() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let bus = InProcessBus::new(open(dir.path(), topology("Deploy"), &clock).await);
    let rules = bus
        .rule_manager()
        .expect("the in-process bus manages rules");
    rules
        .add_rule(&all(), tenant_rule("r", "t1"))
        .await
        .expect("add");
    assert_eq!(
        names(&rules.rules(&all()).await.expect("list")),
        [DEFAULT_RULE_NAME, "r"]
    );
    rules.remove_rule(&all(), "r").await.expect("remove");
    assert_eq!(
        names(&rules.rules(&all()).await.expect("list")),
        [DEFAULT_RULE_NAME]
    );
}

#[tokio::test]
async fn rule_changes_survive_a_restart_and_win_over_config_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    engine
        .remove_rule(&all(), DEFAULT_RULE_NAME)
        .await
        .expect("remove");
    engine
        .add_rule(&all(), tenant_rule("tenant-t1", "t1"))
        .await
        .expect("add");
    let mut property = CorrelationRuleFilter {
        subject: Some("S".into()),
        ..CorrelationRuleFilter::default()
    };
    property
        .properties
        .insert("n".into(), PropertyValue::Int(7));
    property
        .properties
        .insert("ok".into(), PropertyValue::Bool(true));
    engine
        .add_rule(
            &all(),
            RuleDescription::new("typed", RuleFilter::Correlation(property)),
        )
        .await
        .expect("add typed");
    let before = engine.rules(&all()).await.expect("list");
    // Stop without closing: an acknowledged change is already committed.
    drop(engine);

    // The same data dir under a Config.json that changed the other subscription's rule.
    clock.advance(Duration::from_secs(60));
    let engine = open(dir.path(), topology("Release"), &clock).await;
    assert_eq!(
        engine.rules(&all()).await.expect("list"),
        before,
        "names, filters and creation times survive"
    );
    let subs = [all(), deploys()];
    assert_eq!(
        route(
            &engine,
            Message::new("t1").with_property("tenant", "t1"),
            &subs
        )
        .await,
        [vec!["t1"], vec![]]
    );
    assert_eq!(
        route(&engine, Message::new("other"), &subs).await,
        [Vec::<&str>::new(), vec![]],
        "$Default stays removed"
    );
    // A subscription never changed at run time follows Config.json.
    assert_eq!(
        route(&engine, Message::new("r").with_subject("Release"), &subs).await,
        [Vec::<&str>::new(), vec!["r"]]
    );

    // Once changed at run time, the stored set wins over a Config.json that differs.
    engine
        .add_rule(&deploys(), tenant_rule("t2", "t2"))
        .await
        .expect("add");
    drop(engine);
    let engine = open(dir.path(), topology("Other"), &clock).await;
    let rules = engine.rules(&deploys()).await.expect("list");
    assert_eq!(names(&rules), ["subject", "t2"]);
    assert_eq!(
        route(&engine, Message::new("r").with_subject("Release"), &subs).await,
        [Vec::<&str>::new(), vec!["r"]],
        "the stored subject rule (Release), not Config.json's (Other)"
    );
    // Removing every rule is durable too: the subscription stays empty after a restart.
    engine.remove_rule(&deploys(), "subject").await.expect("rm");
    engine.remove_rule(&deploys(), "t2").await.expect("rm");
    engine.close().await.expect("close");
    drop(engine);
    let engine = open(dir.path(), topology("Deploy"), &clock).await;
    assert!(engine.rules(&deploys()).await.expect("list").is_empty());
    assert_eq!(
        route(&engine, Message::new("d").with_subject("Deploy"), &subs).await,
        [Vec::<&str>::new(), vec![]]
    );
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, usize),
    Remove(usize),
    Send(usize),
    Restart,
}

const TENANTS: [&str; 3] = ["t0", "t1", "t2"];
const NAMES: [&str; 4] = ["$Default", "a", "B", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..NAMES.len(), 0..TENANTS.len() + 1).prop_map(|(n, t)| Op::Add(n, t)),
        2 => (0..NAMES.len()).prop_map(Op::Remove),
        3 => (0..TENANTS.len()).prop_map(Op::Send),
        1 => Just(Op::Restart),
    ]
}

/// The reference: an ordered list of (name, tenant or None for a true filter).
fn reference_accepts(model: &[(String, Option<usize>)], tenant: usize) -> bool {
    model.iter().any(|(_, t)| t.is_none_or(|t| t == tenant))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random adds, removes, sends and restarts agree with a plain list of rules: the listed
    /// rules, every conflict and not-found, and where each message goes.
    #[test]
    fn rule_changes_agree_with_a_plain_list(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let clock = ManualClock::at_epoch();
            let mut engine = open(dir.path(), topology("Deploy"), &clock).await;
            let mut model: Vec<(String, Option<usize>)> = vec![(DEFAULT_RULE_NAME.to_owned(), None)];
            for op in ops {
                match op {
                    Op::Add(n, t) => {
                        let name = NAMES[n];
                        let rule = match TENANTS.get(t) {
                            Some(tenant) => tenant_rule(name, tenant),
                            None => RuleDescription::new(name, RuleFilter::True),
                        };
                        let result = engine.add_rule(&all(), rule).await;
                        if model.iter().any(|(m, _)| m.eq_ignore_ascii_case(name)) {
                            let err = result.expect_err("duplicate refused");
                            assert_eq!(err.kind(), BusErrorKind::AlreadyExists);
                        } else {
                            result.expect("add");
                            model.push((name.to_owned(), (t < TENANTS.len()).then_some(t)));
                        }
                    }
                    Op::Remove(n) => {
                        let name = NAMES[n];
                        let result = engine.remove_rule(&all(), name).await;
                        match model.iter().position(|(m, _)| m.eq_ignore_ascii_case(name)) {
                            Some(at) => {
                                result.expect("remove");
                                model.remove(at);
                            }
                            None => {
                                let err = result.expect_err("unknown refused");
                                assert_eq!(err.kind(), BusErrorKind::EntityNotFound);
                            }
                        }
                    }
                    Op::Send(t) => {
                        let msg = Message::new(TENANTS[t]).with_property("tenant", TENANTS[t]);
                        let got = route(&engine, msg, &[all()]).await;
                        assert_eq!(got[0].len() == 1, reference_accepts(&model, t), "tenant {t}, rules {model:?}");
                    }
                    Op::Restart => {
                        drop(engine);
                        engine = open(dir.path(), topology("Deploy"), &clock).await;
                    }
                }
                let listed = engine.rules(&all()).await.expect("list");
                assert_eq!(names(&listed), model.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
            }
        });
    }
}
