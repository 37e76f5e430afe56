//! Hostile input: arbitrary and mutated bytes never panic the RTP and RTCP
//! parsers, and generated packets survive a round trip.

use proptest::prelude::*;
use sentiric_rtp::packet::{RtpHeader, RtpPacket};
use sentiric_rtp::rtcp::{self, Compound, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};

fn block() -> impl Strategy<Value = ReportBlock> {
    (
        any::<u32>(),
        any::<u8>(),
        -0x80_0000i32..=0x7f_ffff,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, cumulative_lost, highest_sequence, jitter)| ReportBlock {
                ssrc,
                fraction_lost,
                cumulative_lost,
                highest_sequence,
                jitter,
                last_sr: ssrc ^ jitter,
                delay_since_last_sr: highest_sequence / 3,
            },
        )
}

fn compound() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        any::<u32>(),
        prop::collection::vec(block(), 0..5),
        "[a-z0-9@.]{0,40}",
        prop::collection::vec(any::<u32>(), 0..4),
        prop::option::of("[ -~]{0,30}"),
    )
        .prop_map(|(sender, ssrc, reports, cname, bye, reason)| {
            let mut v = Vec::new();
            if sender {
                SenderReport {
                    ssrc,
                    ntp: u64::from(ssrc) << 20,
                    rtp_timestamp: 1,
                    packet_count: 2,
                    octet_count: 3,
                    reports,
                }
                .write(&mut v);
            } else {
                ReceiverReport { ssrc, reports }.write(&mut v);
            }
            rtcp::write_sdes_cname(ssrc, &cname, &mut v);
            if !bye.is_empty() {
                rtcp::write_bye(&bye, reason.as_deref(), &mut v);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = RtpPacket::parse(&b) {
            prop_assert!(p.header_len() + p.payload().len() + p.padding_len() == b.len());
            let _ = (p.csrcs().count(), p.extension());
        }
        if let Ok(c) = Compound::parse(&b) {
            prop_assert!(!c.packets.is_empty());
        }
    }

    #[test]
    fn rtp_round_trip(marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32,
                      payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
        let mut v = Vec::new();
        h.write(&payload, &mut v);
        let p = RtpPacket::parse(&v).unwrap();
        prop_assert_eq!((p.marker(), p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (marker, pt, seq, ts, ssrc));
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn rtcp_round_trip_and_mutations(v in compound(),
                                     flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let c = Compound::parse(&v).unwrap();
        let reports = match &c.packets[0] {
            RtcpPacket::SenderReport(sr) => sr.reports().count(),
            RtcpPacket::ReceiverReport(rr) => rr.reports().count(),
            other => panic!("{other:?}"),
        };
        prop_assert!(reports <= 5);
        let mut m = v.clone();
        for (i, x) in flips {
            let i = i.index(m.len());
            m[i] = x;
        }
        let _ = Compound::parse(&m);
        let _ = RtpPacket::parse(&m);
    }
}
