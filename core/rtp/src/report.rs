//! RTCP for a leg the switch terminates (plays to, records, transcodes):
//! when to send the next report (RFC 3550 §6.2 and A.7) and the compound
//! packet itself — SR when the switch sent media since the last report,
//! RR otherwise, each with reception report blocks and an SDES CNAME.
//! Randomness for the interval comes from the caller, like every input of
//! this crate.

use std::time::{Duration, Instant, SystemTime};

use crate::rtcp::{self, ReceiverReport, ReportBlock, SenderReport};
use crate::stats::{ntp_timestamp, ReceiverStats};

/// RFC 3550's minimum report interval.
const T_MIN: Duration = Duration::from_secs(5);
/// The compensation for the randomisation's bias, e − 3/2 (A.7).
const COMPENSATION: f64 = 1.218_281_828_459_045;

/// The sending side of a terminated leg's RTCP.
#[derive(Debug, Clone)]
pub struct RtcpReporter {
    ssrc: u32,
    cname: String,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    sent_since_report: bool,
    /// Timestamp of the last RTP packet sent and when it was sent.
    last_sent: Option<(u32, Instant)>,
    next: Option<Instant>,
    reported: bool,
}

impl RtcpReporter {
    /// Reports for SSRC `ssrc` with canonical name `cname`, on a media
    /// clock of `clock_rate` Hz.
    pub fn new(ssrc: u32, cname: &str, clock_rate: u32) -> Self {
        RtcpReporter {
            ssrc,
            cname: cname.to_string(),
            clock_rate: clock_rate.max(1),
            packets: 0,
            octets: 0,
            sent_since_report: false,
            last_sent: None,
            next: None,
            reported: false,
        }
    }

    /// The switch sent an RTP packet with `timestamp` and `payload_len`
    /// bytes of payload.
    pub fn on_sent(&mut self, timestamp: u32, payload_len: usize, now: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.sent_since_report = true;
        self.last_sent = Some((timestamp, now));
    }

    /// When the next report is due; `None` until [`Self::schedule`].
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// Draws the next report time from `now`: the deterministic interval
    /// (5 s, halved before the first report) times a uniform factor in
    /// [0.5, 1.5) given by `random01` in [0, 1), over e − 3/2.
    pub fn schedule(&mut self, now: Instant, random01: f64) {
        let base = if self.reported { T_MIN } else { T_MIN / 2 };
        let factor = (0.5 + random01.clamp(0.0, 1.0)) / COMPENSATION;
        self.next = Some(now + base.mul_f64(factor));
    }

    /// Writes the compound report for `now` into `out` — SR if media was
    /// sent since the last one, else RR — with a block for each source
    /// received, and the CNAME; then schedules the next.
    pub fn report(
        &mut self,
        now: Instant,
        wallclock: SystemTime,
        sources: &mut [(u32, &mut ReceiverStats)],
        random01: f64,
        out: &mut Vec<u8>,
    ) {
        let reports: Vec<ReportBlock> = sources
            .iter_mut()
            .take(31)
            .map(|(ssrc, s)| s.report(*ssrc, now))
            .collect();
        match (self.sent_since_report, self.last_sent) {
            (true, Some((ts, at))) => {
                // The RTP timestamp of this instant, extrapolated from the
                // last packet sent.
                let elapsed = now.saturating_duration_since(at);
                let ticks =
                    (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
                SenderReport {
                    ssrc: self.ssrc,
                    ntp: ntp_timestamp(wallclock),
                    rtp_timestamp: ts.wrapping_add(ticks),
                    packet_count: self.packets,
                    octet_count: self.octets,
                    reports,
                }
                .write(out);
            }
            _ => ReceiverReport {
                ssrc: self.ssrc,
                reports,
            }
            .write(out),
        }
        rtcp::write_sdes_cname(self.ssrc, &self.cname, out);
        self.sent_since_report = false;
        self.reported = true;
        self.schedule(now, random01);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{Compound, RtcpPacket};

    #[test]
    fn intervals_follow_rfc3550() {
        let t0 = Instant::now();
        let mut r = RtcpReporter::new(1, "sentiric@127.0.0.1", 8000);
        for (rand, first) in [(0.0, true), (0.999, true), (0.0, false), (0.999, false)] {
            let mut r2 = r.clone();
            if !first {
                r2.report(t0, SystemTime::now(), &mut [], 0.5, &mut Vec::new());
            }
            r2.schedule(t0, rand);
            let d = r2.next_due().unwrap() - t0;
            let base = if first { 2.5 } else { 5.0 };
            let want = base * (0.5 + rand) / COMPENSATION;
            assert!((d.as_secs_f64() - want).abs() < 1e-6, "{d:?} vs {want}");
        }
        r.schedule(t0, 0.3);
        assert!(r.next_due().unwrap() > t0);
    }

    #[test]
    fn sender_then_receiver_reports() {
        let t0 = Instant::now();
        let mut r = RtcpReporter::new(0xabc, "sentiric@127.0.0.1", 8000);
        let mut incoming = ReceiverStats::new(100, 8000);
        for i in 0..50u16 {
            r.on_sent(
                1000 + u32::from(i) * 160,
                160,
                t0 + Duration::from_millis(u64::from(i) * 20),
            );
            incoming.on_packet(
                100 + i,
                u32::from(i) * 160,
                160,
                t0 + Duration::from_millis(u64::from(i) * 20),
            );
        }
        let mut out = Vec::new();
        let at = t0 + Duration::from_millis(49 * 20 + 10);
        r.report(
            at,
            SystemTime::now(),
            &mut [(0x77, &mut incoming)],
            0.5,
            &mut out,
        );
        let c = Compound::parse(&out).unwrap();
        let RtcpPacket::SenderReport(sr) = &c.packets[0] else {
            panic!("{:?}", c.packets[0])
        };
        assert_eq!(
            (sr.ssrc(), sr.packet_count(), sr.octet_count()),
            (0xabc, 50, 8000)
        );
        // The last packet's timestamp plus 10 ms at 8 kHz.
        assert_eq!(sr.rtp_timestamp(), 1000 + 49 * 160 + 80);
        let block = sr.reports().next().unwrap();
        assert_eq!((block.ssrc, block.highest_sequence), (0x77, 149));
        assert!(
            matches!(&c.packets[1], RtcpPacket::SourceDescription(sd) if sd.chunks[0].items[0].value == b"sentiric@127.0.0.1")
        );
        assert!(r.next_due().unwrap() > at);
        // Nothing sent since: a receiver report.
        let mut out = Vec::new();
        r.report(
            at + Duration::from_secs(5),
            SystemTime::now(),
            &mut [],
            0.5,
            &mut out,
        );
        let c = Compound::parse(&out).unwrap();
        assert!(matches!(&c.packets[0], RtcpPacket::ReceiverReport(rr) if rr.ssrc() == 0xabc));
    }
}
