//! SIP load through the switch and through Kamailio, side by side: a SIPp
//! UAC (127.0.0.62) places calls through the element under test (on
//! 127.0.0.1) to a SIPp UAS (127.0.0.61); each call is INVITE, 180, 200,
//! ACK, a hold, BYE, 200.
//!
//! ```text
//! cargo build --release --bin sentiric -p sentiric-server
//! cargo run --release -p sentiric-bench --example sip_load -- <sentiric|kamailio> <cps> <calls> <hold_ms>
//! ```
//!
//! * **sentiric** runs as a B2BUA with media anchored: two RTP ports
//!   leased, bound and bridged in the relay for every call (the UAC sends
//!   no RTP; the ports are set up and torn down all the same), from
//!   10000–32767: below the kernel's ephemeral ports, and apart from
//!   SIPp's media ports (`-mp 40000`: SIPp binds a port per call, from
//!   6000 upwards by default, which would take the switch's). Ports
//!   rest 500 ms in quarantine instead of the default 2 s: these calls
//!   last a second and carry no RTP, so at thousands of calls per second
//!   the quarantine, not the calls, would hold most of the range (two
//!   RTP/RTCP pairs per call).
//! * **kamailio** (Debian `kamailio` 5.6) runs `bench/kamailio/proxy.cfg`:
//!   a stateful proxy (tm, record-route) with two worker processes, no
//!   media.
//!
//! Prints successful and failed calls, the element's CPU per call (every
//! thread of every process, from schedstat, over the whole run divided by
//! successful calls), the setup delay from INVITE to 200 at the UAC (p50,
//! p99; SIPp's millisecond resolution), and the element's proportional
//! set size (PSS, summed over its processes) at its peak minus before the
//! first call, divided by the calls up at the time (`calls` when every
//! call is up at once: make `hold_ms` longer than `calls / cps` seconds).
//! The run binds only loopback addresses.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const UAS: &str = "127.0.0.61:5100";

/// The element's process and its children (Kamailio forks its workers).
fn tree(root: u32) -> Vec<u32> {
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
fn cpu_ns(pids: &[u32]) -> u64 {
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

/// Proportional set size of `pids` in KiB.
fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-sip-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the element; returns it and the address it listens on.
fn start(target: &str, dir: &Path) -> (Running, String) {
    match target {
        "sentiric" => {
            let config = dir.join("sentiric.toml");
            std::fs::write(
                &config,
                format!(
                    "[sip]\nlisten = \"127.0.0.1:0\"\n[rtp]\nip = \"127.0.0.1\"\nmin_port = 10000\nmax_port = 32767\nquarantine_ms = 500\n\
                     [[dialplan.rule]]\nuser = \"uas\"\naction = \"bridge\"\ntargets = [\"sip:uas@{UAS}\"]\n"
                ),
            )
            .unwrap();
            let exe =
                std::env::var("SENTIRIC_BIN").unwrap_or_else(|_| "target/release/sentiric".into());
            let mut child = Command::new(&exe)
                .args(["run", "--config", config.to_str().unwrap()])
                .env("SENTIRIC_HTTP_LISTEN", "127.0.0.1:0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{exe}: {e} (cargo build --release --bin sentiric)"));
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let addr = line.trim().rsplit("udp:").next().unwrap().to_string();
            (Running(child), addr)
        }
        "kamailio" => {
            let template = include_str!("../kamailio/proxy.cfg");
            let addr = "127.0.0.1:5070".to_string();
            let cfg = template
                .replace("@LISTEN@", &addr)
                .replace("@CHILDREN@", "2")
                .replace("@UAS@", UAS);
            let path = dir.join("kamailio.cfg");
            std::fs::File::create(&path)
                .unwrap()
                .write_all(cfg.as_bytes())
                .unwrap();
            let child = Command::new("kamailio")
                .args([
                    "-f",
                    path.to_str().unwrap(),
                    "-DD",
                    "-E",
                    "-m",
                    "512",
                    "-M",
                    "32",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kamailio (Debian package kamailio) runs");
            std::thread::sleep(Duration::from_millis(800));
            (Running(child), addr)
        }
        other => {
            eprintln!("unknown target {other}: sentiric or kamailio");
            std::process::exit(2);
        }
    }
}

/// `Successful call` and `Failed call` totals from SIPp's final screen.
fn sipp_totals(screen: &str) -> (u64, u64) {
    let total = |label: &str| {
        screen
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.rsplit('|').next()?.trim().parse().ok())
            .unwrap_or(0)
    };
    (total("Successful call"), total("Failed call"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "sentiric".into());
    let cps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let calls: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let hold_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = scratch();

    let _uas = Running(
        Command::new("sipp")
            .current_dir(&dir)
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
    );
    let (element, addr) = start(&target, &dir);
    std::thread::sleep(Duration::from_millis(300));
    let pids = tree(element.0.id());
    let pss0 = pss_kib(&pids);
    let cpu0 = cpu_ns(&pids);

    // Sample the element's memory while the calls run.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(pss0));
    let sampler = {
        let (done, peak, pids) = (Arc::clone(&done), Arc::clone(&peak), pids.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(pss_kib(&pids), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let started = Instant::now();
    let uac = Command::new("sipp")
        .current_dir(&dir)
        .args([
            "-sn",
            "uac",
            "-s",
            "uas",
            "-i",
            "127.0.0.62",
            "-p",
            "5101",
            "-mp",
            "40000",
            "-r",
            &cps.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            &calls.to_string(),
            "-d",
            &hold_ms.to_string(),
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-nostdin",
            "-timeout",
            "600s",
            &addr,
        ])
        .output()
        .expect("sipp runs");
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let cpu = cpu_ns(&tree(element.0.id())) - cpu0;
    let screen = String::from_utf8_lossy(&uac.stdout);
    let (ok, failed) = sipp_totals(&screen);

    // Setup delays (ms) from SIPp's per-call response-time file.
    let mut srd: Vec<u64> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_rtt.csv"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| l.split(';').nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    srd.sort_unstable();
    let pct = |p: f64| {
        srd.get(((srd.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let peak_kib = peak.load(Ordering::Relaxed).saturating_sub(pss0);
    println!(
        "target={target} cps={cps} calls={calls} hold_ms={hold_ms} ok={ok} failed={failed} seconds={:.1} \
         cpu_us_per_call={:.1} srd_ms_p50={} p99={} pss_base_kib={pss0} pss_peak_over_base_kib={peak_kib} kib_per_call={:.1}",
        elapsed.as_secs_f64(),
        cpu as f64 / 1000.0 / ok.max(1) as f64,
        pct(0.5),
        pct(0.99),
        peak_kib as f64 / f64::from(calls.max(1)),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
