//! The transaction layer: one table of client and server transactions,
//! matching of received messages to them (§17.1.3, §17.2.3, RFC 2543
//! fallback), CANCEL matching (§9.2), bounds, and a single timer heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use super::{
    Bytes, ClientInviteState, ClientInviteTransaction, ClientNonInviteState,
    ClientNonInviteTransaction, Delivery, Reliability, ServerInviteState, ServerInviteTransaction,
    ServerNonInviteState, ServerNonInviteTransaction, TimerConfig, TransactionError,
    TransactionEvent,
};
use crate::message::{Request, Response};
use crate::typed::{Method, Via};

/// Identifies a transaction within one [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

/// What a transaction is matched by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// RFC 3261 server match: branch, sent-by, method (ACK counts as INVITE).
    Server {
        /// Branch of the top Via.
        branch: Box<str>,
        /// sent-by of the top Via, host lower-cased.
        sent_by: Box<str>,
        /// Method the transaction was created for.
        method: Box<str>,
    },
    /// RFC 2543 fallback (§17.2.3) for a top Via without the magic cookie.
    Rfc2543 {
        /// Request-URI.
        uri: Box<str>,
        /// From tag.
        from_tag: Box<str>,
        /// Call-ID.
        call_id: Box<str>,
        /// CSeq number.
        seq: u32,
        /// Top Via, as written.
        via: Box<str>,
        /// Method the transaction was created for.
        method: Box<str>,
    },
    /// Client match (§17.1.3): branch and CSeq method.
    Client {
        /// Branch of the top Via.
        branch: Box<str>,
        /// CSeq method.
        method: Box<str>,
    },
}

/// `host[:port]` of a Via, host lower-cased, in one allocation of the exact
/// size (this runs for every request received).
fn sent_by(via: &Via<'_>) -> Box<str> {
    use std::fmt::Write as _;
    let digits = via
        .port
        .map_or(0, |p| 1 + p.checked_ilog10().unwrap_or(0) as usize);
    let mut s = String::with_capacity(via.host_raw.len() + digits + usize::from(digits > 0));
    s.extend(via.host_raw.chars().map(|c| c.to_ascii_lowercase()));
    if let Some(p) = via.port {
        let _ = write!(s, ":{p}");
    }
    s.into_boxed_str()
}

impl TransactionKey {
    /// The server key of a request; `as_method` overrides the method (ACK
    /// and CANCEL are matched against their INVITE that way).
    pub fn server(req: &Request<'_>, as_method: Option<Method<'_>>) -> TransactionKey {
        let method = as_method.unwrap_or(match req.method {
            Method::Ack => Method::Invite,
            m => m,
        });
        let via = req.via();
        match via.branch() {
            Some(b) if via.is_rfc3261_branch() => TransactionKey::Server {
                branch: b.into(),
                sent_by: sent_by(via),
                method: method.as_str().into(),
            },
            _ => TransactionKey::Rfc2543 {
                uri: req.uri_str().into(),
                from_tag: req.from().tag().unwrap_or("").into(),
                call_id: req.call_id().into(),
                seq: req.cseq().seq,
                via: req.vias().next().unwrap_or("").into(),
                method: method.as_str().into(),
            },
        }
    }

    /// The client key of a response (or of the request that was sent).
    pub fn client(via: &Via<'_>, cseq_method: Method<'_>) -> Option<TransactionKey> {
        let method = match cseq_method {
            Method::Ack => Method::Invite,
            m => m,
        };
        Some(TransactionKey::Client {
            branch: via.branch()?.into(),
            method: method.as_str().into(),
        })
    }
}

/// A message to send, with where to send it.
#[derive(Debug, Clone)]
pub struct Transmit<A> {
    /// The transaction it belongs to.
    pub id: TransactionId,
    /// Where: the request's destination, or the source of the request a
    /// response answers (the caller applies §18.2.2 Via rules).
    pub destination: A,
    /// The bytes.
    pub bytes: Bytes,
}

/// An event for the transaction user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerEvent {
    /// Which transaction.
    pub id: TransactionId,
    /// What happened.
    pub event: TransactionEvent,
}

/// What became of a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingRequest {
    /// A new server transaction; the TU must answer through
    /// [`TransactionLayer::send_response`].
    New(TransactionId),
    /// A CANCEL: a new server transaction for it, and the INVITE server
    /// transaction it cancels, if one matches. The TU answers the CANCEL
    /// (200, or 481 when `invite` is `None`) and, if the INVITE is still
    /// pending, the INVITE with 487 (§9.2).
    Cancel {
        /// The CANCEL's own transaction.
        id: TransactionId,
        /// The INVITE transaction it matches.
        invite: Option<TransactionId>,
    },
    /// An ACK for a 2xx (its own transaction never exists, §17.1.1.3): the
    /// TU (the dialog) consumes it. `matched` is set when it matched an
    /// INVITE server transaction in the Accepted state.
    Ack {
        /// The matching INVITE transaction, when there is one.
        matched: Option<TransactionId>,
    },
    /// A retransmission or an ACK for a non-2xx response: handled.
    Absorbed,
    /// The table is full: answer 503 statelessly.
    Overloaded,
}

