//! Call and node events on their way out of the switch.
//!
//! Workers hand each event to [`Events::emit`] — a channel send, never a
//! wait — and the events thread appends them to the outbox
//! (`sentiric_events::outbox`) in batches: it gathers what arrives within
//! `[events] batch_ms` of the first event (sleeping meanwhile, so that
//! the workers' sends wake nobody) and writes it with one `write` — from
//! then on it survives the process, killed or not — and at most every
//! `[events] sync_ms` it `fdatasync`s what was written, for the machine's
//! crash. A sync is a disk flush: on a 2-core VM one cost ~0.15 ms of
//! CPU, and one every 10 ms was 60% more CPU per call at 200 calls/s
//! (`BENCHMARKS.md`), hence the separate, longer interval.
//!
//! With a broker configured, the publisher (`publisher.rs`) follows what
//! was written, woken after each write, and sends back the broker's
//! confirms ([`Msg::Confirmed`]), which move the outbox's watermark.
//! Without one, the switch's own CDR writer (`local_cdr.rs`) does the
//! same into `[cdr] database`. Either way the outbox holds what has not
//! gone yet, readable with `sentiric events tail`.
//!
//! With `[events] durable_end`, a call's `CallEnded` comes with an
//! [`Ack`]: the batch that holds one is synced at once (one `fdatasync`
//! for every end in the window: a group commit), and then each call's
//! worker is told (`Inbound::Durable`), which lets the call's last SIP
//! messages go — held by the B2BUA until then (`hold_ends`). A call's
//! final response or BYE never leaves before its end is on disk; it
//! waits up to `batch_ms` and a sync for it.
//!
//! A full outbox loses nothing: the events it refuses wait in memory, and
//! [`Events::full`] tells the workers to answer new calls 503 until it
//! has room again.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use sentiric_events::outbox::{Outbox, OutboxConfig, OutboxError};
use sentiric_events::v1;

/// Where the outbox's events go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Published to the broker (`[events] broker`).
    Broker(crate::publisher::BrokerConfig),
    /// No broker: folded into CDRs by the switch itself, in this store
    /// (`[cdr] database`; the embedded default).
    LocalCdr(String),
    /// Nowhere (`[cdr] local = false` and no broker): they stay in the
    /// outbox, and nothing confirms them.
    None,
}

/// What reaches the events thread.
#[derive(Debug)]
// Nearly every message is an event: boxing it would add an allocation per
// event on the workers' path to shrink the rare confirms.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// An event to write.
    Event(v1::Event),
    /// A call's `CallEnded`, whose worker waits to hear that it is on
    /// disk.
    Durable(v1::Event, Ack),
    /// The broker confirmed these records.
    Confirmed(Vec<u64>),
    /// Nothing to do: the publisher, reconnecting, learns from the send
    /// whether the events thread is still there.
    Ping,
    /// The workers are gone: write what came, sync, and end (the
    /// publisher or CDR writer, which hold senders too, end with the
    /// process; what they had not sent waits in the outbox).
    Stop,
}

/// Whom to tell that a call's end is on disk.
#[derive(Clone)]
pub(crate) struct Ack {
    /// The call's worker.
    pub(crate) to: crate::inbox::Inbox,
    pub(crate) call: sentiric_engine::b2bua::CallRef,
    /// When the call's worker sent it.
    pub(crate) since: Instant,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack").field("call", &self.call.0).finish()
    }
}

/// A worker's handle on the events thread.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    tx: mpsc::Sender<Msg>,
    full: Arc<AtomicBool>,
    /// The sequence of this node run's own events.
    node_seq: Arc<AtomicU64>,
}

impl Events {
    /// Sends `event` to the events thread, which fills in the node and
    /// mints its id (off the workers' path; a node's ids then sort in the
    /// order its events were written).
    pub(crate) fn emit(&self, event: v1::Event) {
        // The thread outlives the workers; a send fails only while the
        // process is exiting on an error already logged.
        let _ = self.tx.send(Msg::Event(event));
    }

    /// Sends a call's `CallEnded`; with `ack`, the call's worker is told
    /// once it is synced to disk (`[events] durable_end`). `false`: the
    /// events thread is gone, and nobody will tell it.
    pub(crate) fn emit_end(&self, event: v1::Event, ack: Option<Ack>) -> bool {
        self.tx
            .send(match ack {
                Some(ack) => Msg::Durable(event, ack),
                None => Msg::Event(event),
            })
            .is_ok()
    }

