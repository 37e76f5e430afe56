//! The B2BUA on a simulated network: SIP text in from scripted peers, what
//! the switch sends checked header by header. The media plane is a
//! recorder at its trait boundary; the real one (port pool and relay) is
//! exercised by the server's end-to-end tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sentiric_engine::b2bua::{
    owner_of, worker_prefix, B2bua, B2buaConfig, CallRef, Event, Leg, MediaEndpoint, MediaError,
    MediaPlane,
};
use sentiric_engine::codecs::{AudioCodec, LegFormat, Transcoding};
use sentiric_engine::dialplan::{Action, Bridge, Fork};
use sentiric_sdp::SessionDescription;
use sentiric_sip::{HeaderName, Message};

/// Records what the engine asked of the data plane.
#[derive(Default)]
struct Recorder {
    /// (leg, the peer's media address and port from its SDP)
    offers: Vec<(Leg, String)>,
    released: Vec<CallRef>,
    /// Peer addresses of echo calls.
    echoes: Vec<String>,
    /// Prompts played.
    prompts: Vec<String>,
    exhausted: bool,
    /// Whether it says it transcodes, and the plans it was told.
    transcoding: bool,
    plans: Vec<(CallRef, Option<Transcoding>)>,
}

impl MediaPlane for Recorder {
    fn offer(
        &mut self,
        _call: CallRef,
        from: Leg,
        sdp: &SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError> {
        if self.exhausted {
            return Err(MediaError::Exhausted);
        }
        let addr = sdp
            .connection_of(0)
            .and_then(|c| c.ip())
            .map(|ip| format!("{ip}:{}", sdp.media[0].port))
            .unwrap_or_default();
        self.offers.push((from, addr));
        // The switch's port facing the other leg.
        let port = match from {
            Leg::A => 40000,
            Leg::B => 40002,
        };
        Ok(MediaEndpoint {
            ip: "127.0.0.1".parse().unwrap(),
            ports: vec![Some(port)],
        })
    }

    fn echo(
        &mut self,
        _call: CallRef,
        sdp: &SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError> {
        if self.exhausted {
            return Err(MediaError::Exhausted);
        }
        let addr = sdp
            .connection_of(0)
            .and_then(|c| c.ip())
            .map(|ip| format!("{ip}:{}", sdp.media[0].port))
            .unwrap_or_default();
        self.echoes.push(addr);
        Ok(MediaEndpoint {
            ip: "127.0.0.1".parse().unwrap(),
            ports: vec![Some(40004)],
        })
    }

    fn play(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        prompt: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        self.prompts.push(prompt.to_string());
        self.echo(call, sdp)
    }

    fn conference(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        room: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        self.prompts.push(format!("room:{room}"));
        self.echo(call, sdp)
    }

    fn agent(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        agent: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        self.prompts.push(format!("agent:{agent}"));
        self.echo(call, sdp)
    }

    fn release(&mut self, call: CallRef) {
        self.released.push(call);
    }

    fn transcodes(&self) -> bool {
        self.transcoding
    }

    fn transcode(&mut self, call: CallRef, plan: Option<Transcoding>) {
        self.plans.push((call, plan));
    }
}

const SWITCH: &str = "127.0.0.1:5060";
const ALICE: &str = "127.0.0.2:5060";
const BOB: &str = "127.0.0.3:5070";
const CAROL: &str = "127.0.0.4:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
}

struct Net {
    b2b: B2bua<Recorder>,
    now: Instant,
}

/// One datagram the switch sent.
struct Sent {
    to: SocketAddr,
    text: String,
    /// Sent from the engine's own B-leg socket.
    from_b: bool,
    /// For a TCP connection.
    stream: bool,
}

impl Sent {
    fn msg(&self) -> Message<'_> {
        Message::parse(self.text.as_bytes()).unwrap()
    }
    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap()
    }
    fn header(&self, name: HeaderName<'_>) -> String {
        self.msg().headers().value(name).unwrap_or("").to_string()
    }
    fn body(&self) -> String {
        String::from_utf8_lossy(self.msg().body()).into_owned()
    }
}

impl Net {
    fn new() -> Net {
        Net::with(B2buaConfig::new(addr(SWITCH), 7))
    }

    fn with(cfg: B2buaConfig) -> Net {
        Net {
            b2b: B2bua::new(cfg, Recorder::default()),
            now: Instant::now(),
        }
    }

    fn send(&mut self, from: &str, text: &str) -> Vec<Sent> {
        self.b2b.receive(self.now, text.as_bytes(), addr(from));
        self.sent()
    }

    fn sent(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Some(o) = self.b2b.poll_transmit() {
            out.push(Sent {
                to: o.to,
                text: String::from_utf8(o.bytes.to_vec()).unwrap(),
                from_b: o.from_b,
                stream: o.stream,
            });
        }
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.b2b.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.b2b.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.b2b.handle_timeout(self.now);
            out.extend(self.sent());
        }
        self.now = end;
        out
    }

    /// Alice calls `user`; returns the call the switch routes.
    fn alice_calls(&mut self, user: &str, max_forwards: u8) -> (CallRef, Vec<Sent>) {
        self.alice_calls_with(user, max_forwards, "")
    }

    /// [`Net::alice_calls`] with `extra` header lines in the INVITE.
    fn alice_calls_with(
        &mut self,
        user: &str,
        max_forwards: u8,
        extra: &str,
    ) -> (CallRef, Vec<Sent>) {
        let body = sdp("127.0.0.2", 10000);
        let invite = format!(
            "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKa1\r\n\
             Max-Forwards: {max_forwards}\r\n\
             From: \"Alice\" <sip:alice@127.0.0.2>;tag=fa\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: call-a@127.0.0.2\r\n\
             CSeq: 10 INVITE\r\n\
             Contact: <sip:alice@{ALICE}>\r\n\
             {extra}\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = self.send(ALICE, &invite);
        let call = self
            .events()
            .into_iter()
            .find_map(|e| match e {
                Event::Route { call, .. } => Some(call),
                _ => None,
            })
            .unwrap_or(CallRef(0));
        (call, sent)
    }

    fn bridge(&mut self, call: CallRef, targets: &[&str], ring: Duration) -> Vec<Sent> {
        self.b2b.route(
            self.now,
            call,
            Action::Bridge(Bridge {
                targets: targets.iter().map(|t| t.to_string()).collect(),
                fork: Fork::Serial,
                ring_timeout: ring,
                headers: Vec::new(),
                codecs: Vec::new(),
            }),
        );
        self.sent()
    }

    /// A response from a peer to the request `req` the switch sent it.
    fn answer(
        &mut self,
        from: &str,
        req: &Sent,
        status: &str,
        to_tag: &str,
        body: Option<String>,
    ) -> Vec<Sent> {
        let mut text = format!("SIP/2.0 {status}\r\n");
        for via in req.msg().headers().all(HeaderName::Via) {
            text.push_str(&format!("Via: {}\r\n", via.value));
        }
        text.push_str(&format!("From: {}\r\n", req.header(HeaderName::From)));
        text.push_str(&format!(
            "To: {};tag={to_tag}\r\n",
            req.header(HeaderName::To)
        ));
        text.push_str(&format!("Call-ID: {}\r\n", req.header(HeaderName::CallId)));
        text.push_str(&format!("CSeq: {}\r\n", req.header(HeaderName::CSeq)));
        text.push_str(&format!("Contact: <sip:peer@{from}>\r\n"));
        match body {
            Some(b) => text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.send(from, &text)
    }
}

fn only<'s>(sent: &'s [Sent], to: &str, first_line: &str) -> &'s Sent {
    let found: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.to == addr(to) && s.first_line().starts_with(first_line))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {first_line:?} to {to} in:\n{}",
        sent.iter()
            .map(|s| format!("-> {}\n{}", s.to, s.text))
            .collect::<String>()
    );
    found[0]
}

fn a_request(method: &str, a_tag: &str, cseq: u32, branch: &str) -> String {
    format!(
        "{method} sip:alice-side@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.2>;tag=fa\r\n\
         To: <sip:600@127.0.0.1>;tag={a_tag}\r\n\
         Call-ID: call-a@127.0.0.2\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn tag_of(to_header: &str) -> String {
    to_header.split(";tag=").nth(1).unwrap().to_string()
}

#[test]
fn a_bridged_call_from_invite_to_bye() {
    let mut net = Net::new();
    let (call, sent) = net.alice_calls("600", 70);
    only(&sent, ALICE, "SIP/2.0 100");

    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = only(&sent, BOB, "INVITE sip:bob@127.0.0.3:5070 SIP/2.0");
    // A dialog of its own, one hop less, the caller's identity kept.
    assert_ne!(invite.header(HeaderName::CallId), "call-a@127.0.0.2");
    assert_eq!(invite.header(HeaderName::MaxForwards), "69");
    let from = invite.header(HeaderName::From);
    assert!(
        from.starts_with("\"Alice\" <sip:alice@127.0.0.2>;tag="),
        "{from}"
    );
    assert!(!from.contains("tag=fa"), "{from}");
    assert!(invite.header(HeaderName::Via).contains(SWITCH));
    // Media anchored: B is offered the switch's port, not Alice's.
    let body = invite.body();
    assert!(
        body.contains("c=IN IP4 127.0.0.1") && body.contains("m=audio 40000 "),
        "{body}"
    );
    assert!(!body.contains("127.0.0.2"), "{body}");
    assert_eq!(
        net.b2b.media().offers,
        [(Leg::A, "127.0.0.2:10000".to_string())]
    );

    // Ringing is relayed with Alice's own dialog identifiers.
    let sent = net.answer(BOB, invite, "180 Ringing", "tb", None);
    let ringing = only(&sent, ALICE, "SIP/2.0 180 Ringing");
    assert_eq!(ringing.header(HeaderName::CallId), "call-a@127.0.0.2");
    let a_tag = tag_of(&ringing.header(HeaderName::To));
    assert_ne!(a_tag, "tb");

    // The answer: ACK on B, 200 to A with the anchored SDP.
    let sent = net.answer(BOB, invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    let ack = only(&sent, BOB, "ACK sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(ack.header(HeaderName::CSeq), "1 ACK");
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(tag_of(&ok.header(HeaderName::To)), a_tag);
    let body = ok.body();
    assert!(
        body.contains("m=audio 40002 ") && !body.contains("127.0.0.3"),
        "{body}"
    );
    assert_eq!(
        net.b2b.media().offers[1],
        (Leg::B, "127.0.0.3:20000".to_string())
    );

    let sent = net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    assert!(sent.is_empty());
    assert_eq!(
        net.events(),
        [
            Event::Ringing {
                call,
                status: 180,
                early_media: false
            },
            Event::Answered { call }
        ]
    );
    // Both legs settled on the first format of the SDP that answered them.
    assert_eq!(net.b2b.codecs(call), (Some("PCMU/8000"), Some("PCMU/8000")));

    // Alice hangs up: 200 to her, BYE to Bob in Bob's dialog.
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "a3"));
    only(&sent, ALICE, "SIP/2.0 200");
    let bye = only(&sent, BOB, "BYE sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(
        bye.header(HeaderName::CallId),
        invite.header(HeaderName::CallId)
    );
    assert_eq!(bye.header(HeaderName::CSeq), "2 BYE");
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::A)
        }]
    );
    assert_eq!(net.b2b.media().released, [call]);
    assert!(net.answer(BOB, bye, "200 OK", "tb", None).is_empty());
    assert_eq!(net.b2b.calls(), 0);
}

