//! Relay load harness: N calls relayed by one data-plane worker, both
//! directions at 50 packets/s of 172-byte PCMU packets, one socket per
//! endpoint as phones have. Reports the worker's CPU time per relayed
//! packet (from /proc/thread-self/schedstat), loss, and added one-way
//! latency p50/p99.
//!
//! ```text
//! cargo run --release -p sentiric-bench --example relay_load -- <backend> <calls> <seconds>
//! ```
//!
//! `backend`: `uring` or `epoll` (the Sentiric relay: parse, latching,
//! strict source, SSRC/sequence/timestamp rewriting), or `floor` (the same
//! sockets and epoll engine forwarding each datagram to its fixed peer with
//! no logic at all: the least a relay can do here).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_io::{Backend, Engine, Outbox, PacketHandler, Token};
use sentiric_rtp::packet::RtpHeader;
use sentiric_rtp::relay::{LatchPolicy, LegSpec, Relay};

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

enum Worker {
    Relay(Relay<Token>),
    /// Token index → (peer token, destination).
    Floor(Vec<(Token, SocketAddr)>),
}

struct Handler {
    worker: Worker,
    relayed: u64,
    dropped: u64,
}

impl PacketHandler for Handler {
    fn on_packet(
        &mut self,
        token: Token,
        from: SocketAddr,
        data: &mut [u8],
        now: Instant,
        out: &mut Outbox,
    ) {
        let target = match &mut self.worker {
            Worker::Relay(r) => r.on_rtp(token, from, data, now).ok(),
            Worker::Floor(t) => t.get(token.0).copied(),
        };
        match target {
            Some((peer, dest)) => {
                out.push(peer, dest, data);
                self.relayed += 1;
            }
            None => self.dropped += 1,
        }
    }
}

/// The phones' side: records one-way latency of every packet received.
struct Phones {
    epoch: Instant,
    latencies_us: Vec<u32>,
}

impl PacketHandler for Phones {
    fn on_packet(
        &mut self,
        _: Token,
        _: SocketAddr,
        data: &mut [u8],
        now: Instant,
        _: &mut Outbox,
    ) {
        if data.len() >= 20 {
            let sent = u64::from_be_bytes(data[12..20].try_into().unwrap_or([0; 8]));
            let at = now.duration_since(self.epoch).as_nanos() as u64;
            self.latencies_us
                .push((at.saturating_sub(sent) / 1000) as u32);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "uring".into());
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let engine_backend = match backend.as_str() {
        "uring" => Backend::Uring,
        "epoll" | "floor" => Backend::Epoll,
        other => {
            eprintln!("unknown backend {other}: uring, epoll or floor");
            std::process::exit(2);
        }
    };
    let (mut engine, _) = Engine::new(engine_backend).expect("engine");
    let (mut phones_engine, _) = Engine::new(Backend::Epoll).expect("phones engine");
    let opts = UdpOptions {
        dscp: None,
        ..UdpOptions::default()
    };
    let mut relay = Relay::new();
    let mut floor = Vec::new();
    // (phone socket, switch address it sends to)
    let mut senders: Vec<(UdpSocket, SocketAddr)> = Vec::new();
    for _ in 0..calls {
        let sa = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let sb = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let (a_addr, b_addr) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let pa = bind_udp("127.0.0.2:0".parse().unwrap(), &opts).unwrap();
        let pb = bind_udp("127.0.0.3:0".parse().unwrap(), &opts).unwrap();
        let (pa_addr, pb_addr) = (pa.local_addr().unwrap(), pb.local_addr().unwrap());
        let ta = engine.add(sa).unwrap();
        let tb = engine.add(sb).unwrap();
        relay.bridge(
            LegSpec {
                key: ta,
                sdp_addr: Some(pa_addr),
                ssrc: 1,
            },
            LegSpec {
                key: tb,
                sdp_addr: Some(pb_addr),
                ssrc: 2,
            },
            LatchPolicy::AnySource,
            8000,
        );
        floor.resize(floor.len().max(tb.0 + 1), (Token(0), pa_addr));
        floor[ta.0] = (tb, pb_addr);
        floor[tb.0] = (ta, pa_addr);
        senders.push((pa.try_clone().unwrap(), a_addr));
        senders.push((pb.try_clone().unwrap(), b_addr));
        phones_engine.add(pa).unwrap();
        phones_engine.add(pb).unwrap();
    }
    let worker = if backend == "floor" {
        Worker::Floor(floor)
    } else {
        Worker::Relay(relay)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();

    let relay_thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut h = Handler {
                worker,
                relayed: 0,
                dropped: 0,
            };
            let cpu0 = thread_cpu_ns();
            while !stop.load(Ordering::Relaxed) {
                engine.poll(Some(Duration::from_millis(5)), &mut h).unwrap();
            }
            (h.relayed, h.dropped, thread_cpu_ns() - cpu0, engine.kind())
        })
    };
    let phones = Arc::new(Mutex::new(Phones {
        epoch,
        latencies_us: Vec::new(),
    }));
    let phone_thread = {
        let stop = Arc::clone(&stop);
        let phones = Arc::clone(&phones);
        std::thread::spawn(move || {
            let mut p = Phones {
                epoch,
                latencies_us: Vec::new(),
            };
            while !stop.load(Ordering::Relaxed) {
                phones_engine
                    .poll(Some(Duration::from_millis(5)), &mut p)
                    .unwrap();
            }
            // Drain what is still in flight.
            for _ in 0..20 {
                phones_engine
                    .poll(Some(Duration::from_millis(5)), &mut p)
                    .unwrap();
            }
            *phones.lock().unwrap() = p;
        })
    };

    // The generator: every 20 ms, one packet from every phone, spread
    // over the 20 ms in groups of 16 as independent phones would be.
    let mut sent = 0u64;
    let mut pkt = Vec::with_capacity(172);
    let ticks = seconds * 50;
    let groups = senders.len().div_ceil(16) as u32;
    for tick in 0..ticks {
        for (i, (sock, to)) in senders.iter().enumerate() {
            if i % 16 == 0 {
                let due = epoch
                    + Duration::from_millis(20 * tick)
                    + Duration::from_millis(20) * (i / 16) as u32 / groups;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            pkt.clear();
            let now_ns = epoch.elapsed().as_nanos() as u64;
            let mut payload = [0xffu8; 160];
            payload[..8].copy_from_slice(&now_ns.to_be_bytes());
            RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: tick as u16,
                timestamp: (tick * 160) as u32,
                ssrc: 1000 + i as u32,
            }
            .write(&payload, &mut pkt);
            if sock.send_to(&pkt, to).is_ok() {
                sent += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (relayed, dropped, cpu_ns, kind) = relay_thread.join().unwrap();
    phone_thread.join().unwrap();
    let mut lat = std::mem::take(&mut phones.lock().unwrap().latencies_us);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let received = lat.len() as u64;
    println!(
        "backend={backend} engine={kind} calls={calls} seconds={seconds} sent={sent} relayed={relayed} \
         dropped={dropped} received={received} loss={} cpu_us_per_packet={:.2} latency_us_p50={} p99={}",
        sent - received,
        cpu_ns as f64 / 1000.0 / relayed.max(1) as f64,
        pct(0.5),
        pct(0.99),
    );
}
