//! Call detail records: a call's events folded into one row.
//!
//! [`Store`] writes to PostgreSQL (`postgres://…`) or SQLite
//! (`sqlite://FILE`) through sqlx's `Any` driver, the same SQL for both.
//! [`Store::record`] takes a batch of events in one transaction: each
//! event is kept by its `event_id` (a replayed or duplicated event is
//! stored once), and a call's `CallEnded` folds the call's events
//! ([`fold`]) into its CDR, inserted once per call. A consumer acks its
//! messages only after `record` returns: nothing is acked that is not
//! committed, and nothing committed twice yields a second row.
//!
//! Migrations (`migrations/*.sql`, compiled in) are applied by
//! [`Store::open`] and recorded in `sentiric_migrations`.

use prost::Message as _;
use sentiric_events::v1::{self, event::Body};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Row as _;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_cdr.sql")),
    (2, include_str!("../migrations/0002_cdr_tags.sql")),
    (3, include_str!("../migrations/0003_cdr_transcript.sql")),
];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored event no longer decodes.
    #[error("stored event {0}: {1}")]
    Decode(String, prost::DecodeError),
}

/// One call's record.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Cdr {
    /// The caller's Call-ID.
    pub call_id: String,
    /// Minted at ingress; also in the call's logs and events.
    pub trace_id: String,
    /// The switch node that handled it.
    pub node_id: String,
    /// The caller.
    pub from_uri: String,
    /// The callee as the caller addressed it (To).
    pub to_uri: String,
    /// The INVITE's Request-URI.
    pub request_uri: String,
    /// ip:port the INVITE came from.
    pub source: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// When the INVITE arrived, Unix microseconds.
    pub start_us: i64,
    /// When the call was answered, if it was.
    pub answer_us: Option<i64>,
    /// When it ended.
    pub end_us: i64,
    /// From the INVITE to the end.
    pub duration_ms: i64,
    /// Answered seconds, rounded up.
    pub billable_s: i64,
    /// `ANSWERED`, `BUSY`, `NO ANSWER`, `CANCELLED`, `REJECTED` or `FAILED`.
    pub disposition: String,
    /// The switch's cause (`normal`, `busy`, …).
    pub hangup_cause: String,
    /// `caller`, `callee` or `switch`.
    pub hangup_side: String,
    /// The call's final SIP status.
    pub sip_code: i64,
    /// The codec each leg settled on (empty when unknown).
    pub caller_codec: String,
    /// See `caller_codec`.
    pub callee_codec: String,
    /// RTP from the caller, as the switch saw it.
    pub caller_packets_received: i64,
    /// Lost on the way from the caller.
    pub caller_packets_lost: i64,
    /// Interarrival jitter from the caller, µs.
    pub caller_jitter_us: i64,
    /// RTP from the callee.
    pub callee_packets_received: i64,
    /// Lost on the way from the callee.
    pub callee_packets_lost: i64,
    /// Interarrival jitter from the callee, µs.
    pub callee_jitter_us: i64,
    /// The route taken: the dialplan's action and its targets.
    pub route: String,
    /// The tags the dialplan set: a JSON object, keys sorted.
    pub tags: String,
    /// An agent's conversation: a JSON array of its turns in order, each
    /// `{"caller": …, "agent": …, "interrupted": …}` (`[]` without one).
    pub transcript: String,
}

