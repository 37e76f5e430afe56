//! What every packet engine backend shares: socket tokens, the handler a
//! worker implements, the batch of datagrams to send, and counters.

use std::net::SocketAddr;
use std::time::Instant;

/// A socket registered with an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// Receives the datagrams an engine reads; queues replies in the outbox.
pub trait PacketHandler {
    /// A datagram arrived on `token` from `from`. `data` may be rewritten
    /// in place and queued with [`Outbox::push`].
    fn on_packet(
        &mut self,
        token: Token,
        from: SocketAddr,
        data: &mut [u8],
        now: Instant,
        out: &mut Outbox,
    );
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) token: Token,
    pub(crate) to: SocketAddr,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Datagrams queued during one loop turn, sent in batches at its end.
/// The bytes live in one arena: queuing copies, never allocates per packet
/// once the arena has grown to the turn's size.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(crate) data: Vec<u8>,
    pub(crate) pending: Vec<Pending>,
}

impl Outbox {
    /// Queues `bytes` to be sent from socket `token` to `to`.
    pub fn push(&mut self, token: Token, to: SocketAddr, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.pending.push(Pending {
            token,
            to,
            start,
            len: bytes.len(),
        });
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.pending.clear();
    }
}

/// Counters of one engine, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Loop turns that found work or timed out.
    pub turns: u64,
    /// Datagrams received.
    pub received: u64,
    /// Receive system calls (each may return a batch).
    pub receive_calls: u64,
    /// Datagrams cut short by the receive buffer (dropped).
    pub truncated: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Send system calls (each may carry a batch).
    pub send_calls: u64,
    /// Datagrams the kernel refused (socket buffer full, unreachable):
    /// dropped, as UDP would.
    pub send_dropped: u64,
}
