//! Plugins: every library in `[plugins] dir` loaded at start-up through
//! the plugin SDK's host ([`sentiric_plugin_sdk::host`]), sidecars
//! reached over mTLS ([`sentiric_plugin_sdk::sidecar`]), and the host
//! that routes calls through a dialplan and connects them to agents,
//! either kind in process or as a sidecar.
//!
//! ```toml
//! [plugins]
//! dir = "/usr/lib/sentiric/plugins"   # every *.so here is loaded
//! dialplan = "sentiric-plugin-prefix-dialplan"   # route through it
//! on_failure = "fallback"    # its error: the [dialplan] rules decide;
//!                            # "reject": 503
//! deadline_ms = 50           # in process: longer is counted and logged;
//!                            # a sidecar: no answer by then is a failure
//! breaker_failures = 5       # failures in a row that open its circuit
//! breaker_cooldown_ms = 5000 # open this long, then one call tries it
//! agent_max_calls = 10000    # calls one agent holds at once, at most
//! route_headers = ["P-Asserted-Identity", "Diversion", "User-Agent"]
//!                            # the INVITE's headers a dialplan is given
//!
//! [plugins.vad]              # an agent call's voice-activity detector
//! threshold = 0.5            # score from which a 16 ms chunk is voiced
//! min_speech_ms = 300        # voiced this long: speech started (barge-in:
//!                            # the agent's audio stops; shorter, e.g. a
//!                            # backchannel, only ducks it while it lasts)
//! hangover_ms = 400          # unvoiced this long: speech stopped
//! silence_rms = 30           # quieter chunks are unvoiced at once (the
//!                            # model lags ~80 ms); 0: the model alone
//!
//! [plugins.apps]             # built-in apps an agent serves instead
//! echo = "sentiric-plugin-echo-agent"
//!
//! [plugins.policy.support-bot]   # one plugin's own on_failure
//! on_failure = "reject"
//!
//! [plugins.config]           # each plugin's configuration, by name
//! sentiric-plugin-prefix-dialplan = '''
//! [[route]]
//! prefix = "+49"
//! targets = ["sip:de@10.0.0.5"]
//! '''
//!
//! [plugins.sidecars.routing]  # `dialplan = "routing"` asks this one
//! address = "10.0.0.9:7443"
//! server_name = "localhost"   # the name its certificate carries
//! certs = "/etc/sentiric/certs"   # ca.pem, switch.pem, switch-key.pem
//! max_in_flight = 256         # calls waiting on it at once, at most
//! command = ["/usr/bin/sentiric-prefix-dialplan-sidecar", "--listen",
//!            "10.0.0.9:7443", "--certs", "/etc/sentiric/certs"]
//!                             # optional: the switch runs it (supervise)
//! ```
//!
//! A library that is not a plugin, speaks another ABI version or fails
//! its init is refused with an error in the log and the switch starts
//! without it; a `dialplan` that did not load stops the start. Per call:
//! a decision the switch cannot carry out (see
//! [`sentiric_plugin_sdk::check_decision`]) or a plugin error takes the
//! `on_failure` path; a panic (caught in the plugin) fails that call with
//! 500. An in-process plugin runs on the worker's thread and cannot be
//! preempted: one slower than its deadline is counted
//! (`sentiric_plugin_timeouts_total`) and logged, and its decision used.
//!
//! A sidecar is asked from a runtime of the host's own: the worker goes
//! on with other calls, and the answer (or the deadline's failure) comes
//! back to it through its inbox ([`Inbound::Routed`]); the call waits in
//! the engine's routing state meanwhile (a CANCEL ends it as usual). The
//! connection is opened at start-up and, once lost, again by a task of
//! its own, never by a call; while there is none, calls fail at once.
//! Beyond `max_in_flight` calls waiting (`sentiric_plugin_in_flight`), a
//! call takes the `on_failure` path without asking (counted as `busy`).
//!
//! An `agent` answer names a sidecar in `[plugins.sidecars]` that serves
//! `Agent.Converse`, or a library loaded from `dir` that serves `agent`
//! (by its plugin name): [`PluginDialplan::converse`] opens the stream on
//! the sidecar's connection, or begins the conversation in the library;
//! the worker feeds it the call's audio and carries out what comes back
//! ([`Conversing`]). An in-process agent is told each input on the
//! worker's thread and answers at once; each input is a call into the
//! plugin in its metrics, and one slower than a frame (20 ms) a timeout.
//! Its error or panic ends that call's conversation (and the call), no
//! other.
//!
//! Failures and panics in a row open the plugin's circuit ([`Breaker`]):
//! for a cooldown calls take the `on_failure` path without it (counted
//! as `skipped`, `sentiric_plugin_circuit_open` says so), then one call
//! tries it again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentiric_engine::b2bua::CallRef;
use sentiric_engine::dialplan::{
    Action, AfterPlay, Bridge, Dialplan, Fork, RouteRequest, StaticDialplan,
};
use sentiric_plugin_sdk::host::{CallError, Library, LibraryConversation};
use sentiric_plugin_sdk::sidecar::tonic::transport::Channel;
use sentiric_plugin_sdk::sidecar::{self, DialplanClient, SidecarError, Tls};
use sentiric_plugin_sdk::v1;
use serde::Deserialize;

use crate::inbox::{Inbound, Inbox};

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginsConfig {
    /// Where the plugin libraries are; unset: none.
    #[serde(default)]
    pub(crate) dir: Option<PathBuf>,
    /// The plugin calls are routed through; unset: the `[dialplan]` rules.
    #[serde(default)]
    pub(crate) dialplan: Option<String>,
    /// `fallback` (the `[dialplan]` rules) or `reject` (503) when the
    /// dialplan plugin fails.
    #[serde(default = "default_on_failure")]
    pub(crate) on_failure: String,
    /// A dialplan call longer than this is counted and logged.
    #[serde(default = "default_deadline_ms")]
    pub(crate) deadline_ms: u64,
    /// This many failures in a row open the plugin's circuit: calls take
    /// the `on_failure` path without asking it.
    #[serde(default = "default_breaker_failures")]
    pub(crate) breaker_failures: u32,
    /// How long an open circuit stays open before one call tries the
    /// plugin again.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub(crate) breaker_cooldown_ms: u64,
    /// Each plugin's configuration text, by its name.
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,
    /// Plugins served as gRPC sidecars, by the name `dialplan` gives.
    #[serde(default)]
    pub(crate) sidecars: BTreeMap<String, SidecarConfig>,
    /// The built-in apps (`echo`, `play`, `conference`) an agent plugin
    /// serves instead, by app: the agent's name.
    #[serde(default)]
    pub(crate) apps: BTreeMap<String, String>,
    /// Calls one agent holds at once, at most; beyond, a call routed to
    /// it takes the `on_failure` path.
    #[serde(default = "default_agent_max_calls")]
    pub(crate) agent_max_calls: usize,
    /// The INVITE's headers a dialplan plugin is given, when present
    /// (read at start-up).
    #[serde(default = "default_route_headers")]
    pub(crate) route_headers: Vec<String>,
    /// What differs for one plugin (a library's plugin name, a sidecar's
    /// name), by name.
    #[serde(default)]
    pub(crate) policy: BTreeMap<String, Policy>,
    /// The voice-activity detector of agent calls.
    #[serde(default)]
    pub(crate) vad: VadSettings,
}

/// `[plugins.vad]`: how an agent call's detector decides speech started
/// (and the agent's audio is cut: barge-in) and stopped.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VadSettings {
    pub(crate) threshold: f32,
    pub(crate) min_speech_ms: u32,
    pub(crate) hangover_ms: u32,
    pub(crate) silence_rms: u16,
}

impl Default for VadSettings {
    fn default() -> Self {
        let d = sentiric_media::vad::VadConfig::default();
        VadSettings {
            threshold: d.threshold,
            min_speech_ms: d.min_speech_ms,
            hangover_ms: d.hangover_ms,
            silence_rms: d.silence_rms,
        }
    }
}

impl VadSettings {
    /// As the media crate takes it.
    pub(crate) fn config(self) -> sentiric_media::vad::VadConfig {
        sentiric_media::vad::VadConfig {
            threshold: self.threshold,
            min_speech_ms: self.min_speech_ms,
            hangover_ms: self.hangover_ms,
            silence_rms: self.silence_rms,
        }
    }
}

