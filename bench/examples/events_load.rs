//! Call events under load: how fast the switch publishes events with
//! publisher confirms, how fast `sentiric cdr` makes them into CDRs in
//! PostgreSQL, and what a broker outage does to call setup.
//!
//! ```text
//! cargo build --release --bin sentiric -p sentiric-server
//! cargo run --release -p sentiric-bench --example events_load -- [events] [cps] [calls] [rounds]
//! ```
//!
//! It starts the private RabbitMQ node and PostgreSQL cluster of the
//! test command (`scripts/rabbitmq.sh`, `scripts/postgres.sh`; PostgreSQL
//! restarted with fsync on, as production runs, and left so), on
//! loopback, then:
//!
//! 1. **Publish.** An outbox holding `events` events (defaults 100,000:
//!    a quarter of as many calls, each CallStarted, CallRouted,
//!    CallAnswered, CallEnded as a call writes them) is written, and the
//!    switch started on it with a broker: the time until the broker has
//!    confirmed them all (`sentiric_events_confirmed_total` on its
//!    /metrics) gives events per second, and the switch's CPU over it
//!    the cost per event. The exchange has the CDR consumer's queue bound
//!    (declared by starting `sentiric cdr` once), so every event is
//!    also stored persistent in a queue, as in production.
//! 2. **CDRs.** `sentiric cdr` is started on that queue: the time until
//!    PostgreSQL holds every call's CDR gives CDRs (and events) per
//!    second, and its CPU the cost per CDR (PostgreSQL's own aside).
//!    The run's rows are deleted after.
//! 3. **Call setup, broker up and down.** A switch with a broker bridges
//!    calls at `cps` (default 200) from this harness's own UAC
//!    (127.0.0.63, microsecond timestamps: SIPp's are whole
//!    milliseconds, coarser than the difference sought) to a SIPp UAS
//!    (127.0.0.61), in `rounds` rounds (default 6) of `calls` calls
//!    (default 2,000), with the broker up and paused in the order up,
//!    down, down, up, up, down … (`rabbitmqctl stop_app`: the switch's
//!    publisher loses its connection and retries; events wait in the
//!    outbox). After each
//!    outage the next round waits until the outbox has drained, so no
//!    round with the broker up pays for the backlog. A warm-up round
//!    comes first. Prints the setup delay (INVITE to 180, RFC 6076 SRD,
//!    and INVITE to 200) p50 and p99 per round and pooled per state, and
//!    the ratio down / up, pooled and for each pair of rounds side by
//!    side (their median), and the CPU per call of the switch's busiest
//!    threads in each round.
//!
//! The run binds only loopback addresses.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use sentiric_events::outbox::{Outbox, OutboxConfig};
use sentiric_events::v1::{self, event::Body};

mod common;
use common::{cpu_ns, thread_cpu_ns, tree, Running, UAS};

const UAC: &str = "127.0.0.63:5102";
const HTTP: &str = "127.0.0.1:9161";

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(format!("scripts/{name}.sh"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name}.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name}.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The value of metric `name` on the switch's /metrics.
fn metric(name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(HTTP).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `f` every `every` until it is true or `limit` has passed; the
/// time it took.
fn wait(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(every);
    }
    None
}

