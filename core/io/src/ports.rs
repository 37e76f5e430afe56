//! The RTP port pool.
//!
//! Ports come from a configured range in units: an even RTP port with the
//! odd RTCP port above it, or, with rtcp-mux (RFC 5761), a single port.
//! The units are split into one contiguous partition per worker, so that
//! workers allocate without contending; any thread may release a unit back
//! to its partition. A released unit is quarantined (2 s by default)
//! before it is handed out again, so late packets of an ended call never
//! reach a new one. Out of quarantine, the unit that rested last is
//! handed out first, and a unit never used only when none rested is
//! free: the ports in use stay the few the call rate needs (their sockets
//! kept open by the workers, their kernel state warm) instead of going
//! round the whole range. Exhaustion is an error the call layer turns
//! into 503.
//!
//! Time is an input (`now`), as everywhere in the data plane.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the pool is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Lowest port of the range.
    pub min_port: u16,
    /// Highest port of the range.
    pub max_port: u16,
    /// One port per stream (RTP and RTCP multiplexed) instead of an
    /// even/odd pair.
    pub rtcp_mux: bool,
    /// Number of partitions (data-plane workers).
    pub partitions: usize,
    /// How long a released unit waits before it is handed out again.
    pub quarantine: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_port: 20_000,
            max_port: 39_999,
            rtcp_mux: false,
            partitions: 1,
            quarantine: Duration::from_secs(2),
        }
    }
}

/// Why the pool could not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The range holds no unit, or fewer units than partitions.
    #[error("port range {min}-{max} holds {units} units for {partitions} partitions")]
    Range {
        /// Lowest port.
        min: u16,
        /// Highest port.
        max: u16,
        /// Units in the range.
        units: usize,
        /// Partitions asked for.
        partitions: usize,
    },
    /// No unit is free in the partition (all in use or quarantined):
    /// answer the call with 503.
    #[error("no RTP port free in partition {0}")]
    Exhausted(usize),
    /// The lease is not one this pool handed out, or was released already.
    #[error("port {0} is not allocated")]
    NotAllocated(u16),
}

/// Ports held by one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortLease {
    /// The RTP port (even unless rtcp-mux).
    pub rtp: u16,
    /// The RTCP port, `rtp + 1`; `None` with rtcp-mux.
    pub rtcp: Option<u16>,
    /// The partition (worker) it belongs to.
    pub partition: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitState {
    Free,
    InUse,
    Quarantined,
}

#[derive(Debug)]
struct Partition {
    /// First unit index of this partition.
    first: usize,
    state: Vec<UnitState>,
    free: VecDeque<usize>,
    /// Released units in release order (the quarantine is the same for
    /// all, so the front is always the first to come out).
    quarantine: VecDeque<(usize, Instant)>,
    in_use: usize,
}

impl Partition {
    fn thaw(&mut self, now: Instant, quarantine: Duration) {
        while let Some(&(unit, at)) = self.quarantine.front() {
            if now.saturating_duration_since(at) < quarantine {
                break;
            }
            self.quarantine.pop_front();
            self.state[unit - self.first] = UnitState::Free;
            // Ahead of the units never used and of those that rested
            // longer: the next call takes the port used most recently.
            self.free.push_front(unit);
        }
    }
}

impl PoolStats {
    /// Publishes the usage through the `metrics` facade.
    pub fn record(&self) {
        metrics::gauge!("sentiric_rtp_port_slots").set(self.capacity as f64);
        metrics::gauge!("sentiric_rtp_port_slots_in_use").set(self.in_use as f64);
        metrics::gauge!("sentiric_rtp_port_slots_quarantined").set(self.quarantined as f64);
        metrics::counter!("sentiric_rtp_port_slots_exhausted_total").absolute(self.exhausted);
    }
}

/// Usage of the pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Units in the pool.
    pub capacity: usize,
    /// Units in use.
    pub in_use: usize,
    /// Units in quarantine.
    pub quarantined: usize,
    /// Allocations refused because a partition was exhausted, since start.
    pub exhausted: u64,
}

/// The pool. Shared between threads (`Sync`); each partition has its own lock.
#[derive(Debug)]
pub struct PortPool {
    config: PoolConfig,
    /// First port of unit 0 (even, or `min_port` with rtcp-mux).
    base: u16,
    step: u16,
    partitions: Vec<Mutex<Partition>>,
    exhausted: AtomicU64,
}

