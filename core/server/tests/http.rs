//! The health and metrics endpoints of a running `sentiric`: /healthz,
//! /readyz (503 once draining), /metrics in Prometheus text with the SIP,
//! call and engine series, and the bearer token when one is set.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

mod common;

/// A switch with an RTP range of its own and, when given, a metrics token;
/// its SIP address and the HTTP address it logs.
struct Switch {
    sw: common::Switch,
    sip: SocketAddr,
    http: SocketAddr,
}

fn start(token: Option<&str>) -> Switch {
    let mut env = vec![
        ("SENTIRIC_RTP_MIN_PORT", "24000"),
        ("SENTIRIC_RTP_MAX_PORT", "24199"),
    ];
    if let Some(t) = token {
        env.push(("SENTIRIC_HTTP_TOKEN", t));
    }
    let sw = common::Switch::start(None, &env);
    let http = sw.http();
    let sip = sw.addr;
    Switch { sw, sip, http }
}

use common::http_get as get;

/// An INVITE from `sock`, offering media on `rtp` when given; the first
/// response past 100.
fn invite(
    sock: &UdpSocket,
    sip: SocketAddr,
    user: &str,
    call_id: &str,
    rtp: Option<u16>,
) -> String {
    let me = sock.local_addr().unwrap();
    let body = match rtp {
        Some(port) => format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
        ),
        None => String::new(),
    };
    let ct = if rtp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    let msg = format!(
        "INVITE sip:{user}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@{sip}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:t@{me}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.send_to(msg.as_bytes(), sip).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 100") {
            return r;
        }
    }
}

#[test]
fn health_readiness_and_metrics() {
    let sw = start(None);
    assert_eq!(get(sw.http, "/healthz", None), (200, "ok\n".into()));
    // Ready once the worker runs (the endpoints start just before it).
    let ready = (0..100).any(|_| {
        let ok = get(sw.http, "/readyz", None).0 == 200;
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    });
    assert!(ready, "not ready within 2 s");
    assert_eq!(get(sw.http, "/nope", None).0, 404);

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // A call the demo dialplan refuses, and an echo call that stays up.
    assert!(invite(&sock, sw.sip, "nobody", "m1", None).starts_with("SIP/2.0 404"));
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let ok = invite(
        &sock,
        sw.sip,
        "600",
        "m2",
        Some(rtp.local_addr().unwrap().port()),
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let to = ok.lines().find(|l| l.starts_with("To:")).unwrap();
    let me = sock.local_addr().unwrap();
    let ack = format!(
        "ACK sip:600@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKm2ack\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\n{to}\r\nCall-ID: m2\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        sip = sw.sip
    );
    sock.send_to(ack.as_bytes(), sw.sip).unwrap();
    // Ten packets of 172 bytes to the echo, and back.
    let media: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let mut buf = [0u8; 2048];
    for seq in 0..10u16 {
        let mut p = vec![0u8; 172];
        p[0] = 0x80;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        rtp.send_to(&p, ("127.0.0.1", media)).unwrap();
        assert_eq!(rtp.recv(&mut buf).unwrap(), 172, "echoed");
    }
    // Gauges are refreshed once a second.
    std::thread::sleep(Duration::from_millis(2100));
    let (code, metrics) = get(sw.http, "/metrics", None);
    assert_eq!(code, 200);
    for series in [
        r#"sentiric_sip_requests_total{method="INVITE"} 2"#,
        r#"sentiric_sip_responses_total{code="404"}"#,
        r#"sentiric_sip_responses_total{code="200"}"#,
        r#"sentiric_calls_total{code="404"} 1"#,
        "sentiric_calls_active 1",
        r#"sentiric_call_setup_seconds_bucket{le="+Inf"} 1"#,
        "sentiric_call_setup_seconds_count 1",
        r#"sentiric_engine_backend_info{backend="#,
        // The echo call holds one RTP/RTCP pair.
        "sentiric_rtp_port_slots_in_use 1",
        "sentiric_rtp_port_slots 100",
        "sentiric_rtp_relayed_packets_total 10",
        "sentiric_rtp_relayed_bytes_total 1720",
        r#"sentiric_worker_turn_seconds_bucket{le="+Inf"}"#,
        &format!(
            r#"sentiric_build_info{{version="{}",profile="#,
            env!("CARGO_PKG_VERSION")
        ),
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        // A series with its value must be the whole line; one without, the
        // start of one.
        let valued = series.contains(' ') && series.ends_with(|c: char| c.is_ascii_digit());
        assert!(
            metrics.lines().any(|l| if valued {
                l == series
            } else {
                l.starts_with(series)
            }),
            "{series} missing:\n{metrics}"
        );
    }
    assert_metrics_read_well(&metrics);

    // Draining: not ready any more, still healthy.
    let status = Command::new("kill")
        .args(["-TERM", &sw.sw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(sw.http, "/readyz", None), (503, "draining\n".into()));
    assert_eq!(get(sw.http, "/healthz", None).0, 200);
}

/// Every family has its HELP; latencies are histograms; counters end in
/// `_total`; a SIP status is labelled `code`; and ARCHITECTURE.md lists
/// every family the switch serves.
fn assert_metrics_read_well(metrics: &str) {
    let listed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ARCHITECTURE.md"
    ))
    .unwrap();
    let mut families = 0;
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        families += 1;
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name}: no HELP"
        );
        assert_ne!(kind, "summary", "{name}: a summary");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: {kind}"
        );
        if name.starts_with("sentiric_") && name.ends_with("_seconds") {
            assert_eq!(kind, "histogram", "{name}");
        }
        if name.starts_with("sentiric_") {
            assert!(
                listed.contains(&format!("`{name}`")),
                "{name} not in ARCHITECTURE.md"
            );
        }
    }
    assert!(families > 30, "{families} families");
    assert!(!metrics.contains("{status="), "a status label: {metrics}");
}

#[test]
fn metrics_behind_a_bearer_token() {
    let token = "0123456789abcdef-test";
    let sw = start(Some(token));
    assert_eq!(get(sw.http, "/metrics", None).0, 401);
    assert_eq!(
        get(sw.http, "/metrics", Some("wrong-token-wrong-token")).0,
        401
    );
    assert_eq!(get(sw.http, "/metrics", Some(token)).0, 200);
    // Health stays open for probes.
    assert_eq!(get(sw.http, "/healthz", None).0, 200);
}
