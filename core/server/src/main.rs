//! `sentiric`: the switch binary.
//!
//! `sentiric run [--config FILE] [--listen ADDR]` starts one data-plane
//! worker (`worker`): the SIP UDP socket and the RTP sockets of its calls
//! on one packet engine (io_uring where the kernel allows, epoll
//! otherwise), the B2BUA from `sentiric-engine`, media anchored through
//! the port pool and relay (`media`), routing by the static dialplan of
//! the config file (`config`) — with no file, an embedded default on
//! loopback with the demo dialplan. Health and metrics are served over
//! HTTP from a thread of their own (`http`). `sentiric call URI` is a
//! small user agent for people and tests (`call`). `sentiric check-config FILE` checks a
//! file and names the bad key. The command line is `cli` (clap); `sentiric
//! --help`, and `--help` after any subcommand, say the rest.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use sentiric_io::ports::{PoolConfig, PortPool};
use signal_hook::consts::{SIGINT, SIGTERM};

mod call;
mod cdr;
mod cli;
mod config;
mod events;
mod families;
mod http;
mod inbox;
mod local_cdr;
mod media;
mod plugin_new;
mod plugins;
mod prompts;
mod publisher;
mod route_test;
mod supervise;
mod tcp;
mod transcoding;
mod voice;
mod worker;

/// Reads and checks the config file at `path` (the embedded default
/// without one), the environment's `SENTIRIC_*` keys on top. A relative
/// `[events] outbox` or SQLite `[cdr] database` from the file (or the
/// defaults, with a file) is the file's directory's, so that every
/// command given the same `--config` finds the same files wherever it
/// runs; one from the environment is the working directory's.
fn load(path: Option<&std::path::Path>) -> Result<config::Checked, String> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => String::new(),
    };
    let mut checked =
        config::Config::parse_with_env(&text, std::env::vars()).map_err(|e| match path {
            Some(p) => format!("{}: {e}", p.display()),
            None => e.to_string(),
        })?;
    if let Some(base) = path.and_then(std::path::Path::parent) {
        checked
            .config
            .resolve_paths(base, |key| std::env::var_os(key).is_some());
    }
    Ok(checked)
}

