//! RFC 4475 torture tests: every message of the RFC's archive, checked
//! against `INDEX.tsv`, over datagram framing and over stream framing.
//!
//! Beyond the index's verdict, each message has the outcome this element
//! commits to (the response code, "drop", "close"), so a change of
//! behaviour shows up here.

use std::path::PathBuf;

use sentiric_sip::check::{check_request, RequestPolicy};
use sentiric_sip::{Disposition, Framing, KeepAliveRole, Message, ParseLimits, StreamFramer};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

struct Case {
    file: String,
    expected: String,
    bytes: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let index = std::fs::read_to_string(dir().join("INDEX.tsv")).unwrap();
    let cases: Vec<Case> = index
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Case {
                file: cols[0].to_string(),
                expected: cols[3].to_string(),
                bytes: std::fs::read(dir().join(cols[0])).unwrap(),
            }
        })
        .collect();
    assert_eq!(
        cases.len(),
        50,
        "49 RFC messages and the archive's test.dat"
    );
    cases
}

/// What this element does with each message received in a datagram.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Accept,
    Respond(u16),
    Drop,
}

/// Parse, then what parsing leaves for the transaction user: the URIs and
/// address headers (`Message::validate`).
fn receive<'a>(
    bytes: &'a [u8],
    limits: &ParseLimits,
    framing: Framing,
) -> Result<Message<'a>, sentiric_sip::ParseError> {
    let m = Message::parse_with(bytes, limits, framing)?;
    m.validate()?;
    Ok(m)
}

fn datagram_outcome(bytes: &[u8]) -> Outcome {
    match receive(bytes, &ParseLimits::default(), Framing::Datagram) {
        Ok(_) => Outcome::Accept,
        Err(e) => match e.disposition() {
            Disposition::Respond { status, .. } => Outcome::Respond(status),
            Disposition::Drop => Outcome::Drop,
            Disposition::CloseConnection => unreachable!("datagrams never close"),
        },
    }
}

fn committed(file: &str) -> Outcome {
    use Outcome::*;
    match file.split('-').next().unwrap() {
        "3.1.2.1" | "3.1.2.2" | "3.1.2.3" | "3.1.2.4" | "3.1.2.6" | "3.1.2.8" => Respond(400),
        "3.1.2.16" => Respond(505),
        "3.1.2.17" | "3.1.2.18" | "3.3.1" | "3.3.8" | "3.3.9" => Respond(400),
        "3.1.2.5" | "3.1.2.19" => Drop,
        // Either: rejected as malformed.
        "3.1.2.7" | "3.1.2.13" | "3.1.2.15" => Respond(400),
        // Either: the unanswerable start line of the archive's test.dat.
        "A.1" => Drop,
        // Everything else (valid, and the liberal "either" cases) is accepted.
        _ => Accept,
    }
}

#[test]
fn files_arrived_unchanged() {
    use sha2::{Digest, Sha256};
    let sums = std::fs::read_to_string(dir().join("SHA256SUMS")).unwrap();
    let mut n = 0;
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        let data = std::fs::read(dir().join(name)).unwrap();
        let got: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, hash, "{name}");
        n += 1;
    }
    assert!(n >= 50);
}

#[test]
fn datagram_verdicts() {
    for c in cases() {
        let got = datagram_outcome(&c.bytes);
        match c.expected.as_str() {
            "valid" => assert_eq!(got, Outcome::Accept, "{} must parse", c.file),
            "invalid" => assert_ne!(got, Outcome::Accept, "{} must be rejected", c.file),
            "either" => {}
            other => panic!("unknown verdict {other}"),
        }
        assert_eq!(got, committed(&c.file), "{}", c.file);
    }
}

#[test]
fn element_checks_on_valid_messages() {
    let policy = RequestPolicy::default();
    let status = |file: &str, policy: &RequestPolicy<'_>| {
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let m = Message::parse(&bytes).unwrap();
        check_request(m.as_request().unwrap(), policy)
            .err()
            .map(|r| (r.status(), r.extra_header()))
    };
    assert_eq!(status("3.3.2-unkscm.sip", &policy).unwrap().0, 416);
    assert_eq!(status("3.3.3-novelsc.sip", &policy).unwrap().0, 416);
    let (code, extra) = status("3.3.5-bext01.sip", &policy).unwrap();
    assert_eq!(code, 420);
    assert_eq!(
        extra.unwrap().1,
        "nothingSupportsThis, nothingSupportsThisEither"
    );
    let proxy = RequestPolicy {
        proxy: true,
        ..RequestPolicy::default()
    };
    let (_, extra) = status("3.3.5-bext01.sip", &proxy).unwrap();
    assert!(extra.unwrap().1.contains("noProxiesSupportThis"));
    // Max-Forwards 0: a proxy answers 483, an endpoint processes the request.
    assert_eq!(
        status("3.3.11-zeromf.sip", &proxy),
        None,
        "OPTIONS may be answered"
    );
    assert_eq!(status("3.3.11-zeromf.sip", &policy), None);
    let bytes = std::fs::read(dir().join("3.3.11-zeromf.sip")).unwrap();
    let s = String::from_utf8(bytes).unwrap().replace("OPTIONS", "INFO");
    let m = Message::parse(s.as_bytes()).unwrap();
    assert_eq!(
        check_request(m.as_request().unwrap(), &proxy)
            .unwrap_err()
            .status(),
        483
    );
    let sdp_only = RequestPolicy {
        content_types: Some(&["application/sdp"]),
        ..RequestPolicy::default()
    };
    assert_eq!(status("3.3.6-invut.sip", &sdp_only).unwrap().0, 415);
    assert_eq!(status("3.1.1.1-wsinv.sip", &sdp_only), None);
}

