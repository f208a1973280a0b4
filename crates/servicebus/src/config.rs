//! How to reach a namespace: a connection string, or a namespace plus an Entra ID credential;
//! and the adapter's timing knobs. Read from the environment through [`Env`] so tests pass a map.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::BusError;

use crate::secret::Secret;

/// Connection string of the namespace (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`).
/// Emulator and break-glass use only: production uses a namespace and a managed identity.
pub const ENV_CONNECTION: &str = "FLEET_SERVICEBUS_CONNECTION";
/// Fully-qualified namespace (`<name>.servicebus.windows.net`), used with an Entra ID credential.
pub const ENV_NAMESPACE: &str = "FLEET_SERVICEBUS_NAMESPACE";
/// Which Entra ID credential to use with [`ENV_NAMESPACE`]: `managed-identity` (default),
/// `workload-identity` or `developer-tools`.
pub const ENV_CREDENTIAL: &str = "FLEET_SERVICEBUS_CREDENTIAL";
/// Client id of a user-assigned managed identity (absent: the system-assigned identity).
pub const ENV_MANAGED_IDENTITY_CLIENT_ID: &str = "FLEET_SERVICEBUS_MANAGED_IDENTITY_CLIENT_ID";
/// `true` forces plain AMQP on port 5672 (the local emulator) even without
/// `UseDevelopmentEmulator=true` in the connection string.
pub const ENV_EMULATOR: &str = "FLEET_SERVICEBUS_EMULATOR";

/// Where configuration values come from; the process environment in production, a map in tests.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A parsed Service Bus connection string. Keys and signatures are [`Secret`]s, so `Debug`
/// shows the endpoint and key name only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Host (and optional port) of the namespace, without scheme or slashes.
    pub endpoint: String,
    /// `SharedAccessKeyName`.
    pub key_name: Option<String>,
    /// `SharedAccessKey`.
    pub key: Option<Secret>,
    /// `SharedAccessSignature` (a ready-made token instead of a key).
    pub shared_access_signature: Option<Secret>,
    /// `EntityPath`, when the string is scoped to one entity.
    pub entity_path: Option<String>,
    /// `UseDevelopmentEmulator=true`: plain AMQP to a local emulator.
    pub use_development_emulator: bool,
}

impl ConnectionString {
    /// Parses `Key=Value;…`. Errors name the offending key, never a secret value.
    pub fn parse(text: &str) -> Result<Self, BusError> {
        let bad = |why: String| {
            BusError::invalid(format!("invalid Service Bus connection string: {why}"))
        };
        let mut endpoint = None;
        let mut parsed = ConnectionString {
            endpoint: String::new(),
            key_name: None,
            key: None,
            shared_access_signature: None,
            entity_path: None,
            use_development_emulator: false,
        };
        for (n, part) in text.split(';').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                // Not even a prefix is shown: the part might be a pasted key.
                return Err(bad(format!("part {} is not Key=Value", n + 1)));
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.to_owned()),
                "sharedaccesskeyname" => parsed.key_name = Some(value.to_owned()),
                "sharedaccesskey" => parsed.key = Some(Secret::new(value)),
                "sharedaccesssignature" => {
                    parsed.shared_access_signature = Some(Secret::new(value))
                }
                "entitypath" => parsed.entity_path = Some(value.to_owned()),
                "usedevelopmentemulator" => {
                    parsed.use_development_emulator = parse_bool(value).ok_or_else(|| {
                        bad(format!(
                            "UseDevelopmentEmulator must be true or false, got \"{value}\""
                        ))
                    })?;
                }
                other => return Err(bad(format!("unknown key \"{other}\""))),
            }
        }
        let endpoint = endpoint.ok_or_else(|| bad("Endpoint is missing".into()))?;
        let host = endpoint
            .strip_prefix("sb://")
            .or_else(|| endpoint.strip_prefix("amqps://"))
            .or_else(|| endpoint.strip_prefix("amqp://"))
            .ok_or_else(|| bad(format!("Endpoint \"{endpoint}\" must start with sb://")))?
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad(format!("Endpoint \"{endpoint}\" must be sb://HOST/")));
        }
        parsed.endpoint = host.to_owned();
        let has_key = parsed.key_name.is_some() && parsed.key.is_some();
        if !has_key && parsed.shared_access_signature.is_none() {
            return Err(bad(
                "needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature".into(),
            ));
        }
        Ok(parsed)
    }

    /// The string handed to the client library (which wants the canonical form).
    pub(crate) fn to_client_string(&self) -> Secret {
        let mut s = format!("Endpoint=sb://{}/", self.endpoint);
        if let (Some(name), Some(key)) = (&self.key_name, &self.key) {
            s.push_str(&format!(
                ";SharedAccessKeyName={name};SharedAccessKey={}",
                key.expose()
            ));
        }
        if let Some(sas) = &self.shared_access_signature {
            s.push_str(&format!(";SharedAccessSignature={}", sas.expose()));
        }
        if let Some(path) = &self.entity_path {
            s.push_str(&format!(";EntityPath={path}"));
        }
        if self.use_development_emulator {
            s.push_str(";UseDevelopmentEmulator=true");
        }
        Secret::new(s)
    }
}

