//! Every RFC 4475 torture message sent over UDP to a running `sentiric`:
//! the malformed ones get the response the RFC's analysis calls for (or
//! are dropped where no response can be built), nothing crashes the
//! switch, and it still answers OPTIONS afterwards.

use std::net::UdpSocket;
use std::path::PathBuf;

use std::time::Duration;

mod common;
use common::Switch;

/// The status the switch answers a malformed message with, or `None` for a
/// drop (no response can be addressed).
fn expected(file: &str) -> Option<Option<u16>> {
    Some(match file.split('-').next()? {
        "3.1.2.1" | "3.1.2.2" | "3.1.2.3" | "3.1.2.4" | "3.1.2.6" | "3.1.2.8" | "3.1.2.7"
        | "3.1.2.13" | "3.1.2.15" | "3.1.2.17" | "3.1.2.18" | "3.3.1" | "3.3.8" | "3.3.9" => {
            Some(400)
        }
        "3.1.2.16" => Some(505),
        // Well formed, but for an element's checks: unknown URI schemes,
        // an unsupported required extension.
        "3.3.2" | "3.3.3" => Some(416),
        "3.3.5" => Some(420),
        "3.1.2.5" | "3.1.2.19" | "A.1" => None,
        _ => return None,
    })
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes)
        .ok()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()
}

#[test]
fn every_torture_message_over_udp() {
    let sw = Switch::start(None, &[]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sip/tests/data/rfc4475");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sip") || n.ends_with(".dat"))
        .collect();
    files.sort();
    assert!(files.len() >= 49, "{files:?}");
    let mut checked = 0;
    let mut seen = std::collections::HashSet::new();
    for file in &files {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&bytes, sw.addr).unwrap();
        // Several messages of the RFC share a top Via (branch and
        // sent-by) and method: the switch rightly takes the later ones for
        // retransmissions of the first (RFC 3261 §17.2.3) and answers the
        // first's source, so only first occurrences are checked.
        let text = String::from_utf8_lossy(&bytes);
        let via = text
            .lines()
            .find(|l| l.starts_with("Via:") || l.starts_with("v:"));
        let method = text.split_whitespace().next().unwrap_or("");
        if !seen.insert((via.unwrap_or("").to_string(), method.to_string())) {
            continue;
        }
        let Some(want) = expected(file) else {
            continue;
        };
        let mut buf = vec![0u8; 65_535];
        match want {
            Some(code) => {
                sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                // The first non-100 response.
                let got = loop {
                    let (n, _) = sock
                        .recv_from(&mut buf)
                        .unwrap_or_else(|_| panic!("{file}: no {code} within 2 s"));
                    match status_of(&buf[..n]) {
                        Some(100) => continue,
                        s => break s,
                    }
                };
                assert_eq!(got, Some(code), "{file}");
            }
            None => {
                sock.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                assert!(sock.recv_from(&mut buf).is_err(), "{file}: answered");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 19, "messages with a committed outcome");

    // Still alive and answering.
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
