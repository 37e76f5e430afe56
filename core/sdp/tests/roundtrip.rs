//! Property tests for SDP: canonical descriptions survive parse →
//! serialize unchanged, offers always get a well-formed answer or a 488,
//! and no input makes the parser panic.

use proptest::prelude::*;
use sentiric_sdp::{answer, Codec, Direction, LocalMedia, SessionDescription};

fn addr() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        (1u8..=254, 0u8..=255, 1u8..=254).prop_map(|(a, b, c)| ("IP4", format!("{a}.{b}.0.{c}"))),
        (1u16..0xffff).prop_map(|x| ("IP6", format!("2001:db8::{x:x}"))),
    ]
}

prop_compose! {
    fn media()(
        kind in prop_oneof![Just("audio"), Just("video"), Just("application")],
        port in 0u16..,
        pts in prop::collection::vec(0u8..128, 1..6),
        dir in prop::option::of(prop_oneof![Just("sendrecv"), Just("sendonly"), Just("recvonly"), Just("inactive")]),
        ptime in prop::option::of(10u32..120),
        mux in any::<bool>(),
        unknown in prop::option::of("[a-z][a-z0-9-]{0,8}:[ -~]{0,12}"),
        conn in prop::option::of(addr()),
    ) -> String {
        let mut s = format!("m={kind} {port} RTP/AVP");
        for p in &pts {
            s.push_str(&format!(" {p}"));
        }
        s.push_str("\r\n");
        if let Some((t, a)) = conn {
            s.push_str(&format!("c=IN {t} {a}\r\n"));
        }
        for p in &pts {
            if *p >= 96 {
                s.push_str(&format!("a=rtpmap:{p} opus/48000/2\r\n"));
            }
        }
        if let Some(p) = ptime {
            s.push_str(&format!("a=ptime:{p}\r\n"));
        }
        if mux {
            s.push_str("a=rtcp-mux\r\n");
        }
        if let Some(u) = unknown {
            s.push_str(&format!("a={u}\r\n"));
        }
        if let Some(d) = dir {
            s.push_str(&format!("a={d}\r\n"));
        }
        s
    }
}

prop_compose! {
    fn session()(
        (t, a) in addr(),
        id in any::<u64>(),
        version in any::<u64>(),
        name in "[!-~][ -~]{0,10}",
        media in prop::collection::vec(media(), 0..4),
    ) -> String {
        let mut s = format!("v=0\r\no=- {id} {version} IN {t} {a}\r\ns={}\r\nc=IN {t} {a}\r\nt=0 0\r\n", name.trim_end());
        for m in media {
            s.push_str(&m);
        }
        s
    }
}

proptest! {
    #[test]
    fn canonical_roundtrip(text in session()) {
        let sd = SessionDescription::parse_str(&text).unwrap();
        prop_assert_eq!(sd.to_string(), text.clone());
        let owned = sd.into_owned();
        prop_assert_eq!(owned.to_string(), text);
    }

    #[test]
    fn answers_are_well_formed(text in session()) {
        let offer = SessionDescription::parse_str(&text).unwrap();
        let local = LocalMedia {
            address: "127.0.0.1".parse().unwrap(),
            codecs: vec![Codec::new("PCMU", 8000, 1), Codec::new("PCMA", 8000, 1), Codec::new("opus", 48000, 2)],
            telephone_event: true,
            direction: Direction::SendRecv,
            rtcp_mux: true,
            username: "-".into(),
            session_id: 1,
            session_version: 1,
        };
        match answer(&offer, &local, |i| Some(20000 + 2 * i as u16)) {
            Ok(ans) => {
                // RFC 3264 §6: as many m-lines as the offer, in order.
                prop_assert_eq!(ans.media.len(), offer.media.len());
                for (a, o) in ans.media.iter().zip(&offer.media) {
                    prop_assert_eq!(&a.kind, &o.kind);
                    if a.port != 0 {
                        for pt in a.payload_types() {
                            prop_assert!(o.payload_types().any(|p| p == pt));
                        }
                    }
                }
                let text = ans.to_string();
                prop_assert!(SessionDescription::parse_str(&text).is_ok());
            }
            Err(e) => prop_assert_eq!(e.status(), 488),
        }
    }

    #[test]
    fn arbitrary_input_never_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = SessionDescription::parse(&b);
    }

    #[test]
    fn mangled_sdp_never_panics(text in session(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..128), 1..6)) {
        let mut b = text.into_bytes();
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] = v;
        }
        if let Ok(sd) = SessionDescription::parse(&b) {
            let _ = sd.to_string();
            for i in 0..sd.media.len() {
                let _ = sd.is_hold(i);
                let _ = sd.media[i].rtcp();
            }
        }
    }
}

#[test]
fn rfc4475_bodies_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sip/tests/data/rfc4475");
    for name in [
        "3.1.1.1-wsinv.sip",
        "3.3.15-sdp01.sip",
        "3.1.2.12-baddate.sip",
    ] {
        let raw = std::fs::read(dir.join(name)).unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let sd = SessionDescription::parse(&raw[at..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sd.media.len(), 2, "{name}");
        // `a=rtpmap:31 LPC` lacks its clock rate: kept verbatim, not typed.
        assert_eq!(sd.media[1].attribute("rtpmap"), Some(Some("31 LPC")));
        assert!(sd.media[1].rtpmap(31).is_none());
    }
}
