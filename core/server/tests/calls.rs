//! Calls through the `sentiric` binary on real loopback sockets. A bridge:
//! Alice (127.0.0.2) calls `bob`, the dialplan bridges to Bob (127.0.0.3),
//! SIP flows through the B2BUA, RTP through the switch's own ports in both
//! directions, and BYE closes them. The echo test: Alice calls 600 on the
//! embedded demo dialplan and hears herself.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use sentiric_sip::{HeaderName, Message};

mod common;
use common::{share_at, wav_bytes, wav_samples, Switch};

fn start(config: &str) -> Switch {
    Switch::start(Some(config), &[])
}

fn bind(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn recv(sock: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = sock.recv_from(&mut buf).expect("a datagram within 3 s");
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

/// The next SIP message that is not a 100 Trying.
fn recv_sip(sock: &UdpSocket) -> (String, SocketAddr) {
    loop {
        let (m, from) = recv(sock);
        if !m.starts_with("SIP/2.0 100") {
            return (m, from);
        }
    }
}

fn header(msg: &str, name: HeaderName<'_>) -> String {
    Message::parse(msg.as_bytes())
        .unwrap()
        .headers()
        .value(name)
        .unwrap_or("")
        .to_string()
}

fn sdp(rtp: &UdpSocket) -> String {
    let a = rtp.local_addr().unwrap();
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = a.ip(),
        port = a.port()
    )
}

/// The connection address and port an SDP body names.
fn sdp_target(msg: &str) -> SocketAddr {
    let body = &msg[msg.find("\r\n\r\n").unwrap() + 4..];
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .trim();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

fn response(req: &str, status: &str, tag: &str, contact: SocketAddr, body: Option<&str>) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for line in req.lines().filter(|l| l.starts_with("Via:")) {
        r.push_str(line);
        r.push_str("\r\n");
    }
    r.push_str(&format!("From: {}\r\n", header(req, HeaderName::From)));
    let to = header(req, HeaderName::To);
    if to.contains(";tag=") {
        r.push_str(&format!("To: {to}\r\n"));
    } else {
        r.push_str(&format!("To: {to};tag={tag}\r\n"));
    }
    r.push_str(&format!("Call-ID: {}\r\n", header(req, HeaderName::CallId)));
    r.push_str(&format!("CSeq: {}\r\n", header(req, HeaderName::CSeq)));
    r.push_str(&format!("Contact: <sip:peer@{contact}>\r\n"));
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    r
}

fn rtp_packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xff, 160));
    p
}

#[test]
fn a_bridged_call_relays_sip_and_rtp_both_ways_io_uring() {
    bridged_call("io_uring", 21000, 0);
}

#[test]
fn a_bridged_call_relays_sip_and_rtp_both_ways_epoll() {
    bridged_call("epoll", 21200, 0);
}

/// Four workers: Bob answers at the switch's main address, so most of
/// the time a worker other than the call's gets his responses and passes
/// them on (each run a new switch, new sources: three runs leave it to
/// the owner every time one time in 64).
#[test]
fn with_several_workers_each_passes_on_what_belongs_to_another() {
    for run in 0..3 {
        bridged_call("auto", 27000 + run * 200, 4);
    }
}

#[test]
fn the_echo_test_sends_alices_audio_back_io_uring() {
    echo_call("io_uring", 21400);
}

#[test]
fn the_echo_test_sends_alices_audio_back_epoll() {
    echo_call("epoll", 21600);
}

/// Alice's echo call up: her SIP and RTP sockets, the switch's media
/// address, and her ACK (a template for her next in-dialog requests).
struct EchoCall {
    sip: UdpSocket,
    rtp: UdpSocket,
    media: SocketAddr,
    ack: String,
}

fn echo_up(sw: &Switch, call_id: &str) -> EchoCall {
    echo_up_with(sw, call_id, "")
}