impl FromStr for ConnectionString {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

/// An Entra ID credential: anything implementing `azure_core` 1.x's `TokenCredential`
/// (every `azure_identity` 1.x credential does).
pub type EntraCredential = Arc<dyn azure_core::credentials::TokenCredential>;

/// How the adapter authenticates.
#[derive(Clone)]
pub enum Auth {
    /// Shared access key or signature from a connection string.
    ConnectionString(ConnectionString),
    /// A namespace and an Entra ID credential (scope `https://servicebus.azure.net/.default`).
    Credential {
        /// Fully-qualified namespace, e.g. `fleet-prod.servicebus.windows.net`.
        namespace: String,
        /// The credential that issues tokens.
        credential: EntraCredential,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionString(cs) => f.debug_tuple("ConnectionString").field(cs).finish(),
            Self::Credential { namespace, .. } => f
                .debug_struct("Credential")
                .field("namespace", namespace)
                .finish_non_exhaustive(),
        }
    }
}

/// Exponential backoff between reconnect attempts: `initial`, doubled each time up to `max`,
/// with full jitter so replicas do not reconnect in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts per operation before the error goes to the caller (who retries later).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            attempts: 4,
        }
    }
}

impl Backoff {
    /// The delay before attempt `n` (0-based): a random duration up to `initial * 2^n`, capped.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(2u32.saturating_pow(n.min(20)))
            .min(self.max);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::random_range(millis / 2..=millis))
    }
}

/// Everything [`ServiceBusBus`](crate::ServiceBusBus) needs.
#[derive(Debug, Clone)]
pub struct ServiceBusConfig {
    /// Credentials and namespace.
    pub auth: Auth,
    /// Plain AMQP on port 5672 (local emulator). Also implied by `UseDevelopmentEmulator=true`.
    pub emulator: bool,
    /// Upper bound of any single operation (connect, attach, send, settle, management call).
    pub operation_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// While a receive waits for its first message it gives the link to settlements at least
    /// this often (settling needs the same link).
    pub receive_slice: Duration,
    /// After the first message of a receive arrives, how long it waits for more to fill the batch.
    pub batch_linger: Duration,
}

impl ServiceBusConfig {
    /// From a connection string; plain AMQP when it says `UseDevelopmentEmulator=true`.
    pub fn from_connection_string(text: &str) -> Result<Self, BusError> {
        let cs = ConnectionString::parse(text)?;
        let emulator = cs.use_development_emulator;
        Ok(Self::with_auth(Auth::ConnectionString(cs), emulator))
    }

    /// From a fully-qualified namespace and an Entra ID credential (TLS, port 5671).
    pub fn from_credential(namespace: impl Into<String>, credential: EntraCredential) -> Self {
        let namespace = namespace.into();
        let namespace = namespace
            .trim_start_matches("sb://")
            .trim_end_matches('/')
            .to_owned();
        Self::with_auth(
            Auth::Credential {
                namespace,
                credential,
            },
            false,
        )
    }

    fn with_auth(auth: Auth, emulator: bool) -> Self {
        Self {
            auth,
            emulator,
            operation_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            receive_slice: Duration::from_millis(100),
            batch_linger: Duration::from_millis(20),
        }
    }