/// `sentiric` (`SENTIRIC_BIN`, else the release build) with `args` and
/// `env`, its standard error in `log`.
fn sentiric(args: &[&str], env: &[(&str, String)], log: &Path) -> Running {
    let exe = std::env::var("SENTIRIC_BIN").unwrap_or_else(|_| "target/release/sentiric".into());
    let child = Command::new(&exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{exe}: {e} (cargo build --release --bin sentiric)"));
    Running(child)
}

/// The four events of call `i`, as a call through the switch writes them.
fn call_events(tag: &str, i: usize) -> [v1::Event; 4] {
    let codecs = Some(v1::Codecs {
        caller: "PCMU/8000".into(),
        callee: "PCMU/8000".into(),
    });
    let rtp = Some(v1::RtpQuality {
        packets_received: 3000,
        packets_sent: 3000,
        packets_lost: 2,
        jitter_us: 310,
    });
    let bodies = [
        Body::CallStarted(v1::CallStarted {
            from_uri: format!("sip:+4930{i:08}@127.0.0.62"),
            to_uri: "sip:+49891234567@127.0.0.1".into(),
            request_uri: "sip:+49891234567@127.0.0.1".into(),
            source: "127.0.0.62:5101".into(),
            transport: "udp".into(),
        }),
        Body::CallRouted(v1::CallRouted {
            action: "bridge".into(),
            targets: vec![format!("sip:uas@{UAS}")],
            rule: "trunk".into(),
            ..v1::CallRouted::default()
        }),
        Body::CallAnswered(v1::CallAnswered {
            answered_by: String::new(),
            setup_ms: 2,
            codecs: codecs.clone(),
        }),
        Body::CallEnded(v1::CallEnded {
            cause: "normal".into(),
            side: v1::Side::Caller.into(),
            sip_code: 200,
            duration_ms: 60_002,
            talk_ms: 60_000,
            codecs,
            caller_rtp: rtp,
            callee_rtp: rtp,
        }),
    ];
    let trace = format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15);
    let mut seq = 0;
    bodies.map(|b| {
        seq += 1;
        let mut e = sentiric_events::new_event(b);
        e.call_id = format!("{tag}-{i}");
        e.trace_id.clone_from(&trace);
        e.sequence = seq;
        e.node_id = "bench".into();
        e
    })
}

