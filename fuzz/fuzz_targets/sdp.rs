//! SDP: parse; what parses serializes to text that parses to the same
//! description; offer/answer on it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_sdp::{answer, Codec, Direction, LocalMedia, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SessionDescription::parse(data) else { return };
    let text = sd.to_string();
    let again = SessionDescription::parse_str(&text).expect("serialized SDP parses");
    assert_eq!(again.to_string(), text, "serialization is not a fixed point");
    let local = LocalMedia {
        address: "127.0.0.1".parse().expect("literal"),
        codecs: vec![Codec::new("PCMU", 8000, 1), Codec::new("opus", 48000, 2)],
        telephone_event: true,
        direction: Direction::SendRecv,
        rtcp_mux: true,
        username: "-".into(),
        session_id: 1,
        session_version: 1,
    };
    if let Ok(ans) = answer(&sd, &local, |i| Some(20000u16.wrapping_add(i as u16))) {
        SessionDescription::parse_str(&ans.to_string()).expect("answer parses");
    }
    for i in 0..sd.media.len() {
        let _ = (sd.is_hold(i), sd.media[i].rtcp(), sd.media[i].ptime());
    }
});
