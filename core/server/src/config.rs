//! The config file: TOML, every section optional, an embedded default that
//! runs on loopback. Checked whole at start; an error names the bad key.
//!
//! ```toml
//! [sip]
//! listen = "127.0.0.1:5060"      # UDP and TCP
//! workers = 0                    # data-plane workers; 0: one per CPU
//! keep_calls_below = 0.5         # a worker keeps new calls below this
//!                                # share of its core, then places them
//! probe_s = 30                   # a call without RTP this long: its legs
//!                                # asked with in-dialog OPTIONS (0: never)
//!
//! [rtp]
//! ip = "127.0.0.1"               # where the switch's media sockets bind,
//!                                # and the address written into SDP
//! min_port = 20000
//! max_port = 20999
//! quarantine_ms = 2000           # a released port rests before reuse
//! backend = "auto"               # auto, io_uring or epoll
//! transcode = true               # offer the switch's codecs, transcode
//!                                # when the legs share none
//! timeout_s = 60                 # an answered call from whose legs no RTP
//!                                # came this long is hung up (0: never)
//! silent_timeout_s = 3600        # the same for a call none of whose legs
//!                                # sends (on hold: inactive, recvonly)
//!
//! [limits]
//! max_calls = 10000              # beyond: 503 with Retry-After
//! max_cps = 500                  # new calls per second, beyond: 503
//! max_call_duration_s = 14400    # then both legs get BYE
//! drain_timeout_s = 300          # SIGTERM: calls up may carry on this long
//! # max_transactions: SIP transactions alive at once (they linger 32 s;
//! # ~4 a call), beyond: 503; unset: sized from memory (a sixteenth of
//! # it at 4 KiB each), shared out among the workers
//!
//! [http]
//! listen = "127.0.0.1:9060"      # /healthz, /readyz, /metrics
//! # token: set SENTIRIC_HTTP_TOKEN to require a bearer token on /metrics
//!
//! [log]
//! format = "text"                # or "json": one object a line
//! level = "info"
//!
//! [events]
//! outbox = "sentiric-events"     # the event outbox's directory
//! outbox_max_mb = 1024           # full: new calls get 503 until the
//!                                # broker confirms events
//! batch_ms = 50                  # events written together (one write)
//! sync_ms = 200                  # and synced to disk at most this often
//! durable_end = false            # true: a call's final response or BYE
//!                                # goes only once its CallEnded is synced
//!                                # (10 s at most: then counted, and sent)
//! # broker: better from SENTIRIC_EVENTS_BROKER, it holds a password;
//! # unset: the switch writes its own CDRs ([cdr] local)
//! broker = "amqp://user:password@127.0.0.1:5672/%2f"
//! exchange = "sentiric.events"   # a durable fanout exchange
//! content_type = "protobuf"      # or "json"
//!
//! [node]
//! id = ""                        # in every event; "" = the host name
//!
//! [cdr]                          # `sentiric cdr`, the consumer, and
//!                                # the switch's own writer
//! database = "sqlite://sentiric-cdr.db?mode=rwc"   # or postgres://…
//! local = true                   # no broker: the switch writes its CDRs
//! queue = "sentiric.cdr"         # bound to [events] exchange
//! dead_letter = "sentiric.cdr.dead"  # what it cannot read goes here
//!
//! [dialplan]                     # see sentiric_engine::dialplan
//!
//! [plugins]                      # see plugins.rs
//! dir = "/usr/lib/sentiric/plugins"
//! dialplan = "sentiric-plugin-prefix-dialplan"   # or a sidecar's name
//! [plugins.sidecars.NAME]        # a dialplan served over gRPC, mTLS
//! address = "127.0.0.1:7443"
//! certs = "/etc/sentiric/certs"
//! ```
//!
//! SIGHUP reads the file again for `[dialplan]` and `[plugins]`; the
//! other sections take a restart.
//!
//! Every key of `[sip]`, `[rtp]`, `[limits]`, `[log]`, `[http]`, `[events]`,
//! `[node]`, `[cdr]` and `[plugins]` (its `config` table aside) can be set
//! from the environment, over the file:
//! `SENTIRIC_SIP_LISTEN=127.0.0.1:5070`, `SENTIRIC_RTP_MIN_PORT=30000`,
//! `SENTIRIC_LIMITS_MAX_CPS=200`, `SENTIRIC_EVENTS_OUTBOX=/var/lib/sentiric/events`,
//! `SENTIRIC_PLUGINS_ON_FAILURE=reject`.
//!
//! With no `[dialplan]` rules the demo dialplan runs: 600 echo, 700 an
//! announcement, 800 a conference room, anything else 404.

use std::net::{IpAddr, SocketAddr};

use sentiric_engine::dialplan::{DialplanConfig, StaticDialplan};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// SIP signalling.
    #[serde(default)]
    pub(crate) sip: SipConfig,
    /// The media plane.
    #[serde(default)]
    pub(crate) rtp: RtpConfig,
    /// Routing.
    #[serde(default)]
    pub(crate) dialplan: Option<DialplanConfig>,
    /// Overload limits and draining.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    /// Logging.
    #[serde(default)]
    pub(crate) log: LogConfig,
    /// Health and metrics endpoints.
    #[serde(default)]
    pub(crate) http: HttpConfig,
    /// Call and node events.
    #[serde(default)]
    pub(crate) events: EventsConfig,
    /// This switch node.
    #[serde(default)]
    pub(crate) node: NodeConfig,
    /// The CDR consumer.
    #[serde(default)]
    pub(crate) cdr: CdrSection,
    /// In-process plugins.
    #[serde(default)]
    pub(crate) plugins: crate::plugins::PluginsConfig,
}

