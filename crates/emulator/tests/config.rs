//! `Config.json` loading: what is honoured, defaults, and errors that name the field.

use std::time::Duration;

use fleet_bus::PropertyValue;
use fleet_emulator::{EmulatorErrorKind, Filter, Topology};
use serde_json::{Value, json};

fn sample() -> Value {
    json!({"UserConfig":{"Namespaces":[{"Name":"sbemulatorns",
        "Queues":[
            {"Name":"q0"},
            {"Name":"q","Properties":{"DeadLetteringOnMessageExpiration":true,"DefaultMessageTimeToLive":"PT1H",
                "DuplicateDetectionHistoryTimeWindow":"PT20S","ForwardDeadLetteredMessagesTo":"","ForwardTo":"",
                "LockDuration":"PT1M","MaxDeliveryCount":7,"RequiresDuplicateDetection":true,"RequiresSession":false}}],
        "Topics":[{"Name":"t","Properties":{"DefaultMessageTimeToLive":"P10675199DT2H48M5.4775807S",
                "DuplicateDetectionHistoryTimeWindow":"PT20S","RequiresDuplicateDetection":false},
            "Subscriptions":[{"Name":"s","Properties":{"DeadLetteringOnMessageExpiration":false,"DefaultMessageTimeToLive":"PT1H",
                "LockDuration":"PT30S","MaxDeliveryCount":10,"ForwardDeadLetteredMessagesTo":"","ForwardTo":"","RequiresSession":false},
                "Rules":[
                    {"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"ContentType":"","CorrelationId":"",
                        "Label":"RuntimeDeploymentRequested","MessageId":"","ReplyTo":"","ReplyToSessionId":"","SessionId":"","To":"",
                        "Properties":{"prop1":"value1","n":3}}}},
                    {"Name":"all","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"}}}]}]}]}],
        "Logging":{"Type":"File"}}})
}

fn error_of(config: &Value) -> String {
    let err = Topology::from_json(&config.to_string()).expect_err("config must be refused");
    assert_eq!(err.kind(), EmulatorErrorKind::Config);
    err.to_string()
}

#[test]
fn the_official_format_is_honoured() {
    let t = Topology::from_json(&sample().to_string()).expect("sample parses");
    assert_eq!(t.namespace, "sbemulatorns");
    let q = &t.queues[1];
    assert_eq!(q.settings.lock_duration, Duration::from_secs(60));
    assert_eq!(q.settings.max_delivery_count, 7);
    assert_eq!(q.settings.default_ttl, Some(Duration::from_secs(3600)));
    assert!(q.settings.dead_lettering_on_expiration);
    assert_eq!(q.duplicate_detection, Some(Duration::from_secs(20)));
    let topic = &t.topics[0];
    assert_eq!(topic.default_ttl, None, "TimeSpan.MaxValue means no expiry");
    assert_eq!(topic.duplicate_detection, None);
    let sub = &topic.subscriptions[0];
    assert_eq!(sub.settings.lock_duration, Duration::from_secs(30));
    let Filter::Correlation(f) = &sub.rules[0].filter else {
        panic!("correlation filter expected")
    };
    assert_eq!(f.subject.as_deref(), Some("RuntimeDeploymentRequested"));
    assert_eq!(f.correlation_id, None, "empty strings mean unset");
    assert_eq!(
        f.properties.get("prop1"),
        Some(&PropertyValue::String("value1".into()))
    );
    assert_eq!(f.properties.get("n"), Some(&PropertyValue::Int(3)));
    assert_eq!(sub.rules[1].filter, Filter::True);
}

#[test]
fn missing_properties_take_the_service_bus_defaults() {
    let t = Topology::from_json(&sample().to_string()).expect("sample parses");
    let q0 = &t.queues[0];
    assert_eq!(q0.settings.lock_duration, Duration::from_secs(60));
    assert_eq!(q0.settings.max_delivery_count, 10);
    assert_eq!(q0.settings.default_ttl, None);
    assert!(!q0.settings.dead_lettering_on_expiration);
    assert_eq!(q0.duplicate_detection, None);
}

