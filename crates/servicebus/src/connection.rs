//! The one AMQP connection of a [`ServiceBusBus`](crate::ServiceBusBus), re-created when it
//! breaks. Senders and receivers ask it for links; a link remembers the connection generation
//! it was made on, so after a reconnect stale links are re-created on the next call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use azservicebus::core::BasicRetryPolicy;
use azservicebus::{
    ServiceBusClient, ServiceBusClientOptions, ServiceBusReceiver, ServiceBusReceiverOptions,
    ServiceBusRetryOptions, ServiceBusSender, ServiceBusSenderOptions, ServiceBusTransportType,
};
use fleet_bus::{BusError, BusErrorKind, EntityPath};
use tokio::sync::Mutex;

use crate::config::{Auth, ServiceBusConfig};
use crate::credential;
use crate::error::{Op, classify, needs_reconnect};

pub(crate) type Client = ServiceBusClient<BasicRetryPolicy>;

/// The client.
struct State {
    // `None` after a connection error until the next call reconnects.
    client: Option<Client>,
}

pub(crate) struct Connection {
    pub(crate) config: ServiceBusConfig,
    state: Mutex<State>,
    // Bumped (under the `state` lock) whenever the client is dropped; links made on an older
    // one are stale. Atomic so that every settle can read it without queueing behind an
    // attach or a reconnect holding the lock.
    generation: AtomicU64,
}

