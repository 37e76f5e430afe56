//! Datagram sizes on both backends: a socket added with `add_large` (SIP
//! over UDP) takes any datagram whole, up to 65,507 bytes; a plain one
//! (RTP) takes 2,048 and drops a longer one, counting it as truncated;
//! and a slot a socket left serves the next socket only with its own
//! datagrams.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_io::{Backend, Engine, Outbox, PacketHandler, Token};

#[derive(Default)]
struct Seen {
    got: Vec<(Token, Vec<u8>)>,
}

impl PacketHandler for Seen {
    fn on_packet(&mut self, t: Token, _: SocketAddr, data: &mut [u8], _: Instant, _: &mut Outbox) {
        self.got.push((t, data.to_vec()));
    }
}

fn bound() -> (UdpSocket, SocketAddr) {
    let s = bind_udp("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Polls until `n` datagrams were handed over (or 5 s passed).
fn until(engine: &mut Engine, h: &mut Seen, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while h.got.len() < n && Instant::now() < end {
        engine.poll(Some(Duration::from_millis(10)), h).unwrap();
    }
}

fn sizes(backend: Backend) {
    let (mut engine, _) = Engine::new(backend).unwrap();
    let (sip, sip_addr) = bound();
    let (rtp, rtp_addr) = bound();
    let sip_token = engine.add_large(sip).unwrap();
    let rtp_token = engine.add(rtp).unwrap();
    let mut h = Seen::default();
    engine.poll(Some(Duration::from_millis(1)), &mut h).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The largest UDP datagram over IPv4, a 3.5 KB INVITE's size, and a
    // small one; then to RTP: one too long, one that fits.
    let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    for n in [65_507, 3_515, 200] {
        tx.send_to(&pattern(n), sip_addr).unwrap();
    }
    tx.send_to(&pattern(3_000), rtp_addr).unwrap();
    tx.send_to(&pattern(172), rtp_addr).unwrap();
    until(&mut engine, &mut h, 4);
    let sip_got: Vec<usize> = h
        .got
        .iter()
        .filter(|(t, _)| *t == sip_token)
        .map(|(_, d)| d.len())
        .collect();
    assert_eq!(sip_got, [65_507, 3_515, 200], "{backend:?}");
    for (t, d) in &h.got {
        assert_eq!(*d, pattern(d.len()), "{backend:?}: bytes intact");
        if *t == rtp_token {
            assert_eq!(d.len(), 172, "{backend:?}");
        }
    }
    assert_eq!(h.got.len(), 4, "{backend:?}");
    assert_eq!(engine.stats().truncated, 1, "{backend:?}");

    // A slot given up and taken by another socket: only the new
    // socket's datagrams come with its token (one that reached the old
    // socket just before it went is not taken for the new one's).
    tx.send_to(&pattern(150), rtp_addr).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(engine.remove(rtp_token).unwrap());
    let (again, again_addr) = bound();
    let again_token = engine.add(again).unwrap();
    assert_eq!(again_token, rtp_token, "{backend:?}: the slot is reused");
    h.got.clear();
    engine.poll(Some(Duration::from_millis(1)), &mut h).unwrap();
    tx.send_to(&pattern(100), again_addr).unwrap();
    until(&mut engine, &mut h, 1);
    // A little longer: anything late of the old socket's would show.
    for _ in 0..5 {
        engine
            .poll(Some(Duration::from_millis(10)), &mut h)
            .unwrap();
    }
    assert_eq!(
        h.got.len(),
        1,
        "{backend:?}: {:?}",
        h.got.iter().map(|g| g.1.len()).collect::<Vec<_>>()
    );
    assert_eq!(h.got[0].1.len(), 100, "{backend:?}");
}

#[test]
fn datagram_sizes_on_io_uring() {
    if sentiric_io::uring::UringEngine::new(8).is_err() {
        eprintln!("skipped: io_uring unavailable here");
        return;
    }
    sizes(Backend::Uring);
}

#[test]
fn datagram_sizes_on_epoll() {
    sizes(Backend::Epoll);
}
