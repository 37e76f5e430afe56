//! Events from the outbox to RabbitMQ, with publisher confirms.
//!
//! A thread of its own with a current-thread tokio runtime follows the
//! outbox's files ([`sentiric_events::outbox::Tail`]) from the first
//! unconfirmed event and publishes each event to a durable fanout
//! exchange (`[events] exchange`, `sentiric.events`), persistent, with
//! the event's id as the message id and its schema as the type. Up to
//! [`WINDOW`] events are in flight; each confirm the broker sends goes to
//! the events thread, which moves the outbox's watermark. A nack, or a
//! connection lost, puts the unconfirmed events back in front, in order,
//! and the publisher reconnects with a backoff from 0.5 s to 30 s: a
//! broker outage delays events and never drops them; a confirm lost with
//! a connection can publish an event twice (consumers deduplicate by
//! `event_id`).
//!
//! Every publish is `mandatory`: an event the exchange routes to no
//! queue (no `sentiric cdr`, nor any other consumer, has bound one yet)
//! comes back from the broker with its confirm, and is not confirmed: it
//! stays in the outbox and is published again every second until a queue
//! takes it (counted in `sentiric_events_unroutable_total`, logged). An
//! event leaves the outbox only once a queue holds it; a durable queue
//! and persistent messages keep it across a broker restart.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use prost::Message as _;
use sentiric_events::outbox::{Record, Tail};
use sentiric_events::v1;
use tokio::sync::Notify;

use crate::events::Msg;

/// Events published and not yet confirmed, at most.
pub(crate) const WINDOW: usize = 512;

/// Where and how events are published.
#[derive(Clone)]
pub(crate) struct BrokerConfig {
    /// `amqp://user:password@host:port/vhost` (the password is never logged).
    pub(crate) uri: String,
    /// The fanout exchange.
    pub(crate) exchange: String,
    /// JSON bodies instead of protobuf.
    pub(crate) json: bool,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("uri", &redacted(&self.uri))
            .field("exchange", &self.exchange)
            .field("json", &self.json)
            .finish()
    }
}

/// The URI without its user and password, for logs.
pub(crate) fn redacted(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://{}", &uri[..s], &uri[at + 1..]),
        _ => uri.to_string(),
    }
}

/// Starts the publisher on the outbox in `dir`, from record `from`.
pub(crate) fn spawn(
    cfg: BrokerConfig,
    dir: PathBuf,
    from: u64,
    confirmed: Sender<Msg>,
    written: Arc<Notify>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::events::spawn_async("sentiric-publish", move || async move {
        run(cfg, Tail::new(&dir, from), confirmed, &written).await;
    })
}

async fn run(cfg: BrokerConfig, mut tail: Tail, confirmed: Sender<Msg>, written: &Notify) {
    let broker = redacted(&cfg.uri);
    // Published-but-unconfirmed events go back here, in order, to be
    // published again first.
    let mut again: VecDeque<Record> = VecDeque::new();
    let mut backoff = Duration::from_millis(500);
    let up = metrics::gauge!("sentiric_events_broker_connected");
    loop {
        up.set(0.0);
        let channel = match connect(&cfg).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    broker,
                    "event broker {broker}: {e}; events wait in the outbox, retrying in {:.1} s",
                    backoff.as_secs_f64()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        tracing::info!(broker, exchange = %cfg.exchange, "event broker {broker}: publishing");
        backoff = Duration::from_millis(500);
        up.set(1.0);
        let lost = publish(&cfg, &channel.1, &mut tail, &mut again, &confirmed, written).await;
        tracing::warn!(
            broker,
            "event broker {broker}: {lost}; {} events to publish again",
            again.len()
        );
        let _ = channel.0.close(0, "reconnecting".into()).await;
        if confirmed.send(Msg::Ping).is_err() {
            // The events thread is gone: the process is exiting.
            return;
        }
    }
}