/// `[plugins.policy.NAME]`: one plugin's own settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Policy {
    /// Its `on_failure` (`fallback` or `reject`), instead of
    /// `[plugins] on_failure`.
    #[serde(default)]
    pub(crate) on_failure: Option<String>,
}

/// `[plugins.sidecars.NAME]`: where a sidecar listens and the
/// certificates the switch reaches it with (mTLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SidecarConfig {
    /// Its address.
    pub(crate) address: SocketAddr,
    /// The name its certificate must carry.
    #[serde(default = "default_server_name")]
    pub(crate) server_name: String,
    /// A directory as `sentiric certs init` makes it: `ca.pem`,
    /// `switch.pem`, `switch-key.pem`; `ca`, `cert` and `key` name the
    /// files one by one instead (or override one of these).
    #[serde(default)]
    pub(crate) certs: Option<PathBuf>,
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
    /// Most calls waiting on it at once; beyond, a call takes the
    /// `on_failure` path without asking it.
    #[serde(default = "default_max_in_flight")]
    pub(crate) max_in_flight: usize,
    /// How long opening a connection to it may take.
    #[serde(default = "default_connect_timeout_ms")]
    pub(crate) connect_timeout_ms: u64,
    /// The sidecar's program and its arguments: the switch runs it and
    /// keeps it running ([`crate::supervise`]); unset, it runs elsewhere.
    #[serde(default)]
    pub(crate) command: Option<Vec<String>>,
    /// Where the command runs: the config file's directory (so that its
    /// relative paths mean what they mean in the file); unset, the
    /// switch's own.
    #[serde(skip)]
    pub(crate) workdir: Option<PathBuf>,
}

fn default_server_name() -> String {
    "localhost".into()
}

fn default_max_in_flight() -> usize {
    256
}

fn default_connect_timeout_ms() -> u64 {
    1000
}

impl SidecarConfig {
    /// The CA, the switch's certificate and its key.
    fn paths(&self) -> Result<[PathBuf; 3], String> {
        let pick = |own: &Option<PathBuf>, file: &str| {
            own.clone()
                .or_else(|| self.certs.as_ref().map(|d| d.join(file)))
        };
        match (
            pick(&self.ca, "ca.pem"),
            pick(&self.cert, "switch.pem"),
            pick(&self.key, "switch-key.pem"),
        ) {
            (Some(ca), Some(cert), Some(key)) => Ok([ca, cert, key]),
            _ => Err("certs (a directory), or ca, cert and key".into()),
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            dialplan: None,
            on_failure: default_on_failure(),
            deadline_ms: default_deadline_ms(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown_ms: default_breaker_cooldown_ms(),
            config: BTreeMap::new(),
            sidecars: BTreeMap::new(),
            apps: BTreeMap::new(),
            agent_max_calls: default_agent_max_calls(),
            route_headers: default_route_headers(),
            policy: BTreeMap::new(),
            vad: VadSettings::default(),
        }
    }
}

fn default_route_headers() -> Vec<String> {
    ["P-Asserted-Identity", "Diversion", "User-Agent"]
        .map(String::from)
        .to_vec()
}

fn default_agent_max_calls() -> usize {
    10_000
}

fn default_on_failure() -> String {
    "fallback".into()
}

fn default_deadline_ms() -> u64 {
    50
}

fn default_breaker_failures() -> u32 {
    5
}

fn default_breaker_cooldown_ms() -> u64 {
    5000
}

impl PluginsConfig {
    /// Whether the plugin `name` fails closed (503): its policy's
    /// `on_failure`, else `[plugins] on_failure`.
    fn rejects(&self, name: &str) -> bool {
        let own = self.policy.get(name).and_then(|p| p.on_failure.as_ref());
        own.unwrap_or(&self.on_failure) == "reject"
    }

    /// What is wrong with it, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        let on_failure = self.policy.iter().filter_map(|(name, p)| {
            p.on_failure
                .as_ref()
                .map(|f| (format!("plugins.policy.{name}.on_failure"), f))
        });
        for (key, value) in
            std::iter::once(("plugins.on_failure".to_string(), &self.on_failure)).chain(on_failure)
        {
            if !matches!(value.as_str(), "fallback" | "reject") {
                return Err(format!("{key}: {value:?}: fallback or reject"));
            }
        }
        if !(1..=10_000).contains(&self.deadline_ms) {
            return Err(format!(
                "plugins.deadline_ms: {}: 1 to 10000",
                self.deadline_ms
            ));
        }
        if self.breaker_failures == 0 || !(1..=3_600_000).contains(&self.breaker_cooldown_ms) {
            return Err(
                "plugins.breaker_failures: at least 1; plugins.breaker_cooldown_ms: 1 to 3600000"
                    .into(),
            );
        }
        for (name, s) in &self.sidecars {
            s.paths()
                .map_err(|e| format!("plugins.sidecars.{name}: {e}"))?;
            if s.command
                .as_ref()
                .is_some_and(|c| c.is_empty() || c[0].is_empty())
            {
                return Err(format!(
                    "plugins.sidecars.{name}.command: a program, then its arguments"
                ));
            }
            if s.max_in_flight == 0 || !(1..=60_000).contains(&s.connect_timeout_ms) {
                return Err(format!(
                    "plugins.sidecars.{name}: max_in_flight at least 1, \
                     connect_timeout_ms 1 to 60000"
                ));
            }
        }
        if self.agent_max_calls == 0 {
            return Err("plugins.agent_max_calls: at least 1".into());
        }
        let v = self.vad;
        let vad_ok = v.threshold > 0.0
            && v.threshold < 1.0
            && (20..=5_000).contains(&v.min_speech_ms)
            && (20..=10_000).contains(&v.hangover_ms);
        if !vad_ok {
            return Err(
                "plugins.vad: threshold between 0 and 1, min_speech_ms 20 to 5000, \
                        hangover_ms 20 to 10000"
                    .into(),
            );
        }
        if let Some(h) = self.route_headers.iter().find(|h| {
            h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        }) {
            return Err(format!("plugins.route_headers: {h:?} is not a header name"));
        }
        if let Some(app) = self.apps.keys().find(|a| !APPS.contains(&a.as_str())) {
            return Err(format!(
                "plugins.apps.{app}: not a built-in app: {}",
                APPS.join(", ")
            ));
        }
        if let Some(d) = &self.dialplan {
            if self.dir.is_none() && !self.sidecars.contains_key(d) {
                return Err(format!(
                    "plugins.dialplan: {d:?} needs plugins.dir, or plugins.sidecars.{d}"
                ));
            }
        }
        Ok(())
    }
}

/// A plugin library loaded and made.
pub(crate) struct Loaded {
    /// What it says of itself.
    pub(crate) info: v1::PluginInfo,
    pub(crate) lib: Arc<Library>,
}

/// Loads every `*.so` in `cfg.dir` (in name order) and makes each plugin
/// from its configuration; what failed is logged and left out.
pub(crate) fn load(cfg: &PluginsConfig) -> Vec<Loaded> {
    let Some(dir) = &cfg.dir else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect(),
        Err(e) => {
            tracing::error!("plugins.dir {}: {e}; no plugins loaded", dir.display());
            return Vec::new();
        }
    };
    paths.sort();
    paths.iter().filter_map(|p| load_one(cfg, p)).collect()
}

fn load_one(cfg: &PluginsConfig, path: &Path) -> Option<Loaded> {
    let lib = match Library::open(path) {
        Ok(lib) => lib,
        Err(e) => {
            tracing::error!("plugin refused: {e}");
            return None;
        }
    };
    let made = lib.info().and_then(|info| {
        let config = cfg.config.get(&info.name).map_or("", String::as_str);
        lib.init(config)
    });
    match made {
        Ok(info) => {
            let build = lib.build_id().unwrap_or("none");
            tracing::info!(
                plugin = %info.name,
                version = %info.version,
                path = %path.display(),
                build_id = build,
                "plugin {} {} loaded from {} (build id {build}): {}",
                info.name,
                info.version,
                path.display(),
                info.services.join(", ")
            );
            Some(Loaded {
                info,
                lib: Arc::new(lib),
            })
        }
        Err(e) => {
            tracing::error!("plugin {}: {e}; not loaded", path.display());
            None
        }
    }
}

/// A plugin's circuit breaker, shared by the workers: `failures` in a
/// row open it; open, calls do not reach the plugin for `cooldown`; then
/// one call tries it (half open): its success closes the circuit, its
/// failure opens it again. Times are milliseconds on the caller's clock.
#[derive(Debug)]
pub(crate) struct Breaker {
    failures: u32,
    cooldown_ms: u64,
    in_a_row: AtomicU32,
    /// When it may be tried again; 0: closed.
    open_until_ms: AtomicU64,
    /// The half-open call is out.
    probing: AtomicBool,
}

