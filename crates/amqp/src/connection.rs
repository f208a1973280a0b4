//! One client connection: the frame loop, open/close, sessions, flow control, heartbeats.
//!
//! A connection is one task owning all its state. A reader task turns bytes into frames
//! (bounded by our max-frame-size) and hands them over a read at a time; puller tasks fetch
//! messages from the backend for receiving links. Everything else — backend sends,
//! settlements, management calls — runs inline, in frame order, which keeps the protocol state
//! simple and the replies ordered. The one exception is completes: those of the frames handed
//! over together are settled together (see `settle`), which is where a busy connection's
//! throughput comes from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp_types::definitions::{self, AmqpError as Condition, ConnectionError, Handle, Role};
use fe2o3_amqp_types::messaging::DeliveryState;
use fe2o3_amqp_types::performatives::{
    Begin, ChannelMax, Close, Disposition, End, Flow, MaxFrameSize, Open, Performative,
};
use fleet_bus::{BusError, BusReceiver, ReceivedMessage};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::{AmqpError, AmqpErrorKind};
use crate::frame::{self, RawFrame, TYPE_AMQP};
use crate::settle::Completion;
use crate::state::{CHANNEL_MAX, SESSION_WINDOW, Session};
use crate::{Shared, sasl};

/// Bytes the reader asks the socket for at a time: one read usually holds every frame a client
/// wrote in one go.
const READ_BUFFER: usize = 64 * 1024;
/// Most frames the reader hands over at once, and the most the connection task takes together
/// (a read plus the reads queued behind it).
const MAX_FRAMES_AT_ONCE: usize = 512;
/// Batches of frames the reader may queue ahead of the connection task.
const QUEUED_READS: usize = 16;

/// Results of background work, delivered to the connection task.
pub(crate) enum Event {
    /// A puller finished a backend receive for link `link_id`.
    Pulled {
        channel: u16,
        handle: u32,
        link_id: u64,
        receiver: Arc<dyn BusReceiver>,
        result: Result<Vec<ReceivedMessage>, BusError>,
    },
}

/// The state of one connection.
pub(crate) struct Connection {
    /// Listener-unique id (tags locks handed out on this connection).
    pub id: u64,
    pub shared: Arc<Shared>,
    writer: BufWriter<OwnedWriteHalf>,
    /// The peer's max-frame-size: bound of every frame we send.
    pub remote_max_frame: u32,
    pub sessions: HashMap<u16, Session>,
    /// Sender side of the event channel, cloned into puller tasks.
    pub events: mpsc::Sender<Event>,
    /// Lower-cased normalised scopes of the valid tokens this connection put.
    pub authorized: Vec<String>,
    /// Backend handles of management nodes, by lower-cased entity path.
    pub mgmt_senders: HashMap<String, Arc<dyn fleet_bus::BusSender>>,
    pub mgmt_receivers: HashMap<String, Arc<dyn BusReceiver>>,
    next_link_id: u64,
    opened: bool,
    /// When we last wrote a frame: heartbeats are due only after a quiet half idle-timeout.
    last_write: Instant,
    /// Settled dispositions owed to clients, each due `settle_delay` after its outcome.
    pub settlements: std::collections::VecDeque<(Instant, u16, u32, DeliveryState)>,
    /// Completes of the frames being processed, settled together before anything that could
    /// observe them and at the end of the batch; always empty between batches.
    pub completions: Vec<Completion>,
}