/// Phases 1 and 2; returns their summary line.
fn publish_and_cdrs(dir: &Path, amqp: &str, pg: &str, events: usize) -> String {
    let tag = format!("bench-{}", std::process::id());
    let exchange = format!("sentiric.events.{tag}");
    let queue = format!("sentiric.cdr.{tag}");
    let env = vec![
        ("SENTIRIC_EVENTS_BROKER", amqp.to_string()),
        ("SENTIRIC_EVENTS_EXCHANGE", exchange.clone()),
        ("SENTIRIC_CDR_DATABASE", pg.to_string()),
        ("SENTIRIC_CDR_QUEUE", queue.clone()),
        (
            "SENTIRIC_CDR_DEAD_LETTER",
            format!("sentiric.cdr.dead.{tag}"),
        ),
        ("SENTIRIC_HTTP_LISTEN", HTTP.to_string()),
        (
            "SENTIRIC_EVENTS_OUTBOX",
            dir.join("events").display().to_string(),
        ),
        ("SENTIRIC_SIP_LISTEN", "127.0.0.1:0".to_string()),
    ];
    // The consumer's queue, bound to the exchange, then the consumer gone.
    let queued = || -> Option<u64> {
        script("rabbitmq", &["queues"], &[])
            .lines()
            .find_map(|l| l.strip_prefix(queue.as_str())?.trim().parse().ok())
    };
    {
        let _c = sentiric(&["cdr"], &env, &dir.join("cdr-declare.log"));
        wait(Duration::from_secs(30), Duration::from_millis(300), || {
            queued().is_some()
        })
        .expect("sentiric cdr declares its queue");
    }
    let calls = events / 4;
    let mut outbox = Outbox::open(OutboxConfig::new(dir.join("events")))
        .unwrap()
        .0;
    let mut bytes = 0usize;
    for i in 0..calls {
        for e in call_events(&tag, i) {
            let b = e.encode_to_vec();
            bytes += b.len();
            outbox.append(&b).unwrap();
        }
        if i % 1000 == 999 {
            outbox.write().unwrap();
        }
    }
    outbox.write().unwrap();
    outbox.sync().unwrap();
    drop(outbox);
    let events = calls * 4;

    // 1. The switch publishes the outbox.
    let sw = sentiric(&["run"], &env, &dir.join("publish.log"));
    let pids = tree(sw.0.id());
    let cpu0 = cpu_ns(&pids);
    let took = wait(Duration::from_secs(600), Duration::from_millis(50), || {
        metric("sentiric_events_confirmed_total").is_some_and(|n| n >= events as f64)
    })
    .expect("every event confirmed within 10 minutes");
    let publish_cpu = cpu_ns(&pids) - cpu0;
    drop(sw);
    let in_queue = queued().unwrap_or(0);

    // 2. The consumer makes them CDRs.
    let count = || -> u64 {
        script(
            "postgres",
            &[
                "psql",
                "-tAc",
                &format!("select count(*) from cdr where call_id like '{tag}-%'"),
            ],
            &[],
        )
        .parse()
        .unwrap_or(0)
    };
    let c = sentiric(&["cdr"], &env, &dir.join("cdr.log"));
    let cpids = tree(c.0.id());
    let ccpu0 = cpu_ns(&cpids);
    let cdr_took = wait(Duration::from_secs(900), Duration::from_millis(200), || {
        count() >= calls as u64
    })
    .expect("every CDR written within 15 minutes");
    let cdr_cpu = cpu_ns(&cpids) - ccpu0;
    drop(c);
    // The run's rows go: the tests' `sentiric cdr list` reads the
    // latest rows of the same database.
    script(
        "postgres",
        &[
            "psql",
            "-tAc",
            &format!(
                "delete from cdr where call_id like '{tag}-%'; \
                 delete from call_events where call_id like '{tag}-%'"
            ),
        ],
        &[],
    );
    format!(
        "publish: events={events} bytes_per_event={} seconds={:.2} events_per_s={:.0} switch_cpu_us_per_event={:.1} queued={in_queue}\n\
         cdr: calls={calls} seconds={:.2} cdrs_per_s={:.0} events_per_s={:.0} consumer_cpu_us_per_cdr={:.1}",
        bytes / events.max(1),
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        publish_cpu as f64 / 1000.0 / events as f64,
        cdr_took.as_secs_f64(),
        calls as f64 / cdr_took.as_secs_f64(),
        events as f64 / cdr_took.as_secs_f64(),
        cdr_cpu as f64 / 1000.0 / calls as f64,
    )
}

/// One call of the UAC.
#[derive(Default)]
struct Call {
    invited: Option<Instant>,
    ringing: Option<Duration>,
    answered: Option<Duration>,
    failed: bool,
    done: bool,
    to_tag: String,
    contact: String,
}

/// Setup delays of one round: INVITE to 180 and INVITE to 200, in µs
/// (sorted), and the calls that failed.
#[derive(Default)]
struct Round {
    srd: Vec<u64>,
    answer: Vec<u64>,
    failed: usize,
}