/// `[cdr]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CdrSection {
    /// The store: `postgres://…` or `sqlite://FILE?mode=rwc`.
    #[serde(default = "default_cdr_database")]
    pub(crate) database: String,
    /// The consumer's durable queue.
    #[serde(default = "default_cdr_queue")]
    pub(crate) queue: String,
    /// The dead-letter exchange and queue.
    #[serde(default = "default_cdr_dead_letter")]
    pub(crate) dead_letter: String,
    /// With no broker, the switch writes its own CDRs to `database`.
    #[serde(default = "default_true")]
    pub(crate) local: bool,
}

fn default_true() -> bool {
    true
}

impl std::fmt::Debug for CdrSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrSection")
            .field("database", &crate::publisher::redacted(&self.database))
            .field("queue", &self.queue)
            .field("dead_letter", &self.dead_letter)
            .field("local", &self.local)
            .finish()
    }
}

impl Default for CdrSection {
    fn default() -> Self {
        CdrSection {
            database: default_cdr_database(),
            queue: default_cdr_queue(),
            dead_letter: default_cdr_dead_letter(),
            local: true,
        }
    }
}

fn default_cdr_database() -> String {
    "sqlite://sentiric-cdr.db?mode=rwc".into()
}
fn default_cdr_queue() -> String {
    "sentiric.cdr".into()
}
fn default_cdr_dead_letter() -> String {
    "sentiric.cdr.dead".into()
}

/// `[events]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsConfig {
    /// The RabbitMQ broker, `amqp://user:password@host:port/vhost`;
    /// unset: events stay in the outbox.
    #[serde(default)]
    pub(crate) broker: Option<String>,
    /// The fanout exchange events are published to.
    #[serde(default = "default_exchange")]
    pub(crate) exchange: String,
    /// `protobuf` or `json`.
    #[serde(default = "default_content_type")]
    pub(crate) content_type: String,
    /// The outbox's directory (relative: to the working directory).
    #[serde(default = "default_outbox")]
    pub(crate) outbox: std::path::PathBuf,
    /// Most megabytes the outbox holds before new calls are refused.
    #[serde(default = "default_outbox_max_mb")]
    pub(crate) outbox_max_mb: u64,
    /// Events arriving within this many milliseconds of the first of a
    /// batch are written with it (one `write`).
    #[serde(default = "default_batch_ms")]
    pub(crate) batch_ms: u64,
    /// What was written is synced to disk (one `fdatasync`) at most this
    /// often, in milliseconds.
    #[serde(default = "default_sync_ms")]
    pub(crate) sync_ms: u64,
    /// A call's final response, BYEs and 200 to a BYE or CANCEL wait
    /// until its `CallEnded` is synced to disk (up to `batch_ms` and one
    /// `fdatasync`, shared by the ends of a batch): no power cut loses
    /// the record of a call its peers saw end.
    #[serde(default)]
    pub(crate) durable_end: bool,
}

impl std::fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsConfig")
            .field(
                "broker",
                &self.broker.as_deref().map(crate::publisher::redacted),
            )
            .field("exchange", &self.exchange)
            .field("content_type", &self.content_type)
            .field("outbox", &self.outbox)
            .field("outbox_max_mb", &self.outbox_max_mb)
            .field("batch_ms", &self.batch_ms)
            .field("sync_ms", &self.sync_ms)
            .field("durable_end", &self.durable_end)
            .finish()
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            broker: None,
            exchange: default_exchange(),
            content_type: default_content_type(),
            outbox: default_outbox(),
            outbox_max_mb: default_outbox_max_mb(),
            batch_ms: default_batch_ms(),
            sync_ms: default_sync_ms(),
            durable_end: false,
        }
    }
}

fn default_exchange() -> String {
    "sentiric.events".into()
}
fn default_content_type() -> String {
    "protobuf".into()
}
fn default_outbox() -> std::path::PathBuf {
    "sentiric-events".into()
}
fn default_outbox_max_mb() -> u64 {
    1024
}
fn default_batch_ms() -> u64 {
    50
}
fn default_sync_ms() -> u64 {
    200
}

/// `[node]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// The node's name in events; empty: the host name.
    #[serde(default)]
    pub(crate) id: String,
}

impl NodeConfig {
    /// The id, or the host name when none is set.
    pub(crate) fn id(&self) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "sentiric".into())
    }
}

/// `[http]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[serde(default = "default_http_listen")]
    pub(crate) listen: SocketAddr,
    /// A bearer token `/metrics` requires, if set (better from
    /// `SENTIRIC_HTTP_TOKEN` than from the file).
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            token: None,
        }
    }
}