#[test]
fn valid_messages_expose_their_fields() {
    let read = |f: &str| std::fs::read(dir().join(f)).unwrap();
    let b = read("3.1.1.1-wsinv.sip");
    let m = Message::parse(&b).unwrap();
    let r = m.as_request().unwrap();
    assert_eq!(r.to().tag(), Some("1918181833n"));
    assert_eq!(r.from().tag(), Some("98asjd8"));
    assert_eq!(r.cseq().seq, 9);
    assert_eq!(r.max_forwards(), Some(68));
    assert_eq!(r.vias().count(), 3);
    assert_eq!(r.body.len(), 150);

    // The datagram ends without the empty line; the fault is the display name.
    let e = Message::parse(&read("3.1.2.15-baddn.sip")).unwrap_err();
    assert!(e.to_string().contains("display name"), "{e}");

    let b = read("3.1.1.9-semiuri.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(
        m.as_request().unwrap().uri().unwrap().user(),
        Some("user;par=u%40example.net")
    );
    let b = read("3.1.1.4-escnull.sip");
    let m = Message::parse(&b).unwrap();
    let to = m.as_request().unwrap().to().uri().unwrap();
    let user = to.user().unwrap();
    assert_eq!(&*sentiric_sip::unescape(user), b"null-\0-null");

    // The datagram holds a second request after the first one's body: ignored.
    let b = read("3.1.1.8-dblreq.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.core().cseq.method.as_str(), "REGISTER");
    assert!(m.body().is_empty());

    let b = read("3.1.1.13-noreason.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.as_response().unwrap().reason, "");
    let b = read("3.1.1.10-transports.sip");
    let m = Message::parse(&b).unwrap();
    let transports: Vec<_> = m
        .headers()
        .items(sentiric_sip::HeaderName::Via)
        .map(|v| sentiric_sip::Via::parse(v).unwrap().transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let b = read("3.1.1.11-mpart01.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.body().len(), 553);
}

/// Over a stream, each file is fed to the framer in small pieces.
#[derive(Debug, PartialEq, Eq)]
enum StreamOutcome {
    Accept,
    Respond(u16),
    Drop,
    Close,
    NeedMore,
}

fn stream_outcome(bytes: &[u8]) -> StreamOutcome {
    let limits = ParseLimits::default();
    let mut framer = StreamFramer::new(limits, KeepAliveRole::Server);
    for chunk in bytes.chunks(7) {
        framer.push(chunk);
    }
    match framer.next_frame() {
        Err(_) => StreamOutcome::Close,
        Ok(None) => StreamOutcome::NeedMore,
        Ok(Some(sentiric_sip::Frame::Message(m))) => match receive(m, &limits, Framing::Stream) {
            Ok(_) => StreamOutcome::Accept,
            Err(e) => match e.disposition() {
                Disposition::Respond { status, .. } => StreamOutcome::Respond(status),
                Disposition::Drop => StreamOutcome::Drop,
                Disposition::CloseConnection => StreamOutcome::Close,
            },
        },
        Ok(Some(other)) => panic!("unexpected keep-alive {other:?}"),
    }
}

#[test]
fn stream_verdicts() {
    for c in cases() {
        let got = stream_outcome(&c.bytes);
        let want = match c.file.split('-').next().unwrap() {
            // Negative or repeated Content-Length: the framing is lost (§3.1.2.3, §3.3.9).
            "3.1.2.3" | "3.3.9" => StreamOutcome::Close,
            // Content-Length larger than what was sent, or no empty line
            // after the headers: keep waiting for the rest.
            "3.1.2.2" | "3.1.2.15" => StreamOutcome::NeedMore,
            // RFC 2543 allowed leaving out Content-Length; a stream cannot.
            "3.4.1" => StreamOutcome::Close,
            f => match committed(&c.file) {
                Outcome::Accept => StreamOutcome::Accept,
                Outcome::Respond(s) => StreamOutcome::Respond(s),
                Outcome::Drop if f == "A.1" => StreamOutcome::Drop,
                Outcome::Drop => StreamOutcome::Drop,
            },
        };
        assert_eq!(got, want, "{}", c.file);
        if c.expected == "invalid" {
            assert_ne!(got, StreamOutcome::Accept, "{}", c.file);
        }
    }
}

#[test]
fn stream_of_all_valid_messages_frames_in_order() {
    let limits = ParseLimits::default();
    let mut framer = StreamFramer::new(limits, KeepAliveRole::Server);
    let mut sent = Vec::new();
    let mut stream = Vec::new();
    for c in cases() {
        if c.expected != "valid" || c.file.starts_with("3.4.1") || c.file.starts_with("3.1.1.8") {
            continue;
        }
        stream.extend_from_slice(&c.bytes);
        stream.extend_from_slice(b"\r\n\r\n");
        sent.push(c.file);
    }
    let mut got = 0;
    for chunk in stream.chunks(1400) {
        framer.push(chunk);
        loop {
            match framer.next_frame().unwrap() {
                Some(sentiric_sip::Frame::Message(m)) => {
                    receive(m, &limits, Framing::Stream)
                        .unwrap_or_else(|e| panic!("{}: {e}", sent[got]));
                    got += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    assert_eq!(got, sent.len());
}
