//! [`ServiceBusBus`]: the entry point.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use fleet_bus::{Bus, BusError, BusReceiver, BusSender, EntityPath, ReceiveOptions};

use crate::config::{Env, ServiceBusConfig};
use crate::connection::Connection;
use crate::receiver::{SbReceiver, client_options};
use crate::sender::SbSender;

/// Fleet's Bus port over Azure Service Bus (or the local emulator) on AMQP 1.0.
///
/// One AMQP connection is shared by every sender and receiver it hands out; it is opened on
/// first use and re-opened with exponential backoff after it breaks. Construction does no I/O.
#[derive(Clone)]
pub struct ServiceBusBus {
    // Shared with every link so a reconnect is seen by all of them.
    conn: Arc<Connection>,
}

impl ServiceBusBus {
    /// A bus for `config`.
    pub fn new(config: ServiceBusConfig) -> Self {
        Self {
            conn: Connection::new(config),
        }
    }

    /// A bus for a connection string (plain AMQP when it says `UseDevelopmentEmulator=true`).
    pub fn from_connection_string(connection_string: &str) -> Result<Self, BusError> {
        Ok(Self::new(ServiceBusConfig::from_connection_string(
            connection_string,
        )?))
    }

    /// A bus for a namespace and an Entra ID credential (any azure_core 1.x `TokenCredential`,
    /// e.g. `azure_identity::ManagedIdentityCredential::new(None)?`).
    pub fn from_credential(
        namespace: impl Into<String>,
        credential: crate::EntraCredential,
    ) -> Self {
        Self::new(ServiceBusConfig::from_credential(namespace, credential))
    }

    /// A bus configured from the environment (see [`ServiceBusConfig::from_env`]).
    pub fn from_env(env: &dyn Env) -> Result<Self, BusError> {
        Ok(Self::new(ServiceBusConfig::from_env(env)?))
    }

    /// The configuration in use.
    pub fn config(&self) -> &ServiceBusConfig {
        &self.conn.config
    }

    /// Closes the shared connection; later calls open a new one.
    pub async fn close(&self) -> Result<(), BusError> {
        self.conn.close().await
    }
}

impl fmt::Debug for ServiceBusBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusBus")
            .field("config", &self.conn.config)
            .finish()
    }
}

#[async_trait]
impl Bus for ServiceBusBus {
    async fn sender(&self, entity: &str) -> Result<Box<dyn BusSender>, BusError> {
        let path = EntityPath::parse(entity)?;
        if !matches!(path, EntityPath::Queue(_) | EntityPath::Topic(_)) {
            return Err(BusError::invalid(format!(
                "cannot send to \"{entity}\": send to a queue or a topic"
            )));
        }
        let link = self.conn.sender(entity).await?;
        Ok(Box::new(SbSender::new(
            self.conn.clone(),
            entity.to_owned(),
            link,
        )))
    }

    async fn receiver(
        &self,
        entity: &EntityPath,
        options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError> {
        let link = self
            .conn
            .receiver(entity, client_options(entity, options))
            .await?;
        Ok(Box::new(SbReceiver::new(
            self.conn.clone(),
            entity.clone(),
            options,
            link,
        )))
    }
}
