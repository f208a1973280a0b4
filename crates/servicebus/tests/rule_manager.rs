//! Subscription rule management over the wire: `azservicebus`' rule manager creates, lists
//! and deletes rules on the emulator's listener (`$management` add-rule, enumerate-rules with
//! `top`/`skip` paging, remove-rule), the changes route the next message, and bad requests
//! get Service Bus' status codes while the connection carries on.

#![allow(clippy::large_futures)]

mod support;

use std::time::Duration;

use azservicebus::administration::{
    CorrelationRuleFilter, FalseRuleFilter, RuleAction, RuleFilter, SqlRuleAction, SqlRuleFilter,
    TrueRuleFilter,
};
use azservicebus::core::BasicRetryPolicy;
use azservicebus::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage, ServiceBusReceiver,
    ServiceBusRetryOptions,
};
use fe2o3_amqp_types::messaging::ApplicationProperties;
use fe2o3_amqp_types::primitives::{OrderedMap, SimpleValue, Value};
use fleet_amqp::ListenerOptions;
use fleet_bus::EntityPath;
use fleet_emulator::{SubscriptionConfig, TopicConfig, Topology};
use support::{Harness, step};

/// [`step`] with the future on the heap: the client's futures are large, and a test awaiting
/// many of them inline overflows the test thread's stack in debug builds.
async fn bstep<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    step(what, Box::pin(fut)).await
}

/// Topic `orders` with subscriptions `picky` and `all`, neither with configured rules.
fn topology() -> Topology {
    let mut topic = TopicConfig::new("orders");
    topic.subscriptions.push(SubscriptionConfig::new("picky"));
    topic.subscriptions.push(SubscriptionConfig::new("all"));
    Topology::default().with_topic(topic)
}

async fn client(harness: &Harness) -> ServiceBusClient<BasicRetryPolicy> {
    let options = ServiceBusClientOptions {
        retry_options: ServiceBusRetryOptions {
            max_retries: 0,
            try_timeout: Duration::from_secs(10),
            ..Default::default()
        },
        ..Default::default()
    };
    bstep(
        "connect",
        ServiceBusClient::unsecured()
            .new_from_connection_string(harness.connection_string(), options),
    )
    .await
    .expect("client connects")
}

fn message(body: &str, subject: &str, tenant: &str) -> ServiceBusMessage {
    let mut msg = ServiceBusMessage::new(body.as_bytes().to_vec());
    msg.set_subject(Some(subject.to_owned()));
    let mut props = OrderedMap::new();
    props.insert("tenant".to_owned(), SimpleValue::String(tenant.to_owned()));
    *msg.application_properties_mut() = Some(ApplicationProperties(props));
    msg
}

/// Bodies waiting in the receiver's subscription (received and completed).
async fn drain(receiver: &mut ServiceBusReceiver) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = bstep(
            "receive",
            receiver.receive_messages_with_max_wait_time(10, Some(Duration::from_millis(700))),
        )
        .await
        .expect("receive");
        if got.is_empty() {
            return bodies;
        }
        for m in &got {
            bodies.push(String::from_utf8_lossy(m.body().expect("body")).into_owned());
            bstep("complete", receiver.complete_message(m))
                .await
                .expect("complete");
        }
    }
}

