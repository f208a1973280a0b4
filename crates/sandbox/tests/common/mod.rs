//! Shared test setup: a sandbox on a manual clock.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_sandbox::{ManualClock, Sandbox, SandboxConfig};

pub struct World {
    pub sandbox: Sandbox,
    pub clock: ManualClock,
}

pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

pub async fn world() -> World {
    world_with(|_| {}).await
}

pub async fn world_with(tweak: impl FnOnce(&mut SandboxConfig)) -> World {
    let clock = ManualClock::new(start_time());
    let mut config = SandboxConfig {
        clock: Arc::new(clock.clone()),
        seed: 42,
        ..SandboxConfig::default()
    };
    tweak(&mut config);
    let sandbox = Sandbox::start(config).await.unwrap();
    World { sandbox, clock }
}

pub fn scope() -> Scope {
    Scope::new("tenant-a", "prod")
}

pub fn spec(id: &str, platform: PlatformKind, image: &str, replicas: u32) -> ServiceSpec {
    ServiceSpec::new(id, "prod", platform, image, replicas)
}

impl World {
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}
