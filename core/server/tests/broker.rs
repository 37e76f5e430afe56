//! Events published to a real RabbitMQ (`scripts/rabbitmq.sh`, started by
//! the test command; its URL in `SENTIRIC_TEST_AMQP`): every call's
//! events arrive on the fanout exchange in per-call order, and a broker
//! outage delays them without losing any or slowing calls.
//!
//! The tests pause the shared broker, so they run one at a time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Switch;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use prost::Message as _;
use sentiric_events::v1;

static SERIAL: Mutex<()> = Mutex::new(());

/// The broker's URL, or `None` (the test is skipped) when the test
/// command did not start one; with `SENTIRIC_REQUIRE_BROKER=1` a missing
/// broker fails the test.
fn broker() -> Option<String> {
    match std::env::var("SENTIRIC_TEST_AMQP") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("SENTIRIC_REQUIRE_BROKER").as_deref() != Ok("1"),
                "SENTIRIC_TEST_AMQP unset: start the broker with scripts/rabbitmq.sh start"
            );
            eprintln!("skipped: no broker (SENTIRIC_TEST_AMQP)");
            None
        }
    }
}

fn rabbitmq(cmd: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/rabbitmq.sh");
    let status = Command::new("bash").args([script, cmd]).status().unwrap();
    assert!(status.success(), "rabbitmq.sh {cmd}");
}

/// A durable queue bound to a fanout exchange of the test's own.
fn bind(url: &str, exchange: &str, queue: &str) {
    common::rt().block_on(async {
        let (conn, ch) = common::amqp_channel(url, exchange).await;
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let _ = conn.close(0, "bound".into()).await;
    });
}

/// Takes messages off `queue` until `done` says the events so far are
/// enough, or 20 s have passed; checks each message's properties.
fn drain(url: &str, queue: &str, done: impl Fn(&[v1::Event]) -> bool) -> Vec<v1::Event> {
    common::rt().block_on(async {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(20);
        while !done(&got) && Instant::now() < end {
            match ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => {
                    let p = &m.delivery.properties;
                    assert_eq!(
                        p.content_type().as_ref().map(|c| c.as_str()),
                        Some("application/x-protobuf")
                    );
                    assert_eq!(*p.delivery_mode(), Some(2), "persistent");
                    assert_eq!(
                        p.kind().as_ref().map(|c| c.as_str()),
                        Some("sentiric.event.v1.Event")
                    );
                    let e = v1::Event::decode(m.delivery.data.as_slice()).expect("protobuf");
                    assert_eq!(
                        p.message_id().as_ref().map(|c| c.as_str()),
                        Some(e.event_id.as_str())
                    );
                    got.push(e);
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let _ = ch
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
        let _ = conn.close(0, "drained".into()).await;
        got
    })
}

fn start(url: &str, exchange: &str, min_port: u16) -> Switch {
    Switch::start(
        Some(&common::echo_and_busy(min_port)),
        &[
            ("SENTIRIC_EVENTS_BROKER", url),
            ("SENTIRIC_EVENTS_EXCHANGE", exchange),
        ],
    )
}

/// `sentiric call` to the switch's echo test (or `busy`); the summary and
/// how long the INVITE took to be answered.
fn call(sw: &Switch, user: &str) -> (String, Duration) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--duration",
            "0.2",
        ])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        t.elapsed(),
    )
}

/// Events by call, each call's in the order they came, duplicates (by
/// `event_id`) dropped.
fn by_call(events: &[v1::Event]) -> BTreeMap<String, Vec<v1::Event>> {
    let mut seen = BTreeSet::new();
    let mut calls: BTreeMap<String, Vec<v1::Event>> = BTreeMap::new();
    for e in events {
        if !e.call_id.is_empty() && seen.insert(e.event_id.clone()) {
            calls.entry(e.call_id.clone()).or_default().push(e.clone());
        }
    }
    calls
}

fn ended(events: &[v1::Event]) -> usize {
    let ids: BTreeSet<&str> = events
        .iter()
        .filter(|e| matches!(e.body, Some(v1::event::Body::CallEnded(_))))
        .map(|e| e.event_id.as_str())
        .collect();
    ids.len()
}

fn unique(tag: &str) -> (String, String) {
    let n = std::process::id();
    (
        format!("sentiric.events.test-{tag}-{n}"),
        format!("sentiric-test-{tag}-{n}"),
    )
}

