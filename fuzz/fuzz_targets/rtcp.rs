//! RTCP: parse a compound packet and walk every view; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_rtp::rtcp::{Compound, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Compound::parse(data) else { return };
    let mut n = 0usize;
    for p in &c.packets {
        match p {
            RtcpPacket::SenderReport(sr) => {
                n += sr.reports().count() + sr.ntp() as usize % 2 + sr.octet_count() as usize % 2;
            }
            RtcpPacket::ReceiverReport(rr) => n += rr.reports().count() + rr.ssrc() as usize % 2,
            RtcpPacket::SourceDescription(sd) => {
                n += sd.chunks.iter().map(|c| c.items.len()).sum::<usize>();
            }
            RtcpPacket::Goodbye(b) => n += b.ssrcs().count() + b.reason().map_or(0, <[u8]>::len),
            RtcpPacket::App(a) => n += a.data.len(),
            _ => n += 1,
        }
    }
    std::hint::black_box(n);
});
