//! SIP over TCP (RFC 3261 §18): connections accepted on the SIP address's
//! TCP port, in a thread with a current-thread tokio runtime of its own.
//! Each connection's bytes go through `sentiric_sip::StreamFramer`; whole
//! messages go to the worker over a channel, with a datagram to its wake
//! socket so that its wait ends at once; what the worker sends back to a
//! connected peer is written on that peer's connection. CRLFCRLF
//! keep-alives are answered (RFC 5626 §4.4.1); a framing error closes the
//! connection, as RFC 3261 §18.3 asks.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use sentiric_sip::framing::PONG;
use sentiric_sip::{Frame, KeepAliveRole, ParseLimits, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Writers of the open connections, by peer address.
pub(crate) type Connections = Arc<Mutex<HashMap<SocketAddr, UnboundedSender<Vec<u8>>>>>;

/// Listens on `listen` (TCP); messages go to `inbox`, each followed by a
/// datagram to `wake`. Returns the bound address.
pub(crate) fn spawn(
    listen: SocketAddr,
    inbox: Sender<(SocketAddr, Vec<u8>)>,
    wake: SocketAddr,
    conns: Connections,
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
                    conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(peer, tx.clone());
                    let (mut reader, mut writer) = stream.into_split();
                    tokio::spawn(async move {
                        while let Some(bytes) = rx.recv().await {
                            if writer.write_all(&bytes).await.is_err() {
                                break;
                            }
                        }
                    });
                    let (inbox, waker, conns) =
                        (inbox.clone(), Arc::clone(&waker), Arc::clone(&conns));
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
                                        if inbox.send((peer, m.to_vec())).is_err() {
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
                        // Dropping the writer's sender ends its task and
                        // closes the connection.
                        conns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&peer);
                    });
                }
            });
        })?;
    Ok(addr)
}
