//! The host side of the ABI against real libraries: the example prefix
//! dialplan, the example echo agent, the example DTMF speech services and
//! the faulty fixture plugin (built as cdylibs alongside this
//! test), and shared objects compiled here with the C compiler that speak
//! another ABI version or none.

#![cfg(feature = "host")]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::built;
use sentiric_plugin_sdk::host::{CallError, Library, LoadError};
use sentiric_plugin_sdk::v1::call_action::Action as Act;
use sentiric_plugin_sdk::v1::call_input::Input;
use sentiric_plugin_sdk::v1::route_decision::Action;
use sentiric_plugin_sdk::{abi, v1, InvalidDecision};

/// `source` compiled as a shared object named `name`.
fn compiled_c(name: &str, source: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-host-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let so = dir.join(format!("lib{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .output()
        .expect("a C compiler (cc)");
    assert!(out.status.success(), "{out:?}");
    so
}

fn request(user: &str) -> v1::RouteRequest {
    v1::RouteRequest {
        call_id: "c1".into(),
        user: user.into(),
        request_uri: format!("sip:{user}@127.0.0.1"),
        // 2026-12-01 10:00 UTC.
        time_unix_us: (1_764_547_200 + 10 * 3600) * 1_000_000,
        ..v1::RouteRequest::default()
    }
}

#[test]
fn the_example_dialplan_routes_through_the_abi() {
    let lib = Library::open(&built("sentiric_plugin_prefix_dialplan")).unwrap();
    let before = lib.info().unwrap();
    assert_eq!(before.name, "sentiric-plugin-prefix-dialplan");
    assert!(before.services.is_empty());
    let info = lib
        .init(
            "[[route]]\nprefix = \"+49\"\ntargets = [\"sip:de@127.0.0.1:5070\"]\nhours = \"08:00-18:00\"\n\
             [default]\ncode = 404\n",
        )
        .unwrap();
    assert_eq!(info.name, "sentiric-plugin-prefix-dialplan");
    assert_eq!(info.services, ["dialplan"]);
    let d = lib.route(&request("+4930123")).unwrap();
    match d.action {
        Some(Action::Bridge(b)) => assert_eq!(b.targets, ["sip:de@127.0.0.1:5070"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.rule, "prefix +49");
    let d = lib.route(&request("0800")).unwrap();
    assert!(matches!(
        d.action,
        Some(Action::Reject(v1::Reject { code: 404, .. }))
    ));
}

#[test]
fn a_misbehaving_plugin_fails_the_call_and_stays_usable() {
    // One test: the library's plugin is one per process.
    let lib = Arc::new(Library::open(&built("sentiric_plugin_faulty")).unwrap());
    // Before init: refused, not crashed.
    assert!(matches!(
        lib.route(&request("x")),
        Err(CallError::Refused(abi::NOT_INITIALISED, _))
    ));
    lib.init("sip:ok@127.0.0.1:5070").unwrap();
    match lib.route(&request("panic")) {
        Err(CallError::Panicked(m)) => assert!(m.contains("asked to panic"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lib.route(&request("error")),
        Err(CallError::Failed("asked to fail".into()))
    );
    assert_eq!(
        lib.route(&request("bad-code")),
        Err(CallError::Invalid(InvalidDecision::RejectCode(700)))
    );
    assert_eq!(
        lib.route(&request("no-targets")),
        Err(CallError::Invalid(InvalidDecision::Targets(0)))
    );
    assert!(matches!(
        lib.route(&request("header-injection")),
        Err(CallError::Invalid(InvalidDecision::Field(_)))
    ));
    // After all that, it still answers.
    let d = lib.route(&request("someone")).unwrap();
    assert!(matches!(d.action, Some(Action::Bridge(_))));
    a_misbehaving_agent_ends_its_conversation_and_no_other(&lib);
}

fn start(params: &[(&str, &str)]) -> v1::ConverseStart {
    v1::ConverseStart {
        call: Some(request("agent")),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn dtmf(digit: &str) -> Input {
    Input::Dtmf(v1::Dtmf {
        digit: digit.into(),
        duration_ms: 100,
    })
}

#[test]
fn the_example_agent_converses_through_the_abi_on_several_threads_at_once() {
    let lib = Arc::new(Library::open(&built("sentiric_plugin_echo_agent")).unwrap());
    assert_eq!(lib.init("").unwrap().services, ["agent"]);
    // Four calls, each on a thread of its own, each hearing only itself.
    let threads: Vec<_> = (0..4u8)
        .map(|n| {
            let lib = Arc::clone(&lib);
            std::thread::spawn(move || {
                let mut c = lib.converse(&start(&[])).unwrap();
                let mut actions = Vec::new();
                for i in 0..50u8 {
                    let pcm = vec![n ^ i; 640];
                    let frame = v1::AudioFrame {
                        pcm: pcm.clone(),
                        time_ms: u64::from(i) * 20,
                    };
                    c.input(Input::Audio(frame), &mut actions).unwrap();
                    match actions.pop().and_then(|a| a.action) {
                        Some(Act::Play(p)) => assert_eq!((p.id.as_str(), p.pcm), ("echo", pcm)),
                        other => panic!("{other:?}"),
                    }
                }
                c.input(dtmf("#"), &mut actions).unwrap();
                assert!(matches!(
                    actions.pop().and_then(|a| a.action),
                    Some(Act::HangUp(_))
                ));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn the_example_speech_services_speak_and_hear_through_the_abi() {
    let lib = Arc::new(Library::open(&built("sentiric_plugin_dtmf_speech")).unwrap());
    assert_eq!(
        lib.init("").unwrap().services,
        ["speech_to_text", "text_to_speech"]
    );
    let text = |t: &str| v1::Text {
        text: t.into(),
        sample_rate: 8_000,
        ..v1::Text::default()
    };
    // Made a chunk at a time as taken: 160 ms a key, 20 ms a chunk.
    let chunks: Vec<v1::Audio> = lib
        .synthesize(&text("*42"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks.len(), 24);
    // One left before its end is dropped (ended in the library).
    let mut abandoned = lib.synthesize(&text("1234567890")).unwrap();
    assert!(abandoned.next().is_some());
    drop(abandoned);
    let first = v1::Audio {
        sample_rate: 8_000,
        ..v1::Audio::default()
    };
    let mut r = lib.recognize(&first).unwrap();
    let mut heard = Vec::new();
    r.audio(first, &mut heard).unwrap();
    for c in chunks {
        r.audio(c, &mut heard).unwrap();
    }
    heard.extend(r.end().unwrap());
    let texts: Vec<(&str, bool)> = heard.iter().map(|t| (t.text.as_str(), t.r#final)).collect();
    assert_eq!(
        texts,
        [("*", false), ("*4", false), ("*42", false), ("*42", true)]
    );
    // What it cannot say: the plugin's error, from the start.
    assert!(matches!(
        lib.synthesize(&text("hello")),
        Err(CallError::Failed(m)) if m.contains("cannot speak 'h'")
    ));
}

/// The faulty plugin's agent (`lib` made): a conversation that panics or
/// fails ends, and no other.
fn a_misbehaving_agent_ends_its_conversation_and_no_other(lib: &Arc<Library>) {
    assert_eq!(
        lib.converse(&start(&[("fail", "")])).unwrap_err(),
        CallError::Failed("asked to fail at the start".into())
    );
    let mut actions = Vec::new();
    let mut calm = lib.converse(&start(&[])).unwrap();
    for (digit, failure) in [("1", "panicked: asked to panic"), ("2", "asked to fail")] {
        let mut c = lib.converse(&start(&[])).unwrap();
        c.input(dtmf("5"), &mut actions).unwrap();
        match c.input(dtmf(digit), &mut actions) {
            Err(CallError::Panicked(m) | CallError::Failed(m)) => assert_eq!(m, failure),
            other => panic!("{other:?}"),
        }
        // Over: later inputs fail without reaching the plugin.
        assert!(c.input(dtmf("5"), &mut actions).is_err());
        // The other conversation goes on.
        calm.input(dtmf("9"), &mut actions).unwrap();
    }
    let reasons: Vec<String> = actions
        .into_iter()
        .filter_map(|a| match a.action {
            Some(Act::HangUp(h)) => Some(h.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["dtmf 5", "dtmf 9", "dtmf 5", "dtmf 9"]);
    // What a conversation does on its own comes with the actions of its
    // next input, before them.
    let mut c = lib.converse(&start(&[])).unwrap();
    let mut actions = Vec::new();
    c.input(dtmf("4"), &mut actions).unwrap();
    assert!(actions.is_empty());
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.input(dtmf("5"), &mut actions).unwrap();
    match &actions[..] {
        [v1::CallAction {
            action: Some(Act::CdrTags(t)),
        }, v1::CallAction {
            action: Some(Act::HangUp(h)),
        }] => {
            assert_eq!(t.tags["later"], "4");
            assert_eq!(h.reason, "dtmf 5");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn libraries_of_another_abi_or_none_are_refused_when_loaded() {
    let other = compiled_c(
        "sentiric_abi_999",
        "unsigned int sentiric_plugin_abi_version(void) { return 999; }\n",
    );
    match Library::open(&other) {
        Err(
            e @ LoadError::AbiMismatch {
                found: 999,
                expected: abi::ABI_VERSION,
                ..
            },
        ) => assert!(e.to_string().contains("rebuild the plugin"), "{e}"),
        other => panic!("{other:?}"),
    }
    let none = compiled_c("not_a_plugin", "int nothing(void) { return 0; }\n");
    assert!(matches!(
        Library::open(&none),
        Err(LoadError::NotAPlugin(_))
    ));
    let missing = std::env::temp_dir().join("sentiric-no-such-plugin.so");
    assert!(matches!(
        Library::open(&missing),
        Err(LoadError::Open { .. })
    ));
}
