//! `sentiric cdr` between a real RabbitMQ and a real PostgreSQL (both
//! started by the test command: `SENTIRIC_TEST_AMQP`,
//! `SENTIRIC_TEST_POSTGRES`): calls through the switch become one CDR row
//! each; what the consumer cannot read goes to the dead-letter queue; a
//! database outage delays CDRs and loses none.
//!
//! The outage test stops the shared database, so the tests run one at a
//! time.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Switch;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use prost::Message as _;
use sentiric_events::v1;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// The broker's and the database's URLs, or `None` (skipped) when the
/// test command did not start them; each required by its own switch
/// (`SENTIRIC_REQUIRE_BROKER=1`, `SENTIRIC_REQUIRE_POSTGRES=1`, both set
/// by the test command): a missing one then fails the test.
fn services() -> Option<(String, String)> {
    let amqp = std::env::var("SENTIRIC_TEST_AMQP").unwrap_or_default();
    let pg = std::env::var("SENTIRIC_TEST_POSTGRES").unwrap_or_default();
    let required = |name: &str| std::env::var(name).as_deref() == Ok("1");
    assert!(
        !(amqp.is_empty() && required("SENTIRIC_REQUIRE_BROKER")),
        "SENTIRIC_TEST_AMQP is needed (SENTIRIC_REQUIRE_BROKER=1)"
    );
    assert!(
        !(pg.is_empty() && required("SENTIRIC_REQUIRE_POSTGRES")),
        "SENTIRIC_TEST_POSTGRES is needed (SENTIRIC_REQUIRE_POSTGRES=1)"
    );
    if amqp.is_empty() || pg.is_empty() {
        eprintln!("skipped: no broker or database");
        return None;
    }
    Some((amqp, pg))
}

fn script(name: &str, cmd: &str) {
    let path = format!("{}/../../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash").args([&path, cmd]).status().unwrap();
    assert!(status.success(), "{name} {cmd}");
}

/// Names of the test's own: exchange, queue, dead-letter queue.
struct Names {
    exchange: String,
    queue: String,
    dead: String,
}

fn names(tag: &str) -> Names {
    let n = std::process::id();
    Names {
        exchange: format!("sentiric.events.cdr-{tag}-{n}"),
        queue: format!("sentiric.cdr.{tag}-{n}"),
        dead: format!("sentiric.cdr.dead.{tag}-{n}"),
    }
}

fn env<'a>(amqp: &'a str, pg: &'a str, n: &'a Names) -> Vec<(&'static str, &'a str)> {
    vec![
        ("SENTIRIC_EVENTS_BROKER", amqp),
        ("SENTIRIC_EVENTS_EXCHANGE", n.exchange.as_str()),
        ("SENTIRIC_CDR_DATABASE", pg),
        ("SENTIRIC_CDR_QUEUE", n.queue.as_str()),
        ("SENTIRIC_CDR_DEAD_LETTER", n.dead.as_str()),
    ]
}

/// `sentiric cdr`, killed when dropped; its log in a file.
struct Consumer(Child, std::path::PathBuf);

impl Consumer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// Starts the consumer and waits for its queue: events published before
/// it is bound would go nowhere.
fn consumer(env: &[(&str, &str)], amqp: &str, queue: &str) -> Consumer {
    let log = std::env::temp_dir().join(format!("sentiric-cdr-{queue}.log"));
    let c = Consumer(
        Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .arg("cdr")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    );
    common::rt().block_on(async {
        let conn = Connection::connect(amqp, ConnectionProperties::default())
            .await
            .unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            // A passive declare fails (and closes the channel) until the
            // queue exists.
            let ch = conn.create_channel().await.unwrap();
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            if ch
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < end,
                "the consumer's queue {queue} never came"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = conn.close(0, "ready".into()).await;
    });
    c
}

fn switch(env: &[(&str, &str)], min_port: u16) -> Switch {
    Switch::start(Some(&common::echo_and_busy(min_port)), env)
}

fn call(sw: &Switch, user: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--duration",
            "1.2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success() || user == "busy", "{out:?}");
}

