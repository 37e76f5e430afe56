//! In-process plugins in a running switch: calls placed with `sentiric
//! call` routed by the example prefix dialplan (loaded from a plugin
//! directory as a cdylib) to a second switch's echo test; a plugin that
//! panics (the call gets 500, the switch goes on), fails or answers out of
//! range (the `[dialplan]` rules decide, or 503), failing in a row (its
//! circuit opens, then closes after a cooldown); and a library of another
//! ABI version refused with a log line while the switch starts. The
//! example echo agent loaded the same way answers calls the rules connect
//! to it, and serves the built-in echo app in its place; an agent that
//! panics ends its call and no other.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{built, call, routed, rtp, Switch};

/// A plugin directory: the three test plugins, a library of ABI version 999
/// (compiled here) and a file that is not a library.
fn plugin_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-plugins-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "sentiric_plugin_prefix_dialplan",
        "sentiric_plugin_faulty",
        "sentiric_plugin_echo_agent",
    ] {
        std::fs::copy(built(name), dir.join(format!("lib{name}.so"))).unwrap();
    }
    let c = dir.join("old.c");
    std::fs::write(
        &c,
        "unsigned int sentiric_plugin_abi_version(void) { return 999; }\n",
    )
    .unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join("libold_plugin.so"))
        .arg(&c)
        .output()
        .expect("a C compiler (cc)");
    assert!(out.status.success(), "{out:?}");
    std::fs::write(dir.join("README"), "not a library").unwrap();
    dir
}

/// A switch routing through the plugin `dialplan` of `dir`, with
/// `config` for it, `on_failure` (and more `[plugins]` keys after it),
/// and rules (`[dialplan]`, fallback).
fn with_plugin(
    dir: &Path,
    min_port: u16,
    dialplan: &str,
    config: &str,
    on_failure: &str,
    rules: &str,
) -> Switch {
    Switch::start(
        Some(&format!(
            "{}{rules}[plugins]\ndir = \"{}\"\ndialplan = \"{dialplan}\"\non_failure = {on_failure}\n\
             [plugins.config]\n{dialplan} = '''\n{config}'''\n",
            rtp(min_port),
            dir.display()
        )),
        &[],
    )
}

