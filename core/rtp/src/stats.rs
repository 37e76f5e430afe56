//! RFC 3550 reception statistics for one source: sequence validation
//! (Appendix A.1), loss (A.3), interarrival jitter (A.8), and the report
//! block a receiver sends (§6.4.1), with LSR/DLSR from the last sender
//! report. Arrival times are an input; nothing here reads a clock.

use std::time::{Duration, Instant};

use crate::rtcp::ReportBlock;

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;

/// What [`ReceiverStats::on_packet`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In sequence (or within the reordering window): counted.
    Valid,
    /// Still proving the source (the first packets of a stream, A.1
    /// probation): not counted yet.
    Probation,
    /// A jump too large to be loss or reordering: not counted. A second
    /// packet continuing from it restarts the sequence (the sender
    /// restarted).
    Jump,
}

/// Reception statistics of one synchronization source.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    octets: u64,
    /// Jitter in timestamp units, scaled by 16 (A.8).
    jitter16: u32,
    last_transit: Option<i64>,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Statistics for a source whose first packet carries `first_seq`, on
    /// a media clock of `clock_rate` Hz.
    pub fn new(first_seq: u16, clock_rate: u32) -> Self {
        let mut s = ReceiverStats {
            clock_rate: clock_rate.max(1),
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            octets: 0,
            jitter16: 0,
            last_transit: None,
            epoch: None,
            last_sr: None,
        };
        s.init_seq(first_seq);
        s.max_seq = first_seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Accounts for one packet: its sequence number, RTP timestamp,
    /// payload size and arrival time.
    pub fn on_packet(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload_len: usize,
        arrival: Instant,
    ) -> SeqVerdict {
        let verdict = self.update_seq(seq);
        if verdict == SeqVerdict::Valid {
            self.octets += payload_len as u64;
            self.update_jitter(timestamp, arrival);
        }
        verdict
    }

    /// Accounts for a packet whose timestamp says nothing of when it was
    /// sent (an RFC 4733 event's packets all carry the event's start):
    /// its sequence number and size count, the jitter estimate is left
    /// alone.
    pub fn on_untimed_packet(&mut self, seq: u16, payload_len: usize) -> SeqVerdict {
        let verdict = self.update_seq(seq);
        if verdict == SeqVerdict::Valid {
            self.octets += payload_len as u64;
        }
        verdict
    }

    /// A new media clock for the source (its codec changed): the jitter
    /// estimate is carried over in the new clock's units, and the next
    /// packet's transit is measured afresh.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        self.jitter16 = (u64::from(self.jitter16) * u64::from(clock_rate)
            / u64::from(self.clock_rate))
        .min(u64::from(u32::MAX >> 4)) as u32;
        self.clock_rate = clock_rate;
        self.last_transit = None;
        self.epoch = None;
    }

    /// RFC 3550 Appendix A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqVerdict::Jump;
            }
        }
        // Otherwise a duplicate or a reordered packet: counted, as A.1 does.
        self.received += 1;
        SeqVerdict::Valid
    }

    /// RFC 3550 Appendix A.8, in integer arithmetic.
    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let since = arrival.saturating_duration_since(epoch);
        let arrival_units = (since.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        // Transit modulo 2^32, as the RTP timestamp wraps.
        let transit = arrival_units.wrapping_sub(i64::from(timestamp)) & 0xffff_ffff;
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            if d > 0x8000_0000 {
                d = 0x1_0000_0000 - d;
            }
            let d = d.min(i64::from(u32::MAX >> 4)) as u32;
            self.jitter16 = self
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report from this source (for LSR/DLSR).
    pub fn on_sender_report(&mut self, ntp: u64, arrival: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, arrival));
    }

    /// Packets counted (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Payload octets of the counted packets.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// The extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles + u32::from(self.max_seq)
    }

    /// Packets expected from the first to the highest received.
    pub fn expected(&self) -> u32 {
        (self.extended_max() + 1).wrapping_sub(self.base_seq)
    }

    /// Cumulative packets lost: expected minus received (negative with
    /// duplicates), clamped to the 24 bits a report carries.
    pub fn lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter, in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_nanos(u64::from(self.jitter()) * 1_000_000_000 / u64::from(self.clock_rate))
    }

    /// The report block for this source at `now`; starts a new interval
    /// for the fraction lost (A.3).
    pub fn report(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (
                    lsr,
                    (d.as_nanos() * 65_536 / 1_000_000_000).min(u128::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost(),
            highest_sequence: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// NTP time (RFC 5905: seconds since 1900 in 32.32 fixed point) of a
/// `SystemTime`, for sender reports.
pub fn ntp_timestamp(t: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs() + UNIX_TO_NTP;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    secs << 32 | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Feeds `seqs` at 20 ms spacing with timestamps 160 apart per sequence step.
    fn feed(s: &mut ReceiverStats, t0: Instant, seqs: &[u16]) -> Vec<SeqVerdict> {
        seqs.iter()
            .enumerate()
            .map(|(i, &q)| {
                let ts = u32::from(q.wrapping_sub(seqs[0])) * 160;
                s.on_packet(q, ts, 160, t0 + MS20 * i as u32)
            })
            .collect()
    }

    #[test]
    fn probation_then_counting_across_the_wrap() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(65_530, 8000);
        let seqs: Vec<u16> = (0..20).map(|i| 65_530u16.wrapping_add(i)).collect();
        let v = feed(&mut s, t0, &seqs);
        assert_eq!(v[0], SeqVerdict::Probation);
        assert!(v[1..].iter().all(|x| *x == SeqVerdict::Valid));
        assert_eq!(s.received(), 19);
        assert_eq!(s.extended_max(), 65_536 + 13);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.jitter(), 0, "perfectly paced packets have no jitter");
    }

    #[test]
    fn loss_fraction_and_cumulative() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(100, 8000);
        // 100..=199 with every tenth packet missing.
        let seqs: Vec<u16> = (100..200).filter(|q| q % 10 != 5).collect();
        feed(&mut s, t0, &seqs);
        let r = s.report(7, t0 + Duration::from_secs(2));
        // Probation swallows the first packet; the base is the second.
        assert_eq!(r.highest_sequence, 199);
        assert_eq!(r.cumulative_lost, 10);
        assert_eq!(r.fraction_lost, (10 * 256 / 99) as u8);
        // A clean second interval reports no fresh loss.
        let more: Vec<u16> = (200..250).collect();
        for (i, &q) in more.iter().enumerate() {
            s.on_packet(
                q,
                u32::from(q - 100) * 160,
                160,
                t0 + MS20 * (100 + i as u32),
            );
        }
        let r = s.report(7, t0 + Duration::from_secs(4));
        assert_eq!(r.fraction_lost, 0);
        assert_eq!(r.cumulative_lost, 10);
    }

    #[test]
    fn jitter_follows_a8() {
        // Alternate arrivals 10 ms early and late: |D| = 20 ms = 160 units
        // after the first pair, so jitter converges towards 160.
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(0, 8000);
        for i in 0u32..400 {
            let skew = if i % 2 == 0 { 0 } else { 20 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + skew);
            s.on_packet(i as u16, i * 160, 160, at);
        }
        let j = s.jitter();
        assert!((150..=165).contains(&j), "jitter {j}");
        assert_eq!(s.jitter_duration().as_millis(), u128::from(j) / 8);
    }

    #[test]
    fn restart_after_a_large_jump() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(10, 8000);
        feed(&mut s, t0, &[10, 11, 12, 13]);
        assert_eq!(s.on_packet(40_000, 0, 160, t0), SeqVerdict::Jump);
        assert_eq!(s.on_packet(40_001, 160, 160, t0 + MS20), SeqVerdict::Valid);
        assert_eq!(s.extended_max(), 40_001);
        assert_eq!(s.received(), 1);
        // Duplicates are counted, driving the loss negative as A.3 allows.
        s.on_packet(40_001, 160, 160, t0 + MS20);
        assert_eq!(s.lost(), -1);
    }

    #[test]
    fn lsr_and_dlsr() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(0, 8000);
        s.on_sender_report(0xaaaa_bbbb_cccc_dddd, t0);
        let r = s.report(1, t0 + Duration::from_millis(500));
        assert_eq!(r.last_sr, 0xbbbb_cccc);
        assert_eq!(r.delay_since_last_sr, 32_768);
        let ntp = ntp_timestamp(std::time::UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(ntp >> 32, 2_208_988_801);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
    }
}