#[test]
fn a_bad_duration_names_the_field_and_the_value() {
    let mut config = sample();
    config["UserConfig"]["Namespaces"][0]["Queues"][1]["Properties"]["LockDuration"] =
        json!("PT1X");
    let err = error_of(&config);
    assert!(
        err.contains(r#"UserConfig.Namespaces[0].Queues[1].Properties.LockDuration: invalid ISO-8601 duration "PT1X""#),
        "{err}"
    );
}

#[test]
fn an_unsupported_sql_filter_is_named() {
    let mut config = sample();
    let rule =
        &mut config["UserConfig"]["Namespaces"][0]["Topics"][0]["Subscriptions"][0]["Rules"][1];
    rule["Properties"]["SqlFilter"]["SqlExpression"] = json!("sys.Label = 'x'");
    let err = error_of(&config);
    assert!(
        err.contains("Rules[1].Properties.SqlFilter.SqlExpression"),
        "{err}"
    );
    assert!(
        err.contains(r#"unsupported SQL filter "sys.Label = 'x'""#),
        "{err}"
    );
}

#[test]
fn true_and_false_sql_filters_are_understood() {
    for (expr, filter) in [
        ("1=1", Filter::True),
        ("TRUE", Filter::True),
        (" 1 = 0 ", Filter::False),
        ("false", Filter::False),
    ] {
        let mut config = sample();
        config["UserConfig"]["Namespaces"][0]["Topics"][0]["Subscriptions"][0]["Rules"][1]["Properties"]
            ["SqlFilter"]["SqlExpression"] = json!(expr);
        let t = Topology::from_json(&config.to_string()).expect("parses");
        assert_eq!(
            t.topics[0].subscriptions[0].rules[1].filter, filter,
            "{expr}"
        );
    }
}

#[test]
fn features_not_emulated_are_refused_by_name() {
    let cases = [
        ("RequiresSession", json!(true), "sessions are not emulated"),
        (
            "ForwardTo",
            json!("other"),
            "auto-forwarding is not emulated",
        ),
        ("MaxDeliveryCount", json!(0), "expected an integer ≥ 1"),
        (
            "DeadLetteringOnMessageExpiration",
            json!("yes"),
            "expected true or false",
        ),
    ];
    for (field, value, why) in cases {
        let mut config = sample();
        config["UserConfig"]["Namespaces"][0]["Queues"][1]["Properties"][field] = value;
        let err = error_of(&config);
        assert!(
            err.contains(&format!("Queues[1].Properties.{field}")),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn names_must_be_present_valid_and_unique() {
    let mut config = sample();
    config["UserConfig"]["Namespaces"][0]["Queues"][0] = json!({"Properties": {}});
    assert!(error_of(&config).contains("Queues[0].Name: required"));
    let mut config = sample();
    config["UserConfig"]["Namespaces"][0]["Queues"][0]["Name"] = json!("T");
    let err = error_of(&config);
    assert!(
        err.contains(r#"Topics[0].Name: "t" is defined twice"#),
        "queue and topic names share one namespace: {err}"
    );
    let mut config = sample();
    config["UserConfig"]["Namespaces"][0]["Queues"][0]["Name"] = json!("a b");
    assert!(error_of(&config).contains("contains ' '"));
}

#[test]
fn non_json_and_wrong_shapes_are_refused() {
    let err = Topology::from_json("{not json").expect_err("refused");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(error_of(&json!({})).contains("UserConfig: required"));
    assert!(error_of(&json!({"UserConfig": {"Namespaces": []}})).contains("exactly one namespace"));
    let mut config = sample();
    config["UserConfig"]["Namespaces"][0]["Queues"] = json!({"Name": "q"});
    assert!(error_of(&config).contains("Queues: expected an array"));
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let big = " ".repeat(fleet_emulator::MAX_CONFIG_BYTES + 1);
    let err = Topology::from_json(&big).expect_err("refused");
    assert!(err.to_string().contains("more than"), "{err}");
}