impl Connection {
    pub(crate) fn new(config: ServiceBusConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(State { client: None }),
            generation: AtomicU64::new(0),
        })
    }

    fn client_options(&self) -> ServiceBusClientOptions {
        ServiceBusClientOptions {
            transport_type: ServiceBusTransportType::AmqpTcp,
            // Retries and reconnects are ours (with backoff and fresh links); the client's own
            // recovery would hide a dead connection behind long internal waits.
            retry_options: ServiceBusRetryOptions {
                max_retries: 0,
                try_timeout: self.config.operation_timeout,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Opens a client: one attempt, bounded by the operation timeout.
    async fn open(&self) -> Result<Client, BusError> {
        let options = self.client_options();
        let namespace = self.config.namespace().to_owned();
        let what = format!("connecting to {namespace}");
        let fut = async {
            match (&self.config.auth, self.config.emulator) {
                (Auth::ConnectionString(cs), true) => {
                    ServiceBusClient::unsecured()
                        .new_from_connection_string(cs.to_client_string().expose(), options)
                        .await
                }
                (Auth::ConnectionString(cs), false) => {
                    ServiceBusClient::new_from_connection_string(
                        cs.to_client_string().expose(),
                        options,
                    )
                    .await
                }
                (Auth::Credential { credential, .. }, true) => {
                    ServiceBusClient::unsecured()
                        .new_from_token_credential(
                            namespace.clone(),
                            credential::for_client(credential),
                            options,
                        )
                        .await
                }
                (Auth::Credential { credential, .. }, false) => {
                    ServiceBusClient::new_from_token_credential(
                        namespace.clone(),
                        credential::for_client(credential),
                        options,
                    )
                    .await
                }
            }
        };
        match tokio::time::timeout(self.config.operation_timeout, Box::pin(fut)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(classify(e, Op::Attach, &what)),
            Err(_) => Err(timeout(&what, self.config.operation_timeout)),
        }
    }

    /// Drops the client if it is still `generation`, so the next call reconnects.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if self.generation() == generation {
            if let Some(client) = state.client.take() {
                dispose_later(client);
            }
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                namespace = self.config.namespace(),
                "Service Bus connection dropped; reconnecting on next use"
            );
        }
    }

    /// The current generation (links remember it).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Attaches the link `spec` with the current client, reconnecting with backoff on
    /// connection errors. Returns the link and the generation it belongs to.
    async fn attach(&self, spec: Spec<'_>) -> Result<(Made, u64), BusError> {
        let what = spec.describe();
        let mut attempt = 0;
        loop {
            let result = {
                let mut state = self.state.lock().await;
                let generation = self.generation();
                let client = match state.client.take() {
                    Some(c) => Ok(c),
                    None => self.open().await,
                };
                match client {
                    Ok(client) => {
                        let client = state.client.insert(client);
                        let outcome = tokio::time::timeout(
                            self.config.operation_timeout,
                            make(client, &spec),
                        )
                        .await;
                        let outcome = match outcome {
                            Ok(Ok(link)) => Ok((link, generation)),
                            Ok(Err(e)) => Err(classify(e, Op::Attach, &what)),
                            Err(_) => Err(timeout(&what, self.config.operation_timeout)),
                        };
                        if outcome.as_ref().is_err_and(needs_reconnect) {
                            if let Some(client) = state.client.take() {
                                dispose_later(client);
                            }
                            self.generation.fetch_add(1, Ordering::AcqRel);
                        }
                        outcome
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Err(e) if needs_reconnect(&e) && attempt + 1 < self.config.backoff.attempts => {
                    let delay = self.config.backoff.delay(attempt);
                    tracing::warn!(error = %e, ?delay, "Service Bus attach failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn sender(&self, entity: &str) -> Result<(ServiceBusSender, u64), BusError> {
        match self.attach(Spec::Sender(entity)).await? {
            (Made::Sender(link), generation) => Ok((link, generation)),
            (Made::Receiver(_), _) => Err(BusError::new(
                BusErrorKind::Other,
                "attached a receiver where a sender was asked for",
            )),
        }
    }

    pub(crate) async fn receiver(
        &self,
        path: &EntityPath,
        options: ServiceBusReceiverOptions,
    ) -> Result<(ServiceBusReceiver, u64), BusError> {
        let spec = match path.base() {
            EntityPath::Queue(queue) => Spec::Queue(queue, options, path),
            EntityPath::Subscription {
                topic,
                subscription,
            } => Spec::Subscription(topic, subscription, options, path),
            other => {
                return Err(BusError::invalid(format!(
                    "cannot receive from \"{other}\": only queues and subscriptions have receivers"
                )));
            }
        };
        match self.attach(spec).await? {
            (Made::Receiver(link), generation) => Ok((link, generation)),
            (Made::Sender(_), _) => Err(BusError::new(
                BusErrorKind::Other,
                "attached a sender where a receiver was asked for",
            )),
        }
    }

    /// Closes the client (at shutdown).
    pub(crate) async fn close(&self) -> Result<(), BusError> {
        let mut state = self.state.lock().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(client) = state.client.take() {
            let what = format!("closing the connection to {}", self.config.namespace());
            match tokio::time::timeout(self.config.operation_timeout, client.dispose()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(classify(e, Op::Attach, &what)),
                Err(_) => return Err(timeout(&what, self.config.operation_timeout)),
            }
        }
        Ok(())
    }
}

/// A `Timeout` error naming what timed out.
pub(crate) fn timeout(what: &str, after: Duration) -> BusError {
    BusError::new(
        BusErrorKind::Timeout,
        format!("{what}: no answer within {after:?}"),
    )
}

/// Closes a broken client in the background: nobody should wait for a dead peer.
fn dispose_later(client: Client) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.dispose()).await;
    });
}

/// A link to attach.
enum Spec<'a> {
    Sender(&'a str),
    Queue(&'a str, ServiceBusReceiverOptions, &'a EntityPath),
    Subscription(&'a str, &'a str, ServiceBusReceiverOptions, &'a EntityPath),
}

impl Spec<'_> {
    fn describe(&self) -> String {
        match self {
            Self::Sender(entity) => format!("sender for \"{entity}\""),
            Self::Queue(_, _, path) | Self::Subscription(_, _, _, path) => {
                format!("receiver for \"{path}\"")
            }
        }
    }
}

/// An attached link.
pub(crate) enum Made {
    Sender(ServiceBusSender),
    Receiver(ServiceBusReceiver),
}

async fn make(client: &mut Client, spec: &Spec<'_>) -> Result<Made, azure_core_sb::Error> {
    Ok(match spec {
        Spec::Sender(entity) => Made::Sender(
            client
                .create_sender(*entity, ServiceBusSenderOptions::default())
                .await?,
        ),
        Spec::Queue(queue, options, _) => Made::Receiver(
            client
                .create_receiver_for_queue(*queue, options.clone())
                .await?,
        ),
        Spec::Subscription(topic, subscription, options, _) => Made::Receiver(
            client
                .create_receiver_for_subscription(*topic, *subscription, options.clone())
                .await?,
        ),
    })
}
