//! An adaptive jitter buffer for a leg whose audio the switch decodes
//! (transcoding, mixing, recording, speech recognition).
//!
//! Packets go in as they arrive; frames come out on the caller's clock,
//! one per packet time. Each packet is due at `base + (timestamp -
//! base_timestamp) / clock + delay`: the delay is the buffer's target,
//! adapted to the measured jitter (RFC 3550 A.8 estimator, in
//! milliseconds) — `delay = clamp(2 × jitter + one packet time)` — and
//! applied at the start of a talkspurt (marker bit), where moving the
//! playout point is inaudible. Lost packets come out as
//! [`Playout::Missing`] so the decoder can conceal them; packets arriving
//! after their slot are dropped and counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the buffer gives for one packet time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next frame's payload.
    Frame(Vec<u8>),
    /// The next frame is missing (lost or not yet arrived): conceal it.
    Missing,
    /// Nothing is due yet (or nothing was ever received).
    Wait,
}

/// Counters of a jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Frames played.
    pub played: u64,
    /// Slots played as missing.
    pub missing: u64,
    /// Packets dropped for arriving after their slot.
    pub late: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
}

/// Limits of the adaptive delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Media clock rate (Hz).
    pub clock_rate: u32,
    /// Samples per packet (160 for 20 ms at 8 kHz).
    pub packet_samples: u32,
    /// Smallest delay.
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Most packets held.
    pub capacity: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: 8000,
            packet_samples: 160,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            capacity: 64,
        }
    }
}

