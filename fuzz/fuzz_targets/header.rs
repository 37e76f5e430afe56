//! Header values through every typed parser: Via, name-addr, CSeq, comma
//! splitting, unquoting and unfolding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_sip::{unfold, unquote, CSeq, NameAddr, Via};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(v) = Via::parse(s) {
        let _ = (v.branch(), v.received(), v.rport(), v.is_rfc3261_branch());
    }
    if let Ok(n) = NameAddr::parse(s) {
        let _ = n.tag();
        if let Some(d) = n.display_name {
            let _ = unquote(d);
        }
    }
    let _ = CSeq::parse(s);
    let _ = unfold(s);
    let _ = unquote(s);
});
