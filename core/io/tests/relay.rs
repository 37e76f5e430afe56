//! RTP relayed through real loopback sockets by the packet engine — each
//! test on both backends, io_uring and epoll — and the sans-IO relay of
//! `sentiric-rtp`: many calls, zero loss, order kept, SSRCs rewritten, and
//! spoofed packets — from another port or another 127.x address, before or
//! after latching — never forwarded.
#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_io::{Backend, Engine, Outbox, PacketHandler, Token};
use sentiric_rtp::packet::{RtpHeader, RtpPacket};
use sentiric_rtp::relay::{LatchPolicy, LegSpec, Relay};

struct RelayHandler {
    relay: Relay<Token>,
    dropped: u64,
}

impl PacketHandler for RelayHandler {
    fn on_packet(
        &mut self,
        token: Token,
        from: SocketAddr,
        data: &mut [u8],
        now: Instant,
        out: &mut Outbox,
    ) {
        match self.relay.on_rtp(token, from, data, now) {
            Ok((peer, dest)) => out.push(peer, dest, data),
            Err(_) => self.dropped += 1,
        }
    }
}

fn phone(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// A packet whose payload names its sender and sequence, so the receiver
/// can tell what it got whatever the relay rewrote.
fn rtp(ssrc: u32, seq: u16, tag: u8) -> Vec<u8> {
    let mut payload = vec![tag; 160];
    payload[..2].copy_from_slice(&seq.to_be_bytes());
    let mut v = Vec::new();
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc,
    }
    .write(&payload, &mut v);
    v
}

/// Runs the engine on its own thread until the returned guard is dropped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Engine, RelayHandler)>>,
}