/// The CDRs of `calls` in the database, waiting up to `wait` for all.
fn cdrs(env: &[(&str, &str)], calls: &BTreeSet<String>, wait: Duration) -> Vec<Value> {
    let end = Instant::now() + wait;
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["cdr", "list", "--since", "3600", "-n", "10000"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["call_id"].as_str().is_some_and(|c| calls.contains(c)))
            .collect();
        if rows.len() >= calls.len() || Instant::now() > end {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Call-IDs of the calls the switch has seen end.
fn ended_calls(sw: &Switch, n: usize) -> BTreeSet<String> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let ids: BTreeSet<String> = sw
            .events()
            .iter()
            .filter(|e| e["body"].get("CallEnded").is_some())
            .filter_map(|e| e["call_id"].as_str().map(String::from))
            .collect();
        if ids.len() >= n || Instant::now() > end {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn calls_become_one_cdr_row_each() {
    let Some((amqp, pg)) = services() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = names("rows");
    let env = env(&amqp, &pg, &n);
    let _c = consumer(&env, &amqp, &n.queue);
    let sw = switch(&env, 30_000);
    for user in ["600", "busy", "600"] {
        call(&sw, user);
    }
    let calls = ended_calls(&sw, 3);
    assert_eq!(calls.len(), 3);
    let rows = cdrs(&env, &calls, Duration::from_secs(20));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let answered: Vec<&Value> = rows
        .iter()
        .filter(|r| r["disposition"] == "ANSWERED")
        .collect();
    assert_eq!(answered.len(), 2, "{rows:#?}");
    for r in &answered {
        assert_eq!(r["sip_code"], 200);
        assert!(r["billable_s"].as_i64().unwrap() >= 1, "{r}");
        assert!(r["answer_us"].as_i64().unwrap() >= r["start_us"].as_i64().unwrap());
        assert!(r["request_uri"].as_str().unwrap().starts_with("sip:600@"));
        assert_eq!(r["route"], "echo");
        assert_eq!(r["caller_codec"], "PCMU/8000");
        assert_eq!(r["hangup_side"], "caller");
        assert!(r["caller_packets_received"].as_i64().unwrap() >= 50, "{r}");
        assert_eq!(r["trace_id"].as_str().unwrap().len(), 32);
    }
    let busy = rows.iter().find(|r| r["disposition"] == "BUSY").unwrap();
    assert_eq!(
        (busy["sip_code"].as_i64(), busy["billable_s"].as_i64()),
        (Some(486), Some(0))
    );
}

#[test]
fn what_the_consumer_cannot_read_goes_to_the_dead_letter_queue_and_json_is_read() {
    let Some((amqp, pg)) = services() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = names("dead");
    let env = env(&amqp, &pg, &n);
    let c = consumer(&env, &amqp, &n.queue);
    let mut unknown =
        sentiric_events::new_event(v1::event::Body::NodeStarted(v1::NodeStarted::default()));
    unknown.schema_version = 99;
    let dead = common::rt().block_on(async {
        let (_conn, ch) = common::amqp_channel(&amqp, &n.exchange).await;
        let json = serde_json::to_vec(&unknown).unwrap();
        for (body, kind) in [
            (b"\xff\xff not protobuf".to_vec(), "application/x-protobuf"),
            (unknown.encode_to_vec(), "application/x-protobuf"),
            (json[..json.len() / 2].to_vec(), "application/json"),
            (json, "application/json"),
        ] {
            ch.basic_publish(
                n.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_content_type(kind.into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        let mut dead = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while dead.len() < 4 && Instant::now() < end {
            match ch
                .basic_get(n.dead.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => dead.push(m.delivery.data),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        dead
    });
    assert_eq!(dead.len(), 4, "all rejected to the dead-letter queue");
    assert_eq!(
        c.log().matches("dead-letter queue").count(),
        4,
        "{}",
        c.log()
    );
    assert!(dead.iter().any(|d| d.starts_with(b"\xff\xff")));
    // The consumer goes on: a call still becomes its CDR, here from a
    // switch publishing JSON.
    let mut env = env;
    env.push(("SENTIRIC_EVENTS_CONTENT_TYPE", "json"));
    let sw = switch(&env, 30_200);
    call(&sw, "busy");
    let calls = ended_calls(&sw, 1);
    assert_eq!(cdrs(&env, &calls, Duration::from_secs(20)).len(), 1);
}

#[test]
fn a_database_outage_delays_cdrs_and_loses_none() {
    let Some((amqp, pg)) = services() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = names("outage");
    let env = env(&amqp, &pg, &n);
    let c = consumer(&env, &amqp, &n.queue);
    let sw = switch(&env, 30_400);
    call(&sw, "busy");
    script("postgres.sh", "stop");
    for _ in 0..3 {
        call(&sw, "busy");
    }
    // Events reached the broker meanwhile; the consumer's writes fail
    // (a connection is waited for 2 s) and are retried.
    std::thread::sleep(Duration::from_secs(4));
    script("postgres.sh", "start");
    let calls = ended_calls(&sw, 4);
    assert_eq!(calls.len(), 4);
    let rows = cdrs(&env, &calls, Duration::from_secs(30));
    assert_eq!(rows.len(), 4, "every CDR written once the database is back");
    // It did meet the outage, and acked nothing meanwhile.
    assert!(c.log().contains("nothing acked, retrying"), "{}", c.log());
}