#[test]
fn bye_from_the_callee() {
    let mut net = Net::new();
    let (call, invite) = up_call(&mut net);

    let bye = format!(
        "BYE sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKb9\r\nMax-Forwards: 70\r\n\
         From: {};tag=tb\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.header(HeaderName::To),
        invite.header(HeaderName::From),
        invite.header(HeaderName::CallId),
    );
    let sent = net.send(BOB, &bye);
    only(&sent, BOB, "SIP/2.0 200");
    let to_alice = only(&sent, ALICE, "BYE sip:alice@127.0.0.2:5060 SIP/2.0");
    assert_eq!(to_alice.header(HeaderName::CallId), "call-a@127.0.0.2");
    assert!(to_alice.header(HeaderName::To).contains("tag=fa"));
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::B)
        }]
    );
}

#[test]
fn cancel_before_the_answer() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    net.answer(BOB, &invite, "180 Ringing", "tb", None);

    let cancel = "CANCEL sip:600@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKa1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.2>;tag=fa\r\n\
         To: <sip:600@127.0.0.1>\r\n\
         Call-ID: call-a@127.0.0.2\r\n\
         CSeq: 10 CANCEL\r\n\
         Content-Length: 0\r\n\r\n";
    let sent = net.send(ALICE, cancel);
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    assert_eq!(ok.header(HeaderName::CSeq), "10 CANCEL");
    let terminated = only(&sent, ALICE, "SIP/2.0 487");
    assert_eq!(terminated.header(HeaderName::CSeq), "10 INVITE");
    let cancel_b = only(&sent, BOB, "CANCEL sip:bob@127.0.0.3:5070 SIP/2.0");
    // §9.1: the CANCEL matches the INVITE's branch, Call-ID, tags, CSeq number.
    assert_eq!(
        cancel_b.header(HeaderName::Via),
        invite.header(HeaderName::Via)
    );
    assert_eq!(cancel_b.header(HeaderName::CSeq), "1 CANCEL");
    assert_eq!(
        net.events(),
        [
            Event::Ringing {
                call,
                status: 180,
                early_media: false
            },
            Event::Ended {
                call,
                status: 487,
                by: None
            }
        ]
    );
    // Bob's 487: the transaction ACKs it; nothing reaches Alice.
    let sent = net.answer(BOB, &invite, "487 Request Terminated", "tb", None);
    only(&sent, BOB, "ACK");
    assert!(sent.iter().all(|s| s.to != addr(ALICE)));
}

#[test]
fn serial_failover_on_5xx_then_the_last_failure_is_relayed() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(
        call,
        &["sip:bob@127.0.0.3:5070", "sip:carol@127.0.0.4"],
        Duration::from_secs(30),
    );
    let first = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &first, "503 Service Unavailable", "tb", None);
    only(&sent, BOB, "ACK");
    let second = only(&sent, CAROL, "INVITE sip:carol@127.0.0.4 SIP/2.0");
    assert_ne!(
        second.header(HeaderName::CallId),
        first.header(HeaderName::CallId)
    );
    assert!(
        sent.iter().all(|s| s.to != addr(ALICE)),
        "nothing to Alice yet"
    );
    let second = Sent {
        to: addr(CAROL),
        text: second.text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(CAROL, &second, "486 Busy Here", "tc", None);
    let busy = only(&sent, ALICE, "SIP/2.0 486 Busy Here");
    assert_eq!(busy.header(HeaderName::CSeq), "10 INVITE");
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 486,
            by: None
        }]
    );
}

#[test]
fn no_answer_in_time_moves_on_then_gives_480() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(
        call,
        &["sip:bob@127.0.0.3:5070", "sip:carol@127.0.0.4"],
        Duration::from_secs(5),
    );
    let first = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    net.answer(BOB, &first, "180 Ringing", "tb", None);
    let sent = net.advance(Duration::from_secs(5));
    only(&sent, BOB, "CANCEL");
    let second = Sent {
        to: addr(CAROL),
        text: only(&sent, CAROL, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    net.answer(CAROL, &second, "180 Ringing", "tc", None);
    let sent = net.advance(Duration::from_secs(5));
    only(&sent, CAROL, "CANCEL");
    only(&sent, ALICE, "SIP/2.0 480");
}

#[test]
fn reject_unknown_dialogs_options_and_hop_limit() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("404", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Reject {
            code: 404,
            reason: "Not Found".into(),
        },
    );
    only(&net.sent(), ALICE, "SIP/2.0 404 Not Found");

    let sent = net.send(ALICE, &a_request("BYE", "nosuch", 1, "x1"));
    only(&sent, ALICE, "SIP/2.0 481");

    let options = format!(
        "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=fo\r\nTo: <sip:{SWITCH}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let sent = net.send(ALICE, &options);
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    assert!(ok.header(HeaderName::Allow).contains("INVITE"));

    let mut net = Net::new();
    let (_, sent) = net.alice_calls("600", 0);
    only(&sent, ALICE, "SIP/2.0 483");
}

#[test]
fn port_exhaustion_is_503_with_retry_after() {
    let mut net = Net::new();
    net.b2b = B2bua::new(
        B2buaConfig::new(addr(SWITCH), 7),
        Recorder {
            exhausted: true,
            ..Recorder::default()
        },
    );
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let busy = only(&sent, ALICE, "SIP/2.0 503");
    assert_eq!(busy.header(HeaderName::RetryAfter), "5");
    assert!(sent.iter().all(|s| s.to != addr(BOB)));
}

#[test]
fn a_2xx_is_retransmitted_until_acked_and_the_call_ends_without_ack() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    // T1 = 500 ms: 200 again at 0.5, 1.5, 3.5 s …
    let sent = net.advance(Duration::from_millis(1600));
    let again = sent
        .iter()
        .filter(|s| s.to == addr(ALICE) && s.first_line().starts_with("SIP/2.0 200"))
        .count();
    assert_eq!(again, 2);
    // 64·T1 without an ACK: both legs hung up (each BYE retransmitted
    // over UDP until answered).
    let sent = net.advance(Duration::from_secs(32));
    for peer in [ALICE, BOB] {
        assert!(
            sent.iter()
                .any(|s| s.to == addr(peer) && s.first_line().starts_with("BYE ")),
            "no BYE to {peer}"
        );
    }
    assert!(net.events().contains(&Event::Ended {
        call,
        status: 408,
        by: None
    }));
}

#[test]
fn every_rfc4475_message_leaves_the_switch_answering() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sip/tests/data/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "{} torture messages", files.len());
    let mut net = Net::new();
    // A call in progress while the torture runs.
    let (call, _) = net.alice_calls("600", 70);
    net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        net.b2b.receive(net.now, &bytes, addr("127.0.0.9:5060"));
        while let Some(ev) = net.b2b.poll_event() {
            // A torture INVITE that parses becomes a call; reject it.
            if let Event::Route { call, .. } = ev {
                net.b2b.route(
                    net.now,
                    call,
                    Action::Reject {
                        code: 404,
                        reason: "Not Found".into(),
                    },
                );
            }
        }
        net.sent();
        net.advance(Duration::from_millis(100));
    }
    let options = format!(
        "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKo2\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=fo\r\nTo: <sip:{SWITCH}>\r\nCall-ID: o2\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let sent = net.send(ALICE, &options);
    only(&sent, ALICE, "SIP/2.0 200");
}

#[test]
fn the_echo_test_is_answered_by_the_switch() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    net.b2b.route(net.now, call, Action::Echo);
    let sent = net.sent();
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(sent.len(), 1, "nothing to anyone else");
    let body = ok.body();
    // The answer keeps Alice's codecs in her order, on the switch's port.
    assert!(body.contains("c=IN IP4 127.0.0.1"), "{body}");
    assert!(body.contains("m=audio 40004 RTP/AVP 0 8 101"), "{body}");
    assert_eq!(net.b2b.media().echoes, ["127.0.0.2:10000"]);
    let a_tag = tag_of(&ok.header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "e2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "e3"));
    only(&sent, ALICE, "SIP/2.0 200");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::A)
        }]
    );
    assert_eq!(net.b2b.media().released, [call]);
}

