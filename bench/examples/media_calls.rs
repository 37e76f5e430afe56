//! Calls with media at scale through the switch: N bridged calls set up
//! over SIP, then RTP both ways on every call at once, then BYE.
//!
//! ```text
//! cargo build --release --bin sentiric -p sentiric-server
//! cargo run --release -p sentiric-bench --example media_calls -- <calls> <cps> <seconds> [pcma|agent]
//! ```
//!
//! A caller side (SIP on 127.0.0.72:5091, one RTP socket per call on
//! 127.0.0.72) INVITEs `sentiric run` at `cps` calls per second; the
//! switch bridges each call to a callee side (SIP on 127.0.0.71:5090, one
//! RTP socket per call on 127.0.0.71) that answers at once. Every SDP names
//! the phone's own socket, and the switch anchors media on its own ports.
//! Once every call is up, every phone sends a 20 ms PCMU packet every
//! 20 ms to the address the switch's SDP gave it, for `seconds`; what
//! reaches the phones on the other side is counted, with its one-way
//! delay through the switch. Then every call is hung up by the caller.
//! With `pcma`, the callee answers in PCMA only and every call is
//! transcoded. With `agent`, every call is answered by the switch for an
//! agent (the example echo agent, loaded in process: its own work is
//! 0.4 µs a frame, so the figure is the switch's side of an agent call):
//! the caller's speech-like audio decoded, resampled to 16 kHz and through
//! voice-activity detection, the agent's play resampled back and encoded;
//! no callee. `cargo build --release -p sentiric-plugin-echo-agent` first.
//!
//! Prints calls answered, packets sent and received each way (the loss),
//! delay p50/p99, the BYEs answered, and the switch's CPU while media
//! flowed: per relayed packet and as a share of one core. The run binds
//! only loopback addresses.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_io::{Backend, Engine, Outbox, PacketHandler, Token};
use sentiric_rtp::packet::RtpHeader;
use sentiric_sip::{HeaderName, Message};

mod common;
use common::{cpu_ns, tree};

const UAS: &str = "127.0.0.71:5090";
const UAC: &str = "127.0.0.72:5091";

/// The media address an SDP body names.
fn sdp_media(body: &[u8]) -> Option<SocketAddr> {
    let sdp = sentiric_sdp::SessionDescription::parse(body).ok()?;
    let ip = sdp.connection_of(0)?.ip()?;
    Some(SocketAddr::new(ip, sdp.media.first()?.port))
}

