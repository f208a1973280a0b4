//! Fault injection per port: error rate, throttling with Retry-After, latency, "fail the next
//! N calls". Decisions come from one seeded RNG per port, so a run is reproducible.

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_cloud::{CloudError, PlatformKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A port of the sandbox that faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Port {
    /// The compute control plane of one platform kind.
    Compute(PlatformKind),
    /// The metrics API.
    Metrics,
    /// The vault.
    Vault,
}

impl Port {
    fn index(&self) -> u64 {
        match self {
            Port::Compute(p) => PlatformKind::ALL.iter().position(|k| k == p).unwrap_or(0) as u64,
            Port::Metrics => 10,
            Port::Vault => 11,
        }
    }
}

/// What goes wrong on calls to one port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Probability (0–1) that a call fails with a transient error (a simulated 503).
    pub error_rate: f64,
    /// Probability (0–1) that a call is throttled (a simulated 429).
    pub throttle_rate: f64,
    /// The `Retry-After` a throttled call carries.
    pub retry_after: Duration,
    /// Added to every call (real time, so callers' timeouts can fire).
    pub latency: Duration,
    /// The next this-many calls are throttled regardless of the rates (then the rates apply).
    pub throttle_next: u32,
    /// The next this-many calls fail transiently regardless of the rates.
    pub fail_next: u32,
}

#[derive(Debug)]
pub(crate) struct Faults {
    seed: u64,
    plans: BTreeMap<Port, (FaultPlan, StdRng)>,
}

/// The outcome of the fault draw for one call.
pub(crate) struct Verdict {
    pub latency: Duration,
    pub error: Option<CloudError>,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Faults {
            seed,
            plans: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, port: Port, plan: FaultPlan) {
        let rng =
            StdRng::seed_from_u64(self.seed ^ port.index().wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.plans.insert(port, (plan, rng));
    }

    pub fn clear(&mut self) {
        self.plans.clear();
    }

    pub fn draw(&mut self, port: Port) -> Verdict {
        let Some((plan, rng)) = self.plans.get_mut(&port) else {
            return Verdict {
                latency: Duration::ZERO,
                error: None,
            };
        };
        let latency = plan.latency;
        let throttled = || {
            CloudError::throttled(
                plan.retry_after,
                format!("{port:?}: too many requests (simulated 429)"),
            )
        };
        let error = if plan.throttle_next > 0 {
            plan.throttle_next -= 1;
            Some(throttled())
        } else if plan.fail_next > 0 {
            plan.fail_next -= 1;
            Some(CloudError::transient(format!(
                "{port:?}: service unavailable (simulated 503)"
            )))
        } else {
            let roll: f64 = rng.random();
            if roll < plan.throttle_rate {
                Some(throttled())
            } else if roll < plan.throttle_rate + plan.error_rate {
                Some(CloudError::transient(format!(
                    "{port:?}: service unavailable (simulated 503)"
                )))
            } else {
                None
            }
        };
        Verdict { latency, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(seed: u64) -> Vec<bool> {
        let mut f = Faults::new(seed);
        f.set(
            Port::Vault,
            FaultPlan {
                error_rate: 0.5,
                ..FaultPlan::default()
            },
        );
        (0..64)
            .map(|_| f.draw(Port::Vault).error.is_some())
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        assert_eq!(outcomes(7), outcomes(7));
        assert_ne!(outcomes(7), outcomes(8));
        let failures = outcomes(7).iter().filter(|f| **f).count();
        assert!(
            (16..=48).contains(&failures),
            "{failures} of 64 at rate 0.5"
        );
    }

    #[test]
    fn throttle_next_carries_retry_after_then_stops() {
        let mut f = Faults::new(1);
        let plan = FaultPlan {
            throttle_next: 2,
            retry_after: Duration::from_secs(3),
            ..FaultPlan::default()
        };
        f.set(Port::Metrics, plan);
        for _ in 0..2 {
            let e = f.draw(Port::Metrics).error.unwrap();
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        }
        assert!(f.draw(Port::Metrics).error.is_none());
        assert!(f.draw(Port::Vault).error.is_none());
    }
}