#[test]
fn the_prefix_plugin_routes_calls_through_the_switch() {
    let dir = plugin_dir("prefix");
    // The callee: another switch's echo test (the demo dialplan's 600).
    let callee = Switch::start(Some(&rtp(30_800)), &[]);
    let config = format!(
        "[[route]]\nprefix = \"+4930\"\ntargets = [\"sip:600@{}\"]\n[default]\ncode = 404\n",
        callee.addr
    );
    let sw = with_plugin(
        &dir,
        31_000,
        "sentiric-plugin-prefix-dialplan",
        &config,
        "\"fallback\"",
        "",
    );
    // The other libraries: one refused for its ABI, the fixture loaded
    // (not the dialplan), the README not tried.
    assert!(
        sw.wait_line("plugin ABI version 999", Duration::from_secs(5))
            .is_some(),
        "{:#?}",
        sw.log()
    );
    assert_eq!(sw.lines("plugin sentiric-plugin-faulty").len(), 1);
    assert!(sw.lines("README").is_empty());

    assert_eq!(call(&sw, "+4930123"), 200, "bridged to the echo test");
    assert_eq!(call(&sw, "0800"), 404, "the plugin's default");
    let r = routed(&sw, 2);
    assert_eq!(r[0]["action"], "bridge", "{r:#?}");
    assert_eq!(r[0]["rule"], "prefix +4930");
    assert_eq!(r[0]["targets"][0], format!("sip:600@{}", callee.addr));
    assert_eq!(
        (r[1]["action"].as_str(), r[1]["rule"].as_str()),
        (Some("reject"), Some("default"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plugin_that_panics_fails_its_call_and_one_that_errs_falls_back() {
    let dir = plugin_dir("faulty");
    let callee = Switch::start(Some(&rtp(31_200)), &[]);
    // Fallback rules: everything is busy (a code the plugin never gives).
    let sw = with_plugin(
        &dir,
        31_400,
        "sentiric-plugin-faulty",
        &format!("sip:600@{}\n", callee.addr),
        "\"fallback\"",
        "[dialplan.default]\naction = \"reject\"\ncode = 486\n",
    );
    assert_eq!(call(&sw, "panic"), 500);
    assert_eq!(
        call(&sw, "someone"),
        200,
        "the switch goes on after a panic"
    );
    for user in ["error", "bad-code", "no-targets", "header-injection"] {
        assert_eq!(call(&sw, user), 486, "{user}: the rules decide");
    }
    assert!(!sw.lines("panicked: asked to panic").is_empty());
    assert!(!sw.lines("reject code 700 is not 400-699").is_empty());
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    for (result, n) in [("ok", 1), ("panic", 1), ("error", 4)] {
        let line = format!(
            "sentiric_plugin_calls_total{{plugin=\"sentiric-plugin-faulty\",result=\"{result}\"}} {n}"
        );
        assert!(
            metrics.contains(&line),
            "{line} in\n{metrics}\n{:#?}",
            sw.log()
        );
    }

    // Fail closed: 503.
    let closed = with_plugin(
        &dir,
        31_600,
        "sentiric-plugin-faulty",
        &format!("sip:600@{}\n", callee.addr),
        "\"reject\"",
        "",
    );
    assert_eq!(call(&closed, "error"), 503);
    assert_eq!(call(&closed, "panic"), 500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_in_a_row_open_the_circuit_and_a_call_after_the_cooldown_closes_it() {
    let dir = plugin_dir("breaker");
    let callee = Switch::start(Some(&rtp(32_000)), &[]);
    let sw = with_plugin(
        &dir,
        32_200,
        "sentiric-plugin-faulty",
        &format!("sip:600@{}\n", callee.addr),
        "\"fallback\"\nbreaker_failures = 3\nbreaker_cooldown_ms = 1500",
        "[dialplan.default]\naction = \"reject\"\ncode = 486\n",
    );
    assert_eq!(call(&sw, "someone"), 200);
    for _ in 0..3 {
        assert_eq!(call(&sw, "error"), 486);
    }
    assert!(!sw.lines("circuit open after 3 failures").is_empty());
    // Open: a call the plugin would bridge takes the fallback.
    assert_eq!(call(&sw, "someone"), 486, "the circuit is open");
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    assert!(
        metrics.contains("sentiric_plugin_circuit_open{plugin=\"sentiric-plugin-faulty\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("result=\"skipped\"} 1"), "{metrics}");
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(call(&sw, "someone"), 200, "the probe closes it");
    assert!(!sw.lines("circuit closed").is_empty());
    assert_eq!(call(&sw, "someone"), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plugin_that_declines_most_calls_keeps_serving_the_ones_it_takes() {
    let dir = plugin_dir("decline");
    let callee = Switch::start(Some(&rtp(33_800)), &[]);
    // The breaker opens after 3 failures in a row: 8 declines in a row
    // must not count as any.
    let sw = with_plugin(
        &dir,
        34_000,
        "sentiric-plugin-faulty",
        &format!("sip:600@{}\n", callee.addr),
        "\"reject\"\nbreaker_failures = 3",
        "[[dialplan.rule]]\nname = \"busy\"\nuser = \"decline-busy\"\naction = \"reject\"\ncode = 486\n\
         [dialplan.default]\naction = \"reject\"\ncode = 404\n",
    );
    for i in 0..8 {
        let user = if i % 2 == 0 {
            "decline-busy"
        } else {
            "decline-other"
        };
        let want = if i % 2 == 0 { 486 } else { 404 };
        assert_eq!(
            call(&sw, user),
            want,
            "{user}: the rules decide, not on_failure's 503"
        );
    }
    assert_eq!(
        call(&sw, "someone"),
        200,
        "the calls it takes: the circuit is closed"
    );
    // A decline that adds a header is the plugin's error: on_failure.
    assert_eq!(call(&sw, "declines-with-header"), 503);
    let r = routed(&sw, 10);
    assert_eq!(r.len(), 10, "{r:#?}");
    assert_eq!(
        r[0]["rule"], "busy (declined by sentiric-plugin-faulty)",
        "{r:#?}"
    );
    assert_eq!(r[0]["tags"]["seen_by"], "faulty", "its tags kept: {r:#?}");
    assert_eq!(r[1]["rule"], "declined by sentiric-plugin-faulty", "{r:#?}");
    assert_eq!(r[8]["action"], "bridge", "{r:#?}");
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    for line in [
        "sentiric_plugin_calls_total{plugin=\"sentiric-plugin-faulty\",result=\"declined\"} 8",
        "sentiric_plugin_calls_total{plugin=\"sentiric-plugin-faulty\",result=\"ok\"} 1",
        "sentiric_plugin_calls_total{plugin=\"sentiric-plugin-faulty\",result=\"error\"} 1",
        "sentiric_plugin_circuit_open{plugin=\"sentiric-plugin-faulty\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // Declines are not warned of; the one error is.
    assert!(sw.lines("not mine").is_empty(), "{:#?}", sw.log());
    let warned: Vec<String> = sw
        .log()
        .into_iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| l.contains("declined"))
        .collect();
    assert!(warned.is_empty(), "{warned:#?}");
    assert_eq!(
        sw.lines("a decline adds no headers").len(),
        1,
        "{:#?}",
        sw.log()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plugin_or_agent_that_is_not_there_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("sentiric-plugins-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("s.toml");
    let plugins = format!("[plugins]\ndir = \"{}\"\n", dir.display());
    for (config, error) in [
        (
            format!("{plugins}dialplan = \"nope\"\n"),
            "\"nope\" is not a dialplan plugin",
        ),
        (
            "[[dialplan.rule]]\naction = \"agent\"\nagent = \"nobody\"\n".into(),
            "dialplan: agent \"nobody\" is not a sidecar",
        ),
        (
            format!("{plugins}[plugins.apps]\necho = \"nobody\"\n"),
            "plugins.apps.echo: agent \"nobody\" is not a sidecar",
        ),
        (
            format!("{plugins}[plugins.apps]\nkaraoke = \"nobody\"\n"),
            "plugins.apps.karaoke: not a built-in app",
        ),
    ] {
        std::fs::write(&cfg, format!("{}{config}", rtp(31_800))).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("SENTIRIC_HTTP_LISTEN", "127.0.0.1:0")
            .env("SENTIRIC_EVENTS_OUTBOX", dir.join("events"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(error), "{error} in {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn certs_init_makes_a_ca_and_both_sides_certificates_once() {
    let dir = std::env::temp_dir().join(format!("sentiric-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["certs", "init", dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{out:?}");
    for f in [
        "ca.pem",
        "ca-key.pem",
        "sidecar.pem",
        "sidecar-key.pem",
        "switch.pem",
        "switch-key.pem",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN "), "{f}");
        if f.ends_with("-key.pem") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f}: {mode:o}");
        }
    }
    // Never over a CA already there.
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already there"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_reloads_the_rules_and_the_plugins_and_refuses_a_broken_config() {
    let dir = plugin_dir("reload");
    let rules = |code: u16| {
        format!(
            "{}[dialplan.default]\naction = \"reject\"\ncode = {code}\n",
            rtp(32_400)
        )
    };
    let sw = Switch::start(Some(&rules(486)), &[]);
    assert_eq!(call(&sw, "someone"), 486, "the built-in rules");
    let reload = |text: &str, line: &str| {
        let n = sw.lines(line).len() + 1;
        std::fs::write(sw.config_file(), text).unwrap();
        sw.signal("HUP");
        assert!(
            sw.wait_lines(line, n, Duration::from_secs(5)),
            "{line}: {:#?}",
            sw.log()
        );
    };
    reload(&rules(403), "SIGHUP: reloaded: dialplan static");
    assert_eq!(call(&sw, "someone"), 403, "the new rules");
    // The prefix plugin from the directory, its default 480.
    reload(
        &format!(
            "{}[plugins]\ndir = \"{}\"\ndialplan = \"sentiric-plugin-prefix-dialplan\"\n\
             [plugins.config]\nsentiric-plugin-prefix-dialplan = '''\n[default]\ncode = 480\n'''\n",
            rules(403),
            dir.display()
        ),
        "SIGHUP: reloaded: dialplan sentiric-plugin-prefix-dialplan",
    );
    assert_eq!(call(&sw, "someone"), 480, "the plugin decides");
    // The same library file with a new configuration: made again from it.
    reload(
        &format!(
            "{}[plugins]\ndir = \"{}\"\ndialplan = \"sentiric-plugin-prefix-dialplan\"\n\
             [plugins.config]\nsentiric-plugin-prefix-dialplan = '''\n[default]\ncode = 404\n'''\n",
            rules(403),
            dir.display()
        ),
        "SIGHUP: reloaded: dialplan sentiric-plugin-prefix-dialplan",
    );
    assert_eq!(call(&sw, "someone"), 404, "its new configuration");
    // A config that does not check: refused, the plugin stays.
    reload(
        "[dialplan.default]\naction = \"nope\"\n",
        "SIGHUP: reload refused",
    );
    assert_eq!(call(&sw, "someone"), 404);
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    for line in [
        "sentiric_plugin_calls_total{plugin=\"static\",result=\"ok\"} 2",
        "sentiric_plugin_calls_total{plugin=\"sentiric-plugin-prefix-dialplan\",result=\"ok\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dialplan library of the ABI written in C, built with `cc` into
/// `out`: plugin `reloadable` version `version`, rejecting every call with
/// `code`; a request that names `slow` makes the file `entered` beside
/// `out`, then waits (10 s at most) for the file `go` there, on the CPU
/// (as a plugin that computes: its worker is busy meanwhile): two builds
/// of one plugin, as a rebuild makes them.
fn reloadable(out: &Path, version: &str, code: u32) {
    use prost::Message;
    use sentiric_plugin_sdk::v1;
    let info = v1::PluginInfo {
        name: "reloadable".into(),
        version: version.into(),
        services: vec!["dialplan".into()],
    };
    let decision = sentiric_plugin_sdk::reject(code, format!("Build {version}"))
        .with_rule(format!("build {version}"));
    let bytes = |m: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        m(&mut b);
        b.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let c = format!(
        "#include <fcntl.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n#include <time.h>\n#include <unistd.h>\n\
         typedef struct {{ uint8_t *ptr; size_t len; size_t cap; }} Buf;\n\
         static uint8_t INFO[] = {{{}}};\nstatic uint8_t DECISION[] = {{{}}};\n\
         uint32_t sentiric_plugin_abi_version(void) {{ return {}; }}\n\
         int32_t sentiric_plugin_call(uint32_t m, const uint8_t *in, size_t len, Buf *out) {{\n\
           if (m == 0 || m == 1) {{ out->ptr = INFO; out->len = sizeof INFO; return 0; }}\n\
           if (m == 2) {{\n\
             if (memmem(in, len, \"slow\", 4)) {{\n\
               close(creat(\"{entered}\", 0644));\n\
               time_t t0 = time(NULL);\n\
               while (access(\"{go}\", F_OK) != 0 && time(NULL) - t0 < 10) {{}}\n\
             }}\n\
             out->ptr = DECISION; out->len = sizeof DECISION; return 0;\n\
           }}\n\
           return 4;\n\
         }}\n\
         void sentiric_plugin_free(Buf b) {{ (void)b; }}\n",
        bytes(&|b| info.encode(b).unwrap()),
        bytes(&|b| decision.encode(b).unwrap()),
        sentiric_plugin_sdk::abi::ABI_VERSION,
        entered = out.with_file_name("entered").display(),
        go = out.with_file_name("go").display(),
    );
    let src = out.with_extension("c");
    std::fs::write(&src, c).unwrap();
    let built = Command::new("cc")
        .args(["-D_GNU_SOURCE", "-shared", "-fPIC", "-Wl,--build-id", "-o"])
        .arg(out)
        .arg(&src)
        .output()
        .expect("a C compiler (cc)");
    assert!(built.status.success(), "{built:?}");
}

/// The build ids the switch logged loading the plugin `reloadable`.
fn build_ids(sw: &Switch) -> Vec<String> {
    sw.lines("plugin reloadable")
        .iter()
        .filter_map(|l| Some(l.split("(build id ").nth(1)?.split(')').next()?.to_string()))
        .collect()
}

/// The private copies of the library `file_name` the switch has mapped,
/// by inode.
fn mapped_copies(sw: &Switch, file_name: &str) -> std::collections::BTreeSet<String> {
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", sw.pid())).unwrap();
    maps.lines()
        .filter(|l| l.contains(&format!("memfd:sentiric-plugin:{file_name}")))
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect()
}

/// A call to `slow` through `sw`, whose [`reloadable`] plugin in `dir`
/// holds it until the file `go` is there: the caller's final status,
/// once the plugin has the call.
fn slow_call(sw: &Switch, dir: &Path) -> std::thread::JoinHandle<u64> {
    let addr = sw.addr;
    let slow = std::thread::spawn(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args(["call", &format!("sip:slow@{addr}"), "--duration", "0.5"])
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
        v["status"].as_u64().unwrap_or(0)
    });
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !dir.join("entered").exists() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dir.join("entered").exists(), "the plugin got the slow call");
    slow
}

#[test]
fn sighup_loads_a_rebuilt_library_while_calls_in_flight_finish_on_the_old_one() {
    let dir = std::env::temp_dir().join(format!("sentiric-plugins-rebuilt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libreloadable.so");
    reloadable(&lib, "1", 486);
    let sw = Switch::start(
        Some(&format!(
            "{}[plugins]\ndir = \"{}\"\ndialplan = \"reloadable\"\n",
            rtp(33_600),
            dir.display()
        )),
        &[],
    );
    assert_eq!(call(&sw, "someone"), 486, "build 1");
    // Build 2, made before: nothing is compiled while the call below waits.
    let new = dir.join("libreloadable.so.new");
    reloadable(&new, "2", 480);
    // A call that build 1 holds until the test lets it go: in flight over
    // the reload.
    let slow = slow_call(&sw, &dir);
    // Build 2 renamed into place as the guide says, then SIGHUP.
    std::fs::rename(&new, &lib).unwrap();
    sw.signal("HUP");
    assert!(
        sw.wait_lines("SIGHUP: reloaded", 1, Duration::from_secs(5)),
        "{:#?}",
        sw.log()
    );
    // Reloaded while the call is still being decided by build 1: both
    // builds are mapped.
    assert!(!slow.is_finished(), "the slow call ended before the reload");
    assert_eq!(mapped_copies(&sw, "libreloadable.so").len(), 2);
    std::fs::write(dir.join("go"), "").unwrap();
    // Decided by build 1 (build 2 would have answered 480).
    assert_eq!(
        slow.join().unwrap(),
        486,
        "the call in flight finished on build 1"
    );
    assert_eq!(
        call(&sw, "someone"),
        480,
        "build 2 takes the calls after the reload"
    );
    let r = routed(&sw, 3);
    assert_eq!(r[2]["rule"], "build 2", "{r:#?}");
    // Each load logged its build id, and they differ.
    let ids = build_ids(&sw);
    assert_eq!(ids.len(), 2, "{:#?}", sw.log());
    assert!(
        ids.iter().all(|id| id.len() >= 16 && id != "none"),
        "{ids:?}"
    );
    assert_ne!(ids[0], ids[1]);
    // Build 1 is unloaded once nothing holds it: one copy mapped.
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while mapped_copies(&sw, "libreloadable.so").len() > 1 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mapped_copies(&sw, "libreloadable.so").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An INVITE whose dialplan plugin takes long (in process: its worker
/// waits) is retransmitted by the caller meanwhile; by the time the
/// worker reads the retransmissions it has been busy for seconds, which
/// once made it hand them to the other worker as new calls: the plugin
/// was asked again and the call routed twice. They are the call's own
/// transaction's, and stay.
#[test]
fn retransmissions_of_an_invite_a_busy_worker_holds_are_not_new_calls() {
    let dir = std::env::temp_dir().join(format!("sentiric-plugins-retrans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    reloadable(&dir.join("libreloadable.so"), "1", 486);
    let sw = Switch::start(
        Some(&format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n\
             [rtp]\nip = \"127.0.0.1\"\nmin_port = 35600\nmax_port = 35799\n\
             [plugins]\ndir = \"{}\"\ndialplan = \"reloadable\"\n",
            dir.display()
        )),
        &[],
    );
    let slow = slow_call(&sw, &dir);
    // The caller retransmits at 0.5 s and 1.5 s while the plugin waits.
    std::thread::sleep(Duration::from_millis(2_200));
    std::fs::write(dir.join("go"), "").unwrap();
    assert_eq!(slow.join().unwrap(), 486);
    std::thread::sleep(Duration::from_millis(300));
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    let line = "sentiric_plugin_calls_total{plugin=\"reloadable\",result=\"ok\"} 1";
    assert!(
        metrics.contains(line),
        "{line} in\n{metrics}\n{:#?}",
        sw.log()
    );
    assert_eq!(sw.lines("call ended: 486").len(), 1, "{:#?}", sw.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn agents_in_process_answer_calls_and_serve_the_built_in_apps() {
    let dir = plugin_dir("agents");
    let echo = "sentiric-plugin-echo-agent";
    let sw = Switch::start(
        Some(&format!(
            "{}[[dialplan.rule]]\nuser = \"agent\"\naction = \"agent\"\nagent = \"{echo}\"\n\
             [[dialplan.rule]]\nuser = \"600\"\naction = \"echo\"\n\
             [[dialplan.rule]]\nuser = \"601\"\naction = \"echo\"\n\
             [[dialplan.rule]]\nuser = \"crash\"\naction = \"agent\"\nagent = \"sentiric-plugin-faulty\"\n\
             [[dialplan.rule]]\nuser = \"801\"\naction = \"conference\"\nroom = \"r\"\n\
             [plugins]\ndir = \"{}\"\nagent_max_calls = 1\nbreaker_failures = 1\n\
             breaker_cooldown_ms = 60000\non_failure = \"reject\"\n\
             [plugins.apps]\necho = \"{echo}\"\nconference = \"sentiric-plugin-faulty\"\n\
             [plugins.policy.{echo}]\non_failure = \"fallback\"\n",
            rtp(32_800),
            dir.display()
        )),
        &[],
    );
    // Connected by a rule: the caller hears its sweep back, through the
    // library's conversation on the worker's thread. A second call
    // meanwhile is beyond the agent's one call: 503 (the rules would send
    // it to the agent again); the echo test, which the agent serves, fails
    // open (its policy): the rules' echo, served by the switch itself.
    let first = std::thread::scope(|scope| {
        let first = scope.spawn(|| common::echoed_through(&sw, &dir, "agent", &[]));
        assert!(
            sw.wait_lines(
                &format!("connected to agent {echo}"),
                1,
                Duration::from_secs(5)
            ),
            "{:#?}",
            sw.log()
        );
        assert_eq!(call(&sw, "agent"), 503, "one call at a time");
        assert_eq!(call(&sw, "600"), 200, "the built-in echo");
        first.join().unwrap()
    });
    let (best, summary) = first;
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    assert!(!sw.lines("1 calls with it; 503").is_empty());
    // The echo app, served by the agent instead of the data plane.
    let (best, summary) = common::echoed_through(&sw, &dir, "600", &[]);
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    assert_eq!(
        sw.lines(&format!("connected to agent {echo}")).len(),
        2,
        "{:#?}",
        sw.log()
    );
    // In routing order: the busy one refused, the echo test built in, the
    // 600 call to the agent.
    let r = routed(&sw, 4);
    let said: Vec<(&str, &str)> = r[1..4]
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("reject", "agent sentiric-plugin-echo-agent unavailable"),
            (
                "echo",
                "agent sentiric-plugin-echo-agent unavailable: fallback"
            ),
            ("agent", "rule 1"),
        ]
    );
    // Digits: each to the agent, which sends it back (RFC 4733, in the
    // call's stream) and tags the CDR with the digits so far; `#` hangs
    // up.
    common::echo_agent_digits(&sw, "agent");
    // The call's events, once its end is written.
    let (mut events, t0) = (sw.events(), std::time::Instant::now());
    let call_id = events
        .iter()
        .rev()
        .find(|e| e["body"].get("DtmfReceived").is_some())
        .and_then(|e| e["call_id"].as_str())
        .expect("digits recorded")
        .to_string();
    while !events
        .iter()
        .any(|e| e["call_id"] == call_id.as_str() && e["body"].get("CallEnded").is_some())
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
        events = sw.events();
    }
    let of_call = |body: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["call_id"] == call_id.as_str())
            .filter_map(|e| e["body"].get(body).cloned())
            .collect()
    };
    let digits: Vec<serde_json::Value> = of_call("DtmfReceived")
        .iter()
        .map(|d| d["digit"].clone())
        .collect();
    assert_eq!(digits, ["1", "2", "#"]);
    let tagged = of_call("CallTagged");
    assert_eq!(
        tagged
            .iter()
            .rev()
            .find_map(|t| t["tags"].get("echo_digits").cloned()),
        Some(serde_json::json!("12")),
        "{tagged:?}"
    );
    // The agent's hang-up, with its reason, last.
    assert_eq!(
        tagged.last().map(|t| t["tags"]["hangup_reason"].clone()),
        Some(serde_json::json!("caller pressed #")),
        "{tagged:?}"
    );
    // An agent that panics (on the caller's digit 1) ends its call: the
    // switch hangs up, and goes on with the next.
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:crash@{}", sw.addr),
            "--dtmf",
            "1",
            "--duration",
            "10",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("\"status\":200"), "{summary}");
    assert!(summary.contains("\"hung_up_by\":\"remote\""), "{summary}");
    assert!(
        !sw.lines("panicked: asked to panic; the call ends")
            .is_empty(),
        "{:#?}",
        sw.log()
    );
    // Its circuit open after that failure (breaker_failures = 1): the
    // next calls to it are not answered, the conference it serves fails
    // closed ([plugins] on_failure).
    assert_eq!(call(&sw, "crash"), 503);
    assert_eq!(call(&sw, "801"), 503);
    // (The log is read on a thread of its own: the second line may come
    // a moment after the caller's 503.)
    assert!(
        sw.wait_lines(
            "agent sentiric-plugin-faulty: circuit open; 503",
            2,
            Duration::from_secs(5)
        ),
        "{:#?}",
        sw.log()
    );
    assert_eq!(
        sw.lines("agent sentiric-plugin-faulty: circuit open; 503")
            .len(),
        2
    );
    let (best, summary) = common::echoed_through(&sw, &dir, "601", &[]);
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    let metrics = common::http_get(sw.http(), "/metrics", None).1;
    let value = |metric: &str, plugin: &str, result: &str| {
        let series = format!("{metric}{{plugin=\"{plugin}\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let count = |plugin, result| value("sentiric_plugin_calls_total", plugin, result);
    // Each input a call into the plugin: 3 s of 20 ms frames, three calls.
    assert!(count(echo, "ok") > 300.0, "{metrics}");
    assert_eq!(count(echo, "error") + count(echo, "panic"), 0.0);
    assert_eq!(count("sentiric-plugin-faulty", "panic"), 1.0, "{metrics}");
    let conversations =
        |plugin, result| value("sentiric_plugin_conversations_total", plugin, result);
    for (plugin, result, n) in [
        (echo, "ok", 4.0),
        (echo, "busy", 2.0),
        ("sentiric-plugin-faulty", "error", 1.0),
        ("sentiric-plugin-faulty", "skipped", 2.0),
    ] {
        assert_eq!(
            conversations(plugin, result),
            n,
            "{plugin} {result}: {metrics}"
        );
    }
    // The built-in echo served the one call the agent could not take.
    assert_eq!(count("echo", "ok"), 1.0, "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_agent_hands_its_call_on_and_the_caller_talks_to_the_target() {
    let dir = plugin_dir("transfer");
    // The target: another switch's echo test.
    let callee = Switch::start(Some(&rtp(33_200)), &[]);
    let faulty = "sentiric-plugin-faulty";
    let sw = Switch::start(
        Some(&format!(
            "{}[[dialplan.rule]]\nuser = \"xfer\"\naction = \"agent\"\nagent = \"{faulty}\"\n\
             [plugins]\ndir = \"{}\"\n[plugins.config]\n{faulty} = \"sip:600@{}\"\n",
            rtp(33_400),
            dir.display(),
            callee.addr
        )),
        &[],
    );
    // Digit 3 at half a second: the agent transfers; the rest of the
    // caller's sweep goes to the target's echo and comes back.
    let (best, summary) = common::echoed_later(&sw, &dir, "xfer", &["--dtmf", "3"]);
    // 1.000 on a quiet machine.
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    for line in [
        format!("agent transfers the call to sip:600@{}", callee.addr),
        "transferred: the agent leaves the call".to_string(),
    ] {
        assert!(!sw.lines(&line).is_empty(), "{line}: {:#?}", sw.log());
    }
    // Answered once for the caller; the target answered the switch.
    assert_eq!(routed(&callee, 1).len(), 1);
    let answered = sw
        .events()
        .iter()
        .filter(|e| e["body"].get("CallAnswered").is_some())
        .count();
    assert_eq!(answered, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sentiric route-test ARGS`: exit status, standard output, standard error.
fn route_test(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .arg("route-test")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn route_test_prints_a_librarys_checked_decision_without_sip() {
    let dir = plugin_dir("route-test");
    let lib = |name: &str| dir.join(format!("lib{name}.so")).display().to_string();
    let prefix = lib("sentiric_plugin_prefix_dialplan");
    let config = dir.join("routes.toml");
    std::fs::write(
        &config,
        "[[route]]\nprefix = \"+49\"\ntargets = [\"sip:de@127.0.0.5\"]\n[default]\ndecline = true\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (code, out, err) = route_test(&[
        "--plugin",
        &prefix,
        "--config",
        &config,
        "--user",
        "+4930123",
        "--from",
        "sip:alice@127.0.0.2",
        "--header",
        "User-Agent: phone/1",
        "--header",
        "Diversion: <sip:a@127.0.0.3>",
        "--header",
        "diversion: <sip:b@127.0.0.4>",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        v["decision"]["action"]["Bridge"]["targets"][0], "sip:de@127.0.0.5",
        "{v:#}"
    );
    assert_eq!(v["decision"]["rule"], "prefix +49");
    assert_eq!(v["decision"]["cdr_tags"]["route_prefix"], "+49");
    // The request as the switch would pass it.
    assert_eq!(v["request"]["user"], "+4930123");
    assert_eq!(v["request"]["from_user"], "alice");
    assert_eq!(v["request"]["headers"]["user-agent"], "phone/1");
    assert_eq!(
        v["request"]["headers"]["diversion"],
        "<sip:a@127.0.0.3>, <sip:b@127.0.0.4>"
    );
    assert_eq!(v["request"]["trace_id"].as_str().map(str::len), Some(32));
    assert!(
        err.contains("plugin sentiric-plugin-prefix-dialplan 0.1.0 (build id "),
        "{err}"
    );
    assert!(!err.contains("(build id none"), "{err}");
    // A decline: a decision too, said so.
    let (code, out, err) =
        route_test(&["--plugin", &prefix, "--config", &config, "--user", "0800"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"Decline\""), "{out}");
    assert!(
        err.contains("the switch's [dialplan] rules decide"),
        "{err}"
    );

    let faulty = lib("sentiric_plugin_faulty");
    for (user, code, said) in [
        ("bad-code", 1, "reject code 700 is not 400-699"),
        ("error", 1, "asked to fail"),
        ("panic", 1, "panicked: asked to panic"),
        ("declines-with-header", 1, "a decline adds no headers"),
    ] {
        let (c, out, err) = route_test(&["--plugin", &faulty, "--user", user]);
        assert_eq!((c, out.as_str()), (code, ""), "{user}: {err}");
        assert!(err.contains(said), "{user}: {err}");
    }
    // Not a dialplan, not a library, a configuration it refuses.
    let (c, _, err) = route_test(&[
        "--plugin",
        &lib("sentiric_plugin_echo_agent"),
        "--user",
        "1",
    ]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("serves agent, not dialplan"), "{err}");
    let (c, _, err) = route_test(&["--plugin", &lib("old_plugin"), "--user", "1"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("plugin ABI version 999"), "{err}");
    std::fs::write(dir.join("bad.toml"), "nonsense = 1\n").unwrap();
    let bad = dir.join("bad.toml").display().to_string();
    let (c, _, err) = route_test(&["--plugin", &prefix, "--config", &bad, "--user", "1"]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("refused its configuration"), "{err}");
    // Neither a library nor a sidecar; a header that is not one.
    let (c, _, err) = route_test(&["--user", "1"]);
    assert_eq!(c, 2, "{err}");
    let (c, _, err) = route_test(&["--plugin", &prefix, "--user", "1", "--header", "no colon"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("NAME: VALUE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
