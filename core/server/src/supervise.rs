//! Sidecars the switch runs itself: a `[plugins.sidecars.NAME]` with a
//! `command` is started with the switch, its output written to the
//! switch's log line by line (`sidecar NAME: …`), started again when it
//! exits (after 100 ms, doubling to 10 s while it keeps exiting within
//! 30 s of its start), and stopped with the switch. The child gets
//! SIGTERM if the switch dies without stopping it
//! ([`sentiric_io::process::die_with_parent`]).
//!
//! ```toml
//! [plugins.sidecars.stt]
//! address = "127.0.0.1:7450"
//! certs = "/etc/sentiric/certs"
//! command = ["/usr/bin/python3", "/opt/stt/sidecar.py",
//!            "--listen", "127.0.0.1:7450", "--certs", "/etc/sentiric/certs"]
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits before a start again: the first, and the most.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MOST_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long resets the backoff.
const STEADY: Duration = Duration::from_secs(30);
/// How often the supervisor looks at its child.
const LOOK: Duration = Duration::from_millis(50);

/// One supervised sidecar: its thread and its process now.
pub(crate) struct Supervised {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervised {
    /// Starts `command` for the sidecar `name` and keeps it running;
    /// `exited` is called each time it exits (its connection is gone).
    pub(crate) fn start(
        name: &str,
        command: &[String],
        workdir: Option<&std::path::Path>,
        exited: impl Fn() + Send + 'static,
    ) -> std::io::Result<Supervised> {
        let stop = Arc::new(AtomicBool::new(false));
        let child = Arc::new(Mutex::new(None));
        let (s, c, name, command, workdir) = (
            Arc::clone(&stop),
            Arc::clone(&child),
            name.to_string(),
            command.to_vec(),
            workdir.map(std::path::Path::to_path_buf),
        );
        let thread = std::thread::Builder::new()
            .name(format!("sentiric-run-{name}"))
            .spawn(move || keep(&name, &command, workdir.as_deref(), &s, &c, &exited))?;
        Ok(Supervised {
            stop,
            child,
            thread: Some(thread),
        })
    }

    /// Stops it: no start again, the process killed.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(c) = self.child.lock().ok().as_mut().and_then(|c| c.as_mut()) {
            let _ = c.kill();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The supervisor's loop: start, watch, start again.
fn keep(
    name: &str,
    command: &[String],
    workdir: Option<&std::path::Path>,
    stop: &AtomicBool,
    slot: &Mutex<Option<Child>>,
    exited: &dyn Fn(),
) {
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let mut cmd = Command::new(&command[0]);
        if let Some(dir) = workdir {
            cmd.current_dir(dir);
        }
        cmd.args(&command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sentiric_io::process::die_with_parent(&mut cmd);
        match cmd.spawn() {
            Ok(mut child) => {
                tracing::info!(
                    plugin = name,
                    "sidecar {name}: started (pid {})",
                    child.id()
                );
                if let Some(out) = child.stdout.take() {
                    relay(name, out, false);
                }
                if let Some(err) = child.stderr.take() {
                    relay(name, err, true);
                }
                if let Ok(mut s) = slot.lock() {
                    *s = Some(child);
                }
                let status = loop {
                    std::thread::sleep(LOOK);
                    let Ok(mut s) = slot.lock() else {
                        return;
                    };
                    match s.as_mut().map(Child::try_wait) {
                        Some(Ok(Some(status))) => break Some(status),
                        Some(Ok(None)) => {}
                        _ => break None,
                    }
                };
                if stop.load(Ordering::Acquire) {
                    return;
                }
                exited();
                let how = status.map_or_else(|| "gone".to_string(), |s| s.to_string());
                tracing::warn!(
                    plugin = name,
                    "sidecar {name}: exited ({how}); starting it again in {} ms",
                    backoff.as_millis()
                );
            }
            Err(e) => tracing::error!(
                plugin = name,
                "sidecar {name}: {}: {e}; trying again in {} ms",
                command[0],
                backoff.as_millis()
            ),
        }
        if started.elapsed() >= STEADY {
            backoff = FIRST_BACKOFF;
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            std::thread::sleep(LOOK);
        }
        backoff = (backoff * 2).min(MOST_BACKOFF);
    }
}

/// Writes what the sidecar prints to the switch's log, a line at a time.
fn relay(name: &str, from: impl std::io::Read + Send + 'static, errors: bool) {
    let name = name.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("sentiric-log-{name}"))
        .spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                // A line that names its level (a tracing or logging
                // format's " INFO " near its start) keeps it; any other
                // on standard error is a warning.
                let head = line.get(..48).unwrap_or(&line);
                let level = ["ERROR", "WARN", "INFO", "DEBUG"].into_iter().find(|l| {
                    head.match_indices(l).any(|(at, _)| {
                        let b = head.as_bytes();
                        b.get(at + l.len()) == Some(&b' ') && (at == 0 || b[at - 1] == b' ')
                    })
                });
                match (level, errors) {
                    (Some("ERROR"), _) => tracing::error!(plugin = %name, "sidecar {name}: {line}"),
                    (Some("INFO" | "DEBUG"), _) | (None, false) => {
                        tracing::info!(plugin = %name, "sidecar {name}: {line}")
                    }
                    _ => tracing::warn!(plugin = %name, "sidecar {name}: {line}"),
                }
            }
        });
}