/// The adaptive jitter buffer of one stream.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Packets by extended sequence number: (timestamp, payload).
    packets: BTreeMap<u64, (u32, Vec<u8>)>,
    /// Extended sequence number of the next slot to play.
    next: Option<u64>,
    /// Highest extended sequence seen (to extend 16-bit numbers).
    highest: Option<u64>,
    /// Playout anchor: local time and timestamp of the talkspurt's start.
    base: Option<(Instant, u32)>,
    delay: Duration,
    /// Jitter estimate in microseconds, scaled by 16 (A.8).
    jitter16_us: u64,
    last_transit_us: Option<i64>,
    epoch: Option<Instant>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            delay: cfg.min_delay,
            cfg,
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            base: None,
            jitter16_us: 0,
            last_transit_us: None,
            epoch: None,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_micros(self.jitter16_us >> 4)
    }

    fn packet_time(&self) -> Duration {
        Duration::from_micros(
            u64::from(self.cfg.packet_samples) * 1_000_000 / u64::from(self.cfg.clock_rate.max(1)),
        )
    }

    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16;
                (h as i64 + i64::from(delta)).max(0) as u64
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    fn target(&self) -> Duration {
        let j = Duration::from_micros(self.jitter16_us >> 4);
        (2 * j + self.packet_time()).clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    /// A packet arrived.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], now: Instant) {
        let ext = self.extend(seq);
        // Jitter (A.8) on arrival versus media time, in microseconds.
        let epoch = *self.epoch.get_or_insert(now);
        let arrival_us = now.saturating_duration_since(epoch).as_micros() as i64;
        let media_us = i64::from(timestamp) * 1_000_000 / i64::from(self.cfg.clock_rate.max(1));
        let transit = arrival_us - media_us;
        // A talkspurt's first packet starts the comparison afresh: the
        // silence before it says nothing about network jitter.
        if let Some(last) = self.last_transit_us.filter(|_| !marker) {
            let d = (transit - last).unsigned_abs().min(10_000_000);
            self.jitter16_us = self.jitter16_us + d - ((self.jitter16_us + 8) >> 4);
        }
        self.last_transit_us = Some(transit);

        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if self.packets.len() >= self.cfg.capacity {
            self.stats.overflow += 1;
            return;
        }
        // A new talkspurt (or the first packet) re-anchors the playout
        // point with the delay the jitter now calls for.
        let idle = self.packets.is_empty();
        if self.base.is_none() || (marker && idle) {
            self.delay = self.target();
            self.base = Some((now, timestamp));
            self.next = Some(ext);
        }
        self.packets.insert(ext, (timestamp, payload.to_vec()));
    }

    /// When the next slot is due, if anything is buffered.
    pub fn next_due(&self) -> Option<Instant> {
        let (base_at, base_ts) = self.base?;
        let next = self.next?;
        let ts = match self.packets.get(&next) {
            Some((ts, _)) => *ts,
            None => {
                // Not here: due one packet time after the one before it.
                let (&first, &(first_ts, _)) = self.packets.iter().next()?;
                let back = (first - next) as u32 * self.cfg.packet_samples;
                first_ts.wrapping_sub(back)
            }
        };
        let media = ts.wrapping_sub(base_ts);
        Some(
            base_at
                + self.delay
                + Duration::from_micros(
                    u64::from(media) * 1_000_000 / u64::from(self.cfg.clock_rate.max(1)),
                ),
        )
    }

    /// The frame for the next packet time, if it is due at `now`.
    pub fn pop(&mut self, now: Instant) -> Playout {
        let Some(due) = self.next_due() else {
            return Playout::Wait;
        };
        if now < due {
            return Playout::Wait;
        }
        let Some(next) = self.next else {
            return Playout::Wait;
        };
        self.next = Some(next + 1);
        match self.packets.remove(&next) {
            Some((_, payload)) => {
                self.stats.played += 1;
                Playout::Frame(payload)
            }
            None => {
                self.stats.missing += 1;
                Playout::Missing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T20: Duration = Duration::from_millis(20);

    fn payload(i: u16) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    /// Plays every 20 ms from `start` for `slots` slots.
    fn drain(jb: &mut JitterBuffer, start: Instant, slots: u32) -> Vec<Playout> {
        (0..slots)
            .map(|k| jb.pop(start + T20 * k))
            .filter(|p| *p != Playout::Wait)
            .collect()
    }

    #[test]
    fn in_order_plays_after_the_minimum_delay() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for i in 0..10u16 {
            jb.push(
                i,
                u32::from(i) * 160,
                i == 0,
                &payload(i),
                t0 + T20 * u32::from(i),
            );
        }
        assert_eq!(jb.pop(t0), Playout::Wait, "not before the delay");
        let start = t0 + jb.delay();
        let out = drain(&mut jb, start, 10);
        assert_eq!(
            out,
            (0..10)
                .map(|i| Playout::Frame(payload(i)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn reorders_and_reports_loss_and_lateness() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig {
            min_delay: Duration::from_millis(60),
            ..JitterConfig::default()
        });
        // 0, 2, 1, (3 lost), 4; then 3 arrives after its slot.
        for (i, at) in [(0u16, 0u32), (2, 40), (1, 45), (4, 80)] {
            jb.push(
                i,
                u32::from(i) * 160,
                i == 0,
                &payload(i),
                t0 + Duration::from_millis(u64::from(at)),
            );
        }
        let start = t0 + Duration::from_millis(60);
        let out = drain(&mut jb, start, 4);
        assert_eq!(
            out,
            [
                Playout::Frame(payload(0)),
                Playout::Frame(payload(1)),
                Playout::Frame(payload(2)),
                Playout::Missing
            ]
        );
        jb.push(3, 480, false, &payload(3), start + T20 * 4);
        assert_eq!(jb.pop(start + T20 * 4), Playout::Frame(payload(4)));
        let s = jb.stats();
        assert_eq!((s.played, s.missing, s.late), (4, 1, 1));
    }

    #[test]
    fn delay_follows_jitter_at_talkspurts() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // A first talkspurt with ±15 ms arrival jitter.
        let mut at = t0;
        for i in 0..100u16 {
            let skew = if i % 2 == 0 { 0 } else { 30 };
            let t = t0 + T20 * u32::from(i) + Duration::from_millis(skew);
            jb.push(i, u32::from(i) * 160, i == 0, &payload(i), t);
            at = t;
        }
        let first = jb.delay();
        assert_eq!(
            first,
            Duration::from_millis(20),
            "the first packet knows no jitter"
        );
        let _ = drain(&mut jb, t0 + first, 110);
        // After silence, the next talkspurt takes the measured jitter.
        let t1 = at + T20 * 101;
        jb.push(200, 200 * 160, true, &payload(200), t1);
        let d = jb.delay();
        assert!(
            d >= Duration::from_millis(55) && d <= Duration::from_millis(80),
            "{d:?} for jitter {:?}",
            jb.jitter()
        );
        assert_eq!(jb.pop(t1 + d), Playout::Frame(payload(200)));
    }
}
