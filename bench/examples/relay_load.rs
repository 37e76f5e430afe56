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
//! strict source, SSRC/sequence/timestamp rewriting), `floor` (the same
//! sockets and epoll engine forwarding each datagram to its fixed peer with
//! no logic at all: the least a relay can do here), or `rtpengine` (the
//! Debian `rtpengine-daemon` in userspace mode with one worker thread,
//! started here on 127.0.0.1 and given each call over its NG control
//! protocol; its CPU is the whole process's, every thread's schedstat).
//!
//! With two CPUs or more, the relay (the worker thread, or rtpengine's
//! process) is pinned to the last one and the generator and phones to the
//! others; `relay_cpu=` in the output says which.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentiric_io::affinity;
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

/// Bencode for the NG protocol: the few shapes a call setup needs.
fn bencode_dict(pairs: &[(&str, &str)], lists: &[(&str, &[&str])]) -> Vec<u8> {
    let s = |v: &str| format!("{}:{}", v.len(), v);
    let mut out = String::from("d");
    for (k, v) in pairs {
        out += &s(k);
        out += &s(v);
    }
    for (k, items) in lists {
        out += &s(k);
        out.push('l');
        for i in *items {
            out += &s(i);
        }
        out.push('e');
    }
    out.push('e');
    out.into_bytes()
}

/// The value of a string key in a bencoded reply (enough for "result"
/// and "sdp").
fn bencode_get(reply: &[u8], key: &str) -> Option<String> {
    let needle = format!("{}:{}", key.len(), key);
    let text = String::from_utf8_lossy(reply);
    let at = text.find(&needle)? + needle.len();
    let rest = &text[at..];
    let colon = rest.find(':')?;
    let len: usize = rest[..colon].parse().ok()?;
    Some(rest[colon + 1..colon + 1 + len].to_string())
}