fn default_http_listen() -> SocketAddr {
    ([127, 0, 0, 1], 9060).into()
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// `text` (readable, for a terminal) or `json` (one object a line).
    #[serde(default = "default_log_format")]
    pub(crate) format: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "default_log_level")]
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// Most calls at once (beyond: 503 with Retry-After).
    pub(crate) max_calls: Option<usize>,
    /// Most new calls per second (beyond: 503 with Retry-After).
    pub(crate) max_cps: Option<u32>,
    /// Longest a call may last once answered, in seconds (unset: no limit).
    pub(crate) max_call_duration_s: Option<u64>,
    /// Most SIP transactions alive at once, lingering ones included
    /// (beyond: new requests get 503). Unset: sized from the host's memory
    /// ([`crate::transactions_from_memory`]).
    pub(crate) max_transactions: Option<usize>,
    /// On SIGTERM, how long calls up may carry on before the switch hangs
    /// them up, in seconds.
    #[serde(default = "default_drain_timeout_s")]
    pub(crate) drain_timeout_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: None,
            max_cps: None,
            max_call_duration_s: None,
            max_transactions: None,
            drain_timeout_s: default_drain_timeout_s(),
        }
    }
}

fn default_drain_timeout_s() -> u64 {
    300
}

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipConfig {
    /// The UDP address SIP listens on.
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    /// Data-plane workers, each with its calls' SIP and media on a core
    /// of its own; 0 (the default): one per CPU the process may run on.
    #[serde(default)]
    pub(crate) workers: usize,
    /// With several workers, a worker keeps the new calls it receives
    /// while it is busy less than this share of its core (and has ports),
    /// and hands them to the least busy worker above it; 0 hands every
    /// new call to the least busy one.
    #[serde(default = "default_keep_calls_below")]
    pub(crate) keep_calls_below: f64,
    /// An answered call that carried no RTP this long (on hold, or a
    /// peer gone) has each leg asked, this often, with an OPTIONS in its
    /// dialog: a leg whose dialog is gone (481) or that does not answer is
    /// lost and the call hung up (CDR cause `leg_gone`); 0: never.
    #[serde(default = "default_probe_s")]
    pub(crate) probe_s: u64,
}

fn default_keep_calls_below() -> f64 {
    0.5
}
fn default_probe_s() -> u64 {
    30
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: default_listen(),
            workers: 0,
            keep_calls_below: default_keep_calls_below(),
            probe_s: default_probe_s(),
        }
    }
}

fn default_listen() -> SocketAddr {
    ([127, 0, 0, 1], 5060).into()
}

/// `[rtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RtpConfig {
    /// The media address: sockets bind to it and SDP names it.
    #[serde(default = "default_rtp_ip")]
    pub(crate) ip: IpAddr,
    /// Lowest RTP port.
    #[serde(default = "default_min_port")]
    pub(crate) min_port: u16,
    /// Highest RTP port.
    #[serde(default = "default_max_port")]
    pub(crate) max_port: u16,
    /// How long a released port rests before reuse, in milliseconds.
    #[serde(default = "default_quarantine_ms")]
    pub(crate) quarantine_ms: u64,
    /// The packet engine: `auto`, `io_uring` or `epoll`.
    #[serde(default = "default_backend")]
    pub(crate) backend: String,
    /// Offer each leg the switch's codecs (PCMU, PCMA, Opus) after the
    /// other leg's, and transcode when the two share none.
    #[serde(default = "default_transcode")]
    pub(crate) transcode: bool,
    /// An answered call none of whose sending legs sent RTP for this long
    /// is hung up, both legs, the cause `media_timeout` in its CDR (a
    /// caller gone without BYE); 0: never.
    #[serde(default = "default_rtp_timeout_s")]
    pub(crate) timeout_s: u64,
    /// The same for a call whose legs all said they send nothing (on
    /// hold), counted from its last packet; 0: never.
    #[serde(default = "default_rtp_silent_timeout_s")]
    pub(crate) silent_timeout_s: u64,
}

fn default_rtp_timeout_s() -> u64 {
    60
}
fn default_rtp_silent_timeout_s() -> u64 {
    3600
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            ip: default_rtp_ip(),
            min_port: default_min_port(),
            max_port: default_max_port(),
            quarantine_ms: default_quarantine_ms(),
            backend: default_backend(),
            transcode: default_transcode(),
            timeout_s: default_rtp_timeout_s(),
            silent_timeout_s: default_rtp_silent_timeout_s(),
        }
    }
}

fn default_rtp_ip() -> IpAddr {
    [127, 0, 0, 1].into()
}
fn default_min_port() -> u16 {
    20_000
}
fn default_max_port() -> u16 {
    20_999
}
fn default_quarantine_ms() -> u64 {
    2000
}
fn default_backend() -> String {
    "auto".into()
}
fn default_transcode() -> bool {
    true
}

/// The sections a `SENTIRIC_<SECTION>_<KEY>` variable may set.
const SECTIONS: [&str; 9] = [
    "sip", "rtp", "limits", "log", "http", "events", "node", "cdr", "plugins",
];