/// What became of a received response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingResponse {
    /// Pass it to the TU of this transaction.
    Deliver(TransactionId),
    /// A retransmission the transaction handled.
    Absorbed,
    /// No transaction matches (§18.1.2): a proxy forwards it statelessly,
    /// a UA drops it unless it is a 2xx its dialog layer must ACK.
    Stray,
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // the RFC's names for the four kinds
enum Tx {
    ClientInvite(ClientInviteTransaction),
    ClientNonInvite(ClientNonInviteTransaction),
    ServerInvite(ServerInviteTransaction),
    ServerNonInvite(ServerNonInviteTransaction),
}

macro_rules! each {
    ($tx:expr, $t:ident => $body:expr) => {
        match $tx {
            Tx::ClientInvite($t) => $body,
            Tx::ClientNonInvite($t) => $body,
            Tx::ServerInvite($t) => $body,
            Tx::ServerNonInvite($t) => $body,
        }
    };
}

impl Tx {
    fn terminated(&self) -> bool {
        match self {
            Tx::ClientInvite(t) => t.state() == ClientInviteState::Terminated,
            Tx::ClientNonInvite(t) => t.state() == ClientNonInviteState::Terminated,
            Tx::ServerInvite(t) => t.state() == ServerInviteState::Terminated,
            Tx::ServerNonInvite(t) => t.state() == ServerNonInviteState::Terminated,
        }
    }
}

#[derive(Debug)]
struct Entry<A> {
    tx: Tx,
    key: TransactionKey,
    peer: A,
    armed: Option<Instant>,
}

/// All transactions of one SIP element.
#[derive(Debug)]
pub struct TransactionLayer<A> {
    cfg: TimerConfig,
    max: usize,
    next_id: u64,
    /// Boxed: a transaction lingers up to 64×T1 after its last message
    /// (absorbing retransmissions), so at a steady call rate tens of
    /// thousands are alive and the map grows in the hot path; growing
    /// moves a pointer per entry instead of the whole state machine.
    entries: HashMap<TransactionId, Box<Entry<A>>>,
    index: HashMap<TransactionKey, TransactionId>,
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    transmits: VecDeque<Transmit<A>>,
    events: VecDeque<LayerEvent>,
}

impl<A: Clone> TransactionLayer<A> {
    /// A layer holding at most `max_transactions` at once for requests
    /// it receives (beyond: [`IncomingRequest::Overloaded`]); requests the
    /// TU sends may take as many again (a BYE or CANCEL of a call up is
    /// not lost because peers filled the table), then
    /// [`TransactionError::Overloaded`].
    pub fn new(cfg: TimerConfig, max_transactions: usize) -> Self {
        TransactionLayer {
            cfg,
            max: max_transactions,
            next_id: 1,
            entries: HashMap::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Transactions alive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, key: TransactionKey, tx: Tx, peer: A) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        self.index.insert(key.clone(), id);
        self.entries.insert(
            id,
            Box::new(Entry {
                tx,
                key,
                peer,
                armed: None,
            }),
        );
        self.settle(id);
        id
    }

