//! Digest challenges and credentials: parse, and round-trip what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_sip::digest::{Authenticator, Challenge, Credentials};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Challenge::parse(s) {
        let again = Challenge::parse(&c.to_header_value()).expect("challenge round trip");
        assert_eq!(again, c);
        let _ = c.answer("u", "p", "INVITE", "sip:a@b", "cn", 1);
    }
    if let Ok(c) = Credentials::parse(s) {
        let again = Credentials::parse(&c.to_header_value()).expect("credentials round trip");
        assert_eq!(again, c);
        let auth = Authenticator::new(b"fuzzing-secret-0123456789", 60);
        let _ = auth.verify(1_000, &c.realm, &c, "INVITE", "00");
    }
});