/// Exit status 2: a wrong command line, config or file.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    use clap::Parser as _;
    use cli::{CdrCommand, CertsCommand, Command, EventsCommand, PluginCommand};
    let cli = cli::Cli::parse();
    match cli.command {
        Command::Run(a) => {
            let mut checked = match load(a.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sentiric: config: {e}");
                    return ExitCode::from(USAGE_ERROR);
                }
            };
            if let Some(l) = a.listen {
                checked.config.sip.listen = l;
            }
            if let Some(l) = a.http_listen {
                checked.config.http.listen = l;
            }
            init_logging(&checked.config.log);
            match run(checked, a.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sentiric: {e}");
                    // A path or value of the config the switch cannot use
                    // (an outbox it cannot make, a dialplan plugin not
                    // loaded): the config's fault, as a bad key's is.
                    use std::io::ErrorKind as K;
                    match e.kind() {
                        K::InvalidInput | K::NotFound | K::PermissionDenied => {
                            ExitCode::from(USAGE_ERROR)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
        Command::CheckConfig { file } => match load(Some(&file)) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sentiric: config: {e}");
                ExitCode::from(USAGE_ERROR)
            }
        },
        Command::Call(a) => match call::run(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("sentiric call: {e}");
                ExitCode::from(USAGE_ERROR)
            }
        },
        Command::Events(EventsCommand::Tail(a)) => match events_tail(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sentiric events tail: {e}");
                ExitCode::from(USAGE_ERROR)
            }
        },
        Command::Cdr(a) => {
            let result = match a.list {
                Some(CdrCommand::List { since, n }) => cdr_list(a.config.as_deref(), since, n),
                None => cdr_consume(a.config.as_deref()),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sentiric cdr: {e}");
                    ExitCode::from(USAGE_ERROR)
                }
            }
        }
        Command::Certs(CertsCommand::Init { dir }) => {
            // A development CA, a sidecar (server) and a switch (client)
            // certificate for mTLS with plugin sidecars.
            match sentiric_plugin_sdk::certs::init(&dir) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sentiric certs init: {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::RouteTest(a) => match route_test::run(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(route_test::Failed::Plugin(e)) => {
                eprintln!("sentiric route-test: {e}");
                ExitCode::FAILURE
            }
            Err(route_test::Failed::Usage(e)) => {
                eprintln!("sentiric route-test: {e}");
                ExitCode::from(USAGE_ERROR)
            }
        },
        Command::Plugin(PluginCommand::New { name, dir, sdk }) => {
            match plugin_new::run(&name, &dir, sdk.as_deref()) {
                Ok(files) => {
                    for f in &files {
                        println!("{}", f.display());
                    }
                    let at = dir.join(&name);
                    eprintln!(
                        "made {}: cd {} && cargo test; its README.md has the rest",
                        at.display(),
                        at.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sentiric plugin new: {e}");
                    ExitCode::from(USAGE_ERROR)
                }
            }
        }
        Command::Completions { shell } => {
            cli::completions(shell);
            ExitCode::SUCCESS
        }
        Command::Man => match cli::man() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sentiric man: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `sentiric events tail`: the last `-n` events of the outbox the config
/// names (or `--dir`), one JSON object a line, oldest first; with `-f`,
/// then every event as it is written.
fn events_tail(a: &cli::TailArgs) -> Result<(), String> {
    use prost::Message as _;
    use std::io::Write as _;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => load(a.config.as_deref())?.config.events.outbox,
    };
    // An outbox holds segments (`*.seg`) or its watermark (`confirmed`).
    let is_outbox = std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".seg") || name == "confirmed"
        })
    });
    if !is_outbox {
        return Err(format!(
            "no event outbox at {}: the switch makes it there when it runs{}",
            dir.display(),
            match (&a.config, &a.dir) {
                (_, Some(_)) => " with [events] outbox set to it",
                (Some(_), None) => " with this config",
                (None, None) => " from this directory without --config (or give --config or --dir)",
            }
        ));
    }
    let print = |records: &[sentiric_events::outbox::Record]| -> Result<bool, String> {
        let mut out = std::io::stdout().lock();
        for r in records {
            let line = match sentiric_events::v1::Event::decode(r.bytes.as_slice()) {
                Ok(e) => serde_json::to_string(&e).map_err(|e| e.to_string())?,
                Err(e) => format!(
                    "{{\"undecodable\":{},\"error\":{:?}}}",
                    r.seq,
                    e.to_string()
                ),
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(false);
            }
        }
        Ok(out.flush().is_ok())
    };
    let records =
        sentiric_events::outbox::read(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let next = records.last().map_or(0, |r| r.seq + 1);
    if !print(&records[records.len().saturating_sub(a.n)..])? || !a.follow {
        return Ok(());
    }
    // Following: the records appended since, as the publisher reads them.
    let mut tail = sentiric_events::outbox::Tail::new(&dir, next);
    loop {
        let new = tail
            .read(1000)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if new.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        } else if !print(&new)? {
            return Ok(());
        }
    }
}

/// `sentiric cdr list`: the CDRs of the last `since` seconds, newest
/// first. An SQLite file that is not there is said, not made.
fn cdr_list(config: Option<&std::path::Path>, since: u64, n: u32) -> Result<(), String> {
    let checked = load(config)?;
    let database = &checked.config.cdr.database;
    if let Some(file) = config::sqlite_file(database) {
        if !file.exists() {
            return Err(format!(
                "no CDR database at {}: the switch makes it with its first CDR{}",
                file.display(),
                if config.is_some() {
                    " when it runs with this config"
                } else {
                    " (give --config to read another switch's)"
                }
            ));
        }
    }
    cdr::list(database, since, i64::from(n))
}

