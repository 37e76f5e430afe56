//! The store against real databases: SQLite always, PostgreSQL when the
//! test command started one (`scripts/postgres.sh`; its URL in
//! `SENTIRIC_TEST_POSTGRES`, required with `SENTIRIC_REQUIRE_POSTGRES=1`).

use sentiric_events::v1::{self, event::Body};
use sentiric_store::{fold, Store};

fn event(call: &str, seq: u64, at_us: i64, body: Body) -> v1::Event {
    let mut e = sentiric_events::new_event(body);
    e.call_id = call.into();
    e.sequence = seq;
    e.trace_id = format!("trace-{call}");
    e.node_id = "n1".into();
    e.time_unix_us = at_us;
    e
}

/// An answered call of 2.5 s talk: five events.
fn answered(call: &str) -> Vec<v1::Event> {
    let t = 1_800_000_000_000_000;
    vec![
        event(
            call,
            1,
            t,
            Body::CallStarted(v1::CallStarted {
                from_uri: "sip:alice@127.0.0.2".into(),
                to_uri: "sip:bob@127.0.0.1".into(),
                request_uri: "sip:bob@127.0.0.1".into(),
                source: "127.0.0.2:5060".into(),
                transport: "udp".into(),
            }),
        ),
        event(
            call,
            2,
            t + 100,
            Body::CallRouted(v1::CallRouted {
                action: "bridge".into(),
                targets: vec!["sip:bob@127.0.0.3".into()],
                rule: String::new(),
                tags: [("account".to_string(), "42".to_string())].into(),
            }),
        ),
        event(
            call,
            3,
            t + 200_000,
            Body::CallRinging(v1::CallRinging {
                sip_code: 180,
                early_media: false,
            }),
        ),
        event(
            call,
            4,
            t + 1_000_000,
            Body::CallAnswered(v1::CallAnswered {
                answered_by: String::new(),
                setup_ms: 1000,
                codecs: Some(v1::Codecs {
                    caller: "PCMU/8000".into(),
                    callee: "PCMA/8000".into(),
                }),
            }),
        ),
        event(
            call,
            5,
            t + 3_500_000,
            Body::CallEnded(v1::CallEnded {
                cause: "normal".into(),
                side: v1::Side::Callee.into(),
                sip_code: 200,
                duration_ms: 3500,
                talk_ms: 2500,
                codecs: None,
                caller_rtp: Some(v1::RtpQuality {
                    packets_received: 125,
                    packets_sent: 124,
                    packets_lost: 1,
                    jitter_us: 900,
                }),
                callee_rtp: None,
            }),
        ),
    ]
}

fn busy(call: &str) -> Vec<v1::Event> {
    let mut evs = answered(call);
    evs.retain(|e| matches!(e.body, Some(Body::CallStarted(_) | Body::CallRouted(_))));
    evs.push(event(
        call,
        3,
        1_800_000_000_300_000,
        Body::CallEnded(v1::CallEnded {
            cause: "busy".into(),
            side: v1::Side::Callee.into(),
            sip_code: 486,
            duration_ms: 300,
            talk_ms: 0,
            ..v1::CallEnded::default()
        }),
    ));
    evs
}

