//! Model-based tests: random operation sequences (send, schedule, cancel, receive, complete,
//! abandon, dead-letter, defer, receive-deferred, renew, peek, advance the clock, restart)
//! run against the engine and against the plain reference model in `reference.rs`; every
//! observable result must be the same.

mod reference;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{
    BusError, BusErrorKind, DeadLetterOptions, EntityPath, Message, PropertyValue, ReceiveMode,
    ReceivedMessage,
};
use fleet_emulator::{
    Clock, CorrelationFilter, Emulator, EmulatorOptions, Filter, ManualClock, QueueConfig, Rule,
    SubscriptionConfig, TopicConfig, Topology,
};
use proptest::prelude::*;
use reference::{A, B, MMsg, Model, Q, Seen, Settings, T};
use uuid::Uuid;

const DEDUPE_WINDOW_MS: i64 = 60_000;

fn settings() -> [Settings; 4] {
    [
        Settings {
            lock_ms: 10_000,
            max_delivery: 3,
            ttl_ms: Some(120_000),
            dl_on_expiry: true,
        },
        Settings {
            lock_ms: 60_000,
            max_delivery: 10,
            ttl_ms: Some(90_000),
            dl_on_expiry: false,
        },
        Settings {
            lock_ms: 5_000,
            max_delivery: 2,
            ttl_ms: None,
            dl_on_expiry: false,
        },
        Settings {
            lock_ms: 7_000,
            max_delivery: 4,
            ttl_ms: Some(30_000),
            dl_on_expiry: true,
        },
    ]
}

fn topology() -> Topology {
    let s = settings();
    let mut q = QueueConfig::new("q");
    q.settings.lock_duration = Duration::from_millis(s[Q].lock_ms as u64);
    q.settings.max_delivery_count = s[Q].max_delivery;
    q.settings.default_ttl = s[Q].ttl_ms.map(|ms| Duration::from_millis(ms as u64));
    q.settings.dead_lettering_on_expiration = s[Q].dl_on_expiry;
    q.duplicate_detection = Some(Duration::from_millis(DEDUPE_WINDOW_MS as u64));
    let mut t = TopicConfig::new("t");
    t.default_ttl = s[T].ttl_ms.map(|ms| Duration::from_millis(ms as u64));
    for (name, idx) in [("a", A), ("b", B)] {
        let mut sub = SubscriptionConfig::new(name);
        sub.settings.lock_duration = Duration::from_millis(s[idx].lock_ms as u64);
        sub.settings.max_delivery_count = s[idx].max_delivery;
        sub.settings.default_ttl = s[idx].ttl_ms.map(|ms| Duration::from_millis(ms as u64));
        sub.settings.dead_lettering_on_expiration = s[idx].dl_on_expiry;
        if idx == B {
            let filter = CorrelationFilter {
                subject: Some("x".into()),
                ..CorrelationFilter::default()
            };
            sub.rules.push(Rule {
                name: "x".into(),
                filter: Filter::Correlation(filter),
            });
        }
        t.subscriptions.push(sub);
    }
    Topology::default().with_queue(q).with_topic(t)
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        to_topic: bool,
        count: u8,
        subject_x: bool,
        ttl_s: Option<u8>,
        id: Option<u8>,
    },
    Schedule {
        to_topic: bool,
        delay_s: u8,
        subject_x: bool,
    },
    Cancel {
        pick: usize,
    },
    Receive {
        from: u8,
        max: u8,
        delete: bool,
    },
    Complete {
        pick: usize,
    },
    Abandon {
        pick: usize,
    },
    DeadLetter {
        pick: usize,
    },
    Defer {
        pick: usize,
    },
    ReceiveDeferred {
        from: u8,
        pick: usize,
    },
    Renew {
        pick: usize,
    },
    Peek {
        from: u8,
    },
    Advance {
        ms: u32,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 1..4u8, any::<bool>(), proptest::option::of(1..60u8), proptest::option::of(0..5u8))
            .prop_map(|(to_topic, count, subject_x, ttl_s, id)| Op::Send { to_topic, count, subject_x, ttl_s, id }),
        1 => (any::<bool>(), 1..60u8, any::<bool>()).prop_map(|(to_topic, delay_s, subject_x)| Op::Schedule { to_topic, delay_s, subject_x }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        4 => (0..6u8, 1..4u8, proptest::bool::weighted(0.15)).prop_map(|(from, max, delete)| Op::Receive { from, max, delete }),
        3 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Abandon { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DeadLetter { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Defer { pick }),
        1 => (0..6u8, any::<usize>()).prop_map(|(from, pick)| Op::ReceiveDeferred { from, pick }),
        1 => any::<usize>().prop_map(|pick| Op::Renew { pick }),
        1 => (0..6u8).prop_map(|from| Op::Peek { from }),
        3 => (0..40_000u32).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Restart),
    ]
}