/// A call up between Alice and Bob; returns it with Bob's INVITE and
/// Alice's tag.
fn call_up(net: &mut Net) -> (CallRef, Sent, String) {
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    let a_tag = tag_of(&only(&sent, ALICE, "SIP/2.0 200").header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    (call, invite, a_tag)
}

#[test]
fn re_invites_are_relayed_both_ways_with_media_re_anchored() {
    let mut net = Net::new();
    let (_call, b_invite, a_tag) = call_up(&mut net);

    // Alice holds: a=sendonly, a new media port.
    let hold = sdp("127.0.0.2", 10002).replace("a=rtpmap:101", "a=sendonly\r\na=rtpmap:101");
    let reinvite = a_request("INVITE", &a_tag, 11, "h1").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Contact: <sip:alice@{ALICE}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
            hold.len()
        ),
    );
    let sent = net.send(ALICE, &reinvite);
    let to_bob = only(&sent, BOB, "INVITE sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(
        to_bob.header(HeaderName::CallId),
        b_invite.header(HeaderName::CallId)
    );
    assert_eq!(to_bob.header(HeaderName::CSeq), "2 INVITE");
    let body = to_bob.body();
    assert!(
        body.contains("a=sendonly") && body.contains("m=audio 40000 "),
        "{body}"
    );
    assert_eq!(
        net.b2b.media().offers.last().unwrap(),
        &(Leg::A, "127.0.0.2:10002".to_string())
    );
    // A second re-INVITE while this one is pending: 491.
    let sent = net.send(
        ALICE,
        &reinvite
            .replace("z9hG4bKh1", "z9hG4bKh2")
            .replace("CSeq: 11", "CSeq: 12"),
    );
    only(&sent, ALICE, "SIP/2.0 491");

    let to_bob = Sent {
        to: addr(BOB),
        text: to_bob.text.clone(),
        from_b: false,
        stream: false,
    };
    let answer = sdp("127.0.0.3", 20000).replace("a=rtpmap:101", "a=recvonly\r\na=rtpmap:101");
    let sent = net.answer(BOB, &to_bob, "200 OK", "tb", Some(answer));
    let ack = only(&sent, BOB, "ACK sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(ack.header(HeaderName::CSeq), "2 ACK");
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(ok.header(HeaderName::CSeq), "11 INVITE");
    assert!(ok.body().contains("a=recvonly") && ok.body().contains("m=audio 40002 "));

    // Bob resumes: his re-INVITE reaches Alice on her dialog.
    let resume = sdp("127.0.0.3", 20000);
    let bob_reinvite = format!(
        "INVITE sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKr1\r\nMax-Forwards: 70\r\n\
         From: {};tag=tb\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 INVITE\r\nContact: <sip:peer@{BOB}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{resume}",
        b_invite.header(HeaderName::To),
        b_invite.header(HeaderName::From),
        b_invite.header(HeaderName::CallId),
        resume.len()
    );
    let sent = net.send(BOB, &bob_reinvite);
    let to_alice = only(&sent, ALICE, "INVITE sip:alice@127.0.0.2:5060 SIP/2.0");
    assert_eq!(to_alice.header(HeaderName::CallId), "call-a@127.0.0.2");
    assert!(to_alice.header(HeaderName::From).contains(&a_tag));
    assert!(to_alice.body().contains("m=audio 40002 "));
    let to_alice = Sent {
        to: addr(ALICE),
        text: to_alice.text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(
        ALICE,
        &to_alice,
        "200 OK",
        "fa",
        Some(sdp("127.0.0.2", 10000)),
    );
    only(&sent, ALICE, "ACK");
    let ok = only(&sent, BOB, "SIP/2.0 200 OK");
    assert_eq!(ok.header(HeaderName::CSeq), "7 INVITE");
    assert!(ok.body().contains("m=audio 40000 "));
}

/// The `n`th INVITE from Alice (its own Call-ID and branch).
fn nth_invite(n: u32) -> String {
    let body = sdp("127.0.0.2", 10000);
    format!(
        "INVITE sip:600@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKn{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=f{n}\r\n\
         To: <sip:600@127.0.0.1>\r\n\
         Call-ID: n{n}@127.0.0.2\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{ALICE}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn final_status(sent: &[Sent]) -> Option<(String, String)> {
    sent.iter()
        .find(|s| {
            s.first_line().starts_with("SIP/2.0 ") && !s.first_line().starts_with("SIP/2.0 100")
        })
        .map(|s| (s.first_line().to_string(), s.header(HeaderName::RetryAfter)))
}

#[test]
fn overload_limits_answer_503_with_retry_after_and_spare_calls_up() {
    let mut cfg = B2buaConfig::new(addr(SWITCH), 7);
    cfg.max_calls = Some(1);
    let mut net = Net::new();
    net.b2b = B2bua::new(cfg, Recorder::default());
    call_up(&mut net);
    let sent = net.send(ALICE, &nth_invite(1));
    assert_eq!(
        final_status(&sent),
        Some(("SIP/2.0 503 Service Unavailable".into(), "5".into()))
    );
    assert!(net.events().is_empty(), "no new call");
    assert_eq!(net.b2b.calls(), 1);

    // Two calls per second: the third at the same instant waits a second.
    let mut cfg = B2buaConfig::new(addr(SWITCH), 7);
    cfg.max_cps = Some(2);
    let mut net = Net::new();
    net.b2b = B2bua::new(cfg, Recorder::default());
    for n in 1..=2 {
        let sent = net.send(ALICE, &nth_invite(n));
        assert_eq!(final_status(&sent), None, "call {n} admitted");
    }
    let sent = net.send(ALICE, &nth_invite(3));
    assert_eq!(
        final_status(&sent),
        Some(("SIP/2.0 503 Service Unavailable".into(), "1".into()))
    );
    net.now += Duration::from_secs(1);
    let sent = net.send(ALICE, &nth_invite(4));
    assert_eq!(final_status(&sent), None, "admitted a second later");
}

#[test]
fn new_calls_held_back_get_503_until_lifted_and_calls_up_carry_on() {
    let mut net = Net::new();
    let (_, _, a_tag) = call_up(&mut net);
    net.b2b.hold_new_calls(true);
    let sent = net.send(ALICE, &nth_invite(1));
    assert_eq!(
        final_status(&sent),
        Some(("SIP/2.0 503 Service Unavailable".into(), "5".into()))
    );
    assert!(net.events().is_empty(), "no new call");
    let sent = net.send(ALICE, &a_request("INVITE", &a_tag, 11, "h1"));
    only(&sent, BOB, "INVITE");
    net.b2b.hold_new_calls(false);
    let sent = net.send(ALICE, &nth_invite(2));
    assert_eq!(final_status(&sent), None);
    assert!(matches!(net.events()[..], [Event::Route { .. }]));
}

#[test]
fn a_draining_switch_refuses_new_calls_and_keeps_calls_up_until_told() {
    let mut net = Net::new();
    let (call, _, a_tag) = call_up(&mut net);
    net.b2b.drain();
    let sent = net.send(ALICE, &nth_invite(1));
    assert_eq!(
        final_status(&sent),
        Some(("SIP/2.0 503 Service Unavailable".into(), "30".into()))
    );
    assert_eq!(net.b2b.calls(), 1, "the call up carries on");
    // In-dialog requests still work: a re-INVITE goes through.
    let reinvite = a_request("INVITE", &a_tag, 11, "d1");
    let sent = net.send(ALICE, &reinvite);
    only(&sent, BOB, "INVITE");
    // The drain timeout: both legs hung up.
    net.b2b.hang_up_all(net.now);
    let sent = net.sent();
    only(&sent, ALICE, "BYE");
    only(&sent, BOB, "BYE");
    assert!(net.events().contains(&Event::Ended {
        call,
        status: 200,
        by: None
    }));
    assert_eq!(net.b2b.calls(), 0);
}

#[test]
fn a_call_longer_than_the_limit_is_hung_up_on_both_sides() {
    let mut cfg = B2buaConfig::new(addr(SWITCH), 7);
    cfg.max_call_duration = Some(Duration::from_secs(60));
    let mut net = Net::new();
    net.b2b = B2bua::new(cfg, Recorder::default());
    let (call, _, _) = call_up(&mut net);
    assert!(net
        .advance(Duration::from_secs(59))
        .iter()
        .all(|s| !s.first_line().starts_with("BYE")));
    let sent = net.advance(Duration::from_secs(2));
    assert!(sent
        .iter()
        .any(|s| s.to == addr(ALICE) && s.first_line().starts_with("BYE ")));
    assert!(sent
        .iter()
        .any(|s| s.to == addr(BOB) && s.first_line().starts_with("BYE ")));
    assert!(net.events().contains(&Event::Ended {
        call,
        status: 200,
        by: None
    }));
}

#[test]
fn a_prompt_is_answered_in_g711_and_hung_up_when_over() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("700", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Play {
            prompt: "builtin:announcement".into(),
            then: sentiric_engine::dialplan::AfterPlay::Hangup,
        },
    );
    let sent = net.sent();
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    // G.711 only (Alice offered 0, 8 and 101): what the prompt is coded in.
    assert!(
        ok.body().contains("m=audio 40004 RTP/AVP 0 8 101"),
        "{}",
        ok.body()
    );
    assert_eq!(net.b2b.media().prompts, ["builtin:announcement"]);
    let a_tag = tag_of(&ok.header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "p2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    // The prompt is over: the switch hangs up.
    net.b2b.hang_up(net.now, call);
    let sent = net.sent();
    let bye = only(&sent, ALICE, "BYE sip:alice@127.0.0.2:5060 SIP/2.0");
    assert_eq!(bye.header(HeaderName::CallId), "call-a@127.0.0.2");
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: None
        }]
    );
}