/// `sentiric cdr`: the consumer.
fn cdr_consume(config: Option<&std::path::Path>) -> Result<(), String> {
    let checked = load(config)?;
    let c = &checked.config;
    init_logging(&c.log);
    let broker = c
        .events
        .broker
        .clone()
        .filter(|b| !b.is_empty())
        .ok_or("it reads the events exchange: set [events] broker (SENTIRIC_EVENTS_BROKER)")?;
    cdr::run(&cdr::CdrConfig {
        database: c.cdr.database.clone(),
        broker,
        exchange: c.events.exchange.clone(),
        queue: c.cdr.queue.clone(),
        dead_letter: c.cdr.dead_letter.clone(),
    })
    .map_err(|e| e.to_string())
}

/// Structured logs on standard error: readable text (colours on a
/// terminal) or one JSON object a line. Every call's lines carry `call`,
/// `call_id` (the caller's Call-ID) and `trace_id` (minted at ingress).
/// At `[log] level`, or as `RUST_LOG` says when it is set (per-module
/// directives: `info,sentiric::publisher=debug`).
/// The AMQP client's own lines are kept to errors unless `RUST_LOG`
/// names it: it logs every message a broker returns, body and all.
fn init_logging(log: &config::LogConfig) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let level: tracing::Level = log.level.parse().unwrap_or(tracing::Level::INFO);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .unwrap_or_else(|e| {
                eprintln!("RUST_LOG={directives}: {e}; logging at [log] level {level}");
                EnvFilter::new(format!("{level},lapin=error"))
            }),
        _ => EnvFilter::new(format!("{level},lapin=error")),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// The SIP transaction table's size when `[limits] max_transactions` is
/// unset: a sixteenth of the host's memory at 4 KiB a transaction (one
/// lingering to absorb retransmissions measured ~1.4 KiB with its
/// message; the margin is for the calls around them), 100,000 at least
/// and 4,000,000 at most. At 1,000 calls/s about 130,000 are alive.
pub(crate) fn transactions_from_memory() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    usize::try_from(total_kib / 16 / 4)
        .unwrap_or(usize::MAX)
        .clamp(100_000, 4_000_000)
}

/// The kernel's ephemeral port range, where outgoing sockets get ports.
fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Binds the SIP address: a UDP socket per worker (SO_REUSEPORT when
/// several) and the TCP listener on the same port. With port 0 the UDP
/// port is the kernel's choice, and the same number may be taken for TCP:
/// then another is tried.
fn bind_sip(
    listen: SocketAddr,
    workers: usize,
    opts: &sentiric_io::socket::UdpOptions,
) -> std::io::Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let first = sentiric_io::socket::bind_udp(listen, opts)
            .map_err(|e| bind_error(SIP_KEY, "SIP over UDP", listen, e))?;
        let addr = first.local_addr()?;
        let mut shared = vec![first];
        for _ in 1..workers {
            shared.push(
                sentiric_io::socket::bind_udp(addr, opts)
                    .map_err(|e| bind_error(SIP_KEY, "SIP over UDP", addr, e))?,
            );
        }
        match std::net::TcpListener::bind(addr) {
            Ok(tcp) => return Ok((shared, tcp)),
            Err(e)
                if listen.port() == 0
                    && attempt < 16
                    && e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(bind_error(SIP_KEY, "SIP over TCP", addr, e)),
        }
    }
}

/// The keys a bind error names (with the flags that set them too).
const SIP_KEY: &str = "[sip] listen or --listen";
const HTTP_KEY: &str = "[http] listen or --http-listen";

/// A bind that failed, naming the config key and the address.
fn bind_error(key: &str, what: &str, addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} on {addr} ({key}): {e}"))
}