    /// Drains a transaction's output into the layer and re-arms its timer.
    fn settle(&mut self, id: TransactionId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        while let Some(bytes) = each!(&mut e.tx, t => t.poll_transmit()) {
            self.transmits.push_back(Transmit {
                id,
                destination: e.peer.clone(),
                bytes,
            });
        }
        while let Some(event) = each!(&mut e.tx, t => t.poll_event()) {
            self.events.push_back(LayerEvent { id, event });
        }
        if e.tx.terminated() {
            let key = e.key.clone();
            self.entries.remove(&id);
            if self.index.get(&key) == Some(&id) {
                self.index.remove(&key);
            }
            return;
        }
        let next = each!(&e.tx, t => t.poll_timeout());
        if next != e.armed {
            e.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Starts a client transaction for a request the TU sends. ACK is
    /// refused: an ACK for a 2xx is sent outside any transaction.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        destination: A,
        reliability: Reliability,
    ) -> Result<TransactionId, TransactionError> {
        if self.entries.len() >= self.max.saturating_mul(2) {
            return Err(TransactionError::Overloaded);
        }
        let key = TransactionKey::client(request.via(), request.cseq().method)
            .ok_or(TransactionError::WrongMethod)?;
        let tx = match request.method {
            Method::Invite => Tx::ClientInvite(ClientInviteTransaction::new(
                now,
                request,
                self.cfg,
                reliability,
            )?),
            Method::Ack => return Err(TransactionError::WrongMethod),
            _ => Tx::ClientNonInvite(ClientNonInviteTransaction::new(
                now,
                request,
                self.cfg,
                reliability,
            )?),
        };
        Ok(self.insert(key, tx, destination))
    }

    /// Whether a received `request` belongs to a server transaction this
    /// layer holds (a retransmission), without touching it.
    pub fn has_server_transaction(&self, request: &Request<'_>) -> bool {
        self.index
            .contains_key(&TransactionKey::server(request, None))
    }

    /// Matches a received request to a server transaction or starts one.
    pub fn receive_request(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        source: A,
        reliability: Reliability,
    ) -> IncomingRequest {
        let key = TransactionKey::server(request, None);
        if let Some(&id) = self.index.get(&key) {
            let Some(e) = self.entries.get_mut(&id) else {
                return IncomingRequest::Absorbed;
            };
            let delivery = match &mut e.tx {
                Tx::ServerInvite(t) => t.on_request(now, request),
                Tx::ServerNonInvite(t) => t.on_request(now, request),
                _ => Delivery::Absorb,
            };
            self.settle(id);
            return match (request.method, delivery) {
                (Method::Ack, Delivery::Deliver) => IncomingRequest::Ack { matched: Some(id) },
                _ => IncomingRequest::Absorbed,
            };
        }
        match request.method {
            Method::Ack => return IncomingRequest::Ack { matched: None },
            _ if self.entries.len() >= self.max => return IncomingRequest::Overloaded,
            _ => {}
        }
        let tx = match request.method {
            Method::Invite => ServerInviteTransaction::new(now, request, self.cfg, reliability)
                .map(Tx::ServerInvite),
            _ => ServerNonInviteTransaction::new(now, request, self.cfg, reliability)
                .map(Tx::ServerNonInvite),
        };
        let Ok(tx) = tx else {
            return IncomingRequest::Absorbed;
        };
        let id = self.insert(key, tx, source);
        if request.method == Method::Cancel {
            let invite_key = TransactionKey::server(request, Some(Method::Invite));
            let invite = self.index.get(&invite_key).copied();
            return IncomingRequest::Cancel { id, invite };
        }
        IncomingRequest::New(id)
    }

    /// Matches a received response to a client transaction.
    pub fn receive_response(&mut self, now: Instant, response: &Response<'_>) -> IncomingResponse {
        let Some(key) = TransactionKey::client(response.via(), response.cseq().method) else {
            return IncomingResponse::Stray;
        };
        let Some(&id) = self.index.get(&key) else {
            return IncomingResponse::Stray;
        };
        let Some(e) = self.entries.get_mut(&id) else {
            return IncomingResponse::Stray;
        };
        let delivery = match &mut e.tx {
            Tx::ClientInvite(t) => t.on_response(now, response),
            Tx::ClientNonInvite(t) => t.on_response(now, response),
            _ => return IncomingResponse::Stray,
        };
        self.settle(id);
        match delivery {
            Delivery::Deliver => IncomingResponse::Deliver(id),
            Delivery::Absorb => IncomingResponse::Absorbed,
        }
    }

    /// The TU answers a server transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: Vec<u8>,
    ) -> Result<(), TransactionError> {
        let e = self.entries.get_mut(&id).ok_or(TransactionError::Unknown)?;
        let r = match &mut e.tx {
            Tx::ServerInvite(t) => t.send_response(now, response),
            Tx::ServerNonInvite(t) => t.send_response(now, response),
            _ => Err(TransactionError::InvalidState),
        };
        self.settle(id);
        r
    }

    /// The INVITE a client transaction sent, for building its CANCEL.
    pub fn client_invite(&self, id: TransactionId) -> Option<&Bytes> {
        match &self.entries.get(&id)?.tx {
            Tx::ClientInvite(t) => Some(t.request()),
            _ => None,
        }
    }

    /// `true` while the transaction exists.
    pub fn contains(&self, id: TransactionId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.armed != Some(at) {
                continue; // superseded
            }
            e.armed = None;
            each!(&mut e.tx, t => t.handle_timeout(now));
            self.settle(id);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<LayerEvent> {
        self.events.pop_front()
    }

    /// When [`TransactionLayer::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            match self.entries.get(&id) {
                Some(e) if e.armed == Some(at) => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }
}
