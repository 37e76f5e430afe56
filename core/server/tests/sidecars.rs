//! Dialplan sidecars in a running switch: the example prefix dialplan as
//! a sidecar process (this test binary run again, serving the plugin
//! with the SDK's `sidecar::run` over mTLS) gives the same decisions over
//! SIP calls as the same plugin loaded as a cdylib; a sidecar that stalls
//! past the deadline gives the call its fallback within the deadline; one
//! that is killed opens the circuit (calls fall back) and the circuit
//! closes once it is back; calls beyond a sidecar's `max_in_flight` take
//! the fallback at once; a decision's headers, codec preference, tags
//! (one from the INVITE's User-Agent, passed to the plugin) and redirect
//! reach the target's INVITE, the CDR and the caller; a call answered by an
//! agent (the sidecar's own echo conversation) hears what it plays, and a
//! caller who speaks stops an agent talking (the switch's own barge-in); the
//! Python example
//! sidecar (grpcio) routes calls through the switch as well.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{built, call, cdrs, python, routed, rtp, Switch};
use sentiric_plugin_prefix_dialplan::PrefixDialplan;
use sentiric_plugin_sdk::{v1, Dialplan, Plugin, PluginError};

/// The prefix dialplan, except that the user `stall` takes 300 ms, the
/// user `redirect` is sent to `sip:moved@127.0.0.9` with a 301, the
/// INVITEs of users starting `hdr` carry `X-Route: RULE` and prefer PCMA
/// (and their CDRs the caller's User-Agent), and the user
/// `agent` is answered by this sidecar's own agent (the caller's audio
/// back, as the echo agent does; `#` hangs up). The echo agent's own
/// crate is not linked in: two plugin libraries in one binary would both
/// export the ABI's symbols.
struct Slow(PrefixDialplan);

impl sentiric_plugin_sdk::Agent for Slow {
    fn start(
        &self,
        start: &v1::ConverseStart,
        _: sentiric_plugin_sdk::Later,
    ) -> Result<Box<dyn sentiric_plugin_sdk::Conversation>, PluginError> {
        // The route's parameters arrive with the call.
        if start.params.get("greeting").map(String::as_str) != Some("hello") {
            return Err(PluginError::new("no greeting"));
        }
        if start.params.contains_key("talk") {
            return Ok(Box::new(Talker::default()));
        }
        Ok(Box::new(Echo))
    }
}

/// An agent that talks on and on: eight seconds of a 500 Hz tone from the
/// caller's first frame, never stopped by itself whatever the caller
/// does. How its play ended, and when the switch said the caller spoke,
/// go into the CDR's tags.
#[derive(Default)]
struct Talker {
    playing: bool,
}

impl sentiric_plugin_sdk::Conversation for Talker {
    fn input(
        &mut self,
        input: v1::call_input::Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError> {
        use v1::call_action::Action;
        use v1::call_input::Input;
        let tags = |k: &str, v: String| {
            Action::CdrTags(v1::SetCdrTags {
                tags: [(k.to_string(), v)].into(),
            })
        };
        let action = match input {
            Input::Audio(_) if !self.playing => {
                self.playing = true;
                let pcm = (0..16_000 * 8)
                    .map(|i| {
                        (8000.0 * (std::f64::consts::TAU * 500.0 * f64::from(i) / 16_000.0).sin())
                            as i16
                    })
                    .flat_map(i16::to_le_bytes)
                    .collect();
                Action::Play(v1::PlayAudio {
                    id: "talk".into(),
                    pcm,
                    last: true,
                })
            }
            Input::SpeechStarted(s) => tags("speech_started_ms", s.time_ms.to_string()),
            Input::PlaybackDone(d) => tags(
                "playback",
                if d.interrupted {
                    "interrupted"
                } else {
                    "complete"
                }
                .to_string(),
            ),
            // Its last word, after the caller hung up: still in the CDR.
            Input::Ended(_) => tags("last_word", "after the end".to_string()),
            _ => return Ok(()),
        };
        actions.push(v1::CallAction {
            action: Some(action),
        });
        Ok(())
    }
}

/// One call's echo.
struct Echo;

impl sentiric_plugin_sdk::Conversation for Echo {
    fn input(
        &mut self,
        input: v1::call_input::Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError> {
        use v1::call_action::Action;
        let action = match input {
            v1::call_input::Input::Audio(f) => Action::Play(v1::PlayAudio {
                id: "echo".into(),
                pcm: f.pcm,
                last: false,
            }),
            v1::call_input::Input::Dtmf(d) if d.digit == "#" => {
                Action::HangUp(v1::HangUp { reason: "#".into() })
            }
            _ => return Ok(()),
        };
        actions.push(v1::CallAction {
            action: Some(action),
        });
        Ok(())
    }
}

impl Plugin for Slow {
    fn new(config: &str) -> Result<Self, PluginError> {
        PrefixDialplan::new(config).map(Slow)
    }