#[test]
fn a_conference_call_is_answered_by_the_switch_in_g711() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("800", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Conference {
            room: "demo".into(),
        },
    );
    let sent = net.sent();
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert!(
        ok.body().contains("m=audio 40004 RTP/AVP 0 8 101"),
        "{}",
        ok.body()
    );
    assert_eq!(net.b2b.media().prompts, ["room:demo"]);
}

#[test]
fn update_is_relayed_without_an_ack() {
    let mut net = Net::new();
    let (_call, _, a_tag) = call_up(&mut net);
    let offer = sdp("127.0.0.2", 10010);
    let update = a_request("UPDATE", &a_tag, 11, "u1").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Contact: <sip:alice@{ALICE}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
            offer.len()
        ),
    );
    let sent = net.send(ALICE, &update);
    let to_bob = only(&sent, BOB, "UPDATE sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(to_bob.header(HeaderName::CSeq), "2 UPDATE");
    assert!(to_bob.body().contains("m=audio 40000 "));
    let to_bob = Sent {
        to: addr(BOB),
        text: to_bob.text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &to_bob, "200 OK", "tb", Some(sdp("127.0.0.3", 20010)));
    assert!(
        sent.iter().all(|s| !s.first_line().starts_with("ACK")),
        "no ACK for UPDATE"
    );
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(ok.header(HeaderName::CSeq), "11 UPDATE");
    assert!(ok.body().contains("m=audio 40002 "));
    assert_eq!(
        net.b2b.media().offers.last().unwrap(),
        &(Leg::B, "127.0.0.3:20010".to_string())
    );
}

#[test]
fn session_timers_when_the_caller_asks() {
    // Too short an interval: 422 with the switch's minimum.
    let mut net = Net::new();
    let (_, sent) = net.alice_calls_with("600", 70, "Supported: timer\r\nSession-Expires: 30\r\n");
    let r = only(&sent, ALICE, "SIP/2.0 422");
    assert_eq!(r.header(HeaderName::MinSe), "90");

    let mut net = Net::new();
    let (call, _) = net.alice_calls_with("600", 70, "Supported: timer\r\nSession-Expires: 90\r\n");
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    assert_eq!(ok.header(HeaderName::SessionExpires), "90;refresher=uac");
    assert_eq!(ok.header(HeaderName::Require), "timer");
    let a_tag = tag_of(&ok.header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "s2"));
    let no_bye = |sent: &[Sent]| sent.iter().all(|s| !s.first_line().starts_with("BYE"));
    assert!(no_bye(&net.advance(Duration::from_secs(50))));
    // Alice refreshes at 50 s: relayed, and the deadline moves to 110 s.
    let sent = net.send(ALICE, &a_request("INVITE", &a_tag, 11, "s3"));
    let refresh = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &refresh, "200 OK", "tb", None);
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    assert_eq!(ok.header(HeaderName::SessionExpires), "90;refresher=uac");
    assert!(no_bye(&net.advance(Duration::from_secs(58))));
    // No refresh after that: both legs hung up before 140 s.
    let sent = net.advance(Duration::from_secs(4));
    assert!(sent
        .iter()
        .any(|s| s.to == addr(ALICE) && s.first_line().starts_with("BYE ")));
    assert!(sent
        .iter()
        .any(|s| s.to == addr(BOB) && s.first_line().starts_with("BYE ")));
    assert!(net.events().contains(&Event::Ended {
        call,
        status: 408,
        by: None
    }));
}

#[test]
fn parallel_forking_first_answer_wins_the_others_are_cancelled() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Bridge(Bridge {
            targets: vec![
                "sip:bob@127.0.0.3:5070".into(),
                "sip:carol@127.0.0.4".into(),
            ],
            fork: Fork::Parallel,
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
            codecs: Vec::new(),
        }),
    );
    let sent = net.sent();
    let to_bob = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let to_carol = Sent {
        to: addr(CAROL),
        text: only(&sent, CAROL, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    // Both ring; Alice hears ringing.
    only(
        &net.answer(BOB, &to_bob, "180 Ringing", "tb", None),
        ALICE,
        "SIP/2.0 180",
    );
    net.answer(CAROL, &to_carol, "180 Ringing", "tc", None);
    // Carol answers first: she is the call, Bob is cancelled.
    let sent = net.answer(
        CAROL,
        &to_carol,
        "200 OK",
        "tc",
        Some(sdp("127.0.0.4", 30000)),
    );
    only(&sent, CAROL, "ACK");
    only(&sent, BOB, "CANCEL");
    only(&sent, ALICE, "SIP/2.0 200 OK");
    // Bob answers anyway, across the CANCEL: ACKed and hung up.
    let sent = net.answer(BOB, &to_bob, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    only(&sent, BOB, "ACK");
    only(&sent, BOB, "BYE");
    assert!(
        sent.iter().all(|s| s.to != addr(ALICE)),
        "nothing more to Alice"
    );
    assert_eq!(net.b2b.calls(), 1);
}

#[test]
fn parallel_forking_all_fail_the_best_failure_wins() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Bridge(Bridge {
            targets: vec![
                "sip:bob@127.0.0.3:5070".into(),
                "sip:carol@127.0.0.4".into(),
            ],
            fork: Fork::Parallel,
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
            codecs: Vec::new(),
        }),
    );
    let sent = net.sent();
    let to_bob = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let to_carol = Sent {
        to: addr(CAROL),
        text: only(&sent, CAROL, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &to_bob, "503 Service Unavailable", "tb", None);
    assert!(
        sent.iter().all(|s| s.to != addr(ALICE)),
        "Carol still rings"
    );
    let sent = net.answer(CAROL, &to_carol, "486 Busy Here", "tc", None);
    // 4xx is a lower class than 5xx: Alice gets the 486.
    only(&sent, ALICE, "SIP/2.0 486 Busy Here");
    assert!(net
        .events()
        .iter()
        .any(|e| matches!(e, Event::Ended { status: 486, .. })));
}

/// The `m=` line and what follows it in an SDP body.
fn media_section(body: &str) -> String {
    body.split("\r\n")
        .skip_while(|l| !l.starts_with("m="))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn legs_with_no_codec_in_common_are_transcoded_until_a_re_invite_shares_one() {
    let mut net = Net::new();
    net.b2b.media_mut().transcoding = true;
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    // Bob is offered Alice's codecs first, then Opus, which she lacks.
    assert_eq!(
        media_section(&invite.body()),
        "m=audio 40000 RTP/AVP 0 8 101 96|a=rtpmap:101 telephone-event/8000|\
         a=rtpmap:96 opus/48000/2|a=rtcp:40001"
    );
    // Bob speaks Opus only.
    let opus = sdp("127.0.0.3", 20000).replace(
        "RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000",
        "RTP/AVP 96\r\na=rtpmap:96 opus/48000/2",
    );
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(opus));
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    // Alice's answer names her first codec, and her events: Bob has
    // none, the switch makes tones of them.
    assert_eq!(
        media_section(&ok.body()),
        "m=audio 40002 RTP/AVP 0 101|a=rtpmap:0 PCMU/8000|\
         a=rtpmap:101 telephone-event/8000|a=rtcp:40003"
    );
    let transcoded = Transcoding {
        a: LegFormat {
            codec: AudioCodec::Pcmu,
            pt: 0,
            telephone_event: Some(101),
        },
        b: LegFormat {
            codec: AudioCodec::Opus,
            pt: 96,
            telephone_event: None,
        },
    };
    assert_eq!(net.b2b.media().plans, [(call, Some(transcoded))]);
    let a_tag = tag_of(&ok.header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));

    // Bob changes codec to PCMA: Alice is offered PCMA (and the rest),
    // takes it, and the call is relayed untouched from then on.
    let pcma = sdp("127.0.0.3", 20000).replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    let bob_reinvite = format!(
        "INVITE sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKr1\r\nMax-Forwards: 70\r\n\
         From: {};tag=tb\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 INVITE\r\nContact: <sip:peer@{BOB}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{pcma}",
        invite.header(HeaderName::To),
        invite.header(HeaderName::From),
        invite.header(HeaderName::CallId),
        pcma.len()
    );
    let sent = net.send(BOB, &bob_reinvite);
    let to_alice = only(&sent, ALICE, "INVITE");
    assert_eq!(
        media_section(&to_alice.body()),
        "m=audio 40002 RTP/AVP 8 101 0 96|a=rtpmap:101 telephone-event/8000|\
         a=rtpmap:0 PCMU/8000|a=rtpmap:96 opus/48000/2|a=rtcp:40003"
    );
    let to_alice = Sent {
        to: addr(ALICE),
        text: to_alice.text.clone(),
        from_b: false,
        stream: false,
    };
    let answer = sdp("127.0.0.2", 10000).replace("RTP/AVP 0 8 101", "RTP/AVP 8 0 101");
    let sent = net.answer(ALICE, &to_alice, "200 OK", "fa", Some(answer));
    let ok = only(&sent, BOB, "SIP/2.0 200 OK");
    // What Alice answered, less the PCMU Bob never offered.
    assert_eq!(
        media_section(&ok.body()),
        "m=audio 40000 RTP/AVP 8 101|a=rtpmap:101 telephone-event/8000|a=rtcp:40001"
    );
    assert_eq!(net.b2b.media().plans.last(), Some(&(call, None)));
}

