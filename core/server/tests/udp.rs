//! The `sentiric` binary on a real UDP socket on loopback: OPTIONS, a
//! malformed request, an unsupported version and scheme, an INVITE with its
//! 100 Trying, final response retransmission and ACK.

use std::net::UdpSocket;
use std::time::Duration;

use sentiric_sip::{Message, Response};

mod common;
use common::Switch;

fn start() -> Switch {
    Switch::start(None, &[])
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn request(sock: &UdpSocket, method: &str, uri: &str, branch: &str, extra: &str) -> String {
    let port = sock.local_addr().unwrap().port();
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:tester@127.0.0.1>;tag=t1\r\nTo: <sip:switch@127.0.0.1>\r\nCall-ID: {branch}@127.0.0.1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn recv(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).expect("a response within 3 s");
    buf.truncate(n);
    buf
}

fn status(bytes: &[u8]) -> u16 {
    Response::parse(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
        .status
}

#[test]
fn answers_over_udp() {
    let sw = start();
    let c = client();

    // OPTIONS: 200 with a To tag, the same Call-ID and CSeq.
    c.send_to(
        request(&c, "OPTIONS", "sip:switch@127.0.0.1", "opt1", "").as_bytes(),
        sw.addr,
    )
    .unwrap();
    let r = recv(&c);
    let m = Message::parse(&r).unwrap();
    let resp = m.as_response().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.call_id(), "opt1@127.0.0.1");
    assert!(resp.to().tag().is_some());
    assert_eq!(resp.cseq().seq, 1);

    // A malformed CSeq: 400 naming the header.
    let bad = request(&c, "OPTIONS", "sip:switch@127.0.0.1", "bad1", "")
        .replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    c.send_to(bad.as_bytes(), sw.addr).unwrap();
    // The stateless response copies the request's CSeq as it was, so only
    // its status line is read here.
    let r = String::from_utf8(recv(&c)).unwrap();
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request (malformed CSeq header"),
        "{r}"
    );
    assert!(r.contains("Call-ID: bad1@127.0.0.1\r\n"));

    // A malformed Contact URI passes the parse at receipt and is caught by
    // the validation the transaction user runs: 400 naming the header,
    // in a response that goes through the transaction.
    c.send_to(
        request(
            &c,
            "OPTIONS",
            "sip:switch@127.0.0.1",
            "badc1",
            "Contact: <sip:tester@127.0.0.1:99999>\r\n",
        )
        .as_bytes(),
        sw.addr,
    )
    .unwrap();
    let r = recv(&c);
    assert_eq!(status(&r), 400);
    let text = String::from_utf8_lossy(&r);
    assert!(text.contains("malformed Contact header"), "{text}");
    assert!(Response::parse(&r).unwrap().to().tag().is_some());

    // SIP/7.0: 505.
    let v7 = request(&c, "OPTIONS", "sip:switch@127.0.0.1", "ver1", "").replacen(
        "SIP/2.0\r\n",
        "SIP/7.0\r\n",
        1,
    );
    c.send_to(v7.as_bytes(), sw.addr).unwrap();
    assert_eq!(status(&recv(&c)), 505);

    // An unknown URI scheme: 416; an unknown required extension: 420.
    c.send_to(
        request(&c, "OPTIONS", "nobody:opaque", "sch1", "").as_bytes(),
        sw.addr,
    )
    .unwrap();
    assert_eq!(status(&recv(&c)), 416);
    c.send_to(
        request(
            &c,
            "OPTIONS",
            "sip:switch@127.0.0.1",
            "ext1",
            "Require: foo\r\n",
        )
        .as_bytes(),
        sw.addr,
    )
    .unwrap();
    let r = recv(&c);
    assert_eq!(status(&r), 420);
    assert!(String::from_utf8_lossy(&r).contains("Unsupported: foo\r\n"));
}

#[test]
fn invite_gets_trying_final_retransmission_and_takes_the_ack() {
    let sw = start();
    let c = client();
    let invite = request(
        &c,
        "INVITE",
        "sip:switch@127.0.0.1",
        "inv1",
        "Contact: <sip:tester@127.0.0.1>\r\n",
    );
    c.send_to(invite.as_bytes(), sw.addr).unwrap();
    assert_eq!(status(&recv(&c)), 100);
    let fin = recv(&c);
    // The demo dialplan has no user "switch": 404.
    assert_eq!(status(&fin), 404);
    // Without an ACK, Timer G retransmits the final response (T1 = 500 ms).
    let again = recv(&c);
    assert_eq!(again, fin);
    // The ACK for the non-2xx reuses the INVITE's branch and the To tag.
    let to = Response::parse(&fin)
        .unwrap()
        .headers
        .value(sentiric_sip::HeaderName::To)
        .unwrap()
        .to_string();
    let ack = invite
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace("To: <sip:switch@127.0.0.1>", &format!("To: {to}"))
        .replace("Contact: <sip:tester@127.0.0.1>\r\n", "");
    c.send_to(ack.as_bytes(), sw.addr).unwrap();
    // A retransmitted INVITE now is absorbed silently; an OPTIONS still works.
    c.send_to(
        request(&c, "OPTIONS", "sip:switch@127.0.0.1", "opt2", "").as_bytes(),
        sw.addr,
    )
    .unwrap();
    let mut got = recv(&c);
    // A Timer G retransmission may have crossed the ACK; skip it.
    while status(&got) == 404 {
        got = recv(&c);
    }
    assert_eq!(status(&got), 200);
}
