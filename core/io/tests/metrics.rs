//! What core/io publishes through the `metrics` facade: the engine's
//! backend, its counters, and the port pool's usage and exhaustion.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sentiric_io::ports::{PoolConfig, PortPool};
use sentiric_io::{Backend, Engine};

/// A recorded metric: name, labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

/// A metric's value as a number, whatever its kind.
fn value(snapshot: &[Metric], name: &str) -> Option<f64> {
    snapshot
        .iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, _, v)| match v {
            DebugValue::Counter(c) => *c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        })
}

#[test]
fn engine_and_pool_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let (engine, _) = Engine::new(Backend::Epoll).unwrap();
        engine.stats().record(0, engine.kind());
        let pool = PortPool::new(PoolConfig {
            min_port: 20_000,
            max_port: 20_003,
            quarantine: Duration::from_secs(2),
            ..PoolConfig::default()
        })
        .unwrap();
        let t = Instant::now();
        let a = pool.allocate(0, t).unwrap();
        pool.allocate(0, t).unwrap();
        assert!(pool.allocate(0, t).is_err());
        pool.release(a, t).unwrap();
        pool.stats(t).record();
    });
    let snap: Vec<Metric> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let key = k.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            (key.name().to_string(), labels, v)
        })
        .collect();
    let backend = snap
        .iter()
        .find(|(n, _, _)| n == "sentiric_engine_backend_info")
        .unwrap();
    assert_eq!(backend.1, [("backend".to_string(), "epoll".to_string())]);
    assert_eq!(value(&snap, "sentiric_engine_backend_info"), Some(1.0));
    assert_eq!(value(&snap, "sentiric_engine_workers"), Some(1.0));
    assert_eq!(
        value(&snap, "sentiric_engine_received_packets_total"),
        Some(0.0)
    );
    assert_eq!(value(&snap, "sentiric_rtp_port_slots"), Some(2.0));
    assert_eq!(value(&snap, "sentiric_rtp_port_slots_in_use"), Some(1.0));
    assert_eq!(
        value(&snap, "sentiric_rtp_port_slots_quarantined"),
        Some(1.0)
    );
    assert_eq!(
        value(&snap, "sentiric_rtp_port_slots_exhausted_total"),
        Some(1.0)
    );
}