fn tenant_filter(subject: &str, tenant: &str) -> CorrelationRuleFilter {
    let mut props = OrderedMap::new();
    props.insert("tenant".to_owned(), Value::String(tenant.to_owned()));
    CorrelationRuleFilter::builder()
        .subject(subject)
        .properties(props)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_listed_and_deleted_and_route_the_next_message() {
    let harness = Harness::start("127.0.0.231", topology(), ListenerOptions::default()).await;
    let mut client = client(&harness).await;
    let mut rules = bstep(
        "rule manager",
        client.create_rule_manager("orders", "picky"),
    )
    .await
    .expect("rule manager");
    let mut sender = bstep("sender", client.create_sender("orders", Default::default()))
        .await
        .expect("sender");
    let mut receiver = bstep(
        "receiver",
        client.create_receiver_for_subscription("orders", "picky", Default::default()),
    )
    .await
    .expect("receiver");

    // A new subscription lists Service Bus' $Default rule: a true filter, no action.
    let listed = bstep("get rules", rules.get_rules())
        .await
        .expect("get rules");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "$Default");
    assert!(
        matches!(listed[0].filters, RuleFilter::True(_)),
        "{listed:?}"
    );
    assert!(
        matches!(listed[0].actions, RuleAction::Empty(_)),
        "{listed:?}"
    );

    // Replace $Default with a correlation rule: only matching messages arrive from now on.
    bstep("delete $Default", rules.delete_rule("$Default"))
        .await
        .expect("delete $Default");
    bstep(
        "create correlation rule",
        rules.create_rule("deploys-t1", tenant_filter("Deploy", "t1")),
    )
    .await
    .expect("create correlation rule");
    bstep(
        "create sql false rule",
        rules.create_rule("never", SqlRuleFilter::new("1=0")),
    )
    .await
    .expect("create sql rule");
    bstep(
        "create false rule",
        rules.create_rule("never-either", FalseRuleFilter::new()),
    )
    .await
    .expect("create false rule");

    let listed = bstep("get rules", rules.get_rules())
        .await
        .expect("get rules");
    let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["deploys-t1", "never", "never-either"]);
    let RuleFilter::Correlation(filter) = &listed[0].filters else {
        panic!("expected a correlation filter, got {:?}", listed[0].filters);
    };
    assert_eq!(filter.subject.as_deref(), Some("Deploy"));
    assert_eq!(
        filter
            .properties
            .as_ref()
            .and_then(|p| p.get("tenant"))
            .cloned(),
        Some(Value::String("t1".to_owned()))
    );
    assert!(listed[0].created_at.is_some(), "a created rule has a time");
    assert!(matches!(listed[1].filters, RuleFilter::False(_)));
    assert!(matches!(listed[2].filters, RuleFilter::False(_)));
    // The engine holds the same rules: the listener served them, not a cache of its own.
    let engine_rules = harness
        .backend
        .emulator()
        .rules(&EntityPath::subscription("orders", "picky"))
        .await
        .expect("engine rules");
    assert_eq!(
        engine_rules
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        names
    );

    bstep(
        "send",
        sender.send_messages(vec![
            message("match", "Deploy", "t1"),
            message("other-tenant", "Deploy", "t2"),
            message("other-subject", "Scale", "t1"),
        ]),
    )
    .await
    .expect("send");
    assert_eq!(drain(&mut receiver).await, ["match"]);

    // After the rule is deleted, the same message no longer arrives.
    bstep("delete rule", rules.delete_rule("deploys-t1"))
        .await
        .expect("delete rule");
    bstep("send", sender.send_message(message("late", "Deploy", "t1")))
        .await
        .expect("send");
    assert!(drain(&mut receiver).await.is_empty());

    // A true filter takes everything again.
    bstep(
        "create true rule",
        rules.create_rule("everything", TrueRuleFilter::new()),
    )
    .await
    .expect("create true rule");
    bstep("send", sender.send_message(message("any", "Scale", "t9")))
        .await
        .expect("send");
    assert_eq!(drain(&mut receiver).await, ["any"]);

    bstep("dispose rules", rules.dispose())
        .await
        .expect("dispose");
    bstep("dispose receiver", receiver.dispose())
        .await
        .expect("dispose");
    bstep("dispose sender", sender.dispose())
        .await
        .expect("dispose");
    bstep("dispose client", client.dispose())
        .await
        .expect("dispose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rules_pages_with_top_and_skip() {
    let harness = Harness::start("127.0.0.232", topology(), ListenerOptions::default()).await;
    let mut client = client(&harness).await;
    let mut rules = bstep("rule manager", client.create_rule_manager("orders", "all"))
        .await
        .expect("rule manager");
    // $Default plus 199: the client asks for 100, 100, then an empty third page.
    for i in 0..199 {
        bstep(
            "create rule",
            rules.create_rule(
                format!("r{i:03}"),
                tenant_filter("Deploy", &format!("t{i}")),
            ),
        )
        .await
        .expect("create rule");
    }
    let listed = bstep("get rules", rules.get_rules())
        .await
        .expect("get rules");
    let names: Vec<String> = listed.iter().map(|r| r.name.clone()).collect();
    let expected: Vec<String> = std::iter::once("$Default".to_owned())
        .chain((0..199).map(|i| format!("r{i:03}")))
        .collect();
    assert_eq!(names, expected, "every rule once, in order, across pages");
    bstep("dispose rules", rules.dispose())
        .await
        .expect("dispose");
    bstep("dispose client", client.dispose())
        .await
        .expect("dispose");
}

/// The error's text, which carries the management status code and description (with the
/// quotes of the description unescaped).
fn failure<T: std::fmt::Debug>(what: &str, result: Result<T, azure_core_sb::Error>) -> String {
    match result {
        Ok(value) => panic!("{what}: expected a failure, got {value:?}"),
        Err(e) => format!("{e:?}").replace('\\', ""),
    }
}