/// Places `n` calls at `cps` to `switch` (user `uas`), each held
/// `hold`; INVITE, ACK and BYE of its own, timed when the datagram is
/// read.
fn uac(
    sock: &UdpSocket,
    switch: SocketAddr,
    round: usize,
    n: usize,
    cps: u32,
    hold: Duration,
) -> Round {
    let me = sock.local_addr().unwrap();
    let id = |i: usize| format!("srd-{}-{round}-{i}", std::process::id());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 41000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = me.ip()
    );
    let request = |method: &str,
                   uri: &str,
                   i: usize,
                   cseq: u32,
                   to_tag: &str,
                   branch: &str,
                   body: &str| {
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{me}>;tag=f{i}\r\nTo: <sip:uas@{switch}>{to_tag}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:bench@{me}>\r\n{ctype}\
             Content-Length: {}\r\n\r\n{body}",
            id(i),
            body.len()
        )
    };
    let mut calls: Vec<Call> = (0..n).map(|_| Call::default()).collect();
    let interval = Duration::from_secs_f64(1.0 / f64::from(cps.max(1)));
    let start = Instant::now();
    let mut sent = 0usize;
    let mut byes: VecDeque<(Instant, usize)> = VecDeque::new();
    let mut finished = 0usize;
    let mut buf = vec![0u8; 65536];
    let mut last_activity = Instant::now();
    while finished < n && last_activity.elapsed() < Duration::from_secs(5) {
        let now = Instant::now();
        let next_invite = start + interval * sent as u32;
        if sent < n && now >= next_invite {
            let uri = format!("sip:uas@{switch}");
            let m = request(
                "INVITE",
                &uri,
                sent,
                1,
                "",
                &format!("i{round}x{sent}"),
                &sdp,
            );
            calls[sent].invited = Some(Instant::now());
            sock.send_to(m.as_bytes(), switch).unwrap();
            sent += 1;
            continue;
        }
        while let Some(&(due, i)) = byes.front() {
            if due > now {
                break;
            }
            byes.pop_front();
            let c = &calls[i];
            let m = request(
                "BYE",
                &c.contact,
                i,
                2,
                &c.to_tag,
                &format!("b{round}x{i}"),
                "",
            );
            sock.send_to(m.as_bytes(), switch).unwrap();
        }
        let mut until = now + Duration::from_millis(50);
        if sent < n {
            until = until.min(next_invite);
        }
        if let Some(&(due, _)) = byes.front() {
            until = until.min(due);
        }
        let timeout = until
            .saturating_duration_since(now)
            .max(Duration::from_micros(50));
        sock.set_read_timeout(Some(timeout)).unwrap();
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        last_activity = at;
        let Ok(msg) = sentiric_sip::Message::parse(&buf[..len]) else {
            continue;
        };
        let Some(resp) = msg.as_response() else {
            // A request from the switch (its BYE, say): not in this run.
            continue;
        };
        let Some(i) = resp
            .call_id()
            .rsplit('-')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&i| i < n && resp.call_id() == id(i))
        else {
            continue;
        };
        let c = &mut calls[i];
        let since = at.saturating_duration_since(c.invited.unwrap_or(at));
        match (resp.cseq().method.as_str(), resp.status) {
            ("INVITE", 180..=183) => {
                c.ringing.get_or_insert(since);
            }
            ("INVITE", 200..=299) => {
                let first = c.answered.is_none();
                c.answered.get_or_insert(since);
                c.to_tag = resp.to().tag().unwrap_or("").to_string();
                c.contact = resp
                    .contact()
                    .ok()
                    .flatten()
                    .map_or_else(|| format!("sip:uas@{switch}"), |a| a.uri_str().to_string());
                let ack = request(
                    "ACK",
                    &c.contact,
                    i,
                    1,
                    &c.to_tag,
                    &format!("a{round}x{i}"),
                    "",
                );
                sock.send_to(ack.as_bytes(), switch).unwrap();
                if first {
                    byes.push_back((at + hold, i));
                }
            }
            ("INVITE", 300..=699) => {
                // The ACK of a failure is the INVITE's transaction's.
                let to_tag = resp.to().tag().unwrap_or("").to_string();
                let uri = format!("sip:uas@{switch}");
                let ack = request("ACK", &uri, i, 1, &to_tag, &format!("i{round}x{i}"), "");
                sock.send_to(ack.as_bytes(), switch).unwrap();
                if !c.done {
                    c.failed = true;
                    c.done = true;
                    finished += 1;
                }
            }
            ("BYE", 200..=699) if !c.done => {
                c.done = true;
                finished += 1;
            }
            _ => {}
        }
    }
    let us = |d: &Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut srd: Vec<u64> = calls
        .iter()
        .filter_map(|c| c.ringing.as_ref().map(us))
        .collect();
    let mut answer: Vec<u64> = calls
        .iter()
        .filter_map(|c| c.answered.as_ref().map(us))
        .collect();
    srd.sort_unstable();
    answer.sort_unstable();
    Round {
        srd,
        answer,
        failed: calls.iter().filter(|c| c.failed || !c.done).count(),
    }
}