/// An environment value: a number or boolean as TOML reads it, anything
/// else a string.
fn env_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| v.is_integer() || v.is_float() || v.is_bool())
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// A key set in a config file: its dotted path (`sip.listen`,
/// `dialplan.rule[0].room`) and where its line begins.
#[derive(Debug, PartialEq, Eq)]
struct KeyLine {
    path: String,
    line: usize,
    column: usize,
}

/// The `key = value` lines of `text` under their `[table]` and
/// `[[array]]` headers (a key inside a multi-line value or an inline
/// table is not found: the error then has no line).
fn key_lines(text: &str) -> Vec<KeyLine> {
    let mut out = Vec::new();
    let mut prefix = String::new();
    let mut arrays: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        let column = raw.len() - line.len() + 1;
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let n = arrays.entry(name.clone()).or_insert(0);
            prefix = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            prefix = name.trim().to_string();
        } else if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            let key = key.trim().trim_matches('"');
            out.push(KeyLine {
                path: if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                },
                line: i + 1,
                column,
            });
        }
    }
    out
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A serde message as an operator reads it: an address without a port
/// said to want one, an unknown key with the nearest known one.
fn explain(message: &str, spell: impl Fn(&str) -> String) -> String {
    let mut out = message
        .trim_end()
        .replace(
            "invalid socket address syntax",
            "IP:PORT expected (an address and a port, e.g. 127.0.0.1:5060)",
        )
        .replace('\n', " ")
        .replace("expected a boolean", "expected a boolean (true or false)");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (unknown, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known = rest.split('`').skip(1).step_by(2);
        if let Some(near) = known
            .map(|k| (strsim::jaro_winkler(unknown, k), k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            out.push_str(&format!("; did you mean {}?", spell(near.1)));
        }
    }
    out
}

/// An error in the file itself: with its line, column and key (the
/// line's text is not shown: it may hold a secret).
fn file_error(text: &str, e: &toml::de::Error) -> String {
    let message = explain(e.message(), |k| format!("`{k}`"));
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            let key = key_lines(text)
                .into_iter()
                .rev()
                .find(|k| k.line <= line)
                .map(|k| format!("{}: ", k.path))
                .unwrap_or_default();
            format!("{key}{message} (line {line}, column {column})")
        }
        None => message,
    }
}

/// Why the merged config does not deserialize: the file's own error
/// (with its line), or the first environment variable that breaks it.
fn blame(
    text: &str,
    mut doc: toml::Table,
    env: &[(String, String, String, toml::Value)],
    merged: &toml::de::Error,
) -> String {
    if let Err(e) = toml::from_str::<Config>(text) {
        return file_error(text, &e);
    }
    for (name, section, key, value) in env {
        if let Some(t) = doc
            .entry(section.as_str())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
        {
            t.insert(key.clone(), value.clone());
        }
        if let Err(e) = doc.clone().try_into::<Config>() {
            let upper = section.to_ascii_uppercase();
            let message = explain(e.message(), |k| {
                format!("SENTIRIC_{upper}_{}", k.to_ascii_uppercase())
            });
            return format!("{name} in the environment ({section}.{key}): {message}");
        }
    }
    explain(merged.message(), |k| format!("`{k}`"))
}

/// A config the switch refuses, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A config, checked, with its dialplan built.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// The settings.
    pub(crate) config: Config,
    /// The dialplan they describe.
    pub(crate) dialplan: StaticDialplan,
    /// The engine backend.
    pub(crate) backend: sentiric_io::Backend,
    /// The prompts the dialplan plays, loaded.
    pub(crate) prompts: crate::prompts::Prompts,
    /// The dialplan is the demo's (no `[[dialplan.rule]]` and no default
    /// in the config).
    pub(crate) demo_dialplan: bool,
}

/// The file an SQLite URL (`sqlite://PATH?…`, `sqlite:PATH`) names;
/// `None` for another database.
pub(crate) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

impl Config {
    /// Relative paths the file (or its defaults) gave are taken from
    /// `base`, the file's directory: `[events] outbox`, an SQLite
    /// `[cdr] database`, `[plugins] dir` and each sidecar's `certs`,
    /// `ca`, `cert` and `key`. One the environment set (`set(KEY)`)
    /// stays as given.
    pub(crate) fn resolve_paths(&mut self, base: &std::path::Path, set: impl Fn(&str) -> bool) {
        if self.events.outbox.is_relative() && !set("SENTIRIC_EVENTS_OUTBOX") {
            self.events.outbox = base.join(&self.events.outbox);
        }
        // The plugin directory and the sidecars' certificates, beside the
        // file too (a first try needs no system directory).
        if let Some(dir) = self.plugins.dir.as_mut().filter(|d| d.is_relative()) {
            if !set("SENTIRIC_PLUGINS_DIR") {
                *dir = base.join(&*dir);
            }
        }
        for sidecar in self.plugins.sidecars.values_mut() {
            for path in [
                &mut sidecar.certs,
                &mut sidecar.ca,
                &mut sidecar.cert,
                &mut sidecar.key,
            ]
            .into_iter()
            .flatten()
            .filter(|p| p.is_relative())
            {
                *path = base.join(&*path);
            }
            // The program it runs, by a relative path, and its arguments'
            // paths: from the file's directory, where it runs.
            if let Some(program) = sidecar.command.as_mut().and_then(|c| c.first_mut()) {
                if program.contains('/') && std::path::Path::new(program.as_str()).is_relative() {
                    *program = base.join(&*program).display().to_string();
                }
            }
            sidecar.workdir = Some(base.to_path_buf());
        }
        if let Some(file) = sqlite_file(&self.cdr.database)
            .filter(|f| f.is_relative() && !set("SENTIRIC_CDR_DATABASE"))
        {
            let query = self
                .cdr
                .database
                .split_once('?')
                .map_or(String::new(), |(_, q)| format!("?{q}"));
            self.cdr.database = format!("sqlite://{}{query}", base.join(file).display());
        }
    }

