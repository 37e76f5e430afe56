//! A UAC and a UAS over a simulated network with loss, duplication and
//! reordering on a virtual clock: INVITE, 180, 200, ACK, a re-INVITE that
//! refreshes the target, and BYE, each side keeping its dialog.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sentiric_sip::build::response_to;
use sentiric_sip::dialog::{Dialog, DialogId, DialogState};
use sentiric_sip::transaction::{
    IncomingRequest, IncomingResponse, Reliability, TimerConfig, TransactionEvent, TransactionId,
    TransactionLayer,
};
use sentiric_sip::{Message, Method, Request};

mod common;
use common::{Net, Side};

const INVITE: &str = "INVITE sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKinv\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=alice\r\nTo: <sip:bob@127.0.0.2>\r\nCall-ID: dlg@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";

#[derive(Debug, Default)]
struct Report {
    uac_dialog: Option<Dialog>,
    uas_dialog: Option<Dialog>,
    bye_seq: Option<u32>,
    done: bool,
    timeouts: usize,
    uas_new: Vec<String>,
}

fn run(seed: u64, loss: f64) -> Report {
    let cfg = TimerConfig::default();
    let t0 = Instant::now();
    let mut now = t0;
    let mut net = Net::new(seed, loss, 0.1, 80);
    let mut uac: TransactionLayer<Side> = TransactionLayer::new(cfg, 16);
    let mut uas: TransactionLayer<Side> = TransactionLayer::new(cfg, 16);
    let mut rep = Report::default();
    let mut branch = 0u32;
    let mut next_via = || {
        branch += 1;
        format!("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{seed}n{branch}")
    };
    let invite = Request::parse(INVITE.as_bytes()).unwrap();
    uac.send_request(now, &invite, Side::Server, Reliability::Unreliable)
        .unwrap();
    // UAC core: the ACK sent for each INVITE CSeq, re-sent on 2xx retransmissions.
    let mut acks: HashMap<u32, Vec<u8>> = HashMap::new();
    // UAS core: the 2xx it retransmits until the ACK arrives (§13.3.1.4).
    let mut ok_retx: Option<(Instant, Duration, TransactionId, u32, Vec<u8>)> = None;
    let mut reinvite_sent = false;
    let mut bye_sent = false;

    while now - t0 < Duration::from_secs(120) {
        while let Some(t) = uac.poll_transmit() {
            net.send(now, Side::Server, &t.bytes);
        }
        while let Some(t) = uas.poll_transmit() {
            net.send(now, Side::Client, &t.bytes);
        }
        for e in
            std::iter::from_fn(|| uac.poll_event()).chain(std::iter::from_fn(|| uas.poll_event()))
        {
            if matches!(e.event, TransactionEvent::Timeout(_)) {
                rep.timeouts += 1;
            }
        }
        if rep.done && uac.is_empty() && uas.is_empty() && ok_retx.is_none() {
            break;
        }
        let next = [
            net.next_arrival(),
            uac.poll_timeout(),
            uas.poll_timeout(),
            ok_retx.as_ref().map(|o| o.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        now = next.max(now);
        uac.handle_timeout(now);
        uas.handle_timeout(now);
        if let Some((at, iv, id, seq, bytes)) = ok_retx.take() {
            if at <= now {
                let _ = uas.send_response(now, id, bytes.clone());
                let iv2 = (iv * 2).min(cfg.t2);
                ok_retx = Some((now + iv2, iv2, id, seq, bytes));
            } else {
                ok_retx = Some((at, iv, id, seq, bytes));
            }
        }
        while let Some((to, bytes)) = net.pop_due(now) {
            match (to, Message::parse(&bytes).unwrap()) {
                (Side::Server, Message::Request(r)) => {
                    match uas.receive_request(now, &r, Side::Client, Reliability::Unreliable) {
                        IncomingRequest::New(id) => {
                            rep.uas_new.push(format!("{} {}", r.method, r.cseq().seq));
                            match (r.method, DialogId::of_request(&r)) {
                                (Method::Invite, None) => {
                                    let mut ring = response_to(&r, 180, "Ringing", Some("bob"));
                                    ring.push_header("Contact", "<sip:bob@127.0.0.2:5080>");
                                    uas.send_response(now, id, ring.finish()).unwrap();
                                    let mut ok = response_to(&r, 200, "OK", Some("bob"));
                                    ok.push_header("Contact", "<sip:bob@127.0.0.2:5080>");
                                    let ok = ok.finish();
                                    uas.send_response(now, id, ok.clone()).unwrap();
                                    ok_retx = Some((now + cfg.t1, cfg.t1, id, r.cseq().seq, ok));
                                    rep.uas_dialog =
                                        Some(Dialog::new_uas(&r, "bob", false).unwrap());
                                }
                                (m, Some(did)) => {
                                    let d = rep.uas_dialog.as_mut().unwrap();
                                    assert_eq!(
                                        did, d.id,
                                        "in-dialog request must match the dialog"
                                    );
                                    d.on_request(&r).unwrap();
                                    let ok = response_to(&r, 200, "OK", None);
                                    let ok = if m == Method::Invite {
                                        let mut ok = ok;
                                        ok.push_header("Contact", "<sip:bob@127.0.0.2:5080>");
                                        ok.finish()
                                    } else {
                                        ok.finish()
                                    };
                                    uas.send_response(now, id, ok.clone()).unwrap();
                                    if m == Method::Invite {
                                        ok_retx =
                                            Some((now + cfg.t1, cfg.t1, id, r.cseq().seq, ok));
                                    }
                                }
                                _ => panic!("unexpected request"),
                            }
                        }
                        IncomingRequest::Ack { .. } => {
                            let d = rep.uas_dialog.as_mut().unwrap();
                            d.on_request(&r).unwrap();
                            if ok_retx.as_ref().is_some_and(|o| o.3 == r.cseq().seq) {
                                ok_retx = None;
                            }
                        }
                        _ => {}
                    }
                }
                (Side::Client, Message::Response(r)) => {
                    let delivered = uac.receive_response(now, &r);
                    let fresh = matches!(delivered, IncomingResponse::Deliver(_));
                    if r.status < 200 || r.status >= 300 {
                        if fresh && r.status > 100 && rep.uac_dialog.is_none() {
                            rep.uac_dialog = Some(Dialog::new_uac(&invite, &r).unwrap());
                        }
                        continue;
                    }
                    let seq = r.cseq().seq;
                    match r.cseq().method {
                        Method::Invite => {
                            if let Some(ack) = acks.get(&seq) {
                                // A retransmitted 2xx: ACK it again.
                                net.send(now, Side::Server, ack);
                                continue;
                            }
                            match rep.uac_dialog.as_mut() {
                                Some(d) => d.on_response(&r).unwrap(),
                                None => {
                                    rep.uac_dialog = Some(Dialog::new_uac(&invite, &r).unwrap())
                                }
                            }
                            let d = rep.uac_dialog.as_mut().unwrap();
                            let ack = d.create_ack(seq, &next_via()).finish();
                            net.send(now, Side::Server, &ack);
                            acks.insert(seq, ack);
                            if !reinvite_sent {
                                reinvite_sent = true;
                                let mut re = d.create_request(Method::Invite, &next_via());
                                re.push_header("Contact", "<sip:alice@127.0.0.1:5999>");
                                let re = re.finish();
                                let re = Request::parse(&re).unwrap();
                                uac.send_request(now, &re, Side::Server, Reliability::Unreliable)
                                    .unwrap();
                            } else if !bye_sent {
                                bye_sent = true;
                                let bye = d.create_request(Method::Bye, &next_via()).finish();
                                let bye = Request::parse(&bye).unwrap();
                                rep.bye_seq = Some(bye.cseq().seq);
                                uac.send_request(now, &bye, Side::Server, Reliability::Unreliable)
                                    .unwrap();
                            }
                        }
                        Method::Bye if fresh => rep.done = true,
                        _ => {}
                    }
                }
                _ => panic!("misrouted"),
            }
        }
    }
    rep
}

#[test]
fn call_with_reinvite_and_bye_under_30_percent_loss() {
    for seed in 0..150 {
        let rep = run(seed, 0.30);
        assert!(rep.done, "seed {seed}: BYE never completed: {rep:?}");
        assert_eq!(rep.timeouts, 0, "seed {seed}");
        assert_eq!(
            rep.uas_new,
            ["INVITE 1", "INVITE 2", "BYE 3"],
            "seed {seed}"
        );
        assert_eq!(rep.bye_seq, Some(3));
        let uac = rep.uac_dialog.unwrap();
        let uas = rep.uas_dialog.unwrap();
        assert_eq!(uac.state, DialogState::Confirmed);
        assert_eq!(uac.id.local_tag, uas.id.remote_tag);
        assert_eq!(uac.id.remote_tag, uas.id.local_tag);
        assert_eq!(uac.remote_target, "sip:bob@127.0.0.2:5080");
        // The re-INVITE's Contact refreshed the UAS's remote target.
        assert_eq!(uas.remote_target, "sip:alice@127.0.0.1:5999");
        assert_eq!(uas.remote_seq, Some(3));
    }
}

#[test]
fn clean_network_gives_the_same_call() {
    let rep = run(7, 0.0);
    assert!(rep.done);
    assert_eq!(rep.uas_new, ["INVITE 1", "INVITE 2", "BYE 3"]);
}
