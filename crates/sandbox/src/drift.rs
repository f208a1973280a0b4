//! Drift injection: out-of-band changes to live state, as the portal or `kubectl` would make.

use fleet_cloud::{CloudError, Scope, ServiceSpec};

use crate::state::key;
use crate::validate::{check_scope, check_spec};
use crate::world::{Sandbox, new_record};

/// An out-of-band change to live state, as if someone used the portal or `kubectl`.
#[derive(Debug, Clone, PartialEq)]
pub enum Drift {
    /// The service now runs `image`.
    Image {
        /// The service changed.
        service_id: String,
        /// The image it now runs.
        image: String,
    },
    /// The service now runs `replicas`.
    Replicas {
        /// The service changed.
        service_id: String,
        /// The replica count it now runs.
        replicas: u32,
    },
    /// The service now carries another configuration.
    Config {
        /// The service changed.
        service_id: String,
        /// The configuration id it now carries.
        configuration_id: Option<String>,
        /// The version it now carries.
        version: Option<u64>,
    },
    /// The service was deleted.
    Delete {
        /// The service removed.
        service_id: String,
    },
    /// A service nobody declared appeared (already running).
    Extra {
        /// What runs.
        spec: ServiceSpec,
    },
}

impl Sandbox {
    /// Changes live state out of band (no operation, no readiness dip): what drift detection
    /// must notice.
    pub fn inject_drift(&self, scope: &Scope, drift: Drift) -> Result<(), CloudError> {
        check_scope(scope)?;
        match drift {
            Drift::Image { service_id, image } => {
                self.inner().with_service(scope, &service_id, |s, _| {
                    s.image = image;
                    s.generation += 1;
                })
            }
            Drift::Replicas {
                service_id,
                replicas,
            } => self.inner().with_service(scope, &service_id, |s, now| {
                s.set_replicas(replicas, now);
                s.generation += 1;
            }),
            Drift::Config {
                service_id,
                configuration_id,
                version,
            } => self.inner().with_service(scope, &service_id, |s, _| {
                s.configuration_id = configuration_id;
                s.config_version = version;
                s.generation += 1;
            }),
            Drift::Delete { service_id } => {
                let now = self.inner().now();
                let mut state = self.inner().lock()?;
                let k = key(&scope.tenant_id, &scope.environment_id, &service_id);
                match state.services.remove(&k) {
                    Some(s) if !s.is_deleted(now) => self.inner().persist(&state),
                    _ => Err(CloudError::not_found(format!(
                        "service {service_id:?} not found in {scope}"
                    ))),
                }
            }
            Drift::Extra { spec } => {
                check_spec(scope, &spec, spec.platform)?;
                let now = self.inner().now();
                let mut state = self.inner().lock()?;
                state.prune_deleted(now);
                let k = key(&scope.tenant_id, &scope.environment_id, &spec.id);
                if state.services.contains_key(&k) {
                    return Err(CloudError::conflict(format!(
                        "service {:?} already exists in {scope}",
                        spec.id
                    )));
                }
                state.services.insert(k, new_record(scope, &spec, now));
                self.inner().persist(&state)
            }
        }
    }
}