#[test]
fn every_calls_events_arrive_on_the_exchange_in_order() {
    let Some(url) = broker() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (exchange, queue) = unique("order");
    bind(&url, &exchange, &queue);
    let sw = start(&url, &exchange, 29_400);
    for user in ["600", "busy", "600"] {
        call(&sw, user);
    }
    let got = drain(&url, &queue, |g| ended(g) >= 3);
    let calls = by_call(&got);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    for (call_id, evs) in &calls {
        let seqs: Vec<u64> = evs.iter().map(|e| e.sequence).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as u64).collect::<Vec<_>>(),
            "{call_id}"
        );
        assert!(matches!(evs[0].body, Some(v1::event::Body::CallStarted(_))));
        assert!(matches!(
            evs.last().unwrap().body,
            Some(v1::event::Body::CallEnded(_))
        ));
    }
    assert!(got
        .iter()
        .any(|e| matches!(e.body, Some(v1::event::Body::NodeStarted(_)))));
    // Confirmed: the outbox's watermark moves past every event.
    let end = Instant::now() + Duration::from_secs(5);
    let on_disk = sw.events().len();
    let confirmed = || {
        std::fs::read_to_string(sw.events.join("confirmed"))
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    while confirmed() < on_disk && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(confirmed(), on_disk, "every event written was confirmed");
}

#[test]
fn a_broker_outage_delays_events_and_loses_none() {
    let Some(url) = broker() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (exchange, queue) = unique("outage");
    bind(&url, &exchange, &queue);
    let sw = start(&url, &exchange, 29_600);
    let (first, up) = call(&sw, "600");
    assert!(first.contains("\"status\":200"), "{first}");
    rabbitmq("pause");
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (summary, took) = call(&sw, "600");
        assert!(summary.contains("\"status\":200"), "calls go on: {summary}");
        slowest = slowest.max(took);
    }
    // The switch noticed: its publisher is retrying, and says so on
    // /metrics with the events waiting.
    assert!(
        sw.wait_line("retrying", Duration::from_secs(10)).is_some(),
        "{:#?}",
        sw.log()
    );
    assert_eq!(sw.metric("sentiric_events_broker_connected"), Some(0.0));
    // Four events a call, the last call's end perhaps not yet taken in.
    let pending = sw.metric("sentiric_events_outbox_pending");
    assert!(pending >= Some(4.0 * 4.0 + 3.0), "{pending:?}");
    rabbitmq("resume");
    let got = drain(&url, &queue, |g| ended(g) >= 6);
    assert_eq!(sw.metric("sentiric_events_broker_connected"), Some(1.0));
    let end = Instant::now() + Duration::from_secs(5);
    while sw.metric("sentiric_events_outbox_pending") != Some(0.0) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sw.metric("sentiric_events_outbox_pending"), Some(0.0));
    assert_eq!(
        sw.metric("sentiric_events_confirmed_total"),
        sw.metric("sentiric_events_written_total")
    );
    // The broker's password never reaches the log.
    let password = url
        .split('@')
        .next()
        .and_then(|s| s.rsplit(':').next())
        .unwrap();
    assert!(sw.lines(&format!(":{password}@")).is_empty());
    let calls = by_call(&got);
    assert_eq!(
        calls.len(),
        6,
        "every call's events arrived: {}",
        calls.len()
    );
    for (call_id, evs) in &calls {
        let seqs: Vec<u64> = evs.iter().map(|e| e.sequence).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as u64).collect::<Vec<_>>(),
            "{call_id}"
        );
    }
    // Calls did not wait for the broker (a call takes ~0.2 s of media).
    assert!(
        slowest < up + Duration::from_secs(1),
        "{slowest:?} during the outage, {up:?} before"
    );
}

/// Killed with -9 while the broker is down, its events still in the
/// outbox: the next start on the same outbox publishes them.
#[test]
fn events_left_by_a_killed_switch_are_published_by_the_next_start() {
    let Some(url) = broker() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (exchange, queue) = unique("crash");
    bind(&url, &exchange, &queue);
    let mut sw = start(&url, &exchange, 29_800);
    rabbitmq("pause");
    let (summary, _) = call(&sw, "600");
    assert!(summary.contains("\"status\":200"), "{summary}");
    let end = Instant::now() + Duration::from_secs(5);
    while sw.events().len() < 5 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = sw.events();
    sw.child.kill().unwrap();
    sw.child.wait().unwrap();
    let outbox = sw.events.with_extension("crashed");
    let _ = std::fs::remove_dir_all(&outbox);
    std::fs::rename(&sw.events, &outbox).unwrap();
    drop(sw);
    rabbitmq("resume");
    let again = Switch::start_with_events(
        Some(
            "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\n\
             min_port = 29800\nmax_port = 29999\n",
        ),
        &[
            ("SENTIRIC_EVENTS_BROKER", url.as_str()),
            ("SENTIRIC_EVENTS_EXCHANGE", exchange.as_str()),
        ],
        outbox,
    );
    let got = drain(&url, &queue, |g| ended(g) >= 1);
    let ids: BTreeSet<&str> = got.iter().map(|e| e.event_id.as_str()).collect();
    for e in left.iter().filter_map(|e| e["event_id"].as_str()) {
        assert!(ids.contains(e), "{e} published after the restart");
    }
    drop(again);
}

