//! The static dialplan read from TOML as an operator writes it.

use std::net::SocketAddr;
use std::time::Duration;

use sentiric_engine::dialplan::{
    Action, AfterPlay, Bridge, Dialplan, DialplanConfig, Fork, RouteRequest, StaticDialplan,
    Transport,
};

#[derive(serde::Deserialize)]
struct File {
    dialplan: DialplanConfig,
}

fn load(toml_text: &str) -> Result<StaticDialplan, String> {
    let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    StaticDialplan::from_config(&file.dialplan).map_err(|e| e.to_string())
}

fn call(user: &str) -> RouteRequest<'_> {
    RouteRequest {
        request_uri: "sip:x@127.0.0.1",
        user: Some(user),
        from_uri: "sip:alice@127.0.0.9",
        from_user: Some("alice"),
        source: "127.0.0.9:5060".parse().unwrap(),
        transport: Transport::Udp,
        headers: &[],
    }
}

const CARRIER: &str = r#"
[[dialplan.rule]]
name = "echo test"
user = "600"
action = "echo"

[[dialplan.rule]]
name = "welcome"
user = "0"
action = "play"
prompt = "/var/lib/sentiric/welcome.wav"
then = "continue"

[[dialplan.rule]]
name = "operator"
user_prefix = "0"
action = "bridge"
targets = ["sip:operator@127.0.0.20"]

[[dialplan.rule]]
name = "uk"
user_regex = '^\+44\d{9,10}$'
source = ["127.0.0.0/24", "::1"]
action = "bridge"
targets = ["sip:{user}@127.0.0.10", "sip:{user}@127.0.0.11;transport=tcp"]
ring_timeout_s = 30
codecs = ["PCMA", "PCMU"]

[[dialplan.rule]]
name = "hunt group"
user = "500"
transport = "tcp"
action = "bridge"
fork = "parallel"
targets = ["sip:desk@127.0.0.30", "sip:mobile@127.0.0.31"]

[[dialplan.rule]]
name = "blocked caller"
from_regex = '^sip:mallory@'
action = "reject"
code = 603

[[dialplan.rule]]
name = "rooms"
user_prefix = "8"
action = "conference"
room = "room-{user}"

[[dialplan.rule]]
name = "support"
user = "5000"
action = "agent"
agent = "support-bot"
params = { greeting = "Hello {user}" }

[dialplan.default]
action = "reject"
code = 480
"#;

#[test]
fn rules_match_in_order_and_fill_templates() {
    let d = load(CARRIER).unwrap();
    assert_eq!(d.route(&call("600")), Action::Echo);
    assert_eq!(
        d.route(&call("+447700900123")),
        Action::Bridge(Bridge {
            targets: vec![
                "sip:+447700900123@127.0.0.10".into(),
                "sip:+447700900123@127.0.0.11;transport=tcp".into()
            ],
            fork: Fork::Serial,
            ring_timeout: Duration::from_secs(30),
            headers: Vec::new(),
            codecs: vec!["PCMA".into(), "PCMU".into()],
        })
    );
    // Too short for the regex: on to the default.
    assert_eq!(
        d.route(&call("+4477")),
        Action::Reject {
            code: 480,
            reason: "Temporarily Unavailable".into()
        }
    );
    assert_eq!(
        d.route(&call("801")),
        Action::Conference {
            room: "room-801".into()
        }
    );
    assert_eq!(d.matching_rule(&call("801")), Some("rooms"));
    assert_eq!(
        d.route(&call("5000")),
        Action::Agent {
            agent: "support-bot".into(),
            params: [("greeting".to_string(), "Hello 5000".to_string())].into(),
        }
    );
    assert_eq!(d.matching_rule(&call("999")), None);
}

#[test]
fn a_prompt_that_continues_goes_on_to_the_next_matching_rule() {
    let d = load(CARRIER).unwrap();
    let Action::Play { prompt, then } = d.route(&call("0")) else {
        panic!("not a prompt");
    };
    assert_eq!(prompt, "/var/lib/sentiric/welcome.wav");
    let AfterPlay::Continue(next) = then else {
        panic!("hangs up");
    };
    // "0" also starts with "0": the operator rule after the prompt.
    assert!(
        matches!(*next, Action::Bridge(ref b) if b.targets == ["sip:operator@127.0.0.20"]),
        "{next:?}"
    );
}

