//! Logs in JSON: one object a line on standard error, and a call's lines
//! carry its Call-ID and the trace id minted at ingress.

use std::net::UdpSocket;

mod common;
use common::Switch;
use std::time::Duration;

#[test]
fn json_logs_carry_call_id_and_trace_id() {
    // Routing is logged at debug; a call's end at info.
    let sw = Switch::start(
        None,
        &[
            ("SENTIRIC_LOG_FORMAT", "json"),
            ("SENTIRIC_LOG_LEVEL", "debug"),
        ],
    );
    let addr = sw.addr;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:nobody@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKlog1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:nobody@{addr}>\r\n\
         Call-ID: json-log-test\r\nCSeq: 1 INVITE\r\nContact: <sip:t@127.0.0.1:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), addr).unwrap();
    let mut buf = [0u8; 4096];
    // 100 Trying, then the demo dialplan's 404.
    for _ in 0..2 {
        sock.recv_from(&mut buf).unwrap();
    }
    // The call's lines are written by the time its 404 is out.
    sw.wait_line("call ended", std::time::Duration::from_secs(3));
    let stderr = sw.log().join("\n");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.starts_with('{') && l.ends_with('}'), "not JSON: {l}");
    }
    let routed = lines
        .iter()
        .find(|l| l.contains("call routed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(routed.contains(r#""call_id":"json-log-test""#), "{routed}");
    let trace = routed
        .split(r#""trace_id":""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("");
    assert_eq!(trace.len(), 32, "{routed}");
    assert!(trace.chars().all(|c| c.is_ascii_hexdigit()));
    let ended = lines.iter().find(|l| l.contains("call ended")).unwrap();
    assert!(ended.contains(trace), "{ended}");
}