/// On each SIGHUP (a thread of its own): reads the config file at `path`
/// again and replaces the dialplan `router` holds with its `[dialplan]`
/// rules and `[plugins]` (every library loaded again, the dialplan
/// plugin or sidecar made again). A config that does not check, a
/// dialplan plugin that does not load, or a rule playing a prompt not
/// loaded at start is refused with an error in the log, and the running
/// dialplan stays. Other sections take a restart.
fn reload_on_sighup(
    path: Option<std::path::PathBuf>,
    router: Arc<plugins::Router>,
    prompts: prompts::Prompts,
) -> std::io::Result<()> {
    use std::io::Read;
    let (mut read, write) = std::os::unix::net::UnixStream::pair()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, write)?;
    std::thread::Builder::new()
        .name("sentiric-reload".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            while read.read(&mut byte).is_ok_and(|n| n > 0) {
                let reloaded = load(path.as_deref()).and_then(|checked| {
                    if let Some(p) = checked.dialplan.prompts().into_iter().find(|p| !prompts.contains_key(*p)) {
                        return Err(format!("dialplan prompt {p:?} is new: prompts load at start (restart)"));
                    }
                    let loaded = plugins::load(&checked.config.plugins);
                    let rules = checked.dialplan.rules_len();
                    plugins::PluginDialplan::from(&checked.config.plugins, &loaded, checked.dialplan)
                        .map(|host| (host, rules, loaded.len()))
                });
                match reloaded {
                    Ok((host, rules, libraries)) => {
                        tracing::info!(
                            dialplan = host.name(),
                            "SIGHUP: reloaded: dialplan {} ({rules} rules as its fallback), {libraries} plugin libraries",
                            host.name()
                        );
                        router.replace(host);
                    }
                    Err(e) => tracing::error!("SIGHUP: reload refused, the running dialplan stays: {e}"),
                }
            }
        })?;
    Ok(())
}

