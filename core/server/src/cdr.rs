//! `sentiric cdr`: the consumer that turns call events into CDRs, and
//! `sentiric cdr list`.
//!
//! The consumer binds a durable queue (`[cdr] queue`, `sentiric.cdr`) to
//! the events exchange, with a dead-letter exchange and queue
//! (`[cdr] dead_letter`, `sentiric.cdr.dead`) for what it cannot read: an
//! event that does not decode (as protobuf, or as JSON when its content
//! type says `application/json`), or of a `schema_version` it does not know,
//! is rejected there with a log line, never dropped silently. It takes
//! events in batches (what has arrived within 20 ms of the first, up to
//! 200), writes each batch with [`sentiric_store::Store::record`] in one
//! transaction, and acks the batch's messages only once it has
//! committed. While the database is down the batch is retried with a
//! backoff and nothing is acked: the events wait in RabbitMQ (at most
//! [`PREFETCH`] unacked with this consumer). A lost broker connection is
//! reopened with a backoff; what was not acked comes again, and the
//! store keeps each event and each CDR once.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, Consumer, ExchangeKind};
use prost::Message as _;
use sentiric_events::v1;
use sentiric_store::Store;

use crate::publisher::redacted;

/// Unacked messages the broker lets this consumer hold.
pub(crate) const PREFETCH: u16 = 1000;
const BATCH: usize = 200;

/// What the consumer needs.
pub(crate) struct CdrConfig {
    /// The store's URL.
    pub(crate) database: String,
    /// The broker.
    pub(crate) broker: String,
    /// The events exchange.
    pub(crate) exchange: String,
    /// The consumer's queue.
    pub(crate) queue: String,
    /// The dead-letter exchange and queue.
    pub(crate) dead_letter: String,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Opens the store, retrying while the database is unreachable.
async fn open(database: &str) -> Store {
    let mut backoff = Duration::from_millis(500);
    loop {
        match Store::open(database).await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!(
                    "CDR store {}: {e}; retrying in {:.1} s",
                    redacted(database),
                    backoff.as_secs_f64()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs the consumer until the process is stopped.
pub(crate) fn run(cfg: &CdrConfig) -> std::io::Result<()> {
    runtime()?.block_on(async {
        let store = open(&cfg.database).await;
        tracing::info!(
            database = %redacted(&cfg.database),
            broker = %redacted(&cfg.broker),
            queue = %cfg.queue,
            "CDR consumer: events from {} into {}",
            cfg.queue,
            redacted(&cfg.database)
        );
        let mut backoff = Duration::from_millis(500);
        loop {
            match connect(cfg).await {
                Ok((conn, consumer)) => {
                    backoff = Duration::from_millis(500);
                    let why = consume(consumer, &store).await;
                    tracing::warn!("CDR consumer: broker connection lost: {why}; reconnecting");
                    let _ = conn.close(0, "reconnecting".into()).await;
                }
                Err(e) => {
                    tracing::warn!(
                        "CDR consumer: broker {}: {e}; retrying in {:.1} s",
                        redacted(&cfg.broker),
                        backoff.as_secs_f64()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    })
}

async fn connect(cfg: &CdrConfig) -> Result<(Connection, Consumer), lapin::Error> {
    let conn = Connection::connect(&cfg.broker, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for exchange in [&cfg.exchange, &cfg.dead_letter] {
        ch.exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    }
    ch.queue_declare(
        cfg.dead_letter.as_str().into(),
        durable_queue,
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        cfg.dead_letter.as_str().into(),
        cfg.dead_letter.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(cfg.dead_letter.as_str().into()),
    );
    ch.queue_declare(cfg.queue.as_str().into(), durable_queue, args)
        .await?;
    ch.queue_bind(
        cfg.queue.as_str().into(),
        cfg.exchange.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let consumer = ch
        .basic_consume(
            cfg.queue.as_str().into(),
            "sentiric-cdr".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, consumer))
}

async fn next(consumer: &mut Consumer) -> Option<Result<Delivery, lapin::Error>> {
    poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}

/// Consumes until the connection fails; returns why.
async fn consume(mut consumer: Consumer, store: &Store) -> String {
    loop {
        let mut batch: Vec<(v1::Event, Delivery)> = Vec::new();
        let first = match next(&mut consumer).await {
            Some(Ok(d)) => d,
            Some(Err(e)) => return e.to_string(),
            None => return "the consumer was cancelled".into(),
        };
        let mut deliveries = vec![first];
        let until = tokio::time::Instant::now() + Duration::from_millis(20);
        while deliveries.len() < BATCH {
            match tokio::time::timeout_at(until, next(&mut consumer)).await {
                Ok(Some(Ok(d))) => deliveries.push(d),
                Ok(Some(Err(e))) => return e.to_string(),
                Ok(None) => return "the consumer was cancelled".into(),
                Err(_) => break,
            }
        }
        for d in deliveries {
            match read(&d) {
                Ok(e) => batch.push((e, d)),
                Err(why) => {
                    tracing::warn!(
                        delivery = d.delivery_tag,
                        "CDR consumer: rejecting a message to the dead-letter queue: {why}"
                    );
                    let reject = BasicNackOptions {
                        multiple: false,
                        requeue: false,
                    };
                    if let Err(e) = d.acker.nack(reject).await {
                        return e.to_string();
                    }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let events: Vec<v1::Event> = batch.iter().map(|(e, _)| e.clone()).collect();
        // Written before acked; retried while the database is down.
        let mut backoff = Duration::from_millis(200);
        loop {
            match store.record(&events).await {
                Ok(n) => {
                    tracing::debug!(
                        events = events.len(),
                        cdrs = n,
                        "CDR consumer: batch written"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        events = events.len(),
                        "CDR consumer: {e}; nothing acked, retrying in {:.1} s",
                        backoff.as_secs_f64()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        for (_, d) in batch {
            if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                return e.to_string();
            }
        }
    }
}

/// The event a message carries, or why it cannot be read.
fn read(d: &Delivery) -> Result<v1::Event, String> {
    let json = d
        .properties
        .content_type()
        .as_ref()
        .is_some_and(|c| c.as_str() == "application/json");
    let e = if json {
        serde_json::from_slice::<v1::Event>(&d.data).map_err(|e| format!("not an event: {e}"))?
    } else {
        v1::Event::decode(d.data.as_slice()).map_err(|e| format!("not an event: {e}"))?
    };
    if e.schema_version != sentiric_events::SCHEMA_VERSION {
        return Err(format!(
            "schema_version {} (this consumer reads {})",
            e.schema_version,
            sentiric_events::SCHEMA_VERSION
        ));
    }
    if e.event_id.is_empty() {
        return Err("no event_id".into());
    }
    Ok(e)
}

/// `sentiric cdr list`: the CDRs of calls that ended in the last
/// `since_s` seconds, one JSON object a line, oldest first.
pub(crate) fn list(database: &str, since_s: u64, limit: i64) -> Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let store = Store::open(database)
            .await
            .map_err(|e| format!("{}: {e}", redacted(database)))?;
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let since = now_us
            .saturating_sub(i64::try_from(since_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
        for cdr in store
            .recent(since, limit)
            .await
            .map_err(|e| e.to_string())?
        {
            println!(
                "{}",
                serde_json::to_string(&cdr).map_err(|e| e.to_string())?
            );
        }
        Ok(())
    })
}