fn pct(v: &[u64], p: f64) -> u64 {
    v.get(((v.len().max(1) - 1) as f64 * p) as usize)
        .copied()
        .unwrap_or(0)
}

/// Phase 3; returns its summary lines.
fn setup_up_and_down(dir: &Path, amqp: &str, cps: u32, calls: usize, rounds: usize) -> String {
    let _uas = common::sipp_uas(dir);
    // An exchange of its own with no queue: the broker confirms and
    // drops, nothing piles up.
    let env = vec![
        ("SENTIRIC_EVENTS_BROKER", amqp.to_string()),
        (
            "SENTIRIC_EVENTS_EXCHANGE",
            format!("sentiric.events.srd-{}", std::process::id()),
        ),
        ("SENTIRIC_HTTP_LISTEN", HTTP.to_string()),
        (
            "SENTIRIC_EVENTS_OUTBOX",
            dir.join("srd-events").display().to_string(),
        ),
        ("SENTIRIC_SIP_LISTEN", "127.0.0.1:5160".to_string()),
        ("SENTIRIC_CDR_LOCAL", "false".to_string()),
    ];
    let max_port = 10_000 + (cps * 40).clamp(4_000, 22_767);
    let cfg = dir.join("srd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rtp]\nip = \"127.0.0.1\"\nmin_port = 10000\nmax_port = {max_port}\nquarantine_ms = 500\n\
             [[dialplan.rule]]\nuser = \"uas\"\naction = \"bridge\"\ntargets = [\"sip:uas@{UAS}\"]\n"
        ),
    )
    .unwrap();
    let sw = sentiric(
        &["run", "--config", cfg.to_str().unwrap()],
        &env,
        &dir.join("srd.log"),
    );
    let switch: SocketAddr = "127.0.0.1:5160".parse().unwrap();
    wait(Duration::from_secs(10), Duration::from_millis(100), || {
        metric("sentiric_events_broker_connected") == Some(1.0)
    })
    .expect("the switch connects to the broker");
    let sock = UdpSocket::bind(UAC).unwrap();
    let hold = Duration::from_secs(1);
    let mut out = String::new();
    let warm = uac(&sock, switch, 0, calls.min(1000), cps, hold);
    out += &format!("warm-up: failed={}\n", warm.failed);
    let (mut up, mut down) = (Round::default(), Round::default());
    // Each round's SRD p99, in order: up, down, up, down …
    let mut p99s: Vec<u64> = Vec::new();
    for r in 1..=rounds {
        // Up, down, down, up, up, down …: a drift of the machine over
        // the run weighs on both alike.
        let broker_up = matches!(r % 4, 1 | 0);
        if broker_up {
            script("rabbitmq", &["resume"], &[]);
            // The backlog of the outage published before the round.
            wait(Duration::from_secs(120), Duration::from_millis(200), || {
                metric("sentiric_events_broker_connected") == Some(1.0)
                    && metric("sentiric_events_outbox_pending") == Some(0.0)
            })
            .expect("the outbox drains after the outage");
        } else {
            script("rabbitmq", &["pause"], &[]);
            wait(Duration::from_secs(10), Duration::from_millis(50), || {
                metric("sentiric_events_broker_connected") == Some(0.0)
            })
            .expect("the switch sees the outage");
        }
        std::thread::sleep(Duration::from_millis(1500));
        let cpu0 = cpu_ns(&tree(sw.0.id()));
        let threads0 = thread_cpu_ns(sw.0.id());
        let round = uac(&sock, switch, r, calls, cps, hold);
        let cpu = cpu_ns(&tree(sw.0.id())) - cpu0;
        // Where it went, per thread (µs a call), the busiest first.
        let mut threads: Vec<(String, u64)> = thread_cpu_ns(sw.0.id())
            .into_iter()
            .map(|(name, ns)| {
                let before = threads0.get(&name).copied().unwrap_or(0);
                (name, ns.saturating_sub(before))
            })
            .filter(|(_, ns)| *ns > 0)
            .collect();
        threads.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
        let threads: Vec<String> = threads
            .iter()
            .take(6)
            .map(|(name, ns)| format!("{name}={:.1}", *ns as f64 / 1000.0 / calls as f64))
            .collect();
        let pending = metric("sentiric_events_outbox_pending").unwrap_or(-1.0);
        out += &format!(
            "round {r} broker={} failed={} srd_us_p50={} p99={} answer_us_p50={} p99={} cpu_us_per_call={:.1} outbox_pending={pending}\n  threads_us_per_call: {}\n",
            if broker_up { "up" } else { "down" },
            round.failed,
            pct(&round.srd, 0.5),
            pct(&round.srd, 0.99),
            pct(&round.answer, 0.5),
            pct(&round.answer, 0.99),
            cpu as f64 / 1000.0 / calls as f64,
            threads.join(" "),
        );
        p99s.push(pct(&round.srd, 0.99));
        let pool = if broker_up { &mut up } else { &mut down };
        pool.srd.extend(round.srd);
        pool.answer.extend(round.answer);
        pool.failed += round.failed;
    }
    script("rabbitmq", &["resume"], &[]);
    for p in [&mut up, &mut down] {
        p.srd.sort_unstable();
        p.answer.sort_unstable();
    }
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    out += &format!(
        "pooled: up srd_us_p50={} p99={} answer_us_p99={} failed={} | down srd_us_p50={} p99={} answer_us_p99={} failed={} | \
         down/up srd p50={:.3} p99={:.3} answer p99={:.3}",
        pct(&up.srd, 0.5),
        pct(&up.srd, 0.99),
        pct(&up.answer, 0.99),
        up.failed,
        pct(&down.srd, 0.5),
        pct(&down.srd, 0.99),
        pct(&down.answer, 0.99),
        down.failed,
        ratio(pct(&down.srd, 0.5), pct(&up.srd, 0.5)),
        ratio(pct(&down.srd, 0.99), pct(&up.srd, 0.99)),
        ratio(pct(&down.answer, 0.99), pct(&up.answer, 0.99)),
    );
    // Each outage against the round beside it (up-down, down-up …).
    let mut pairs: Vec<f64> = p99s
        .chunks_exact(2)
        .enumerate()
        .map(|(k, p)| {
            if k % 2 == 0 {
                ratio(p[1], p[0])
            } else {
                ratio(p[0], p[1])
            }
        })
        .collect();
    pairs.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (pairs.first(), pairs.last()) {
        out += &format!(
            "\npairwise down/up srd p99: median={:.3} range={lo:.3}-{hi:.3} pairs={}",
            pairs[pairs.len() / 2],
            pairs.len()
        );
    }
    drop(sw);
    out
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-events-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let dir = scratch();
    script("rabbitmq", &["start"], &[]);
    script("rabbitmq", &["resume"], &[]);
    script("postgres", &["stop"], &[]);
    script("postgres", &["start"], &[("SENTIRIC_POSTGRES_FSYNC", "on")]);
    let (amqp, pg) = (
        script("rabbitmq", &["url"], &[]),
        script("postgres", &["url"], &[]),
    );
    if events > 0 {
        println!("{}", publish_and_cdrs(&dir, &amqp, &pg, events));
    }
    if rounds > 0 {
        println!(
            "setup: cps={cps} calls_per_round={calls} rounds={rounds}\n{}",
            setup_up_and_down(&dir, &amqp, cps, calls, rounds)
        );
    }
    // Logs kept only when asked.
    if std::env::var_os("SENTIRIC_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        names.sort();
        println!("kept: {}", names.join(" "));
    }
}