/// A queue of the test's own that holds at most `max` messages and
/// refuses more (`x-overflow: reject-publish`: the broker nacks them).
fn bind_short(url: &str, exchange: &str, queue: &str, max: i32) {
    use lapin::types::AMQPValue;
    common::rt().block_on(async {
        let (conn, ch) = common::amqp_channel(url, exchange).await;
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(max));
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .unwrap();
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let _ = conn.close(0, "bound".into()).await;
    });
}

/// Checks that every call in `events` has all its events, from
/// CallStarted to CallEnded, none missing (by sequence number: an event
/// published again after a refusal may arrive after a later one).
fn whole(events: &[v1::Event], calls: usize) {
    let by = by_call(events);
    assert_eq!(by.len(), calls, "{by:#?}");
    for (call_id, evs) in &by {
        let mut evs = evs.clone();
        evs.sort_by_key(|e| e.sequence);
        let seqs: Vec<u64> = evs.iter().map(|e| e.sequence).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as u64).collect::<Vec<_>>(),
            "{call_id}"
        );
        assert!(matches!(evs[0].body, Some(v1::event::Body::CallStarted(_))));
        assert!(matches!(
            evs.last().unwrap().body,
            Some(v1::event::Body::CallEnded(_))
        ));
    }
}

/// With no queue bound to the exchange the broker would confirm events
/// and drop them: published `mandatory`, they come back unroutable and
/// stay in the outbox until a queue is bound; then every one arrives,
/// the node's own from before the calls too.
#[test]
fn events_wait_for_a_queue_and_none_is_lost() {
    let Some(url) = broker() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (exchange, queue) = unique("unbound");
    // The exchange exists, nothing is bound to it.
    common::rt().block_on(async {
        let (conn, _ch) = common::amqp_channel(&url, &exchange).await;
        let _ = conn.close(0, "declared".into()).await;
    });
    let sw = start(&url, &exchange, 20_000);
    for user in ["600", "busy"] {
        let (summary, _) = call(&sw, user);
        assert!(summary.contains("\"status\""), "{summary}");
    }
    assert!(
        sw.wait_line("routes events to no queue", Duration::from_secs(10))
            .is_some(),
        "{:#?}",
        sw.log()
    );
    assert!(sw.metric("sentiric_events_unroutable_total") > Some(0.0));
    // The node's event and both calls' (4 and 3), all still in the
    // outbox once written.
    let end = Instant::now() + Duration::from_secs(5);
    while sw.events().len() < 8 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pending = sw.metric("sentiric_events_outbox_pending");
    assert_eq!(
        pending,
        Some(sw.events().len() as f64),
        "events left the outbox with no queue to hold them"
    );
    // The broker's returns are not logged, bodies and all.
    assert!(sw.lines("returned us a message").is_empty());
    std::thread::sleep(Duration::from_secs(2));
    bind(&url, &exchange, &queue);
    let got = drain(&url, &queue, |g| ended(g) >= 2);
    whole(&got, 2);
    assert!(got
        .iter()
        .any(|e| matches!(e.body, Some(v1::event::Body::NodeStarted(_)))));
    let end = Instant::now() + Duration::from_secs(5);
    while sw.metric("sentiric_events_outbox_pending") != Some(0.0) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sw.metric("sentiric_events_outbox_pending"), Some(0.0));
    assert!(sw
        .wait_line("routes events to a queue again", Duration::from_secs(2))
        .is_some());
}

/// A broker that refuses events (nack: here a queue that holds two and
/// rejects more) gets them again, in order, once it takes them: the
/// outbox keeps every nacked one.
#[test]
fn nacked_events_are_published_again() {
    let Some(url) = broker() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (exchange, queue) = unique("nack");
    bind_short(&url, &exchange, &queue, 2);
    let sw = start(&url, &exchange, 20_200);
    for user in ["600", "busy", "600"] {
        call(&sw, user);
    }
    assert!(
        sw.wait_line("(nack)", Duration::from_secs(10)).is_some(),
        "{:#?}",
        sw.log()
    );
    assert!(sw.metric("sentiric_events_nacked_total") > Some(0.0));
    // Taking them two at a time makes room; the rest follow.
    let got = drain(&url, &queue, |g| ended(g) >= 3);
    whole(&got, 3);
    let end = Instant::now() + Duration::from_secs(5);
    while sw.metric("sentiric_events_outbox_pending") != Some(0.0) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sw.metric("sentiric_events_outbox_pending"), Some(0.0));
}
