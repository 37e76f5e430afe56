//! Every metric family the switch exports, in one table: its name, kind,
//! unit and help. At start the Prometheus recorder is installed with a
//! histogram's buckets for each latency (histograms add up across
//! nodes, where summaries cannot), each family is described (its
//! `# HELP`), and the info metrics are set: `sentiric_build_info` and
//! the process's own `process_*` (refreshed at each scrape).
//! ARCHITECTURE.md lists the same families; `tests/http.rs` checks
//! that what `/metrics` serves is described and listed.

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What a family is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// With these bucket bounds.
    Histogram(&'static [f64]),
}

/// One family.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) unit: Unit,
    pub(crate) help: &'static str,
}

const SETUP: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const JITTER: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32,
];
const TURN: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
];
const PLUGIN: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

const fn family(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// The families, by area.
pub(crate) const FAMILIES: &[Family] = &[
    family("sentiric_build_info", Gauge, Unit::Count, "1, labelled with the switch's version and build profile"),
    // Calls and SIP.
    family("sentiric_calls_total", Counter, Unit::Count, "Calls ended, by the final status code the caller got (code)"),
    family("sentiric_calls_active", Gauge, Unit::Count, "Calls up now (routed and not yet ended)"),
    family("sentiric_calls_refused_total", Counter, Unit::Count, "New calls answered 503 by overload protection or drain, by reason"),
    family("sentiric_calls_transcoded_total", Counter, Unit::Count, "Calls whose legs share no codec, transcoded"),
    family("sentiric_call_setup_seconds", Histogram(SETUP), Unit::Seconds, "From a call's INVITE to the caller's ACK of the 200"),
    family("sentiric_sip_requests_total", Counter, Unit::Count, "SIP requests received, by method"),
    family("sentiric_sip_responses_total", Counter, Unit::Count, "SIP responses sent to callers, by status code (code)"),
    family("sentiric_sip_transactions", Gauge, Unit::Count, "SIP transactions alive, lingering ones (Timers J, K, L, M) included"),
    family("sentiric_worker_turn_seconds", Histogram(TURN), Unit::Seconds, "A data-plane worker's turn: the packets, timers and SIP of one wake-up"),
    // Media.
    family("sentiric_rtp_relayed_packets_total", Counter, Unit::Count, "RTP packets sent on from one leg to the other (relayed or transcoded)"),
    family("sentiric_rtp_relayed_bytes_total", Counter, Unit::Bytes, "Bytes of the RTP packets sent on (UDP payload: RTP header and media)"),
    family("sentiric_rtp_dropped_packets_total", Counter, Unit::Count, "RTP packets not sent on: a source not latched, a leg not bridged, a packet that does not parse"),
    family("sentiric_rtp_lost_packets_total", Counter, Unit::Count, "RTP packets the legs' sequence numbers say were lost before the switch (RFC 3550), counted as calls end"),
    family("sentiric_rtp_jitter_seconds", Histogram(JITTER), Unit::Seconds, "Each leg's interarrival jitter (RFC 3550, on the leg's own RTP clock) as its call ends"),
    family("sentiric_rtp_port_slots", Gauge, Unit::Count, "Media slots in the RTP port pool: one leg's even RTP port and its RTCP port (one port with rtcp-mux)"),
    family("sentiric_rtp_port_slots_in_use", Gauge, Unit::Count, "Media slots held by calls"),
    family("sentiric_rtp_port_slots_quarantined", Gauge, Unit::Count, "Media slots released and resting before reuse (late packets of the last call die there)"),
    family("sentiric_rtp_port_slots_exhausted_total", Counter, Unit::Count, "Media slots asked for when a worker's share of the pool had none free"),
    // The packet engines.
    family("sentiric_engine_backend_info", Gauge, Unit::Count, "1 for each packet engine backend in use (backend: io_uring or epoll)"),
    family("sentiric_engine_workers", Gauge, Unit::Count, "Data-plane workers on each backend"),
    family("sentiric_engine_fallbacks_total", Counter, Unit::Count, "Workers that asked for io_uring and run epoll (the kernel refused io_uring)"),
    family("sentiric_engine_received_packets_total", Counter, Unit::Count, "Datagrams a worker's engine received (SIP and RTP)"),
    family("sentiric_engine_sent_packets_total", Counter, Unit::Count, "Datagrams a worker's engine sent"),
    family("sentiric_engine_truncated_packets_total", Counter, Unit::Count, "Datagrams larger than the receive buffer, dropped"),
    family("sentiric_engine_send_dropped_packets_total", Counter, Unit::Count, "Datagrams the kernel refused to send (buffer full, unreachable), dropped as UDP would"),
    family("sentiric_uring_enobufs_total", Counter, Unit::Count, "Times io_uring's provided receive buffers ran out (receives rearmed)"),
    // Events.
    family("sentiric_events_written_total", Counter, Unit::Count, "Call and node events written to the outbox"),
    family("sentiric_events_confirmed_total", Counter, Unit::Count, "Events confirmed by the broker into a queue (or by the local CDR writer) and left the outbox"),
    family("sentiric_events_unroutable_total", Counter, Unit::Count, "Events the broker returned (no queue bound to the exchange): kept and published again"),
    family("sentiric_events_nacked_total", Counter, Unit::Count, "Events the broker refused (nack): kept and published again"),
    family("sentiric_events_outbox_pending", Gauge, Unit::Count, "Events in the outbox not yet confirmed"),
    family("sentiric_events_outbox_bytes", Gauge, Unit::Bytes, "The outbox's size on disk"),
    family("sentiric_events_outbox_full", Gauge, Unit::Count, "1 while the outbox is full and new calls are refused"),
    family("sentiric_events_syncs_total", Counter, Unit::Count, "fdatasyncs of the outbox's records that succeeded: every [events] sync_ms while events come, and one for each batch holding a call's end that waits (durable_end)"),
    family("sentiric_events_durable_end_unsynced_total", Counter, Unit::Count, "Call ends whose last SIP messages went out without their CallEnded on disk ([events] durable_end): held 10 s (the outbox full or the disk failing), or the events thread gone"),
    family("sentiric_events_durable_end_seconds", Histogram(PLUGIN), Unit::Seconds, "From a call's end (the worker's turn that ended it) to its CallEnded synced and its worker told, while the call's last SIP messages wait ([events] durable_end)"),
    family("sentiric_events_broker_connected", Gauge, Unit::Count, "1 while the publisher holds a connection to the broker"),
    // Plugins.
    family("sentiric_plugin_calls_total", Counter, Unit::Count, "Routing decisions asked of a dialplan plugin (or calls given to a built-in app), by plugin and result"),
    family("sentiric_plugin_timeouts_total", Counter, Unit::Count, "Plugin calls past their deadline, by plugin"),
    family("sentiric_plugin_call_seconds", Histogram(PLUGIN), Unit::Seconds, "How long a dialplan plugin took to decide, by plugin"),
    family("sentiric_plugin_in_flight", Gauge, Unit::Count, "Decisions asked of a dialplan sidecar and not yet answered, by plugin"),
    family("sentiric_plugin_circuit_open", Gauge, Unit::Count, "1 while a dialplan plugin's circuit breaker is open, by plugin"),
    family("sentiric_plugin_conversations_total", Counter, Unit::Count, "Agent conversations begun or refused, by plugin and result"),
    family("sentiric_plugin_conversations", Gauge, Unit::Count, "Agent conversations going on, by plugin"),
    family("sentiric_plugin_conversations_circuit_open", Gauge, Unit::Count, "1 while an agent's circuit breaker is open, by plugin"),
];

/// The process's own metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds` …), read from
/// `/proc` at each scrape.
pub(crate) type ProcessCollector = metrics_process::Collector;

/// Installs the Prometheus recorder with every family described and
/// the info metrics set.
pub(crate) fn install() -> Result<(PrometheusHandle, ProcessCollector), String> {
    let mut builder = PrometheusBuilder::new();
    for f in FAMILIES {
        if let Kind::Histogram(buckets) = f.kind {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(f.name.to_string()), buckets)
                .map_err(|e| format!("metrics: {}: {e}", f.name))?;
        }
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.unit, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.unit, f.help),
            Kind::Histogram(_) => metrics::describe_histogram!(f.name, f.unit, f.help),
        }
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    metrics::gauge!(
        "sentiric_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "profile" => profile
    )
    .set(1.0);
    let process = metrics_process::Collector::default();
    process.describe();
    process.collect();
    Ok((handle, process))
}
