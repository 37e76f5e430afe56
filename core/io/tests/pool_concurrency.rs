//! Many threads allocate and release at once; an independent ledger checks
//! that no port is ever handed out while in use or in quarantine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentiric_io::ports::{PoolConfig, PoolError, PortLease, PortPool};

#[derive(Default)]
struct Ledger {
    in_use: HashMap<u16, bool>,
    released_at: HashMap<u16, Instant>,
    allocations: u64,
}

const QUARANTINE: Duration = Duration::from_micros(200);

impl Ledger {
    fn allocated(&mut self, l: PortLease, now: Instant) {
        let used = self.in_use.entry(l.rtp).or_default();
        assert!(!*used, "port {} handed out twice", l.rtp);
        *used = true;
        if let Some(at) = self.released_at.get(&l.rtp) {
            assert!(
                now.saturating_duration_since(*at) >= QUARANTINE,
                "port {} handed out {:?} after release",
                l.rtp,
                now.saturating_duration_since(*at)
            );
        }
        self.allocations += 1;
    }

    fn releasing(&mut self, l: PortLease, now: Instant) {
        self.in_use.insert(l.rtp, false);
        self.released_at.insert(l.rtp, now);
    }
}

#[test]
fn no_port_twice_under_concurrency() {
    for rtcp_mux in [false, true] {
        let pool = Arc::new(
            PortPool::new(PoolConfig {
                min_port: 20_000,
                max_port: 20_063,
                rtcp_mux,
                partitions: 2,
                quarantine: QUARANTINE,
            })
            .unwrap(),
        );
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pool = Arc::clone(&pool);
                let ledger = Arc::clone(&ledger);
                std::thread::spawn(move || {
                    let mut held: Vec<PortLease> = Vec::new();
                    let mut x: u32 = 0x9e37_79b9 ^ t;
                    let mut exhausted = 0;
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if (x % 2 == 0 && held.len() < 8) || held.is_empty() {
                            // Allocate from either partition: releases
                            // then come from a thread other than the
                            // partition's usual one.
                            match pool.allocate((x as usize / 2) % 2, Instant::now()) {
                                Ok(l) => {
                                    // The hand-out happened before this
                                    // reading, so it is the conservative
                                    // one to hold the quarantine to.
                                    ledger.lock().unwrap().allocated(l, Instant::now());
                                    held.push(l);
                                }
                                Err(PoolError::Exhausted(_)) => {
                                    exhausted += 1;
                                    std::thread::yield_now();
                                }
                                Err(e) => panic!("{e}"),
                            }
                        } else {
                            let l = held.swap_remove(x as usize % held.len());
                            let now = Instant::now();
                            ledger.lock().unwrap().releasing(l, now);
                            pool.release(l, now).unwrap();
                        }
                    }
                    for l in held {
                        let now = Instant::now();
                        ledger.lock().unwrap().releasing(l, now);
                        pool.release(l, now).unwrap();
                    }
                    exhausted
                })
            })
            .collect();
        let exhausted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let allocations = ledger.lock().unwrap().allocations;
        assert!(allocations > 2_000, "{allocations}");
        // The pool is small on purpose: exhaustion happens and is counted.
        assert!(exhausted > 0);
        let later = Instant::now() + QUARANTINE;
        let s = pool.stats(later);
        assert_eq!((s.in_use, s.quarantined), (0, 0));
        assert_eq!(s.exhausted, exhausted);
        assert_eq!(s.capacity, if rtcp_mux { 64 } else { 32 });
    }
}