fn sdp(addr: SocketAddr, pt: u8) -> String {
    let name = if pt == 0 { "PCMU" } else { "PCMA" };
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

fn with_body(head: String, body: &str) -> Vec<u8> {
    format!(
        "{head}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The callee side: answers every INVITE with 200 and a phone's SDP,
/// every BYE with 200. Records the switch's address for each phone.
fn callee(
    sip: UdpSocket,
    phones: Vec<SocketAddr>,
    pt: u8,
    targets: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    stop: Arc<AtomicBool>,
) {
    sip.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut answers: HashMap<String, Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sip.recv_from(&mut buf) else {
            continue;
        };
        let Ok(msg) = Message::parse(&buf[..n]) else {
            continue;
        };
        let Some(req) = msg.as_request() else {
            continue;
        };
        let h = |name| req.headers.value(name).unwrap_or("").to_string();
        let head = |status: &str, tag: &str| {
            let mut t = format!("SIP/2.0 {status}\r\n");
            for v in req.headers.all(HeaderName::Via) {
                t.push_str(&format!("Via: {}\r\n", v.value));
            }
            t.push_str(&format!(
                "From: {}\r\nTo: {}{tag}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:callee@{UAS}>\r\n",
                h(HeaderName::From),
                h(HeaderName::To),
                h(HeaderName::CallId),
                h(HeaderName::CSeq)
            ));
            t
        };
        match req.method.as_str() {
            "INVITE" => {
                let call_id = h(HeaderName::CallId);
                let next = answers.len();
                let answer = answers.entry(call_id).or_insert_with(|| {
                    let phone = phones[next % phones.len()];
                    if let Some(t) = targets.lock().unwrap().get_mut(next) {
                        *t = sdp_media(req.body);
                    }
                    with_body(head("200 OK", ";tag=callee"), &sdp(phone, pt))
                });
                let _ = sip.send_to(answer, from);
            }
            "BYE" => {
                let _ = sip.send_to(
                    format!("{}Content-Length: 0\r\n\r\n", head("200 OK", "")).as_bytes(),
                    from,
                );
            }
            _ => {}
        }
    }
}

/// Both sides' phones: counts what arrives, and its delay.
struct Phones {
    epoch: Instant,
    /// Tokens below this are caller phones.
    callers: usize,
    received: [u64; 2],
    /// Payloads arrive as sent, with the time they were sent (not when
    /// transcoded).
    stamped: bool,
    delays_us: Vec<u32>,
}

impl PacketHandler for Phones {
    fn on_packet(
        &mut self,
        token: Token,
        _: SocketAddr,
        data: &mut [u8],
        now: Instant,
        _: &mut Outbox,
    ) {
        self.received[usize::from(token.0 >= self.callers)] += 1;
        if self.stamped && data.len() >= 20 {
            let sent = u64::from_be_bytes(data[12..20].try_into().unwrap_or([0; 8]));
            let at = now.duration_since(self.epoch).as_nanos() as u64;
            self.delays_us.push((at.saturating_sub(sent) / 1000) as u32);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let cps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mode = args.next();
    let pcma = mode.as_deref() == Some("pcma");
    let agent = mode.as_deref() == Some("agent");
    let _ = sentiric_io::limits::raise_open_files();
    let dir = std::env::temp_dir().join(format!("sentiric-media-calls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let route = if agent {
        // The echo agent's library alone in the plugin directory.
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let lib = "libsentiric_plugin_echo_agent.so";
        std::fs::copy(Path::new("target/release").join(lib), plugins.join(lib))
            .expect("cargo build --release -p sentiric-plugin-echo-agent");
        format!(
            "[[dialplan.rule]]\nuser = \"media\"\naction = \"agent\"\n\
             agent = \"sentiric-plugin-echo-agent\"\n\
             [plugins]\ndir = \"{}\"\nagent_max_calls = 100000\n",
            plugins.display()
        )
    } else {
        format!(
            "[[dialplan.rule]]\nuser = \"media\"\naction = \"bridge\"\n\
             targets = [\"sip:media@{UAS}\"]\n"
        )
    };
    let (switch, addr) = common::start_sentiric(
        &dir,
        &format!("[rtp]\nip = \"127.0.0.1\"\nmin_port = 10000\nmax_port = 19999\n{route}"),
    );
    let opts = UdpOptions {
        dscp: None,
        ..UdpOptions::default()
    };
    let bind = |ip: &str| bind_udp(format!("{ip}:0").parse().unwrap(), &opts).unwrap();
    let a_phones: Vec<UdpSocket> = (0..calls).map(|_| bind("127.0.0.72")).collect();
    let callees = if agent { 0 } else { calls };
    let b_phones: Vec<UdpSocket> = (0..callees).map(|_| bind("127.0.0.71")).collect();
    let b_targets = Arc::new(Mutex::new(vec![None; calls]));
    let stop = Arc::new(AtomicBool::new(false));
    let callee_thread = {
        let sip = UdpSocket::bind(UAS).unwrap();
        let phones = b_phones.iter().map(|s| s.local_addr().unwrap()).collect();
        let (targets, stop) = (Arc::clone(&b_targets), Arc::clone(&stop));
        std::thread::spawn(move || callee(sip, phones, if pcma { 8 } else { 0 }, targets, stop))
    };

    // Set-up: INVITE at `cps`, ACK each 200.
    let uac = UdpSocket::bind(UAC).unwrap();
    uac.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut a_targets: Vec<Option<SocketAddr>> = vec![None; calls];
    // Per call: To header with tag, remote target.
    let mut dialogs: Vec<Option<(String, String)>> = vec![None; calls];
    let mut buf = vec![0u8; 65_535];
    let invite = |i: usize| {
        let phone = a_phones[i].local_addr().unwrap();
        with_body(
            format!(
                "INVITE sip:media@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch=z9hG4bK-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:caller@{UAC}>;tag=c{i}\r\nTo: <sip:media@{addr}>\r\n\
                 Call-ID: media-{i}@{UAC}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{UAC}>\r\n"
            ),
            &sdp(phone, 0),
        )
    };
    let started = Instant::now();
    let mut sent_invites = 0usize;
    let mut answered = 0usize;
    let give_up = started + Duration::from_secs_f64(calls as f64 / f64::from(cps.max(1)) + 10.0);
    let mut resent: HashMap<usize, Instant> = HashMap::new();
    while answered < calls && Instant::now() < give_up {
        let due = (started.elapsed().as_secs_f64() * f64::from(cps)) as usize;
        while sent_invites < due.min(calls) {
            let _ = uac.send_to(&invite(sent_invites), addr);
            resent.insert(sent_invites, Instant::now());
            sent_invites += 1;
        }
        // An INVITE unanswered for a second is sent again.
        for (i, at) in resent.iter_mut() {
            if dialogs[*i].is_none() && at.elapsed() > Duration::from_secs(1) {
                let _ = uac.send_to(&invite(*i), addr);
                *at = Instant::now();
            }
        }
        while let Ok((n, _)) = uac.recv_from(&mut buf) {
            let Ok(msg) = Message::parse(&buf[..n]) else {
                continue;
            };
            let Some(resp) = msg.as_response() else {
                continue;
            };
            let Some(i) = resp
                .headers
                .value(HeaderName::CallId)
                .and_then(|c| {
                    c.strip_prefix("media-")?
                        .split('@')
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .filter(|i| *i < calls)
            else {
                continue;
            };
            if resp.status != 200 || !resp.cseq().method.as_str().eq("INVITE") {
                continue;
            }
            let to = resp.headers.value(HeaderName::To).unwrap_or("").to_string();
            let target = resp
                .headers
                .value(HeaderName::Contact)
                .and_then(|c| Some(c.split('<').nth(1)?.split('>').next()?.to_string()))
                .unwrap_or_else(|| format!("sip:{addr}"));
            let ack = format!(
                "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch=z9hG4bK-ack-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:caller@{UAC}>;tag=c{i}\r\nTo: {to}\r\n\
                 Call-ID: media-{i}@{UAC}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = uac.send_to(ack.as_bytes(), addr);
            if dialogs[i].is_none() {
                a_targets[i] = sdp_media(resp.body);
                dialogs[i] = Some((to, target));
                answered += 1;
            }
        }
    }
    let setup_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));

    // Media: every phone to the switch's address for it.
    let b_targets = b_targets.lock().unwrap().clone();
    let (mut phones_engine, _) = Engine::new(Backend::Epoll).expect("engine");
    let mut senders: Vec<(UdpSocket, SocketAddr)> = Vec::new();
    for (socks, targets) in [(&a_phones, &a_targets), (&b_phones, &b_targets)] {
        for (s, t) in socks.iter().zip(targets.iter()) {
            if let Some(t) = t {
                senders.push((s.try_clone().unwrap(), *t));
            }
        }
    }
    for s in a_phones.into_iter().chain(b_phones) {
        phones_engine.add(s).unwrap();
    }
    let epoch = Instant::now();
    let media_stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = Arc::clone(&media_stop);
        std::thread::spawn(move || {
            let mut p = Phones {
                epoch,
                callers: calls,
                received: [0; 2],
                stamped: !pcma && !agent,
                delays_us: Vec::new(),
            };
            while !stop.load(Ordering::Relaxed) {
                phones_engine
                    .poll(Some(Duration::from_millis(5)), &mut p)
                    .unwrap();
            }
            for _ in 0..40 {
                phones_engine
                    .poll(Some(Duration::from_millis(5)), &mut p)
                    .unwrap();
            }
            p
        })
    };
    let pids = tree(switch.0.id());
    let cpu0 = cpu_ns(&pids);
    let media_start = Instant::now();
    // Sent by caller phones [0] and callee phones [1].
    let mut sent = [0u64; 2];
    let mut pkt = Vec::with_capacity(172);
    let groups = senders.len().div_ceil(16) as u32;
    let callers_sending = a_targets.iter().flatten().count();
    // An agent's caller says something speech-like: a vowel (a 120 Hz
    // pulse train through two formants) with a syllable-rate contour, a
    // second of it as 50 frames, μ-law.
    let voice: Vec<[u8; 160]> = (0..50)
        .map(|f| {
            let mut frame = [0u8; 160];
            for (n, b) in frame.iter_mut().enumerate() {
                let t = (f * 160 + n) as f64 / 8000.0;
                let pulse = (t * 120.0).fract();
                let v = (-pulse * 30.0).exp()
                    * ((std::f64::consts::TAU * 700.0 * t).sin()
                        + 0.5 * (std::f64::consts::TAU * 1200.0 * t).sin());
                let contour = 0.6 + 0.4 * (std::f64::consts::TAU * 4.0 * t).sin();
                *b = sentiric_media::g711::ulaw_encode((v * contour * 9000.0) as i16);
            }
            frame
        })
        .collect();
    for tick in 0..seconds * 50 {
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
            let mut payload = [0xd5u8; 160];
            if agent {
                payload = voice[tick as usize % voice.len()];
            } else {
                payload[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
            }
            RtpHeader {
                marker: tick == 0,
                payload_type: if i >= callers_sending && pcma { 8 } else { 0 },
                sequence: tick as u16,
                timestamp: (tick * 160) as u32,
                ssrc: 0x5e00_0000 + i as u32,
            }
            .write(&payload, &mut pkt);
            if sock.send_to(&pkt, to).is_ok() {
                sent[usize::from(i >= callers_sending)] += 1;
            }
        }
    }
    let media_s = media_start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let cpu = cpu_ns(&pids) - cpu0;
    media_stop.store(true, Ordering::Relaxed);
    let mut phones = receiver.join().unwrap();

    // Hang up: BYE from every caller at `cps`, 200s counted; a BYE
    // unanswered for a second is retransmitted (same transaction).
    let mut byes_ok = 0usize;
    let mut pending: HashMap<usize, Instant> = HashMap::new();
    let byes: Vec<usize> = (0..calls).filter(|i| dialogs[*i].is_some()).collect();
    let bye = |i: usize| {
        let (to, target) = dialogs[i].as_ref().unwrap();
        format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch=z9hG4bK-bye-{i}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@{UAC}>;tag=c{i}\r\nTo: {to}\r\n\
             Call-ID: media-{i}@{UAC}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let hangup = Instant::now();
    let mut next = 0;
    while (next < byes.len() || !pending.is_empty()) && hangup.elapsed() < Duration::from_secs(30) {
        let due = (hangup.elapsed().as_secs_f64() * f64::from(cps)) as usize;
        while next < due.min(byes.len()) {
            let _ = uac.send_to(bye(byes[next]).as_bytes(), addr);
            pending.insert(byes[next], Instant::now());
            next += 1;
        }
        for (i, at) in pending.iter_mut() {
            if at.elapsed() > Duration::from_secs(1) {
                let _ = uac.send_to(bye(*i).as_bytes(), addr);
                *at = Instant::now();
            }
        }
        while let Ok((n, _)) = uac.recv_from(&mut buf) {
            let Ok(msg) = Message::parse(&buf[..n]) else {
                continue;
            };
            let Some(resp) = msg.as_response() else {
                continue;
            };
            let i = resp.headers.value(HeaderName::CallId).and_then(|c| {
                c.strip_prefix("media-")?
                    .split('@')
                    .next()?
                    .parse::<usize>()
                    .ok()
            });
            if resp.status == 200 && resp.cseq().method.as_str() == "BYE" {
                if let Some(i) = i {
                    if pending.remove(&i).is_some() {
                        byes_ok += 1;
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    callee_thread.join().unwrap();
    drop(switch);
    let _ = std::fs::remove_dir_all(&dir);

    phones.delays_us.sort_unstable();
    // Transcoded payloads carry no send time: no delay figure.
    let pct = |p: f64| {
        let d = &phones.delays_us;
        d.get(((d.len().max(1) - 1) as f64 * p) as usize)
            .map_or("n/a".to_string(), u32::to_string)
    };
    // Caller phones receive what callee phones sent, and the other way.
    let (a_to_b, b_to_a) = ((sent[0], phones.received[1]), (sent[1], phones.received[0]));
    let relayed = phones.received[0] + phones.received[1];
    if agent {
        // Per agent call and second of its media: the switch's CPU.
        let per_call_s = cpu as f64 / 1000.0 / answered.max(1) as f64 / media_s;
        println!(
            "agent calls={calls} answered={answered} seconds={media_s:.1} caller_sent={} \
             agent_frames_received={} switch_cpu_us_per_call_second={per_call_s:.1} \
             switch_core_share={:.1}% calls_per_core={:.0} byes_ok={byes_ok}",
            a_to_b.0,
            phones.received[0],
            cpu as f64 / 1e9 / media_s * 100.0,
            1e6 / per_call_s.max(1e-9),
        );
        return;
    }
    println!(
        "calls={calls} cps={cps} answered={answered} setup_s={setup_s:.1} codec={} seconds={media_s:.1} \
         a_to_b_sent={} received={} b_to_a_sent={} received={} loss={} delay_us_p50={} p99={} \
         switch_cpu_us_per_packet={:.2} switch_core_share={:.1}% byes_ok={byes_ok}",
        if pcma { "PCMU<->PCMA" } else { "PCMU" },
        a_to_b.0,
        a_to_b.1,
        b_to_a.0,
        b_to_a.1,
        (a_to_b.0 + b_to_a.0).saturating_sub(relayed),
        pct(0.5),
        pct(0.99),
        cpu as f64 / 1000.0 / relayed.max(1) as f64,
        cpu as f64 / 1e9 / media_s * 100.0,
    );
}
