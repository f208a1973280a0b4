//! Entra ID tokens for azservicebus.
//!
//! azservicebus 0.25 asks for tokens through azure_core **0.25**'s `TokenCredential`, while
//! `azure_identity` 1.x credentials implement azure_core **1.x**'s. The two traits are distinct
//! types, so [`TokenBridge`] wraps any 1.x credential (as `Arc<dyn TokenCredential>`) and
//! implements the 0.25 trait by forwarding `get_token` and copying the token and expiry.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core_sb::credentials as sb;
use fleet_bus::BusError;

use crate::config::{ENV_CREDENTIAL, ENV_MANAGED_IDENTITY_CLIENT_ID, EntraCredential, Env};

/// The scope Service Bus tokens are issued for (what azservicebus asks for).
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";

/// Implements azservicebus' (azure_core 0.25) token trait over an azure_core 1.x credential.
#[derive(Debug, Clone)]
pub struct TokenBridge {
    // The 1.x credential that actually talks to Entra ID (IMDS, workload identity, CLI...).
    inner: EntraCredential,
}

impl TokenBridge {
    /// Bridges `credential`.
    pub fn new(credential: EntraCredential) -> Self {
        Self { inner: credential }
    }
}

#[async_trait]
impl sb::TokenCredential for TokenBridge {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<sb::TokenRequestOptions>,
    ) -> azure_core_sb::Result<sb::AccessToken> {
        let scopes: &[&str] = if scopes.is_empty() {
            &[SERVICE_BUS_SCOPE]
        } else {
            scopes
        };
        match self.inner.get_token(scopes, None).await {
            Ok(token) => Ok(sb::AccessToken::new(
                token.token.secret().to_owned(),
                token.expires_on,
            )),
            // The 1.x error's Display names the credential and the failure, never the token.
            Err(err) => Err(azure_core_sb::Error::message(
                azure_core_sb::error::ErrorKind::Credential,
                format!("Entra ID token for {scopes:?} failed: {err}"),
            )),
        }
    }
}

/// The credential named by `FLEET_SERVICEBUS_CREDENTIAL`.
#[cfg(feature = "azure-identity")]
pub(crate) fn from_name(kind: &str, env: &dyn Env) -> Result<EntraCredential, BusError> {
    use azure_identity::{
        DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
        UserAssignedId, WorkloadIdentityCredential,
    };
    let failed = |e: azure_core::Error| {
        BusError::new(
            fleet_bus::BusErrorKind::Unauthorized,
            format!("{ENV_CREDENTIAL}={kind}: the credential cannot be created: {e}"),
        )
    };
    let credential: EntraCredential = match kind {
        "managed-identity" => {
            let options = env
                .var(ENV_MANAGED_IDENTITY_CLIENT_ID)
                .filter(|v| !v.is_empty())
                .map(|id| ManagedIdentityCredentialOptions {
                    user_assigned_id: Some(UserAssignedId::ClientId(id)),
                    ..Default::default()
                });
            ManagedIdentityCredential::new(options).map_err(failed)?
        }
        "workload-identity" => WorkloadIdentityCredential::new(None).map_err(failed)?,
        "developer-tools" => DeveloperToolsCredential::new(None).map_err(failed)?,
        other => return Err(unknown(other)),
    };
    Ok(credential)
}

/// Without the `azure-identity` feature no credential can be built from a name.
#[cfg(not(feature = "azure-identity"))]
pub(crate) fn from_name(kind: &str, env: &dyn Env) -> Result<EntraCredential, BusError> {
    let _ = env.var(ENV_MANAGED_IDENTITY_CLIENT_ID);
    match kind {
        "managed-identity" | "workload-identity" | "developer-tools" => {
            Err(BusError::invalid(format!(
                "{ENV_CREDENTIAL}={kind} needs fleet-servicebus built with the azure-identity feature"
            )))
        }
        other => Err(unknown(other)),
    }
}

fn unknown(kind: &str) -> BusError {
    BusError::invalid(format!(
        "{ENV_CREDENTIAL} must be managed-identity, workload-identity or developer-tools, got \"{kind}\""
    ))
}

/// Wraps a bridged credential as azservicebus' credential type.
pub(crate) fn for_client(credential: &EntraCredential) -> Arc<dyn sb::TokenCredential> {
    Arc::new(TokenBridge::new(credential.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
    use sb::TokenCredential as _;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Fixed {
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            if let Ok(mut asked) = self.asked.lock() {
                asked.extend(scopes.iter().map(|s| (*s).to_owned()));
            }
            Ok(AccessToken::new(
                Secret::new("entra-token"),
                time::OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn the_bridge_forwards_the_scope_and_copies_token_and_expiry() {
        let inner = Arc::new(Fixed::default());
        let bridge = TokenBridge::new(inner.clone());
        let token = bridge.get_token(&[SERVICE_BUS_SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "entra-token");
        assert_eq!(
            token.expires_on,
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1)
        );
        assert_eq!(*inner.asked.lock().unwrap(), vec![SERVICE_BUS_SCOPE]);
    }

    #[test]
    fn an_unknown_credential_name_is_refused_naming_it() {
        let env = std::collections::HashMap::new();
        let err = from_name("password", &env).unwrap_err();
        assert!(err.to_string().contains("\"password\""), "{err}");
        assert!(err.to_string().contains(ENV_CREDENTIAL), "{err}");
    }
}