/// What the breaker says of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Ask the plugin.
    Call,
    /// Ask it: the one call after a cooldown.
    Probe,
    /// Do not: the circuit is open.
    Skip,
}

impl Breaker {
    pub(crate) fn new(failures: u32, cooldown_ms: u64) -> Breaker {
        Breaker {
            failures: failures.max(1),
            cooldown_ms,
            in_a_row: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// Whether a call at `now_ms` goes to the plugin.
    pub(crate) fn gate(&self, now_ms: u64) -> Gate {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            Gate::Call
        } else if now_ms < until {
            Gate::Skip
        } else if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Gate::Probe
        } else {
            Gate::Skip
        }
    }

    /// How the call `gate` let through went; `true` when this opened the
    /// circuit.
    pub(crate) fn record(&self, gate: Gate, ok: bool, now_ms: u64) -> bool {
        if ok {
            self.in_a_row.store(0, Ordering::Release);
            if gate == Gate::Probe || self.open_until_ms.load(Ordering::Acquire) != 0 {
                self.open_until_ms.store(0, Ordering::Release);
                self.probing.store(false, Ordering::Release);
            }
            return false;
        }
        let n = self.in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
        if gate == Gate::Probe || n >= self.failures {
            let was = self.open_until_ms.swap(
                now_ms.saturating_add(self.cooldown_ms).max(1),
                Ordering::AcqRel,
            );
            self.probing.store(false, Ordering::Release);
            return was == 0 || gate == Gate::Probe;
        }
        false
    }

    /// The probe `gate` let through was not made: the next call may
    /// probe.
    pub(crate) fn forget_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// The circuit is open (or half open).
    pub(crate) fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

/// How long a sidecar the switch runs (`command`) may take to listen
/// before the switch warns that it cannot connect.
const SIDECAR_START: Duration = Duration::from_secs(10);

/// The name of the built-in dialplan (the `[dialplan]` rules) as a
/// plugin: `[plugins] dialplan` unset or this.
pub(crate) const BUILTIN: &str = "static";

/// The built-in apps, by the names their metrics carry.
const APPS: [&str; 3] = ["echo", "play", "conference"];

/// The built-in app `action` answers with, as its place in [`APPS`].
fn app_of(action: &Action) -> Option<usize> {
    match action {
        Action::Echo => Some(0),
        Action::Play { .. } => Some(1),
        Action::Conference { .. } => Some(2),
        _ => None,
    }
}

/// Calls routed through a dialplan: the built-in `[dialplan]` rules, a
/// library in process or a sidecar, each behind the same host (metrics,
/// deadline, breaker, `on_failure`).
pub(crate) struct PluginDialplan {
    /// This host among those made since start-up (one more each reload).
    id: u64,
    name: String,
    backend: Backend,
    /// The `[dialplan]` rules: the built-in dialplan, and every plugin's
    /// fallback.
    rules: StaticDialplan,
    /// Every `[plugins.sidecars]` entry, by name (the dialplan's, agents).
    sidecars: BTreeMap<String, Arc<Sidecar>>,
    /// Every library serving `agent`, by its plugin name.
    agents: BTreeMap<String, Arc<LocalAgent>>,
    /// Every agent's admission (sidecars and libraries), by name.
    gates: BTreeMap<String, Arc<AgentGate>>,
    /// Who serves each built-in app ([`APPS`]' order): the switch's own
    /// data plane (counted here), or an agent plugin.
    apps: [(Option<String>, metrics::Counter); 3],
    reject_on_failure: bool,
    deadline: Duration,
    breaker: Breaker,
    /// The breaker's clock.
    epoch: Instant,
    ok: metrics::Counter,
    /// Calls it declined (the rules decided them).
    declined: metrics::Counter,
    skipped: metrics::Counter,
    busy: metrics::Counter,
    circuit_open: metrics::Gauge,
    errors: metrics::Counter,
    panics: metrics::Counter,
    timeouts: metrics::Counter,
    latency: metrics::Histogram,
}

/// Where the dialplan runs.
enum Backend {
    /// The `[dialplan]` rules, compiled into the switch.
    Builtin,
    /// A library in the switch, called on the worker's thread.
    Library(Arc<Library>),
    /// A sidecar, asked from the host's own runtime; the answer reaches
    /// the worker through its inbox.
    Sidecar(Arc<Sidecar>),
}

/// A sidecar's connection (a dialplan's or an agent's) and what bounds
/// the dialplan calls waiting on it.
struct Sidecar {
    link: Arc<Link>,
    /// Its connections and calls (a thread of its own); taken when it is
    /// dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Calls waiting on it, and the most there may be.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    /// `sentiric_plugin_in_flight`: the calls waiting on it.
    waiting: metrics::Gauge,
    /// Sends the wake datagrams of answers posted to the workers.
    waker: Arc<std::net::UdpSocket>,
    /// The process, when the switch runs it.
    supervised: Option<crate::supervise::Supervised>,
}

/// The connection to a sidecar, kept open by a task of its own: opened
/// at start-up and again whenever a call finds it lost, so that no call
/// waits for a TCP and TLS handshake (while there is none, calls fail at
/// once and take the `on_failure` path).
struct Link {
    /// The connection, and how many were made before it.
    client: std::sync::Mutex<(u64, Option<Channel>)>,
    lost: tokio::sync::Notify,
    /// A sidecar the switch (re)started: until then, failing to connect
    /// is its start, not an outage worth a warning.
    quiet_until: std::sync::Mutex<Option<Instant>>,
}

impl Link {
    /// The sidecar the switch runs is starting: [`SIDECAR_START`] before
    /// not reaching it is warned of.
    fn starting(&self) {
        *self.quiet_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + SIDECAR_START);
    }

    /// The client and its generation, if connected.
    fn get(&self) -> Option<(u64, Channel)> {
        let guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.clone().map(|c| (guard.0, c))
    }

    /// The connection of generation `generation` is lost: the keeper
    /// opens another.
    fn lose(&self, generation: u64) {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 == generation && guard.1.take().is_some() {
            self.lost.notify_one();
        }
    }

