//! Inputs that once crashed a fuzz target, kept as regression tests. Each
//! file in `tests/regressions/` is fed to every parser; none may panic, and
//! the expected outcome is checked where it is known.

use std::path::PathBuf;

use sentiric_sip::{Disposition, Framing, KeepAliveRole, Message, ParseLimits, StreamFramer};

fn all_inputs() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn no_regression_panics() {
    for (name, bytes) in all_inputs() {
        let parsed = Message::parse(&bytes);
        if let Ok(m) = &parsed {
            let _ = m.validate();
            // Serializing may add the Content-Length line the datagram lacked.
            let limits = ParseLimits {
                max_headers: ParseLimits::default().max_headers + 1,
                ..ParseLimits::default()
            };
            let again = m.to_bytes();
            Message::parse_with(&again, &limits, Framing::Datagram)
                .unwrap_or_else(|e| panic!("{name}: round trip: {e}"));
        }
        let mut f = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
        f.push(&bytes);
        while let Ok(Some(sentiric_sip::Frame::Message(m))) = f.next_frame() {
            let _ = Message::parse_with(m, &ParseLimits::default(), Framing::Stream);
        }
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = sentiric_sip::Uri::parse(s);
            let _ = sentiric_sip::Via::parse(s);
            let _ = sentiric_sip::NameAddr::parse(s);
            if let Ok(c) = sentiric_sip::digest::Challenge::parse(s) {
                let again = sentiric_sip::digest::Challenge::parse(&c.to_header_value());
                assert_eq!(again.as_ref(), Ok(&c), "{name}");
            }
            if let Ok(c) = sentiric_sip::digest::Credentials::parse(s) {
                let again = sentiric_sip::digest::Credentials::parse(&c.to_header_value());
                assert_eq!(again.as_ref(), Ok(&c), "{name}");
            }
        }
    }
}

/// A non-ASCII third request-line word used to be sliced at byte 4 while
/// checking whether it looked like a SIP version.
#[test]
fn non_ascii_version_is_a_bad_start_line() {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions/message-version-char-boundary.bin"),
    )
    .unwrap();
    let e = Message::parse(&bytes).unwrap_err();
    assert_eq!(e.disposition(), Disposition::Drop);
}

/// `nc` without `qop` used to survive parsing but not serialization, so
/// credentials did not round-trip.
#[test]
fn nc_without_qop_is_dropped() {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions/digest-nc-without-qop.bin"),
    )
    .unwrap();
    let c = sentiric_sip::digest::Credentials::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
    assert_eq!((c.nc, c.cnonce, c.qop_auth), (None, None, false));
}

/// A line feed inside an unquoted digest parameter used to be accepted and
/// then lost on serialization.
#[test]
fn line_feed_in_digest_value_is_malformed() {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions/digest-line-feed-in-unquoted-nonce.bin"),
    )
    .unwrap();
    let s = std::str::from_utf8(&bytes).unwrap();
    assert_eq!(
        sentiric_sip::digest::Challenge::parse(s),
        Err(sentiric_sip::digest::DigestError::Malformed)
    );
}
