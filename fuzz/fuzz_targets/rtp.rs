//! RTP: parse, read every field, rewrite a copy as the relay does, and
//! feed it through latching, the stream rewriter, statistics, the jitter
//! buffer and the DTMF detector; nothing may panic, and a rewrite keeps the packet valid.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sentiric_rtp::dtmf::DtmfDetector;
use sentiric_rtp::jitter::{JitterBuffer, JitterConfig};
use sentiric_rtp::relay::{LatchPolicy, SourceFilter, StreamRewriter};
use sentiric_rtp::stats::ReceiverStats;
use sentiric_rtp::RtpPacket;

fuzz_target!(|data: &[u8]| {
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut filter = SourceFilter::new(LatchPolicy::AnySource, None);
    let _ = filter.check_rtp(from, data);
    let Ok(p) = RtpPacket::parse(data) else { return };
    let fields = (p.marker(), p.payload_type(), p.csrcs().count(), p.extension(), p.payload().len(), p.padding_len());
    let mut copy = data.to_vec();
    let now = Instant::now();
    let mut rw = StreamRewriter::new(7, 8000);
    rw.rewrite(&mut copy, now).expect("a valid packet rewrites");
    let q = RtpPacket::parse(&copy).expect("a rewritten packet stays valid");
    assert_eq!(q.ssrc(), 7);
    assert_eq!((q.payload_type(), q.csrcs().count(), q.extension(), q.payload().len(), q.padding_len()),
        (fields.1, fields.2, fields.3, fields.4, fields.5));
    let mut stats = ReceiverStats::new(p.sequence(), 8000);
    for k in 0..3u32 {
        stats.on_packet(p.sequence().wrapping_add(k as u16), p.timestamp(), p.payload().len(), now + Duration::from_millis(u64::from(k)));
    }
    let _ = stats.report(1, now);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for k in 0..3u16 {
        let at = now + Duration::from_millis(u64::from(k) * 7);
        jb.push(p.sequence().wrapping_add(k * 3), p.timestamp().wrapping_add(u32::from(k) * 160), p.marker(), p.payload(), at);
        let _ = jb.pop(at + Duration::from_millis(300));
    }
    let mut d = DtmfDetector::new();
    let _ = d.on_packet(p.timestamp(), p.payload());
    let _ = d.flush();
});
