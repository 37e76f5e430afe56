//! What reaches a data-plane worker from outside its packet engine: the
//! TCP side's connections and messages, SIP datagrams another worker
//! received for one of this worker's calls, dialplan sidecars'
//! answers, and the events thread's word that a call's end is on disk.
//! Each event goes over a
//! channel, followed by a datagram to the worker's wake socket so that
//! its wait ends at once.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

/// An event for a worker.
pub(crate) enum Inbound {
    /// A TCP peer connected; what is written to the sender goes to it.
    Opened(SocketAddr, UnboundedSender<Vec<u8>>),
    /// A whole message from a TCP peer.
    Message(SocketAddr, Vec<u8>),
    /// The TCP connection is gone.
    Closed(SocketAddr),
    /// A SIP datagram from `SocketAddr` that another worker received and
    /// this one owns (its token names this worker).
    Datagram(SocketAddr, Vec<u8>),
    /// A dialplan sidecar's answer for one of this worker's calls.
    Routed(Box<crate::plugins::Reply>),
    /// What a call's agent asks.
    AgentAction(
        sentiric_engine::b2bua::CallRef,
        Box<sentiric_plugin_sdk::v1::CallAction>,
    ),
    /// A call's conversation with its agent is over (the reason).
    AgentGone(sentiric_engine::b2bua::CallRef, String),
    /// The call's `CallEnded` is on disk: its last messages may go
    /// (`[events] durable_end`).
    Durable(sentiric_engine::b2bua::CallRef),
}

/// How busy a worker is, as it says once a second, for the others to
/// place new calls.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Share of the last second the worker's thread ran, in thousandths.
    pub(crate) busy: AtomicU32,
    /// Calls up on the worker, as of its last turn.
    pub(crate) calls: AtomicU32,
    /// Share of its SIP transaction table in use, in thousandths, as of
    /// the last second.
    pub(crate) transactions: AtomicU32,
}

/// Where a worker's events go: its channel and its wake socket; and how
/// loaded it is.
#[derive(Clone)]
pub(crate) struct Inbox {
    pub(crate) tx: Sender<Inbound>,
    pub(crate) wake: SocketAddr,
    pub(crate) load: Arc<Load>,
}

impl Inbox {
    /// Sends `ev`, then a wake datagram from `waker`; `false` when the
    /// worker is gone.
    pub(crate) fn post(&self, waker: &UdpSocket, ev: Inbound) -> bool {
        if self.tx.send(ev).is_err() {
            return false;
        }
        let _ = waker.send_to(&[0], self.wake);
        true
    }
}