/// Runs the switch `checked` describes until it has drained; SIGHUP
/// reads `config_path` again for its `[dialplan]` and `[plugins]`.
fn run(checked: config::Checked, config_path: Option<std::path::PathBuf>) -> std::io::Result<()> {
    let config::Checked {
        config,
        dialplan,
        backend,
        prompts,
        demo_dialplan,
    } = checked;
    if demo_dialplan {
        tracing::info!(
            "dialplan: the demo's (600 echo test, 700 announcement, 800 conference room): the config has no [[dialplan.rule]]"
        );
    } else {
        tracing::info!(
            rules = dialplan.rules_len(),
            "dialplan: {} rules from the config{}; the built-in demo extensions (600, 700, 800) are off: they are the dialplan only when the config has no [[dialplan.rule]] and no default",
            dialplan.rules_len(),
            match config.plugins.dialplan.as_deref() {
                Some(p) if p != "static" => format!(", after the plugin {p}"),
                _ => String::new(),
            }
        );
    }
    // One crypto provider for every TLS configuration in the process
    // (sidecars' mTLS, the broker's TLS): aws-lc-rs.
    sentiric_plugin_sdk::sidecar::install_crypto_provider();
    let cpus = sentiric_io::affinity::allowed_cpus().unwrap_or_default();
    let workers = match config.sip.workers {
        0 => cpus.len().max(1),
        n => n,
    };
    // SIP signalling: deep buffers for bursts at high CPS, marked CS3.
    // Every worker binds the SIP address (SO_REUSEPORT: the kernel keeps
    // each source on one worker) and an address of its own for its B legs.
    let sip_opts = sentiric_io::socket::UdpOptions {
        reuse_port: workers > 1,
        recv_buffer: Some(8 << 20),
        send_buffer: Some(4 << 20),
        dscp: Some(24),
        ..sentiric_io::socket::UdpOptions::default()
    };
    let (shared, tcp_listener) = bind_sip(config.sip.listen, workers, &sip_opts)?;
    let listen = shared[0].local_addr()?;
    let rtp = &config.rtp;
    let pool = PortPool::new(PoolConfig {
        min_port: rtp.min_port,
        max_port: rtp.max_port,
        rtcp_mux: false,
        partitions: workers,
        quarantine: Duration::from_millis(rtp.quarantine_ms),
    })
    .map_err(|e| std::io::Error::other(format!("rtp: {e}")))?;
    // Messages come and go by the thousand: the allocator keeps what is
    // freed rather than trimming its heaps and growing them again.
    sentiric_io::limits::keep_freed_memory();
    // Every RTP port is a socket: the open-file limit bounds the calls.
    match sentiric_io::limits::raise_open_files() {
        Ok(n) => {
            let ports = u64::from(rtp.max_port - rtp.min_port) + 1;
            if n < ports + 256 {
                tracing::warn!(
                    open_files = n,
                    "the open-file limit ({n}) is below the RTP range's {ports} ports: \
                     raise it (LimitNOFILE) or calls will fail for sockets"
                );
            }
        }
        Err(e) => tracing::warn!("open-file limit: {e}"),
    }
    if let Some((lo, hi)) = ephemeral_ports() {
        if rtp.min_port <= hi && rtp.max_port >= lo {
            tracing::warn!(
                "rtp ports {}-{} overlap the kernel's ephemeral range {lo}-{hi} \
                 (net.ipv4.ip_local_port_range): other sockets will take some of them",
                rtp.min_port,
                rtp.max_port
            );
        }
    }
    // Metrics before anything records one (the engine records its backend).
    let metrics = families::install().map_err(std::io::Error::other)?;
    // Plugins after the metrics (the dialplan host's are made with it).
    // The libraries are held by the dialplan host alone: one a reload
    // replaces is unloaded once its calls are over.
    let router = Arc::new(plugins::Router::new(
        plugins::PluginDialplan::from(&config.plugins, &plugins::load(&config.plugins), dialplan)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
    ));
    let status = Arc::new(http::Status::default());
    let http_addr = http::spawn(
        config.http.listen,
        metrics,
        Arc::clone(&status),
        config.http.token.clone(),
    )
    .map_err(|e| bind_error(HTTP_KEY, "health and metrics", config.http.listen, e))?;
    tracing::info!(http = %http_addr, "health and metrics on http://{http_addr}");
    let (events, events_thread) = events::spawn(
        config.events.outbox.clone(),
        config.events.outbox_max_mb.saturating_mul(1 << 20),
        Duration::from_millis(config.events.batch_ms),
        Duration::from_millis(config.events.sync_ms),
        &config.node.id(),
        match config.events.broker.clone().filter(|b| !b.is_empty()) {
            Some(uri) => events::Sink::Broker(publisher::BrokerConfig {
                uri,
                exchange: config.events.exchange.clone(),
                json: config.events.content_type == "json",
            }),
            None if config.cdr.local => events::Sink::LocalCdr(config.cdr.database.clone()),
            None => events::Sink::None,
        },
    )?;
    tracing::info!(
        durable_end = config.events.durable_end,
        "events written every {} ms, synced every {} ms{}",
        config.events.batch_ms,
        config.events.sync_ms,
        if config.events.durable_end {
            "; durable_end: a call's last messages go once its CallEnded is synced"
        } else {
            ""
        }
    );
    // Each worker: a packet engine, its SIP sockets, its share of the
    // port pool, and an inbox for TCP and for datagrams other workers got
    // for its calls.
    let pool = Arc::new(pool);
    let mut parts = Vec::new();
    let mut inboxes = Vec::new();
    for (i, sip) in shared.into_iter().enumerate() {
        let (engine, fallback) = sentiric_io::Engine::new(backend)?;
        if i == 0 {
            match fallback {
                Some(why) => tracing::warn!(
                    backend = engine.kind(),
                    "packet engine: {} (io_uring refused: {why})",
                    engine.kind()
                ),
                None => tracing::info!(
                    backend = engine.kind(),
                    workers,
                    "packet engine: {}, {workers} worker{}",
                    engine.kind(),
                    if workers == 1 { "" } else { "s" }
                ),
            }
        }
        let own = (workers > 1)
            .then(|| {
                sentiric_io::socket::bind_udp(
                    SocketAddr::new(listen.ip(), 0),
                    &sentiric_io::socket::UdpOptions {
                        reuse_port: false,
                        ..sip_opts
                    },
                )
            })
            .transpose()?;
        let media = media::Media::new(Arc::clone(&pool), i, rtp.ip, prompts.clone(), rtp.transcode);
        let wake = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let (tx, inbox) = std::sync::mpsc::channel();
        inboxes.push(inbox::Inbox {
            tx,
            wake: wake.local_addr()?,
            load: Arc::default(),
        });
        parts.push((engine, sip, own, media, wake, inbox));
    }
    // SIP over TCP on the same address, each connection on one worker.
    let (tcp_addr, connector) = tcp::spawn(tcp_listener, inboxes.clone())?;
    tracing::info!(tcp = %tcp_addr, "SIP over TCP on {tcp_addr}");
    // The first stdout line says where the switch listens, once UDP and
    // TCP both do (tests read it).
    println!("sentiric listening on udp:{listen}");
    events.emit_node(sentiric_events::v1::event::Body::NodeStarted(
        sentiric_events::v1::NodeStarted {
            version: env!("CARGO_PKG_VERSION").into(),
            sip_listen: vec![format!("udp:{listen}"), format!("tcp:{tcp_addr}")],
        },
    ));
    // SIGTERM and the first SIGINT set `stop` (drain); a second SIGINT
    // exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // SIGHUP: the dialplan and plugins again, from the config file.
    reload_on_sighup(config_path, Arc::clone(&router), prompts.clone())?;
    // Limits are shared out: each worker takes its part.
    let share = |n: usize| n.div_ceil(workers);
    let max_transactions = config
        .limits
        .max_transactions
        .unwrap_or_else(transactions_from_memory);
    tracing::info!(
        max_transactions,
        per_worker = share(max_transactions),
        "SIP transaction table: {max_transactions} at most ({} a worker; [limits] max_transactions{})",
        share(max_transactions),
        if config.limits.max_transactions.is_some() { "" } else { " unset: sized from memory" },
    );
    let mut threads = Vec::new();
    for (i, (engine, sip, own, media, wake, inbox)) in parts.into_iter().enumerate() {
        let settings = worker::Settings {
            index: i,
            workers: inboxes.clone(),
            keep_calls_below: config.sip.keep_calls_below,
            router: Arc::clone(&router),
            max_calls: config.limits.max_calls.map(share),
            max_cps: config
                .limits
                .max_cps
                .map(|c| u32::try_from(share(c as usize)).unwrap_or(u32::MAX)),
            max_call_duration: config.limits.max_call_duration_s.map(Duration::from_secs),
            max_transactions: share(max_transactions),
            media_timeout: (config.rtp.timeout_s > 0)
                .then(|| Duration::from_secs(config.rtp.timeout_s)),
            silent_timeout: (config.rtp.silent_timeout_s > 0)
                .then(|| Duration::from_secs(config.rtp.silent_timeout_s)),
            probe: (config.sip.probe_s > 0).then(|| Duration::from_secs(config.sip.probe_s)),
            route_headers: config.plugins.route_headers.clone(),
            stop: Arc::clone(&stop),
            drain_timeout: Duration::from_secs(config.limits.drain_timeout_s),
            status: Arc::clone(&status),
            inbox,
            wake,
            own,
            connector: connector.clone(),
            events: events.clone(),
            durable_end: config.events.durable_end,
        };
        // With a worker per CPU, each is pinned to its own.
        let cpu = (workers == cpus.len()).then(|| cpus[i]);
        threads.push(
            std::thread::Builder::new()
                .name(format!("sentiric-w{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        let _ = sentiric_io::affinity::pin_current_thread(&[cpu]);
                    }
                    worker::run(engine, sip, media, settings)
                })?,
        );
    }
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(std::io::Error::other("a worker panicked")),
        }
    }
    // The calls are over: the sidecars the switch runs go with it.
    router.current().1.stop_sidecars();
    // The workers are gone: the events thread writes what they sent,
    // syncs, and ends.
    events.stop();
    drop(events);
    if events_thread.join().is_err() {
        result = Err(std::io::Error::other("the events thread panicked"));
    }
    result
}