impl PortPool {
    /// Lays out the units of the range over the partitions.
    pub fn new(config: PoolConfig) -> Result<PortPool, PoolError> {
        let step: u16 = if config.rtcp_mux { 1 } else { 2 };
        // Pairs start on an even port and need their odd partner in range.
        let base = if config.rtcp_mux {
            config.min_port
        } else {
            config.min_port.saturating_add(config.min_port % 2)
        };
        let units = if config.max_port < base.saturating_add(step - 1) || base < config.min_port {
            0
        } else {
            usize::from((config.max_port - base + 1) / step)
        };
        if units == 0 || config.partitions == 0 || units < config.partitions {
            return Err(PoolError::Range {
                min: config.min_port,
                max: config.max_port,
                units,
                partitions: config.partitions,
            });
        }
        let per = units / config.partitions;
        let extra = units % config.partitions;
        let mut partitions = Vec::with_capacity(config.partitions);
        let mut first = 0;
        for p in 0..config.partitions {
            let n = per + usize::from(p < extra);
            partitions.push(Mutex::new(Partition {
                first,
                state: vec![UnitState::Free; n],
                free: (first..first + n).collect(),
                quarantine: VecDeque::new(),
                in_use: 0,
            }));
            first += n;
        }
        Ok(PortPool {
            config,
            base,
            step,
            partitions,
            exhausted: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    fn lock(&self, p: usize) -> std::sync::MutexGuard<'_, Partition> {
        // A panic elsewhere while holding the lock leaves the partition's
        // bookkeeping consistent (every method mutates it last), so a
        // poisoned lock is still usable.
        self.partitions[p]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands out a unit of `partition` (taken modulo the number of
    /// partitions).
    pub fn allocate(&self, partition: usize, now: Instant) -> Result<PortLease, PoolError> {
        let partition = partition % self.partitions.len();
        let mut p = self.lock(partition);
        p.thaw(now, self.config.quarantine);
        let Some(unit) = p.free.pop_front() else {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Exhausted(partition));
        };
        let first = p.first;
        p.state[unit - first] = UnitState::InUse;
        p.in_use += 1;
        let rtp = self.base + self.step * unit as u16;
        Ok(PortLease {
            rtp,
            rtcp: (!self.config.rtcp_mux).then_some(rtp + 1),
            partition,
        })
    }

    /// Returns a unit; it is quarantined from `now`.
    pub fn release(&self, lease: PortLease, now: Instant) -> Result<(), PoolError> {
        let not = PoolError::NotAllocated(lease.rtp);
        if lease.rtp < self.base || (lease.rtp - self.base) % self.step != 0 {
            return Err(not);
        }
        let unit = usize::from((lease.rtp - self.base) / self.step);
        let partition = lease.partition % self.partitions.len();
        let mut p = self.lock(partition);
        let first = p.first;
        match p.state.get(unit.wrapping_sub(first)) {
            Some(UnitState::InUse) if unit >= first => {}
            _ => return Err(not),
        }
        p.state[unit - first] = UnitState::Quarantined;
        p.in_use -= 1;
        p.quarantine.push_back((unit, now));
        Ok(())
    }

    /// Units `partition` could hand out at `now`, and the units it has.
    pub fn available(&self, partition: usize, now: Instant) -> (usize, usize) {
        let mut p = self.lock(partition % self.partitions.len());
        p.thaw(now, self.config.quarantine);
        (p.free.len(), p.state.len())
    }

    /// Usage over all partitions at `now`.
    pub fn stats(&self, now: Instant) -> PoolStats {
        let mut s = PoolStats {
            exhausted: self.exhausted.load(Ordering::Relaxed),
            ..PoolStats::default()
        };
        for i in 0..self.partitions.len() {
            let mut p = self.lock(i);
            p.thaw(now, self.config.quarantine);
            s.capacity += p.state.len();
            s.in_use += p.in_use;
            s.quarantined += p.quarantine.len();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(min: u16, max: u16, mux: bool, partitions: usize) -> PortPool {
        PortPool::new(PoolConfig {
            min_port: min,
            max_port: max,
            rtcp_mux: mux,
            partitions,
            quarantine: Duration::from_secs(2),
        })
        .unwrap()
    }

    #[test]
    fn available_counts_a_partitions_free_units_back_after_quarantine() {
        let p = pool(20_000, 20_015, false, 2);
        let t = Instant::now();
        assert_eq!(p.available(0, t), (4, 4));
        let l = p.allocate(0, t).unwrap();
        assert_eq!((p.available(0, t), p.available(1, t)), ((3, 4), (4, 4)));
        p.release(l, t).unwrap();
        assert_eq!(p.available(0, t).0, 3, "resting");
        assert_eq!(p.available(0, t + Duration::from_secs(2)).0, 4);
    }

    #[test]
    fn pairs_are_even_and_odd() {
        let p = pool(20_001, 20_010, false, 1);
        let t = Instant::now();
        let mut got = vec![];
        while let Ok(l) = p.allocate(0, t) {
            assert_eq!(l.rtp % 2, 0);
            assert_eq!(l.rtcp, Some(l.rtp + 1));
            got.push(l.rtp);
        }
        // 20002/3 … 20008/9; 20010 has no partner in range.
        assert_eq!(got, [20_002, 20_004, 20_006, 20_008]);
        assert_eq!(p.allocate(0, t), Err(PoolError::Exhausted(0)));
        assert_eq!(p.stats(t).exhausted, 2, "the loop's last try and this one");
        let m = pool(30_000, 30_002, true, 1);
        let all: Vec<_> = (0..3).map(|_| m.allocate(0, t).unwrap()).collect();
        assert_eq!(
            all.iter().map(|l| (l.rtp, l.rtcp)).collect::<Vec<_>>(),
            [(30_000, None), (30_001, None), (30_002, None)]
        );
    }

    #[test]
    fn quarantine_then_oldest_first() {
        let p = pool(20_000, 20_005, false, 1);
        let t0 = Instant::now();
        let a = p.allocate(0, t0).unwrap();
        let b = p.allocate(0, t0).unwrap();
        let c = p.allocate(0, t0).unwrap();
        assert!(p.allocate(0, t0).is_err());
        p.release(b, t0).unwrap();
        p.release(a, t0 + Duration::from_millis(500)).unwrap();
        let s = p.stats(t0 + Duration::from_secs(1));
        assert_eq!((s.capacity, s.in_use, s.quarantined), (3, 1, 2));
        // Nothing comes out of quarantine early.
        assert!(p.allocate(0, t0 + Duration::from_millis(1999)).is_err());
        // b was released first, so it comes out first.
        assert_eq!(p.allocate(0, t0 + Duration::from_secs(2)).unwrap(), b);
        assert!(p.allocate(0, t0 + Duration::from_millis(2400)).is_err());
        assert_eq!(p.allocate(0, t0 + Duration::from_millis(2500)).unwrap(), a);
        // Double release and foreign leases are refused.
        p.release(c, t0).unwrap();
        assert_eq!(p.release(c, t0), Err(PoolError::NotAllocated(c.rtp)));
        let odd = PortLease {
            rtp: 20_001,
            rtcp: None,
            partition: 0,
        };
        assert_eq!(p.release(odd, t0), Err(PoolError::NotAllocated(20_001)));
        let out = PortLease {
            rtp: 40_000,
            rtcp: None,
            partition: 0,
        };
        assert!(p.release(out, t0).is_err());
    }

    #[test]
    fn rested_units_come_back_before_unused_ones_newest_first() {
        let p = pool(20_000, 20_009, false, 1);
        let t0 = Instant::now();
        let a = p.allocate(0, t0).unwrap();
        let b = p.allocate(0, t0).unwrap();
        assert_eq!((a.rtp, b.rtp), (20_000, 20_002));
        p.release(a, t0).unwrap();
        p.release(b, t0 + Duration::from_millis(10)).unwrap();
        // Both rested: b, released last, then a, then the unused 20004.
        let t = t0 + Duration::from_secs(3);
        let got: Vec<u16> = (0..3).map(|_| p.allocate(0, t).unwrap().rtp).collect();
        assert_eq!(got, [20_002, 20_000, 20_004]);
        // Still resting: an unused unit is handed out instead.
        let c = p.allocate(0, t).unwrap();
        p.release(c, t).unwrap();
        assert_eq!(p.allocate(0, t).unwrap().rtp, 20_008);
    }

    #[test]
    fn partitions_split_the_range() {
        let p = pool(20_000, 20_019, false, 3);
        let t = Instant::now();
        let mut per = vec![vec![]; 3];
        for (w, ports) in per.iter_mut().enumerate() {
            while let Ok(l) = p.allocate(w, t) {
                assert_eq!(l.partition, w);
                ports.push(l.rtp);
            }
        }
        assert_eq!(per.iter().map(Vec::len).collect::<Vec<_>>(), [4, 3, 3]);
        let mut all: Vec<u16> = per.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10);
        // A lease released to the wrong partition is refused.
        let wrong = PortLease {
            rtp: per[0][0],
            rtcp: None,
            partition: 1,
        };
        assert!(p.release(wrong, t).is_err());
        assert!(PortPool::new(PoolConfig {
            min_port: 20_000,
            max_port: 20_001,
            partitions: 2,
            ..PoolConfig::default()
        })
        .is_err());
        assert!(PortPool::new(PoolConfig {
            min_port: 20_001,
            max_port: 20_001,
            ..PoolConfig::default()
        })
        .is_err());
        assert!(PortPool::new(PoolConfig {
            min_port: 65_535,
            max_port: 65_535,
            ..PoolConfig::default()
        })
        .is_err());
    }
}
