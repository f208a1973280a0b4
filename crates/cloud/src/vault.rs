//! The `Vault` port, in Key Vault's terms (secrets with versions that can be disabled).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CloudError, Scope};

/// A secret's contents. `Debug` and `Display` print `[redacted]`; only [`SecretValue::expose`]
/// reveals it, so the value cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The contents; call only where the value is handed to its consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        SecretValue(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        SecretValue(value.to_owned())
    }
}

/// One secret version with its value (Key Vault's `SecretBundle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBundle {
    /// Secret name.
    pub name: String,
    /// The value (redacted in `Debug`).
    pub value: SecretValue,
    /// Version id (32 lowercase hex in Key Vault).
    pub version: String,
    /// Disabled versions cannot be read.
    pub enabled: bool,
    /// When the version was created.
    pub created: DateTime<Utc>,
}

/// A secret version's attributes, without its value (Key Vault's `SecretItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersionInfo {
    /// Version id.
    pub version: String,
    /// Whether it can be read.
    pub enabled: bool,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// A secret store scoped per tenant environment.
#[async_trait]
pub trait Vault: Send + Sync {
    /// Stores `value` as a new version of `name` (creating the secret) and returns the version.
    async fn set_secret(
        &self,
        scope: &Scope,
        name: &str,
        value: SecretValue,
    ) -> Result<String, CloudError>;

    /// Reads `version` of `name`, or the newest version when `version` is `None`.
    ///
    /// A disabled version is [`Conflict`](crate::CloudErrorKind::Conflict) (Key Vault answers
    /// 403 "operation get is not allowed on a disabled secret"); an unknown name or version is
    /// [`NotFound`](crate::CloudErrorKind::NotFound).
    async fn get_secret(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretBundle, CloudError>;

    /// Every version of `name`, oldest first.
    async fn list_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<SecretVersionInfo>, CloudError>;

    /// Disables `version` of `name` (no change when already disabled).
    async fn disable_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_value_never_prints_its_contents() {
        let v = SecretValue::new("hunter2-very-secret");
        let bundle = SecretBundle {
            name: "db-password".into(),
            value: v.clone(),
            version: "v1".into(),
            enabled: true,
            created: Utc::now(),
        };
        for printed in [
            format!("{v}"),
            format!("{v:?}"),
            format!("{bundle:?}"),
            format!("{bundle:#?}"),
        ] {
            assert!(!printed.contains("hunter2"), "leaked: {printed}");
        }
        assert_eq!(v.expose(), "hunter2-very-secret");
    }
}