#[test]
fn source_transport_and_from_matchers() {
    let d = load(CARRIER).unwrap();
    let mut r = call("+447700900123");
    r.source = "127.0.1.9:5060".parse::<SocketAddr>().unwrap();
    assert_eq!(d.matching_rule(&r), None, "outside 127.0.0.0/24");
    r.source = "[::1]:5060".parse().unwrap();
    assert_eq!(d.matching_rule(&r), Some("uk"));

    let mut r = call("500");
    assert_eq!(d.matching_rule(&r), None, "the hunt group is TCP only");
    r.transport = Transport::Tcp;
    let Action::Bridge(b) = d.route(&r) else {
        panic!()
    };
    assert_eq!(b.fork, Fork::Parallel);
    assert_eq!(b.ring_timeout, Duration::from_secs(60));

    let mut r = call("123");
    r.from_uri = "sip:mallory@127.0.0.66";
    assert_eq!(
        d.route(&r),
        Action::Reject {
            code: 603,
            reason: "Decline".into()
        }
    );
}

#[test]
fn no_rules_and_no_default_is_404() {
    let d = load("[dialplan]\n").unwrap();
    assert_eq!(
        d.route(&call("1")),
        Action::Reject {
            code: 404,
            reason: "Not Found".into()
        }
    );
}

#[test]
fn the_demo_dialplan() {
    let d = StaticDialplan::demo();
    assert_eq!(d.route(&call("600")), Action::Echo);
    assert_eq!(
        d.route(&call("700")),
        Action::Play {
            prompt: "builtin:announcement".into(),
            then: AfterPlay::Hangup
        }
    );
    assert_eq!(
        d.route(&call("800")),
        Action::Conference {
            room: "demo".into()
        }
    );
    assert!(matches!(
        d.route(&call("601")),
        Action::Reject { code: 404, .. }
    ));
}

#[test]
fn bad_config_names_the_key() {
    let cases = [
        (
            "[[dialplan.rule]]\nuser_regex = '(['\naction = 'echo'\n",
            "dialplan.rule[0].user_regex",
        ),
        (
            "[[dialplan.rule]]\naction = 'echo'\n[[dialplan.rule]]\naction = 'echo'\nroom = 'x'\n",
            "dialplan.rule[1].room: not used by action \"echo\"",
        ),
        (
            "[[dialplan.rule]]\nuser = '1'\n",
            "dialplan.rule[0].action: missing",
        ),
        (
            "[[dialplan.rule]]\naction = 'dance'\n",
            "dialplan.rule[0].action: unknown action",
        ),
        (
            "[[dialplan.rule]]\naction = 'bridge'\ntargets = ['sip:a@127.0.0.1', 'not a uri']\n",
            "dialplan.rule[0].targets[1]",
        ),
        (
            "[[dialplan.rule]]\naction = 'bridge'\n",
            "dialplan.rule[0].targets",
        ),
        (
            "[[dialplan.rule]]\naction = 'reject'\ncode = 200\n",
            "dialplan.rule[0].code",
        ),
        (
            "[[dialplan.rule]]\naction = 'play'\n",
            "dialplan.rule[0].prompt",
        ),
        (
            "[[dialplan.rule]]\naction = 'agent'\nagent = ''\n",
            "dialplan.rule[0].agent",
        ),
        (
            "[[dialplan.rule]]\naction = 'bridge'\ntargets = ['sip:a@127.0.0.1']\ncodecs = ['PC MA']\n",
            "dialplan.rule[0].codecs",
        ),
        (
            "[[dialplan.rule]]\naction = 'echo'\ncodecs = ['PCMA']\n",
            "dialplan.rule[0].codecs: not used by action \"echo\"",
        ),
        (
            "[[dialplan.rule]]\naction = 'echo'\nagent = 'bot'\n",
            "dialplan.rule[0].agent: not used by action \"echo\"",
        ),
        (
            "[[dialplan.rule]]\naction = 'play'\nprompt = 'a.wav'\nthen = 'dance'\n",
            "dialplan.rule[0].then",
        ),
        (
            "[[dialplan.rule]]\nsource = ['10.0.0.0/40']\naction = 'echo'\n",
            "dialplan.rule[0].source[0]",
        ),
        (
            "[dialplan.default]\nuser = '1'\naction = 'echo'\n",
            "dialplan.default.user",
        ),
        (
            "[dialplan.default]\naction = 'play'\nprompt = 'a.wav'\nthen = 'continue'\n",
            "dialplan.default.then",
        ),
        // Unknown keys are refused by the parser, with the key's name.
        ("[[dialplan.rule]]\nusr = '1'\naction = 'echo'\n", "usr"),
        (
            "[[dialplan.rule]]\ntransport = 'carrier-pigeon'\naction = 'echo'\n",
            "transport",
        ),
    ];
    for (text, expected) in cases {
        let e = load(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(e.contains(expected), "{text}\n=> {e}\nwanted {expected}");
    }
}