/// [`echo_up`] with `attrs` (SDP attribute lines) added to the offer.
fn echo_up_with(sw: &Switch, call_id: &str, attrs: &str) -> EchoCall {
    let alice_sip = bind("127.0.0.2");
    let alice_rtp = bind("127.0.0.2");
    let alice_addr = alice_sip.local_addr().unwrap();
    let offer = format!("{}{attrs}", sdp(&alice_rtp));
    let invite = format!(
        "INVITE sip:600@{sw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {alice_addr};branch=z9hG4bK{call_id}1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=fa\r\n\
         To: <sip:600@{sw}>\r\n\
         Call-ID: {call_id}@127.0.0.2\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{alice_addr}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len(),
        sw = sw.addr
    );
    alice_sip.send_to(invite.as_bytes(), sw.addr).unwrap();
    let (ok, _) = recv_sip(&alice_sip);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let media = sdp_target(&ok);
    let ack = format!(
        "ACK sip:600@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {alice_addr};branch=z9hG4bK{call_id}2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.2>;tag=fa\r\nTo: {}\r\n\
         Call-ID: {call_id}@127.0.0.2\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        header(&ok, HeaderName::To),
        sw = sw.addr
    );
    alice_sip.send_to(ack.as_bytes(), sw.addr).unwrap();
    EchoCall {
        sip: alice_sip,
        rtp: alice_rtp,
        media,
        ack,
    }
}

impl EchoCall {
    /// Alice's BYE (CSeq 2).
    fn bye(&self) -> String {
        self.ack
            .replacen("ACK sip", "BYE sip", 1)
            .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
            .replace("2\r\nMax-Forwards", "3\r\nMax-Forwards")
    }
}

fn echo_call(backend: &str, min_port: u16) {
    // No dialplan rules: the demo dialplan, 600 is the echo test.
    let sw = start(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {}\nbackend = \"{backend}\"\n",
        min_port + 199
    ));
    let call = echo_up(&sw, "echo");
    let (alice_sip, alice_rtp, switch_media) = (&call.sip, &call.rtp, call.media);
    assert!((min_port..=min_port + 199).contains(&switch_media.port()));

    // Every packet comes back, payload intact, from the switch's port.
    let mut buf = [0u8; 2048];
    for seq in 0..20u16 {
        let mut p = rtp_packet(0xa11c_e000, seq);
        p[12] = seq as u8;
        alice_rtp.send_to(&p, switch_media).unwrap();
        let (n, from) = alice_rtp.recv_from(&mut buf).expect("echoed");
        assert_eq!(from, switch_media);
        assert_eq!(&buf[12..n], &p[12..]);
    }

    alice_sip.send_to(call.bye().as_bytes(), sw.addr).unwrap();
    let (bye_ok, _) = recv_sip(alice_sip);
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    assert!(sw
        .wait_line("call ended: 200, by the caller (A)", Duration::from_secs(5))
        .is_some());
    sw.assert_log_reads_well();
}

fn bridged_call(backend: &str, min_port: u16, workers: usize) {
    let max_port = min_port + 199;
    let bob_sip = bind("127.0.0.3");
    let bob_rtp = bind("127.0.0.3");
    let bob_addr = bob_sip.local_addr().unwrap();
    let sw = start(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {max_port}\nbackend = \"{backend}\"\n\
         [[dialplan.rule]]\nuser = \"bob\"\naction = \"bridge\"\ntargets = [\"sip:bob@{bob_addr}\"]\n"
    ));
    one_bridged_call(&sw, &bob_sip, &bob_rtp, (min_port, max_port), "bridge-test");
}