    fn dialplan(&self) -> Option<&dyn Dialplan> {
        Some(self)
    }

    fn agent(&self) -> Option<&dyn sentiric_plugin_sdk::Agent> {
        Some(self)
    }
}

impl Dialplan for Slow {
    fn route(&self, request: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError> {
        if request.user == "stall" {
            std::thread::sleep(Duration::from_millis(300));
        }
        if request.user == "decline" {
            return Ok(sentiric_plugin_sdk::decline("not mine").with_tag("seen_by", "sidecar"));
        }
        if request.user == "redirect" {
            return Ok(v1::RouteDecision {
                action: Some(v1::route_decision::Action::Redirect(v1::Redirect {
                    code: 301,
                    contacts: vec!["sip:moved@127.0.0.9".into()],
                })),
                rule: "moved".into(),
                ..v1::RouteDecision::default()
            });
        }
        if request.user == "agent" || request.user == "talker" {
            let mut params: std::collections::HashMap<String, String> =
                [("greeting".to_string(), "hello".to_string())].into();
            if request.user == "talker" {
                params.insert("talk".into(), "on".into());
            }
            return Ok(v1::RouteDecision {
                action: Some(v1::route_decision::Action::Answer(v1::Answer {
                    app: Some(v1::answer::App::Agent(v1::ConnectAgent {
                        plugin: "prefix".into(),
                        params,
                    })),
                })),
                rule: "the agent".into(),
                ..v1::RouteDecision::default()
            });
        }
        let mut d = self.0.dialplan().expect("a dialplan").route(request)?;
        if request.user.starts_with("hdr") {
            d.add_headers.insert("X-Route".into(), d.rule.clone());
            if let Some(v1::route_decision::Action::Bridge(b)) = d.action.as_mut() {
                b.codecs = vec!["PCMA".into()];
            }
            // The INVITE's headers the switch passes on.
            if let Some(agent) = request.headers.get("user-agent") {
                d.cdr_tags.insert("caller_agent".into(), agent.clone());
            }
        }
        Ok(d)
    }
}

/// Not a test: the sidecar process the tests start (this binary again,
/// with its arguments in `SENTIRIC_TEST_SIDECAR`).
#[test]
#[ignore = "the sidecar process the other tests start"]
fn sidecar_process() {
    let Ok(args) = std::env::var("SENTIRIC_TEST_SIDECAR") else {
        return;
    };
    let args = sentiric_plugin_sdk::sidecar::Args::parse(args.split(' ').map(String::from))
        .expect("sidecar arguments");
    sentiric_plugin_sdk::sidecar::run::<Slow>("test-prefix", args).expect("the sidecar serves");
}

/// A sidecar process serving [`Slow`] with `config` on `listen`, with
/// the certificates in `certs`.
struct Sidecar {
    child: Child,
    addr: SocketAddr,
}

impl Sidecar {
    /// This binary as the sidecar process.
    fn start(listen: &str, certs: &Path, config: &Path) -> Sidecar {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["sidecar_process", "--exact", "--ignored", "--nocapture"])
            .env(
                "SENTIRIC_TEST_SIDECAR",
                format!(
                    "--listen {listen} --certs {} --config {}",
                    certs.display(),
                    config.display()
                ),
            );
        Sidecar::spawn(cmd)
    }