/// (model entity, dead-letter?, path) for the six receivable queues.
fn receivable(from: u8) -> (usize, bool, EntityPath) {
    let (e, path) = match from / 2 {
        0 => (Q, EntityPath::queue("q")),
        1 => (A, EntityPath::subscription("t", "a")),
        _ => (B, EntityPath::subscription("t", "b")),
    };
    (e, from % 2 == 1, path)
}

/// A delivery the test holds: where it came from, the engine's token, the model's lock generation.
#[derive(Debug, Clone)]
struct Held {
    from: u8,
    seq: i64,
    token: Option<Uuid>,
    generation: u64,
}

fn view(m: &ReceivedMessage) -> Seen {
    (
        m.sequence_number,
        String::from_utf8_lossy(&m.message.body).into_owned(),
        m.delivery_count,
        m.state,
        m.dead_letter_reason.clone(),
        m.message.application_properties.clone(),
    )
}

fn kind<T>(r: Result<T, BusError>) -> Result<T, BusErrorKind> {
    r.map_err(|e| e.kind())
}

async fn open(dir: &Path, clock: &Arc<ManualClock>) -> Emulator {
    Emulator::open(topology(), dir, clock.clone(), EmulatorOptions::default())
        .await
        .expect("engine opens")
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let mut engine = open(dir.path(), &clock).await;
    let mut model = Model::new(clock.now().timestamp_millis(), settings(), DEDUPE_WINDOW_MS);
    let mut held: Vec<Held> = Vec::new();
    let mut scheduled: Vec<(bool, i64)> = Vec::new();
    let mut all_seqs: Vec<i64> = Vec::new();
    let mut n = 0u32;
    for op in ops {
        n += 1;
        match op {
            Op::Send {
                to_topic,
                count,
                subject_x,
                ttl_s,
                id,
            } => {
                let to = if to_topic { T } else { Q };
                let mut msgs = Vec::new();
                let mut mm = Vec::new();
                for i in 0..count {
                    let body = format!("m{n}.{i}");
                    let subject = subject_x.then(|| "x".to_owned());
                    let ttl = ttl_s.map(|s| Duration::from_secs(u64::from(s)));
                    let message_id = id.map(|id| format!("id{id}"));
                    msgs.push(Message {
                        subject: subject.clone(),
                        time_to_live: ttl,
                        message_id: message_id.clone(),
                        ..Message::new(body.clone())
                    });
                    mm.push((
                        new_msg(body, subject, ttl.map(|t| t.as_millis() as i64)),
                        message_id,
                    ));
                }
                let handle = engine
                    .resolve_sender(if to_topic { "t" } else { "q" })
                    .expect("sender");
                let got = kind(engine.send(&handle, msgs).await);
                let want = model.send(to, mm, None);
                prop_assert_eq!(&got, &Ok(want.clone()), "send #{}", n);
                all_seqs.extend(want);
            }
            Op::Schedule {
                to_topic,
                delay_s,
                subject_x,
            } => {
                let to = if to_topic { T } else { Q };
                let at = clock.now() + chrono::Duration::seconds(i64::from(delay_s));
                let body = format!("s{n}");
                let subject = subject_x.then(|| "x".to_owned());
                let msg = Message {
                    subject: subject.clone(),
                    ..Message::new(body.clone())
                };
                let handle = engine
                    .resolve_sender(if to_topic { "t" } else { "q" })
                    .expect("sender");
                let got = kind(engine.schedule(&handle, vec![msg], at).await);
                let want = model.send(
                    to,
                    vec![(new_msg(body, subject, None), None)],
                    Some(at.timestamp_millis()),
                );
                prop_assert_eq!(&got, &Ok(want.clone()), "schedule #{}", n);
                for seq in want {
                    scheduled.push((to_topic, seq));
                    all_seqs.push(seq);
                }
            }
            Op::Cancel { pick } => {
                if scheduled.is_empty() {
                    continue;
                }
                let (to_topic, seq) = scheduled[pick % scheduled.len()];
                let handle = engine
                    .resolve_sender(if to_topic { "t" } else { "q" })
                    .expect("sender");
                let got = kind(engine.cancel_scheduled(&handle, &[seq]).await);
                let want = model.cancel(if to_topic { T } else { Q }, seq);
                prop_assert_eq!(got, want, "cancel #{} of {}", n, seq);
            }
            Op::Receive { from, max, delete } => {
                let (e, dlq, path) = receivable(from);
                let handle = engine.resolve_receiver(&path, dlq).expect("receiver");
                let mode = if delete {
                    ReceiveMode::ReceiveAndDelete
                } else {
                    ReceiveMode::PeekLock
                };
                let got = engine
                    .receive(&handle, mode, usize::from(max), Duration::ZERO)
                    .await
                    .expect("receive");
                let want = model.receive(e, dlq, usize::from(max), delete);
                let got_views: Vec<Seen> = got.iter().map(view).collect();
                let want_views: Vec<Seen> = want.iter().map(|(v, _)| v.clone()).collect();
                prop_assert_eq!(&got_views, &want_views, "receive #{} from {}", n, path);
                for (m, (_, generation)) in got.iter().zip(&want) {
                    if let Some(generation) = generation {
                        held.push(Held {
                            from,
                            seq: m.sequence_number,
                            token: m.lock_token,
                            generation: *generation,
                        });
                    }
                }
            }
            Op::ReceiveDeferred { from, pick } => {
                if all_seqs.is_empty() {
                    continue;
                }
                let seq = all_seqs[pick % all_seqs.len()];
                let (e, dlq, path) = receivable(from);
                let handle = engine.resolve_receiver(&path, dlq).expect("receiver");
                let got = kind(
                    engine
                        .receive_deferred(&handle, ReceiveMode::PeekLock, &[seq])
                        .await,
                );
                let want = model.receive_deferred(e, dlq, seq);
                let got_view = got
                    .as_ref()
                    .map(|v| v.iter().map(view).collect::<Vec<_>>())
                    .map_err(|k| *k);
                let want_view = want.as_ref().map(|(v, _)| vec![v.clone()]).map_err(|k| *k);
                prop_assert_eq!(&got_view, &want_view, "receive deferred #{} of {}", n, seq);
                if let (Ok(got), Ok((_, generation))) = (got, want) {
                    held.push(Held {
                        from,
                        seq,
                        token: got[0].lock_token,
                        generation,
                    });
                }
            }
            Op::Complete { pick }
            | Op::Abandon { pick }
            | Op::DeadLetter { pick }
            | Op::Defer { pick }
            | Op::Renew { pick } => {
                if held.is_empty() {
                    continue;
                }
                let h = held[pick % held.len()].clone();
                let (e, dlq, path) = receivable(h.from);
                let handle = engine.resolve_receiver(&path, dlq).expect("receiver");
                let props = BTreeMap::from([(format!("op{n}"), PropertyValue::Int(i64::from(n)))]);
                let (got, want) = match op {
                    Op::Complete { .. } => (
                        kind(engine.complete(&handle, h.token).await),
                        model.complete(e, dlq, h.seq, h.generation),
                    ),
                    Op::Abandon { .. } => (
                        kind(engine.abandon(&handle, h.token, props.clone()).await),
                        model.abandon(e, dlq, h.seq, h.generation, props),
                    ),
                    Op::DeadLetter { .. } => {
                        let opts = DeadLetterOptions {
                            properties_to_modify: props.clone(),
                            ..DeadLetterOptions::new("Rejected", "by the test")
                        };
                        (
                            kind(engine.dead_letter(&handle, h.token, opts).await),
                            model.dead_letter(e, dlq, h.seq, h.generation, props),
                        )
                    }
                    Op::Defer { .. } => (
                        kind(engine.defer(&handle, h.token).await),
                        model.defer(e, dlq, h.seq, h.generation),
                    ),
                    _ => {
                        let got = kind(engine.renew_lock(&handle, h.token).await)
                            .map(|t| t.timestamp_millis());
                        let want = model.renew(e, dlq, h.seq, h.generation);
                        prop_assert_eq!(got, want, "renew #{} of {:?}", n, h);
                        continue;
                    }
                };
                prop_assert_eq!(got, want, "settle #{} ({:?}) of {:?}", n, op, h);
            }
            Op::Peek { from } => {
                let (e, dlq, path) = receivable(from);
                let handle = engine.resolve_receiver(&path, dlq).expect("receiver");
                let got: Vec<Seen> = engine
                    .peek(&handle, 0, 10_000)
                    .await
                    .expect("peek")
                    .iter()
                    .map(view)
                    .collect();
                prop_assert_eq!(got, model.peek(e, dlq), "peek #{} of {}", n, path);
            }
            Op::Advance { ms } => {
                clock.advance(Duration::from_millis(u64::from(ms)));
                model.now = clock.now().timestamp_millis();
            }
            Op::Restart => {
                drop(engine);
                engine = open(dir.path(), &clock).await;
            }
        }
    }
    // Finally every queue must hold the same messages.
    for from in 0..6 {
        let (e, dlq, path) = receivable(from);
        let handle = engine.resolve_receiver(&path, dlq).expect("receiver");
        let got: Vec<Seen> = engine
            .peek(&handle, 0, 10_000)
            .await
            .expect("peek")
            .iter()
            .map(view)
            .collect();
        prop_assert_eq!(got, model.peek(e, dlq), "final contents of {}", path);
    }
    Ok(())
}

fn new_msg(body: String, subject: Option<String>, ttl_ms: Option<i64>) -> MMsg {
    MMsg {
        seq: 0,
        body,
        subject,
        props: BTreeMap::new(),
        ttl_ms,
        expires: None,
        scheduled_at: None,
        delivery_count: 0,
        lock: None,
        state: fleet_bus::MessageState::Active,
        dlq: false,
        reason: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
