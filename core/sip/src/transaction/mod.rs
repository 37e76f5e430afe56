//! Transactions (RFC 3261 §17, amended by RFC 6026), sans-IO.
//!
//! Each transaction is a state machine driven by three inputs — a message
//! received, a message from the transaction user (TU), and the current
//! time — and drained through `poll_transmit`, `poll_event` and
//! `poll_timeout`. Time never comes from a clock: callers pass `now`, and
//! tests pass a virtual clock.
//!
//! * [`ClientInviteTransaction`]: §17.1.1 with the RFC 6026 "Accepted"
//!   state (Timers A, B, D, M); ACK for a non-2xx final response is built
//!   and sent by the transaction itself.
//! * [`ClientNonInviteTransaction`]: §17.1.2 (Timers E, F, K).
//! * [`ServerInviteTransaction`]: §17.2.1 with RFC 6026 (Timers G, H, I, L).
//! * [`ServerNonInviteTransaction`]: §17.2.2 (Timer J).
//! * [`TransactionLayer`]: matching (§17.1.3, §17.2.3, with the RFC 2543
//!   fallback), CANCEL matching (§9.2), a bounded table, and one timer heap.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use client::{
    ClientInviteState, ClientInviteTransaction, ClientNonInviteState, ClientNonInviteTransaction,
};
pub use layer::{
    IncomingRequest, IncomingResponse, LayerEvent, TransactionId, TransactionKey, TransactionLayer,
    Transmit,
};
pub use server::{
    ServerInviteState, ServerInviteTransaction, ServerNonInviteState, ServerNonInviteTransaction,
};

/// The RFC 3261 timer values a transaction runs with (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE
    /// responses, 4 s by default.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s by default.
    pub t4: Duration,
    /// Timer D over unreliable transports: at least 32 s.
    pub timer_d: Duration,
    /// Send 100 Trying as soon as an INVITE server transaction starts
    /// (§17.2.1 allows skipping it only when the TU answers within 200 ms).
    pub send_trying: bool,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            send_trying: true,
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J, L, M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The transport under a transaction: retransmission timers run only
/// over unreliable ones (§17.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP, TLS, SCTP, WebSocket: the transport delivers.
    Reliable,
}

/// Names of the RFC 3261 / RFC 6026 timers, reported when one fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit.
    A,
    /// INVITE transaction timeout.
    B,
    /// Wait for response retransmits (client INVITE, Completed).
    D,
    /// Non-INVITE request retransmit.
    E,
    /// Non-INVITE transaction timeout.
    F,
    /// INVITE response retransmit.
    G,
    /// Wait for ACK receipt.
    H,
    /// Wait for ACK retransmits.
    I,
    /// Wait for non-INVITE request retransmits.
    J,
    /// Wait for response retransmits (client non-INVITE, Completed).
    K,
    /// Wait for 2xx retransmits / ACK (server INVITE, Accepted; RFC 6026).
    L,
    /// Wait for 2xx retransmits (client INVITE, Accepted; RFC 6026).
    M,
}

/// What a transaction tells its transaction user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEvent {
    /// The transaction gave up: Timer B or F (no final response), or Timer
    /// H (no ACK for a non-2xx final response). The TU treats it as 408.
    Timeout(Timer),
    /// The transaction is over and can be forgotten.
    Terminated,
}

/// Whether a received message goes up to the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Pass it to the TU.
    Deliver,
    /// A retransmission or otherwise absorbed by the transaction.
    Absorb,
}

/// Errors from transaction inputs that break the RFC's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The bytes given as a message do not parse.
    #[error("message does not parse: {0}")]
    Malformed(#[from] crate::ParseError),
    /// The TU sent a response the state does not allow (a final response
    /// after a final response, a 1xx after a 2xx, a response to ACK).
    #[error("the transaction cannot send that in its current state")]
    InvalidState,
    /// A request given to a client transaction of the wrong kind.
    #[error("wrong method for this transaction kind")]
    WrongMethod,
    /// The transaction table is full; answer new requests with 503.
    #[error("transaction table full")]
    Overloaded,
    /// No transaction with that id.
    #[error("no such transaction")]
    Unknown,
}

/// Shared bytes of a message the transaction may send more than once.
pub type Bytes = Arc<[u8]>;

/// A timer slot: when it fires, if armed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot(Option<Instant>);

impl Slot {
    pub(crate) fn set(&mut self, at: Instant) {
        self.0 = Some(at);
    }
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.0.is_some_and(|t| t <= now)
    }
    pub(crate) fn at(&self) -> Option<Instant> {
        self.0
    }
}

/// The output side every transaction shares: queued transmits and events,
/// and its timers. `$timer` lists the transaction's `Slot` fields.
macro_rules! outputs {
    ($($timer:ident),+) => {
        /// The next message to send.
        pub fn poll_transmit(&mut self) -> Option<Bytes> {
            self.transmits.pop_front()
        }

        /// The next event for the TU.
        pub fn poll_event(&mut self) -> Option<TransactionEvent> {
            self.events.pop_front()
        }

        /// When `handle_timeout` must next be called.
        pub fn poll_timeout(&self) -> Option<Instant> {
            earliest(&[$(self.$timer),+])
        }

        fn clear_timers(&mut self) {
            $(self.$timer.clear();)+
        }
    };
}

mod client;
mod layer;
mod server;

/// The earliest of several armed slots.
pub(crate) fn earliest(slots: &[Slot]) -> Option<Instant> {
    slots.iter().filter_map(Slot::at).min()
}

/// Reads the status code from the first bytes of a serialized response.
pub(crate) fn status_of(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = u16::from(code[0] - b'0') * 100
        + u16::from(code[1] - b'0') * 10
        + u16::from(code[2] - b'0');
    (100..=699).contains(&n).then_some(n)
}
