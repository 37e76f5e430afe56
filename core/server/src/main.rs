//! `sentiric`: the switch binary.
//!
//! Today it is the IO shell around the sans-IO SIP core: one UDP socket on
//! loopback, the transaction layer driven by the socket's read timeout, and
//! a minimal transaction user that answers OPTIONS (a SIP ping) with 200
//! and every other request with 501. Malformed requests get the stateless
//! response their parse error names (400, 505, 513); well-formed requests
//! the element cannot take get 416/420/415. The B2BUA engine, RTP and the
//! io_uring workers replace this loop in later work.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sentiric_sip::build::{response_to, stateless_response};
use sentiric_sip::check::{check_request, RequestPolicy};
use sentiric_sip::transaction::{
    IncomingRequest, LayerEvent, Reliability, TimerConfig, TransactionEvent, TransactionLayer,
};
use sentiric_sip::{Disposition, Message, Method, Request};

const USAGE: &str = "usage: sentiric run [--listen ADDR]   (default 127.0.0.1:5060)
       sentiric --version";

/// Most transactions held at once; beyond it new requests get 503.
const MAX_TRANSACTIONS: usize = 65_536;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let mut listen: SocketAddr = ([127, 0, 0, 1], 5060).into();
            let mut rest = args[1..].iter();
            while let Some(a) = rest.next() {
                match (a.as_str(), rest.next()) {
                    ("--listen", Some(v)) => match v.parse() {
                        Ok(addr) => listen = addr,
                        Err(_) => {
                            eprintln!("sentiric: --listen: not an address: {v}");
                            return ExitCode::from(2);
                        }
                    },
                    _ => {
                        eprintln!("{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            match run(listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sentiric: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("--version") => {
            println!("sentiric {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Random tags from the OS-seeded hasher keys of the standard library
/// (RFC 3261 §19.3 asks for at least 32 random bits).
fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5e17_171c);
    format!("{:016x}", h.finish())
}

fn run(listen: SocketAddr) -> std::io::Result<()> {
    let sock = UdpSocket::bind(listen)?;
    // The first stdout line says where the switch listens (tests read it).
    println!("sentiric listening on udp:{}", sock.local_addr()?);
    let mut layer: TransactionLayer<SocketAddr> =
        TransactionLayer::new(TimerConfig::default(), MAX_TRANSACTIONS);
    let policy = RequestPolicy::default();
    let mut buf = vec![0u8; 65_535];
    loop {
        let wait = layer
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait))?;
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => handle(&sock, &mut layer, &policy, &buf[..n], src),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => eprintln!("sentiric: recv: {e}"),
        }
        layer.handle_timeout(Instant::now());
        while let Some(t) = layer.poll_transmit() {
            if let Err(e) = sock.send_to(&t.bytes, t.destination) {
                eprintln!("sentiric: send to {}: {e}", t.destination);
            }
        }
        while let Some(LayerEvent { id, event }) = layer.poll_event() {
            if let TransactionEvent::Timeout(timer) = event {
                eprintln!("sentiric: transaction {id:?} timed out (Timer {timer:?})");
            }
        }
    }
}

fn handle(
    sock: &UdpSocket,
    layer: &mut TransactionLayer<SocketAddr>,
    policy: &RequestPolicy<'_>,
    datagram: &[u8],
    src: SocketAddr,
) {
    let now = Instant::now();
    let req = match Message::parse(datagram) {
        Ok(Message::Request(r)) => r,
        // No client transactions yet: every response is stray (§18.1.2).
        Ok(Message::Response(_)) => return,
        Err(e) => {
            if let Disposition::Respond { status, reason } = e.disposition() {
                if let Some(resp) = stateless_response(datagram, status, &reason, &random_tag()) {
                    let _ = sock.send_to(&resp, src);
                }
            }
            return;
        }
    };
    match layer.receive_request(now, &req, src, Reliability::Unreliable) {
        IncomingRequest::New(id) => {
            let resp = answer(&req, policy);
            if let Err(e) = layer.send_response(now, id, resp) {
                eprintln!("sentiric: respond: {e}");
            }
        }
        IncomingRequest::Cancel { id, invite } => {
            // Every INVITE is answered at once, so there is never one to cancel.
            let (code, reason) = match invite {
                Some(_) => (200, "OK"),
                None => (481, "Call/Transaction Does Not Exist"),
            };
            let _ = layer.send_response(
                now,
                id,
                response_to(&req, code, reason, Some(&random_tag())).finish(),
            );
        }
        IncomingRequest::Overloaded => {
            let resp = response_to(&req, 503, "Service Unavailable", Some(&random_tag()))
                .header(sentiric_sip::HeaderName::RetryAfter, "5")
                .finish();
            let _ = sock.send_to(&resp, src);
        }
        IncomingRequest::Ack { .. } | IncomingRequest::Absorbed => {}
    }
}

/// The transaction user of this minimal switch.
fn answer(req: &Request<'_>, policy: &RequestPolicy<'_>) -> Vec<u8> {
    let tag = random_tag();
    if let Err(rej) = check_request(req, policy) {
        let mut b = response_to(req, rej.status(), &rej.reason(), Some(&tag));
        if let Some((name, value)) = rej.extra_header() {
            b = b.header(name, &value);
        }
        return b.finish();
    }
    let allow = "OPTIONS";
    match req.method {
        Method::Options => response_to(req, 200, "OK", Some(&tag))
            .header(sentiric_sip::HeaderName::Allow, allow)
            .header(sentiric_sip::HeaderName::Accept, "application/sdp")
            .header(
                sentiric_sip::HeaderName::Server,
                concat!("sentiric/", env!("CARGO_PKG_VERSION")),
            )
            .finish(),
        _ => response_to(req, 501, "Not Implemented", Some(&tag))
            .header(sentiric_sip::HeaderName::Allow, allow)
            .finish(),
    }
}