/// Alice calls and the dialplan plays a prompt in early media, then goes
/// on with `next`; returns the call and the 183's SDP.
fn announce_then(net: &mut Net, next: Action) -> (CallRef, String, String) {
    let (call, _) = net.alice_calls("900", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Play {
            prompt: "builtin:announcement".into(),
            then: sentiric_engine::dialplan::AfterPlay::Continue(Box::new(next)),
        },
    );
    let sent = net.sent();
    // Early media: 183 with the switch's SDP, Alice not answered.
    let progress = only(&sent, ALICE, "SIP/2.0 183 Session Progress");
    let sdp = progress.body();
    assert!(sdp.contains("m=audio 40004 RTP/AVP 0 8 101"), "{sdp}");
    assert_eq!(net.b2b.media().prompts, ["builtin:announcement"]);
    assert!(net
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Answered { .. })));
    (call, sdp, tag_of(&progress.header(HeaderName::To)))
}

#[test]
fn a_prompt_in_early_media_then_a_bridge_keeps_the_callers_media() {
    let mut net = Net::new();
    net.b2b.media_mut().transcoding = true;
    let (call, early_sdp, a_tag) = announce_then(
        &mut net,
        Action::Bridge(Bridge {
            targets: vec!["sip:bob@127.0.0.3:5070".into()],
            fork: Fork::Serial,
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
            codecs: Vec::new(),
        }),
    );
    // The prompt is over: Bob is called with Alice's offer.
    net.b2b.prompt_over(net.now, call);
    let sent = net.sent();
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE sip:bob@").text.clone(),
        from_b: false,
        stream: false,
    };
    assert!(invite.body().contains("m=audio 40000 RTP/AVP 0 8 101"));
    let sent = net.answer(BOB, &invite, "180 Ringing", "tb", None);
    let ringing = only(&sent, ALICE, "SIP/2.0 180");
    assert_eq!(tag_of(&ringing.header(HeaderName::To)), a_tag);
    assert!(ringing.body().is_empty());
    // Bob answers in PCMA only: Alice keeps the 183's SDP (PCMU), and the
    // call is transcoded between the two.
    let pcma = sdp("127.0.0.3", 20000).replace("RTP/AVP 0 8 101", "RTP/AVP 8");
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(pcma));
    only(&sent, BOB, "ACK");
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(ok.body(), early_sdp);
    assert_eq!(tag_of(&ok.header(HeaderName::To)), a_tag);
    assert_eq!(
        net.b2b.media().plans,
        [(
            call,
            Some(Transcoding {
                a: LegFormat {
                    codec: AudioCodec::Pcmu,
                    pt: 0,
                    telephone_event: Some(101),
                },
                b: LegFormat {
                    codec: AudioCodec::Pcma,
                    pt: 8,
                    telephone_event: None,
                },
            })
        )]
    );
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    assert_eq!(
        net.events(),
        [
            Event::Ringing {
                call,
                status: 180,
                early_media: false
            },
            Event::Answered { call }
        ]
    );
}

#[test]
fn a_prompt_in_early_media_then_a_reject_ends_the_call_with_its_code() {
    let mut net = Net::new();
    let (call, _, _) = announce_then(
        &mut net,
        Action::Reject {
            code: 404,
            reason: "Not Found".into(),
        },
    );
    net.b2b.prompt_over(net.now, call);
    let sent = net.sent();
    only(&sent, ALICE, "SIP/2.0 404 Not Found");
    assert_eq!(net.b2b.media().released, [call]);
    // A second local answer after the prompt is not taken.
    let mut net = Net::new();
    let (call, _, _) = announce_then(&mut net, Action::Echo);
    net.b2b.prompt_over(net.now, call);
    only(&net.sent(), ALICE, "SIP/2.0 501");
}

#[test]
fn b_legs_go_through_the_engines_own_address_and_its_tokens_say_whose() {
    let mut cfg = B2buaConfig::new(addr(SWITCH), 7);
    cfg.b_local = Some(addr("127.0.0.1:5062"));
    cfg.token_prefix = "w1x".into();
    let mut net = Net::with(cfg);
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = only(&sent, BOB, "INVITE");
    assert!(invite.from_b);
    assert!(invite
        .header(HeaderName::Via)
        .starts_with("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKw1x"));
    assert_eq!(invite.header(HeaderName::Contact), "<sip:127.0.0.1:5062>");
    assert!(invite.header(HeaderName::CallId).starts_with("w1x"));
    assert!(tag_of(&invite.header(HeaderName::From)).starts_with("w1x"));
    let invite = Sent {
        to: addr(BOB),
        text: invite.text.clone(),
        from_b: true,
        stream: false,
    };
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    assert!(only(&sent, BOB, "ACK").from_b);
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    // A sees the shared address.
    assert!(!ok.from_b);
    assert_eq!(ok.header(HeaderName::Contact), "<sip:127.0.0.1:5060>");
    assert!(tag_of(&ok.header(HeaderName::To)).starts_with("w1x"));
    let a_tag = tag_of(&ok.header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "a3"));
    assert!(!only(&sent, ALICE, "SIP/2.0 200").from_b);
    let bye = only(&sent, BOB, "BYE");
    assert!(bye.from_b);
    // Whatever comes back names worker 1: Bob's answer to the BYE (the
    // switch's branch), Alice's next request (the switch's tag).
    let reply = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: x <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: c\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        bye.header(HeaderName::Via)
    );
    assert_eq!(
        owner_of(&Message::parse(reply.as_bytes()).unwrap()),
        Some(1)
    );
    let again = a_request("BYE", &a_tag, 12, "a4");
    assert_eq!(
        owner_of(&Message::parse(again.as_bytes()).unwrap()),
        Some(1)
    );
    // A new call is nobody's yet.
    let invite = nth_invite(1);
    assert_eq!(owner_of(&Message::parse(invite.as_bytes()).unwrap()), None);
    assert_eq!(worker_prefix(1), "w1x");
}

/// Alice calls, Bob answers with `session_expires` in his 200 (and
/// `allow`); the call is up. Returns the call, the INVITE Bob got and
/// Alice's tag.
fn call_up_with_b_timer(
    net: &mut Net,
    session_expires: &str,
    allow: &str,
) -> (CallRef, Sent, String) {
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = only(&sent, BOB, "INVITE");
    // Bob may ask for a session timer: the switch supports them.
    assert_eq!(invite.header(HeaderName::Supported), "timer");
    let invite = Sent {
        to: addr(BOB),
        text: invite.text.clone(),
        from_b: false,
        stream: false,
    };
    let body = sdp("127.0.0.3", 20000);
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=tb\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:peer@{BOB}>\r\nSession-Expires: {session_expires}\r\nRequire: timer\r\n\
         Allow: {allow}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        invite.header(HeaderName::Via),
        invite.header(HeaderName::From),
        invite.header(HeaderName::To),
        invite.header(HeaderName::CallId),
        body.len()
    );
    let sent = net.send(BOB, &ok);
    let a_tag = tag_of(&only(&sent, ALICE, "SIP/2.0 200").header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    (call, invite, a_tag)
}

#[test]
fn session_timer_asked_by_the_callee_the_switch_refreshes() {
    let mut net = Net::new();
    let (_call, invite, _) =
        call_up_with_b_timer(&mut net, "120;refresher=uac", "INVITE, ACK, BYE, UPDATE");
    // Half the interval: an UPDATE to Bob on his dialog, the timer again.
    assert!(net.advance(Duration::from_secs(59)).is_empty());
    let sent = net.advance(Duration::from_secs(1));
    let update = only(&sent, BOB, "UPDATE sip:peer@127.0.0.3:5070 SIP/2.0");
    assert!(update.from_b);
    assert_eq!(
        update.header(HeaderName::SessionExpires),
        "120;refresher=uac"
    );
    assert_eq!(
        update.header(HeaderName::CallId),
        invite.header(HeaderName::CallId)
    );
    let update = Sent {
        to: addr(BOB),
        text: update.text.clone(),
        from_b: true,
        stream: false,
    };
    assert!(net.answer(BOB, &update, "200 OK", "tb", None).is_empty());
    // And again 60 s later; this time Bob has forgotten the call: 481
    // ends it on both sides.
    let sent = net.advance(Duration::from_secs(60));
    let update = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "UPDATE").text.clone(),
        from_b: true,
        stream: false,
    };
    let sent = net.answer(
        BOB,
        &update,
        "481 Call/Transaction Does Not Exist",
        "tb",
        None,
    );
    only(&sent, ALICE, "BYE");
    only(&sent, BOB, "BYE");
}

