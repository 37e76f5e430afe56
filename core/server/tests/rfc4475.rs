//! All 50 RFC 4475 torture messages sent over UDP to a running `sentiric`:
//! the valid ones are processed (answered by the call logic, never 400,
//! the long one too), the malformed ones get the response the RFC's
//! analysis calls for (or are dropped where no response can be built),
//! nothing crashes the switch, and it still answers OPTIONS afterwards.

use std::net::UdpSocket;
use std::path::PathBuf;

use std::time::Duration;

mod common;
use common::Switch;

/// What the switch does with each of the 50 messages: the status of its
/// first response past 100, or `None` for a drop. The valid ones are
/// processed as any request would be (a response from the call logic,
/// not 400); the invalid ones get what the RFC's analysis calls for; the
/// "either" ones what the switch committed to.
fn expected(file: &str) -> Option<u16> {
    let section = file.split('-').next().unwrap();
    match section {
        // Valid. An INVITE in a dialog the switch does not have (To tag).
        "3.1.1.1" => Some(481),
        // Valid: methods the switch does not implement (MESSAGE, NEWMETHOD,
        // REGISTER: no registrar yet) get 501 with Allow.
        "3.1.1.2" | "3.1.1.4" | "3.1.1.5" | "3.1.1.8" | "3.1.1.11" | "3.3.7" | "3.3.12"
        | "3.3.13" | "3.3.14" => Some(501),
        // Valid INVITEs for users the demo dialplan does not serve.
        "3.1.1.3" | "3.1.1.7" | "3.3.15" | "3.4.1" => Some(404),
        // Valid OPTIONS, answered (Max-Forwards 0 too: the switch is the
        // endpoint of an OPTIONS, RFC 4475 §3.3.11).
        "3.1.1.6" | "3.1.1.9" | "3.1.1.10" | "3.3.11" => Some(200),
        // Valid responses matching no transaction: absorbed (RFC 3261
        // §18.1.2), as is one to a broadcast address (§3.3.10).
        "3.1.1.12" | "3.1.1.13" | "3.3.10" => None,
        // Valid, refused by the element's checks: URI schemes, Require,
        // a body that is not SDP.
        "3.3.2" | "3.3.3" | "3.3.4" => Some(416),
        "3.3.5" => Some(420),
        "3.3.6" => Some(415),
        // Invalid.
        "3.1.2.1" | "3.1.2.2" | "3.1.2.3" | "3.1.2.4" | "3.1.2.6" | "3.1.2.8" | "3.1.2.17"
        | "3.1.2.18" | "3.3.1" | "3.3.8" | "3.3.9" => Some(400),
        "3.1.2.16" => Some(505),
        // Invalid responses: dropped.
        "3.1.2.5" | "3.1.2.19" => None,
        // Either: rejected as malformed.
        "3.1.2.7" | "3.1.2.13" | "3.1.2.15" => Some(400),
        // Either: taken liberally and processed.
        "3.1.2.9" | "3.1.2.11" | "3.1.2.12" => Some(404),
        "3.1.2.10" | "3.1.2.14" | "3.2.1" => Some(200),
        // Either: no SIP version on the start line, nothing to answer.
        "A.1" => None,
        other => panic!("{file}: no expectation for section {other}"),
    }
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes)
        .ok()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()
}

/// The messages in rounds, each round for a switch of its own: several
/// messages of the RFC share a top Via (branch and sent-by) and method,
/// and one switch rightly takes the later ones for retransmissions of the
/// first (RFC 3261 §17.2.3).
fn rounds(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sip"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 50, "{files:?}");
    // Each round: the (Via, method) pairs it holds, and its files.
    type Round = (std::collections::HashSet<(String, String)>, Vec<String>);
    let mut rounds: Vec<Round> = Vec::new();
    for file in files {
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let via = text
            .lines()
            .find(|l| l.starts_with("Via:") || l.starts_with("v:"))
            .unwrap_or("")
            .to_string();
        let method = text.split_whitespace().next().unwrap_or("").to_string();
        let key = (via, method);
        match rounds.iter_mut().find(|(keys, _)| !keys.contains(&key)) {
            Some((keys, files)) => {
                keys.insert(key);
                files.push(file);
            }
            None => rounds.push(([key].into(), vec![file])),
        }
    }
    rounds.into_iter().map(|(_, files)| files).collect()
}

#[test]
fn every_torture_message_over_udp() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sip/tests/data/rfc4475");
    let mut checked = 0;
    for round in rounds(&dir) {
        let s = Switch::start(None, &[]);
        for file in &round {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.send_to(&bytes, s.addr).unwrap();
            let mut buf = vec![0u8; 65_535];
            match expected(file) {
                Some(code) => {
                    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    // The first non-100 response.
                    let (got, text) = loop {
                        let (n, _) = sock
                            .recv_from(&mut buf)
                            .unwrap_or_else(|_| panic!("{file}: no {code} within 2 s"));
                        match status_of(&buf[..n]) {
                            Some(100) => continue,
                            s => break (s, String::from_utf8_lossy(&buf[..n]).into_owned()),
                        }
                    };
                    assert_eq!(got, Some(code), "{file}: {text}");
                    // What the RFC asks to come with it.
                    let has = |name: &str| {
                        text.lines()
                            .any(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                    };
                    match code {
                        501 => assert!(has("allow"), "{file}: 501 without Allow"),
                        420 => assert!(has("unsupported"), "{file}: 420 without Unsupported"),
                        415 => assert!(has("accept"), "{file}: 415 without Accept"),
                        _ => {}
                    }
                }
                None => {
                    sock.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    assert!(sock.recv_from(&mut buf).is_err(), "{file}: answered");
                }
            }
            checked += 1;
        }
        // Each round's switch is still up and answering.
        still_answers(&s);
    }
    assert_eq!(checked, 50, "every message");
}

/// `sw` answers an OPTIONS: nothing it was sent broke it.
fn still_answers(sw: &Switch) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let options = format!(
        "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKafter\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{}>\r\nCall-ID: after\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sw.addr, sw.addr
    );
    sock.send_to(options.as_bytes(), sw.addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).expect("OPTIONS answered");
    assert_eq!(status_of(&buf[..n]), Some(200));
}
