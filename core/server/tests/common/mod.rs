//! The `sentiric` binary as the integration tests run it: SIP and HTTP on
//! ephemeral loopback ports, its log collected, killed when dropped.
// Each test file uses part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// GET `path` from `http`; the status and body.
pub(crate) fn http_get(http: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A config on loopback with 200 RTP ports from `min_port`, 600 the echo
/// test and `busy` refused with 486.
pub(crate) fn echo_and_busy(min_port: u16) -> String {
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\n\
         min_port = {min_port}\nmax_port = {}\n\
         [[dialplan.rule]]\nuser = \"busy\"\naction = \"reject\"\ncode = 486\n\
         [[dialplan.rule]]\nuser = \"600\"\naction = \"echo\"\n",
        min_port + 199
    )
}

/// A running switch.
pub(crate) struct Switch {
    pub(crate) child: Child,
    /// Where it takes SIP over UDP.
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    config: Option<PathBuf>,
    /// Its event outbox, a directory of its own.
    pub(crate) events: PathBuf,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.config {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(&self.events);
    }
}

impl Switch {
    /// `sentiric run` with `config` (TOML; `None`: the embedded default)
    /// and `env` on top of the ephemeral SIP and HTTP ports.
    pub(crate) fn start(config: Option<&str>, env: &[(&str, &str)]) -> Switch {
        static SWITCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let events = std::env::temp_dir().join(format!(
            "sentiric-test-events-{}-{}",
            std::process::id(),
            SWITCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&events);
        Switch::start_with_events(config, env, events)
    }

    /// [`Switch::start`] with the event outbox in `events` (a switch
    /// started again on the same outbox, say).
    pub(crate) fn start_with_events(
        config: Option<&str>,
        env: &[(&str, &str)],
        events: PathBuf,
    ) -> Switch {
        Switch::launch(config, env, events, None, None)
    }

    /// [`Switch::start`] with its config file at `file` (so that what the
    /// config names relative to its own directory is beside it).
    pub(crate) fn start_at(file: &Path, config: &str, env: &[(&str, &str)]) -> Switch {
        let events = file.with_extension("events");
        let _ = std::fs::remove_dir_all(&events);
        Switch::launch(Some(config), env, events, None, Some(file))
    }

    /// [`Switch::start`] run by `bash` after the shell commands `shell`
    /// (limits, signals ignored: what `exec` keeps).
    #[allow(dead_code)]
    pub(crate) fn start_after(config: Option<&str>, shell: &str) -> Switch {
        static SWITCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let events = std::env::temp_dir().join(format!(
            "sentiric-test-events-after-{}-{}",
            std::process::id(),
            SWITCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&events);
        Switch::launch(config, &[], events, Some(shell), None)
    }

    fn launch(
        config: Option<&str>,
        env: &[(&str, &str)],
        events: PathBuf,
        shell: Option<&str>,
        file: Option<&Path>,
    ) -> Switch {
        let mut cmd = match shell {
            None => Command::new(env!("CARGO_BIN_EXE_sentiric")),
            Some(shell) => {
                let mut c = Command::new("bash");
                c.args([
                    "-c",
                    &format!("{shell}; exec \"$0\" \"$@\""),
                    env!("CARGO_BIN_EXE_sentiric"),
                ]);
                c
            }
        };
        cmd.arg("run")
            .env("SENTIRIC_SIP_LISTEN", "127.0.0.1:0")
            .env("SENTIRIC_HTTP_LISTEN", "127.0.0.1:0")
            .env("SENTIRIC_EVENTS_OUTBOX", &events)
            .env(
                "SENTIRIC_CDR_DATABASE",
                format!("sqlite://{}/cdr.db?mode=rwc", events.display()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let path = config.map(|text| {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = file.map_or_else(
                || {
                    std::env::temp_dir()
                        .join(format!("sentiric-test-{}-{n}.toml", std::process::id()))
                },
                Path::to_path_buf,
            );
            std::fs::write(&p, text).unwrap();
            p
        });
        if let Some(p) = &path {
            cmd.args(["--config", p.to_str().unwrap()]);
        }
        let mut child = cmd.spawn().expect("spawn sentiric");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        // The first line of standard output says where SIP listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = match line
            .trim()
            .rsplit("udp:")
            .next()
            .and_then(|a| a.parse().ok())
        {
            Some(a) => a,
            None => {
                std::thread::sleep(Duration::from_millis(200));
                panic!("no address in {line:?}: {:?}", log.lock().unwrap());
            }
        };
        Switch {
            child,
            addr,
            log,
            config: path,
            events,
        }
    }

    /// Where it serves HTTP (health, metrics), as it logs it.
    pub(crate) fn http(&self) -> SocketAddr {
        let line = self
            .wait_line("http://", Duration::from_secs(5))
            .expect("the HTTP address logged");
        line.split("http://")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    }

    /// The value of the metric `name` (a series without labels) on its
    /// `/metrics`.
    pub(crate) fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.http(), "/metrics", None);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The events in its outbox, as `sentiric events tail` prints them.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["events", "tail", "-n", "100000", "--dir"])
            .arg(&self.events)
            .output()
            .expect("sentiric events tail");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect()
    }

    /// The log lines holding `needle` so far.
    pub(crate) fn lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// The first log line holding `needle`, waiting up to `timeout`.
    pub(crate) fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines(needle).into_iter().next() {
                return Some(l);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends it a signal (`HUP`, `TERM` …).
    pub(crate) fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its config file (a switch started with one).
    pub(crate) fn config_file(&self) -> &std::path::Path {
        self.config.as_deref().expect("started with a config")
    }

    /// Waits up to `timeout` for the `n`th log line holding `needle`.
    pub(crate) fn wait_lines(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.lines(needle).len() < n {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The whole log so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log as an operator reads it: every line about a call (`call=`)
    /// names its Call-ID and trace id, and no value is shown as Rust's
    /// Debug writes it (`Some(A)`, `Reject { code: … }`, `Pcmu`).
    pub(crate) fn assert_log_reads_well(&self) {
        let log = self.log();
        let about_calls = log.iter().filter(|l| l.contains(" call=")).count();
        assert!(about_calls > 0, "no line about a call: {log:#?}");
        for line in &log {
            if line.contains(" call=") || line.contains("call_id=") {
                for field in ["call_id=", "trace_id="] {
                    let value = line.split(field).nth(1).unwrap_or("");
                    assert!(
                        !value.is_empty() && !value.starts_with(' '),
                        "{field} missing or empty: {line}"
                    );
                }
            }
            for debug in ["Some(", "None", " { ", "Pcmu", "Pcma", "Opus"] {
                assert!(!line.contains(debug), "{debug:?} in: {line}");
            }
        }
    }
}

/// A sweep from 300 to 3000 Hz at 8 kHz, `n` samples: no two stretches
/// alike, so the best alignment of what comes back with what went out is
/// unambiguous.
pub(crate) fn sweep(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let phase = std::f64::consts::TAU * (300.0 * t + 675.0 * t * t);
            (6000.0 * phase.sin()) as i16
        })
        .collect()
}

/// The best normalised correlation of `heard` with `played` over 1.5 s,
/// at a delay of up to 100 ms.
pub(crate) fn best_correlation(played: &[i16], heard: &[i16]) -> f64 {
    (0..800)
        .map(|lag| {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for (x, y) in played.iter().zip(heard.iter().skip(lag)).take(12_000) {
                let (x, y) = (f64::from(*x), f64::from(*y));
                xy += x * y;
                xx += x * x;
                yy += y * y;
            }
            xy / (xx.sqrt() * yy.sqrt()).max(1.0)
        })
        .fold(f64::MIN, f64::max)
}

/// A 16-bit mono WAV file of `samples` at 8 kHz.
pub(crate) fn wav_bytes(samples: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    for v in [8000u32, 16000] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    for v in [2u16, 16] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// The samples of a 16-bit mono WAV file.
pub(crate) fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    let at = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    bytes[at..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The share of `x`'s energy at `freq` Hz (8 kHz samples).
pub(crate) fn share_at(x: &[i16], freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / 8000.0;
    let (mut s, mut c, mut e) = (0.0f64, 0.0f64, 0.0f64);
    for (n, &v) in x.iter().enumerate() {
        let v = f64::from(v);
        s += v * (w * n as f64).sin();
        c += v * (w * n as f64).cos();
        e += v * v;
    }
    2.0 * (s * s + c * c) / (x.len() as f64 * e.max(1.0))
}

/// A current-thread tokio runtime for the tests' AMQP clients.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A connection to the broker at `url` and a channel on which the durable
/// fanout exchange `exchange` is declared (as the switch declares it).
pub(crate) async fn amqp_channel(url: &str, exchange: &str) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..lapin::options::ExchangeDeclareOptions::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    (conn, ch)
}

/// A plugin library cargo built for these tests (`lib<name>.so`).
pub(crate) fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let file = format!("lib{name}.so");
    [deps.join(&file), deps.parent().unwrap().join(&file)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not built next to {}", exe.display()))
}

/// SIP on an ephemeral loopback port, 200 RTP ports from `min_port`.
pub(crate) fn rtp(min_port: u16) -> String {
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = {min_port}\nmax_port = {}\n",
        min_port + 199
    )
}

/// A call to `user` pressing 1, 2 and # (an echo agent's test): the call
/// answered, the digits 12 heard back from the agent (RFC 4733), the
/// agent hanging up on #.
pub(crate) fn echo_agent_digits(sw: &Switch, user: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--dtmf",
            "12#",
            "--duration",
            "10",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    for field in [
        "\"status\":200",
        "\"dtmf_received\":\"12\"",
        "\"hung_up_by\":\"remote\"",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
}

/// `sentiric call sip:USER@switch`: its final status.
pub(crate) fn call(sw: &Switch, user: &str) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--duration",
            "0.5",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(summary.trim())
        .unwrap_or_else(|_| panic!("{summary} {}", String::from_utf8_lossy(&out.stderr)));
    v["status"].as_u64().unwrap_or(0)
}

/// The CallRouted events of the switch's calls, in order.
pub(crate) fn routed(sw: &Switch, calls: usize) -> Vec<serde_json::Value> {
    let end = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r: Vec<serde_json::Value> = sw
            .events()
            .into_iter()
            .filter_map(|e| e["body"].get("CallRouted").cloned())
            .collect();
        if r.len() >= calls || std::time::Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A three-second call from `sentiric call` to `user` at `sw` playing a
/// sweep (files in `dir`; `more` arguments for it): how well what came
/// back matches it (the best correlation), and the call's summary. The
/// agent and echo tests' measure: each 20 ms the caller sends comes back.
pub(crate) fn echoed_through(sw: &Switch, dir: &Path, user: &str, more: &[&str]) -> (f64, String) {
    let (played, heard, summary) = echo_call(sw, dir, user, more);
    let best = best_correlation(&played, &heard);
    eprintln!("{user}: heard back with correlation {best:.3}");
    (best, summary)
}

/// [`echoed_through`] for a call whose audio starts coming back only
/// part way (after a transfer): what came back is matched against the
/// sweep from where it best lines up (its first quarter second searched
/// for in the first two seconds played).
pub(crate) fn echoed_later(sw: &Switch, dir: &Path, user: &str, more: &[&str]) -> (f64, String) {
    let (played, heard, summary) = echo_call(sw, dir, user, more);
    let start = heard
        .iter()
        .position(|s| s.unsigned_abs() > 500)
        .unwrap_or(0);
    let window = &heard[start..(start + 2_000).min(heard.len())];
    let score = |at: usize| -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in played[at..].iter().zip(window) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        xy / (xx.sqrt() * yy.sqrt()).max(1.0)
    };
    let at = (0..16_000.min(played.len().saturating_sub(window.len())))
        .max_by(|a, b| score(*a).total_cmp(&score(*b)))
        .unwrap_or(0);
    let best = best_correlation(&played[at..], &heard[start..]);
    eprintln!("{user}: heard back from {at} samples in, correlation {best:.3}");
    (best, summary)
}

/// Plays a sweep to `user` at `sw` for three seconds, recording what
/// comes back: the sweep, the recording, the call's summary.
fn echo_call(sw: &Switch, dir: &Path, user: &str, more: &[&str]) -> (Vec<i16>, Vec<i16>, String) {
    let played = sweep(16_000);
    let (play, record) = (
        dir.join(format!("play-{user}.wav")),
        dir.join(format!("heard-{user}.wav")),
    );
    std::fs::write(&play, wav_bytes(&played)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:{user}@{}", sw.addr),
            "--play",
            play.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
            "--duration",
            "3",
        ])
        .args(more)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        summary.contains("\"status\":200"),
        "{summary} {:#?}",
        sw.log()
    );
    let heard = wav_samples(&std::fs::read(&record).unwrap());
    (played, heard, summary)
}

