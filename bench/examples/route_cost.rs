//! What routing a call costs: the built-in `[dialplan]` rules against the
//! same routes in the example prefix dialplan loaded as a cdylib plugin
//! and served as a gRPC sidecar over mTLS on loopback, in the same run,
//! per call as the switch makes it.
//!
//! ```text
//! cargo build --release -p sentiric-plugin-prefix-dialplan
//! cargo run --release -p sentiric-bench --example route_cost -- [calls] [rounds]
//! ```
//!
//! Each call is timed on its own (`Instant` around it; its own cost,
//! ~20 ns, is in both figures). The plugin's figure is the whole path the
//! worker takes: the contract's request encoded from the call's strings,
//! the plugin's decode, decision and encode, the host's decode and
//! `check_decision`. The sidecar's is a round trip
//! over an established HTTP/2 connection with TLS 1.3 and client
//! certificates (development ones, made here), one call at a time, the
//! decision checked. Rounds alternate built-in, cdylib and sidecar (a
//! tenth as many calls); the figures are the medians of the rounds' p50
//! and p99.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use common::{median, pct};
use sentiric_engine::dialplan::{
    Dialplan, DialplanConfig, RouteRequest, StaticDialplan, Transport,
};
use sentiric_plugin_sdk::host::Library;
use sentiric_plugin_sdk::v1;

const RULES: &str = r#"
[[rule]]
user_prefix = "+4930"
action = "bridge"
targets = ["sip:berlin@127.0.0.1:5070"]
[[rule]]
user_prefix = "+49"
action = "bridge"
targets = ["sip:de@127.0.0.1:5071"]
[[rule]]
user_prefix = "+1"
action = "bridge"
targets = ["sip:us@127.0.0.1:5072"]
[default]
action = "reject"
code = 404
"#;

const PLUGIN: &str = r#"
[[route]]
prefix = "+4930"
targets = ["sip:berlin@127.0.0.1:5070"]
[[route]]
prefix = "+49"
targets = ["sip:de@127.0.0.1:5071"]
[[route]]
prefix = "+1"
targets = ["sip:us@127.0.0.1:5072"]
[default]
code = 404
"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let rules: DialplanConfig = toml::from_str(RULES).unwrap();
    let builtin = StaticDialplan::from_config(&rules).unwrap();
    let path = std::env::var("SENTIRIC_PLUGIN")
        .unwrap_or_else(|_| "target/release/libsentiric_plugin_prefix_dialplan.so".into());
    let lib = Library::open(std::path::Path::new(&path)).unwrap_or_else(|e| {
        panic!("{e} (cargo build --release -p sentiric-plugin-prefix-dialplan)")
    });
    lib.init(PLUGIN).unwrap();

    let source: SocketAddr = "127.0.0.62:5060".parse().unwrap();
    let users = ["+49301234567", "+49891234567", "+15551234567", "0800123456"];
    let uris: Vec<String> = users.iter().map(|u| format!("sip:{u}@127.0.0.1")).collect();
    let request = |i: usize| RouteRequest {
        request_uri: &uris[i % users.len()],
        user: Some(users[i % users.len()]),
        from_uri: "sip:+4930999@127.0.0.62",
        from_user: Some("+4930999"),
        source,
        transport: Transport::Udp,
        headers: &[],
    };
    let (mut b50, mut b99, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
    let mut times = vec![0u64; calls];
    let (mut buf, mut source) = (Vec::new(), String::new());
    for _ in 0..rounds {
        for (i, t) in times.iter_mut().enumerate() {
            let r = request(i);
            let t0 = Instant::now();
            std::hint::black_box(builtin.route(std::hint::black_box(&r)));
            *t = t0.elapsed().as_nanos() as u64;
        }
        b50.push(pct(&mut times, 0.5));
        b99.push(pct(&mut times, 0.99));
        for (i, t) in times.iter_mut().enumerate() {
            let r = request(i);
            let t0 = Instant::now();
            // As the worker encodes it: from the call's own strings into
            // a buffer it keeps (plugins.rs).
            buf.clear();
            source.clear();
            let _ = write!(source, "{}", r.source);
            sentiric_plugin_sdk::RouteRequestRef {
                call_id: "a84b4c76e66710@127.0.0.62",
                trace_id: "0af7651916cd43dd8448eb211c80319c",
                from_uri: r.from_uri,
                to_uri: r.request_uri,
                request_uri: r.request_uri,
                user: r.user.unwrap_or_default(),
                from_user: r.from_user.unwrap_or_default(),
                headers: r.headers,
                source: &source,
                transport: r.transport.as_str(),
                time_unix_us: 1_764_547_200_000_000,
            }
            .encode(&mut buf);
            std::hint::black_box(lib.route_encoded(std::hint::black_box(&buf)).unwrap());
            *t = t0.elapsed().as_nanos() as u64;
        }
        p50.push(pct(&mut times, 0.5));
        p99.push(pct(&mut times, 0.99));
    }
    let (b50, b99, p50, p99) = (median(b50), median(b99), median(p50), median(p99));
    let (s50, s99) = sidecar(calls / 10, rounds);
    println!(
        "calls={calls} rounds={rounds} builtin_ns_p50={b50} p99={b99} cdylib_ns_p50={p50} p99={p99} \
         cdylib_over_builtin_ns_p50={} p99={} sidecar_us_p50={:.1} p99={:.1}",
        p50.saturating_sub(b50),
        p99.saturating_sub(b99),
        s50 as f64 / 1000.0,
        s99 as f64 / 1000.0,
    );
}

/// The sidecar's p50 and p99 (ns): medians over `rounds` of `calls`.
fn sidecar(calls: usize, rounds: usize) -> (u64, u64) {
    use sentiric_plugin_prefix_dialplan::PrefixDialplan;
    use sentiric_plugin_sdk::sidecar::DialplanClient;
    use sentiric_plugin_sdk::Plugin;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (addr, client_tls) = common::sidecar(PrefixDialplan::new(PLUGIN).unwrap()).await;
        let mut client = DialplanClient::connect(
            addr,
            "localhost",
            &client_tls,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
        let deadline = std::time::Duration::from_millis(50);
        let users = ["+49301234567", "+49891234567", "+15551234567", "0800123456"];
        let (mut s50, mut s99) = (vec![], vec![]);
        let mut times = vec![0u64; calls.max(1)];
        for _ in 0..rounds {
            for (i, t) in times.iter_mut().enumerate() {
                let user = users[i % users.len()];
                let t0 = Instant::now();
                let req = v1::RouteRequest {
                    call_id: "a84b4c76e66710@127.0.0.62".into(),
                    trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                    user: user.into(),
                    request_uri: format!("sip:{user}@127.0.0.1"),
                    time_unix_us: 1_764_547_200_000_000,
                    ..v1::RouteRequest::default()
                };
                std::hint::black_box(client.route(req, deadline).await.unwrap());
                *t = t0.elapsed().as_nanos() as u64;
            }
            s50.push(pct(&mut times, 0.5));
            s99.push(pct(&mut times, 0.99));
        }
        (median(s50), median(s99))
    })
}
