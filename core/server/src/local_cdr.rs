//! The embedded default's CDRs: with no broker configured, the switch
//! folds its own events into CDRs in `[cdr] database` (an SQLite file by
//! default) through the same store code as `sentiric cdr`.
//!
//! A thread with a current-thread tokio runtime follows the outbox
//! ([`sentiric_events::outbox::Tail`], woken after each write) from the
//! first unconfirmed event, writes each batch with
//! [`sentiric_store::Store::record`] (retried while the database refuses)
//! and then confirms the batch to the events thread, so the outbox keeps
//! only what is not yet in the store.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sentiric_events::outbox::Tail;
use sentiric_events::v1;
use sentiric_store::Store;
use tokio::sync::Notify;

use crate::events::Msg;
use crate::publisher::redacted;

const BATCH: usize = 500;

/// Starts the writer on the outbox in `dir`, from record `from`.
pub(crate) fn spawn(
    database: String,
    dir: PathBuf,
    from: u64,
    confirmed: Sender<Msg>,
    written: Arc<Notify>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::events::spawn_async("sentiric-cdr", move || async move {
        run(&database, Tail::new(&dir, from), &confirmed, &written).await;
    })
}

async fn run(database: &str, mut tail: Tail, confirmed: &Sender<Msg>, written: &Notify) {
    let mut backoff = Duration::from_millis(500);
    let store = loop {
        match Store::open(database).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(
                    "CDR store {}: {e}; events wait in the outbox, retrying in {:.1} s",
                    redacted(database),
                    backoff.as_secs_f64()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    tracing::info!(database = %redacted(database), "CDRs written to {}", redacted(database));
    loop {
        let records = match tail.read(BATCH) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("CDR writer: reading the outbox: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if records.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), written.notified()).await;
            continue;
        }
        // The outbox's CRC vouches for the bytes: a record that does not
        // decode was written by another version; it is passed over.
        let events: Vec<v1::Event> = records
            .iter()
            .filter_map(|r| v1::Event::decode(r.bytes.as_slice()).ok())
            .collect();
        let mut backoff = Duration::from_millis(200);
        while let Err(e) = store.record(&events).await {
            tracing::warn!(
                "CDR store {}: {e}; retrying in {:.1} s",
                redacted(database),
                backoff.as_secs_f64()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        let seqs = records.iter().map(|r| r.seq).collect();
        if confirmed.send(Msg::Confirmed(seqs)).is_err() {
            return;
        }
    }
}
