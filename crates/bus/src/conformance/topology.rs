//! The entities the conformance suite needs.

use serde_json::json;

use crate::EntityPath;

/// Names of the entities the suite uses. Their settings are fixed (see [`Topology::config_json`]):
///
/// | entity | settings |
/// |---|---|
/// | `queue` | defaults (lock 60 s, max delivery count 10) |
/// | `short_lock_queue` | lock 1 s, max delivery count 2, dead-lettering on expiry |
/// | `dedupe_queue` | duplicate detection, 10 min window |
/// | `topic` | subscriptions `all_subscription` (no rules) and `filtered_subscription` (correlation filter `Label = filter_subject`) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// A queue with default settings.
    pub queue: String,
    /// A queue with a one-second lock, two deliveries and dead-lettering on expiry.
    pub short_lock_queue: String,
    /// A queue with duplicate detection.
    pub dedupe_queue: String,
    /// A topic.
    pub topic: String,
    /// A subscription of `topic` without rules.
    pub all_subscription: String,
    /// A subscription of `topic` taking only messages whose subject is `filter_subject`.
    pub filtered_subscription: String,
    /// The subject `filtered_subscription` matches.
    pub filter_subject: String,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            queue: "conformance-queue".into(),
            short_lock_queue: "conformance-short-lock".into(),
            dedupe_queue: "conformance-dedupe".into(),
            topic: "conformance-topic".into(),
            all_subscription: "all".into(),
            filtered_subscription: "filtered".into(),
            filter_subject: "Match".into(),
        }
    }
}

impl Topology {
    /// Every queue and subscription the suite receives from.
    pub fn receivable(&self) -> Vec<EntityPath> {
        vec![
            EntityPath::queue(&self.queue),
            EntityPath::queue(&self.short_lock_queue),
            EntityPath::queue(&self.dedupe_queue),
            EntityPath::subscription(&self.topic, &self.all_subscription),
            EntityPath::subscription(&self.topic, &self.filtered_subscription),
        ]
    }

    /// These entities as the official Service Bus emulator's `Config.json`.
    pub fn config_json(&self) -> String {
        let queue = |name: &str, lock: &str, max: u32, dl_on_expiry: bool, dedupe: bool| {
            json!({
                "Name": name,
                "Properties": {
                    "DeadLetteringOnMessageExpiration": dl_on_expiry,
                    "DefaultMessageTimeToLive": "PT1H",
                    "DuplicateDetectionHistoryTimeWindow": "PT10M",
                    "ForwardDeadLetteredMessagesTo": "",
                    "ForwardTo": "",
                    "LockDuration": lock,
                    "MaxDeliveryCount": max,
                    "RequiresDuplicateDetection": dedupe,
                    "RequiresSession": false
                }
            })
        };
        let sub_props = json!({
            "DeadLetteringOnMessageExpiration": false,
            "DefaultMessageTimeToLive": "PT1H",
            "LockDuration": "PT1M",
            "MaxDeliveryCount": 10,
            "ForwardDeadLetteredMessagesTo": "",
            "ForwardTo": "",
            "RequiresSession": false
        });
        let config = json!({
            "UserConfig": {
                "Namespaces": [{
                    "Name": "sbemulatorns",
                    "Queues": [
                        queue(&self.queue, "PT1M", 10, false, false),
                        queue(&self.short_lock_queue, "PT1S", 2, true, false),
                        queue(&self.dedupe_queue, "PT1M", 10, false, true),
                    ],
                    "Topics": [{
                        "Name": self.topic,
                        "Properties": {
                            "DefaultMessageTimeToLive": "PT1H",
                            "DuplicateDetectionHistoryTimeWindow": "PT20S",
                            "RequiresDuplicateDetection": false
                        },
                        "Subscriptions": [
                            { "Name": self.all_subscription, "Properties": sub_props.clone(), "Rules": [] },
                            {
                                "Name": self.filtered_subscription,
                                "Properties": sub_props,
                                "Rules": [{
                                    "Name": "subject",
                                    "Properties": {
                                        "FilterType": "Correlation",
                                        "CorrelationFilter": { "Label": self.filter_subject }
                                    }
                                }]
                            }
                        ]
                    }]
                }],
                "Logging": { "Type": "File" }
            }
        });
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }
}