fn phone_sdp(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// The address an SDP from rtpengine tells its recipient to send to.
fn sdp_target(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

struct NgClient {
    sock: UdpSocket,
    to: SocketAddr,
    n: u64,
}

impl NgClient {
    fn call(&mut self, msg: &[u8]) -> Vec<u8> {
        self.n += 1;
        let cookie = format!("c{} ", self.n);
        let mut dgram = cookie.clone().into_bytes();
        dgram.extend_from_slice(msg);
        let mut buf = vec![0u8; 65_536];
        for _ in 0..50 {
            self.sock.send_to(&dgram, self.to).unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                if buf[..n].starts_with(cookie.as_bytes()) {
                    return buf[cookie.len()..n].to_vec();
                }
            }
        }
        panic!("rtpengine does not answer on {}", self.to);
    }

    /// Offer from phone A, answer from phone B; returns where A and B send.
    fn bridge(&mut self, call: usize, a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
        let cid = format!("load-{call}");
        let replace: &[&str] = &["origin", "session-connection"];
        let offer = self.call(&bencode_dict(
            &[
                ("command", "offer"),
                ("call-id", &cid),
                ("from-tag", "a"),
                ("sdp", &phone_sdp(a)),
            ],
            &[("replace", replace)],
        ));
        assert_eq!(
            bencode_get(&offer, "result").as_deref(),
            Some("ok"),
            "{}",
            String::from_utf8_lossy(&offer)
        );
        let to_b = sdp_target(&bencode_get(&offer, "sdp").unwrap()).unwrap();
        let answer = self.call(&bencode_dict(
            &[
                ("command", "answer"),
                ("call-id", &cid),
                ("from-tag", "a"),
                ("to-tag", "b"),
                ("sdp", &phone_sdp(b)),
            ],
            &[("replace", replace)],
        ));
        assert_eq!(bencode_get(&answer, "result").as_deref(), Some("ok"));
        let to_a = sdp_target(&bencode_get(&answer, "sdp").unwrap()).unwrap();
        // Phone A sends to the port the answer gave A, phone B to the offer's.
        (to_a, to_b)
    }
}

/// CPU time of a whole process in nanoseconds: the sum of its threads' run
/// times (the first field of each `/proc/<pid>/task/<tid>/schedstat`),
/// finer than `/proc/<pid>/stat`'s 10 ms clock ticks.
fn process_cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "uring".into());
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let engine_backend = match backend.as_str() {
        "uring" => Backend::Uring,
        "epoll" | "floor" | "rtpengine" => Backend::Epoll,
        other => {
            eprintln!("unknown backend {other}: uring, epoll, floor or rtpengine");
            std::process::exit(2);
        }
    };
    // The relay (Sentiric's worker or rtpengine's process) gets a core of
    // its own, as a data-plane worker has in production; the generator and
    // the phones share the others. rtpengine inherits the mask it is
    // started with.
    let cpus = affinity::allowed_cpus().unwrap_or_default();
    let pinning =
        (cpus.len() >= 2).then(|| (cpus[cpus.len() - 1], cpus[..cpus.len() - 1].to_vec()));
    if let Some((relay_cpu, _)) = &pinning {
        affinity::pin_current_thread(&[*relay_cpu]).expect("pin");
    }
    let mut rtpengine = (backend == "rtpengine").then(|| {
        let ng_port = 22_222;
        let child = std::process::Command::new("rtpengine")
            .args([
                "--foreground",
                "--log-stderr",
                "--log-level=3",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng=127.0.0.1:{ng_port}"),
                "--port-min=30000",
                "--port-max=39999",
                "--num-threads=1",
                "--delete-delay=0",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rtpengine (Debian package rtpengine-daemon) runs");
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let ng = NgClient {
            sock,
            to: format!("127.0.0.1:{ng_port}").parse().unwrap(),
            n: 0,
        };
        (child, ng)
    });
    if let Some((_, others)) = &pinning {
        affinity::pin_current_thread(others).expect("pin");
    }
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
        let (a_addr, b_addr) = match rtpengine.as_mut() {
            Some((_, ng)) => ng.bridge(senders.len() / 2, pa_addr, pb_addr),
            None => (a_addr, b_addr),
        };
        let ta = engine.add(sa).unwrap();
        let tb = engine.add(sb).unwrap();
        relay.bridge(
            LegSpec {
                key: ta,
                sdp_addr: Some(pa_addr),
                ssrc: 1,
                clock_rate: 8000,
            },
            LegSpec {
                key: tb,
                sdp_addr: Some(pb_addr),
                ssrc: 2,
                clock_rate: 8000,
            },
            LatchPolicy::AnySource,
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

    let rtpengine_pid = rtpengine.as_ref().map(|(c, _)| c.id());
    let rtpengine_cpu0 = rtpengine_pid.map(process_cpu_ns);
    let relay_thread = {
        let stop = Arc::clone(&stop);
        let idle = rtpengine.is_some();
        let relay_cpu = pinning.as_ref().map(|p| p.0);
        std::thread::spawn(move || {
            if let Some(cpu) = relay_cpu {
                affinity::pin_current_thread(&[cpu]).expect("pin");
            }
            if idle {
                // rtpengine relays; this worker's sockets stay silent.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return (0, 0, 0, "rtpengine");
            }
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
    let (mut relayed, dropped, mut cpu_ns, kind) = relay_thread.join().unwrap();
    phone_thread.join().unwrap();
    let mut lat = std::mem::take(&mut phones.lock().unwrap().latencies_us);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let received = lat.len() as u64;
    if let (Some(pid), Some(cpu0), Some((mut child, _))) =
        (rtpengine_pid, rtpengine_cpu0, rtpengine.take())
    {
        cpu_ns = process_cpu_ns(pid) - cpu0;
        relayed = received;
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "backend={backend} engine={kind} relay_cpu={} calls={calls} seconds={seconds} sent={sent} relayed={relayed} \
         dropped={dropped} received={received} loss={} cpu_us_per_packet={:.2} latency_us_p50={} p99={}",
        pinning.as_ref().map_or("any".to_string(), |p| p.0.to_string()),
        sent - received,
        cpu_ns as f64 / 1000.0 / relayed.max(1) as f64,
        pct(0.5),
        pct(0.99),
    );
}
