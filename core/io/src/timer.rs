//! A hashed timing wheel: the deadlines of a worker's sans-IO objects
//! (RTCP report intervals, jitter-buffer playout, DTMF end timers, media
//! timeouts) in O(1) per insert and per expiry, and the next deadline for
//! the engine's wait.
//!
//! Time is cut into ticks; a deadline goes into the slot of its tick
//! modulo the wheel's size, with the tick itself kept so that entries a
//! whole turn or more ahead stay until their turn comes. Deadlines are
//! rounded up to the tick, so nothing fires early. Cancelling is the
//! caller's: an expired entry whose object no longer wants it is ignored
//! (a generation in `T` does this cheaply).

use std::time::{Duration, Instant};

/// A timing wheel of items `T`.
#[derive(Debug)]
pub struct TimerWheel<T> {
    start: Instant,
    tick: Duration,
    slots: Vec<Vec<(u64, T)>>,
    /// The first tick not yet expired.
    current: u64,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// A wheel of `slots` slots of `tick` each, starting at `start`.
    pub fn new(start: Instant, tick: Duration, slots: usize) -> Self {
        TimerWheel {
            start,
            tick: tick.max(Duration::from_micros(1)),
            slots: (0..slots.max(1)).map(|_| Vec::new()).collect(),
            current: 0,
            len: 0,
        }
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tick a deadline falls in, rounded up.
    fn tick_of(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.start).as_nanos();
        let t = self.tick.as_nanos();
        d.div_ceil(t) as u64
    }

    /// Schedules `item` for `at` (a deadline already past fires at the
    /// next expiry).
    pub fn insert(&mut self, at: Instant, item: T) {
        let tick = self.tick_of(at).max(self.current);
        let n = self.slots.len() as u64;
        self.slots[(tick % n) as usize].push((tick, item));
        self.len += 1;
    }

    /// Moves every item due at or before `now` into `out`, in deadline
    /// order by tick.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let last = now.saturating_duration_since(self.start).as_nanos() / self.tick.as_nanos();
        let last = last as u64;
        let n = self.slots.len() as u64;
        // Past a whole turn, every slot is visited once per tick anyway:
        // jump ahead when the wheel is empty.
        if self.len == 0 {
            self.current = self.current.max(last + 1);
            return;
        }
        while self.current <= last && self.len > 0 {
            let slot = &mut self.slots[(self.current % n) as usize];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].0 <= self.current {
                    out.push(slot.swap_remove(i).1);
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            self.current += 1;
        }
        if self.len == 0 {
            self.current = self.current.max(last + 1);
        }
    }

    /// The earliest deadline waiting (at tick resolution), for the
    /// engine's wait; scans at most one turn of the wheel.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let n = self.slots.len() as u64;
        let mut best: Option<u64> = None;
        for k in 0..n {
            let tick = self.current + k;
            if let Some(t) = self.slots[(tick % n) as usize].iter().map(|e| e.0).min() {
                if t == tick {
                    best = Some(t);
                    break;
                }
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best.map(|t| self.start + self.tick * (t as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fires_on_time_never_early_in_order() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0, MS, 8);
        w.insert(t0 + MS * 5, "a");
        w.insert(t0 + MS * 3, "b");
        // More than a whole turn ahead.
        w.insert(t0 + MS * 21, "c");
        w.insert(t0 + Duration::from_micros(3500), "d");
        assert_eq!(w.next_deadline(), Some(t0 + MS * 3));
        let mut out = vec![];
        w.expire(t0 + MS * 2, &mut out);
        assert!(out.is_empty());
        w.expire(t0 + MS * 4, &mut out);
        assert_eq!(out, ["b", "d"], "3.5 ms rounds up to 4 ms, not down");
        out.clear();
        w.expire(t0 + MS * 13, &mut out);
        assert_eq!(out, ["a"]);
        out.clear();
        assert_eq!(w.next_deadline(), Some(t0 + MS * 21));
        w.expire(t0 + MS * 20, &mut out);
        assert!(
            out.is_empty(),
            "c is a turn and more ahead, in a slot already passed"
        );
        w.expire(t0 + MS * 21, &mut out);
        assert_eq!(out, ["c"]);
        assert!(w.is_empty());
        // A deadline in the past fires at the next expiry.
        w.insert(t0, "late");
        out.clear();
        w.expire(t0 + MS * 22, &mut out);
        assert_eq!(out, ["late"]);
    }

    #[test]
    fn matches_a_sorted_model() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0, MS, 16);
        let mut model: Vec<(u64, u32)> = vec![];
        let mut x: u32 = 12345;
        let mut now_ms = 0u64;
        let mut id = 0u32;
        // The first tick the wheel has not expired yet.
        let mut floor = 0u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x % 3 == 0 {
                now_ms += u64::from(x % 7);
                let mut out = vec![];
                w.expire(t0 + MS * now_ms as u32, &mut out);
                floor = now_ms + 1;
                let mut due: Vec<u32> = model
                    .iter()
                    .filter(|e| e.0 <= now_ms)
                    .map(|e| e.1)
                    .collect();
                model.retain(|e| e.0 > now_ms);
                out.sort_unstable();
                due.sort_unstable();
                assert_eq!(out, due, "at {now_ms} ms");
            } else {
                let at = now_ms + u64::from(x % 60);
                w.insert(t0 + MS * at as u32, id);
                model.push((at, id));
                id += 1;
            }
            assert_eq!(w.len(), model.len());
            // Deadlines already passed when inserted wait for the next tick.
            let want = model
                .iter()
                .map(|e| e.0.max(floor))
                .min()
                .map(|m| t0 + MS * m as u32);
            assert_eq!(w.next_deadline(), want);
        }
    }
}