/// A port's socket is kept for its next call: with room for one call's
/// two ports and no rest in between, every call after the first reuses
/// the first one's sockets, and relays both ways all the same.
#[test]
fn rtp_sockets_serve_the_next_call_on_their_ports() {
    let bob_sip = bind("127.0.0.3");
    let bob_rtp = bind("127.0.0.3");
    let bob_addr = bob_sip.local_addr().unwrap();
    let sw = start(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = 28000\nmax_port = 28003\nquarantine_ms = 1\n\
         [[dialplan.rule]]\nuser = \"bob\"\naction = \"bridge\"\ntargets = [\"sip:bob@{bob_addr}\"]\n"
    ));
    for i in 0..3 {
        one_bridged_call(
            &sw,
            &bob_sip,
            &bob_rtp,
            (28000, 28003),
            &format!("reuse-{i}"),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alice calls Bob through `sw` (Bob's sockets given): the B leg, the
/// answer, RTP both ways through ports in `ports`, Alice's BYE, and
/// nothing relayed after it.
fn one_bridged_call(
    sw: &Switch,
    bob_sip: &UdpSocket,
    bob_rtp: &UdpSocket,
    (min_port, max_port): (u16, u16),
    call_id: &str,
) {
    let bob_addr = bob_sip.local_addr().unwrap();
    let alice_sip = bind("127.0.0.2");
    let alice_rtp = bind("127.0.0.2");
    let alice_addr = alice_sip.local_addr().unwrap();

    // Alice's INVITE.
    let offer = sdp(&alice_rtp);
    let invite = format!(
        "INVITE sip:bob@{sw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {alice_addr};branch=z9hG4bKalice1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=fa\r\n\
         To: <sip:bob@{sw}>\r\n\
         Call-ID: {call_id}@127.0.0.2\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{alice_addr}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len(),
        sw = sw.addr
    );
    alice_sip.send_to(invite.as_bytes(), sw.addr).unwrap();
    let (trying, _) = recv(&alice_sip);
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");

    // Bob gets the B leg: the switch's media port, not Alice's.
    let (b_invite, from) = recv_sip(bob_sip);
    assert!(
        b_invite.starts_with(&format!("INVITE sip:bob@{bob_addr} SIP/2.0")),
        "{b_invite}"
    );
    // From the switch's address, or (several workers) the address of the
    // worker that owns the call, which its Via names.
    assert_eq!(from.ip(), sw.addr.ip());
    assert!(
        from == sw.addr || header(&b_invite, HeaderName::Via).contains(&from.to_string()),
        "{b_invite}"
    );
    // Bob answers at the switch's main address all the same (as a peer
    // ignoring Via might): whichever worker gets it passes it on.
    let switch_for_bob = sdp_target(&b_invite);
    assert_eq!(switch_for_bob.ip().to_string(), "127.0.0.1");
    assert!((min_port..=max_port).contains(&switch_for_bob.port()));
    assert_ne!(
        header(&b_invite, HeaderName::CallId),
        format!("{call_id}@127.0.0.2")
    );

    bob_sip
        .send_to(
            response(&b_invite, "180 Ringing", "tb", bob_addr, None).as_bytes(),
            sw.addr,
        )
        .unwrap();
    let (ringing, _) = recv_sip(&alice_sip);
    assert!(ringing.starts_with("SIP/2.0 180"), "{ringing}");

    let answer = sdp(bob_rtp);
    bob_sip
        .send_to(
            response(&b_invite, "200 OK", "tb", bob_addr, Some(&answer)).as_bytes(),
            sw.addr,
        )
        .unwrap();
    let (ack, _) = recv_sip(bob_sip);
    assert!(ack.starts_with("ACK "), "{ack}");
    let (ok, _) = recv_sip(&alice_sip);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let switch_for_alice = sdp_target(&ok);
    assert_ne!(switch_for_alice, switch_for_bob);
    let a_to = header(&ok, HeaderName::To);
    let alice_ack = format!(
        "ACK sip:switch@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {alice_addr};branch=z9hG4bKalice2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.2>;tag=fa\r\nTo: {a_to}\r\n\
         Call-ID: {call_id}@127.0.0.2\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        sw = sw.addr
    );
    alice_sip.send_to(alice_ack.as_bytes(), sw.addr).unwrap();

    // RTP both ways through the switch, with the switch's SSRC.
    let mut buf = [0u8; 2048];
    for seq in 0..20u16 {
        alice_rtp
            .send_to(&rtp_packet(0xa11c_e000, seq), switch_for_alice)
            .unwrap();
        let (n, from) = bob_rtp.recv_from(&mut buf).expect("relayed to Bob");
        assert_eq!(from, switch_for_bob);
        assert_eq!(n, 172);
        assert_ne!(&buf[8..12], &0xa11c_e000u32.to_be_bytes());
        bob_rtp
            .send_to(&rtp_packet(0x0b0b_0000, seq), switch_for_bob)
            .unwrap();
        let (n, from) = alice_rtp.recv_from(&mut buf).expect("relayed to Alice");
        assert_eq!(from, switch_for_alice);
        assert_eq!(n, 172);
    }

    // Alice hangs up; Bob gets the BYE.
    let bye = alice_ack
        .replacen("ACK sip", "BYE sip", 1)
        .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
        .replace("z9hG4bKalice2", "z9hG4bKalice3");
    alice_sip.send_to(bye.as_bytes(), sw.addr).unwrap();
    let (bye_ok, _) = recv_sip(&alice_sip);
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    let (b_bye, _) = recv_sip(bob_sip);
    assert!(b_bye.starts_with("BYE "), "{b_bye}");
    bob_sip
        .send_to(
            response(&b_bye, "200 OK", "tb", bob_addr, None).as_bytes(),
            sw.addr,
        )
        .unwrap();

    // The media ports are closed: nothing more reaches Bob.
    std::thread::sleep(Duration::from_millis(100));
    alice_rtp
        .send_to(&rtp_packet(0xa11c_e000, 99), switch_for_alice)
        .unwrap();
    bob_rtp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(bob_rtp.recv_from(&mut buf).is_err(), "relayed after BYE");
}

#[test]
fn sigterm_drains_refusing_new_calls_until_the_last_one_ends() {
    let mut sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 21800\nmax_port = 21999\n",
    );
    let up = echo_up(&sw, "drain");
    let status = Command::new("kill")
        .args(["-TERM", &sw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(1500));

    // A new call is refused with Retry-After; the call up carries on.
    let late = echo_attempt(&sw, "late");
    assert!(late.starts_with("SIP/2.0 503"), "{late}");
    assert!(header(&late, HeaderName::RetryAfter).parse::<u32>().is_ok());
    let mut buf = [0u8; 2048];
    up.rtp.send_to(&rtp_packet(1, 1), up.media).unwrap();
    up.rtp
        .recv_from(&mut buf)
        .expect("still echoed while draining");

    // The last call ends: the switch exits by itself.
    up.sip.send_to(up.bye().as_bytes(), sw.addr).unwrap();
    let (ok, _) = recv_sip(&up.sip);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    for _ in 0..50 {
        if let Some(status) = sw.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("still running 5 s after its last call ended");
}

/// A trunk sends every call from one address and port, which the kernel
/// keeps on one worker: the calls are spread over the workers all the
/// same, here at once (`keep_calls_below = 0`: every new call to the
/// least busy worker, ties in turn).
#[test]
fn calls_from_one_source_are_spread_over_the_workers() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = 4\nkeep_calls_below = 0\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = 28200\nmax_port = 28399\n\
         [[dialplan.rule]]\nuser = \"busy\"\naction = \"reject\"\ncode = 486\n",
    );
    let trunk = bind("127.0.0.2");
    let a = trunk.local_addr().unwrap();
    for i in 0..12 {
        let invite = format!(
            "INVITE sip:busy@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKspread{i}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:trunk@127.0.0.2>;tag=t{i}\r\nTo: <sip:busy@{sw}>\r\n\
             Call-ID: spread-{i}@127.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            sw = sw.addr
        );
        trunk.send_to(invite.as_bytes(), sw.addr).unwrap();
        let (busy, from) = recv_sip(&trunk);
        assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
        // From the address the trunk sent to, whichever worker answered.
        assert_eq!(from, sw.addr);
    }
    std::thread::sleep(Duration::from_millis(200));
    let workers: std::collections::HashSet<String> = sw
        .lines("call ended: 486")
        .iter()
        .filter_map(|l| {
            l.split("worker=")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .collect();
    assert!(workers.len() >= 3, "{:?}", sw.log());
}

/// An INVITE to 600 from a fresh socket; the first final response.
fn echo_attempt(sw: &Switch, call_id: &str) -> String {
    let s = bind("127.0.0.2");
    let a = s.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:600@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.2>;tag=fl\r\nTo: <sip:600@{sw}>\r\n\
         Call-ID: {call_id}@127.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        sw = sw.addr
    );
    s.send_to(invite.as_bytes(), sw.addr).unwrap();
    recv_sip(&s).0
}

#[test]
fn sentiric_call_hears_itself_on_the_echo_test() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 26000\nmax_port = 26199\n",
    );
    let dir = std::env::temp_dir().join(format!("sentiric-call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (best, summary) = common::echoed_through(&sw, &dir, "600", &["--dtmf", "12#"]);
    for field in ["\"lost\":0", "\"dtmf_received\":\"12#\"", "\"bye\":200"] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // G.711 both ways keeps the correlation near 1.
    assert!(best > 0.95, "correlation {best:.3}");
}

#[test]
fn the_announcement_is_heard_then_the_switch_hangs_up() {
    announcement(None, 26200);
}

/// A caller that speaks only Opus hears the announcement too: the switch
/// codes the prompt for it.
#[test]
fn the_announcement_is_heard_in_opus() {
    announcement(Some("opus"), 28400);
}

fn announcement(codec: Option<&str>, min_port: u16) {
    let sw = start(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {}\n",
        min_port + 199
    ));
    let record = std::env::temp_dir().join(format!(
        "sentiric-call-700-{}-{}.wav",
        codec.unwrap_or("g711"),
        std::process::id()
    ));
    let mut args = vec![
        "call".to_string(),
        format!("sip:700@{}", sw.addr),
        "--record".into(),
        record.to_str().unwrap().into(),
        "--duration".into(),
        "10".into(),
    ];
    if let Some(c) = codec {
        args.extend(["--codec".to_string(), c.to_string()]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args(&args)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains("\"hung_up_by\":\"remote\""), "{summary}");
    assert!(summary.contains("\"lost\":0"), "{summary}");
    if let Some(c) = codec {
        assert!(summary.contains(&format!("\"codec\":\"{c}\"")), "{summary}");
    }
    let heard = wav_samples(&std::fs::read(&record).unwrap());
    let _ = std::fs::remove_file(&record);
    // The demo announcement: 2.3 s, a chime then a 440 Hz tone.
    let secs = heard.len() as f64 / 8000.0;
    assert!((2.0..3.0).contains(&secs), "{secs} s heard");
    // The share of the stretch's energy at 440 Hz.
    let share = share_at(&heard[12_000..18_000], 440.0);
    assert!(share > 0.9, "440 Hz share {share:.3}");
    assert!(sw
        .wait_line("call ended: 200, by the switch", Duration::from_secs(5))
        .is_some());
    sw.assert_log_reads_well();
}

#[test]
fn two_callers_in_a_conference_hear_each_other_and_not_themselves() {
    conference(0, 26400);
}

/// With four workers the callers mostly reach different ones: the room's
/// worker must get both.
#[test]
fn a_conference_room_lives_on_one_worker_of_several() {
    conference(4, 27600);
}

/// The low caller speaks Opus, the high one G.711: each hears the other
/// through the mixer, which decodes and codes each member's own codec.
#[test]
fn a_conference_mixes_an_opus_caller_with_a_g711_one() {
    conference_with(1, 28600, "opus");
}

fn conference(workers: usize, min_port: u16) {
    conference_with(workers, min_port, "pcmu");
}

/// Two callers in room 800, the first speaking `low_codec`.
fn conference_with(workers: usize, min_port: u16, low_codec: &str) {
    let sw = start(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {}\n",
        min_port + 199
    ));
    let dir = std::env::temp_dir();
    let tone = |f: f64| -> Vec<i16> {
        (0..32_000)
            .map(|i| (5000.0 * (std::f64::consts::TAU * f * i as f64 / 8000.0).sin()) as i16)
            .collect()
    };
    let mut callers = Vec::new();
    for (name, freq) in [("low", 440.0), ("high", 1000.0)] {
        let play = dir.join(format!(
            "sentiric-conf-{name}-{workers}-{low_codec}-{}.wav",
            std::process::id()
        ));
        let record = dir.join(format!(
            "sentiric-conf-{name}-{workers}-{low_codec}-heard-{}.wav",
            std::process::id()
        ));
        let codec = if name == "low" { low_codec } else { "pcmu" };
        std::fs::write(&play, wav_bytes(&tone(freq))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args([
                "call",
                &format!("sip:800@{}", sw.addr),
                "--play",
                play.to_str().unwrap(),
                "--record",
                record.to_str().unwrap(),
                "--duration",
                "3",
                "--codec",
                codec,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        callers.push((child, play, record, freq));
    }
    let mut heard = Vec::new();
    for (child, play, record, freq) in callers {
        let out = child.wait_with_output().unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{summary}");
        heard.push((wav_samples(&std::fs::read(&record).unwrap()), freq));
        let _ = std::fs::remove_file(&play);
        let _ = std::fs::remove_file(&record);
    }
    // One second in the middle, when both were in the room.
    for (i, (samples, own)) in heard.iter().enumerate() {
        let other = heard[1 - i].1;
        let window = &samples[8000..16_000];
        let (mine, theirs) = (share_at(window, *own), share_at(window, other));
        assert!(
            theirs > 0.8,
            "caller at {own} Hz hears {other} Hz at {theirs:.3}"
        );
        assert!(mine < 0.01, "caller at {own} Hz hears itself at {mine:.3}");
    }
    assert!(sw.wait_lines("joined conference", 2, Duration::from_secs(5)));
    assert!(sw.wait_lines("call ended", 2, Duration::from_secs(5)));
    sw.assert_log_reads_well();
}

/// Jitter is measured on each leg's own RTP clock: an Opus caller's
/// timestamps run at 48 kHz (measured at 8 kHz they read ~100 ms of
/// jitter on a quiet loopback), G.711's at 8 kHz.
#[test]
fn jitter_is_measured_on_each_codecs_clock() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 17000\nmax_port = 17199\n",
    );
    let dir = std::env::temp_dir().join(format!("sentiric-jitter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for codec in ["opus", "pcmu"] {
        let (best, summary) = common::echoed_through(&sw, &dir, "600", &["--codec", codec]);
        assert!(
            summary.contains(&format!("\"codec\":\"{}\"", codec.to_uppercase()))
                || summary.contains(&format!("\"codec\":\"{codec}\"")),
            "{summary}"
        );
        assert!(best > 0.5, "{codec}: correlation {best:.3}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rows = common::cdrs(&sw, 2, Duration::from_secs(5));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        let jitter = row["caller_jitter_us"]
            .as_u64()
            .unwrap_or_else(|| panic!("{row}"));
        // The caller paces its packets every 20 ms on loopback.
        assert!(jitter < 20_000, "caller jitter {jitter} µs: {row}");
        assert!(
            row["caller_packets_received"].as_u64().unwrap_or(0) > 0,
            "{row}"
        );
    }
    let (_, metrics) = common::http_get(sw.http(), "/metrics", None);
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
    };
    // Each leg's jitter at its call's end: the echo's one leg, two calls.
    let (sum, count) = (
        value("sentiric_rtp_jitter_seconds_sum"),
        value("sentiric_rtp_jitter_seconds_count"),
    );
    assert!(count >= 2.0, "{count} jitter samples");
    assert!(sum / count < 0.02, "mean jitter {} s", sum / count);
}

/// `sentiric call` refuses what it cannot do before it dials: a `sips:`
/// or TLS URI (never sent over UDP instead) and a recording it cannot
/// write; nothing reaches the switch.
#[test]
fn sentiric_call_refuses_before_dialling() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 17200\nmax_port = 17399\n",
    );
    let cases: [(Vec<String>, &str); 3] = [
        (vec![format!("sips:600@{}", sw.addr)], "TLS"),
        (
            vec![format!("sip:600@{};transport=tls", sw.addr)],
            "transport=tls",
        ),
        (
            vec![
                format!("sip:600@{}", sw.addr),
                "--record".into(),
                "/nonexistent-dir/heard.wav".into(),
            ],
            "--record /nonexistent-dir/heard.wav",
        ),
    ];
    for (args, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .arg("call")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: a summary printed");
    }
    // Nothing reached the switch: it counted no INVITE at all.
    std::thread::sleep(Duration::from_millis(200));
    let (_, metrics) = common::http_get(sw.http(), "/metrics", None);
    assert!(
        !metrics.contains(r#"sentiric_sip_requests_total{method="INVITE"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("sentiric_build_info"), "{metrics}");
}

/// Without `--play` the caller sends a test tone, so the README's echo
/// test records something; its progress goes to standard error.
#[test]
fn sentiric_call_without_play_sends_a_tone() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 17400\nmax_port = 17599\n",
    );
    let record =
        std::env::temp_dir().join(format!("sentiric-call-tone-{}.wav", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:600@{}", sw.addr),
            "--duration",
            "2",
            "--record",
        ])
        .arg(&record)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary} {progress}");
    assert!(progress.contains("calling sip:600@"), "{progress}");
    assert!(progress.contains("200 OK after"), "{progress}");
    let heard = wav_samples(&std::fs::read(&record).unwrap());
    let _ = std::fs::remove_file(&record);
    assert!(heard.len() > 8000, "{} samples heard", heard.len());
    // Somewhere in the second heard, a stretch of the 440 Hz tone.
    let best = heard
        .chunks(800)
        .map(|c| share_at(c, 440.0))
        .fold(0.0f64, f64::max);
    assert!(best > 0.9, "440 Hz share at best {best:.3}");
}

/// Every call's CallEnded (and so its CDR) counts what its caller really
/// sent and was sent: for the echo test (what came back is what it sent,
/// and there is no callee), the announcement and a conference room (the
/// switch's own streams), not only for bridged calls.
#[test]
fn local_apps_count_the_callers_rtp() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 17600\nmax_port = 17799\n",
    );
    // What each caller says it sent, call by call.
    let mut sent_by_caller = Vec::new();
    for user in ["600", "700", "800"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args([
                "call",
                &format!("sip:{user}@{}", sw.addr),
                "--duration",
                "1.5",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{user}: {out:?}");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        sent_by_caller.push(summary["media"]["sent"].as_u64().unwrap());
    }
    let rows = common::cdrs(&sw, 3, Duration::from_secs(5));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ended: Vec<serde_json::Value> = sw
        .events()
        .into_iter()
        .filter_map(|e| e["body"].get("CallEnded").cloned())
        .collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    // 1.5 s of 20 ms packets each way (75); what the switch received
    // from each caller is every packet the caller sent, to the packet.
    for (e, sent_by_caller) in ended.iter().zip(&sent_by_caller) {
        let caller = &e["caller_rtp"];
        let received = caller["packets_received"].as_u64().unwrap_or(0);
        let sent = caller["packets_sent"].as_u64().unwrap_or(0);
        assert_eq!(received, *sent_by_caller, "{e}");
        assert!((65..=80).contains(&sent), "sent {sent}: {e}");
        assert!(e["callee_rtp"].is_null(), "a callee for a local app: {e}");
    }
    for row in &rows {
        let received = row["caller_packets_received"].as_u64().unwrap_or(0);
        assert!(received >= 65, "{row}");
        assert_eq!(row["callee_packets_received"].as_u64(), Some(0), "{row}");
    }
}

/// A caller gone without BYE (its RTP stops): the switch hangs the call
/// up after `[rtp] timeout_s`, the cause `media_timeout` in its CDR. A
/// call on hold (its offer `inactive`: it says it sends nothing) is given
/// `silent_timeout_s` instead.
#[test]
fn a_call_whose_media_stops_is_hung_up() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 17800\nmax_port = 17999\n\
         timeout_s = 2\nsilent_timeout_s = 5\n",
    );
    let talking = echo_up(&sw, "gone");
    let t0 = std::time::Instant::now();
    for seq in 0..10u16 {
        talking
            .rtp
            .send_to(&rtp_packet(0x90e0, seq), talking.media)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = echo_up_with(&sw, "held", "a=inactive\r\n");
    // The talking call's caller stopped: BYE within its 2 s (checked once
    // a second), the held one stays up past that.
    talking
        .sip
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let (bye, from) = recv_sip(&talking.sip);
    let after = t0.elapsed();
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(5),
        "{after:?}"
    );
    let ok = response(&bye, "200 OK", "", talking.sip.local_addr().unwrap(), None);
    talking.sip.send_to(ok.as_bytes(), from).unwrap();
    held.sip
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let (bye, from) = recv_sip(&held.sip);
    let after = t0.elapsed();
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(
        after >= Duration::from_secs(5),
        "held call hung up after {after:?}"
    );
    let ok = response(&bye, "200 OK", "", held.sip.local_addr().unwrap(), None);
    held.sip.send_to(ok.as_bytes(), from).unwrap();
    let rows = common::cdrs(&sw, 2, Duration::from_secs(5));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["hangup_cause"], "media_timeout", "{row}");
        assert_eq!(row["hangup_side"], "switch", "{row}");
    }
    assert_eq!(
        sw.lines("no RTP from the call's legs").len(),
        2,
        "{:?}",
        sw.log()
    );
}

