//! The io_uring backend's provided-buffer ring running dry: the multishot
//! receive ends with ENOBUFS, is counted and re-armed, and the datagrams
//! that waited in the socket's queue are still delivered.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_io::uring::UringEngine;
use sentiric_io::{Outbox, PacketHandler, Token};

#[derive(Default)]
struct Count {
    seen: Vec<u16>,
}

impl PacketHandler for Count {
    fn on_packet(&mut self, _: Token, _: SocketAddr, data: &mut [u8], _: Instant, _: &mut Outbox) {
        self.seen.push(u16::from_be_bytes([data[0], data[1]]));
    }
}

#[test]
fn ring_runs_dry_and_recovers() {
    // Eight buffers for a burst of 300 datagrams sent before the first turn.
    let mut engine = UringEngine::new(8).unwrap();
    let sock = bind_udp("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
    let addr = sock.local_addr().unwrap();
    engine.add(sock).unwrap();
    let mut h = Count::default();
    engine.poll(Some(Duration::from_millis(1)), &mut h).unwrap();
    let tx = UdpSocket::bind("127.0.0.2:0").unwrap();
    for i in 0..300u16 {
        tx.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.seen.len() < 300 && Instant::now() < deadline {
        engine
            .poll(Some(Duration::from_millis(10)), &mut h)
            .unwrap();
    }
    assert_eq!(
        h.seen,
        (0..300).collect::<Vec<u16>>(),
        "all delivered, in order"
    );
    let u = engine.uring_stats();
    assert!(u.enobufs >= 1, "the ring ran dry: {u:?}");
    assert!(u.rearms >= u.enobufs);
    assert_eq!(engine.stats().received, 300);
}