impl Running {
    fn start(mut engine: Engine, mut handler: RelayHandler) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                engine
                    .poll(Some(Duration::from_millis(5)), &mut handler)
                    .unwrap();
            }
            (engine, handler)
        });
        Running {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (Engine, RelayHandler) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn switch_socket() -> UdpSocket {
    bind_udp("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap()
}

fn engine(backend: Backend) -> Engine {
    let (engine, fallback) = Engine::new(backend).unwrap();
    assert!(fallback.is_none());
    engine
}

#[test]
fn many_calls_zero_loss_in_order_io_uring() {
    many_calls_zero_loss_in_order(Backend::Uring);
}

#[test]
fn many_calls_zero_loss_in_order_epoll() {
    many_calls_zero_loss_in_order(Backend::Epoll);
}

#[test]
fn spoofed_packets_are_never_forwarded_io_uring() {
    spoofed_packets_are_never_forwarded(Backend::Uring);
}

#[test]
fn spoofed_packets_are_never_forwarded_epoll() {
    spoofed_packets_are_never_forwarded(Backend::Epoll);
}

#[test]
fn auto_prefers_io_uring() {
    let (e, fallback) = Engine::new(Backend::Auto).unwrap();
    // This kernel offers io_uring; where it does not, Auto falls back.
    assert_eq!((e.kind(), fallback.is_none()), ("io_uring", true));
}

fn many_calls_zero_loss_in_order(backend: Backend) {
    const CALLS: usize = 20;
    const PACKETS: u16 = 50;
    let mut engine = engine(backend);
    let mut relay = Relay::new();
    let mut calls = Vec::new();
    for c in 0..CALLS {
        let (sa, sb) = (switch_socket(), switch_socket());
        let (a_addr, b_addr) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let (pa, pb) = (phone("127.0.0.2"), phone("127.0.0.3"));
        let (ta, tb) = (engine.add(sa).unwrap(), engine.add(sb).unwrap());
        relay.bridge(
            LegSpec {
                key: ta,
                sdp_addr: Some(pa.local_addr().unwrap()),
                ssrc: 0x1000 + c as u32,
                clock_rate: 8000,
            },
            LegSpec {
                key: tb,
                sdp_addr: Some(pb.local_addr().unwrap()),
                ssrc: 0x2000 + c as u32,
                clock_rate: 8000,
            },
            LatchPolicy::AnySource,
        );
        calls.push((pa, a_addr, pb, b_addr));
    }
    let run = Running::start(engine, RelayHandler { relay, dropped: 0 });
    // Every phone sends its stream, interleaved across calls.
    for seq in 0..PACKETS {
        for (c, (pa, a_addr, pb, b_addr)) in calls.iter().enumerate() {
            pa.send_to(&rtp(0xaa00 + c as u32, seq, 0xa), a_addr)
                .unwrap();
            pb.send_to(&rtp(0xbb00 + c as u32, seq, 0xb), b_addr)
                .unwrap();
        }
        if seq % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut buf = [0u8; 2048];
    for (c, (pa, _, pb, _)) in calls.iter().enumerate() {
        for (sock, tag, ssrc) in [(pb, 0xa, 0x2000 + c as u32), (pa, 0xb, 0x1000 + c as u32)] {
            let mut last_out: Option<u16> = None;
            for seq in 0..PACKETS {
                let n = sock
                    .recv(&mut buf)
                    .unwrap_or_else(|e| panic!("call {c}: packet {seq} lost: {e}"));
                let p = RtpPacket::parse(&buf[..n]).unwrap();
                assert_eq!(p.ssrc(), ssrc, "rewritten to the leg's SSRC");
                let payload = p.payload();
                assert_eq!(payload[2], tag, "from the other phone of the same call");
                assert_eq!(
                    u16::from_be_bytes([payload[0], payload[1]]),
                    seq,
                    "call {c}: order kept"
                );
                if let Some(l) = last_out {
                    assert_eq!(
                        p.sequence(),
                        l.wrapping_add(1),
                        "continuous output sequence"
                    );
                }
                last_out = Some(p.sequence());
            }
        }
    }
    let (engine, handler) = run.finish();
    assert_eq!(handler.dropped, 0);
    let s = engine.stats();
    assert_eq!(s.received, 2 * CALLS as u64 * u64::from(PACKETS));
    assert_eq!(s.sent, s.received);
    if backend == Backend::Epoll {
        assert!(s.receive_calls <= s.received, "batched receives");
    }
}

fn spoofed_packets_are_never_forwarded(backend: Backend) {
    for policy in [LatchPolicy::SdpExact, LatchPolicy::AnySource] {
        let mut engine = engine(backend);
        let (sa, sb) = (switch_socket(), switch_socket());
        let (a_addr, b_addr) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let (pa, pb) = (phone("127.0.0.2"), phone("127.0.0.3"));
        let (ta, tb) = (engine.add(sa).unwrap(), engine.add(sb).unwrap());
        let mut relay = Relay::new();
        relay.bridge(
            LegSpec {
                key: ta,
                sdp_addr: Some(pa.local_addr().unwrap()),
                ssrc: 1,
                clock_rate: 8000,
            },
            LegSpec {
                key: tb,
                sdp_addr: Some(pb.local_addr().unwrap()),
                ssrc: 2,
                clock_rate: 8000,
            },
            policy,
        );
        let run = Running::start(engine, RelayHandler { relay, dropped: 0 });
        // Spoofers: the same port on another 127.x address, and another
        // port on phone A's own address.
        let port = pa.local_addr().unwrap().port();
        let spoofers = [
            UdpSocket::bind(format!("127.0.0.9:{port}")).unwrap(),
            phone("127.0.0.2"),
        ];
        let before = policy == LatchPolicy::SdpExact;
        if before {
            // Before phone A has sent anything.
            for s in &spoofers {
                s.send_to(&rtp(66, 1, 0xee), a_addr).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Phone B speaks first so that phone A's packets have somewhere to go.
        pb.send_to(&rtp(7, 0, 0xb), b_addr).unwrap();
        let mut buf = [0u8; 2048];
        pa.recv(&mut buf).unwrap();
        for seq in 0..20u16 {
            pa.send_to(&rtp(5, seq, 0xa), a_addr).unwrap();
            for s in &spoofers {
                s.send_to(&rtp(66, seq, 0xee), a_addr).unwrap();
            }
        }
        let mut got = 0;
        while let Ok(n) = pb.recv(&mut buf) {
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!(
                p.payload()[2],
                0xa,
                "{policy:?}: a spoofed packet reached phone B"
            );
            got += 1;
        }
        assert_eq!(got, 20, "{policy:?}: every genuine packet arrives");
        let (_, handler) = run.finish();
        let spoofed = 2 * 20 + if before { 2 } else { 0 };
        assert_eq!(handler.dropped, spoofed, "{policy:?}");
        assert_eq!(handler.relay.counters(ta).unwrap().foreign, spoofed);
    }
}

#[derive(Default)]
struct Seen(Vec<(Token, Vec<u8>)>);

impl PacketHandler for Seen {
    fn on_packet(
        &mut self,
        token: Token,
        _: SocketAddr,
        data: &mut [u8],
        _: Instant,
        _: &mut Outbox,
    ) {
        self.0.push((token, data.to_vec()));
    }
}

fn remove_and_reuse(backend: Backend) {
    let mut engine = engine(backend);
    let a = switch_socket();
    let a_addr = a.local_addr().unwrap();
    let ta = engine.add(a).unwrap();
    let mut seen = Seen::default();
    engine
        .poll(Some(Duration::from_millis(1)), &mut seen)
        .unwrap();
    let a = engine.remove(ta).unwrap();
    let b = switch_socket();
    let b_addr = b.local_addr().unwrap();
    let tb = engine.add(b).unwrap();
    assert_eq!(tb, ta, "the slot is reused");
    let tx = phone("127.0.0.2");
    tx.send_to(b"to-a", a_addr).unwrap();
    tx.send_to(b"to-b", b_addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.0.is_empty() && Instant::now() < deadline {
        engine
            .poll(Some(Duration::from_millis(10)), &mut seen)
            .unwrap();
    }
    for _ in 0..5 {
        engine
            .poll(Some(Duration::from_millis(5)), &mut seen)
            .unwrap();
    }
    assert_eq!(
        seen.0,
        vec![(tb, b"to-b".to_vec())],
        "{backend:?}: once, and only from the registered socket"
    );
    // The removed socket still works on its own.
    let mut buf = [0u8; 16];
    a.set_nonblocking(false).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(a.recv(&mut buf).unwrap(), 4);
}

#[test]
fn remove_and_reuse_io_uring() {
    remove_and_reuse(Backend::Uring);
}

#[test]
fn remove_and_reuse_epoll() {
    remove_and_reuse(Backend::Epoll);
}

/// Collects what the engine receives.
#[derive(Default)]
struct Collect(Vec<Vec<u8>>);

impl PacketHandler for Collect {
    fn on_packet(&mut self, _: Token, _: SocketAddr, data: &mut [u8], _: Instant, _: &mut Outbox) {
        self.0.push(data.to_vec());
    }
}

/// A datagram queued between turns goes out with the next turn, which
/// then still wakes for the answer (on io_uring the same system call
/// sends and waits: its own sends' completions must not end the wait,
/// nor may it sleep past the answer); `send_queued` sends at once.
fn queued_between_turns(backend: Backend) {
    let (mut engine, _) = Engine::new(backend).unwrap();
    let own = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = phone("127.0.0.1");
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let token = engine.add(own).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut seen = Collect::default();
    engine
        .poll(Some(Duration::from_millis(1)), &mut seen)
        .unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        peer.send_to(&buf[..n], from).unwrap();
        let n = peer.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    engine.queue(token, peer_addr, b"ping");
    let t = Instant::now();
    let mut got = 0;
    while got == 0 && t.elapsed() < Duration::from_secs(5) {
        got += engine
            .poll(Some(Duration::from_secs(5)), &mut seen)
            .unwrap();
    }
    assert_eq!(seen.0, vec![b"ping".to_vec()], "{backend:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{backend:?}: {:?}",
        t.elapsed()
    );
    engine.queue(token, peer_addr, b"bye");
    engine.send_queued().unwrap();
    assert_eq!(echo.join().unwrap(), b"bye", "{backend:?}");
}

#[test]
fn queued_between_turns_io_uring() {
    queued_between_turns(Backend::Uring);
}

#[test]
fn queued_between_turns_epoll() {
    queued_between_turns(Backend::Epoll);
}