    /// A node event (no call), numbered in this run's order.
    pub(crate) fn emit_node(&self, body: v1::event::Body) {
        let mut e = sentiric_events::unstamped(body);
        e.sequence = self.node_seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.emit(e);
    }

    /// Tells the events thread to finish: the last thing `run` does.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// The outbox is full: new calls are to be refused until it is not.
    pub(crate) fn full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

/// Opens the outbox in `dir` (its unconfirmed events kept for the sink)
/// and starts the events thread and the sink's. The events thread ends
/// on [`Events::stop`] (or once every sender is gone), after writing and
/// syncing what it was sent.
pub(crate) fn spawn(
    dir: PathBuf,
    max_bytes: u64,
    batch: Duration,
    sync: Duration,
    node: &str,
    sink: Sink,
) -> std::io::Result<(Events, std::thread::JoinHandle<()>)> {
    let mut cfg = OutboxConfig::new(&dir);
    cfg.max_bytes = max_bytes;
    cfg.segment_bytes = cfg.segment_bytes.min(max_bytes / 4).max(4096);
    let (outbox, replay) = Outbox::open(cfg).map_err(|e| match e {
        OutboxError::Io(io) => std::io::Error::new(
            io.kind(),
            format!("[events] outbox = \"{}\": {io}", dir.display()),
        ),
        other => std::io::Error::other(other.to_string()),
    })?;
    if replay.truncated > 0 || replay.damaged > 0 {
        tracing::warn!(
            truncated = replay.truncated,
            damaged = replay.damaged,
            "event outbox {}: {} bytes of a write cut short removed, {} damaged segments",
            dir.display(),
            replay.truncated,
            replay.damaged
        );
    }
    let waiting_for = match &sink {
        Sink::Broker(_) => "the broker",
        Sink::LocalCdr(_) => "the CDR database",
        Sink::None => "nothing ([cdr] local = false and no broker: they stay)",
    };
    tracing::info!(
        outbox = %dir.display(),
        waiting = replay.pending.len(),
        "event outbox {}: {} event{} waiting for {waiting_for}",
        dir.display(),
        replay.pending.len(),
        if replay.pending.len() == 1 { "" } else { "s" }
    );
    let (tx, rx) = mpsc::channel();
    let full = Arc::new(AtomicBool::new(false));
    // The publisher follows the outbox's files from the first event not
    // confirmed; told after each write that there is more.
    let written = Arc::new(tokio::sync::Notify::new());
    match sink {
        Sink::Broker(b) => {
            crate::publisher::spawn(
                b,
                dir.clone(),
                outbox.watermark(),
                tx.clone(),
                Arc::clone(&written),
            )?;
        }
        Sink::LocalCdr(database) => {
            crate::local_cdr::spawn(
                database,
                dir.clone(),
                outbox.watermark(),
                tx.clone(),
                Arc::clone(&written),
            )?;
        }
        Sink::None => tracing::info!("no event broker, no CDR writer: events stay in the outbox"),
    }
    let events = Events {
        tx,
        full: Arc::clone(&full),
        node_seq: Arc::default(),
    };
    let node = node.to_string();
    let thread = std::thread::Builder::new()
        .name("sentiric-events".into())
        .spawn(move || run(outbox, &rx, &full, batch, sync, &node, &written))?;
    Ok((events, thread))
}

fn run(
    mut outbox: Outbox,
    rx: &mpsc::Receiver<Msg>,
    full: &AtomicBool,
    batch: Duration,
    sync: Duration,
    node: &str,
    written: &tokio::sync::Notify,
) {
    let mut waiting: VecDeque<(v1::Event, Option<Ack>)> = VecDeque::new();
    // The ends written since the last sync, whose workers wait.
    let mut acks: Vec<Ack> = Vec::new();
    // Wakes the workers told (only with `[events] durable_end`).
    let mut waker: Option<std::net::UdpSocket> = None;
    let syncs = metrics::counter!("sentiric_events_syncs_total");
    let durable_wait = metrics::histogram!("sentiric_events_durable_end_seconds");
    let written_total = metrics::counter!("sentiric_events_written_total");
    let confirmed_total = metrics::counter!("sentiric_events_confirmed_total");
    let pending = metrics::gauge!("sentiric_events_outbox_pending");
    let outbox_bytes = metrics::gauge!("sentiric_events_outbox_bytes");
    let full_gauge = metrics::gauge!("sentiric_events_outbox_full");
    let mut open = true;
    let mut synced = Instant::now();
    let mut idle = true;
    while open || !waiting.is_empty() {
        // Idle (the last window brought nothing), the thread waits for
        // the first event; busy, it sleeps through a window and takes
        // what was sent meanwhile. A send to a receiver that is not
        // waiting wakes nobody: under load the workers wake it not at
        // all, and it wakes once a window.
        if waiting.is_empty() && idle {
            // Idle with something not yet on disk: wake for the sync.
            let m = if outbox.dirty() {
                rx.recv_timeout(sync)
            } else {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            };
            match m {
                Ok(m) => open &= take(m, &mut waiting, &mut outbox, &confirmed_total),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        std::thread::sleep(if waiting.is_empty() || !full.load(Ordering::Relaxed) {
            batch
        } else {
            // Waiting for room: try again in a while.
            Duration::from_millis(200)
        });
        loop {
            match rx.try_recv() {
                Ok(m) => open &= take(m, &mut waiting, &mut outbox, &confirmed_total),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        // Nothing came in this window (confirms aside): block next time.
        idle = waiting.is_empty();
        let mut appended = 0usize;
        while let Some((e, _)) = waiting.front_mut() {
            e.node_id.clear();
            e.node_id.push_str(node);
            sentiric_events::stamp(e);
            match outbox.append(&e.encode_to_vec()) {
                Ok(_) => {
                    if let Some((_, Some(ack))) = waiting.pop_front() {
                        acks.push(ack);
                    }
                    appended += 1;
                }
                Err(OutboxError::Full { .. }) => break,
                Err(e) => {
                    tracing::error!("event outbox: {e}; the event waits in memory");
                    break;
                }
            }
        }
        if appended > 0 {
            written_total.increment(appended as u64);
            match outbox.write() {
                Ok(()) => written.notify_one(),
                Err(e) => tracing::error!("event outbox: write: {e}"),
            }
        }
        // The last batch before exiting is synced too, and one with a
        // call's end that waits.
        if synced.elapsed() >= sync || !open || !acks.is_empty() {
            let records = outbox.unsynced();
            match outbox.sync() {
                Ok(()) => {
                    if records {
                        syncs.increment(1);
                    }
                    // On disk: the ends waiting for it go out.
                    tell(&mut acks, &mut waker, &durable_wait);
                }
                // The disk failing: the ends wait (tried again each
                // window; a worker lets one go after DURABLE_MAX).
                Err(e) => tracing::error!(
                    ends = acks.len(),
                    "event outbox: sync: {e}; {} calls' last messages wait for it",
                    acks.len()
                ),
            }
            synced = Instant::now();
        }
        let now_full = !waiting.is_empty();
        pending.set(outbox.len() as f64 + waiting.len() as f64);
        outbox_bytes.set(outbox.bytes() as f64);
        full_gauge.set(if now_full { 1.0 } else { 0.0 });
        if full.swap(now_full, Ordering::Relaxed) != now_full {
            if now_full {
                tracing::warn!(
                    waiting = waiting.len(),
                    "event outbox full: new calls refused until the broker confirms events"
                );
            } else {
                tracing::info!("event outbox has room again: taking new calls");
            }
        }
        if !open && now_full {
            tracing::error!(
                lost = waiting.len(),
                "exiting with {} events the full outbox could not take",
                waiting.len()
            );
            return;
        }
    }
}

/// Tells each ended call's worker that its end is on disk: the
/// messages, then one wake datagram per worker.
fn tell(acks: &mut Vec<Ack>, waker: &mut Option<std::net::UdpSocket>, wait: &metrics::Histogram) {
    if acks.is_empty() {
        return;
    }
    if waker.is_none() {
        match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(s) => *waker = Some(s),
            Err(e) => tracing::error!("event outbox: a socket to wake the workers: {e}"),
        }
    }
    let mut woken: Vec<std::net::SocketAddr> = Vec::new();
    for ack in acks.drain(..) {
        wait.record(ack.since.elapsed().as_secs_f64());
        if ack
            .to
            .tx
            .send(crate::inbox::Inbound::Durable(ack.call))
            .is_ok()
            && !woken.contains(&ack.to.wake)
        {
            woken.push(ack.to.wake);
        }
    }
    if let Some(s) = waker {
        for to in woken {
            let _ = s.send_to(&[0], to);
        }
    }
}

/// Runs the future `task` makes on a thread of its own (`name`), on a
/// current-thread tokio runtime: the publisher's and the CDR writer's.
pub(crate) fn spawn_async<F, Fut>(
    name: &str,
    task: F,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let label = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task()),
                Err(e) => tracing::error!("{label}: runtime: {e}"),
            }
        })
}

