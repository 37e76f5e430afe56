//! A simulated network on a virtual clock, shared by the simulation tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

/// A small deterministic PRNG (xorshift64*), so every run is the same.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Packets in flight with per-packet delay (which reorders), loss and duplication.
pub(crate) struct Net {
    rng: Rng,
    loss: f64,
    dup: f64,
    max_delay_ms: u64,
    flight: Vec<(Instant, u64, Side, Vec<u8>)>,
    seq: u64,
}

impl Net {
    pub(crate) fn new(seed: u64, loss: f64, dup: f64, max_delay_ms: u64) -> Self {
        Net {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            loss,
            dup,
            max_delay_ms,
            flight: Vec::new(),
            seq: 0,
        }
    }
    pub(crate) fn send(&mut self, now: Instant, to: Side, bytes: &[u8]) {
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(self.loss) {
                continue;
            }
            let delay = Duration::from_millis(5 + self.rng.below(self.max_delay_ms + 1));
            self.seq += 1;
            self.flight
                .push((now + delay, self.seq, to, bytes.to_vec()));
        }
    }
    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        self.flight.iter().map(|f| f.0).min()
    }
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Side, Vec<u8>)> {
        let i = self
            .flight
            .iter()
            .enumerate()
            .filter(|(_, f)| f.0 <= now)
            .min_by_key(|(_, f)| (f.0, f.1))
            .map(|(i, _)| i)?;
        let f = self.flight.swap_remove(i);
        Some((f.2, f.3))
    }
}