#[test]
fn session_timer_asked_by_the_callee_who_stops_refreshing() {
    let mut net = Net::new();
    let (call, invite, a_tag) =
        call_up_with_b_timer(&mut net, "90;refresher=uas", "INVITE, ACK, BYE");
    // Bob refreshes once, by re-INVITE: relayed to Alice as usual, and
    // the switch's deadline moves.
    net.advance(Duration::from_secs(40));
    let resume = sdp("127.0.0.3", 20000);
    let refresh = format!(
        "INVITE sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKrf1\r\nMax-Forwards: 70\r\n\
         From: {};tag=tb\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 INVITE\r\nContact: <sip:peer@{BOB}>\r\n\
         Session-Expires: 90;refresher=uas\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{resume}",
        invite.header(HeaderName::To),
        invite.header(HeaderName::From),
        invite.header(HeaderName::CallId),
        resume.len()
    );
    let sent = net.send(BOB, &refresh);
    let to_alice = Sent {
        to: addr(ALICE),
        text: only(&sent, ALICE, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    net.answer(
        ALICE,
        &to_alice,
        "200 OK",
        "fa",
        Some(sdp("127.0.0.2", 10000)),
    );
    let _ = a_tag;
    // 90 s less 30 after the refresh the switch gives up: BYE both.
    assert!(net
        .advance(Duration::from_secs(59))
        .iter()
        .all(|s| !s.first_line().starts_with("BYE")));
    let sent = net.advance(Duration::from_secs(1));
    only(&sent, ALICE, "BYE");
    only(&sent, BOB, "BYE");
    assert!(net.events().contains(&Event::Ended {
        call,
        status: 408,
        by: None
    }));
}

#[test]
fn session_refresh_by_re_invite_when_the_callee_takes_no_update() {
    let mut net = Net::new();
    call_up_with_b_timer(&mut net, "90;refresher=uac", "INVITE, ACK, BYE");
    let sent = net.advance(Duration::from_secs(45));
    let reinvite = only(&sent, BOB, "INVITE sip:peer@127.0.0.3:5070 SIP/2.0");
    // The offer Bob was last sent: the same session, refreshed.
    assert!(
        reinvite.body().contains("m=audio 40000 "),
        "{}",
        reinvite.body()
    );
    let reinvite = Sent {
        to: addr(BOB),
        text: reinvite.text.clone(),
        from_b: true,
        stream: false,
    };
    let sent = net.answer(
        BOB,
        &reinvite,
        "200 OK",
        "tb",
        Some(sdp("127.0.0.3", 20000)),
    );
    let ack = only(&sent, BOB, "ACK sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(ack.header(HeaderName::CSeq), "2 ACK");
    // Alice is not bothered.
    assert!(sent.iter().all(|s| s.to != addr(ALICE)));
}

#[test]
fn a_late_offer_goes_to_the_caller_and_its_answer_in_the_callees_ack() {
    let mut net = Net::new();
    // Alice's INVITE without SDP.
    let invite = nth_invite(1);
    let head_end = invite.find("\r\n\r\n").unwrap();
    let offerless = invite[..head_end]
        .lines()
        .filter(|l| !l.starts_with("Content-"))
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\nContent-Length: 0\r\n\r\n";
    net.send(ALICE, &offerless);
    let call = net
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Route { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let b_invite = only(&sent, BOB, "INVITE");
    assert!(b_invite.body().is_empty());
    let b_invite = Sent {
        to: addr(BOB),
        text: b_invite.text.clone(),
        from_b: false,
        stream: false,
    };
    // Bob's 200 carries the offer: anchored to Alice, no ACK to Bob yet.
    let sent = net.answer(
        BOB,
        &b_invite,
        "200 OK",
        "tb",
        Some(sdp("127.0.0.3", 20000)),
    );
    assert!(
        sent.iter().all(|s| s.to != addr(BOB)),
        "no ACK before Alice's answer"
    );
    let ok = only(&sent, ALICE, "SIP/2.0 200");
    assert!(ok.body().contains("m=audio 40002 "), "{}", ok.body());
    let a_tag = tag_of(&ok.header(HeaderName::To));
    // Alice's ACK carries her answer: Bob's ACK carries it, anchored.
    let answer = sdp("127.0.0.2", 10000);
    let ack = a_request("ACK", &a_tag, 1, "ack1")
        .replace("Call-ID: call-a@127.0.0.2", "Call-ID: n1@127.0.0.2")
        .replace("tag=fa", "tag=f1")
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            ),
        );
    let sent = net.send(ALICE, &ack);
    let b_ack = only(&sent, BOB, "ACK sip:peer@127.0.0.3:5070 SIP/2.0");
    assert!(b_ack.body().contains("m=audio 40000 "), "{}", b_ack.body());
    assert!(!b_ack.body().contains("127.0.0.2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    assert_eq!(
        net.b2b.media().offers.last().unwrap(),
        &(Leg::A, "127.0.0.2:10000".to_string())
    );
}

#[test]
fn a_callee_over_tcp_gets_one_connection_and_no_retransmissions() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(
        call,
        &["sip:bob@127.0.0.3:5070;transport=tcp"],
        Duration::from_secs(30),
    );
    let invite = only(
        &sent,
        BOB,
        "INVITE sip:bob@127.0.0.3:5070;transport=tcp SIP/2.0",
    );
    assert!(invite.stream);
    assert!(invite
        .header(HeaderName::Via)
        .starts_with("SIP/2.0/TCP 127.0.0.1:5060;branch="));
    assert_eq!(
        invite.header(HeaderName::Contact),
        "<sip:127.0.0.1:5060;transport=tcp>"
    );
    // Reliable: nothing again after T1.
    assert!(net.advance(Duration::from_secs(2)).is_empty());
    let invite = Sent {
        to: addr(BOB),
        text: invite.text.clone(),
        from_b: false,
        stream: true,
    };
    // The ACK and in-dialog requests go on the connection too.
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    assert!(only(&sent, BOB, "ACK").stream);
    let a_tag = tag_of(&only(&sent, ALICE, "SIP/2.0 200").header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "a3"));
    let bye = only(&sent, BOB, "BYE");
    assert!(bye.stream && bye.header(HeaderName::Via).starts_with("SIP/2.0/TCP "));
    assert!(
        net.advance(Duration::from_secs(2)).is_empty(),
        "no BYE retransmission"
    );
}

#[test]
fn a_tcp_callee_that_cannot_be_reached_fails_over_at_once() {
    let mut net = Net::new();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(
        call,
        &[
            "sip:bob@127.0.0.3:5070;transport=tcp",
            "sip:carol@127.0.0.4:5060",
        ],
        Duration::from_secs(30),
    );
    only(&sent, BOB, "INVITE");
    // The connection is refused: Carol next, without waiting for Timer B.
    net.b2b.transport_failed(net.now, addr(BOB));
    let sent = net.sent();
    let invite = only(&sent, CAROL, "INVITE sip:carol@127.0.0.4:5060 SIP/2.0");
    assert!(!invite.stream);
    assert!(invite.header(HeaderName::Via).starts_with("SIP/2.0/UDP "));
}

#[test]
fn info_is_relayed_end_to_end_and_event_packages_are_refused() {
    let mut net = Net::new();
    let (_call, b_invite, a_tag) = call_up(&mut net);
    // DTMF as SIP INFO from Alice: Bob gets it on his dialog.
    let body = "Signal=5\r\nDuration=160\r\n";
    let info = a_request("INFO", &a_tag, 11, "i1").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let sent = net.send(ALICE, &info);
    let to_bob = only(&sent, BOB, "INFO sip:peer@127.0.0.3:5070 SIP/2.0");
    assert_eq!(
        to_bob.header(HeaderName::CallId),
        b_invite.header(HeaderName::CallId)
    );
    assert_eq!(
        to_bob.header(HeaderName::ContentType),
        "application/dtmf-relay"
    );
    assert_eq!(to_bob.body(), body);
    assert!(
        sent.iter().all(|s| s.to != addr(ALICE)),
        "answered only when Bob does"
    );
    let to_bob = Sent {
        to: addr(BOB),
        text: to_bob.text.clone(),
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &to_bob, "200 OK", "tb", None);
    let ok = only(&sent, ALICE, "SIP/2.0 200 OK");
    assert_eq!(ok.header(HeaderName::CSeq), "11 INFO");
    // Unanswered: 408 to Alice once the relayed INFO times out.
    let sent = net.send(ALICE, &a_request("INFO", &a_tag, 12, "i2"));
    only(&sent, BOB, "INFO");
    let sent = net.advance(Duration::from_secs(40));
    only(&sent, ALICE, "SIP/2.0 408");
    // No event packages here.
    let subscribe = nth_invite(7)
        .replace("INVITE sip:600", "SUBSCRIBE sip:600")
        .replace("CSeq: 1 INVITE", "CSeq: 1 SUBSCRIBE\r\nEvent: presence");
    only(&net.send(ALICE, &subscribe), ALICE, "SIP/2.0 489 Bad Event");
    let notify = nth_invite(8)
        .replace("INVITE sip:600", "NOTIFY sip:600")
        .replace(
            "CSeq: 1 INVITE",
            "CSeq: 1 NOTIFY\r\nEvent: dialog\r\nSubscription-State: active",
        );
    only(&net.send(ALICE, &notify), ALICE, "SIP/2.0 481");
}

#[test]
fn a_prompt_in_early_media_never_ended_is_given_up_after_three_minutes() {
    let mut net = Net::new();
    let (call, _, _) = announce_then(&mut net, Action::Echo);
    assert!(net
        .advance(Duration::from_secs(179))
        .iter()
        .all(|s| !s.first_line().starts_with("SIP/2.0 4")));
    let sent = net.advance(Duration::from_secs(1));
    only(&sent, ALICE, "SIP/2.0 480");
    assert_eq!(net.b2b.media().released, [call]);
}

/// Alice's call answered by the switch for an agent, and up: the call,
/// Alice's tag.
fn agent_call_up(net: &mut Net) -> (CallRef, String) {
    let (call, _) = net.alice_calls("5000", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Agent {
            agent: "bot".into(),
            params: Default::default(),
        },
    );
    let sent = net.sent();
    let a_tag = tag_of(&only(&sent, ALICE, "SIP/2.0 200 OK").header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "g2"));
    assert_eq!(net.events(), [Event::Answered { call }]);
    (call, a_tag)
}

/// An agent's call up and handed on to Bob: the call, Alice's tag and
/// Bob's INVITE.
fn transferred_to_bob(net: &mut Net) -> (CallRef, String, Sent) {
    let (call, a_tag) = agent_call_up(net);
    assert!(net.b2b.transfer(
        net.now,
        call,
        "sip:bob@127.0.0.3:5070",
        Duration::from_secs(30)
    ));
    let sent = net.sent();
    assert_eq!(sent.len(), 1, "only Bob's INVITE");
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE sip:bob@127.0.0.3:5070")
            .text
            .clone(),
        from_b: false,
        stream: false,
    };
    (call, a_tag, invite)
}

