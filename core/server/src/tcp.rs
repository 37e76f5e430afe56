//! SIP over TCP (RFC 3261 §18): connections accepted on the SIP address's
//! TCP port, in a thread with a current-thread tokio runtime of its own.
//! Each connection's bytes go through `sentiric_sip::StreamFramer`; the
//! connection's opening, its whole messages and its closing go to one
//! worker (chosen by the peer's address) through its [`Inbox`]. A worker
//! calling a TCP target asks for a connection through the [`Connector`];
//! that connection is served the same way, for that worker, and a
//! connection that cannot be opened comes back as `Closed`. The worker
//! keeps the writers of open connections
//! (no lock on its send path) and writes what it sends to a connected
//! peer on that peer's connection. CRLFCRLF
//! keep-alives are answered (RFC 5626 §4.4.1); a framing error closes the
//! connection, as RFC 3261 §18.3 asks.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use sentiric_sip::framing::PONG;
use sentiric_sip::{Frame, KeepAliveRole, ParseLimits, StreamFramer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::inbox::{Inbound, Inbox};

/// Asks the TCP side to connect to an address for a worker (by index):
/// the connection's events go to that worker, or `Closed` when it fails.
pub(crate) type Connector = UnboundedSender<(SocketAddr, usize)>;

/// How long a connection to a TCP target may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener`; each accepted connection's events go to one
/// of `workers`, the same one for as long as it lasts, and connections
/// asked for through the returned [`Connector`] go to the worker that
/// asked. Returns the bound address and the connector.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    workers: Vec<Inbox>,
) -> std::io::Result<(SocketAddr, Connector)> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let waker = Arc::new(UdpSocket::bind(SocketAddr::new(workers[0].wake.ip(), 0))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (connector, mut connects) = unbounded_channel::<(SocketAddr, usize)>();
    std::thread::Builder::new()
        .name("sentiric-tcp".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("SIP over TCP: {e}");
                        return;
                    }
                };
                // Connections the workers ask for.
                let (targets, connect_waker) = (workers.clone(), Arc::clone(&waker));
                tokio::spawn(async move {
                    while let Some((dest, w)) = connects.recv().await {
                        let Some(inbox) = targets.get(w).cloned() else {
                            continue;
                        };
                        tokio::spawn(connect(dest, inbox, Arc::clone(&connect_waker)));
                    }
                });
                loop {
                    let Ok((stream, peer)) = listener.accept().await else {
                        continue;
                    };
                    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(peer);
                    let inbox = workers[hash as usize % workers.len()].clone();
                    if !serve(stream, peer, inbox, Arc::clone(&waker)) {
                        return;
                    }
                }
            });
        })?;
    Ok((addr, connector))
}

/// Opens a connection to `dest` for `inbox`'s worker and serves it; a
/// failure (refused, no answer in [`CONNECT_TIMEOUT`]) goes to the worker
/// as `Closed`.
async fn connect(dest: SocketAddr, inbox: Inbox, waker: Arc<UdpSocket>) {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(dest)).await {
        Ok(Ok(stream)) => {
            serve(stream, dest, inbox, waker);
        }
        Ok(Err(e)) => {
            tracing::warn!(%dest, "SIP over TCP: connecting: {e}");
            inbox.post(&waker, Inbound::Closed(dest));
        }
        Err(_) => {
            tracing::warn!(
                %dest,
                "SIP over TCP: no connection in {} s",
                CONNECT_TIMEOUT.as_secs()
            );
            inbox.post(&waker, Inbound::Closed(dest));
        }
    }
}

/// Serves one connection (accepted, or opened for a worker) for `inbox`'s
/// worker: its opening, its whole messages and its closing go there; what
/// the worker writes goes to the peer. `false` when the worker is gone.
fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    inbox: Inbox,
    waker: Arc<UdpSocket>,
) -> bool {
    let _ = stream.set_nodelay(true);
    let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
    if !inbox.post(&waker, Inbound::Opened(peer, tx.clone())) {
        return false;
    }
    let (mut reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut framer = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(m))) => {
                        if !inbox.post(&waker, Inbound::Message(peer, m.to_vec())) {
                            break 'read;
                        }
                    }
                    Ok(Some(Frame::Ping)) => {
                        let _ = tx.send(PONG.to_vec());
                    }
                    Ok(Some(Frame::Pong)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%peer, "SIP over TCP: {e}; closing");
                        break 'read;
                    }
                }
            }
        }
        // Once the worker drops its sender too, the writer's task ends and
        // the connection closes.
        inbox.post(&waker, Inbound::Closed(peer));
    });
    true
}
