//! Session and link state of one connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use fe2o3_amqp_types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fleet_bus::{BusReceiver, BusSender, EntityPath, ReceiveMode, ReceivedMessage};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Session window we advertise and replenish (transfer frames).
pub(crate) const SESSION_WINDOW: u32 = 5_000;
/// Link credit we grant client senders, topped up when half is used.
pub(crate) const LINK_CREDIT: u32 = 500;
/// Highest link handle a session accepts (bounds per-session state).
pub(crate) const HANDLE_MAX: u32 = 1_023;
/// Highest channel a connection accepts (bounds per-connection state).
pub(crate) const CHANNEL_MAX: u16 = 255;
/// Most messages one pull asks the backend for.
pub(crate) const MAX_PULL: usize = 100;

/// One session, keyed by the peer's channel; we answer on the same channel number.
pub(crate) struct Session {
    /// Transfer id we expect next from the peer (session flow control).
    pub next_incoming_id: u32,
    /// Transfer frames the peer may still send before we replenish.
    pub incoming_window: u32,
    /// Transfer id of our next transfer frame.
    pub next_outgoing_id: u32,
    /// The peer's view: its next-incoming-id and incoming-window from its last begin/flow.
    pub remote_next_incoming_id: u32,
    pub remote_incoming_window: u32,
    /// Delivery id of our next delivery.
    pub next_delivery_id: u32,
    /// Links by handle (we use the peer's handle numbers for ours).
    pub links: HashMap<u32, Link>,
    /// Our unsettled peek-lock deliveries: delivery id → lock token.
    pub unsettled: HashMap<u32, Uuid>,
}

impl Session {
    pub(crate) fn new(remote_next_outgoing_id: u32, remote_incoming_window: u32) -> Self {
        Self {
            next_incoming_id: remote_next_outgoing_id,
            incoming_window: SESSION_WINDOW,
            next_outgoing_id: 1,
            remote_next_incoming_id: 1,
            remote_incoming_window,
            next_delivery_id: 0,
            links: HashMap::new(),
            unsettled: HashMap::new(),
        }
    }

    /// Transfer frames we may still send under the peer's incoming window.
    pub(crate) fn outgoing_room(&self) -> u32 {
        self.remote_next_incoming_id
            .wrapping_add(self.remote_incoming_window)
            .wrapping_sub(self.next_outgoing_id)
            .min(self.remote_incoming_window)
    }
}

/// Where a link's deliveries come from or go to.
pub(crate) enum LinkKind {
    /// Client sends to an entity; we store via the sender.
    ToEntity(Arc<dyn BusSender>),
    /// Client sends put-token requests.
    ToCbs,
    /// Client sends management requests about an entity.
    ToManagement(EntityPath),
    /// Client receives from an entity.
    FromEntity(Outgoing),
    /// Client receives CBS replies.
    FromCbs,
    /// Client receives management replies.
    FromManagement(EntityPath),
}

/// Receiving-link state (we send messages pulled from the backend).
pub(crate) struct Outgoing {
    /// The backend receiver the link pulls from.
    pub receiver: Arc<dyn BusReceiver>,
    /// Peek-lock or receive-and-delete (from the link's snd-settle-mode).
    pub mode: ReceiveMode,
    /// Asks the puller task for up to N messages.
    pub pull: mpsc::Sender<PullRequest>,
    /// Whether a pull is in flight (at most one at a time).
    pub pulling: bool,
}

/// A request to the puller task of a link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PullRequest {
    pub max: usize,
    pub wait: std::time::Duration,
}

/// What waits on a sending link for credit.
pub(crate) enum Pending {
    /// A message from the backend.
    Message(Box<ReceivedMessage>),
    /// An encoded reply (CBS, management).
    Reply(Vec<u8>),
}

/// An incoming delivery still being reassembled from several transfer frames.
pub(crate) struct Partial {
    pub delivery_id: u32,
    pub message_format: u32,
    pub settled: bool,
    pub payload: Vec<u8>,
    /// Set once the payload passed the size bound; the rest is discarded and the delivery
    /// rejected when complete.
    pub oversize: bool,
}

/// One link.
pub(crate) struct Link {
    /// Connection-unique id, so results of background pulls find the right link even if
    /// its handle was reused.
    pub id: u64,
    pub name: String,
    pub kind: LinkKind,
    /// The address the client named on its side (for receiving links: where replies go).
    pub client_address: Option<String>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Sender's delivery count (ours for sending links, the peer's for receiving links).
    pub delivery_count: u32,
    /// Credit: what the peer granted us (sending links) or what we granted (receiving links).
    pub credit: u32,
    /// The peer asked us to use up or give back all credit.
    pub drain: bool,
    /// Deliveries waiting for credit (sending links).
    pub pending: VecDeque<Pending>,
    /// Incoming delivery being reassembled (receiving links).
    pub partial: Option<Partial>,
}

impl Link {
    pub(crate) fn new(id: u64, name: String, kind: LinkKind) -> Self {
        Self {
            id,
            name,
            kind,
            client_address: None,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            delivery_count: 0,
            credit: 0,
            drain: false,
            pending: VecDeque::new(),
            partial: None,
        }
    }

    /// Whether we send on this link.
    pub(crate) fn is_sending(&self) -> bool {
        matches!(
            self.kind,
            LinkKind::FromEntity(_) | LinkKind::FromCbs | LinkKind::FromManagement(_)
        )
    }
}
