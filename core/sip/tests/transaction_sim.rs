//! Transactions over a simulated network on a virtual clock: loss,
//! duplication and reordering, RFC timer values, timeouts under total loss,
//! CANCEL and RFC 2543 matching. Nothing here sleeps or opens a socket.

use std::time::{Duration, Instant};

use sentiric_sip::build::{response_to, MessageBuilder};
use sentiric_sip::transaction::{
    IncomingRequest, IncomingResponse, LayerEvent, Reliability, Timer, TimerConfig,
    TransactionError, TransactionEvent, TransactionLayer,
};
use sentiric_sip::{HeaderName, Message, Method, Request};

mod common;
use common::{Net, Side};

fn request(method: Method<'_>, branch: &str) -> Vec<u8> {
    MessageBuilder::request(method, "sip:bob@127.0.0.2")
        .header(
            HeaderName::Via,
            &format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"),
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:alice@127.0.0.1>;tag=a1")
        .header(HeaderName::To, "<sip:bob@127.0.0.2>")
        .header(HeaderName::CallId, &format!("{branch}@127.0.0.1"))
        .header(HeaderName::CSeq, &format!("1 {method}"))
        .finish()
}

/// What the UAS does with a new request.
#[derive(Clone, Copy)]
enum Answer {
    /// Final response right away.
    Final(u16),
    /// 180 at once, the final response `after` later.
    RingThen(u16, Duration),
}

#[derive(Default, Debug)]
struct Outcome {
    finals_delivered: Vec<u16>,
    provisionals_delivered: usize,
    client_events: Vec<LayerEvent>,
    server_events: Vec<LayerEvent>,
    server_new: usize,
    acks_for_2xx: usize,
    end: Duration,
}

/// Runs one client request against a UAS over the network until both
/// layers are empty (or a minute of virtual time passes).
fn run(seed: u64, loss: f64, dup: f64, method: Method<'static>, answer: Answer) -> Outcome {
    let cfg = TimerConfig::default();
    let t0 = Instant::now();
    let mut now = t0;
    let mut net = Net::new(seed, loss, dup, 80);
    let mut client: TransactionLayer<Side> = TransactionLayer::new(cfg, 64);
    let mut server: TransactionLayer<Side> = TransactionLayer::new(cfg, 64);
    let mut out = Outcome::default();
    let invite = request(method, &format!("z9hG4bK{seed}x"));
    let req = Request::parse(&invite).unwrap();
    client
        .send_request(now, &req, Side::Server, Reliability::Unreliable)
        .unwrap();
    let mut pending_final: Option<(Instant, sentiric_sip::transaction::TransactionId, Vec<u8>)> =
        None;
    // The UAS core's own 2xx retransmission (§13.3.1.4) until the ACK arrives.
    let mut ok_retx: Option<(
        Instant,
        Duration,
        sentiric_sip::transaction::TransactionId,
        Vec<u8>,
    )> = None;
    let mut ack_2xx: Option<Vec<u8>> = None;
    loop {
        while let Some(t) = client.poll_transmit() {
            net.send(now, t.destination, &t.bytes);
        }
        while let Some(t) = server.poll_transmit() {
            net.send(now, Side::Client, &t.bytes);
        }
        while let Some(e) = client.poll_event() {
            out.client_events.push(e);
        }
        while let Some(e) = server.poll_event() {
            out.server_events.push(e);
        }
        let next = [
            net.next_arrival(),
            client.poll_timeout(),
            server.poll_timeout(),
            pending_final.as_ref().map(|p| p.0),
            ok_retx.as_ref().map(|p| p.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        if next - t0 > Duration::from_secs(60) {
            break;
        }
        now = next.max(now);
        client.handle_timeout(now);
        server.handle_timeout(now);
        if let Some((at, _, _)) = &pending_final {
            if *at <= now {
                let (_, id, bytes) = pending_final.take().unwrap();
                server.send_response(now, id, bytes.clone()).unwrap();
                if Message::parse(&bytes)
                    .unwrap()
                    .as_response()
                    .unwrap()
                    .status
                    < 300
                {
                    ok_retx = Some((now + cfg.t1, cfg.t1, id, bytes));
                }
            }
        }
        if let Some((at, interval, id, bytes)) = ok_retx.take() {
            if at <= now {
                // Through the transaction while it is Accepted, so it reaches the wire.
                let _ = server.send_response(now, id, bytes.clone());
                let next = (interval * 2).min(cfg.t2);
                if now - t0 < cfg.t1x64() + Duration::from_secs(1) {
                    ok_retx = Some((now + next, next, id, bytes));
                }
            } else {
                ok_retx = Some((at, interval, id, bytes));
            }
        }
        while let Some((to, bytes)) = net.pop_due(now) {
            let msg = Message::parse(&bytes).unwrap();
            match (to, msg) {
                (Side::Server, Message::Request(r)) => {
                    match server.receive_request(now, &r, Side::Client, Reliability::Unreliable) {
                        IncomingRequest::New(id) => {
                            out.server_new += 1;
                            match answer {
                                Answer::Final(code) => {
                                    let resp = response_to(&r, code, "Done", Some("b1")).finish();
                                    if code < 300 {
                                        ok_retx = Some((now + cfg.t1, cfg.t1, id, resp.clone()));
                                    }
                                    server.send_response(now, id, resp).unwrap();
                                }
                                Answer::RingThen(code, after) => {
                                    let ring = response_to(&r, 180, "Ringing", Some("b1")).finish();
                                    server.send_response(now, id, ring).unwrap();
                                    let fin = response_to(&r, code, "Done", Some("b1")).finish();
                                    pending_final = Some((now + after, id, fin));
                                }
                            }
                        }
                        IncomingRequest::Ack { .. } => {
                            out.acks_for_2xx += 1;
                            ok_retx = None;
                        }
                        _ => {}
                    }
                }
                (Side::Client, Message::Response(r)) => match client.receive_response(now, &r) {
                    IncomingResponse::Deliver(_) if r.status >= 200 => {
                        out.finals_delivered.push(r.status);
                        if r.status < 300 {
                            ack_2xx = Some(ack_for_2xx(&r));
                        }
                        if let Some(a) = &ack_2xx {
                            net.send(now, Side::Server, a);
                        }
                    }
                    IncomingResponse::Deliver(_) => out.provisionals_delivered += 1,
                    // A 2xx retransmitted after the client transaction ended:
                    // the UAC core ACKs it again (§13.2.2.4).
                    IncomingResponse::Stray if r.status < 300 => {
                        if let Some(a) = &ack_2xx {
                            net.send(now, Side::Server, a);
                        }
                    }
                    _ => {}
                },
                _ => panic!("misrouted message"),
            }
        }
        if client.is_empty() && server.is_empty() && pending_final.is_none() && ok_retx.is_none() {
            out.end = now - t0;
            while let Some(e) = client.poll_event() {
                out.client_events.push(e);
            }
            while let Some(e) = server.poll_event() {
                out.server_events.push(e);
            }
            break;
        }
    }
    out.end = now - t0;
    out
}

fn ack_for_2xx(r: &sentiric_sip::Response<'_>) -> Vec<u8> {
    MessageBuilder::request(Method::Ack, "sip:bob@127.0.0.2")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack2xx",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, r.headers.value(HeaderName::From).unwrap())
        .header(HeaderName::To, r.headers.value(HeaderName::To).unwrap())
        .header(HeaderName::CallId, r.call_id())
        .header(HeaderName::CSeq, &format!("{} ACK", r.cseq().seq))
        .finish()
}

fn timeouts(events: &[LayerEvent]) -> Vec<Timer> {
    events
        .iter()
        .filter_map(|e| match e.event {
            TransactionEvent::Timeout(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn non_invite_completes_under_30_percent_loss() {
    for seed in 0..300 {
        let o = run(seed, 0.30, 0.10, Method::Options, Answer::Final(200));
        assert_eq!(o.finals_delivered, vec![200], "seed {seed}: {o:?}");
        assert_eq!(
            o.server_new, 1,
            "seed {seed}: retransmissions must be absorbed"
        );
        assert!(timeouts(&o.client_events).is_empty(), "seed {seed}");
    }
}

#[test]
fn invite_rejected_completes_under_30_percent_loss() {
    for seed in 0..300 {
        let o = run(
            seed,
            0.30,
            0.10,
            Method::Invite,
            Answer::RingThen(486, Duration::from_millis(700)),
        );
        assert_eq!(o.finals_delivered, vec![486], "seed {seed}: {o:?}");
        assert_eq!(o.server_new, 1, "seed {seed}");
        // The transaction-generated ACK reached the server: no Timer H.
        assert!(timeouts(&o.server_events).is_empty(), "seed {seed}: {o:?}");
        assert!(timeouts(&o.client_events).is_empty(), "seed {seed}");
    }
}

#[test]
fn invite_answered_completes_under_30_percent_loss() {
    for seed in 0..300 {
        let o = run(seed, 0.30, 0.10, Method::Invite, Answer::Final(200));
        // Exactly one 2xx reaches the TU as the answer; retransmissions in
        // Accepted also reach it (RFC 6026) so that it re-sends its ACK.
        assert_eq!(o.finals_delivered.first(), Some(&200), "seed {seed}: {o:?}");
        assert!(o.finals_delivered.iter().all(|c| *c == 200));
        assert!(o.acks_for_2xx >= 1, "seed {seed}: the 2xx was never ACKed");
        assert_eq!(o.server_new, 1);
        assert!(timeouts(&o.client_events).is_empty());
    }
}

#[test]
fn clean_network_non_invite_terminates_after_timer_k_and_j() {
    let o = run(1, 0.0, 0.0, Method::Options, Answer::Final(200));
    assert_eq!(o.finals_delivered, vec![200]);
    // Client ends with Timer K (T4 = 5 s), server with Timer J (64·T1 = 32 s).
    assert!(
        o.end >= Duration::from_secs(32) && o.end < Duration::from_secs(33),
        "{:?}",
        o.end
    );
}

/// Drives a lone layer with no network at all: every transmit is lost.
fn transmit_times(method: Method<'static>) -> (Vec<Duration>, Vec<(Duration, TransactionEvent)>) {
    let t0 = Instant::now();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
    let bytes = request(method, "z9hG4bKlost");
    let req = Request::parse(&bytes).unwrap();
    layer
        .send_request(t0, &req, (), Reliability::Unreliable)
        .unwrap();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut now = t0;
    loop {
        while layer.poll_transmit().is_some() {
            sent.push(now - t0);
        }
        while let Some(e) = layer.poll_event() {
            events.push((now - t0, e.event));
        }
        let Some(next) = layer.poll_timeout() else {
            break;
        };
        now = next;
        layer.handle_timeout(now);
    }
    (sent, events)
}

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|m| Duration::from_millis(*m)).collect()
}

#[test]
fn timer_a_doubles_and_timer_b_fires_at_64_t1() {
    let (sent, events) = transmit_times(Method::Invite);
    assert_eq!(sent, ms(&[0, 500, 1500, 3500, 7500, 15500, 31500]));
    assert_eq!(
        events,
        vec![
            (Duration::from_secs(32), TransactionEvent::Timeout(Timer::B)),
            (Duration::from_secs(32), TransactionEvent::Terminated)
        ]
    );
}

#[test]
fn timer_e_caps_at_t2_and_timer_f_fires_at_64_t1() {
    let (sent, events) = transmit_times(Method::Bye);
    assert_eq!(
        sent,
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events[0],
        (Duration::from_secs(32), TransactionEvent::Timeout(Timer::F))
    );
}

#[test]
fn timer_g_retransmits_and_timer_h_gives_up_without_ack() {
    let t0 = Instant::now();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
    let bytes = request(Method::Invite, "z9hG4bKnoack");
    let req = Request::parse(&bytes).unwrap();
    let IncomingRequest::New(id) = layer.receive_request(t0, &req, (), Reliability::Unreliable)
    else {
        panic!()
    };
    let trying = layer.poll_transmit().unwrap();
    assert!(trying.bytes.starts_with(b"SIP/2.0 100 Trying"));
    layer
        .send_response(
            t0,
            id,
            response_to(&req, 486, "Busy Here", Some("x")).finish(),
        )
        .unwrap();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut now = t0;
    loop {
        while layer.poll_transmit().is_some() {
            sent.push(now - t0);
        }
        while let Some(e) = layer.poll_event() {
            events.push((now - t0, e.event));
        }
        let Some(next) = layer.poll_timeout() else {
            break;
        };
        now = next;
        layer.handle_timeout(now);
    }
    assert_eq!(
        sent,
        ms(&[0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500])
    );
    assert_eq!(
        events[0],
        (Duration::from_secs(32), TransactionEvent::Timeout(Timer::H))
    );
}

#[test]
fn timer_d_ack_generation_and_reliable_transports() {
    use sentiric_sip::Response;
    let t0 = Instant::now();
    let bytes = request(Method::Invite, "z9hG4bKd");
    let req = Request::parse(&bytes).unwrap();
    let resp_bytes = response_to(&req, 603, "Decline", Some("t")).finish();
    let resp = Response::parse(&resp_bytes).unwrap();
    for rel in [Reliability::Unreliable, Reliability::Reliable] {
        let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
        let id = layer.send_request(t0, &req, (), rel).unwrap();
        assert_eq!(
            layer.receive_response(t0, &resp),
            IncomingResponse::Deliver(id)
        );
        let sent: Vec<_> = std::iter::from_fn(|| layer.poll_transmit()).collect();
        assert_eq!(sent.len(), 2, "INVITE, then the ACK");
        let ack = Request::parse(&sent[1].bytes).unwrap();
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri_str(), "sip:bob@127.0.0.2");
        assert_eq!(ack.cseq().seq, 1);
        assert_eq!(ack.cseq().method, Method::Ack);
        assert_eq!(ack.to().tag(), Some("t"));
        assert_eq!(
            ack.via().branch(),
            Some("z9hG4bKd"),
            "same branch as the INVITE"
        );
        match rel {
            Reliability::Unreliable => {
                assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
                let later = t0 + Duration::from_secs(1);
                assert_eq!(
                    layer.receive_response(later, &resp),
                    IncomingResponse::Absorbed
                );
                let again = layer
                    .poll_transmit()
                    .expect("ACK re-sent for the retransmitted 603");
                assert_eq!(&*again.bytes, &*sent[1].bytes);
                layer.handle_timeout(t0 + Duration::from_secs(32));
                assert!(layer.is_empty());
            }
            Reliability::Reliable => {
                assert!(layer.is_empty(), "Timer D is zero over reliable transports");
                assert_eq!(layer.receive_response(t0, &resp), IncomingResponse::Stray);
            }
        }
    }
}

#[test]
fn server_invite_confirmed_then_timer_i() {
    let t0 = Instant::now();
    let bytes = request(Method::Invite, "z9hG4bKi");
    let req = Request::parse(&bytes).unwrap();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
    assert!(!layer.has_server_transaction(&req));
    let IncomingRequest::New(id) = layer.receive_request(t0, &req, (), Reliability::Unreliable)
    else {
        panic!()
    };
    // Known as a retransmission before it is handed over; another
    // branch is another request.
    assert!(layer.has_server_transaction(&req));
    let other = request(Method::Invite, "z9hG4bKj");
    assert!(!layer.has_server_transaction(&Request::parse(&other).unwrap()));
    // A retransmitted INVITE before any answer gets the 100 Trying again.
    assert_eq!(
        layer.receive_request(t0, &req, (), Reliability::Unreliable),
        IncomingRequest::Absorbed
    );
    assert_eq!(std::iter::from_fn(|| layer.poll_transmit()).count(), 2);
    layer
        .send_response(
            t0,
            id,
            response_to(&req, 404, "Not Found", Some("x")).finish(),
        )
        .unwrap();
    // A second final response is refused.
    assert!(layer
        .send_response(t0, id, response_to(&req, 500, "Oops", Some("x")).finish())
        .is_err());
    let ack = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("1 INVITE", "1 ACK");
    let ack = Request::parse(ack.as_bytes()).unwrap();
    let t1 = t0 + Duration::from_millis(100);
    assert_eq!(
        layer.receive_request(t1, &ack, (), Reliability::Unreliable),
        IncomingRequest::Absorbed
    );
    assert_eq!(
        layer.poll_timeout(),
        Some(t1 + Duration::from_secs(5)),
        "Timer I = T4"
    );
    layer.handle_timeout(t1 + Duration::from_secs(5));
    assert!(layer.is_empty());
    assert!(timeouts(&std::iter::from_fn(|| layer.poll_event()).collect::<Vec<_>>()).is_empty());
}

#[test]
fn cancel_matches_its_invite() {
    let t0 = Instant::now();
    let bytes = request(Method::Invite, "z9hG4bKc");
    let req = Request::parse(&bytes).unwrap();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
    let IncomingRequest::New(invite) = layer.receive_request(t0, &req, (), Reliability::Unreliable)
    else {
        panic!()
    };
    let cancel = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("1 INVITE", "1 CANCEL");
    let cancel = Request::parse(cancel.as_bytes()).unwrap();
    let IncomingRequest::Cancel {
        id,
        invite: Some(m),
    } = layer.receive_request(t0, &cancel, (), Reliability::Unreliable)
    else {
        panic!("CANCEL must match")
    };
    assert_eq!(m, invite);
    assert_ne!(id, invite);
    // A CANCEL for another branch matches nothing: the TU answers 481.
    let other = String::from_utf8(cancel.raw.to_vec())
        .unwrap()
        .replace("z9hG4bKc", "z9hG4bKz");
    let other = Request::parse(other.as_bytes()).unwrap();
    assert!(matches!(
        layer.receive_request(t0, &other, (), Reliability::Unreliable),
        IncomingRequest::Cancel { invite: None, .. }
    ));
}

#[test]
fn rfc2543_requests_match_without_branch() {
    let t0 = Instant::now();
    let raw = b"INVITE sip:UserB@example.com SIP/2.0\r\nVia: SIP/2.0/UDP iftgw.example.com\r\nFrom: <sip:+13035551111@ift.client.example.net;user=phone>;tag=1\r\nTo: sip:+16505552222@ss1.example.net;user=phone\r\nCall-ID: inv2543.1717@ift.client.example.com\r\nCSeq: 56 INVITE\r\nContent-Length: 0\r\n\r\n";
    let req = Request::parse(raw).unwrap();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 8);
    assert!(matches!(
        layer.receive_request(t0, &req, (), Reliability::Unreliable),
        IncomingRequest::New(_)
    ));
    assert_eq!(
        layer.receive_request(t0, &req, (), Reliability::Unreliable),
        IncomingRequest::Absorbed
    );
    assert_eq!(layer.len(), 1);
}

#[test]
fn table_is_bounded() {
    let t0 = Instant::now();
    let mut layer: TransactionLayer<()> = TransactionLayer::new(TimerConfig::default(), 2);
    for i in 0..3 {
        let bytes = request(Method::Options, &format!("z9hG4bKb{i}"));
        let req = Request::parse(&bytes).unwrap();
        let got = layer.receive_request(t0, &req, (), Reliability::Unreliable);
        if i < 2 {
            assert!(matches!(got, IncomingRequest::New(_)));
        } else {
            assert_eq!(got, IncomingRequest::Overloaded);
        }
    }
    // The TU's own requests (a BYE ending a call) still go: as many again.
    for i in 0..3 {
        let bytes = request(Method::Bye, &format!("z9hG4bKc{i}"));
        let req = Request::parse(&bytes).unwrap();
        let got = layer.send_request(t0, &req, (), Reliability::Unreliable);
        if i < 2 {
            assert!(got.is_ok(), "{got:?}");
        } else {
            assert!(matches!(got, Err(TransactionError::Overloaded)), "{got:?}");
        }
    }
}