    /// `cmd` as the sidecar process: it says where it listens on its
    /// standard output.
    fn spawn(mut cmd: Command) -> Sidecar {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let out = BufReader::new(child.stdout.take().unwrap());
        let addr = out
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("listening on ").nth(1)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{cmd:?} says where it listens"));
        Sidecar { child, addr }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory with development certificates (`sentiric certs init`)
/// and the dialplan's configuration.
fn setup(tag: &str, config: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-sidecars-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args(["certs", "init"])
        .arg(dir.join("certs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(dir.join("routes.toml"), config).unwrap();
    dir
}

/// A switch routing through the sidecar at `addr` (`more` more
/// `[plugins]` keys), the `[dialplan]` rules refusing with 486 as the
/// fallback.
fn with_sidecar(min_port: u16, dir: &Path, addr: SocketAddr, more: &str) -> Switch {
    with_sidecar_keys(min_port, dir, addr, more, "")
}

/// [`with_sidecar`], with `sidecar` more keys of the sidecar's table.
fn with_sidecar_keys(
    min_port: u16,
    dir: &Path,
    addr: SocketAddr,
    more: &str,
    sidecar: &str,
) -> Switch {
    let sw = Switch::start(
        Some(&format!(
            "{}[dialplan.default]\naction = \"reject\"\ncode = 486\n\
             [plugins]\ndialplan = \"prefix\"\n{more}\n\
             [plugins.sidecars.prefix]\naddress = \"{addr}\"\ncerts = \"{}\"\n{sidecar}\n",
            rtp(min_port),
            dir.join("certs").display()
        )),
        &[],
    );
    // Calls placed before the connection is up take the fallback: the
    // tests begin once it is (a busy machine takes a while).
    assert!(
        sw.wait_lines("sidecar prefix: connected", 1, Duration::from_secs(10)),
        "{:#?}",
        sw.log()
    );
    sw
}

/// Routes: +4930 to the echo test of `callee`, +49 to a user it does not
/// have, +44 always closed, else 404.
fn routes(callee: SocketAddr) -> String {
    format!(
        "[[route]]\nprefix = \"+4930\"\ntargets = [\"sip:600@{callee}\"]\n\
         [[route]]\nprefix = \"+49\"\ntargets = [\"sip:nobody@{callee}\"]\n\
         [[route]]\nprefix = \"+44\"\ntargets = [\"sip:600@{callee}\"]\nhours = \"00:00-00:00\"\n\
         [default]\ncode = 404\n"
    )
}

#[test]
fn the_prefix_plugin_decides_alike_as_cdylib_and_as_sidecar() {
    let callee = Switch::start(Some(&rtp(29_000)), &[]);
    let dir = setup("alike", &routes(callee.addr));
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let remote = with_sidecar(29_200, &dir, sidecar.addr, "");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let lib = "libsentiric_plugin_prefix_dialplan.so";
    std::fs::copy(built("sentiric_plugin_prefix_dialplan"), plugins.join(lib)).unwrap();
    let local = Switch::start(
        Some(&format!(
            "{}[plugins]\ndir = \"{}\"\ndialplan = \"sentiric-plugin-prefix-dialplan\"\n\
             [plugins.config]\nsentiric-plugin-prefix-dialplan = '''\n{}'''\n",
            rtp(29_400),
            plugins.display(),
            routes(callee.addr)
        )),
        &[],
    );
    let users = ["+4930123", "+4912", "+44207", "0800", "+493077"];
    let statuses = |sw: &Switch| users.map(|u| call(sw, u));
    let (by_sidecar, by_cdylib) = (statuses(&remote), statuses(&local));
    assert_eq!(by_sidecar, by_cdylib);
    assert_eq!(by_sidecar[0], 200, "bridged to the echo test");
    assert_eq!(by_sidecar[2], 480, "closed");
    assert_eq!(by_sidecar[3], 404, "the default");
    // The decisions as the events tell them: action, targets, rule.
    let decisions = |sw: &Switch| {
        routed(sw, users.len())
            .into_iter()
            .map(|r| (r["action"].clone(), r["targets"].clone(), r["rule"].clone()))
            .collect::<Vec<_>>()
    };
    let remote_decisions = decisions(&remote);
    assert_eq!(remote_decisions.len(), users.len());
    assert_eq!(remote_decisions, decisions(&local));
    assert_eq!(remote_decisions[1].2, "prefix +49");
    assert_eq!(
        remote.metric("sentiric_plugin_calls_total{plugin=\"prefix\",result=\"ok\"}"),
        Some(users.len() as f64)
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Microseconds from a call's CallStarted to its CallRouted, by call.
fn routing_us(sw: &Switch) -> Vec<i64> {
    let events = sw.events();
    let at = |body: &str, call_id: &str| {
        events.iter().find_map(|e| {
            (e["call_id"] == call_id && e["body"].get(body).is_some())
                .then(|| e["time_unix_us"].as_i64().unwrap())
        })
    };
    let mut ids: Vec<&str> = events
        .iter()
        .filter(|e| e["body"].get("CallStarted").is_some())
        .filter_map(|e| e["call_id"].as_str())
        .collect();
    ids.dedup();
    ids.into_iter()
        .map(|id| at("CallRouted", id).expect("routed") - at("CallStarted", id).unwrap())
        .collect()
}

#[test]
fn a_stalled_sidecar_gives_the_call_its_fallback_within_the_deadline() {
    let callee = Switch::start(Some(&rtp(29_600)), &[]);
    let dir = setup("stall", &routes(callee.addr));
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = with_sidecar(29_800, &dir, sidecar.addr, "deadline_ms = 50");
    assert_eq!(call(&sw, "+4930123"), 200);
    assert_eq!(call(&sw, "stall"), 486, "the fallback rules");
    assert_eq!(call(&sw, "+4930123"), 200, "the sidecar serves on");
    let took = routing_us(&sw);
    assert_eq!(took.len(), 3, "{took:?}");
    // The deadline, and a margin for this busy machine. The clock starts
    // when the switch asks the sidecar, a little before CallStarted is
    // stamped (the event is built after the request is on its way), so
    // the lower bound leaves a few milliseconds too.
    assert!(
        (45_000..150_000).contains(&took[1]),
        "routed after {} µs",
        took[1]
    );
    assert!(
        !sw.lines("no answer within 50ms").is_empty(),
        "{:#?}",
        sw.log()
    );
    assert_eq!(
        sw.metric("sentiric_plugin_timeouts_total{plugin=\"prefix\"}"),
        Some(1.0)
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_sidecar_opens_the_circuit_which_closes_when_it_is_back() {
    let callee = Switch::start(Some(&rtp(30_000)), &[]);
    let dir = setup("crash", &routes(callee.addr));
    let (certs, config) = (dir.join("certs"), dir.join("routes.toml"));
    let sidecar = Sidecar::start("127.0.0.1:0", &certs, &config);
    let addr = sidecar.addr;
    let sw = with_sidecar(
        30_200,
        &dir,
        addr,
        "breaker_failures = 2\nbreaker_cooldown_ms = 1000",
    );
    assert_eq!(call(&sw, "+4930123"), 200);
    // SIGKILL: the connection drops, the next connections are refused.
    drop(sidecar);
    for _ in 0..2 {
        assert_eq!(call(&sw, "+4930123"), 486, "the fallback rules");
    }
    assert!(
        sw.wait_line("circuit open after 2 failures", Duration::from_secs(2))
            .is_some(),
        "{:#?}",
        sw.log()
    );
    assert_eq!(call(&sw, "+4930123"), 486, "open: the sidecar not asked");
    assert_eq!(
        sw.metric("sentiric_plugin_calls_total{plugin=\"prefix\",result=\"skipped\"}"),
        Some(1.0)
    );
    assert_eq!(
        sw.metric("sentiric_plugin_circuit_open{plugin=\"prefix\"}"),
        Some(1.0)
    );
    // Back on the same address; after the cooldown a call tries it.
    let back = Sidecar::start(&addr.to_string(), &certs, &config);
    assert!(
        sw.wait_lines("sidecar prefix: connected", 2, Duration::from_secs(5)),
        "connected again: {:#?}",
        sw.log()
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        call(&sw, "+4930123"),
        200,
        "the probe reaches it: {:#?}",
        sw.log()
    );
    assert!(!sw.lines("circuit closed").is_empty());
    assert_eq!(call(&sw, "+4930123"), 200);
    assert_eq!(
        sw.metric("sentiric_plugin_circuit_open{plugin=\"prefix\"}"),
        Some(0.0)
    );
    drop(back);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Python the example sidecar runs on: `SENTIRIC_PYTHON`, or the
/// virtual environment `scripts/python.sh` makes (grpcio, grpcio-tools).

#[test]
fn the_python_sidecar_routes_calls_through_the_switch() {
    let callee = Switch::start(Some(&rtp(30_400)), &[]);
    let dir = setup(
        "python",
        &format!(
            "[[route]]\nprefix = \"+4930\"\ntargets = [\"sip:600@{}\"]\n\
             [[route]]\nprefix = \"+1900\"\nreject = 403\n\
             [[route]]\nprefix = \"600\"\nanswer = \"echo\"\n\
             [default]\ncode = 484\n",
            callee.addr
        ),
    );
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/python-dialplan/sidecar.py"))
        .args(["--listen", "127.0.0.1:0", "--certs"])
        .arg(dir.join("certs"))
        .arg("--config")
        .arg(dir.join("routes.toml"));
    let sidecar = Sidecar::spawn(cmd);
    let sw = with_sidecar(30_600, &dir, sidecar.addr, "");
    let users = ["+4930123", "+1900555", "600", "0800"];
    assert_eq!(users.map(|u| call(&sw, u)), [200, 403, 200, 484]);
    let rules: Vec<_> = routed(&sw, users.len())
        .into_iter()
        .map(|r| (r["action"].clone(), r["rule"].clone()))
        .collect();
    assert_eq!(
        rules,
        [
            ("bridge", "prefix +4930"),
            ("reject", "prefix +1900"),
            ("echo", "prefix 600"),
            ("reject", "default"),
        ]
        .map(|(a, r)| (serde_json::json!(a), serde_json::json!(r)))
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_decisions_headers_tags_and_redirect_reach_the_invite_cdr_and_caller() {
    // The target: a bare UDP socket that reads the INVITE and refuses it.
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let dir = setup(
        "headers",
        &format!(
            "[[route]]\nprefix = \"hdr\"\ntargets = [\"sip:hdr@{}\"]\n[default]\ncode = 404\n",
            target.local_addr().unwrap()
        ),
    );
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = std::sync::Arc::new(with_sidecar(30_800, &dir, sidecar.addr, ""));
    let caller = {
        let sw = std::sync::Arc::clone(&sw);
        std::thread::spawn(move || call(&sw, "hdr1"))
    };
    let mut buf = [0u8; 4096];
    let (n, from) = target.recv_from(&mut buf).expect("the INVITE");
    let invite = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(invite.starts_with("INVITE sip:hdr@"), "{invite}");
    assert!(invite.contains("\r\nX-Route: prefix hdr\r\n"), "{invite}");
    // The caller offered PCMU first; the decision prefers PCMA.
    let m = invite.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.contains(" RTP/AVP 8 0 "), "{m}");
    // 486, with the INVITE's dialog and transaction headers.
    let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
    for l in invite.lines() {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => busy.push_str(&format!("{l}\r\n")),
            "to" => busy.push_str(&format!("{l};tag=busy1\r\n")),
            _ => {}
        }
    }
    busy.push_str("Content-Length: 0\r\n\r\n");
    target.send_to(busy.as_bytes(), from).unwrap();
    assert_eq!(caller.join().unwrap(), 486);
    assert_eq!(call(&sw, "redirect"), 301);
    // Declined: the rules' 486, not the plugin's default 404.
    assert_eq!(call(&sw, "decline"), 486);

    // The CDRs (the switch's own SQLite): the tag, the redirect, the
    // declined call with the tag of its decline.
    let rows = cdrs(&sw, 3, Duration::from_secs(5));
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let declined = r#"{"seen_by":"sidecar"}"#;
    assert_eq!(
        rows.iter().filter(|r| r["tags"] == declined).count(),
        1,
        "{rows:#?}"
    );
    let by = |code: i64| {
        rows.iter()
            .find(|r| r["sip_code"] == code && r["tags"] != declined)
            .unwrap()
    };
    assert_eq!(
        by(486)["tags"],
        format!(
            r#"{{"caller_agent":"sentiric-call/{}","route_prefix":"hdr"}}"#,
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(by(301)["disposition"], "REDIRECTED");
    assert_eq!(by(301)["route"], "redirect sip:moved@127.0.0.9");
    assert_eq!(
        sw.metric("sentiric_plugin_calls_total{plugin=\"prefix\",result=\"declined\"}"),
        Some(1.0)
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calls_beyond_max_in_flight_take_the_fallback_without_waiting() {
    let callee = Switch::start(Some(&rtp(31_000)), &[]);
    let dir = setup("busy", &routes(callee.addr));
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = std::sync::Arc::new(with_sidecar_keys(
        31_200,
        &dir,
        sidecar.addr,
        "deadline_ms = 2000",
        "max_in_flight = 1",
    ));
    // The first call holds the one place for 300 ms …
    let stalled = {
        let sw = std::sync::Arc::clone(&sw);
        std::thread::spawn(move || call(&sw, "stall"))
    };
    let waiting = || sw.metric("sentiric_plugin_in_flight{plugin=\"prefix\"}");
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while waiting() != Some(1.0) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(waiting(), Some(1.0), "the first call waits on the sidecar");
    // … the second is not asked: the fallback rules, at once.
    assert_eq!(call(&sw, "+4930123"), 486);
    assert_eq!(stalled.join().unwrap(), 404, "the sidecar's own answer");
    assert_eq!(waiting(), Some(0.0));
    assert_eq!(
        sw.metric("sentiric_plugin_calls_total{plugin=\"prefix\",result=\"busy\"}"),
        Some(1.0)
    );
    assert!(!sw.lines("1 calls waiting on it").is_empty());
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The switch's own barge-in: a caller who speaks while the agent talks
/// stops the agent's play at once — the switch does it, and tells the
/// agent its play was interrupted; the agent itself never stops. And what
/// the agent says once the caller has hung up (its last turn's report,
/// tags) still reaches the call's CDR.
#[test]
fn a_caller_who_speaks_stops_the_agent_talking() {
    let dir = setup("barge-in", "[default]\ncode = 404\n");
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = with_sidecar(18_400, &dir, sidecar.addr, "");
    // Two seconds of silence, then the caller speaks.
    let speech = common::said("Excuse me, can I ask something?", 2000);
    let (play, record) = (dir.join("speak.wav"), dir.join("heard.wav"));
    std::fs::write(&play, common::wav_bytes(&speech)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args([
            "call",
            &format!("sip:talker@{}", sw.addr),
            "--duration",
            "6",
        ])
        .arg("--play")
        .arg(&play)
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the caller heard (the recording holds the packets that came):
    // the agent's tone while the caller was quiet, then nothing — its
    // eight seconds cut short soon after the caller began, at 2 s.
    let heard = common::wav_samples(&std::fs::read(&record).unwrap());
    let secs = heard.len() as f64 / 8000.0;
    // (The recording begins with the agent's first packet: its start-up
    // comes off the 2 s.)
    assert!(
        (1.5..3.2).contains(&secs),
        "the agent talked for {secs:.2} s"
    );
    let window = &heard[4000..11_000];
    let rms =
        (window.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / window.len() as f64).sqrt();
    assert!(rms > 2000.0, "the agent's tone before: rms {rms:.0}");
    assert!(common::share_at(window, 500.0) > 0.9);
    let cdr = common::cdrs(&sw, 1, Duration::from_secs(10));
    let tags: serde_json::Value =
        serde_json::from_str(cdr[0]["tags"].as_str().unwrap_or("{}")).unwrap();
    assert_eq!(tags["playback"], "interrupted", "{cdr:#?}");
    assert_eq!(tags["last_word"], "after the end", "{cdr:#?}");
    let spoke: u64 = tags["speech_started_ms"].as_str().unwrap().parse().unwrap();
    assert!(
        (2000..3000).contains(&spoke),
        "speech started at {spoke} ms"
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_call_answered_by_an_agent_hears_what_the_agent_plays() {
    let dir = setup("agent", "[default]\ncode = 404\n");
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = with_sidecar(31_400, &dir, sidecar.addr, "");
    let (best, summary) = common::echoed_through(&sw, &dir, "agent", &[]);
    // 1.000 on a quiet machine; a frame the agent answers late (tests in
    // parallel on two cores) leaves a gap that shifts what follows.
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    assert!(!sw.lines("connected to agent prefix").is_empty());
    let r = routed(&sw, 1);
    assert_eq!(
        (r[0]["action"].as_str(), r[0]["rule"].as_str()),
        (Some("agent"), Some("the agent"))
    );
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_agent_call_ends_when_its_sidecar_goes() {
    let dir = setup("agent-gone", "[default]\ncode = 404\n");
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let sw = std::sync::Arc::new(with_sidecar(31_600, &dir, sidecar.addr, ""));
    let caller = {
        let sw = std::sync::Arc::clone(&sw);
        std::thread::spawn(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
                .args([
                    "call",
                    &format!("sip:agent@{}", sw.addr),
                    "--duration",
                    "10",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        })
    };
    assert!(
        sw.wait_lines("connected to agent prefix", 1, Duration::from_secs(5)),
        "{:#?}",
        sw.log()
    );
    let t0 = std::time::Instant::now();
    drop(sidecar); // SIGKILL: the conversation's stream breaks
    let summary = caller.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{summary}");
    assert!(summary.contains("\"status\":200"), "{summary}");
    assert!(summary.contains("\"hung_up_by\":\"remote\""), "{summary}");
    assert!(!sw.lines("the call ends").is_empty(), "{:#?}", sw.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pid the switch's log gives its sidecar's `nth` start (1-based).
fn started_pid(sw: &Switch, nth: usize) -> u32 {
    let lines = sw.lines("sidecar prefix: started (pid ");
    let line = &lines[nth - 1];
    line.split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn a_sidecar_the_switch_runs_is_started_again_when_it_dies_and_goes_with_it() {
    let dir = setup("supervised", "[default]\ncode = 484\n");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/python-dialplan/sidecar.py");
    let command = format!(
        "command = [{:?}, {:?}, \"--listen\", \"{addr}\", \"--certs\", {:?}, \"--config\", {:?}]",
        python(),
        script,
        dir.join("certs"),
        dir.join("routes.toml")
    );
    // The switch starts it (and waits for the connection).
    let sw = with_sidecar_keys(33_600, &dir, addr, "", &command);
    assert_eq!(call(&sw, "0800"), 484, "the Python sidecar's default");
    // What it prints, in the switch's log.
    assert_eq!(
        sw.lines("sidecar prefix: sidecar python-dialplan listening on")
            .len(),
        1,
        "said once: {:#?}",
        sw.log()
    );
    // Past its first start's quiet time (10 s), so that what keeps the
    // restart below quiet is the restart's own.
    std::thread::sleep(Duration::from_secs(11));
    // Killed: started again, connected again, routing again.
    let first = started_pid(&sw, 1);
    assert!(Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap()
        .success());
    for (line, n) in [
        ("sidecar prefix: exited", 1),
        ("sidecar prefix: started (pid ", 2),
        ("sidecar prefix: connected", 2),
    ] {
        assert!(
            sw.wait_lines(line, n, Duration::from_secs(10)),
            "{line}: {:#?}",
            sw.log()
        );
    }
    assert_eq!(call(&sw, "0800"), 484, "routed by the sidecar again");
    // Its starts, the first and the second, are not outages.
    assert!(sw.lines("cannot connect").is_empty(), "{:#?}", sw.log());
    let r = routed(&sw, 2);
    assert_eq!(r[1]["rule"], "default", "{r:?}");
    // The switch killed outright: its sidecar goes too (SIGTERM from the
    // kernel, PR_SET_PDEATHSIG).
    let second = started_pid(&sw, 2);
    drop(sw);
    // Gone, or a zombie no one has reaped yet (its parent is gone).
    let state = || {
        std::fs::read_to_string(format!("/proc/{second}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()))
    };
    let alive = || state().is_some_and(|s| !s.starts_with('Z'));
    let t0 = std::time::Instant::now();
    while alive() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(), "the sidecar outlived the switch: {:?}", state());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn route_test_asks_a_sidecar_over_mtls() {
    let dir = setup(
        "route-test",
        "[[route]]\nprefix = \"+49\"\ntargets = [\"sip:de@127.0.0.5\"]\n",
    );
    let sidecar = Sidecar::start("127.0.0.1:0", &dir.join("certs"), &dir.join("routes.toml"));
    let ask = |user: &str, certs: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sentiric"))
            .args([
                "route-test",
                "--sidecar",
                &sidecar.addr.to_string(),
                "--user",
                user,
            ])
            .arg("--certs")
            .arg(certs)
            .output()
            .unwrap()
    };
    let out = ask("+4930", &dir.join("certs"));
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["decision"]["action"]["Bridge"]["targets"][0],
        "sip:de@127.0.0.5"
    );
    let out = ask("decline", &dir.join("certs"));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"Decline\""));
    // Another CA's certificates: refused at the handshake.
    let other = setup("route-test-other", "");
    let out = ask("+4930", &other.join("certs"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    // Named: which certificate, which CA file.
    let ca = other.join("certs").join("ca.pem");
    assert!(
        err.contains(&format!(
            "the sidecar's certificate is not signed by the CA in {}",
            ca.display()
        )),
        "{err}"
    );
    // No certificates there.
    let out = ask("+4930", &dir.join("nowhere"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// An agent written in Python on the SDK (`plugins/python-sdk`, its
/// `Agent` and `Conversation` classes, as pip installs it): a call the
/// rules connect to it hears its sweep back through the Python process,
/// and its digits go back as digits and into the CDR, `#` hanging up.
#[test]
fn an_agent_in_python_on_the_sdk_answers_calls() {
    let dir = setup("python-agent", "");
    let mut cmd = Command::new(python());
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../plugins/python-sdk/examples/echo_agent.py"),
    )
    .args(["--listen", "127.0.0.1:0", "--certs"])
    .arg(dir.join("certs"));
    let sidecar = Sidecar::spawn(cmd);
    let sw = Switch::start(
        Some(&format!(
            "{}[[dialplan.rule]]\nuser = \"agent\"\naction = \"agent\"\nagent = \"py\"\n\
             [plugins.sidecars.py]\naddress = \"{}\"\ncerts = \"{}\"\n",
            rtp(35_200),
            sidecar.addr,
            dir.join("certs").display()
        )),
        &[],
    );
    assert!(
        sw.wait_lines("sidecar py: connected", 1, Duration::from_secs(10)),
        "{:#?}",
        sw.log()
    );
    let (best, summary) = common::echoed_through(&sw, &dir, "agent", &[]);
    assert!(best > 0.8, "correlation {best:.3}: {summary}");
    common::echo_agent_digits(&sw, "agent");
    let cdr = cdrs(&sw, 2, Duration::from_secs(10));
    let tags: serde_json::Value =
        serde_json::from_str(cdr[0]["tags"].as_str().unwrap_or("{}")).unwrap();
    assert_eq!(tags["echo_digits"], "12", "{cdr:#?}");
    assert_eq!(tags["hangup_reason"], "caller pressed #", "{cdr:#?}");
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sidecar the switch runs that never listens: not warned of while it
/// starts (10 s), warned of once after. Its command, a relative path in
/// the config file, is run from the file's directory.
#[test]
fn a_supervised_sidecar_that_never_listens_is_warned_of_after_its_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = setup("never", "");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = dir.join("bin/quiet");
    std::fs::write(&script, "#!/bin/sh\npwd > started-in\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sw = Switch::start_at(
        &dir.join("switch.toml"),
        &format!(
            "{}[plugins]\ndialplan = \"never\"\n\
             [plugins.sidecars.never]\naddress = \"{addr}\"\ncerts = \"certs\"\n\
             command = [\"bin/quiet\"]\n",
            rtp(35_400),
        ),
        &[],
    );
    let t0 = std::time::Instant::now();
    assert!(
        sw.wait_lines("sidecar never: started (pid ", 1, Duration::from_secs(5)),
        "{:#?}",
        sw.log()
    );
    // Where it ran, once the script has written it (not only made it).
    let started_in = || std::fs::read_to_string(dir.join("started-in")).unwrap_or_default();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !started_in().ends_with('\n') && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        started_in().trim(),
        dir.canonicalize().unwrap().display().to_string()
    );
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    assert!(sw.lines("cannot connect").is_empty(), "{:#?}", sw.log());
    assert!(
        sw.wait_lines(
            "sidecar never: cannot connect to",
            1,
            Duration::from_secs(6)
        ),
        "{:#?}",
        sw.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sw.lines("cannot connect").len(), 1, "once: {:#?}", sw.log());
    drop(sw);
    let _ = std::fs::remove_dir_all(&dir);
}
