//! [`BusSender`] over an azservicebus sender link, re-created after a connection failure.

use std::sync::Arc;

use async_trait::async_trait;
use azservicebus::ServiceBusSender;
use chrono::{DateTime, Utc};
use fleet_bus::{BusError, BusSender, Message};
use tokio::sync::Mutex;

use crate::connection::{Connection, timeout};
use crate::convert::{to_amqp, to_offset};
use crate::error::{Op, classify, needs_reconnect};

/// Sends to one queue or topic.
pub(crate) struct SbSender {
    conn: Arc<Connection>,
    entity: String,
    // The link and the connection generation it was attached on; `None` after a failure.
    link: Mutex<Option<(ServiceBusSender, u64)>>,
}

/// Runs `$body` (an async block using `$link`) on the sender's link; on a connection failure
/// drops link and connection and retries with backoff (sends are at-least-once: a retried send
/// may duplicate, which the broker's duplicate detection on message ids absorbs).
macro_rules! on_link {
    ($self:ident, $what:expr, $op:expr, |$link:ident| $body:expr) => {{
        let config = &$self.conn.config;
        let mut attempt = 0u32;
        loop {
            let result = {
                let mut guard = $self.link.lock().await;
                let current = $self.conn.generation();
                if guard.as_ref().is_some_and(|(_, g)| *g != current) {
                    dispose_later(guard.take());
                }
                let ready = match guard.take() {
                    Some(link) => Ok(link),
                    None => $self.conn.sender(&$self.entity).await,
                };
                match ready {
                    Ok((link, generation)) => {
                        let ($link, _) = guard.insert((link, generation));
                        let outcome =
                            match tokio::time::timeout(config.operation_timeout, $body).await {
                                Ok(Ok(v)) => Ok(v),
                                Ok(Err(e)) => Err(classify(e, $op, $what)),
                                Err(_) => Err(timeout($what, config.operation_timeout)),
                            };
                        if outcome.as_ref().is_err_and(needs_reconnect) {
                            dispose_later(guard.take());
                            $self.conn.invalidate(generation).await;
                        }
                        outcome
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Err(e) if needs_reconnect(&e) && attempt + 1 < config.backoff.attempts => {
                    let delay = config.backoff.delay(attempt);
                    tracing::warn!(error = %e, ?delay, entity = %$self.entity, "send failed; retrying on a new link");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

impl SbSender {
    pub(crate) fn new(
        conn: Arc<Connection>,
        entity: String,
        link: (ServiceBusSender, u64),
    ) -> Self {
        Self {
            conn,
            entity,
            link: Mutex::new(Some(link)),
        }
    }
}

impl Drop for SbSender {
    fn drop(&mut self) {
        // Detach properly: a link dropped without its close handshake leaves the client
        // session routing the broker's late frames to a dead link, which ends the session for
        // every other link on the connection.
        if tokio::runtime::Handle::try_current().is_ok() {
            dispose_later(self.link.get_mut().take());
        }
    }
}

fn dispose_later(link: Option<(ServiceBusSender, u64)>) {
    if let Some((link, _)) = link {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), link.dispose()).await;
        });
    }
}

#[async_trait]
impl BusSender for SbSender {
    async fn send(&self, msg: Message) -> Result<(), BusError> {
        let amqp = to_amqp(&msg)?;
        let what = format!("send to \"{}\"", self.entity);
        on_link!(self, &what, Op::Send, |link| link
            .send_message(amqp.clone()))
    }

    async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), BusError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let amqp = msgs.iter().map(to_amqp).collect::<Result<Vec<_>, _>>()?;
        let what = format!("send a batch of {} to \"{}\"", amqp.len(), self.entity);
        // One transfer carrying every message: the broker stores all or none.
        on_link!(self, &what, Op::Send, |link| link
            .send_messages(amqp.clone()))
    }

    async fn schedule(&self, msg: Message, at: DateTime<Utc>) -> Result<i64, BusError> {
        let amqp = to_amqp(&msg)?;
        let at = to_offset(at)?;
        let what = format!("schedule on \"{}\"", self.entity);
        let numbers: Vec<i64> = on_link!(self, &what, Op::Management, |link| link
            .schedule_messages(vec![amqp.clone()], at))?;
        numbers.first().copied().ok_or_else(|| {
            BusError::new(
                fleet_bus::BusErrorKind::Other,
                format!("{what}: the broker returned no sequence number"),
            )
        })
    }

    async fn cancel_scheduled(&self, sequence_number: i64) -> Result<(), BusError> {
        let what = format!(
            "cancel scheduled message {sequence_number} on \"{}\"",
            self.entity
        );
        on_link!(self, &what, Op::Management, |link| link
            .cancel_scheduled_message(sequence_number))
    }
}