#[test]
fn a_calls_events_fold_into_its_record() {
    let cdr = fold(&answered("c1")).unwrap();
    assert_eq!(cdr.call_id, "c1");
    assert_eq!(cdr.trace_id, "trace-c1");
    assert_eq!(cdr.from_uri, "sip:alice@127.0.0.2");
    assert_eq!(cdr.answer_us, Some(1_800_000_001_000_000));
    assert_eq!((cdr.duration_ms, cdr.billable_s), (3500, 3));
    assert_eq!(cdr.disposition, "ANSWERED");
    assert_eq!(
        (cdr.hangup_cause.as_str(), cdr.hangup_side.as_str()),
        ("normal", "callee")
    );
    assert_eq!(
        (cdr.caller_codec.as_str(), cdr.callee_codec.as_str()),
        ("PCMU/8000", "PCMA/8000")
    );
    assert_eq!(
        (
            cdr.caller_packets_received,
            cdr.caller_packets_lost,
            cdr.caller_jitter_us
        ),
        (125, 1, 900)
    );
    assert_eq!(cdr.route, "bridge sip:bob@127.0.0.3");
    assert_eq!(cdr.tags, r#"{"account":"42"}"#);
    // Tags an agent set during the call join the dialplan's; a later
    // value replaces an earlier one (events in any order).
    let mut tagged = answered("c3");
    for (seq, tags) in [(9, [("outcome", "sold")]), (4, [("account", "43")])] {
        tagged.insert(
            0,
            event(
                "c3",
                seq,
                1_800_000_002_000_000,
                Body::CallTagged(v1::CallTagged {
                    tags: tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }),
            ),
        );
    }
    assert_eq!(
        fold(&tagged).unwrap().tags,
        r#"{"account":"43","outcome":"sold"}"#
    );
    assert_eq!(fold(&tagged).unwrap().transcript, "[]");
    // An agent's turns make the transcript, in order whatever order
    // their events arrive in.
    let mut talked = answered("c4");
    for (seq, caller, agent, interrupted) in [
        (6, "what time is it", "It is nine. Do you", true),
        (5, "", "Hello!", false),
        (7, "bye", "Goodbye.", false),
    ] {
        talked.insert(
            0,
            event(
                "c4",
                seq,
                1_800_000_002_000_000,
                Body::AgentTurn(v1::AgentTurn {
                    agent: "voice".into(),
                    transcript: caller.into(),
                    response: agent.into(),
                    interrupted,
                    ..Default::default()
                }),
            ),
        );
    }
    let turns: serde_json::Value =
        serde_json::from_str(&fold(&talked).unwrap().transcript).unwrap();
    assert_eq!(
        turns,
        serde_json::json!([
            {"caller": "", "agent": "Hello!", "interrupted": false},
            {"caller": "what time is it", "agent": "It is nine. Do you", "interrupted": true},
            {"caller": "bye", "agent": "Goodbye.", "interrupted": false},
        ])
    );
    let b = fold(&busy("c2")).unwrap();
    assert_eq!(
        (b.disposition.as_str(), b.sip_code, b.billable_s),
        ("BUSY", 486, 0)
    );
    // No CallEnded: no record yet.
    let mut open = answered("c3");
    open.pop();
    assert!(fold(&open).is_none());
}

async fn idempotent_and_complete(url: &str) {
    let store = Store::open(url).await.unwrap();
    // Reopening applies nothing twice.
    let store2 = Store::open(url).await.unwrap();
    let tag = std::process::id();
    let (a, b) = (format!("a-{tag}-{url:.8}"), format!("b-{tag}-{url:.8}"));
    let mut first = answered(&a);
    let rest = first.split_off(2);
    // Out of order, duplicated, over batches, the busy call in between.
    assert_eq!(store.record(&first).await.unwrap(), 0);
    let mut mixed = busy(&b);
    mixed.extend(rest.iter().rev().cloned());
    mixed.push(first[0].clone());
    assert_eq!(store.record(&mixed).await.unwrap(), 2);
    // Replayed whole: nothing more.
    let mut replay = answered(&a);
    replay.extend(busy(&b));
    assert_eq!(store2.record(&replay).await.unwrap(), 0);
    let got: Vec<_> = store
        .recent(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.call_id == a || c.call_id == b)
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    let ans = got.iter().find(|c| c.call_id == a).unwrap();
    assert_eq!(*ans, fold(&answered(&a)).unwrap());
    assert_eq!(
        got.iter().find(|c| c.call_id == b).unwrap().disposition,
        "BUSY"
    );
}

/// A batch larger than the store's statements take at once (events,
/// calls and CDRs go in chunks): every call gets its row.
async fn many_calls_in_one_batch(url: &str) {
    let store = Store::open(url).await.unwrap();
    let tag = format!("m-{}-{:.8}", std::process::id(), url);
    let batch: Vec<v1::Event> = (0..230)
        .flat_map(|i| answered(&format!("{tag}-{i}")))
        .collect();
    assert_eq!(batch.len(), 1150);
    assert_eq!(store.record(&batch).await.unwrap(), 230);
    assert_eq!(store.record(&batch).await.unwrap(), 0);
    let mine = store
        .recent(0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.call_id.starts_with(&tag))
        .count();
    assert_eq!(mine, 230);
}

#[tokio::test]
async fn sqlite_writes_one_row_per_call_whatever_the_replays() {
    let path = std::env::temp_dir().join(format!("sentiric-store-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    idempotent_and_complete(&url).await;
    many_calls_in_one_batch(&url).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn postgres_writes_one_row_per_call_whatever_the_replays() {
    match std::env::var("SENTIRIC_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => {
            idempotent_and_complete(&url).await;
            many_calls_in_one_batch(&url).await;
        }
        _ => {
            assert!(
                std::env::var("SENTIRIC_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "SENTIRIC_TEST_POSTGRES unset: scripts/postgres.sh start"
            );
            eprintln!("skipped: no PostgreSQL (SENTIRIC_TEST_POSTGRES)");
        }
    }
}
