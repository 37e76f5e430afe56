//! SIP load through the switch and through Kamailio, side by side: a SIPp
//! UAC (127.0.0.62) places calls through the element under test (on
//! 127.0.0.1) to a SIPp UAS (127.0.0.61); each call is INVITE, 180, 200,
//! ACK, a hold, BYE, 200.
//!
//! ```text
//! cargo build --release --bin sentiric -p sentiric-server
//! cargo run --release -p sentiric-bench --example sip_load -- <sentiric|sentiric-plugin|sentiric-sidecar|kamailio> <cps> <calls> <hold_ms> [warm]
//! ```
//!
//! With `warm`, the same calls run once before the measured ones, and the
//! CPU figure is the measured pass's alone: the element in its steady
//! state (the switch's port sockets open, both elements past their first
//! calls). Memory is always from before the first call.
//!
//! * **sentiric** runs as a B2BUA with media anchored: two RTP ports
//!   leased and bridged in the relay for every call (the UAC sends no
//!   RTP; the ports are set up and torn down all the same), from a range
//!   starting at 10000: below the kernel's ephemeral ports, and apart from
//!   SIPp's media ports (`-mp 40000`: SIPp binds a port per call, from
//!   6000 upwards by default, which would take the switch's). The range
//!   is sized to the load, as a carrier sizes it: 40 ports per call per
//!   second (every partition holds twice what the rate keeps in use), at
//!   least 4,000 and at most up to 32767. A port's socket is bound once
//!   and kept for its next calls, and the pool hands out the port that
//!   rested last first, so once the first calls' ports are out of
//!   quarantine the run measures a switch whose ports' sockets are open
//!   (unless `hold_ms` keeps more calls up than have ended: then every
//!   call opens new ones; `warm` first runs the same calls once). Ports
//!   rest 500 ms in quarantine instead of the default 2 s:
//!   these calls last a second and carry no RTP, so at thousands of calls
//!   per second the quarantine, not the calls, would hold most of the
//!   range.
//! * **sentiric-plugin** is the same, routed by the example prefix
//!   dialplan loaded in process as a cdylib (`cargo build --release -p
//!   sentiric-plugin-prefix-dialplan` first) instead of the built-in rule.
//! * **sentiric-sidecar** routes the same calls through the same plugin
//!   served as a sidecar over mTLS on loopback (the release
//!   `sentiric-prefix-dialplan-sidecar`, certificates from `sentiric certs
//!   init`); the figures are the switch's own, the sidecar's CPU apart.
//! * **kamailio** (Debian `kamailio` 5.6) runs `bench/kamailio/proxy.cfg`:
//!   a stateful proxy (tm, record-route) with two worker processes, no
//!   media.
//!
//! Prints successful and failed calls, the element's CPU per call (every
//! thread of every process, from schedstat, over the whole run divided by
//! successful calls), the setup delay from INVITE to 200 at the UAC (p50,
//! p99; SIPp's millisecond resolution), the end delay from BYE to its 200
//! (`bye_ms`: what `[events] durable_end` adds to; SIPp's built-in UAC
//! scenario with a second response time), and the element's proportional
//! set size (PSS, summed over its processes) at its peak minus before the
//! first call, divided by the calls up at the time (`calls` when every
//! call is up at once: make `hold_ms` longer than `calls / cps` seconds).
//! The run binds only loopback addresses.
//!
//! With `SENTIRIC_BENCH_CALLGRIND=/abs/path/out` the switch runs under
//! valgrind's callgrind, counting only the measured calls' instructions
//! (every thread), printed per successful call: a figure that does not
//! move with the machine's other load. Valgrind slows the switch ~50×:
//! use tens of calls per second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{cpu_ns, tree, Running, UAS};

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

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-sip-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the element; returns it and the address it listens on.
fn start(target: &str, dir: &Path, cps: u32) -> (Running, String, Option<Running>) {
    match target {
        "sentiric" | "sentiric-plugin" | "sentiric-sidecar" => {
            let max_port = 10_000 + (cps * 40).clamp(4_000, 22_767);
            let rtp = format!(
                "[rtp]\nip = \"127.0.0.1\"\nmin_port = 10000\nmax_port = {max_port}\nquarantine_ms = 500\n"
            );
            let mut sidecar = None;
            let routing = if target == "sentiric" {
                format!(
                    "[[dialplan.rule]]\nuser = \"uas\"\naction = \"bridge\"\ntargets = [\"sip:uas@{UAS}\"]\n"
                )
            } else if target == "sentiric-sidecar" {
                // The same route from the example prefix dialplan served
                // as a sidecar (the release binary), over mTLS with
                // development certificates made here.
                let certs = dir.join("certs");
                let exe = |name: &str| Path::new("target/release").join(name);
                let made = Command::new(exe("sentiric"))
                    .args(["certs", "init"])
                    .arg(&certs)
                    .output()
                    .is_ok_and(|o| o.status.success());
                assert!(made, "sentiric certs init");
                let routes = dir.join("routes.toml");
                std::fs::write(
                    &routes,
                    format!("[[route]]\nprefix = \"uas\"\ntargets = [\"sip:uas@{UAS}\"]\n"),
                )
                .unwrap();
                let mut child = Command::new(exe("sentiric-prefix-dialplan-sidecar"))
                    .args(["--listen", "127.0.0.1:0", "--certs"])
                    .arg(&certs)
                    .arg("--config")
                    .arg(&routes)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("cargo build --release -p sentiric-plugin-prefix-dialplan");
                let mut line = String::new();
                std::io::BufRead::read_line(
                    &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                    &mut line,
                )
                .unwrap();
                let at = line.rsplit(' ').next().unwrap_or("").trim().to_string();
                sidecar = Some(Running(child));
                format!(
                    "[dialplan.default]\naction = \"reject\"\ncode = 503\n\
                     [plugins]\ndialplan = \"prefix\"\n\
                     [plugins.sidecars.prefix]\naddress = \"{at}\"\ncerts = \"{}\"\n",
                    certs.display()
                )
            } else {
                // The same route from the example prefix dialplan, in
                // process (the release cdylib, copied into a plugin
                // directory of the run's own).
                let plugins = dir.join("plugins");
                std::fs::create_dir_all(&plugins).unwrap();
                let lib = "libsentiric_plugin_prefix_dialplan.so";
                std::fs::copy(Path::new("target/release").join(lib), plugins.join(lib))
                    .expect("cargo build --release -p sentiric-plugin-prefix-dialplan");
                // Its fallback rule as a carrier would have one (and no
                // demo dialplan, whose conference room changes how calls
                // are placed on workers).
                format!(
                    "[dialplan.default]\naction = \"reject\"\ncode = 503\n\
                     [plugins]\ndir = \"{}\"\ndialplan = \"sentiric-plugin-prefix-dialplan\"\n\
                     [plugins.config]\nsentiric-plugin-prefix-dialplan = '''\n\
                     [[route]]\nprefix = \"uas\"\ntargets = [\"sip:uas@{UAS}\"]\n'''\n",
                    plugins.display()
                )
            };
            let (child, addr) = common::start_sentiric(dir, &format!("{rtp}{routing}"));
            (child, addr.to_string(), sidecar)
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
            (Running(child), addr, None)
        }
        other => {
            eprintln!(
                "unknown target {other}: sentiric, sentiric-plugin, sentiric-sidecar or kamailio"
            );
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

/// SIPp's built-in UAC scenario (`sipp -sd uac`) with a second response
/// time, from the BYE to its 200 (the first runs from the INVITE to the
/// 200), written to `dir`; its path.
fn uac_scenario(dir: &Path) -> String {
    let out = Command::new("sipp")
        .args(["-sd", "uac"])
        .output()
        .expect("sipp runs (Debian package sip-tester)");
    let xml = String::from_utf8_lossy(&out.stdout);
    let bye = xml.find("BYE sip:").expect("the scenario's BYE");
    let send = xml[..bye]
        .rfind("<send retrans=\"500\">")
        .expect("the BYE's <send>");
    let mut xml = xml.to_string();
    xml.replace_range(
        send..send + "<send retrans=\"500\">".len(),
        "<send retrans=\"500\" start_rtd=\"2\">",
    );
    let ok = xml[send..]
        .find("<recv response=\"200\"")
        .expect("the BYE's 200")
        + send;
    xml.replace_range(
        ok..ok + "<recv response=\"200\"".len(),
        "<recv response=\"200\" rtd=\"2\"",
    );
    let path = dir.join("uac.xml");
    std::fs::write(&path, xml).unwrap();
    path.to_string_lossy().into_owned()
}

/// Response time `rtd` of every call (ms, sorted) from SIPp's
/// `-trace_rtt` files in `dir` (`date;time;rtd` lines).
fn response_times(dir: &Path, rtd: u32) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_rtt.csv"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let mut f = l.split(';');
                    let (_, ms, n) = (f.next()?, f.next()?, f.next()?);
                    (n.trim().parse::<u32>().ok()? == rtd).then(|| ms.parse::<u64>().ok())?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort_unstable();
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "sentiric".into());
    let cps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let calls: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let hold_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let warm = args.next().as_deref() == Some("warm");
    let dir = scratch();

    let _uas = common::sipp_uas(&dir);
    // The sidecar, if any, runs apart: the switch's own cost is measured.
    let (element, addr, _sidecar) = start(&target, &dir, cps);
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
    let scenario = uac_scenario(&dir);
    let run_uac = |measured: bool| {
        let (rate, count, hold) = (cps.to_string(), calls.to_string(), hold_ms.to_string());
        let mut args = vec![
            "-sf",
            &scenario,
            "-s",
            "uas",
            "-i",
            "127.0.0.62",
            "-p",
            "5101",
            "-mp",
            "40000",
            "-r",
            &rate,
            "-m",
            &count,
            "-l",
            &count,
            "-d",
            &hold,
            "-nostdin",
            "-timeout",
            "600s",
        ];
        if measured {
            args.extend(["-trace_rtt", "-rtt_freq", "1"]);
        }
        args.push(&addr);
        Command::new("sipp")
            .current_dir(&dir)
            .args(&args)
            .output()
            .expect("sipp runs")
    };
    // Warm: the same calls once before the measured ones.
    let cpu0 = if warm {
        run_uac(false);
        std::thread::sleep(Duration::from_millis(hold_ms.min(2000)));
        cpu_ns(&tree(element.0.id()))
    } else {
        cpu0
    };
    let callgrind = std::env::var("SENTIRIC_BENCH_CALLGRIND").ok();
    let callgrind_control = |arg: &str| {
        let ok = Command::new("callgrind_control")
            .args([arg, &element.0.id().to_string()])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "callgrind_control {arg}");
    };
    if callgrind.is_some() {
        callgrind_control("--zero");
    }
    let started = Instant::now();
    let uac = run_uac(true);
    let elapsed = started.elapsed();
    // Instructions the switch ran for the measured calls (callgrind).
    let instructions = callgrind.map(|out| {
        callgrind_control("--dump");
        std::fs::read_dir(Path::new(&out).parent().unwrap_or(Path::new(".")))
            .unwrap()
            .flatten()
            .filter(|e| {
                let p = e.path();
                p.to_string_lossy().starts_with(&out) && p.to_string_lossy() != out
            })
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("summary: ")?.trim().parse::<u64>().ok())
            })
            .sum::<u64>()
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let cpu = cpu_ns(&tree(element.0.id())) - cpu0;
    let screen = String::from_utf8_lossy(&uac.stdout);
    let (ok, failed) = sipp_totals(&screen);

    // Setup delays (INVITE to 200) and end delays (BYE to 200), ms, from
    // SIPp's per-call response-time file.
    let (srd, end) = (response_times(&dir, 1), response_times(&dir, 2));
    let pct = |v: &[u64], p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let peak_kib = peak.load(Ordering::Relaxed).saturating_sub(pss0);
    if let Some(n) = instructions {
        println!(
            "instructions={n} per_call={:.0}",
            n as f64 / ok.max(1) as f64
        );
    }
    println!(
        "target={target} cps={cps} calls={calls} hold_ms={hold_ms} warm={warm} ok={ok} failed={failed} seconds={:.1} \
         cpu_us_per_call={:.1} srd_ms_p50={} p99={} bye_ms_p50={} bye_ms_p99={} pss_base_kib={pss0} pss_peak_over_base_kib={peak_kib} kib_per_call={:.1}",
        elapsed.as_secs_f64(),
        cpu as f64 / 1000.0 / ok.max(1) as f64,
        pct(&srd, 0.5),
        pct(&srd, 0.99),
        pct(&end, 0.5),
        pct(&end, 0.99),
        peak_kib as f64 / f64::from(calls.max(1)),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