#[test]
fn an_agent_hands_its_call_on_and_the_caller_is_told_nothing() {
    let mut net = Net::new();
    let (call, a_tag, invite) = transferred_to_bob(&mut net);
    // Not twice.
    assert!(!net.b2b.transfer(
        net.now,
        call,
        "sip:bob@127.0.0.3:5070",
        Duration::from_secs(30)
    ));
    // Alice's offer, on the switch's port facing Bob.
    assert!(
        invite.body().contains("m=audio 40000 RTP/AVP 0 8 101"),
        "{}",
        invite.body()
    );
    // Bob rings: Alice, answered long ago, hears the agent meanwhile.
    assert!(net
        .answer(BOB, &invite, "180 Ringing", "tb", None)
        .is_empty());
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    only(&sent, BOB, "ACK");
    assert_eq!(sent.len(), 1, "nothing to Alice");
    assert_eq!(net.events(), [], "answered once, by the agent");
    // Bob's media joined; both legs speak PCMU: nothing to transcode.
    assert_eq!(
        net.b2b.media().offers.last().unwrap(),
        &(Leg::B, "127.0.0.3:20000".into())
    );
    assert_eq!(net.b2b.media().plans.last(), Some(&(call, None)));
    // A bridged call now: Alice's BYE goes on to Bob.
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "g3"));
    only(&sent, ALICE, "SIP/2.0 200");
    only(&sent, BOB, "BYE");
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::A)
        }]
    );
}

#[test]
fn a_transfer_the_target_refuses_hangs_the_caller_up_with_its_status() {
    let mut net = Net::new();
    let (call, a_tag, invite) = transferred_to_bob(&mut net);
    let sent = net.answer(BOB, &invite, "486 Busy Here", "tb", None);
    only(&sent, BOB, "ACK");
    let bye = only(&sent, ALICE, "BYE");
    assert!(
        bye.header(HeaderName::From).contains(&a_tag),
        "{}",
        bye.text
    );
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 486,
            by: None
        }]
    );

    // A transfer that cannot start leaves the call as it was.
    let mut net = Net::new();
    let (call, _) = agent_call_up(&mut net);
    assert!(!net
        .b2b
        .transfer(net.now, call, "tel:+4930123", Duration::from_secs(30)));
    assert!(net.sent().is_empty());
    // Nor can a bridged call be handed on (no agent answered it).
    let mut net = Net::new();
    let (call, _, _) = call_up(&mut net);
    assert!(!net.b2b.transfer(
        net.now,
        call,
        "sip:carol@127.0.0.4",
        Duration::from_secs(30)
    ));
}

#[test]
fn a_caller_who_hangs_up_during_a_transfer_cancels_it() {
    let mut net = Net::new();
    let (call, a_tag, invite) = transferred_to_bob(&mut net);
    net.answer(BOB, &invite, "180 Ringing", "tb", None);
    let sent = net.send(ALICE, &a_request("BYE", &a_tag, 11, "g4"));
    only(&sent, ALICE, "SIP/2.0 200");
    only(&sent, BOB, "CANCEL");
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::A)
        }]
    );
}

#[test]
fn the_dialplan_is_given_the_invites_route_headers_repeated_ones_joined() {
    let mut net = Net::new();
    let body = sdp("127.0.0.2", 10000);
    let invite = format!(
        "INVITE sip:600@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKh1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.2>;tag=fh\r\n\
         To: <sip:600@127.0.0.1>\r\n\
         Call-ID: call-h@127.0.0.2\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{ALICE}>\r\n\
         Diversion: <sip:a@127.0.0.5>;reason=busy\r\n\
         user-agent: phone/1\r\n\
         Diversion: <sip:b@127.0.0.6>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    net.send(ALICE, &invite);
    let headers = net
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Route { headers, .. } => Some(headers),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        headers,
        [
            (
                "diversion".to_string(),
                "<sip:a@127.0.0.5>;reason=busy, <sip:b@127.0.0.6>".to_string()
            ),
            ("user-agent".to_string(), "phone/1".to_string()),
        ]
    );
}

/// A `sips:` or `;transport=tls` target is reached over TLS only, which
/// the switch does not speak yet: it is never tried over UDP, the call
/// moves on to its next target, and the refusal is reported with its
/// reason. With no target left, A gets 502.
#[test]
fn a_tls_target_is_refused_never_downgraded() {
    use sentiric_engine::b2bua::TargetRefusal;
    for target in [
        "sips:bob@127.0.0.3:5061",
        "sip:bob@127.0.0.3:5061;transport=tls",
        "sip:bob@127.0.0.3:5061;transport=TLS",
    ] {
        let mut net = Net::new();
        let (call, _) = net.alice_calls("bob", 70);
        net.events();
        let sent = net.bridge(call, &[target], Duration::from_secs(30));
        assert!(
            sent.iter().all(|s| s.to != addr("127.0.0.3:5061")),
            "{target}: something went to the TLS target"
        );
        only(&sent, ALICE, "SIP/2.0 502");
        let refused: Vec<_> = net
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::TargetRefused { target, why, .. } => Some((target, why)),
                _ => None,
            })
            .collect();
        assert_eq!(refused, vec![(target.to_string(), TargetRefusal::NeedsTls)]);
    }
    // Failover: the next target, a plain one, is tried.
    let mut net = Net::new();
    let (call, _) = net.alice_calls("bob", 70);
    let sent = net.bridge(
        call,
        &["sips:bob@127.0.0.3:5061", "sip:bob@127.0.0.3:5070"],
        Duration::from_secs(30),
    );
    only(&sent, BOB, "INVITE sip:bob@127.0.0.3:5070");
    assert!(sent
        .iter()
        .all(|s| !s.first_line().starts_with("SIP/2.0 502")));
}

