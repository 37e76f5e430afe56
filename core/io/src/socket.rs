//! UDP sockets for the data plane, configured through `socket2`.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// DSCP Expedited Forwarding (RFC 3246), the class for voice.
pub const DSCP_EF: u8 = 46;

/// Options for a data-plane UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// `SO_REUSEPORT`: several workers bind the same address and the
    /// kernel spreads datagrams over them.
    pub reuse_port: bool,
    /// Receive buffer size in bytes (`SO_RCVBUF`), if set.
    pub recv_buffer: Option<usize>,
    /// Send buffer size in bytes (`SO_SNDBUF`), if set.
    pub send_buffer: Option<usize>,
    /// DSCP code point marked on every packet sent (IPv4 TOS / IPv6
    /// traffic class, ECN bits left clear), if set.
    pub dscp: Option<u8>,
    /// Non-blocking mode, for event loops.
    pub nonblocking: bool,
}

impl Default for UdpOptions {
    /// RTP defaults: EF marking, non-blocking, 1 MiB buffers.
    fn default() -> Self {
        UdpOptions {
            reuse_port: false,
            recv_buffer: Some(1 << 20),
            send_buffer: Some(1 << 20),
            dscp: Some(DSCP_EF),
            nonblocking: true,
        }
    }
}

/// Binds a UDP socket to `addr` with `opts`. An IPv6 socket is IPv6-only.
pub fn bind_udp(addr: SocketAddr, opts: &UdpOptions) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if let Some(n) = opts.recv_buffer {
        s.set_recv_buffer_size(n)?;
    }
    if let Some(n) = opts.send_buffer {
        s.set_send_buffer_size(n)?;
    }
    if let Some(dscp) = opts.dscp {
        let tos = u32::from(dscp & 0x3f) << 2;
        if addr.is_ipv4() {
            s.set_tos_v4(tos)?;
        } else {
            s.set_tclass_v6(tos)?;
        }
    }
    s.set_nonblocking(opts.nonblocking)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The DSCP code point a socket marks its packets with.
pub fn dscp_of(sock: &UdpSocket) -> io::Result<u8> {
    let s = socket2::SockRef::from(sock);
    let tos = if sock.local_addr()?.is_ipv4() {
        s.tos_v4()?
    } else {
        s.tclass_v6()?
    };
    Ok((tos >> 2) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_ef_on_both_families() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let s = match bind_udp(addr.parse().unwrap(), &UdpOptions::default()) {
                Ok(s) => s,
                // A machine without IPv6 loopback cannot run the v6 half.
                Err(e) if addr.starts_with('[') => {
                    eprintln!("skipping {addr}: {e}");
                    continue;
                }
                Err(e) => panic!("{addr}: {e}"),
            };
            assert_eq!(dscp_of(&s).unwrap(), DSCP_EF, "{addr}");
        }
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_an_address() {
        let opts = UdpOptions {
            reuse_port: true,
            ..UdpOptions::default()
        };
        let a = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_udp(addr, &opts).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        let plain = UdpOptions::default();
        assert!(bind_udp(addr, &plain).is_err());
    }
}
