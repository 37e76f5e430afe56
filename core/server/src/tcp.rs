//! SIP over TCP (RFC 3261 §18): connections accepted on the SIP address's
//! TCP port, in a thread with a current-thread tokio runtime of its own.
//! Each connection's bytes go through `sentiric_sip::StreamFramer`; the
//! connection's opening, its whole messages and its closing go to one
//! worker (chosen by the peer's address) through its [`Inbox`]. The
//! worker keeps the writers of open connections
//! (no lock on its send path) and writes what it sends to a connected
//! peer on that peer's connection. CRLFCRLF
//! keep-alives are answered (RFC 5626 §4.4.1); a framing error closes the
//! connection, as RFC 3261 §18.3 asks.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use sentiric_sip::framing::PONG;
use sentiric_sip::{Frame, KeepAliveRole, ParseLimits, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::unbounded_channel;

use crate::inbox::{Inbound, Inbox};

/// Listens on `listen` (TCP); each connection's events go to one of
/// `workers`, the same one for as long as it lasts. Returns the bound
/// address.
pub(crate) fn spawn(listen: SocketAddr, workers: Vec<Inbox>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let waker = UdpSocket::bind(SocketAddr::new(workers[0].wake.ip(), 0))?;
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
                    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(peer);
                    let inbox = workers[hash as usize % workers.len()].clone();
                    let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
                    if !inbox.post(&waker, Inbound::Opened(peer, tx.clone())) {
                        return;
                    }
                    let (mut reader, mut writer) = stream.into_split();
                    tokio::spawn(async move {
                        while let Some(bytes) = rx.recv().await {
                            if writer.write_all(&bytes).await.is_err() {
                                break;
                            }
                        }
                    });
                    let waker = Arc::clone(&waker);
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
                        // Once the worker drops its sender too, the writer's
                        // task ends and the connection closes.
                        inbox.post(&waker, Inbound::Closed(peer));
                    });
                }
            });
        })?;
    Ok(addr)
}