    /// From the environment: [`ENV_CONNECTION`], or [`ENV_NAMESPACE`] with [`ENV_CREDENTIAL`]
    /// (Entra ID credentials need the `azure-identity` feature). Errors name the variable.
    pub fn from_env(env: &dyn Env) -> Result<Self, BusError> {
        let emulator = match env.var(ENV_EMULATOR) {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                BusError::invalid(format!("{ENV_EMULATOR} must be true or false, got \"{v}\""))
            })?,
            None => false,
        };
        if let Some(cs) = env.var(ENV_CONNECTION).filter(|v| !v.trim().is_empty()) {
            let mut config = Self::from_connection_string(&cs)
                .map_err(|e| BusError::invalid(format!("{ENV_CONNECTION}: {}", e.message())))?;
            config.emulator |= emulator;
            return Ok(config);
        }
        let Some(namespace) = env.var(ENV_NAMESPACE).filter(|v| !v.trim().is_empty()) else {
            return Err(BusError::invalid(format!(
                "set {ENV_CONNECTION}, or {ENV_NAMESPACE} with {ENV_CREDENTIAL}"
            )));
        };
        let kind = env
            .var(ENV_CREDENTIAL)
            .unwrap_or_else(|| "managed-identity".to_owned());
        let credential = crate::credential::from_name(&kind, env)?;
        let mut config = Self::from_credential(namespace, credential);
        config.emulator = emulator;
        Ok(config)
    }

    /// The namespace host the client connects to.
    pub fn namespace(&self) -> &str {
        match &self.auth {
            Auth::ConnectionString(cs) => &cs.endpoint,
            Auth::Credential { namespace, .. } => namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: &str = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0LWtleQ==";

    #[test]
    fn parses_a_namespace_connection_string() {
        let cs = ConnectionString::parse(CS).unwrap();
        assert_eq!(cs.endpoint, "ns.servicebus.windows.net");
        assert_eq!(cs.key_name.as_deref(), Some("RootManageSharedAccessKey"));
        assert_eq!(
            cs.key.as_ref().map(Secret::expose),
            Some("c2VjcmV0LWtleQ==")
        );
        assert!(!cs.use_development_emulator);
    }

    #[test]
    fn emulator_flag_selects_plain_amqp() {
        let config = ServiceBusConfig::from_connection_string(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        assert!(config.emulator);
        assert_eq!(config.namespace(), "localhost");
    }

    #[test]
    fn debug_of_the_config_redacts_the_key() {
        let config = ServiceBusConfig::from_connection_string(CS).unwrap();
        let text = format!("{config:?}");
        assert!(!text.contains("c2VjcmV0LWtleQ"), "{text}");
        assert!(text.contains("ns.servicebus.windows.net"), "{text}");
    }

    #[test]
    fn bad_strings_name_the_problem_without_the_secret() {
        for (text, needle) in [
            (
                "SharedAccessKeyName=k;SharedAccessKey=s3cr3t",
                "Endpoint is missing",
            ),
            (
                "Endpoint=http://x/;SharedAccessKeyName=k;SharedAccessKey=s3cr3t",
                "http://x/",
            ),
            ("Endpoint=sb://x/;SharedAccessKeyName=k", "SharedAccessKey"),
            (
                "Endpoint=sb://x/;Colour=blue;SharedAccessKey=s3cr3t",
                "colour",
            ),
            ("Endpoint=sb://x/;s3cr3tvaluewithoutequals", "not Key=Value"),
        ] {
            let err = ConnectionString::parse(text).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains(needle), "{text}: {shown}");
            assert!(
                !shown.contains("s3cr3t") || needle.contains("s3cr3t"),
                "{shown}"
            );
        }
    }

    #[test]
    fn env_prefers_the_connection_string_and_names_missing_variables() {
        let mut env = HashMap::new();
        let err = ServiceBusConfig::from_env(&env).unwrap_err();
        assert!(err.to_string().contains(ENV_CONNECTION), "{err}");
        env.insert(ENV_CONNECTION.to_owned(), CS.to_owned());
        env.insert(ENV_EMULATOR.to_owned(), "true".to_owned());
        let config = ServiceBusConfig::from_env(&env).unwrap();
        assert!(config.emulator);
        env.insert(ENV_EMULATOR.to_owned(), "maybe".to_owned());
        let err = ServiceBusConfig::from_env(&env).unwrap_err();
        assert!(err.to_string().contains(ENV_EMULATOR), "{err}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            attempts: 5,
        };
        assert!(b.delay(0) <= Duration::from_millis(100));
        assert!(b.delay(2) >= Duration::from_millis(200));
        assert!(b.delay(10) <= Duration::from_millis(800));
    }
}
