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
async fn publish(
    cfg: &BrokerConfig,
    channel: &lapin::Channel,
    tail: &mut Tail,
    again: &mut VecDeque<Record>,
    confirmed: &Sender<Msg>,
    written: &Notify,
) -> String {
    let mut window: VecDeque<(Record, lapin::PublisherConfirm)> = VecDeque::new();
    // Confirms go to the events thread a batch at a time (each message
    // wakes it).
    let mut acked: Vec<u64> = Vec::new();
    loop {
        // Fill the window when half of it is confirmed: events to publish
        // again first, then new ones, as one burst.
        if window.len() <= WINDOW / 2 {
            let mut burst: Vec<Record> = Vec::new();
            while window.len() + burst.len() < WINDOW {
                if let Some(r) = again.pop_front() {
                    burst.push(r);
                    continue;
                }
                match tail.read(WINDOW - window.len() - burst.len()) {
                    Ok(rs) if !rs.is_empty() => burst.extend(rs),
                    Ok(_) => break,
                    Err(e) => {
                        again.extend(burst);
                        requeue(window, again);
                        let _ = confirmed.send(Msg::Confirmed(acked));
                        return format!("reading the outbox: {e}");
                    }
                }
            }
            let published = publish_burst(cfg, channel, &burst).await;
            let mut records = burst.into_iter();
            for (record, result) in records.by_ref().zip(published) {
                match result {
                    Ok(confirm) => window.push_back((record, confirm)),
                    Err(e) => {
                        again.push_front(record);
                        again.extend(records);
                        requeue(window, again);
                        let _ = confirmed.send(Msg::Confirmed(acked));
                        return e.to_string();
                    }
                }
            }
        }
        let Some((record, confirm)) = window.pop_front() else {
            // Everything published is confirmed: say so, then wait for
            // the events thread's next write (or look again in a second).
            if !acked.is_empty()
                && confirmed
                    .send(Msg::Confirmed(std::mem::take(&mut acked)))
                    .is_err()
            {
                return "the events thread is gone".into();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), written.notified()).await;
            // A connection the broker closed while nothing was sent is
            // noticed here, within a second, not at the next event.
            if !channel.status().connected() {
                return "the broker closed the connection".into();
            }
            continue;
        };
        match confirm.await {
            Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) => {
                acked.push(record.seq);
                if acked.len() >= WINDOW
                    && confirmed
                        .send(Msg::Confirmed(std::mem::take(&mut acked)))
                        .is_err()
                {
                    return "the events thread is gone".into();
                }
            }
            Ok(Confirmation::Nack(_)) => {
                // The broker could not take it: again, after a pause.
                again.push_front(record);
                requeue(window, again);
                let _ = confirmed.send(Msg::Confirmed(acked));
                return "the broker refused an event (nack)".into();
            }
            Err(e) => {
                again.push_front(record);
                requeue(window, again);
                let _ = confirmed.send(Msg::Confirmed(acked));
                return e.to_string();
            }
        }
    }
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
                BasicPublishOptions::default(),
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

/// Puts the window's unconfirmed events back in front of `again`, in order.
fn requeue(window: VecDeque<(Record, lapin::PublisherConfirm)>, again: &mut VecDeque<Record>) {
    // `again` may already hold the record that failed, ahead of the
    // window's (which were published after it).
    let mut rest: VecDeque<Record> = window.into_iter().map(|(r, _)| r).collect();
    while let Some(r) = again.pop_front() {
        rest.push_back(r);
    }
    let mut all: Vec<Record> = rest.into_iter().collect();
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
