//! `fleet-amqp`: the server side of AMQP 1.0 in the Azure Service Bus dialect, in front of
//! any [`fleet_bus::Bus`].
//!
//! Start at [`serve`]: it accepts TCP connections and speaks to the production Service Bus
//! clients (the Rust `azservicebus` crate, the Python `azure-servicebus` SDK) as Service Bus
//! does — SASL, `$cbs` put-token with SAS validation, sessions and links with real credit and
//! settlement, 16-byte lock tokens, Service Bus annotations, and the `$management`
//! operations (renew-lock, schedule, cancel, peek, receive deferred, update-disposition, and
//! add-rule, remove-rule and enumerate-rules when the backend offers rule management).
//! Configuration is [`ListenerOptions`]; SAS keys are [`SasKey`]s. `docs/amqp.md` lists what is
//! supported and the wire facts this relies on.

mod address;
mod auth;
mod cbs;
mod connection;
mod convert;
mod deliver;
mod error;
mod frame;
mod link;
mod locks;
mod management;
mod rules;
mod sasl;
mod scan;
mod settle;
mod state;
mod transfer;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleet_bus::Bus;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use auth::{SasKey, sign_token};
pub use error::{AmqpError, AmqpErrorKind};

/// Settings of a listener. `Default` suits tests and local runs: no keys (any token is
/// accepted), 64 KiB frames, 1 MiB messages.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Container id we announce in `open`.
    pub container_id: String,
    /// Largest frame we accept, announced in `open` (at least 512).
    pub max_frame_size: u32,
    /// Largest message (or batch) we accept, announced on every link.
    pub max_message_size: u64,
    /// Idle timeout we announce; a peer silent for twice this long is disconnected.
    pub idle_timeout: Duration,
    /// How long a client may take from connect to the end of SASL.
    pub handshake_timeout: Duration,
    /// Keys that sign acceptable SAS tokens; empty accepts any token.
    pub keys: Vec<SasKey>,
    /// Most simultaneous connections; later ones are closed at once.
    pub max_connections: usize,
    /// How long after the unsettled outcome a client that asked for rcv-settle-mode `first`
    /// gets the settled disposition; works around a race in the Rust client (see
    /// `docs/amqp.md`). Only a send that lost the race waits this long.
    pub settle_delay: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            container_id: "fleet-emulator".to_owned(),
            max_frame_size: 64 * 1024,
            max_message_size: 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(30),
            keys: Vec::new(),
            max_connections: 1_024,
            settle_delay: Duration::from_millis(100),
        }
    }
}

/// What every connection of a listener shares.
pub(crate) struct Shared {
    bus: Arc<dyn Bus>,
    options: ListenerOptions,
    /// Outstanding lock tokens of all connections.
    locks: locks::Locks,
}

/// Serves AMQP connections from `listener` against `backend` until `shutdown` completes, then
/// closes every connection (with `amqp:connection:forced`) and returns once they are gone.
///
/// A connection that breaks the protocol is closed on its own; the listener goes on.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Bus>,
    options: ListenerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AmqpError> {
    let mut options = options;
    options.max_frame_size = options.max_frame_size.max(frame::MIN_MAX_FRAME_SIZE);
    let shared = Arc::new(Shared {
        bus: backend,
        options,
        locks: locks::Locks::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let next_id = AtomicU64::new(1);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Accept errors (e.g. too many open files) are transient for the
                        // listener; back off briefly instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if connections.len() >= shared.options.max_connections {
                    tracing::warn!(%peer, "connection limit reached; closing");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    match connection::run(stream, shared, id, stop).await {
                        Ok(()) => tracing::debug!(%peer, "connection closed"),
                        Err(err) => tracing::info!(%peer, error = %err, "connection ended"),
                    }
                });
            }
        }
    };
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    result
}
