//! Call and node events in the switch's outbox: what a call through the
//! switch writes, in order, read back with `sentiric events tail`; and
//! the outbox surviving the switch killed with -9.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Switch;
use serde_json::Value;

fn config(min_port: u16) -> String {
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n[rtp]\nip = \"127.0.0.1\"\n\
         min_port = {min_port}\nmax_port = {}\n[node]\nid = \"test-node\"\n\
         [[dialplan.rule]]\nuser = \"busy\"\naction = \"reject\"\ncode = 486\n\
         [[dialplan.rule]]\nuser = \"600\"\naction = \"echo\"\n",
        min_port + 199
    )
}

/// `sentiric call` to `user` on the switch, with `extra` arguments; its
/// JSON summary.
fn call_with(sw: &Switch, user: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--duration",
            "1",
        ])
        .args(extra)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sentiric call` to `user` on the switch; its JSON summary.
fn call(sw: &Switch, user: &str) -> String {
    call_with(sw, user, &[])
}

/// The outbox's events once `calls` calls have ended (or 3 s have passed).
fn events_until_ended(sw: &Switch, calls: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let all = sw.events();
        let ended = all
            .iter()
            .filter(|e| e.get("body").and_then(|b| b.get("CallEnded")).is_some())
            .count();
        if ended >= calls || Instant::now() > end {
            return all;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kind(e: &Value) -> String {
    e["body"]
        .as_object()
        .and_then(|b| b.keys().next().cloned())
        .unwrap_or_default()
}

#[test]
fn a_call_leaves_its_events_in_order_in_the_outbox() {
    let sw = Switch::start(Some(&config(29_000)), &[]);
    // Two digits sent as RFC 4733 events on the way.
    let summary = call_with(&sw, "600", &["--dtmf", "4#"]);
    assert!(summary.contains("\"status\":200"), "{summary}");
    let busy = call(&sw, "busy");
    assert!(busy.contains("\"status\":486"), "{busy}");
    let all = events_until_ended(&sw, 2);

    let node: Vec<&Value> = all.iter().filter(|e| e["call_id"] == "").collect();
    assert_eq!(kind(node[0]), "NodeStarted", "{all:#?}");
    assert_eq!(node[0]["sequence"], 1);

    let mut ids: Vec<String> = all
        .iter()
        .filter_map(|e| {
            e["call_id"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(String::from)
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two calls: {ids:?}");
    for (call_id, expected) in ids.iter().zip([
        &[
            "CallStarted",
            "CallRouted",
            "CallAnswered",
            "DtmfReceived",
            "DtmfReceived",
            "CallEnded",
        ][..],
        &["CallStarted", "CallRouted", "CallEnded"][..],
    ]) {
        let evs: Vec<&Value> = all
            .iter()
            .filter(|e| e["call_id"] == call_id.as_str())
            .collect();
        assert_eq!(
            evs.iter().map(|e| kind(e)).collect::<Vec<_>>(),
            expected,
            "{call_id}: {evs:#?}"
        );
        // Numbered 1, 2, 3 …, one trace id, this node, fresh UUIDv7s.
        for (k, e) in evs.iter().enumerate() {
            assert_eq!(e["sequence"], k as u64 + 1);
            assert_eq!(e["trace_id"], evs[0]["trace_id"]);
            assert_eq!(e["node_id"], "test-node");
            assert_eq!(e["schema_version"], 1);
            let id = e["event_id"].as_str().unwrap();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
        }
        assert_eq!(evs[0]["trace_id"].as_str().unwrap().len(), 32);
    }
    let answered: Vec<&Value> = all
        .iter()
        .filter(|e| e["call_id"] == ids[0].as_str())
        .collect();
    let started = &answered[0]["body"]["CallStarted"];
    for uri in ["request_uri", "to_uri"] {
        assert!(
            started[uri].as_str().unwrap().starts_with("sip:600@"),
            "{started}"
        );
    }
    assert!(started["source"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(started["transport"], "udp");
    assert_eq!(answered[1]["body"]["CallRouted"]["action"], "echo");
    for (e, digit) in answered[3..5].iter().zip(["4", "#"]) {
        let d = &e["body"]["DtmfReceived"];
        assert_eq!(d["digit"], digit, "{d}");
        assert_eq!(d["side"], 1, "from the caller: {d}");
        assert_eq!(d["method"], "rfc4733");
        // 100 ms tones on an 8 kHz clock.
        assert_eq!(d["duration_ms"], 100, "{d}");
    }
    let ended = &answered[5]["body"]["CallEnded"];
    // The switch answered the echo test itself: the caller's codec only.
    assert_eq!(ended["codecs"]["caller"], "PCMU/8000", "{ended}");
    assert_eq!(ended["codecs"]["callee"], "");
    assert_eq!(
        answered[2]["body"]["CallAnswered"]["codecs"],
        ended["codecs"]
    );
    assert_eq!(ended["cause"], "normal");
    assert_eq!(ended["sip_code"], 200);
    // The caller hung up after about a second of echo.
    assert_eq!(ended["side"], 1, "the caller");
    assert!(ended["talk_ms"].as_u64().unwrap() >= 900, "{ended}");
    assert!(ended["duration_ms"].as_u64() >= ended["talk_ms"].as_u64());
    let rtp = &ended["caller_rtp"];
    assert!(rtp["packets_received"].as_u64().unwrap() >= 40, "{rtp}");
    assert_eq!(rtp["packets_lost"], 0);

    let refused: Vec<&Value> = all
        .iter()
        .filter(|e| e["call_id"] == ids[1].as_str())
        .collect();
    assert_eq!(refused[1]["body"]["CallRouted"]["action"], "reject");
    let ended = &refused[2]["body"]["CallEnded"];
    assert_eq!(
        (ended["cause"].as_str(), ended["sip_code"].as_u64()),
        (Some("busy"), Some(486))
    );
    assert_eq!(ended["talk_ms"], 0);
}

/// Killed with -9 right after a call: what the switch wrote is there for
/// the next start, which adds its own events after it.
#[test]
fn the_outbox_survives_a_kill_and_the_next_start_goes_on_after_it() {
    let sw = Switch::start(Some(&config(29_200)), &[]);
    let summary = call(&sw, "busy");
    assert!(summary.contains("\"status\":486"), "{summary}");
    let before = events_until_ended(&sw, 1);
    let dir = sw.events.clone();
    let keep = dir.with_extension("kept");
    let _ = std::fs::remove_dir_all(&keep);
    // Killed (SIGKILL), its outbox kept aside from the harness's clean-up,
    // then a new switch on it.
    let mut sw = sw;
    sw.child.kill().unwrap();
    sw.child.wait().unwrap();
    std::fs::rename(&dir, &keep).unwrap();
    drop(sw);
    let again = Switch::start_with_events(Some(&config(29_200)), &[], keep);
    let end = Instant::now() + Duration::from_secs(3);
    let mut after = again.events();
    while after.len() <= before.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        after = again.events();
    }
    assert_eq!(&after[..before.len()], &before[..], "kept as it was");
    assert_eq!(kind(&after[before.len()]), "NodeStarted");
}

/// Killed with -9 while calls go on, their events on their way to the
/// outbox: what is lost is at most what the events thread held in memory
/// (`[events] batch_ms`, 50 ms here): every call that ended well before
/// the kill has all its events on disk, none is damaged, and the next
/// start goes on after them.
#[test]
fn a_kill_while_events_are_in_flight_loses_at_most_the_last_batch() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let sw = Switch::start(Some(&config(18_600)), &[]);
    let (addr, stop) = (sw.addr, Arc::new(AtomicBool::new(false)));
    let ended: Arc<Mutex<Vec<Instant>>> = Arc::default();
    // The call in progress, to end it once the switch is gone (it would
    // wait out its INVITE's 32 s otherwise).
    let current: Arc<Mutex<Option<std::process::Child>>> = Arc::default();
    let caller = {
        let (stop, ended, current) = (Arc::clone(&stop), Arc::clone(&ended), Arc::clone(&current));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let child = Command::new(env!("CARGO_BIN_EXE_sentiric"))
                    .args(["call", &format!("sip:busy@{addr}")])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                *current.lock().unwrap() = Some(child);
                // Waited for with the lock free, so that it can be killed.
                let out = loop {
                    let mut slot = current.lock().unwrap();
                    if slot.as_mut().unwrap().try_wait().unwrap().is_some() {
                        break slot.take().unwrap().wait_with_output().unwrap();
                    }
                    drop(slot);
                    std::thread::sleep(Duration::from_millis(5));
                };
                // 486: the call is over for the caller, its CallEnded
                // sent to the events thread.
                if String::from_utf8_lossy(&out.stdout).contains("\"status\":486") {
                    ended.lock().unwrap().push(Instant::now());
                }
            }
        })
    };
    // Calls until five ended well over the batch window ago, then the
    // kill in the middle of the next ones.
    let end = Instant::now() + Duration::from_secs(30);
    let old = |e: &[Instant]| {
        e.iter()
            .filter(|t| t.elapsed() > Duration::from_millis(600))
            .count()
    };
    while old(&ended.lock().unwrap()) < 5 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sw = sw;
    let killed_at = Instant::now();
    sw.child.kill().unwrap();
    sw.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    while !caller.is_finished() {
        if let Some(c) = current.lock().unwrap().as_mut() {
            let _ = c.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    caller.join().unwrap();
    let ended = ended.lock().unwrap().clone();
    // Ended well before the kill: past the batch window and the events
    // thread's wake-up on a busy machine.
    let settled = ended
        .iter()
        .filter(|t| killed_at.duration_since(**t) > Duration::from_millis(50 + 450))
        .count();
    assert!(settled >= 5, "only {settled} calls before the kill");
    let events = sw.events();
    let of = |k: &str| events.iter().filter(|e| kind(e) == k).collect::<Vec<_>>();
    let (started, finished) = (of("CallStarted"), of("CallEnded"));
    assert!(
        finished.len() >= settled,
        "{} calls' ends on disk, {settled} ended before the kill",
        finished.len()
    );
    assert!(finished.len() <= ended.len() + 1, "more ends than calls");
    // Each end on disk comes after its call's start (one write keeps the
    // order); nothing undecodable.
    for e in &finished {
        let id = e["call_id"].as_str().unwrap();
        assert!(started.iter().any(|s| s["call_id"] == id), "{id}: no start");
    }
    assert!(
        events.iter().all(|e| e.get("undecodable").is_none()),
        "damaged records"
    );
    // The next start takes the outbox as it was.
    let dir = sw.events.clone();
    let keep = dir.with_extension("kept-in-flight");
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::rename(&dir, &keep).unwrap();
    drop(sw);
    let again = Switch::start_with_events(Some(&config(18_600)), &[], keep);
    let end = Instant::now() + Duration::from_secs(3);
    let mut after = again.events();
    while after.len() <= events.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        after = again.events();
    }
    assert_eq!(&after[..events.len()], &events[..], "kept as it was");
    assert_eq!(kind(&after[events.len()]), "NodeStarted");
}

/// The embedded default: no broker, and the switch writes its calls' CDRs
/// itself (SQLite, through the same store as `sentiric cdr`), then
/// confirms the events it folded.
#[test]
fn with_no_broker_the_switch_writes_its_own_cdrs() {
    let sw = Switch::start(Some(&config(30_600)), &[]);
    let summary = call(&sw, "600");
    assert!(summary.contains("\"status\":200"), "{summary}");
    let all = events_until_ended(&sw, 1);
    let call_id = all
        .iter()
        .find_map(|e| e["call_id"].as_str().filter(|c| !c.is_empty()))
        .unwrap()
        .to_string();
    let db = format!("sqlite://{}/cdr.db?mode=rwc", sw.events.display());
    let end = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["cdr", "list"])
            .env("SENTIRIC_CDR_DATABASE", &db)
            .output()
            .unwrap();
        let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if !rows.is_empty() || Instant::now() > end {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["call_id"], call_id.as_str());
    assert_eq!(rows[0]["disposition"], "ANSWERED");
    assert_eq!(rows[0]["node_id"], "test-node");
    // Folded, then confirmed: the outbox's watermark passes the call's
    // events.
    let end = Instant::now() + Duration::from_secs(5);
    let confirmed = || {
        std::fs::read_to_string(sw.events.join("confirmed"))
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    while confirmed() < all.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(confirmed() >= all.len(), "{} of {}", confirmed(), all.len());
}

/// A SIP peer on a socket of its own: requests out, the next response
/// with a status of `min` or more back.
struct Peer {
    sock: std::net::UdpSocket,
    to: std::net::SocketAddr,
}

impl Peer {
    fn new(to: std::net::SocketAddr) -> Peer {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Peer { sock, to }
    }

    fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.to).unwrap();
    }

    /// The first response in `call_id` of status `min` or above (requests
    /// from the switch, other calls' responses and 1xx below `min`
    /// skipped).
    fn response(&self, call_id: &str, min: u16) -> String {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).expect("a response in 5 s");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.contains(&format!("Call-ID: {call_id}\r\n")) {
                continue;
            }
            let status = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok());
            if status.is_some_and(|s| s >= min) {
                return text;
            }
        }
    }

    fn request(
        &self,
        method: &str,
        user: &str,
        call_id: &str,
        cseq: u32,
        to_tag: &str,
        sdp: &str,
    ) -> String {
        let me = self.sock.local_addr().unwrap();
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let body = if sdp.is_empty() {
            "Content-Length: 0\r\n\r\n".to_string()
        } else {
            format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        format!(
            "{method} sip:{user}@{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}{cseq}{method}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:tester@{me}>;tag=ft\r\n\
             To: <sip:{user}@{}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:tester@{me}>\r\n\
             {body}",
            self.to, self.to
        )
    }
}

impl Peer {
    /// Sends the ACK of a failure to INVITE `call_id` (CSeq 1): in the
    /// INVITE's transaction (RFC 3261 §17.1.1.3), or it is retransmitted.
    fn ack_failure(&self, user: &str, call_id: &str, failure: &str) {
        let ack = self.request("ACK", user, call_id, 1, &tag(failure), "");
        self.send(&ack.replace(&format!("{call_id}1ACK"), &format!("{call_id}1INVITE")));
    }

    /// Calls `user` (no SDP): the failure it gets, ACKed.
    fn rejected(&self, user: &str, call_id: &str) -> String {
        self.send(&self.request("INVITE", user, call_id, 1, "", ""));
        let resp = self.response(call_id, 300);
        self.ack_failure(user, call_id, &resp);
        resp
    }
}

fn ended_on_disk(sw: &Switch, call_id: &str) -> bool {
    sw.events()
        .iter()
        .any(|e| kind(e) == "CallEnded" && e["call_id"] == call_id)
}

fn durable_config(min_port: u16, durable: bool) -> String {
    // A long batch window and sync interval: without durable_end an end
    // reaches the disk a second after the call, with it before the
    // caller hears of it.
    config(min_port).replace(
        "[node]",
        &format!("[events]\nbatch_ms = 1000\nsync_ms = 60000\ndurable_end = {durable}\n[node]"),
    )
}

#[test]
fn with_durable_end_a_caller_hears_the_end_only_once_it_is_on_disk() {
    let mut sw = Switch::start(Some(&durable_config(18_900, true)), &[]);
    let peer = Peer::new(sw.addr);
    // A reject: the 486 waits for its CallEnded.
    let resp = peer.rejected("busy", "durable-1");
    assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    assert!(
        ended_on_disk(&sw, "durable-1"),
        "the 486 came before its CallEnded was written"
    );
    // A call with media, ended by the caller's BYE: the 200 waits.
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        peer.sock.local_addr().unwrap().port() + 2
    );
    peer.send(&peer.request("INVITE", "600", "durable-2", 1, "", &sdp));
    let ok = peer.response("durable-2", 200);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let to_tag = tag(&ok);
    peer.send(&peer.request("ACK", "600", "durable-2", 1, &to_tag, ""));
    peer.send(&peer.request("BYE", "600", "durable-2", 2, &to_tag, ""));
    let bye_ok = peer.response("durable-2", 200);
    assert!(
        bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("2 BYE"),
        "{bye_ok}"
    );
    // Killed the moment the caller heard it: the end is there.
    sw.child.kill().unwrap();
    sw.child.wait().unwrap();
    assert!(
        ended_on_disk(&sw, "durable-2"),
        "the 200 to BYE came before its CallEnded was written"
    );
}

#[test]
fn with_durable_end_every_end_is_synced_and_without_it_the_caller_hears_first() {
    let sw = Switch::start(Some(&durable_config(19_100, true)), &[]);
    let peer = Peer::new(sw.addr);
    for i in 1..=3 {
        let resp = peer.rejected("busy", &format!("synced-{i}"));
        assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    }
    // One fdatasync for each end (they came a batch apart), none on the
    // 60 s interval yet.
    let syncs = sw.metric("sentiric_events_syncs_total").unwrap_or(0.0);
    assert_eq!(syncs, 3.0, "syncs for 3 ends a window apart");
    // Three ends in one window: one sync for the three (a group commit).
    let peers: Vec<Peer> = (0..3).map(|_| Peer::new(sw.addr)).collect();
    for (i, p) in peers.iter().enumerate() {
        p.send(&p.request("INVITE", "busy", &format!("together-{i}"), 1, "", ""));
    }
    for (i, p) in peers.iter().enumerate() {
        let id = format!("together-{i}");
        let resp = p.response(&id, 300);
        assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
        assert!(ended_on_disk(&sw, &id), "{id}: heard before written");
        p.ack_failure("busy", &id, &resp);
    }
    assert_eq!(
        sw.metric("sentiric_events_syncs_total").unwrap_or(0.0),
        4.0,
        "one sync for the three ends of one window"
    );
    drop(sw);

    // The control: the same switch without it answers first and writes
    // the end when the batch window closes.
    // The 1 s window opens with the call's first event: nothing else
    // may open one (no CDR writer confirming records; the start's
    // events written and their window over).
    let sw = Switch::start(
        Some(&format!(
            "{}[cdr]\nlocal = false\n",
            durable_config(19_300, false)
        )),
        &[],
    );
    let end = Instant::now() + Duration::from_secs(5);
    while sw.events().is_empty() {
        assert!(Instant::now() < end, "the start's events never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let peer = Peer::new(sw.addr);
    let sent = Instant::now();
    let resp = peer.rejected("busy", "unsynced");
    assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    let heard = sent.elapsed();
    assert!(
        !ended_on_disk(&sw, "unsynced"),
        "written already, {heard:?} after the INVITE"
    );
    let end = Instant::now() + Duration::from_secs(3);
    while !ended_on_disk(&sw, "unsynced") {
        assert!(Instant::now() < end, "never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sw.metric("sentiric_events_syncs_total").unwrap_or(0.0), 0.0);
}

#[test]
fn with_durable_end_an_end_the_disk_will_not_take_waits_then_goes_out_counted() {
    // Every write of the switch's files fails (a file size limit of 0,
    // its signal ignored): the outbox takes no record, so no end can be
    // synced. The CDR writer stays off (it would write too).
    let sw = Switch::start_after(
        Some(&format!(
            "{}[cdr]\nlocal = false\n",
            durable_config(19_500, true)
        )),
        "trap '' XFSZ; ulimit -f 0",
    );
    let peer = Peer::new(sw.addr);
    peer.sock
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let sent = Instant::now();
    let resp = peer.rejected("busy", "no-disk");
    let heard = sent.elapsed();
    assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    // Held while the sync kept failing, let go at 10 s.
    assert!(
        heard >= Duration::from_secs(9) && heard < Duration::from_secs(15),
        "the 486 came {heard:?} after the INVITE"
    );
    assert!(!sw.lines("sync").is_empty(), "{:#?}", sw.log());
    assert_eq!(
        sw.metric("sentiric_events_durable_end_unsynced_total"),
        Some(1.0)
    );
    assert!(
        !sw.lines("without their CallEnded on disk").is_empty(),
        "{:#?}",
        sw.log()
    );
}

/// The To tag of a response.
fn tag(resp: &str) -> String {
    resp.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}
