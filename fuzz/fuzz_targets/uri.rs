//! URIs: no panic, and every accessor is safe on what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_sip::{unescape, Uri, UriKind};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(u) = Uri::parse(s) else { return };
    assert_eq!(u.as_str(), s);
    let _ = u.scheme();
    if let Some(user) = u.user() {
        let _ = unescape(user);
    }
    match u.kind() {
        UriKind::Sip(sip) => {
            for p in sip.params {
                let _ = (p.name, p.value);
            }
            let _ = (sip.host.to_string(), sip.port, sip.transport(), sip.is_loose_route());
        }
        UriKind::Tel(t) => {
            let _ = t.is_global();
        }
        _ => {}
    }
});
