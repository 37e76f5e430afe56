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

impl EngineStats {
    /// Publishes the counters through the `metrics` facade (absolute
    /// values, labelled with the worker and the backend), for whatever
    /// exporter the process installed.
    pub fn record(&self, worker: usize, backend: &'static str) {
        let w = worker.to_string();
        for (name, v) in [
            ("sentiric_engine_received_packets_total", self.received),
            ("sentiric_engine_sent_packets_total", self.sent),
            ("sentiric_engine_truncated_packets_total", self.truncated),
            (
                "sentiric_engine_send_dropped_packets_total",
                self.send_dropped,
            ),
        ] {
            metrics::counter!(name, "worker" => w.clone(), "backend" => backend).absolute(v);
        }
    }
}

/// Which packet engine a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring where the kernel offers it, epoll otherwise.
    #[default]
    Auto,
    /// io_uring only (fails where unavailable).
    Uring,
    /// epoll, `recvmmsg` and `sendmmsg`.
    Epoll,
}

/// A worker's packet engine, on whichever backend was chosen.
#[cfg(target_os = "linux")]
#[derive(Debug)]
// One per worker thread, made once and never moved in a hot path.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    /// io_uring.
    Uring(crate::uring::UringEngine),
    /// epoll.
    Epoll(crate::epoll::EpollEngine),
}

#[cfg(target_os = "linux")]
impl Engine {
    /// Starts an engine. With [`Backend::Auto`], io_uring is tried first;
    /// when the kernel refuses it (too old, seccomp, `io_uring_disabled`),
    /// the engine runs on epoll and the reason is returned for the log.
    pub fn new(backend: Backend) -> std::io::Result<(Engine, Option<std::io::Error>)> {
        const BUFFERS: u16 = 4096;
        const BATCH: usize = 64;
        let (engine, fallback) = match backend {
            Backend::Uring => (
                Engine::Uring(crate::uring::UringEngine::new(BUFFERS)?),
                None,
            ),
            Backend::Epoll => (Engine::Epoll(crate::epoll::EpollEngine::new(BATCH)?), None),
            Backend::Auto => match crate::uring::UringEngine::new(BUFFERS) {
                Ok(u) => (Engine::Uring(u), None),
                Err(e) => (
                    Engine::Epoll(crate::epoll::EpollEngine::new(BATCH)?),
                    Some(e),
                ),
            },
        };
        // The choice, as metrics: an info gauge (1) per backend in use,
        // and how many engines run on it.
        metrics::gauge!("sentiric_engine_backend_info", "backend" => engine.kind()).set(1.0);
        metrics::gauge!("sentiric_engine_workers", "backend" => engine.kind()).increment(1.0);
        if fallback.is_some() {
            metrics::counter!("sentiric_engine_fallbacks_total").increment(1);
        }
        Ok((engine, fallback))
    }

    /// `"io_uring"` or `"epoll"`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Uring(_) => "io_uring",
            Engine::Epoll(_) => "epoll",
        }
    }

    /// Registers a socket (RTP: a datagram over 2,048 bytes is dropped,
    /// counted as truncated).
    pub fn add(&mut self, sock: std::net::UdpSocket) -> std::io::Result<Token> {
        match self {
            Engine::Uring(e) => e.add(sock),
            Engine::Epoll(e) => e.add(sock),
        }
    }

    /// Registers a socket whose datagrams may be of any size up to
    /// 65,535 bytes (SIP over UDP).
    pub fn add_large(&mut self, sock: std::net::UdpSocket) -> std::io::Result<Token> {
        match self {
            Engine::Uring(e) => e.add_large(sock),
            Engine::Epoll(e) => e.add_large(sock),
        }
    }

    /// A registered socket (to clone a sending handle from, say).
    pub fn socket(&self, token: Token) -> Option<&std::net::UdpSocket> {
        match self {
            Engine::Uring(e) => e.socket(token),
            Engine::Epoll(e) => e.socket(token),
        }
    }

    /// Unregisters a socket.
    pub fn remove(&mut self, token: Token) -> Option<std::net::UdpSocket> {
        match self {
            Engine::Uring(e) => e.remove(token),
            Engine::Epoll(e) => e.remove(token),
        }
    }

    /// The counters.
    pub fn stats(&self) -> EngineStats {
        match self {
            Engine::Uring(e) => e.stats(),
            Engine::Epoll(e) => e.stats(),
        }
    }

    /// Queues a datagram from socket `token` to `to`, sent with the next
    /// turn's batch: on io_uring, by the same system call that then waits.
    pub fn queue(&mut self, token: Token, to: SocketAddr, bytes: &[u8]) {
        match self {
            Engine::Uring(e) => e.queue(token, to, bytes),
            Engine::Epoll(e) => e.queue(token, to, bytes),
        }
    }

    /// Sends what is queued now instead of with the next turn: the last
    /// thing a worker does before it exits.
    pub fn send_queued(&mut self) -> std::io::Result<()> {
        match self {
            Engine::Uring(e) => e.send_queued(),
            Engine::Epoll(e) => e.send_queued(),
        }
    }

    /// One loop turn (see the backends' `poll`).
    pub fn poll(
        &mut self,
        timeout: Option<std::time::Duration>,
        handler: &mut impl PacketHandler,
    ) -> std::io::Result<usize> {
        match self {
            Engine::Uring(e) => e.poll(timeout, handler),
            Engine::Epoll(e) => e.poll(timeout, handler),
        }
    }
}