/// An event joins the batch; confirms move the outbox's watermark.
/// Returns `false` for [`Msg::Stop`].
fn take(
    m: Msg,
    waiting: &mut VecDeque<(v1::Event, Option<Ack>)>,
    outbox: &mut Outbox,
    confirmed: &metrics::Counter,
) -> bool {
    match m {
        Msg::Event(e) => waiting.push_back((e, None)),
        Msg::Durable(e, ack) => waiting.push_back((e, Some(ack))),
        Msg::Confirmed(seqs) => {
            confirmed.increment(seqs.len() as u64);
            for seq in seqs {
                if let Err(e) = outbox.confirm(seq) {
                    tracing::warn!("event outbox: removing a confirmed segment: {e}");
                }
            }
        }
        Msg::Ping => {}
        Msg::Stop => return false,
    }
    true
}

/// The action's name and targets, for `CallRouted`.
pub(crate) fn routed(action: &sentiric_engine::dialplan::Action) -> v1::CallRouted {
    use sentiric_engine::dialplan::{Action, AfterPlay};
    let (name, targets) = match action {
        Action::Bridge(b) => ("bridge", b.targets.clone()),
        Action::Echo => ("echo", Vec::new()),
        Action::Play { prompt, then } => {
            let mut t = vec![prompt.clone()];
            if let AfterPlay::Continue(next) = then {
                t.extend(routed(next).targets);
            }
            ("play", t)
        }
        Action::Conference { room } => ("conference", vec![room.clone()]),
        Action::Reject { code, .. } => ("reject", vec![code.to_string()]),
        Action::Redirect { contacts, .. } => ("redirect", contacts.clone()),
        Action::Agent { agent, .. } => ("agent", vec![agent.clone()]),
    };
    v1::CallRouted {
        action: name.into(),
        targets,
        ..v1::CallRouted::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_end_is_acked_once_written_and_only_then() {
        let dir = std::env::temp_dir().join(format!("sentiric-events-ack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A long sync interval: only the durable end makes a sync.
        let (events, thread) = spawn(
            dir.clone(),
            1 << 20,
            Duration::from_millis(100),
            Duration::from_secs(60),
            "n1",
            Sink::None,
        )
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let wake = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        wake.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let inbox = crate::inbox::Inbox {
            tx,
            wake: wake.local_addr().unwrap(),
            load: Arc::default(),
        };
        let ended = |id: &str| {
            let mut e =
                sentiric_events::unstamped(v1::event::Body::CallEnded(v1::CallEnded::default()));
            e.call_id = id.into();
            e
        };
        let call = sentiric_engine::b2bua::CallRef(7);
        let sent = Instant::now();
        events.emit_end(ended("plain"), None);
        events.emit_end(
            ended("durable"),
            Some(Ack {
                to: inbox,
                call,
                since: sent,
            }),
        );
        // The worker is woken, and told which call.
        wake.recv_from(&mut [0u8; 8]).expect("a wake datagram");
        match rx.try_recv() {
            Ok(crate::inbox::Inbound::Durable(c)) => assert_eq!(c, call),
            _ => panic!("no word of the call's end"),
        }
        assert!(
            sent.elapsed() >= Duration::from_millis(100),
            "before the batch closed"
        );
        let on_disk: Vec<String> = sentiric_events::outbox::read(&dir)
            .unwrap()
            .iter()
            .map(|r| v1::Event::decode(r.bytes.as_slice()).unwrap().call_id)
            .collect();
        assert_eq!(on_disk, ["plain", "durable"], "written before the word");
        // Nothing for the end sent without an ack.
        assert!(rx.try_recv().is_err());
        drop(events);
        thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_outbox_says_so_and_keeps_what_it_took_in_order() {
        let dir = std::env::temp_dir().join(format!("sentiric-events-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ms = Duration::from_millis(5);
        let (events, thread) = spawn(dir.clone(), 4096, ms, ms, "n1", Sink::None).unwrap();
        assert!(!events.full());
        let mut k = 0u64;
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !events.full() && std::time::Instant::now() < end {
            k += 1;
            events.emit_node(v1::event::Body::NodeDraining(v1::NodeDraining {
                calls_up: k,
                drain_timeout_s: 0,
            }));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(events.full(), "full after {k} events");
        let kept = sentiric_events::outbox::read(&dir).unwrap();
        assert!(!kept.is_empty() && (kept.len() as u64) < k);
        for (i, r) in kept.iter().enumerate() {
            let e = v1::Event::decode(r.bytes.as_slice()).unwrap();
            assert_eq!(e.sequence, i as u64 + 1, "in order, none skipped");
            assert_eq!(e.node_id, "n1");
        }
        drop(events);
        thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