    /// Keeps the connection open: connects when there is none, retrying
    /// with a backoff up to a second.
    async fn keep(self: Arc<Link>, name: String, cfg: SidecarConfig, tls: Tls) {
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let mut backoff = Duration::from_millis(50);
        let mut failing = false;
        loop {
            match sidecar::channel(cfg.address, &cfg.server_name, &tls, timeout).await {
                Ok(c) => {
                    {
                        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
                        guard.0 += 1;
                        guard.1 = Some(c);
                    }
                    tracing::info!(
                        plugin = %name,
                        "sidecar {name}: connected to {}",
                        cfg.address
                    );
                    (backoff, failing) = (Duration::from_millis(50), false);
                    self.lost.notified().await;
                    tracing::warn!(
                        plugin = %name,
                        "sidecar {name}: connection to {} lost; reconnecting",
                        cfg.address
                    );
                }
                Err(e) => {
                    // Once an outage, not every retry; not while a
                    // sidecar the switch started is still starting.
                    let starting = self
                        .quiet_until
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some_and(|q| Instant::now() < q);
                    if starting {
                        tracing::debug!(plugin = %name, "sidecar {name}: not listening yet: {e}");
                    } else if !failing {
                        tracing::warn!(
                            plugin = %name,
                            "sidecar {name}: cannot connect to {}: {e}; retrying",
                            cfg.address
                        );
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// What the dialplan decided for a call: the action, the rule that chose
/// it, and the tags for the call's CDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) action: Action,
    pub(crate) rule: String,
    pub(crate) tags: std::collections::HashMap<String, String>,
    /// An agent's parameters for this call (the action connects one).
    pub(crate) params: std::collections::HashMap<String, String>,
}

impl Decision {
    /// `action` chosen by `rule`, without tags.
    pub(crate) fn new(action: Action, rule: String) -> Decision {
        Decision {
            action,
            rule,
            tags: Default::default(),
            params: Default::default(),
        }
    }
}

/// How routing a call began.
// Returned once per call and matched at once: boxing the decision would
// cost every call an allocation to save a move of 200 bytes.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Begun {
    /// Decided already (in process, or the circuit is open, or the
    /// sidecar has too many calls waiting).
    Decided(Decision),
    /// A sidecar was asked: its [`Reply`] comes to the worker's inbox.
    Asked,
}

/// A sidecar's answer for a call, for the worker that asked.
pub(crate) struct Reply {
    pub(crate) call: CallRef,
    /// The host that asked ([`PluginDialplan::id`]): after a reload its
    /// breaker is not the one that let the call through.
    host: u64,
    call_id: String,
    trace_id: String,
    gate: Gate,
    t0: Instant,
    result: Result<v1::RouteDecision, SidecarError>,
}

/// A plugin's answer for a call, checked.
enum Settled {
    /// Its decision, to carry out.
    Routed(Decision),
    /// Not its call: the `[dialplan]` rules decide it, with its tags.
    Declined {
        reason: String,
        rule: String,
        tags: std::collections::HashMap<String, String>,
    },
}

/// Why a plugin gave no decision to carry out.
struct Failure {
    /// It panicked (in process): the call fails with 500.
    panicked: bool,
    /// It gave none within its deadline (a sidecar).
    timed_out: bool,
    why: String,
}

impl PluginDialplan {
    /// The dialplan `cfg` names: a sidecar among `cfg.sidecars`, a
    /// library among `loaded`, or the built-in `rules` (unset or
    /// [`BUILTIN`]); an error when it names one that did not load as a
    /// dialplan.
    pub(crate) fn from(
        cfg: &PluginsConfig,
        loaded: &[Loaded],
        rules: StaticDialplan,
    ) -> Result<PluginDialplan, String> {
        let name = cfg.dialplan.as_deref().unwrap_or(BUILTIN);
        // Every sidecar: the dialplan may be one, agents are.
        let sidecars = cfg
            .sidecars
            .iter()
            .map(|(n, s)| Ok((n.clone(), Arc::new(Sidecar::new(n, s)?))))
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        let backend = match sidecars.get(name) {
            _ if name == BUILTIN => Backend::Builtin,
            Some(s) => Backend::Sidecar(Arc::clone(s)),
            None => {
                let l = loaded
                    .iter()
                    .find(|l| {
                        l.info.name == name && l.info.services.iter().any(|s| s == "dialplan")
                    })
                    .ok_or_else(|| {
                        format!(
                            "plugins.dialplan: {name:?} is not a dialplan plugin loaded from \
                             plugins.dir, nor a sidecar in plugins.sidecars"
                        )
                    })?;
                Backend::Library(Arc::clone(&l.lib))
            }
        };
        let agents: BTreeMap<String, Arc<LocalAgent>> = loaded
            .iter()
            .filter(|l| l.info.services.iter().any(|s| s == "agent"))
            .map(|l| (l.info.name.clone(), Arc::new(LocalAgent::new(l))))
            .collect();
        // Every agent named is one: a sidecar or a library serving it.
        let named = cfg
            .apps
            .iter()
            .map(|(app, a)| (format!("plugins.apps.{app}"), a.as_str()))
            .chain(rules.agents().into_iter().map(|a| ("dialplan".into(), a)));
        for (key, agent) in named {
            if !sidecars.contains_key(agent) && !agents.contains_key(agent) {
                return Err(format!(
                    "{key}: agent {agent:?} is not a sidecar in plugins.sidecars, nor a \
                     library in plugins.dir serving agent"
                ));
            }
        }
        for name in cfg.policy.keys() {
            let known = name == BUILTIN
                || sidecars.contains_key(name)
                || loaded.iter().any(|l| &l.info.name == name);
            if !known {
                tracing::warn!("plugins.policy.{name}: no such plugin loaded or sidecar; unused");
            }
        }
        let gates = sidecars
            .keys()
            .chain(agents.keys())
            .map(|n| (n.clone(), Arc::new(AgentGate::new(n, cfg))))
            .collect();
        let apps = APPS.map(|app| {
            (
                cfg.apps.get(app).cloned(),
                metrics::counter!("sentiric_plugin_calls_total", "plugin" => app, "result" => "ok"),
            )
        });
        let name = name.to_string();
        let label = |result: &'static str| metrics::counter!("sentiric_plugin_calls_total", "plugin" => name.clone(), "result" => result);
        static HOSTS: AtomicU64 = AtomicU64::new(0);
        Ok(PluginDialplan {
            id: HOSTS.fetch_add(1, Ordering::Relaxed),
            name: name.clone(),
            backend,
            sidecars,
            agents,
            gates,
            apps,
            rules,
            reject_on_failure: cfg.rejects(&name),
            deadline: Duration::from_millis(cfg.deadline_ms),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown_ms),
            epoch: Instant::now(),
            ok: label("ok"),
            declined: label("declined"),
            skipped: label("skipped"),
            busy: label("busy"),
            circuit_open: metrics::gauge!("sentiric_plugin_circuit_open", "plugin" => name.clone()),
            errors: label("error"),
            panics: label("panic"),
            timeouts: metrics::counter!("sentiric_plugin_timeouts_total", "plugin" => name.clone()),
            latency: metrics::histogram!("sentiric_plugin_call_seconds", "plugin" => name.clone()),
        })
    }

    /// Stops the sidecars the switch runs (at its exit).
    pub(crate) fn stop_sidecars(&self) {
        for s in self.sidecars.values() {
            if let Some(p) = &s.supervised {
                p.stop();
            }
        }
    }

    /// The `[dialplan]` rules it falls back on.
    pub(crate) fn rules(&self) -> &StaticDialplan {
        &self.rules
    }

    /// Its name (`static` for the built-in rules).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Begins routing the call `request` describes (`ids`: its Call-ID,
    /// trace id and To URI): the built-in rules and a library decide at
    /// once; a sidecar is asked, and its answer is posted to `worker`'s
    /// inbox for [`finish`](Self::finish). The `[dialplan]` rules decide
    /// at once when the plugin is not asked and `on_failure` says so.
    pub(crate) fn begin(
        &self,
        call: CallRef,
        request: &RouteRequest<'_>,
        ids: [&str; 3],
        worker: &Inbox,
    ) -> Begun {
        match self.ask(call, request, ids, worker) {
            Begun::Decided(d) => Begun::Decided(self.served(d, request, ids[0], ids[1])),
            Begun::Asked => Begun::Asked,
        }
    }

    /// [`begin`](Self::begin), before the apps are given their servers.
    fn ask(
        &self,
        call: CallRef,
        request: &RouteRequest<'_>,
        ids: [&str; 3],
        worker: &Inbox,
    ) -> Begun {
        let fallback = || self.by_rules(request);
        let [call_id, trace_id, to_uri] = ids;
        if let Backend::Builtin = self.backend {
            // Cannot fail: counted, no breaker.
            let t0 = Instant::now();
            let decision = self.by_rules(request);
            self.latency.record(t0.elapsed().as_secs_f64());
            self.ok.increment(1);
            return Begun::Decided(decision);
        }
        let t0 = Instant::now();
        let gate = self.breaker.gate(self.millis(t0));
        if gate == Gate::Skip {
            self.skipped.increment(1);
            return Begun::Decided(self.failed(call_id, trace_id, "circuit open".into(), fallback));
        }
        match &self.backend {
            Backend::Builtin => unreachable!("decided above"),
            Backend::Library(lib) => {
                // Encoded from the call's own strings, into a buffer the
                // worker keeps: no copies, one allocation less a field.
                let decided = ENCODED.with_borrow_mut(|(buf, source)| {
                    buf.clear();
                    source.clear();
                    let _ = write!(source, "{}", request.source);
                    sentiric_plugin_sdk::RouteRequestRef {
                        call_id,
                        trace_id,
                        from_uri: request.from_uri,
                        to_uri,
                        request_uri: request.request_uri,
                        user: request.user.unwrap_or_default(),
                        from_user: request.from_user.unwrap_or_default(),
                        headers: request.headers,
                        source,
                        transport: request.transport.as_str(),
                        time_unix_us: unix_us(),
                    }
                    .encode(buf);
                    lib.route_encoded(buf)
                });
                let decided = decided.map_err(|e| Failure {
                    panicked: matches!(e, CallError::Panicked(_)),
                    timed_out: false,
                    why: e.to_string(),
                });
                Begun::Decided(self.settle(call_id, trace_id, gate, t0, decided, fallback))
            }
            Backend::Sidecar(s) => {
                if s.in_flight.fetch_add(1, Ordering::AcqRel) >= s.max_in_flight {
                    s.in_flight.fetch_sub(1, Ordering::AcqRel);
                    // Not the plugin's failure: the breaker is not told,
                    // and a probe it let through is let go.
                    if gate == Gate::Probe {
                        self.breaker.forget_probe();
                    }
                    self.busy.increment(1);
                    let why = format!("{} calls waiting on it", s.max_in_flight);
                    return Begun::Decided(self.failed(call_id, trace_id, why, fallback));
                }
                let Some((generation, channel)) = s.link.get() else {
                    s.in_flight.fetch_sub(1, Ordering::AcqRel);
                    let failed = Err(Failure {
                        panicked: false,
                        timed_out: false,
                        why: "not connected".into(),
                    });
                    let decision = self.settle(call_id, trace_id, gate, t0, failed, fallback);
                    return Begun::Decided(decision);
                };
                let (in_flight, waker, worker, link, waiting) = (
                    Arc::clone(&s.in_flight),
                    Arc::clone(&s.waker),
                    worker.clone(),
                    Arc::clone(&s.link),
                    s.waiting.clone(),
                );
                waiting.increment(1.0);
                let mut client = DialplanClient::from_channel(channel);
                let (deadline, host) = (self.deadline, self.id);
                let request = self::request(request, call_id, trace_id, to_uri);
                s.runtime().spawn(async move {
                    let (call_id, trace_id) = (request.call_id.clone(), request.trace_id.clone());
                    let result = client.route(request, deadline).await;
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    waiting.decrement(1.0);
                    if result.as_ref().is_err_and(SidecarError::is_unreachable) {
                        link.lose(generation);
                    }
                    let reply = Reply {
                        call,
                        host,
                        call_id,
                        trace_id,
                        gate,
                        t0,
                        result,
                    };
                    worker.post(&waker, Inbound::Routed(Box::new(reply)));
                });
                Begun::Asked
            }
        }
    }

    /// The decision for a sidecar's `reply` on the call `request`
    /// describes; the `[dialplan]` rules decide when it failed and
    /// `on_failure` says so.
    pub(crate) fn finish(&self, reply: Reply, request: &RouteRequest<'_>) -> Decision {
        let fallback = || self.by_rules(request);
        let gate = if reply.host == self.id {
            reply.gate
        } else {
            Gate::Call
        };
        let decided = reply.result.map_err(|e| Failure {
            panicked: false,
            timed_out: matches!(e, SidecarError::Timeout(_)),
            why: e.to_string(),
        });
        let decision = self.settle(
            &reply.call_id,
            &reply.trace_id,
            gate,
            reply.t0,
            decided,
            fallback,
        );
        self.served(decision, request, &reply.call_id, &reply.trace_id)
    }

    /// `decision` for the call `request` describes, its built-in app
    /// handed to the agent plugin `[plugins.apps]` names for it, if any
    /// (the app's argument, the prompt or the room, becomes a parameter of
    /// the agent's; a play that goes on into the dialplan afterwards stays
    /// built in: an agent does not hand calls back), and a call to an
    /// agent admitted by it ([`AgentGate::admit`]; a sidecar must be
    /// connected). A call the agent cannot take takes the `on_failure`
    /// path: 503, or the `[dialplan]` rules, whose built-in apps the
    /// switch serves itself (a rule naming an agent again: 503). A
    /// built-in app serving a call is counted.
    fn served(
        &self,
        decision: Decision,
        request: &RouteRequest<'_>,
        call_id: &str,
        trace_id: &str,
    ) -> Decision {
        let decision = self.apps_served(decision);
        let Action::Agent { agent, .. } = &decision.action else {
            return decision;
        };
        let admitted = match self.gates.get(agent) {
            None => Err("no such agent".to_string()),
            Some(g) => g.admit().and_then(|()| match self.sidecars.get(agent) {
                Some(s) if s.link.get().is_none() => {
                    g.record(false);
                    Err("not connected".into())
                }
                _ => Ok(()),
            }),
        };
        let Err(why) = admitted else {
            return decision;
        };
        let reject = self.gates.get(agent).is_none_or(|g| g.reject_on_failure);
        let fallback = (!reject)
            .then(|| self.rules.route(request))
            .filter(|a| !matches!(a, Action::Agent { .. }));
        let (path, action, rule) = match fallback {
            Some(action) => (
                "the [dialplan] rules decide",
                action,
                format!("agent {agent} unavailable: fallback"),
            ),
            None => (
                "503",
                Action::Reject {
                    code: 503,
                    reason: "Service Unavailable".into(),
                },
                format!("agent {agent} unavailable"),
            ),
        };
        tracing::warn!(plugin = %agent, call_id = %call_id, trace_id = %trace_id, "agent {agent}: {why}; {path}");
        // The rules' app, served built in.
        if let Some(app) = app_of(&action) {
            self.apps[app].1.increment(1);
        }
        Decision::new(action, rule)
    }

    /// `decision`, its built-in app handed to the agent `[plugins.apps]`
    /// names for it, if any (see [`served`](Self::served)).
    fn apps_served(&self, mut decision: Decision) -> Decision {
        let Some(app) = app_of(&decision.action) else {
            return decision;
        };
        let (agent, builtin) = &self.apps[app];
        let continues = matches!(
            &decision.action,
            Action::Play {
                then: AfterPlay::Continue(_),
                ..
            }
        );
        let Some(agent) = agent.as_ref().filter(|_| !continues) else {
            builtin.increment(1);
            return decision;
        };
        let param = match &decision.action {
            Action::Play { prompt, .. } => Some(("prompt", prompt.clone())),
            Action::Conference { room } => Some(("room", room.clone())),
            _ => None,
        };
        if let Some((key, value)) = param {
            decision.params.insert(key.into(), value);
        }
        decision.action = Action::Agent {
            agent: agent.clone(),
            params: Default::default(),
        };
        decision
    }

    /// Opens a conversation for `call` with the agent `agent`, starting
    /// with `start`: a sidecar's (its actions, and the stream's end, come
    /// to `worker`'s inbox) or a library's (its actions come back from
    /// each input). An error when there is no such agent, a sidecar is not
    /// connected or a library's agent refuses the call.
    pub(crate) fn converse(
        &self,
        call: CallRef,
        agent: &str,
        start: v1::ConverseStart,
        worker: &Inbox,
    ) -> Result<Conversing, String> {
        let gate = self.gates.get(agent).ok_or_else(|| {
            format!(
                "agent {agent:?}: no such sidecar in plugins.sidecars, nor an agent \
                 library in plugins.dir"
            )
        })?;
        let talk = match self.sidecars.get(agent) {
            Some(s) => Self::stream(s, call, agent, start, worker).map(Talk::Sidecar),
            None => match self.agents.get(agent) {
                Some(local) => local.converse(&start).map(Talk::InProcess),
                None => Err(format!(
                    "agent {agent:?}: a sidecar that does not serve agents"
                )),
            },
        };
        match talk {
            Ok(talk) => Ok(Conversing::new(talk, gate)),
            Err(e) => {
                gate.record(false);
                Err(e)
            }
        }
    }

    /// Opens the `Converse` stream on the sidecar `s` for `call`.
    fn stream(
        s: &Sidecar,
        call: CallRef,
        agent: &str,
        start: v1::ConverseStart,
        worker: &Inbox,
    ) -> Result<tokio::sync::mpsc::Sender<v1::CallInput>, String> {
        use sentiric_plugin_sdk::sidecar::tonic::codegen::tokio_stream::wrappers::ReceiverStream;
        let (generation, channel) = s
            .link
            .get()
            .ok_or_else(|| format!("agent {agent}: not connected"))?;
        // Five seconds of audio may wait for the agent to take it.
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let first = v1::CallInput {
            input: Some(v1::call_input::Input::Start(Box::new(start))),
        };
        tx.try_send(first).map_err(|e| e.to_string())?;
        let (waker, worker, link, name) = (
            Arc::clone(&s.waker),
            worker.clone(),
            Arc::clone(&s.link),
            agent.to_string(),
        );
        s.runtime().spawn(async move {
            let mut client = v1::agent_client::AgentClient::new(channel);
            let why = match client.converse(ReceiverStream::new(rx)).await {
                Ok(actions) => {
                    let mut actions = actions.into_inner();
                    loop {
                        match actions.message().await {
                            Ok(Some(a)) => {
                                if !worker.post(&waker, Inbound::AgentAction(call, Box::new(a))) {
                                    return;
                                }
                            }
                            Ok(None) => break format!("agent {name}: the conversation ended"),
                            Err(e) => break format!("agent {name}: {e}"),
                        }
                    }
                }
                Err(e) => {
                    if e.code() == sentiric_plugin_sdk::sidecar::tonic::Code::Unavailable {
                        link.lose(generation);
                    }
                    format!("agent {name}: {e}")
                }
            };
            worker.post(&waker, Inbound::AgentGone(call, why));
        });
        Ok(tx)
    }

    /// What the `[dialplan]` rules decide for the call `request`
    /// describes, naming the rule that matched.
    fn by_rules(&self, request: &RouteRequest<'_>) -> Decision {
        let action = self.rules.route(request);
        let rule = self.rules.matching_rule(request).unwrap_or_default();
        Decision::new(action, rule.to_string())
    }

    /// Milliseconds on the breaker's clock.
    fn millis(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts and logs how a call the breaker let through went, and makes
    /// the plugin's decision (or the `on_failure` path) the action.
    fn settle(
        &self,
        call_id: &str,
        trace_id: &str,
        gate: Gate,
        t0: Instant,
        decided: Result<v1::RouteDecision, Failure>,
        fallback: impl FnOnce() -> Decision,
    ) -> Decision {
        let took = t0.elapsed();
        // A decision the switch cannot carry out is the plugin's error; a
        // decline is an answer, its call decided by the rules.
        let decided = decided.and_then(|d| match d.action {
            Some(v1::route_decision::Action::Decline(v1::Decline { reason })) => {
                Ok(Settled::Declined {
                    reason,
                    rule: d.rule,
                    tags: d.cdr_tags,
                })
            }
            _ => decision(d).map(Settled::Routed).map_err(|why| Failure {
                panicked: false,
                timed_out: false,
                why,
            }),
        });
        let ok = decided.is_ok();
        if self.breaker.record(gate, ok, self.millis(Instant::now())) {
            tracing::error!(
                plugin = %self.name,
                "dialplan plugin {}: circuit open after {} failures in a row; \
                 calls take the on_failure path for {} ms, then one tries it again",
                self.name,
                self.breaker.failures,
                self.breaker.cooldown_ms
            );
        } else if ok && gate == Gate::Probe {
            tracing::info!(plugin = %self.name, "dialplan plugin {}: circuit closed", self.name);
        }
        self.circuit_open
            .set(if self.breaker.is_open() { 1.0 } else { 0.0 });
        self.latency.record(took.as_secs_f64());
        let timed_out = decided.as_ref().is_err_and(|f| f.timed_out);
        if took > self.deadline || timed_out {
            self.timeouts.increment(1);
            tracing::warn!(
                plugin = %self.name,
                call_id = %call_id,
                trace_id = %trace_id,
                "dialplan plugin {} took {} ms (deadline {} ms)",
                self.name,
                took.as_millis(),
                self.deadline.as_millis()
            );
        }
        let failure = match decided {
            Ok(Settled::Routed(routed)) => {
                self.ok.increment(1);
                return routed;
            }
            Ok(Settled::Declined { reason, rule, tags }) => {
                self.declined.increment(1);
                let mut decision = fallback();
                tracing::debug!(
                    plugin = %self.name,
                    call_id = %call_id,
                    trace_id = %trace_id,
                    "dialplan plugin {} declined the call (rule {rule:?}: {reason:?}); \
                     the [dialplan] rules decide: {:?}",
                    self.name,
                    decision.rule
                );
                decision.rule = match decision.rule.as_str() {
                    "" => format!("declined by {}", self.name),
                    rule => format!("{rule} (declined by {})", self.name),
                };
                decision.tags.extend(tags);
                return decision;
            }
            Err(f) => f,
        };
        if failure.panicked {
            self.panics.increment(1);
            tracing::error!(
                plugin = %self.name,
                call_id = %call_id,
                trace_id = %trace_id,
                "dialplan plugin {}: {}; the call fails with 500",
                self.name,
                failure.why
            );
            return Decision::new(
                Action::Reject {
                    code: 500,
                    reason: "Plugin Failure".into(),
                },
                format!("plugin {} panicked", self.name),
            );
        }
        self.errors.increment(1);
        self.failed(call_id, trace_id, failure.why, fallback)
    }

    /// The `on_failure` path, logged with why.
    fn failed(
        &self,
        call_id: &str,
        trace_id: &str,
        why: String,
        fallback: impl FnOnce() -> Decision,
    ) -> Decision {
        let (path, action, rule) = if self.reject_on_failure {
            (
                "503",
                Action::Reject {
                    code: 503,
                    reason: "Service Unavailable".into(),
                },
                format!("plugin {} failed", self.name),
            )
        } else {
            (
                "the [dialplan] rules decide",
                fallback().action,
                format!("plugin {} failed: fallback", self.name),
            )
        };
        tracing::warn!(
            plugin = %self.name,
            call_id = %call_id,
            trace_id = %trace_id,
            "dialplan plugin {}: {why}; {path}",
            self.name
        );
        Decision::new(action, rule)
    }
}

/// A library serving `agent`, and its metrics (the dialplan's names,
/// labelled with its plugin name).
struct LocalAgent {
    lib: Arc<Library>,
    name: String,
    ok: metrics::Counter,
    errors: metrics::Counter,
    panics: metrics::Counter,
    timeouts: metrics::Counter,
    latency: metrics::Histogram,
}

impl LocalAgent {
    fn new(loaded: &Loaded) -> LocalAgent {
        let name = loaded.info.name.clone();
        let label = |result: &'static str| metrics::counter!("sentiric_plugin_calls_total", "plugin" => name.clone(), "result" => result);
        LocalAgent {
            lib: Arc::clone(&loaded.lib),
            ok: label("ok"),
            errors: label("error"),
            panics: label("panic"),
            timeouts: metrics::counter!("sentiric_plugin_timeouts_total", "plugin" => name.clone()),
            latency: metrics::histogram!("sentiric_plugin_call_seconds", "plugin" => name.clone()),
            name,
        }
    }

    /// Counts one call into the plugin that took `took`.
    fn count<T>(&self, took: Duration, result: &Result<T, CallError>) {
        self.latency.record(took.as_secs_f64());
        if took > FRAME {
            self.timeouts.increment(1);
        }
        match result {
            Ok(_) => self.ok.increment(1),
            Err(CallError::Panicked(_)) => self.panics.increment(1),
            Err(_) => self.errors.increment(1),
        }
    }

    fn converse(self: &Arc<Self>, start: &v1::ConverseStart) -> Result<InProcess, String> {
        let t0 = Instant::now();
        let begun = self.lib.converse(start);
        self.count(t0.elapsed(), &begun);
        let conversation = begun.map_err(|e| format!("agent {}: {e}", self.name))?;
        Ok(InProcess {
            agent: Arc::clone(self),
            conversation,
            slow: false,
        })
    }
}

/// The time of one frame of an agent's audio: an in-process agent slower
/// than this on one input falls behind the call.
const FRAME: Duration = Duration::from_millis(20);

/// What the host keeps of one agent (a sidecar or a library): its
/// circuit breaker, the calls it holds and their bound, and its
/// conversation metrics. A call routed to it is admitted here
/// ([`PluginDialplan::begin`]); a conversation counts among its calls
/// while it lasts, and how it ended (cleanly with its call, or broken)
/// is the breaker's record.
pub(crate) struct AgentGate {
    name: String,
    vad: sentiric_media::vad::VadConfig,
    breaker: Breaker,
    epoch: Instant,
    calls: AtomicUsize,
    max_calls: usize,
    /// A call it cannot take gets 503 (else the `[dialplan]` rules).
    reject_on_failure: bool,
    /// `sentiric_plugin_conversations_total{plugin, result}`.
    ok: metrics::Counter,
    broken: metrics::Counter,
    busy: metrics::Counter,
    skipped: metrics::Counter,
    /// `sentiric_plugin_conversations{plugin}`: held now.
    held: metrics::Gauge,
    circuit_open: metrics::Gauge,
}

impl AgentGate {
    fn new(name: &str, cfg: &PluginsConfig) -> AgentGate {
        let label = |result: &'static str| metrics::counter!("sentiric_plugin_conversations_total", "plugin" => name.to_string(), "result" => result);
        AgentGate {
            name: name.to_string(),
            vad: cfg.vad.config(),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown_ms),
            epoch: Instant::now(),
            calls: AtomicUsize::new(0),
            max_calls: cfg.agent_max_calls,
            reject_on_failure: cfg.rejects(name),
            ok: label("ok"),
            broken: label("error"),
            busy: label("busy"),
            skipped: label("skipped"),
            held: metrics::gauge!("sentiric_plugin_conversations", "plugin" => name.to_string()),
            circuit_open: metrics::gauge!("sentiric_plugin_conversations_circuit_open", "plugin" => name.to_string()),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to the agent now: not while its circuit is
    /// open (after the cooldown, calls try it again), nor beyond its
    /// calls' bound.
    fn admit(&self) -> Result<(), String> {
        match self.breaker.gate(self.millis()) {
            Gate::Skip => {
                self.skipped.increment(1);
                return Err("circuit open".into());
            }
            // A call routed now may never reach the agent (CANCEL): the
            // probe is not held for it, and its outcome recorded as any.
            Gate::Probe => self.breaker.forget_probe(),
            Gate::Call => {}
        }
        if self.calls.load(Ordering::Acquire) >= self.max_calls {
            self.busy.increment(1);
            return Err(format!("{} calls with it", self.max_calls));
        }
        Ok(())
    }

    /// How a conversation went: `ok` when it lasted as long as its call.
    fn record(&self, ok: bool) {
        if ok {
            self.ok.increment(1);
        } else {
            self.broken.increment(1);
        }
        if self.breaker.record(Gate::Call, ok, self.millis()) {
            tracing::error!(
                plugin = %self.name,
                "agent {}: circuit open after {} failed conversations in a row; \
                 calls routed to it take the on_failure path for {} ms",
                self.name,
                self.breaker.failures,
                self.breaker.cooldown_ms
            );
        }
        self.circuit_open
            .set(if self.breaker.is_open() { 1.0 } else { 0.0 });
    }
}

/// A call's conversation with its agent; dropped (the call is over), it
/// ends, and counts as a clean one unless it broke first.
pub(crate) struct Conversing {
    talk: Talk,
    gate: Arc<AgentGate>,
    broken: bool,
}

/// How the host talks to the agent.
enum Talk {
    /// A sidecar's stream: the inputs go to it (dropped, the stream
    /// ends); its actions come through the worker's inbox.
    Sidecar(tokio::sync::mpsc::Sender<v1::CallInput>),
    /// A library's conversation, told on the worker's thread.
    InProcess(InProcess),
}

/// A conversation with an in-process agent.
struct InProcess {
    agent: Arc<LocalAgent>,
    conversation: LibraryConversation,
    /// Logged once as slower than a frame.
    slow: bool,
}

impl Conversing {
    fn new(talk: Talk, gate: &Arc<AgentGate>) -> Conversing {
        gate.calls.fetch_add(1, Ordering::AcqRel);
        gate.held.increment(1.0);
        Conversing {
            talk,
            gate: Arc::clone(gate),
            broken: false,
        }
    }

    /// Tells the agent `input`. A sidecar's actions come later through
    /// the inbox (and the input is dropped when five seconds of input
    /// wait); an in-process agent's are pushed to `actions` now. An error
    /// when the conversation is over (the plugin failed): the call ends.
    /// The agent plugin's name.
    pub(crate) fn agent(&self) -> &str {
        &self.gate.name
    }

    /// How the call's voice-activity detector is set.
    pub(crate) fn vad(&self) -> sentiric_media::vad::VadConfig {
        self.gate.vad
    }

    /// Its actions come later, through the worker's inbox (a sidecar),
    /// not from `tell` itself.
    pub(crate) fn answers_later(&self) -> bool {
        matches!(self.talk, Talk::Sidecar(_))
    }

    pub(crate) fn tell(
        &mut self,
        input: v1::call_input::Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), String> {
        let told = match &mut self.talk {
            Talk::Sidecar(tx) => {
                let _ = tx.try_send(v1::CallInput { input: Some(input) });
                return Ok(());
            }
            Talk::InProcess(p) => {
                let t0 = Instant::now();
                let told = p.conversation.input(input, actions);
                let took = t0.elapsed();
                p.agent.count(took, &told);
                if took > FRAME && !p.slow {
                    p.slow = true;
                    tracing::warn!(
                        plugin = %p.agent.name,
                        "agent plugin {}: one input took {} ms, more than a frame (20 ms)",
                        p.agent.name,
                        took.as_millis()
                    );
                }
                told.map_err(|e| format!("agent {}: {e}", p.agent.name))
            }
        };
        if told.is_err() {
            self.broke();
        }
        told
    }

    /// The conversation broke while its call was up (the agent's stream
    /// ended or failed).
    pub(crate) fn broke(&mut self) {
        if !self.broken {
            self.broken = true;
            self.gate.record(false);
        }
    }
}

impl Drop for Conversing {
    fn drop(&mut self) {
        self.gate.calls.fetch_sub(1, Ordering::AcqRel);
        self.gate.held.decrement(1.0);
        if !self.broken {
            self.gate.record(true);
        }
    }
}

/// The dialplan the workers route with, replaced whole on SIGHUP: each
/// worker takes the new one at its next turn (one atomic load a turn).
pub(crate) struct Router {
    current: std::sync::Mutex<Arc<PluginDialplan>>,
    generation: AtomicU64,
}

impl Router {
    pub(crate) fn new(host: PluginDialplan) -> Router {
        Router {
            current: std::sync::Mutex::new(Arc::new(host)),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes each time the dialplan is replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The dialplan now, and its generation.
    pub(crate) fn current(&self) -> (u64, Arc<PluginDialplan>) {
        let host = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (self.generation(), Arc::clone(&host))
    }

    /// Makes `host` the dialplan of the calls to come.
    pub(crate) fn replace(&self, host: PluginDialplan) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = Arc::new(host);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for Sidecar {
    /// A dialplan replaced (SIGHUP) goes without waiting for its tasks:
    /// its calls' answers still reach the workers, or are dropped.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Sidecar {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("taken only when dropped")
    }

    /// The sidecar `cfg` describes, on a runtime of its own that opens
    /// the connection and keeps it open.
    fn new(name: &str, cfg: &SidecarConfig) -> Result<Sidecar, String> {
        let bad = |e: String| format!("plugins.sidecars.{name}: {e}");
        let [ca, cert, key] = cfg.paths().map_err(bad)?;
        let tls = Tls::from_files(&ca, &cert, &key).map_err(|e| bad(e.to_string()))?;
        let link = Arc::new(Link {
            client: std::sync::Mutex::new((0, None)),
            lost: tokio::sync::Notify::new(),
            quiet_until: std::sync::Mutex::new(None),
        });
        // The process the switch runs, if it does: its exit loses the
        // connection at once (the keeper connects to the next one).
        let supervised = cfg
            .command
            .as_ref()
            .map(|c| {
                let link = Arc::clone(&link);
                crate::supervise::Supervised::start(name, c, cfg.workdir.as_deref(), move || {
                    // Started again: given its time to listen again.
                    link.starting();
                    if let Some((generation, _)) = link.get() {
                        link.lose(generation);
                    }
                })
            })
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("sentiric-sidecar-{name}"))
            .enable_all()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        if supervised.is_some() {
            link.starting();
        }
        runtime.spawn(Arc::clone(&link).keep(name.to_string(), cfg.clone(), tls));
        let waker = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| bad(e.to_string()))?;
        tracing::info!(
            plugin = name,
            address = %cfg.address,
            "sidecar {name} at {} (mTLS, {} calls at most waiting)",
            cfg.address,
            cfg.max_in_flight
        );
        Ok(Sidecar {
            link,
            runtime: Some(runtime),
            waiting: metrics::gauge!("sentiric_plugin_in_flight", "plugin" => name.to_string()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: cfg.max_in_flight,
            waker: Arc::new(waker),
            supervised,
        })
    }
}

/// The contract's request for the call the engine's `request` describes.
fn request(
    request: &RouteRequest<'_>,
    call_id: &str,
    trace_id: &str,
    to_uri: &str,
) -> v1::RouteRequest {
    v1::RouteRequest {
        call_id: call_id.into(),
        trace_id: trace_id.into(),
        from_uri: request.from_uri.into(),
        to_uri: to_uri.into(),
        request_uri: request.request_uri.into(),
        user: request.user.unwrap_or_default().into(),
        from_user: request.from_user.unwrap_or_default().into(),
        headers: request.headers.iter().cloned().collect(),
        source: request.source.to_string(),
        transport: request.transport.to_string(),
        time_unix_us: unix_us(),
    }
}

/// Now, in microseconds since the Unix epoch.
fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

thread_local! {
    /// A worker's buffers for encoding requests to in-process plugins:
    /// the message, and the source address as text.
    static ENCODED: std::cell::RefCell<(Vec<u8>, String)> = const {
        std::cell::RefCell::new((Vec::new(), String::new()))
    };
}

/// The engine's action for a checked decision, with its rule and tags;
/// what the switch cannot do yet is the plugin's error.
fn decision(d: v1::RouteDecision) -> Result<Decision, String> {
    use v1::answer::App;
    use v1::route_decision::Action as A;
    // Sorted: the INVITE says them in the same order every call.
    let headers: BTreeMap<String, String> = d.add_headers.into_iter().collect();
    let bridge = |b: v1::Bridge| Bridge {
        targets: b.targets,
        fork: Fork::Serial,
        ring_timeout: match b.ring_timeout_ms {
            0 => Duration::from_secs(30),
            ms => Duration::from_millis(u64::from(ms)),
        },
        headers: headers.clone().into_iter().collect(),
        codecs: b.codecs,
    };
    let mut params = Default::default();
    let action = match d.action {
        Some(A::Bridge(b)) => Action::Bridge(bridge(b)),
        Some(A::Reject(r)) => Action::Reject {
            code: u16::try_from(r.code).map_err(|_| format!("reject code {}", r.code))?,
            reason: r.reason,
        },
        Some(A::Redirect(r)) => Action::Redirect {
            code: match r.code {
                0 => 302,
                c => u16::try_from(c).map_err(|_| format!("redirect code {c}"))?,
            },
            contacts: r.contacts,
        },
        Some(A::Answer(v1::Answer { app: Some(app) })) => match app {
            App::Echo(_) => Action::Echo,
            App::Play(p) => Action::Play {
                prompt: p.prompt,
                then: match p.then_bridge {
                    Some(b) => AfterPlay::Continue(Box::new(Action::Bridge(bridge(b)))),
                    None => AfterPlay::Hangup,
                },
            },
            App::Conference(c) => Action::Conference { room: c.room },
            App::Agent(a) => {
                params = a.params;
                Action::Agent {
                    agent: a.plugin,
                    params: Default::default(),
                }
            }
        },
        // Settled before: a decline is not carried out.
        Some(A::Decline(_)) => return Err("a decline is not an action".into()),
        Some(A::Answer(_)) | None => return Err("no action".into()),
    };
    Ok(Decision {
        action,
        rule: d.rule,
        tags: d.cdr_tags,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_become_the_engines_actions() {
        let mut d = sentiric_plugin_sdk::bridge(["sip:a@127.0.0.1"]);
        d.add_headers.insert("X-B".into(), "2".into());
        d.add_headers.insert("X-A".into(), "1".into());
        d.cdr_tags.insert("account".into(), "42".into());
        d.rule = "r".into();
        let got = decision(d).unwrap();
        assert_eq!(
            got.action,
            Action::Bridge(Bridge {
                targets: vec!["sip:a@127.0.0.1".into()],
                fork: Fork::Serial,
                ring_timeout: Duration::from_secs(30),
                headers: vec![("X-A".into(), "1".into()), ("X-B".into(), "2".into())],
                codecs: Vec::new(),
            })
        );
        assert_eq!(
            (got.rule.as_str(), got.tags["account"].as_str()),
            ("r", "42")
        );
        assert_eq!(
            decision(sentiric_plugin_sdk::reject(486, "Busy")).map(|d| d.action),
            Ok(Action::Reject {
                code: 486,
                reason: "Busy".into()
            })
        );
        let redirect = v1::RouteDecision {
            action: Some(v1::route_decision::Action::Redirect(v1::Redirect {
                code: 0,
                contacts: vec!["sip:b@127.0.0.2".into()],
            })),
            ..v1::RouteDecision::default()
        };
        assert_eq!(
            decision(redirect).map(|d| d.action),
            Ok(Action::Redirect {
                code: 302,
                contacts: vec!["sip:b@127.0.0.2".into()]
            })
        );
        let agent = v1::RouteDecision {
            action: Some(v1::route_decision::Action::Answer(v1::Answer {
                app: Some(v1::answer::App::Agent(v1::ConnectAgent {
                    plugin: "bot".into(),
                    params: [("voice".to_string(), "en".to_string())].into(),
                })),
            })),
            ..v1::RouteDecision::default()
        };
        let got = decision(agent).unwrap();
        assert_eq!(
            got.action,
            Action::Agent {
                agent: "bot".into(),
                params: Default::default(),
            }
        );
        assert_eq!(got.params["voice"], "en");
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_a_probe_closes_it() {
        let b = Breaker::new(3, 1000);
        assert_eq!(b.gate(0), Gate::Call);
        // Two failures, a success: the count starts again.
        for _ in 0..2 {
            assert!(!b.record(Gate::Call, false, 0));
        }
        assert!(!b.record(Gate::Call, true, 0));
        for _ in 0..2 {
            assert!(!b.record(Gate::Call, false, 10));
        }
        assert!(b.record(Gate::Call, false, 10), "the third opens it");
        assert!(b.is_open());
        assert_eq!(b.gate(500), Gate::Skip);
        // After the cooldown one call probes, the others still skip.
        assert_eq!(b.gate(1010), Gate::Probe);
        assert_eq!(b.gate(1011), Gate::Skip);
        // The probe fails: open again for a cooldown.
        assert!(b.record(Gate::Probe, false, 1020));
        assert_eq!(b.gate(1500), Gate::Skip);
        assert_eq!(b.gate(2020), Gate::Probe);
        // It succeeds: closed.
        assert!(!b.record(Gate::Probe, true, 2021));
        assert!(!b.is_open());
        assert_eq!(b.gate(2022), Gate::Call);
    }

    fn sidecar(certs: Option<PathBuf>) -> SidecarConfig {
        SidecarConfig {
            address: "127.0.0.1:7443".parse().unwrap(),
            server_name: default_server_name(),
            certs,
            ca: None,
            cert: None,
            key: None,
            max_in_flight: 8,
            connect_timeout_ms: 100,
            command: None,
            workdir: None,
        }
    }

    #[test]
    fn the_section_is_checked() {
        let ok = PluginsConfig::default();
        assert_eq!(ok.check(), Ok(()));
        for bad in [
            PluginsConfig {
                on_failure: "maybe".into(),
                ..PluginsConfig::default()
            },
            PluginsConfig {
                deadline_ms: 0,
                ..PluginsConfig::default()
            },
            PluginsConfig {
                dialplan: Some("x".into()),
                ..PluginsConfig::default()
            },
            PluginsConfig {
                breaker_failures: 0,
                ..PluginsConfig::default()
            },
            PluginsConfig {
                sidecars: [("s".into(), sidecar(None))].into(),
                ..PluginsConfig::default()
            },
            PluginsConfig {
                agent_max_calls: 0,
                ..PluginsConfig::default()
            },
            PluginsConfig {
                sidecars: [(
                    "s".into(),
                    SidecarConfig {
                        command: Some(Vec::new()),
                        ..sidecar(Some("/etc/sentiric/certs".into()))
                    },
                )]
                .into(),
                ..PluginsConfig::default()
            },
            PluginsConfig {
                route_headers: vec!["User Agent".into()],
                ..PluginsConfig::default()
            },
            PluginsConfig {
                policy: [(
                    "p".into(),
                    Policy {
                        on_failure: Some("maybe".into()),
                    },
                )]
                .into(),
                ..PluginsConfig::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        // One plugin's policy over the section's.
        let closed = PluginsConfig {
            on_failure: "reject".into(),
            policy: [(
                "open".into(),
                Policy {
                    on_failure: Some("fallback".into()),
                },
            )]
            .into(),
            ..PluginsConfig::default()
        };
        assert_eq!(closed.check(), Ok(()));
        assert!(closed.rejects("other") && !closed.rejects("open"));
        // A dialplan sidecar needs no plugin directory.
        let remote = PluginsConfig {
            dialplan: Some("s".into()),
            sidecars: [("s".into(), sidecar(Some("/etc/sentiric/certs".into())))].into(),
            ..PluginsConfig::default()
        };
        assert_eq!(remote.check(), Ok(()));
        assert_eq!(
            remote.sidecars["s"].paths().unwrap()[1],
            PathBuf::from("/etc/sentiric/certs/switch.pem")
        );
    }
}