fn assert_status(err: &str, code: u16, names: &str) {
    assert!(
        err.contains(&code.to_string()),
        "expected status {code} in {err}"
    );
    assert!(err.contains(names), "expected {names:?} in {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rule_requests_get_service_bus_status_codes_and_the_connection_carries_on() {
    let harness = Harness::start("127.0.0.233", topology(), ListenerOptions::default()).await;
    let mut client = client(&harness).await;
    let mut rules = bstep(
        "rule manager",
        client.create_rule_manager("orders", "picky"),
    )
    .await
    .expect("rule manager");

    // A name that exists: 409, naming the rule.
    let err = failure(
        "duplicate",
        bstep(
            "duplicate",
            rules.create_rule("$default", TrueRuleFilter::new()),
        )
        .await,
    );
    assert_status(&err, 409, "\"$Default\" already exists");
    // An unknown rule: 404, naming it.
    let err = failure(
        "unknown rule",
        bstep("unknown rule", rules.delete_rule("no-such-rule")).await,
    );
    assert_status(&err, 404, "\"no-such-rule\"");
    // Filters and actions the emulator does not evaluate: 400, naming the value.
    let err = failure(
        "sql filter",
        bstep(
            "sql filter",
            rules.create_rule("red", SqlRuleFilter::new("color = 'red'")),
        )
        .await,
    );
    assert_status(&err, 400, "color = 'red'");
    let err = failure(
        "sql action",
        bstep(
            "sql action",
            rules.create_rule(
                "act",
                (SqlRuleFilter::new("1=1"), SqlRuleAction::new("SET x = 1")),
            ),
        )
        .await,
    );
    assert_status(&err, 400, "SET x = 1");
    let err = failure(
        "session filter",
        bstep(
            "session filter",
            rules.create_rule(
                "sessions",
                CorrelationRuleFilter::builder().session_id("s1").build(),
            ),
        )
        .await,
    );
    assert_status(&err, 400, "session-id \"s1\"");
    let err = failure(
        "bad name",
        bstep(
            "bad name",
            rules.create_rule("no spaces", TrueRuleFilter::new()),
        )
        .await,
    );
    assert_status(&err, 400, "\"no spaces\"");
    // A request body the emulator cannot decode (a list as a property value): 400, naming it.
    let mut props = OrderedMap::new();
    props.insert("bad".to_owned(), Value::List(vec![Value::Int(1)]));
    let err = failure(
        "malformed body",
        bstep(
            "malformed body",
            rules.create_rule(
                "malformed",
                CorrelationRuleFilter::builder().properties(props).build(),
            ),
        )
        .await,
    );
    assert_status(&err, 400, "\"bad\"");

    // Nothing changed, and the same connection still works for rules and messages.
    let listed = bstep("get rules", rules.get_rules())
        .await
        .expect("get rules");
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["$Default"]
    );
    let mut sender = bstep("sender", client.create_sender("orders", Default::default()))
        .await
        .expect("sender");
    let mut receiver = bstep(
        "receiver",
        client.create_receiver_for_subscription("orders", "picky", Default::default()),
    )
    .await
    .expect("receiver");
    bstep("send", sender.send_message(message("still", "Any", "t1")))
        .await
        .expect("send");
    assert_eq!(drain(&mut receiver).await, ["still"]);

    // An unknown subscription: its management node is refused as not found, naming it.
    let ghost = bstep(
        "ghost rule manager",
        client.create_rule_manager("orders", "ghost"),
    )
    .await;
    let err = match ghost {
        Err(e) => format!("{e:?}").replace('\\', ""),
        Ok(mut ghost) => {
            let err = failure("ghost", bstep("ghost get rules", ghost.get_rules()).await);
            let _ = bstep("dispose ghost", ghost.dispose()).await;
            err
        }
    };
    assert!(
        err.contains("not-found") || err.contains("NotFound"),
        "expected not-found in {err}"
    );
    assert!(err.contains("ghost"), "expected the subscription in {err}");

    // The connection is still usable after the refused attach.
    let listed = bstep("get rules", rules.get_rules())
        .await
        .expect("get rules");
    assert_eq!(listed.len(), 1);
    bstep("send", sender.send_message(message("again", "Any", "t1")))
        .await
        .expect("send");
    assert_eq!(drain(&mut receiver).await, ["again"]);

    bstep("dispose rules", rules.dispose())
        .await
        .expect("dispose");
    bstep("dispose receiver", receiver.dispose())
        .await
        .expect("dispose");
    bstep("dispose sender", sender.dispose())
        .await
        .expect("dispose");
    bstep("dispose client", client.dispose())
        .await
        .expect("dispose");
}