/// A call with no RTP to tell whether its caller is there (on hold) has
/// its legs asked with an in-dialog OPTIONS every `[sip] probe_s`; a 481
/// (the dialog unknown there: a phone that rebooted) ends the call, the
/// cause `leg_gone` in its CDR.
#[test]
fn a_held_call_whose_caller_is_gone_is_found_by_options() {
    let sw = start(
        "[sip]\nlisten = \"127.0.0.1:0\"\nprobe_s = 1\n\
         [rtp]\nip = \"127.0.0.1\"\nmin_port = 18200\nmax_port = 18399\n",
    );
    let held = echo_up_with(&sw, "probed", "a=inactive\r\n");
    held.sip
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Asked once and answered: the call stays.
    let (options, from) = recv_sip(&held.sip);
    assert!(options.starts_with("OPTIONS sip:alice@"), "{options}");
    assert!(
        header(&options, HeaderName::To).contains("tag=fa"),
        "{options}"
    );
    let me = held.sip.local_addr().unwrap();
    held.sip
        .send_to(response(&options, "200 OK", "", me, None).as_bytes(), from)
        .unwrap();
    // Asked again: now the phone knows no such dialog.
    let (options, from) = recv_sip(&held.sip);
    assert!(options.starts_with("OPTIONS "), "{options}");
    held.sip
        .send_to(
            response(
                &options,
                "481 Call/Transaction Does Not Exist",
                "",
                me,
                None,
            )
            .as_bytes(),
            from,
        )
        .unwrap();
    let (bye, from) = recv_sip(&held.sip);
    assert!(bye.starts_with("BYE "), "{bye}");
    held.sip
        .send_to(response(&bye, "200 OK", "", me, None).as_bytes(), from)
        .unwrap();
    let rows = common::cdrs(&sw, 1, Duration::from_secs(5));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["hangup_cause"], "leg_gone", "{}", rows[0]);
    assert_eq!(sw.lines("leg is gone").len(), 1, "{:?}", sw.log());
}
