//! SIP over TCP (RFC 3261 §18): connections accepted on the SIP address's
//! TCP port, in a thread with a current-thread tokio runtime of its own.
//! Each connection's bytes go through `sentiric_sip::StreamFramer`; the
//! connection's opening, its whole messages and its closing go to the
//! worker over one channel, with a datagram to its wake socket so that its
//! wait ends at once. The worker keeps the writers of open connections
//! (no lock on its send path) and writes what it sends to a connected
//! peer on that peer's connection. CRLFCRLF
//! keep-alives are answered (RFC 5626 §4.4.1); a framing error closes the
//! connection, as RFC 3261 §18.3 asks.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use sentiric_sip::framing::PONG;
use sentiric_sip::{Frame, KeepAliveRole, ParseLimits, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// What happens on the TCP side, for the worker.
pub(crate) enum TcpEvent {
    /// A peer connected; what is written to the sender goes to it.
    Opened(SocketAddr, UnboundedSender<Vec<u8>>),
    /// A whole message from the peer.
    Message(SocketAddr, Vec<u8>),
    /// The connection is gone.
    Closed(SocketAddr),
}

/// Listens on `listen` (TCP); events go to `inbox`, each followed by a
/// datagram to `wake`. Returns the bound address.
pub(crate) fn spawn(
    listen: SocketAddr,
    inbox: Sender<TcpEvent>,
    wake: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let waker = UdpSocket::bind(SocketAddr::new(wake.ip(), 0))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
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
                let waker = Arc::new(waker);
                loop {
                    let Ok((stream, peer)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
                    if inbox.send(TcpEvent::Opened(peer, tx.clone())).is_err() {
                        return;
                    }
                    let _ = waker.send_to(&[0], wake);
                    let (mut reader, mut writer) = stream.into_split();
                    tokio::spawn(async move {
                        while let Some(bytes) = rx.recv().await {
                            if writer.write_all(&bytes).await.is_err() {
                                break;
                            }
                        }
                    });
                    let (inbox, waker) = (inbox.clone(), Arc::clone(&waker));
                    tokio::spawn(async move {
                        let mut framer =
                            StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
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
                                        if inbox.send(TcpEvent::Message(peer, m.to_vec())).is_err()
                                        {
                                            break 'read;
                                        }
                                        let _ = waker.send_to(&[0], wake);
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
                        // Once the worker drops its sender too, the writer's
                        // task ends and the connection closes.
                        let _ = inbox.send(TcpEvent::Closed(peer));
                        let _ = waker.send_to(&[0], wake);
                    });
                }
            });
        })?;
    Ok(addr)
}