/// RFC 3581: a request whose top Via asks for `rport` is answered with
/// `received` and `rport=` filled in from where it came; RFC 3261
/// §18.2.1: a sent-by that is not the source gets `received`.
#[test]
fn responses_carry_received_and_rport() {
    let mut net = Net::new();
    let options = |via: &str| {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.2>;tag=fo\r\nTo: <sip:127.0.0.1>\r\n\
             Call-ID: opt-rport@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // Behind a NAT: it says 10.0.0.5:5060, it comes from 127.0.0.2:40000.
    let sent = net.send(
        "127.0.0.2:40000",
        &options("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKrp1"),
    );
    let ok = only(&sent, "127.0.0.2:40000", "SIP/2.0 200");
    assert_eq!(
        ok.header(HeaderName::Via),
        "SIP/2.0/UDP 10.0.0.5:5060;rport=40000;branch=z9hG4bKrp1;received=127.0.0.2"
    );
    // The INVITE's responses too, the provisional and the final.
    let invite = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKrp2;rport\r\nMax-Forwards: 70\r\n\
        From: <sip:alice@127.0.0.2>;tag=fr\r\nTo: <sip:bob@127.0.0.1>\r\n\
        Call-ID: inv-rport@127.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let sent = net.send("127.0.0.2:40000", invite);
    let trying = only(&sent, "127.0.0.2:40000", "SIP/2.0 100");
    let stamped = "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKrp2;rport=40000;received=127.0.0.2";
    assert_eq!(trying.header(HeaderName::Via), stamped);
    let call = net
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Route { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    net.b2b.route(
        net.now,
        call,
        Action::Reject {
            code: 404,
            reason: "Not Found".into(),
        },
    );
    let sent = net.sent();
    assert_eq!(
        only(&sent, "127.0.0.2:40000", "SIP/2.0 404").header(HeaderName::Via),
        stamped
    );
}

/// An INVITE whose offer the switch cannot take is answered 488 with a
/// Warning naming the problem at once (RFC 3261 §20.43), before any
/// routing: never left unanswered, and an SRTP offer is never answered
/// in clear.
#[test]
fn an_offer_the_switch_cannot_take_gets_488_with_a_warning() {
    let offer = |m: &str| {
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n{m}")
    };
    let cases = [
        (
            offer("m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"),
            "302 127.0.0.1:5060 \"RTP/SAVP: SRTP is not supported yet",
        ),
        (
            offer("m=audio 4000 UDP/TLS/RTP/SAVPF 111\r\n"),
            "302 127.0.0.1:5060 \"UDP/TLS/RTP/SAVPF: SRTP",
        ),
        (offer("m=video 4000 RTP/AVP 96\r\n"), "304 127.0.0.1:5060 \"the offer has no audio stream\""),
        (offer("m=audio 0 RTP/AVP 0\r\n"), "304 127.0.0.1:5060 \"the offer's audio stream is disabled"),
        ("v=1\r\nthis is not SDP\r\n".to_string(), "399 127.0.0.1:5060 \"the SDP offer does not parse"),
    ];
    for (i, (body, warning)) in cases.into_iter().enumerate() {
        let mut net = Net::new();
        let invite = format!(
            "INVITE sip:600@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKbad{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.2>;tag=fb\r\nTo: <sip:600@127.0.0.1>\r\n\
             Call-ID: bad-offer-{i}@127.0.0.2\r\nCSeq: 1 INVITE\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = net.send(ALICE, &invite);
        let refused = only(&sent, ALICE, "SIP/2.0 488");
        let got = refused.header(HeaderName::Warning);
        assert!(got.starts_with(warning), "{i}: {got}");
        assert!(
            !net.events()
                .iter()
                .any(|e| matches!(e, Event::Route { .. })),
            "{i}: routed"
        );
        assert!(net.b2b.media().echoes.is_empty());
    }
    // A plain RTP/AVP offer goes on to routing.
    let mut net = Net::new();
    let (call, sent) = net.alice_calls("600", 70);
    assert_ne!(call, CallRef(0));
    assert!(sent
        .iter()
        .all(|s| !s.first_line().starts_with("SIP/2.0 488")));
}

#[test]
fn an_offer_that_is_not_sdp_gets_415_with_accept() {
    // RFC 4475 3.3.6 (invut), and a SIP-I style multipart body.
    for (i, ct) in ["application/unknownformat", "multipart/mixed;boundary=b"]
        .into_iter()
        .enumerate()
    {
        let mut net = Net::new();
        let body = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--\r\n";
        let invite = format!(
            "INVITE sip:600@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKct{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.2>;tag=fc\r\nTo: <sip:600@127.0.0.1>\r\n\
             Call-ID: ct-{i}@127.0.0.2\r\nCSeq: 1 INVITE\r\n\
             Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = net.send(ALICE, &invite);
        let refused = only(&sent, ALICE, "SIP/2.0 415");
        assert_eq!(
            refused.header(HeaderName::Accept),
            "application/sdp",
            "{ct}"
        );
        assert!(
            !net.events()
                .iter()
                .any(|e| matches!(e, Event::Route { .. })),
            "{ct}: routed"
        );
    }
}

/// A bridged call brought up (INVITE, B's 200, A's ACK); the call and
/// B's INVITE as sent.
fn up_call(net: &mut Net) -> (CallRef, Sent) {
    let (call, _) = net.alice_calls("bob", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = only(&sent, BOB, "INVITE").text.clone();
    let invite = Sent {
        to: addr(BOB),
        text: invite,
        from_b: false,
        stream: false,
    };
    let sent = net.answer(BOB, &invite, "200 OK", "tb", Some(sdp("127.0.0.3", 20000)));
    let a_tag = tag_of(&only(&sent, ALICE, "SIP/2.0 200 OK").header(HeaderName::To));
    net.send(ALICE, &a_request("ACK", &a_tag, 10, "a2"));
    net.events();
    (call, invite)
}

/// A call that carries no RTP can still be checked: an OPTIONS in each
/// leg's dialog. A leg that answers keeps the call; one whose dialog is
/// gone (481), or that never answers, is lost and the call hung up.
#[test]
fn a_probe_finds_a_leg_that_is_gone() {
    // Both there: nothing happens.
    let mut net = Net::new();
    let (call, _) = up_call(&mut net);
    assert!(net.b2b.probe(net.now, call));
    let sent = net.sent();
    let to_a = only(&sent, ALICE, "OPTIONS ");
    let to_b = only(&sent, BOB, "OPTIONS ");
    assert_eq!(to_a.header(HeaderName::CallId), "call-a@127.0.0.2");
    assert!(
        to_a.header(HeaderName::To).contains("tag=fa"),
        "in A's dialog"
    );
    assert!(
        to_b.header(HeaderName::To).contains("tag=tb"),
        "in B's dialog"
    );
    let (to_a_text, to_b_text) = (to_a.text.clone(), to_b.text.clone());
    let reply = |net: &mut Net, from: &str, req: &str, status: &str| {
        let req = Sent {
            to: addr(from),
            text: req.to_string(),
            from_b: false,
            stream: false,
        };
        net.answer(from, &req, status, "x", None)
    };
    assert!(reply(&mut net, ALICE, &to_a_text, "200 OK").is_empty());
    // 405 is an answer too: the UA is there.
    assert!(reply(&mut net, BOB, &to_b_text, "405 Method Not Allowed").is_empty());
    assert!(net.events().is_empty());
    assert_eq!(net.b2b.calls(), 1);

    // A's dialog is gone there: 481, the call ends, both legs get BYE.
    assert!(net.b2b.probe(net.now, call));
    let sent = net.sent();
    let to_a = only(&sent, ALICE, "OPTIONS ").text.clone();
    let sent = reply(
        &mut net,
        ALICE,
        &to_a,
        "481 Call/Transaction Does Not Exist",
    );
    only(&sent, ALICE, "BYE ");
    only(&sent, BOB, "BYE ");
    assert_eq!(
        net.events(),
        [
            Event::Lost { call, leg: Leg::A },
            Event::Ended {
                call,
                status: 200,
                by: None
            }
        ]
    );

    // B never answers: lost when its OPTIONS times out (Timer F, 64·T1).
    let mut net = Net::new();
    let (call, _) = up_call(&mut net);
    net.b2b.probe(net.now, call);
    let sent = net.sent();
    let to_a = only(&sent, ALICE, "OPTIONS ").text.clone();
    reply(&mut net, ALICE, &to_a, "200 OK");
    net.advance(Duration::from_secs(33));
    assert!(net.events().contains(&Event::Lost { call, leg: Leg::B }));
    assert_eq!(net.b2b.calls(), 0);
    // Not up: nothing to probe.
    assert!(!net.b2b.probe(net.now, call));
}

fn holding_ends() -> Net {
    let mut cfg = B2buaConfig::new(addr(SWITCH), 7);
    cfg.hold_ends = true;
    Net::with(cfg)
}

#[test]
fn held_ends_a_bye_is_answered_and_passed_on_only_once_released() {
    let mut net = holding_ends();
    let (call, _, a_tag) = call_up(&mut net);
    let bye = a_request("BYE", &a_tag, 11, "a3");
    let sent = net.send(ALICE, &bye);
    assert!(
        sent.is_empty(),
        "nothing goes before the release: {:?}",
        sent.iter().map(Sent::first_line).collect::<Vec<_>>()
    );
    assert_eq!(
        net.events(),
        [Event::Ended {
            call,
            status: 200,
            by: Some(Leg::A)
        }]
    );
    assert_eq!(net.b2b.held(), 1);
    // Alice retransmits her BYE: its 200 waits too; so does the BYE to
    // Bob, whose retransmission timer fires meanwhile; one copy of each
    // is kept.
    assert!(net.send(ALICE, &bye).is_empty());
    assert!(net.advance(Duration::from_millis(600)).is_empty());
    assert!(net.b2b.release(call));
    assert_eq!(net.b2b.held(), 0);
    let sent = net.sent();
    let lines: Vec<&str> = sent.iter().map(Sent::first_line).collect();
    assert_eq!(
        lines,
        ["SIP/2.0 200 OK", "BYE sip:peer@127.0.0.3:5070 SIP/2.0"],
        "in the order made, once each"
    );
    assert!(sent[0].to == addr(ALICE) && sent[1].to == addr(BOB));
    // Released, the call's transactions send at once.
    let again = net.send(ALICE, &bye);
    only(&again, ALICE, "SIP/2.0 200");
    // Bob's BYE is retransmitted on its timer again (T1 doubled from
    // the first send).
    let later = net.advance(Duration::from_millis(2000));
    assert!(
        later
            .iter()
            .any(|s| s.to == addr(BOB) && s.first_line().starts_with("BYE")),
        "{:?}",
        later.iter().map(Sent::first_line).collect::<Vec<_>>()
    );
    // A second release, or one for a call never held, does nothing.
    assert!(!net.b2b.release(call));
    assert!(!net.b2b.release(CallRef(999)));
    assert!(net.sent().is_empty());
}

#[test]
fn held_ends_a_cancel_its_200_and_the_487_wait_and_other_calls_do_not() {
    let mut net = holding_ends();
    let (call, _) = net.alice_calls("600", 70);
    let sent = net.bridge(call, &["sip:bob@127.0.0.3:5070"], Duration::from_secs(30));
    let invite = Sent {
        to: addr(BOB),
        text: only(&sent, BOB, "INVITE").text.clone(),
        from_b: false,
        stream: false,
    };
    let cancel = "CANCEL sip:600@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKa1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.2>;tag=fa\r\n\
         To: <sip:600@127.0.0.1>\r\n\
         Call-ID: call-a@127.0.0.2\r\n\
         CSeq: 10 CANCEL\r\n\
         Content-Length: 0\r\n\r\n";
    assert!(net.send(ALICE, cancel).is_empty());
    assert!(matches!(
        net.events()[..],
        [Event::Ended { status: 487, .. }]
    ));
    // Another call meanwhile is not held up.
    let carol = "INVITE sip:601@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.4:5060;branch=z9hG4bKc1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@127.0.0.4>;tag=fc\r\n\
         To: <sip:601@127.0.0.1>\r\n\
         Call-ID: call-c@127.0.0.4\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:carol@127.0.0.4>\r\n\
         Content-Length: 0\r\n\r\n";
    only(&net.send(CAROL, carol), CAROL, "SIP/2.0 100");
    net.b2b.release(call);
    let sent = net.sent();
    only(&sent, ALICE, "SIP/2.0 200");
    only(&sent, ALICE, "SIP/2.0 487");
    let cancel_b = only(&sent, BOB, "CANCEL");
    assert_eq!(
        cancel_b.header(HeaderName::Via),
        invite.header(HeaderName::Via)
    );
}

#[test]
fn held_ends_a_reject_and_a_hang_up_wait_for_the_release() {
    let mut net = holding_ends();
    let (call, _) = net.alice_calls("600", 70);
    net.b2b.route(
        net.now,
        call,
        Action::Reject {
            code: 486,
            reason: "Busy Here".into(),
        },
    );
    assert!(net.sent().is_empty());
    net.b2b.release(call);
    only(&net.sent(), ALICE, "SIP/2.0 486");

    let mut net = holding_ends();
    let (call, _, _) = call_up(&mut net);
    net.b2b.hang_up(net.now, call);
    assert!(net.sent().is_empty());
    net.b2b.release(call);
    let sent = net.sent();
    only(&sent, ALICE, "BYE");
    only(&sent, BOB, "BYE");
}
