//! What the load harnesses share: the element's processes and CPU time
//! from /proc, `sentiric run` started on a config of the harness's, a
//! plugin served as a sidecar in the harness's process, percentiles.
// Each harness uses part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The element's process and its children (Kamailio forks its workers).
pub(crate) fn tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        i += 1;
    }
    pids
}

/// CPU nanoseconds of every thread of every process in `pids`.
pub(crate) fn cpu_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU nanoseconds of each thread of process `pid`, summed by thread
/// name.
pub(crate) fn thread_cpu_ns(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *by_name.entry(name.trim().to_string()).or_insert(0) += ns;
    }
    by_name
}

/// Where the harnesses' SIPp UAS answers.
pub(crate) const UAS: &str = "127.0.0.61:5100";

/// A SIPp UAS on [`UAS`] (its media ports from 40000, apart from the
/// switch's), answering every INVITE, working in `dir`.
pub(crate) fn sipp_uas(dir: &Path) -> Running {
    Running(
        Command::new("sipp")
            .current_dir(dir)
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.61",
                "-p",
                "5100",
                "-mp",
                "40000",
                "-nostdin",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (Debian package sip-tester) runs"),
    )
}

pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    /// Kills the element and every process it started (Kamailio's workers
    /// outlive their parent otherwise, and pile up over a sweep).
    fn drop(&mut self) {
        let pids: Vec<String> = tree(self.0.id()).iter().map(u32::to_string).collect();
        let _ = Command::new("kill")
            .arg("-9")
            .args(&pids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// Starts `sentiric run` (`SENTIRIC_BIN`, else the release build) with
/// SIP on an ephemeral loopback port, `config` (TOML, `[sip]` aside)
/// written in `dir`, its event outbox in `dir/events` and its own CDR
/// writer off; returns it and the address it takes SIP on.
pub(crate) fn start_sentiric(dir: &Path, config: &str) -> (Running, SocketAddr) {
    let path = dir.join("sentiric.toml");
    std::fs::write(&path, format!("[sip]\nlisten = \"127.0.0.1:0\"\n{config}")).unwrap();
    let exe = std::env::var("SENTIRIC_BIN").unwrap_or_else(|_| "target/release/sentiric".into());
    // SENTIRIC_BENCH_CALLGRIND=FILE: the switch under callgrind (its
    // counts zeroed and dumped to FILE.N by `callgrind_control`), on
    // epoll (valgrind does not follow io_uring's rings).
    let mut cmd = match std::env::var("SENTIRIC_BENCH_CALLGRIND") {
        Ok(out) => {
            let mut c = Command::new("valgrind");
            c.args([
                "--tool=callgrind",
                &format!("--callgrind-out-file={out}"),
                &exe,
            ])
            .env("SENTIRIC_RTP_BACKEND", "epoll");
            c
        }
        Err(_) => Command::new(&exe),
    };
    let mut child = cmd
        .args(["run", "--config", path.to_str().unwrap()])
        .env("SENTIRIC_HTTP_LISTEN", "127.0.0.1:0")
        .env("SENTIRIC_EVENTS_OUTBOX", dir.join("events"))
        // The switch against the peer, not its embedded SQLite CDR writer:
        // a carrier runs `sentiric cdr` against PostgreSQL, a process of
        // its own (BENCHMARKS.md measures the writer apart; set
        // SENTIRIC_CDR_LOCAL=true to include it).
        .env(
            "SENTIRIC_CDR_LOCAL",
            std::env::var("SENTIRIC_CDR_LOCAL").unwrap_or_else(|_| "false".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{exe}: {e} (cargo build --release --bin sentiric)"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("udp:")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("sentiric said {line:?}"));
    (Running(child), addr)
}

/// The `p` quantile of `v` (sorted here).
pub(crate) fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

/// The median of `v`.
pub(crate) fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Serves `plugin` as a sidecar on a loopback port of this process's
/// runtime, with development certificates made here: its address, and
/// the switch's side of the mTLS.
pub(crate) async fn sidecar<P: sentiric_plugin_sdk::Plugin>(
    plugin: P,
) -> (SocketAddr, sentiric_plugin_sdk::sidecar::Tls) {
    use sentiric_plugin_sdk::certs::{Ca, Role};
    use sentiric_plugin_sdk::sidecar::{self, Tls};
    let ca = Ca::new("bench CA").unwrap();
    let tls = |role, name| {
        let p = ca.issue(role, name, &[], false).unwrap();
        Tls {
            ca: ca.cert.clone(),
            cert: p.cert,
            key: p.key,
            ca_file: None,
        }
    };
    let (server, client) = (tls(Role::Sidecar, "sidecar"), tls(Role::Switch, "switch"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        sidecar::serve(plugin, listener, &server, std::future::pending())
            .await
            .unwrap();
    });
    (addr, client)
}
