//! How the workers reach the emulator engine: directly ([`Transport::InProcess`]) or over AMQP
//! through the engine's own listener ([`Transport::Amqp`]), so every worker message crosses the
//! wire the way it does against Azure Service Bus.

use std::net::SocketAddr;
use std::sync::Arc;

use fleet_amqp::ListenerOptions;
use fleet_bus::Bus;
use fleet_emulator::{Emulator, InProcessBus};
use fleet_servicebus::ServiceBusBus;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{LocalError, LocalErrorKind};

/// The address the AMQP listener binds by default (Service Bus clients dial port 5672).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5672";

/// How the workers reach the emulator engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Straight calls into the engine: fastest, binds no port.
    #[default]
    InProcess,
    /// Through the AMQP listener with the production Service Bus client.
    Amqp,
}

impl std::str::FromStr for Transport {
    type Err = LocalError;

    fn from_str(s: &str) -> Result<Transport, LocalError> {
        match s {
            "inprocess" => Ok(Transport::InProcess),
            "amqp" => Ok(Transport::Amqp),
            other => Err(LocalError::new(
                LocalErrorKind::Input,
                format!("unknown transport {other:?} (expected: amqp or inprocess)"),
            )),
        }
    }
}

/// The bus the workers are handed, and with AMQP the listener behind it.
pub(crate) struct Wiring {
    /// What every worker, the observer and the publisher send and receive through.
    pub bus: Arc<dyn Bus>,
    listener: Option<Listener>,
}

struct Listener {
    addr: SocketAddr,
    client: Arc<ServiceBusBus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), fleet_amqp::AmqpError>>,
}

/// Wires the workers to `emulator` over `transport`; with AMQP, binds `listen` first.
pub(crate) async fn wire(
    emulator: &Emulator,
    transport: Transport,
    listen: SocketAddr,
) -> Result<Wiring, LocalError> {
    let engine: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator.clone()));
    if transport == Transport::InProcess {
        return Ok(Wiring {
            bus: engine,
            listener: None,
        });
    }
    if !listen.ip().is_loopback() || listen.port() != 5672 {
        // The Service Bus client always dials port 5672 of the endpoint's host.
        return Err(LocalError::new(
            LocalErrorKind::Input,
            format!("--listen {listen} must be a loopback address on port 5672"),
        ));
    }
    let tcp = TcpListener::bind(listen).await.map_err(|e| {
        LocalError::new(
            LocalErrorKind::Component,
            format!(
                "cannot bind the AMQP listener on {listen} (is another emulator running? pick \
                 another loopback IP with --listen, e.g. 127.0.0.2:5672, or use --transport inprocess)"
            ),
        )
        .with_source(e)
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(fleet_amqp::serve(
        tcp,
        engine,
        ListenerOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let connection = format!(
        "Endpoint=sb://{};SharedAccessKeyName=fleet;SharedAccessKey=local;UseDevelopmentEmulator=true",
        listen.ip()
    );
    let client = Arc::new(
        ServiceBusBus::from_connection_string(&connection)
            .map_err(|e| LocalError::component("building the Service Bus client", e))?,
    );
    Ok(Wiring {
        bus: client.clone(),
        listener: Some(Listener {
            addr: listen,
            client,
            stop,
            task,
        }),
    })
}

impl Wiring {
    /// Closes the client connection and stops the listener; call once the workers have drained.
    pub async fn close(self) -> Result<(), LocalError> {
        let Some(l) = self.listener else {
            return Ok(());
        };
        let closed = l.client.close().await;
        let _ = l.stop.send(());
        let served = l.task.await.map_err(|e| {
            LocalError::component(format!("the AMQP listener on {} panicked", l.addr), e)
        })?;
        closed.map_err(|e| LocalError::component("closing the Service Bus client", e))?;
        served.map_err(|e| LocalError::component(format!("the AMQP listener on {}", l.addr), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_by_name_and_an_unknown_one_is_named() {
        assert_eq!("amqp".parse::<Transport>().unwrap(), Transport::Amqp);
        assert_eq!(
            "inprocess".parse::<Transport>().unwrap(),
            Transport::InProcess
        );
        assert_eq!(Transport::default(), Transport::InProcess);
        let e = "tcp".parse::<Transport>().unwrap_err();
        assert_eq!(e.kind(), LocalErrorKind::Input);
        assert!(e.to_string().contains("\"tcp\""), "{e}");
    }
}
