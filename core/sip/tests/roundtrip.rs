//! Property tests: generated messages survive parse → serialize → parse,
//! and no input, however mangled, makes the parser or framer panic.

use proptest::prelude::*;
use sentiric_sip::{
    unfold, Framing, HeaderName, KeepAliveRole, Message, ParseLimits, StreamFramer,
};

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

fn uri_param() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.!~*'()-]{1,6}(%[0-9a-fA-F]{2})?"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[2001:db8::1]".to_string()),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}|%[0-9A-F]{2}[a-z]{1,4}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec((uri_param(), prop::option::of(uri_param())), 0..3),
        any::<bool>(),
    )
        .prop_map(|(user, host, port, params, secure)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn display_name() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "[a-zA-Z][a-zA-Z0-9]{0,6}( [a-zA-Z0-9]{1,6}){0,2}",
        "[ -!#-\\[\\]-~àéüß]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just("\"J Rosenberg \\\\\\\"\"".to_string()),
    ])
}

fn name_addr(tag: Option<String>) -> impl Strategy<Value = String> {
    (display_name(), sip_uri()).prop_map(move |(d, u)| {
        let mut s = match d {
            Some(d) => format!("{d} <{u}>"),
            None => format!("<{u}>"),
        };
        if let Some(t) = &tag {
            s.push_str(";tag=");
            s.push_str(t);
        }
        s
    })
}

/// Inserts a fold (CRLF + white space) at some spaces of a value.
fn fold(value: &str, seed: u32) -> String {
    let mut out = String::new();
    for (i, part) in value.split(' ').enumerate() {
        if i > 0 {
            out.push_str(if seed >> (i % 31) & 1 == 1 {
                "\r\n  "
            } else {
                " "
            });
        }
        out.push_str(part);
    }
    out
}

prop_compose! {
    fn request()(
        method in prop_oneof![Just("INVITE".to_string()), Just("OPTIONS".to_string()), Just("BYE".to_string()), "[A-Z]{3,9}"],
        ruri in sip_uri(),
        branches in prop::collection::vec("[a-zA-Z0-9]{1,12}", 1..4),
        via_hosts in prop::collection::vec(host(), 3),
        from in name_addr(Some("ftag1".into())),
        to in name_addr(None),
        call_id in "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        seq in 0u32..(1 << 31),
        mf in prop::option::of(0u8..=255),
        extra in prop::collection::vec((token(), "[ -~]{0,30}"), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..64),
        fold_seed in any::<u32>(),
        compact in any::<bool>(),
    ) -> Vec<u8> {
        let mut s = format!("{method} {ruri} SIP/2.0\r\n");
        for (i, b) in branches.iter().enumerate() {
            let v = format!("SIP/2.0/UDP {};branch=z9hG4bK{b};rport", via_hosts[i % 3]);
            s.push_str(&format!("{}: {}\r\n", if compact { "v" } else { "Via" }, fold(&v, fold_seed)));
        }
        s.push_str(&format!("{}: {}\r\n", if compact { "f" } else { "From" }, fold(&from, fold_seed)));
        s.push_str(&format!("To: {to}\r\n"));
        s.push_str(&format!("{}: {call_id}\r\n", if compact { "i" } else { "Call-ID" }));
        s.push_str(&format!("CSeq: {seq} {method}\r\n"));
        if let Some(mf) = mf {
            s.push_str(&format!("Max-Forwards: {mf}\r\n"));
        }
        for (n, v) in &extra {
            // Extension names must not collide with the headers above.
            s.push_str(&format!("X-{n}: {}\r\n", fold(v.trim(), fold_seed)));
        }
        s.push_str(&format!("{}: {}\r\n\r\n", if compact { "l" } else { "Content-Length" }, body.len()));
        let mut b = s.into_bytes();
        b.extend_from_slice(&body);
        b
    }
}

fn assert_same(a: &Message<'_>, b: &Message<'_>) {
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => {
            assert_eq!(x.method, y.method);
            assert_eq!(x.uri_str(), y.uri_str());
            assert_eq!(x.uri(), y.uri());
        }
        (Message::Response(x), Message::Response(y)) => {
            assert_eq!(x.status, y.status);
            assert_eq!(x.reason, y.reason);
        }
        _ => panic!("kind changed"),
    }
    let ha: Vec<_> = a
        .headers()
        .iter()
        .filter(|h| h.name != HeaderName::ContentLength)
        .map(|h| (h.name.as_str().to_string(), unfold(h.value).into_owned()))
        .collect();
    let hb: Vec<_> = b
        .headers()
        .iter()
        .filter(|h| h.name != HeaderName::ContentLength)
        .map(|h| (h.name.as_str().to_string(), unfold(h.value).into_owned()))
        .collect();
    assert_eq!(ha, hb);
    let (ca, cb) = (a.core(), b.core());
    assert_eq!(ca.call_id, cb.call_id);
    assert_eq!(ca.cseq, cb.cseq);
    assert_eq!(ca.via.branch(), cb.via.branch());
    assert_eq!(ca.via.host, cb.via.host);
    assert_eq!(ca.via.port, cb.via.port);
    assert_eq!(ca.from.tag(), cb.from.tag());
    assert_eq!(ca.from.uri(), cb.from.uri());
    assert_eq!(ca.to.uri(), cb.to.uri());
    assert_eq!(ca.max_forwards, cb.max_forwards);
    assert_eq!(a.body(), b.body());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_serialize_parse(raw in request()) {
        let m1 = Message::parse(&raw).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
        m1.validate().unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
        let bytes = m1.to_bytes();
        let m2 = Message::parse(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert_same(&m1, &m2);
        // Serializing is a fixed point after one round.
        prop_assert_eq!(m2.to_bytes(), bytes);
    }

    #[test]
    fn responses_roundtrip(raw in request(), code in 100u16..=699, reason in "[ -~]{0,20}") {
        let req = Message::parse(&raw).unwrap();
        let req = req.as_request().unwrap();
        let bytes = sentiric_sip::build::response_to(req, code, reason.trim(), Some("tt")).body(None, req.body);
        let r1 = Message::parse(&bytes).unwrap();
        let r2_bytes = r1.to_bytes();
        let r2 = Message::parse(&r2_bytes).unwrap();
        assert_same(&r1, &r2);
    }

    #[test]
    fn mangled_messages_never_panic(raw in request(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut b = raw.clone();
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] = v;
        }
        if let Ok(m) = Message::parse(&b) {
            let _ = m.validate();
        }
        let _ = Message::parse(&b[..cut.index(b.len())]);
        let limits = ParseLimits::default();
        let mut f = StreamFramer::new(limits, KeepAliveRole::Server);
        f.push(&b);
        while let Ok(Some(sentiric_sip::Frame::Message(m))) = f.next_frame() {
            let _ = Message::parse_with(m, &limits, Framing::Stream);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::parse(&b) {
            let _ = m.validate();
        }
        let _ = sentiric_sip::Uri::parse(&String::from_utf8_lossy(&b));
        let _ = sentiric_sip::digest::Credentials::parse(&String::from_utf8_lossy(&b));
    }
}