/// Runs one accepted connection to its end. Errors close this connection only.
pub(crate) async fn run(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AmqpError> {
    let handshake_limit = shared.options.handshake_timeout;
    tokio::time::timeout(handshake_limit, sasl::handshake(&mut stream))
        .await
        .map_err(|_| AmqpError::new(AmqpErrorKind::IdleTimeout, "handshake timed out"))??;

    let (read_half, write_half) = stream.into_split();
    let (frame_tx, mut frames) = mpsc::channel::<Result<Vec<RawFrame>, AmqpError>>(QUEUED_READS);
    let max_frame = shared.options.max_frame_size;
    let reader = tokio::spawn(async move {
        let mut input = BufReader::with_capacity(READ_BUFFER, read_half);
        let mut batch = Vec::new();
        loop {
            let (ended, failure) = match frame::read_frame(&mut input, max_frame).await {
                Ok(Some(f)) => {
                    batch.push(f);
                    (false, None)
                }
                Ok(None) => (true, None),
                Err(err) => (true, Some(err)),
            };
            // Hand over what this read held once no further whole frame is buffered: waiting
            // for the rest of a frame must not hold back the frames already complete.
            let more = !ended
                && batch.len() < MAX_FRAMES_AT_ONCE
                && frame::holds_whole_frame(input.buffer());
            if !more
                && !batch.is_empty()
                && frame_tx.send(Ok(std::mem::take(&mut batch))).await.is_err()
            {
                break;
            }
            if let Some(err) = failure {
                let _ = frame_tx.send(Err(err)).await;
            }
            if ended {
                break;
            }
        }
    });

    let (events_tx, mut events) = mpsc::channel(64);
    let mut conn = Connection {
        id,
        shared,
        writer: BufWriter::new(write_half),
        remote_max_frame: frame::MIN_MAX_FRAME_SIZE,
        sessions: HashMap::new(),
        events: events_tx,
        authorized: Vec::new(),
        mgmt_senders: HashMap::new(),
        mgmt_receivers: HashMap::new(),
        next_link_id: 0,
        opened: false,
        last_write: Instant::now(),
        settlements: std::collections::VecDeque::new(),
        completions: Vec::new(),
    };

    let idle = conn.shared.options.idle_timeout;
    let mut last_heard = Instant::now();
    let mut heartbeat_every: Option<Duration> = None;
    let result = loop {
        let idle_deadline = last_heard + idle * 2;
        let next_heartbeat = match heartbeat_every {
            Some(every) => conn.last_write + every,
            None => Instant::now() + Duration::from_secs(3600),
        };
        let outcome = tokio::select! {
            batch = frames.recv() => match batch {
                Some(Ok(batch)) => {
                    last_heard = Instant::now();
                    conn.on_frames(batch, &mut frames, &mut heartbeat_every).await
                }
                Some(Err(err)) => Err(err),
                None => break Ok(()),
            },
            Some(event) = events.recv() => conn.on_event(event).await,
            _ = tokio::time::sleep_until(conn.settlements.front().map_or(idle_deadline, |s| s.0)),
                if !conn.settlements.is_empty() => conn.flush_settlements().await.map(|_| Next::Continue),
            _ = tokio::time::sleep_until(next_heartbeat) => {
                conn.write_raw(&frame::heartbeat()).await
            }
            _ = tokio::time::sleep_until(idle_deadline) => Err(AmqpError::new(
                AmqpErrorKind::IdleTimeout,
                format!("nothing received for {:?}", idle * 2),
            )),
            _ = shutdown.changed() => {
                let close = Close { error: Some(definitions::Error::new(
                    ConnectionError::ConnectionForced, Some("the listener is shutting down".to_owned()), None)) };
                let _ = conn.send(0, Performative::Close(close)).await;
                let _ = conn.flush().await;
                break Ok(());
            }
        };
        match outcome {
            Ok(Next::Continue) => {}
            Ok(Next::Closed) => {
                let _ = conn.flush().await;
                break Ok(());
            }
            Err(err) => {
                conn.close_with(&err).await;
                break Err(err);
            }
        }
        if let Err(err) = conn.flush().await {
            break Err(err);
        }
    };
    reader.abort();
    conn.release_all();
    result
}

/// Whether the frame loop goes on.
pub(crate) enum Next {
    Continue,
    Closed,
}

impl Connection {
    pub(crate) fn next_link_id(&mut self) -> u64 {
        self.next_link_id += 1;
        self.next_link_id
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<Next, AmqpError> {
        self.last_write = Instant::now();
        self.writer
            .write_all(bytes)
            .await
            .map_err(|err| AmqpError::io("writing a frame", err))?;
        Ok(Next::Continue)
    }

    async fn flush(&mut self) -> Result<(), AmqpError> {
        self.writer
            .flush()
            .await
            .map_err(|err| AmqpError::io("flushing frames", err))
    }

    /// Sends a performative without payload.
    pub(crate) async fn send(&mut self, channel: u16, perf: Performative) -> Result<(), AmqpError> {
        tracing::trace!(channel, ?perf, "frame out");
        let body = frame::to_amqp(&perf, "a performative")?;
        self.write_raw(&frame::encode_frame(TYPE_AMQP, channel, &[&body]))
            .await
            .map(|_| ())
    }

    /// Sends a performative followed by payload bytes in one frame.
    pub(crate) async fn send_with_payload(
        &mut self,
        channel: u16,
        perf: &[u8],
        payload: &[u8],
    ) -> Result<(), AmqpError> {
        self.write_raw(&frame::encode_frame(TYPE_AMQP, channel, &[perf, payload]))
            .await
            .map(|_| ())
    }

    /// Sends settled dispositions for `(channel, delivery id, outcome)`s in our `role`, one frame
    /// per run of consecutive ids on a channel with the same outcome (AMQP's first..last range;
    /// a run never wraps past `u32::MAX`, which clients would read as empty). Channels whose
    /// session has ended are skipped.
    pub(crate) async fn send_settled(
        &mut self,
        role: Role,
        items: Vec<(u16, u32, DeliveryState)>,
    ) -> Result<(), AmqpError> {
        let mut runs: Vec<(u16, u32, u32, DeliveryState)> = Vec::new();
        for (channel, id, state) in items {
            match runs.last_mut() {
                Some((ch, _, last, st))
                    if *ch == channel && last.checked_add(1) == Some(id) && *st == state =>
                {
                    *last = id;
                }
                _ => runs.push((channel, id, id, state)),
            }
        }
        for (channel, first, last, state) in runs {
            if !self.sessions.contains_key(&channel) {
                continue;
            }
            let disposition = Disposition {
                role: role.clone(),
                first,
                last: (last != first).then_some(last),
                settled: true,
                state: Some(state),
                batchable: false,
            };
            self.send(channel, Performative::Disposition(disposition))
                .await?;
        }
        Ok(())
    }

    /// Best effort: tell the peer why we close (a close frame), then give up the socket.
    async fn close_with(&mut self, err: &AmqpError) {
        let condition: definitions::ErrorCondition = match err.kind() {
            AmqpErrorKind::LimitExceeded => ConnectionError::FramingError.into(),
            AmqpErrorKind::IdleTimeout => Condition::ResourceLimitExceeded.into(),
            AmqpErrorKind::Unauthorized => Condition::UnauthorizedAccess.into(),
            AmqpErrorKind::Protocol => Condition::DecodeError.into(),
            _ => Condition::InternalError.into(),
        };
        if matches!(err.kind(), AmqpErrorKind::Io) {
            return;
        }
        let close = Close {
            error: Some(definitions::Error::new(
                condition,
                Some(err.message().to_owned()),
                None,
            )),
        };
        let _ = self.send(0, Performative::Close(close)).await;
        let _ = self.flush().await;
    }

    /// Processes the frames of one read, plus those of reads queued behind it, then settles
    /// the completes they carried. What was settled before an error is still answered.
    async fn on_frames(
        &mut self,
        mut batch: Vec<RawFrame>,
        queued: &mut mpsc::Receiver<Result<Vec<RawFrame>, AmqpError>>,
        heartbeat_every: &mut Option<Duration>,
    ) -> Result<Next, AmqpError> {
        let mut failure = None;
        while batch.len() < MAX_FRAMES_AT_ONCE {
            match queued.try_recv() {
                Ok(Ok(more)) => batch.extend(more),
                Ok(Err(err)) => {
                    failure = Some(err);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut next = Next::Continue;
        for frame in batch {
            match self.on_frame(frame, heartbeat_every).await {
                Ok(Next::Continue) => {}
                Ok(Next::Closed) => {
                    next = Next::Closed;
                    break;
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        let settled = self.settle_completions().await;
        match failure {
            Some(err) => Err(err),
            None => settled.map(|()| next),
        }
    }

    async fn on_frame(
        &mut self,
        frame: RawFrame,
        heartbeat_every: &mut Option<Duration>,
    ) -> Result<Next, AmqpError> {
        if frame.frame_type != TYPE_AMQP {
            return Err(AmqpError::protocol("a SASL frame after the SASL exchange"));
        }
        let Some((perf, payload)) = frame::decode_amqp(&frame.body)? else {
            return Ok(Next::Continue);
        };
        let channel = frame.channel;
        tracing::trace!(channel, ?perf, "frame in");
        if !self.opened && !matches!(perf, Performative::Open(_)) {
            return Err(AmqpError::protocol("the first frame must be open"));
        }
        // Whatever is not a disposition or a flow may observe the recorded completes.
        if !matches!(perf, Performative::Disposition(_) | Performative::Flow(_)) {
            self.settle_completions().await?;
        }
        match perf {
            Performative::Open(open) => {
                if self.opened {
                    return Err(AmqpError::protocol("a second open on one connection"));
                }
                self.on_open(open, heartbeat_every).await?;
            }
            Performative::Close(_) => {
                self.send(0, Performative::Close(Close { error: None }))
                    .await?;
                return Ok(Next::Closed);
            }
            Performative::Begin(begin) => self.on_begin(channel, begin).await?,
            Performative::End(_) => {
                self.end_session(channel);
                self.send(channel, Performative::End(End { error: None }))
                    .await?;
            }
            Performative::Attach(attach) => self.on_attach(channel, attach).await?,
            Performative::Detach(detach) => self.on_detach(channel, detach).await?,
            Performative::Flow(flow) => self.on_flow(channel, flow).await?,
            Performative::Transfer(transfer) => {
                self.on_transfer(channel, transfer, payload).await?
            }
            Performative::Disposition(disposition) => {
                self.on_disposition(channel, disposition).await?
            }
        }
        Ok(Next::Continue)
    }

    async fn on_open(
        &mut self,
        open: Open,
        heartbeat_every: &mut Option<Duration>,
    ) -> Result<(), AmqpError> {
        self.opened = true;
        self.remote_max_frame = open.max_frame_size.0.max(frame::MIN_MAX_FRAME_SIZE);
        if let Some(ms) = open.idle_time_out.filter(|ms| *ms > 0) {
            *heartbeat_every = Some(Duration::from_millis(u64::from(ms) / 2));
        }
        let options = &self.shared.options;
        let reply = Open {
            container_id: options.container_id.clone(),
            hostname: None,
            max_frame_size: MaxFrameSize(options.max_frame_size),
            channel_max: ChannelMax(CHANNEL_MAX),
            idle_time_out: Some(
                u32::try_from(options.idle_timeout.as_millis()).unwrap_or(u32::MAX),
            ),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        self.send(0, Performative::Open(reply)).await
    }

    async fn on_begin(&mut self, channel: u16, begin: Begin) -> Result<(), AmqpError> {
        if channel > CHANNEL_MAX {
            return Err(AmqpError::new(
                AmqpErrorKind::LimitExceeded,
                format!("channel {channel} exceeds channel-max {CHANNEL_MAX}"),
            ));
        }
        if self.sessions.contains_key(&channel) {
            return Err(AmqpError::protocol(format!(
                "channel {channel} already has a session"
            )));
        }
        let session = Session::new(begin.next_outgoing_id, begin.incoming_window);
        let next_outgoing_id = session.next_outgoing_id;
        self.sessions.insert(channel, session);
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id,
            incoming_window: SESSION_WINDOW,
            outgoing_window: SESSION_WINDOW,
            handle_max: Handle(crate::state::HANDLE_MAX),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        self.send(channel, Performative::Begin(reply)).await
    }

    /// The session of `channel`, or a protocol error naming it.
    pub(crate) fn session(&mut self, channel: u16) -> Result<&mut Session, AmqpError> {
        self.sessions
            .get_mut(&channel)
            .ok_or_else(|| AmqpError::protocol(format!("no session on channel {channel}")))
    }

    /// A flow frame carrying the session's state, optionally about one link.
    pub(crate) fn flow_frame(&self, channel: u16, link: Option<u32>) -> Option<Flow> {
        let session = self.sessions.get(&channel)?;
        let mut flow = Flow {
            next_incoming_id: Some(session.next_incoming_id),
            incoming_window: session.incoming_window,
            next_outgoing_id: session.next_outgoing_id,
            outgoing_window: SESSION_WINDOW,
            handle: None,
            delivery_count: None,
            link_credit: None,
            available: None,
            drain: false,
            echo: false,
            properties: None,
        };
        if let Some(handle) = link {
            let link = session.links.get(&handle)?;
            flow.handle = Some(Handle(handle));
            flow.delivery_count = Some(link.delivery_count);
            flow.link_credit = Some(link.credit);
            flow.drain = link.drain;
            if link.is_sending() {
                flow.available = Some(u32::try_from(link.pending.len()).unwrap_or(u32::MAX));
            }
        }
        Some(flow)
    }

    pub(crate) async fn send_flow(
        &mut self,
        channel: u16,
        link: Option<u32>,
    ) -> Result<(), AmqpError> {
        if let Some(flow) = self.flow_frame(channel, link) {
            self.send(channel, Performative::Flow(flow)).await?;
        }
        Ok(())
    }

    async fn on_flow(&mut self, channel: u16, flow: Flow) -> Result<(), AmqpError> {
        let session = self.session(channel)?;
        session.remote_next_incoming_id = flow.next_incoming_id.unwrap_or(1);
        session.remote_incoming_window = flow.incoming_window;
        let Some(Handle(handle)) = flow.handle else {
            if flow.echo {
                self.send_flow(channel, None).await?;
            }
            // More session window may let held deliveries go.
            let handles: Vec<u32> = self.session(channel)?.links.keys().copied().collect();
            for handle in handles {
                self.pump(channel, handle).await?;
            }
            return Ok(());
        };
        let Some(link) = session.links.get_mut(&handle) else {
            return Err(AmqpError::protocol(format!(
                "flow for unknown handle {handle} on channel {channel}"
            )));
        };
        if link.is_sending() {
            let their_count = flow.delivery_count.unwrap_or(0);
            let granted = flow.link_credit.unwrap_or(0);
            link.credit = their_count
                .wrapping_add(granted)
                .wrapping_sub(link.delivery_count)
                .min(granted);
            link.drain = flow.drain;
            self.pump(channel, handle).await?;
        }
        if flow.echo {
            self.send_flow(channel, Some(handle)).await?;
        }
        Ok(())
    }

    /// Counts one incoming transfer frame against the session window, replenishing it.
    pub(crate) async fn count_incoming_frame(&mut self, channel: u16) -> Result<(), AmqpError> {
        let session = self.session(channel)?;
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        session.incoming_window = session.incoming_window.saturating_sub(1);
        if session.incoming_window < SESSION_WINDOW / 2 {
            session.incoming_window = SESSION_WINDOW;
            self.send_flow(channel, None).await?;
        }
        Ok(())
    }

    fn end_session(&mut self, channel: u16) {
        if let Some(session) = self.sessions.remove(&channel) {
            for (_, link) in session.links {
                crate::deliver::release_link(link);
            }
        }
    }

    /// Gives back what this connection held: undelivered messages, backend receivers, locks.
    fn release_all(&mut self) {
        let channels: Vec<u16> = self.sessions.keys().copied().collect();
        for channel in channels {
            self.end_session(channel);
        }
        self.shared.locks.forget_connection(self.id);
        self.mgmt_senders.clear();
        for (_, receiver) in self.mgmt_receivers.drain() {
            tokio::spawn(async move {
                let _ = receiver.close().await;
            });
        }
    }
}