/// A call's CDR from its events (any order; duplicates harmless), once
/// they include its `CallEnded`.
pub fn fold(events: &[v1::Event]) -> Option<Cdr> {
    let mut sorted: Vec<&v1::Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.sequence);
    let first = sorted.first()?;
    let mut cdr = Cdr {
        call_id: first.call_id.clone(),
        trace_id: first.trace_id.clone(),
        node_id: first.node_id.clone(),
        start_us: first.time_unix_us,
        ..Cdr::default()
    };
    let mut ended = false;
    let mut tags = std::collections::BTreeMap::new();
    let mut turns = Vec::new();
    for e in sorted {
        match &e.body {
            Some(Body::CallStarted(s)) => {
                cdr.start_us = e.time_unix_us;
                cdr.from_uri.clone_from(&s.from_uri);
                cdr.to_uri.clone_from(&s.to_uri);
                cdr.request_uri.clone_from(&s.request_uri);
                cdr.source.clone_from(&s.source);
                cdr.transport.clone_from(&s.transport);
            }
            Some(Body::CallRouted(r)) => {
                cdr.route = std::iter::once(r.action.as_str())
                    .chain(r.targets.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                tags.extend(r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Some(Body::CallTagged(t)) => {
                tags.extend(t.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Some(Body::AgentTurn(t)) => turns.push(serde_json::json!({
                "caller": t.transcript,
                "agent": t.response,
                "interrupted": t.interrupted,
            })),
            Some(Body::CallAnswered(a)) => {
                cdr.answer_us = Some(e.time_unix_us);
                if let Some(c) = &a.codecs {
                    cdr.caller_codec.clone_from(&c.caller);
                    cdr.callee_codec.clone_from(&c.callee);
                }
            }
            Some(Body::CallEnded(x)) => {
                ended = true;
                cdr.end_us = e.time_unix_us;
                cdr.duration_ms = i64::try_from(x.duration_ms).unwrap_or(i64::MAX);
                cdr.billable_s = i64::try_from(x.talk_ms.div_ceil(1000)).unwrap_or(i64::MAX);
                cdr.hangup_cause.clone_from(&x.cause);
                cdr.hangup_side = match v1::Side::try_from(x.side) {
                    Ok(v1::Side::Caller) => "caller",
                    Ok(v1::Side::Callee) => "callee",
                    Ok(v1::Side::Switch) => "switch",
                    _ => "",
                }
                .into();
                cdr.sip_code = i64::from(x.sip_code);
                if let Some(c) = &x.codecs {
                    cdr.caller_codec.clone_from(&c.caller);
                    cdr.callee_codec.clone_from(&c.callee);
                }
                let q = |q: &Option<v1::RtpQuality>| {
                    q.as_ref().map_or((0, 0, 0), |q| {
                        (
                            i64::try_from(q.packets_received).unwrap_or(i64::MAX),
                            i64::try_from(q.packets_lost).unwrap_or(i64::MAX),
                            i64::from(q.jitter_us),
                        )
                    })
                };
                (
                    cdr.caller_packets_received,
                    cdr.caller_packets_lost,
                    cdr.caller_jitter_us,
                ) = q(&x.caller_rtp);
                (
                    cdr.callee_packets_received,
                    cdr.callee_packets_lost,
                    cdr.callee_jitter_us,
                ) = q(&x.callee_rtp);
            }
            _ => {}
        }
    }
    if !ended {
        return None;
    }
    cdr.tags = serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into());
    cdr.transcript = serde_json::Value::Array(turns).to_string();
    cdr.disposition = if cdr.answer_us.is_some() {
        "ANSWERED"
    } else {
        match cdr.hangup_cause.as_str() {
            "busy" => "BUSY",
            "no_answer" => "NO ANSWER",
            "cancelled" => "CANCELLED",
            "failed" => "FAILED",
            "redirected" => "REDIRECTED",
            _ => "REJECTED",
        }
    }
    .into();
    Some(cdr)
}

/// `($1, $2), ($3, $4)`: `rows` tuples of `cols` numbered placeholders.
fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// CDRs in PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

const COLUMNS: &str = "call_id, trace_id, node_id, from_uri, to_uri, request_uri, source, \
     transport, start_us, answer_us, end_us, duration_ms, billable_s, disposition, hangup_cause, \
     hangup_side, sip_code, caller_codec, callee_codec, caller_packets_received, \
     caller_packets_lost, caller_jitter_us, callee_packets_received, callee_packets_lost, \
     callee_jitter_us, route, tags, transcript";

impl Store {
    /// Connects to `url` and applies the migrations not yet applied.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let mut options = AnyPoolOptions::new()
            // SQLite has one writer at a time: one connection.
            .max_connections(if sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(2));
        if sqlite {
            // A write-ahead log, synced at checkpoints rather than at
            // every commit: a fraction of the fsyncs of the default
            // rollback journal. A process killed loses no committed
            // transaction; a power loss can lose the last ones (the
            // embedded default trades that for its cost; PostgreSQL is
            // the store for a carrier).
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS sentiric_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query("SELECT version FROM sentiric_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.get::<i64, _>(0));
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for statement in sql.split(';').map(str::trim).filter(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
            }) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO sentiric_migrations (version) VALUES ($1) ON CONFLICT (version) DO NOTHING",
            )
            .bind(*version)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Stores a batch of events in one transaction and writes the CDR of
    /// every call a `CallEnded` of the batch ends; returns the CDRs
    /// written (a call's second `CallEnded`, replayed, writes none).
    pub async fn record(&self, events: &[v1::Event]) -> Result<usize, StoreError> {
        // Few statements a batch, whatever its size: each is a round trip
        // (on SQLite, to sqlx's worker thread and back).
        let mut tx = self.pool.begin().await?;
        let calls: Vec<&v1::Event> = events.iter().filter(|e| !e.call_id.is_empty()).collect();
        for chunk in calls.chunks(200) {
            let sql = format!(
                "INSERT INTO call_events (event_id, call_id, sequence, event) VALUES {} \
                 ON CONFLICT (event_id) DO NOTHING",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.event_id.as_str())
                    .bind(e.call_id.as_str())
                    .bind(i64::try_from(e.sequence).unwrap_or(i64::MAX))
                    .bind(e.encode_to_vec());
            }
            q.execute(&mut *tx).await?;
        }
        let mut ended: Vec<&str> = calls
            .iter()
            .filter(|e| matches!(e.body, Some(Body::CallEnded(_))))
            .map(|e| e.call_id.as_str())
            .collect();
        ended.sort_unstable();
        ended.dedup();
        let mut cdrs = Vec::with_capacity(ended.len());
        for chunk in ended.chunks(200) {
            let sql = format!(
                "SELECT call_id, event_id, event FROM call_events WHERE call_id IN {}",
                values(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for call_id in chunk {
                q = q.bind(*call_id);
            }
            let mut by_call: std::collections::BTreeMap<String, Vec<v1::Event>> =
                std::collections::BTreeMap::new();
            for r in q.fetch_all(&mut *tx).await? {
                let (call_id, id, bytes): (String, String, Vec<u8>) =
                    (r.get(0), r.get(1), r.get(2));
                let e =
                    v1::Event::decode(bytes.as_slice()).map_err(|e| StoreError::Decode(id, e))?;
                by_call.entry(call_id).or_default().push(e);
            }
            cdrs.extend(by_call.values().filter_map(|evs| fold(evs)));
        }
        let mut written = 0;
        for chunk in cdrs.chunks(50) {
            let sql = format!(
                "INSERT INTO cdr ({COLUMNS}) VALUES {} ON CONFLICT (call_id) DO NOTHING",
                values(chunk.len(), 28)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(c.call_id.clone())
                    .bind(c.trace_id.clone())
                    .bind(c.node_id.clone())
                    .bind(c.from_uri.clone())
                    .bind(c.to_uri.clone())
                    .bind(c.request_uri.clone())
                    .bind(c.source.clone())
                    .bind(c.transport.clone())
                    .bind(c.start_us)
                    .bind(c.answer_us)
                    .bind(c.end_us)
                    .bind(c.duration_ms)
                    .bind(c.billable_s)
                    .bind(c.disposition.clone())
                    .bind(c.hangup_cause.clone())
                    .bind(c.hangup_side.clone())
                    .bind(c.sip_code)
                    .bind(c.caller_codec.clone())
                    .bind(c.callee_codec.clone())
                    .bind(c.caller_packets_received)
                    .bind(c.caller_packets_lost)
                    .bind(c.caller_jitter_us)
                    .bind(c.callee_packets_received)
                    .bind(c.callee_packets_lost)
                    .bind(c.callee_jitter_us)
                    .bind(c.route.clone())
                    .bind(c.tags.clone())
                    .bind(c.transcript.clone());
            }
            let done = q.execute(&mut *tx).await?;
            written += usize::try_from(done.rows_affected()).unwrap_or(0);
        }
        tx.commit().await?;
        Ok(written)
    }

    /// The CDRs of calls that ended at or after `since_us`, newest first,
    /// at most `limit`.
    pub async fn recent(&self, since_us: i64, limit: i64) -> Result<Vec<Cdr>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cdr WHERE end_us >= $1 ORDER BY end_us DESC, call_id LIMIT $2"
        ))
        .bind(since_us)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Cdr {
                call_id: r.get(0),
                trace_id: r.get(1),
                node_id: r.get(2),
                from_uri: r.get(3),
                to_uri: r.get(4),
                request_uri: r.get(5),
                source: r.get(6),
                transport: r.get(7),
                start_us: r.get(8),
                answer_us: r.get(9),
                end_us: r.get(10),
                duration_ms: r.get(11),
                billable_s: r.get(12),
                disposition: r.get(13),
                hangup_cause: r.get(14),
                hangup_side: r.get(15),
                sip_code: r.get(16),
                caller_codec: r.get(17),
                callee_codec: r.get(18),
                caller_packets_received: r.get(19),
                caller_packets_lost: r.get(20),
                caller_jitter_us: r.get(21),
                callee_packets_received: r.get(22),
                callee_packets_lost: r.get(23),
                callee_jitter_us: r.get(24),
                route: r.get(25),
                tags: r.get(26),
                transcript: r.get(27),
            })
            .collect())
    }
}