/// The Python of the sidecars' environment (`SENTIRIC_PYTHON`, else
/// `target/python`, made by `bash scripts/python.sh`).
pub(crate) fn python() -> PathBuf {
    let python = std::env::var_os("SENTIRIC_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/python/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{}: no Python environment; make it with `bash scripts/python.sh`",
        python.display()
    );
    python
}

/// The CDRs of the last hour in `sw`'s own database (`sentiric cdr
/// list`), once there are `n` of them or `wait` has passed.
pub(crate) fn cdrs(sw: &Switch, n: usize, wait: Duration) -> Vec<serde_json::Value> {
    let db = format!("sqlite://{}/cdr.db?mode=rwc", sw.events.display());
    let end = std::time::Instant::now() + wait;
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["cdr", "list", "--since", "3600"])
            .env("SENTIRIC_CDR_DATABASE", &db)
            .output()
            .unwrap();
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if rows.len() >= n || std::time::Instant::now() > end {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `text` as espeak-ng says it: 8 kHz samples, after `lead_ms` of
/// silence.
pub(crate) fn said(text: &str, lead_ms: usize) -> Vec<i16> {
    let tmp = std::env::temp_dir().join(format!("sentiric-said-{}.wav", std::process::id()));
    let ok = Command::new("espeak-ng")
        .arg("-w")
        .arg(&tmp)
        .arg(text)
        .status()
        .expect("espeak-ng (the test command installs it)");
    assert!(ok.success());
    let wav = sentiric_media::wav::Wav::parse(&std::fs::read(&tmp).unwrap()).unwrap();
    let _ = std::fs::remove_file(&tmp);
    let mut player = sentiric_media::wav::WavPlayer::new(&wav, 8000).unwrap();
    let mut out = vec![0i16; lead_ms * 8];
    let mut frame = Vec::new();
    while player.next_frame(&mut frame) {
        out.extend_from_slice(&frame);
    }
    out
}
