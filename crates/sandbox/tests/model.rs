//! Model-based test: random sequences of compute calls against a reference model of what the
//! live service must look like and which calls must report a change.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{CloudErrorKind, PlatformKind, ServiceSpec};
use fleet_sandbox::{ManualClock, Sandbox, SandboxConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Apply {
        image: u8,
        replicas: u32,
        config: Option<u64>,
    },
    Scale(u32),
    Config(u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..2, 0u32..4, proptest::option::of(1u64..3)).prop_map(|(image, replicas, config)| {
            Op::Apply {
                image,
                replicas,
                config,
            }
        }),
        (0u32..4).prop_map(Op::Scale),
        (1u64..3).prop_map(Op::Config),
        (0u64..60).prop_map(Op::Advance),
    ]
}

/// What the service must look like: (image, replicas, config version, generation).
#[derive(Debug, Clone, PartialEq)]
struct Model {
    image: String,
    replicas: u32,
    config: Option<u64>,
    generation: u64,
}

fn spec(image: u8, replicas: u32, config: Option<u64>) -> ServiceSpec {
    let mut s = ServiceSpec::new(
        "svc",
        "prod",
        PlatformKind::ContainerApps,
        format!("reg/app:{image}"),
        replicas,
    );
    s.config_version = config;
    s.configuration_id = config.map(|_| "cfg".to_owned());
    s
}

async fn run(ops: Vec<Op>) {
    let clock = ManualClock::new(common::start_time());
    let sandbox = Sandbox::start(SandboxConfig {
        clock: Arc::new(clock.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let aca = sandbox.compute(PlatformKind::ContainerApps);
    let scope = common::scope();
    let mut model: Option<Model> = None;
    for op in ops {
        match (&op, &model) {
            (Op::Advance(secs), _) => {
                clock.advance(Duration::from_secs(*secs));
            }
            (
                Op::Apply {
                    image,
                    replicas,
                    config,
                },
                current,
            ) => {
                let want = Model {
                    image: format!("reg/app:{image}"),
                    replicas: *replicas,
                    config: *config,
                    generation: current.as_ref().map_or(1, |m| m.generation + 1),
                };
                let same = current.as_ref().is_some_and(|m| {
                    (m.image.as_str(), m.replicas, m.config)
                        == (want.image.as_str(), want.replicas, want.config)
                });
                let outcome = aca
                    .apply(&scope, &spec(*image, *replicas, *config))
                    .await
                    .unwrap();
                assert_eq!(outcome.changed, !same, "{op:?} on {current:?}");
                if !same {
                    model = Some(want);
                }
            }
            (Op::Scale(r), None) => {
                let err = aca.scale(&scope, "svc", *r).await.unwrap_err();
                assert_eq!(err.kind(), CloudErrorKind::NotFound);
            }
            (Op::Scale(r), Some(m)) => {
                let outcome = aca.scale(&scope, "svc", *r).await.unwrap();
                assert_eq!(outcome.changed, m.replicas != *r, "{op:?} on {m:?}");
                if outcome.changed {
                    model = Some(Model {
                        replicas: *r,
                        generation: m.generation + 1,
                        ..m.clone()
                    });
                }
            }
            (Op::Config(v), None) => {
                let err = aca
                    .apply_config(&scope, "svc", "cfg", *v, &BTreeMap::new())
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), CloudErrorKind::NotFound);
            }
            (Op::Config(v), Some(m)) => {
                let outcome = aca
                    .apply_config(&scope, "svc", "cfg", *v, &BTreeMap::new())
                    .await
                    .unwrap();
                assert_eq!(outcome.changed, m.config != Some(*v), "{op:?} on {m:?}");
                if outcome.changed {
                    model = Some(Model {
                        config: Some(*v),
                        generation: m.generation + 1,
                        ..m.clone()
                    });
                }
            }
        }
        if let Some(m) = &model {
            let live = aca.get(&scope, "svc").await.unwrap();
            let seen = Model {
                image: live.image,
                replicas: live.replicas,
                config: live.config_version,
                generation: live.generation,
            };
            assert_eq!(&seen, m);
            assert!(live.ready_replicas <= live.replicas);
        }
    }
    // Once everything landed, the service is ready at its replica count.
    clock.advance(Duration::from_secs(3600));
    if let Some(m) = &model {
        let live = aca.get(&scope, "svc").await.unwrap();
        assert_eq!(live.ready_replicas, m.replicas);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compute_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