    /// Parses and checks TOML text.
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Result<Checked, ConfigError> {
        Config::parse_with_env(text, std::iter::empty())
    }

    /// Parses TOML text, applies `SENTIRIC_<SECTION>_<KEY>` variables from
    /// `env` over it (a key the section does not have is an error naming
    /// it), and checks the result. An error says where the value came
    /// from: the file's line and column, or the variable; an unknown key
    /// gets the nearest known one suggested.
    pub(crate) fn parse_with_env(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Checked, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(file_error(text, &e)))?;
        let env: Vec<(String, String)> = env.collect();
        // A section misspelt (SENTIRIC_SIPP_LISTEN) is named, not ignored
        // as one of the variables that are not settings.
        for (name, _) in &env {
            let Some(rest) = name.strip_prefix("SENTIRIC_") else {
                continue;
            };
            let (word, key) = rest.split_once('_').unwrap_or((rest, ""));
            let word = word.to_ascii_lowercase();
            if let Some(near) = SECTIONS
                .iter()
                .filter(|s| **s != word && strsim::jaro_winkler(&word, s) > 0.9)
                .find(|_| !SECTIONS.contains(&word.as_str()))
            {
                return Err(ConfigError(format!(
                    "{name} in the environment: no section `{word}`; did you mean SENTIRIC_{}_{key}?",
                    near.to_ascii_uppercase()
                )));
            }
        }
        let mut env: Vec<(String, String, String, toml::Value)> = env
            .into_iter()
            .filter_map(|(name, value)| {
                let lower = name.strip_prefix("SENTIRIC_")?.to_ascii_lowercase();
                // Other SENTIRIC_* variables (the test and benchmark
                // switches) are not settings; a wrong key in a section is
                // an error.
                let (section, key) = SECTIONS
                    .iter()
                    .find_map(|s| Some((*s, lower.strip_prefix(s)?.strip_prefix('_')?)))?;
                Some((
                    name.clone(),
                    section.to_string(),
                    key.to_string(),
                    env_value(&value),
                ))
            })
            .collect();
        env.sort_by(|a, b| a.0.cmp(&b.0));
        let from_file = doc.clone();
        let mut set_by_env = Vec::new();
        for (name, section, key, value) in &env {
            let table = doc
                .entry(section.as_str())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match table.as_table_mut() {
                Some(t) => {
                    t.insert(key.clone(), value.clone());
                }
                None => return Err(ConfigError(format!("{section}: not a table"))),
            }
            set_by_env.push((format!("{section}.{key}"), name.as_str()));
        }
        let config: Config = match doc.try_into() {
            Ok(c) => c,
            Err(e) => return Err(ConfigError(blame(text, from_file, &env, &e))),
        };
        config.check().map_err(|ConfigError(e)| {
            // Which keys it is about (`a.b, c.d: …`), and where each was set.
            let paths: Vec<&str> = e
                .split_once(": ")
                .map_or(Vec::new(), |(head, _)| head.split(", ").collect());
            let lines = key_lines(text);
            let places: Vec<(&str, String)> = paths
                .iter()
                .filter_map(|path| {
                    let place = match set_by_env.iter().rev().find(|(k, _)| k == path) {
                        Some((_, name)) => format!("{name} in the environment"),
                        None => {
                            let k = lines.iter().find(|k| k.path == *path)?;
                            format!("line {}, column {}", k.line, k.column)
                        }
                    };
                    Some((*path, place))
                })
                .collect();
            ConfigError(match places.as_slice() {
                [] => e,
                [(_, place)] => format!("{e} ({place})"),
                many => {
                    let each: Vec<String> = many.iter().map(|(k, p)| format!("{k}: {p}")).collect();
                    format!("{e} ({})", each.join("; "))
                }
            })
        })
    }

    /// Checks every section.
    pub(crate) fn check(self) -> Result<Checked, ConfigError> {
        let r = &self.rtp;
        if r.min_port == 0 || r.min_port > r.max_port || r.max_port - r.min_port < 3 {
            return Err(ConfigError(format!(
                "rtp.min_port, rtp.max_port: {}–{} is not a usable range (at least 4 ports, no port 0)",
                r.min_port, r.max_port
            )));
        }
        if r.ip.is_unspecified() {
            return Err(ConfigError(
                "rtp.ip: the SDP must name an address peers can reach, not 0.0.0.0 or ::".into(),
            ));
        }
        // Every media socket binds it: an address this host does not have
        // would fail every call.
        if let Err(e) = std::net::UdpSocket::bind((r.ip, 0)) {
            return Err(ConfigError(match e.kind() {
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "rtp.ip: {}: not an address of this host (the media sockets bind it)",
                    r.ip
                ),
                _ => format!("rtp.ip: {}: cannot bind a media socket: {e}", r.ip),
            }));
        }
        // The listeners' addresses too (their ports are tried at start:
        // another process may hold them now and not then).
        for (key, addr) in [
            ("sip.listen", self.sip.listen),
            ("http.listen", self.http.listen),
        ] {
            if let Err(e) = std::net::UdpSocket::bind((addr.ip(), 0)) {
                if e.kind() == std::io::ErrorKind::AddrNotAvailable {
                    return Err(ConfigError(format!(
                        "{key}: {addr}: {} is not an address of this host",
                        addr.ip()
                    )));
                }
            }
        }
        let backend = match r.backend.as_str() {
            "auto" => sentiric_io::Backend::Auto,
            "io_uring" => sentiric_io::Backend::Uring,
            "epoll" => sentiric_io::Backend::Epoll,
            other => {
                return Err(ConfigError(format!(
                    "rtp.backend: {other:?}: auto, io_uring or epoll"
                )))
            }
        };
        if self.http.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError(
                "http.token: at least 16 characters (the value is not shown)".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError(format!(
                "log.format: {:?}: text or json",
                self.log.format
            )));
        }
        if self.log.level.parse::<tracing::Level>().is_err() {
            return Err(ConfigError(format!(
                "log.level: {:?}: error, warn, info, debug or trace",
                self.log.level
            )));
        }
        if !(0.0..=1.0).contains(&self.sip.keep_calls_below) {
            return Err(ConfigError(format!(
                "sip.keep_calls_below: {}: a share of a core, 0 to 1",
                self.sip.keep_calls_below
            )));
        }
        if self.sip.workers > 256 {
            return Err(ConfigError(format!(
                "sip.workers: {}: at most 256 (0: one per CPU)",
                self.sip.workers
            )));
        }
        if !matches!(self.events.content_type.as_str(), "protobuf" | "json") {
            return Err(ConfigError(format!(
                "events.content_type: {:?}: protobuf or json",
                self.events.content_type
            )));
        }
        if let Some(b) = self.events.broker.as_deref().filter(|b| !b.is_empty()) {
            if !b.starts_with("amqp://") {
                return Err(ConfigError(format!(
                    "events.broker: {}: an amqp:// URI (amqps, TLS to the broker, is to come)",
                    crate::publisher::redacted(b)
                )));
            }
        }
        if !(self.cdr.database.starts_with("postgres://")
            || self.cdr.database.starts_with("postgresql://")
            || self.cdr.database.starts_with("sqlite:"))
        {
            return Err(ConfigError(format!(
                "cdr.database: {}: postgres://… or sqlite://FILE",
                crate::publisher::redacted(&self.cdr.database)
            )));
        }
        if self.cdr.queue.is_empty() || self.cdr.dead_letter.is_empty() {
            return Err(ConfigError(
                "cdr.queue, cdr.dead_letter: names are needed".into(),
            ));
        }
        if self.events.exchange.is_empty() {
            return Err(ConfigError("events.exchange: a name is needed".into()));
        }
        if self.events.outbox.as_os_str().is_empty() {
            return Err(ConfigError("events.outbox: a directory is needed".into()));
        }
        if !(1..=1000).contains(&self.events.batch_ms) {
            return Err(ConfigError(format!(
                "events.batch_ms: {}: 1 to 1000",
                self.events.batch_ms
            )));
        }
        if !(1..=60_000).contains(&self.events.sync_ms) {
            return Err(ConfigError(format!(
                "events.sync_ms: {}: 1 to 60000",
                self.events.sync_ms
            )));
        }
        if self.events.outbox_max_mb < 1 {
            return Err(ConfigError(
                "events.outbox_max_mb: at least 1 (calls are refused when it is full)".into(),
            ));
        }
        if self.limits.max_calls == Some(0) || self.limits.max_cps == Some(0) {
            return Err(ConfigError(
                "limits.max_calls, limits.max_cps: 0 would refuse every call; leave unset for no limit"
                    .into(),
            ));
        }
        if self.limits.max_transactions.is_some_and(|n| n < 1000) {
            return Err(ConfigError(
                "limits.max_transactions: at least 1000 (each call takes about four for 32 s); leave unset to size it from memory"
                    .into(),
            ));
        }
        self.plugins.check().map_err(ConfigError)?;
        let (dialplan, demo_dialplan) = match &self.dialplan {
            Some(d) if !d.rules.is_empty() || d.default.is_some() => (
                StaticDialplan::from_config(d).map_err(|e| ConfigError(e.to_string()))?,
                false,
            ),
            _ => (StaticDialplan::demo(), true),
        };
        let prompts = crate::prompts::load(&dialplan).map_err(ConfigError)?;
        Ok(Checked {
            config: self,
            dialplan,
            backend,
            prompts,
            demo_dialplan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid_and_on_loopback() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.config.sip.listen, default_listen());
        assert!(c.config.rtp.ip.is_loopback());
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = [
            ("SENTIRIC_SIP_LISTEN", "127.0.0.7:5070"),
            ("SENTIRIC_RTP_MIN_PORT", "30000"),
            ("SENTIRIC_RTP_MAX_PORT", "30999"),
            ("SENTIRIC_LIMITS_MAX_CPS", "50"),
            ("SENTIRIC_SIP_WORKERS", "3"),
            ("SENTIRIC_SIP_KEEP_CALLS_BELOW", "0.25"),
            ("SENTIRIC_PLUGINS_ON_FAILURE", "reject"),
            ("SENTIRIC_PLUGINS_DEADLINE_MS", "20"),
            ("PATH", "/usr/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::parse_with_env("[rtp]\nmin_port = 20000\n", env.into_iter()).unwrap();
        assert_eq!(c.config.sip.listen, "127.0.0.7:5070".parse().unwrap());
        assert_eq!(
            (c.config.rtp.min_port, c.config.rtp.max_port),
            (30000, 30999)
        );
        assert_eq!(c.config.limits.max_cps, Some(50));
        assert_eq!(
            (c.config.sip.workers, c.config.sip.keep_calls_below),
            (3, 0.25)
        );
        assert_eq!(
            (
                c.config.plugins.on_failure.as_str(),
                c.config.plugins.deadline_ms
            ),
            ("reject", 20)
        );
        let bad = [("SENTIRIC_RTP_MIN_PROT".to_string(), "1".to_string())];
        let e = Config::parse_with_env("", bad.into_iter()).unwrap_err().0;
        assert!(e.contains("min_prot"), "{e}");
        let other = [("SENTIRIC_REQUIRE_SIPP".to_string(), "1".to_string())];
        assert!(Config::parse_with_env("", other.into_iter()).is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            (
                "[rtp]\nmin_port = 30000\nmax_port = 20000\n",
                "rtp.min_port",
            ),
            ("[rtp]\nip = \"0.0.0.0\"\n", "rtp.ip"),
            ("[rtp]\nbackend = \"kqueue\"\n", "rtp.backend"),
            ("[sip]\nlisten = \"nowhere\"\n", "listen"),
            ("[sipp]\n", "sipp"),
            ("[limits]\nmax_cps = 0\n", "limits.max_cps"),
            (
                "[limits]\nmax_transactions = 10\n",
                "limits.max_transactions",
            ),
            // TEST-NET-1: an address no host here has.
            (
                "[rtp]\nip = \"192.0.2.1\"\n",
                "rtp.ip: 192.0.2.1: not an address of this host",
            ),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[log]\nlevel = \"loud\"\n", "log.level"),
            ("[events]\noutbox_max_mb = 0\n", "events.outbox_max_mb"),
            ("[events]\nbatch_ms = 0\n", "events.batch_ms"),
            ("[events]\ncontent_type = \"xml\"\n", "events.content_type"),
            (
                "[events]\nbroker = \"http://u:secret@h/\"\n",
                "events.broker",
            ),
            ("[events]\noutbox = \"\"\n", "events.outbox"),
            ("[node]\nname = \"x\"\n", "name"),
            (
                "[[dialplan.rule]]\naction = \"play\"\nprompt = \"/nonexistent/x.wav\"\n",
                "/nonexistent/x.wav",
            ),
            (
                "[[dialplan.rule]]\naction = \"echo\"\nroom = \"x\"\n",
                "dialplan.rule[0].room",
            ),
        ] {
            let e = Config::parse(text).unwrap_err().0;
            assert!(e.contains(key), "{text} => {e}");
        }
    }

    #[test]
    fn errors_say_where_the_value_came_from() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
                .into_iter()
        };
        let err = |text: &str, vars: &[(&str, &str)]| {
            Config::parse_with_env(text, env(vars)).unwrap_err().0
        };
        // The file: key, line and column, the nearest key.
        let e = err("[sip]\nworkers = 1\nlistne = \"127.0.0.1:5060\"\n", &[]);
        assert!(e.starts_with("sip.listne: unknown field `listne`"), "{e}");
        assert!(
            e.contains("did you mean `listen`?") && e.ends_with("(line 3, column 1)"),
            "{e}"
        );
        let e = err("[sip]\n  listen = \"127.0.0.1\"\n", &[]);
        assert!(e.starts_with("sip.listen: IP:PORT expected"), "{e}");
        // The file's text is never quoted (it may hold a secret).
        assert!(
            !e.contains('|') && !e.contains('\n') && !e.contains("\"127"),
            "{e}"
        );
        assert!(e.ends_with("(line 2, column 12)"), "{e}");
        let e = err("[rtp]\nmin_port = 30000\nmax_port = 20000\n", &[]);
        assert!(
            e.ends_with("(rtp.min_port: line 2, column 1; rtp.max_port: line 3, column 1)"),
            "{e}"
        );
        let e = err("[log]\nlevel = \"loud\"\n", &[]);
        assert!(
            e.ends_with("error, warn, info, debug or trace (line 2, column 1)"),
            "{e}"
        );
        let e = err("[sip\n", &[]);
        assert!(e.contains("line 1, column"), "{e}");
        // Nothing far from a known key is suggested.
        let e = err("[sip]\nzzzz = 1\n", &[]);
        assert!(!e.contains("did you mean"), "{e}");
        // The environment: the variable named, not the file.
        let e = err(
            "[sip]\nworkers = 1\n",
            &[("SENTIRIC_SIP_LISTNE", "127.0.0.1:5060")],
        );
        assert!(
            e.starts_with("SENTIRIC_SIP_LISTNE in the environment (sip.listne)"),
            "{e}"
        );
        assert!(
            e.contains("did you mean SENTIRIC_SIP_LISTEN?") && !e.contains("line"),
            "{e}"
        );
        let e = err("", &[("SENTIRIC_SIP_LISTEN", "127.0.0.1")]);
        assert!(
            e.starts_with("SENTIRIC_SIP_LISTEN in the environment"),
            "{e}"
        );
        assert!(e.contains("IP:PORT expected"), "{e}");
        let e = err(
            "[rtp]\nmin_port = 30000\n",
            &[("SENTIRIC_RTP_MAX_PORT", "20000")],
        );
        assert!(
            e.ends_with(
                "(rtp.min_port: line 2, column 1; rtp.max_port: SENTIRIC_RTP_MAX_PORT in the environment)"
            ),
            "{e}"
        );
        let e = err("", &[("SENTIRIC_RTP_MIN_PORT", "40000")]);
        assert!(
            e.ends_with("(SENTIRIC_RTP_MIN_PORT in the environment)"),
            "{e}"
        );
        // A bad file is blamed even with good variables beside it.
        let e = err(
            "[rtp]\nmin_port = \"x\"\n",
            &[("SENTIRIC_SIP_WORKERS", "2")],
        );
        assert!(
            e.starts_with("rtp.min_port: invalid type") && e.contains("line 2"),
            "{e}"
        );
        // A section misspelt in a variable's name.
        let e = err("", &[("SENTIRIC_SIPP_LISTEN", "127.0.0.1:5060")]);
        assert!(e.contains("did you mean SENTIRIC_SIP_LISTEN?"), "{e}");
        let e = err("", &[("SENTIRIC_EVENT_BROKER", "amqp://h")]);
        assert!(e.contains("did you mean SENTIRIC_EVENTS_BROKER?"), "{e}");
        // Variables that are no settings are left alone.
        Config::parse_with_env(
            "",
            env(&[
                ("SENTIRIC_TEST_AMQP", "x"),
                ("SENTIRIC_REQUIRE_SIPP", "1"),
                ("SENTIRIC_DEMO_CHECK", "0"),
            ]),
        )
        .unwrap();
        // A listener's address this host does not have (TEST-NET-1).
        let e = err("[sip]\nlisten = \"192.0.2.1:5060\"\n", &[]);
        assert!(
            e.starts_with("sip.listen: 192.0.2.1:5060: 192.0.2.1 is not an address of this host"),
            "{e}"
        );
        assert!(e.ends_with("(line 2, column 1)"), "{e}");
        // An array of tables: the rule's own line.
        let e = err(
            "[[dialplan.rule]]\naction = \"echo\"\n[[dialplan.rule]]\naction = \"echo\"\nroom = \"x\"\n",
            &[],
        );
        assert!(
            e.starts_with("dialplan.rule[1].room") && e.ends_with("(line 5, column 1)"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_are_taken_from_the_files_directory() {
        let mut c = Config::parse(
            "[events]\noutbox = \"out\"\n[plugins]\ndir = \"plugins\"\n\
             [plugins.sidecars.a]\naddress = \"127.0.0.1:7443\"\ncerts = \"certs\"\n\
             command = [\"bin/a-sidecar\", \"--certs\", \"certs\"]\n\
             [plugins.sidecars.b]\naddress = \"127.0.0.1:7444\"\nca = \"/etc/ca.pem\"\n\
             cert = \"b.pem\"\nkey = \"b-key.pem\"\ncommand = [\"python3\", \"b.py\"]\n",
        )
        .unwrap()
        .config;
        let base = std::path::Path::new("/srv/sentiric");
        c.resolve_paths(base, |k| k == "SENTIRIC_EVENTS_OUTBOX");
        assert_eq!(
            c.events.outbox,
            std::path::Path::new("out"),
            "set by the environment"
        );
        assert_eq!(
            c.plugins.dir.as_deref(),
            Some(base.join("plugins").as_path())
        );
        let (a, b) = (&c.plugins.sidecars["a"], &c.plugins.sidecars["b"]);
        assert_eq!(a.certs.as_deref(), Some(base.join("certs").as_path()));
        assert_eq!(b.ca.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        assert_eq!(b.cert.as_deref(), Some(base.join("b.pem").as_path()));
        assert_eq!(b.key.as_deref(), Some(base.join("b-key.pem").as_path()));
        // A program by a relative path from there; one by name from PATH;
        // both run there, so that their arguments' paths mean the same.
        let command = |s: &crate::plugins::SidecarConfig| s.command.clone().unwrap();
        assert_eq!(
            command(a),
            ["/srv/sentiric/bin/a-sidecar", "--certs", "certs"]
        );
        assert_eq!(command(b), ["python3", "b.py"]);
        assert_eq!(a.workdir.as_deref(), Some(base));
        assert_eq!(b.workdir.as_deref(), Some(base));
    }
}
