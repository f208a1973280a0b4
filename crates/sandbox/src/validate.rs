//! Validation shared by the sandbox's ports and knobs: names, specs, scopes, secret bindings.

use std::collections::BTreeMap;

use fleet_cloud::{CloudError, PlatformKind, Scope, SecretBindingRef, ServiceSpec};

/// The version a binding resolves to before it is pinned: a versionless Key Vault reference,
/// which follows the newest version.
pub const LATEST: &str = "latest";

/// Largest replica count the sandbox accepts (the strictest real limit is higher).
pub(crate) const MAX_REPLICAS: u32 = 1000;

/// Checks a service, dependency or secret-binding name: 1–63 of `[a-z0-9-]`, alphanumeric at
/// both ends (the Container Apps rule, the strictest of the four platforms).
pub(crate) fn check_name(value: &str) -> Result<(), CloudError> {
    let chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let edges = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if value.is_empty() || value.len() > 63 || !chars || !edges {
        return Err(CloudError::invalid(format!(
            "{value:?} is not a valid name (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit)"
        )));
    }
    Ok(())
}

pub(crate) fn check_spec(
    scope: &Scope,
    spec: &ServiceSpec,
    platform: PlatformKind,
) -> Result<(), CloudError> {
    check_scope(scope)?;
    check_name(&spec.id)?;
    if spec.environment_id != scope.environment_id {
        return Err(CloudError::invalid(format!(
            "spec of {:?} is for environment {:?}, but the call is scoped to {:?}",
            spec.id, spec.environment_id, scope.environment_id
        )));
    }
    if spec.platform != platform {
        return Err(CloudError::invalid(format!(
            "spec of {:?} targets {}, but this control plane runs {platform}",
            spec.id, spec.platform
        )));
    }
    if spec.image.is_empty() || spec.image.chars().any(char::is_whitespace) {
        return Err(CloudError::invalid(format!(
            "image {:?} of {:?} is not valid",
            spec.image, spec.id
        )));
    }
    if spec.replicas > MAX_REPLICAS {
        return Err(CloudError::invalid(format!(
            "replicas {} of {:?} is over {MAX_REPLICAS}",
            spec.replicas, spec.id
        )));
    }
    if spec.config_version.is_some() && spec.configuration_id.is_none() {
        return Err(CloudError::invalid(format!(
            "{:?}: configVersion needs a configurationId",
            spec.id
        )));
    }
    Ok(())
}

/// The bindings `spec` asks for, keeping the pinned version of a binding whose secret name is
/// unchanged (a re-apply must not undo a rotation).
pub(crate) fn bindings_of(
    spec: &ServiceSpec,
    current: &BTreeMap<String, SecretBindingRef>,
) -> BTreeMap<String, SecretBindingRef> {
    spec.secret_bindings
        .iter()
        .map(|(binding, secret)| {
            let version = current
                .get(binding)
                .filter(|b| &b.secret_name == secret)
                .map_or_else(|| LATEST.to_owned(), |b| b.version.clone());
            (
                binding.clone(),
                SecretBindingRef {
                    secret_name: secret.clone(),
                    version,
                },
            )
        })
        .collect()
}

/// Checks that a tenant or environment id can be a path segment of the endpoint URLs.
pub(crate) fn check_scope(scope: &Scope) -> Result<(), CloudError> {
    for (what, v) in [
        ("tenant", &scope.tenant_id),
        ("environment", &scope.environment_id),
    ] {
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v != "."
            && v != "..";
        if !ok {
            return Err(CloudError::invalid(format!(
                "{what} id {v:?} is not valid (1-128 of A-Z, a-z, 0-9, '-', '_', '.')"
            )));
        }
    }
    Ok(())
}