async fn connect(cfg: &BrokerConfig) -> Result<(Connection, lapin::Channel), lapin::Error> {
    let conn = Connection::connect(&cfg.uri, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.exchange_declare(
        cfg.exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    Ok((conn, ch))
}

/// Publishes until the connection fails; returns why.
///
/// A burst of up to [`WINDOW`] events is published, then all its confirms
/// are awaited before the next: the broker sends an unroutable message
/// back before its ack, but lapin hands returned messages to whichever
/// confirms complete next (a multiple ack completes several at once, in
/// no order), so which events came back is known only from the returned
/// messages' ids once the whole burst is in. A nack names its own event.
async fn publish(
    cfg: &BrokerConfig,
    channel: &lapin::Channel,
    tail: &mut Tail,
    again: &mut VecDeque<Record>,
    confirmed: &Sender<Msg>,
    written: &Notify,
) -> String {
    let unroutable = metrics::counter!("sentiric_events_unroutable_total");
    let nacked = metrics::counter!("sentiric_events_nacked_total");
    // Since when events come back unroutable, and when that was last
    // logged.
    let mut returned_since: Option<(std::time::Instant, std::time::Instant)> = None;
    loop {
        // Events to publish again first, then new ones.
        let mut burst: Vec<Record> = Vec::new();
        while burst.len() < WINDOW {
            if let Some(r) = again.pop_front() {
                burst.push(r);
                continue;
            }
            match tail.read(WINDOW - burst.len()) {
                Ok(rs) if !rs.is_empty() => burst.extend(rs),
                Ok(_) => break,
                Err(e) => {
                    requeue(burst, again);
                    return format!("reading the outbox: {e}");
                }
            }
        }
        if burst.is_empty() {
            // Everything published is confirmed: wait for the events
            // thread's next write (or look again in a second).
            let _ = tokio::time::timeout(Duration::from_secs(1), written.notified()).await;
            // A connection the broker closed while nothing was sent is
            // noticed here, within a second, not at the next event.
            if !channel.status().connected() {
                return "the broker closed the connection".into();
            }
            continue;
        }
        let mut confirms = Vec::with_capacity(burst.len());
        for result in publish_burst(cfg, channel, &burst).await {
            match result {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    // The burst's confirms are dropped with the channel.
                    requeue(burst, again);
                    return e.to_string();
                }
            }
        }
        let mut outcomes = Vec::with_capacity(confirms.len());
        let mut returned: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut returned_unknown = false;
        for confirm in confirms {
            match confirm.await {
                Ok(c) => {
                    let (ok, ret) = match c {
                        Confirmation::Ack(ret) => (true, ret),
                        Confirmation::Nack(ret) => (false, ret),
                        Confirmation::NotRequested => (true, None),
                    };
                    if let Some(ret) = ret {
                        match ret.properties.message_id() {
                            Some(id) => {
                                returned.insert(id.as_str().to_string());
                            }
                            None => returned_unknown = true,
                        }
                    }
                    outcomes.push(ok);
                }
                Err(e) => {
                    requeue(burst, again);
                    return e.to_string();
                }
            }
        }
        let (mut acked, mut kept) = (Vec::new(), Vec::new());
        let mut refused = 0u64;
        for (record, ok) in burst.into_iter().zip(outcomes) {
            let came_back =
                returned_unknown || (!returned.is_empty() && returned.contains(&event_id(&record)));
            if !ok {
                refused += 1;
                kept.push(record);
            } else if came_back {
                unroutable.increment(1);
                kept.push(record);
            } else {
                acked.push(record.seq);
            }
        }
        if !acked.is_empty() && confirmed.send(Msg::Confirmed(acked)).is_err() {
            return "the events thread is gone".into();
        }
        let back = kept.len() as u64 - refused;
        requeue(kept, again);
        if refused > 0 {
            // The broker could not take them (a queue full with
            // reject-publish, a disk alarm): again, after a pause.
            nacked.increment(refused);
            tokio::time::sleep(Duration::from_secs(1)).await;
            return format!("the broker refused {refused} events (nack); publishing them again");
        }
        if back > 0 {
            // Routed to no queue, held by nobody: kept, and published
            // again in a second.
            let now = std::time::Instant::now();
            let (since, logged) =
                returned_since.get_or_insert((now, now - Duration::from_secs(60)));
            if now.duration_since(*logged) >= Duration::from_secs(30) {
                *logged = now;
                tracing::warn!(
                    exchange = %cfg.exchange,
                    "event broker: exchange {} routes events to no queue (none bound for {:.0} s: start `sentiric cdr`, or bind a durable queue); {} events wait in the outbox",
                    cfg.exchange,
                    now.duration_since(*since).as_secs_f64(),
                    again.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !channel.status().connected() {
                return "the broker closed the connection".into();
            }
        } else if returned_since.take().is_some() {
            tracing::info!(
                exchange = %cfg.exchange,
                "event broker: exchange {} routes events to a queue again",
                cfg.exchange
            );
        }
    }
}

/// The event id a record carries (its message id when published).
fn event_id(record: &Record) -> String {
    v1::Event::decode(record.bytes.as_slice())
        .map(|e| e.event_id)
        .unwrap_or_default()
}

/// Publishes `records` together: each `basic_publish` is polled once in
/// order (which queues its frames and takes its confirm's delivery tag,
/// so the broker gets them in order), then all are awaited at once. lapin
/// hands each publish to its I/O thread and waits for it to be written;
/// one at a time, that was two thread switches per event, a burst shares
/// them.
async fn publish_burst(
    cfg: &BrokerConfig,
    channel: &lapin::Channel,
    records: &[Record],
) -> Vec<Result<lapin::PublisherConfirm, lapin::Error>> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    let messages: Vec<(Vec<u8>, BasicProperties)> =
        records.iter().map(|r| message(cfg, r)).collect();
    type Publish<'a> =
        Pin<Box<dyn Future<Output = Result<lapin::PublisherConfirm, lapin::Error>> + 'a>>;
    let mut pending: Vec<Publish<'_>> = messages
        .iter()
        .map(|(body, props)| -> Publish<'_> {
            Box::pin(channel.basic_publish(
                cfg.exchange.as_str().into(),
                "".into(),
                // Returned when no queue takes it (see the module doc).
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props.clone(),
            ))
        })
        .collect();
    let mut done: Vec<Option<Result<lapin::PublisherConfirm, lapin::Error>>> =
        (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (f, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(r) => *out = Some(r),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Puts `records` (events not confirmed) back in front of `again`, in
/// order.
fn requeue(records: Vec<Record>, again: &mut VecDeque<Record>) {
    // `again` may hold records published after these.
    let mut all: Vec<Record> = records;
    all.extend(again.drain(..));
    all.sort_by_key(|r| r.seq);
    all.dedup_by_key(|r| r.seq);
    again.extend(all);
}

/// The message for a record: the event as protobuf (or JSON), its id and
/// schema in the properties.
fn message(cfg: &BrokerConfig, record: &Record) -> (Vec<u8>, BasicProperties) {
    let decoded = v1::Event::decode(record.bytes.as_slice()).ok();
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_type("sentiric.event.v1.Event".into());
    if let Some(e) = &decoded {
        props = props
            .with_message_id(e.event_id.as_str().into())
            .with_timestamp(u64::try_from(e.time_unix_us / 1_000_000).unwrap_or(0));
    }
    match (cfg.json, decoded) {
        (true, Some(e)) => (
            serde_json::to_vec(&e).unwrap_or_default(),
            props.with_content_type("application/json".into()),
        ),
        _ => (
            record.bytes.clone(),
            props.with_content_type("application/x-protobuf".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_uri_is_logged_without_its_credentials() {
        assert_eq!(
            redacted("amqp://user:s3cret@10.0.0.1:5672/%2f"),
            "amqp://10.0.0.1:5672/%2f"
        );
        assert_eq!(redacted("amqp://127.0.0.1/"), "amqp://127.0.0.1/");
        let cfg = BrokerConfig {
            uri: "amqp://u:pw@h/v".into(),
            exchange: "x".into(),
            json: false,
        };
        assert!(!format!("{cfg:?}").contains("pw"));
    }

    #[test]
    fn json_bodies_carry_the_event_and_its_id() {
        let e = sentiric_events::new_event(v1::event::Body::NodeStarted(v1::NodeStarted {
            version: "1".into(),
            sip_listen: vec![],
        }));
        let record = Record {
            seq: 0,
            bytes: e.encode_to_vec(),
        };
        let cfg = BrokerConfig {
            uri: String::new(),
            exchange: "x".into(),
            json: true,
        };
        let (body, props) = message(&cfg, &record);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event_id"], e.event_id.as_str());
        // Read back whole (as `sentiric cdr` reads it); a field left out
        // takes its default.
        assert_eq!(serde_json::from_slice::<v1::Event>(&body).unwrap(), e);
        let mut short = v.clone();
        short.as_object_mut().unwrap().remove("trace_id");
        let read: v1::Event = serde_json::from_value(short).unwrap();
        assert_eq!((read.trace_id.as_str(), read.body), ("", e.body.clone()));
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(
            props.message_id().as_ref().map(|c| c.as_str()),
            Some(e.event_id.as_str())
        );
        let (body, _) = message(&BrokerConfig { json: false, ..cfg }, &record);
        assert_eq!(body, record.bytes);
    }
}
