//! The B2BUA fed a sequence of datagrams from three peers, time steps and
//! routing decisions: whatever arrives, it must not panic, and its calls
//! must all end once the clock runs far enough.
//!
//! Input: parts separated by `\n--\n`; a part's first byte says what it
//! is: `a`/`b`/`c` a datagram from the caller, the callee or a stranger;
//! `A` a message from the caller over TCP; `t` a time step (the next byte, in units of 100 ms); `r` a routing
//! decision for every call waiting (the next byte picks bridge, echo,
//! play, conference, parallel bridge, agent, redirect or reject); `T` an
//! agent's transfer of every call to the callee.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sentiric_engine::b2bua::{
    B2bua, B2buaConfig, CallRef, Event, Leg, MediaEndpoint, MediaError, MediaPlane,
};
use sentiric_engine::dialplan::{Action, AfterPlay, Bridge, Fork, Transport};
use sentiric_sdp::SessionDescription;

struct Null;

impl MediaPlane for Null {
    fn offer(&mut self, _: CallRef, _: Leg, sdp: &SessionDescription<'_>) -> Result<MediaEndpoint, MediaError> {
        Ok(MediaEndpoint {
            ip: "127.0.0.1".parse().unwrap(),
            ports: vec![Some(40000); sdp.media.len()],
        })
    }
    fn echo(&mut self, c: CallRef, sdp: &SessionDescription<'_>) -> Result<MediaEndpoint, MediaError> {
        self.offer(c, Leg::A, sdp)
    }
    fn play(&mut self, c: CallRef, sdp: &SessionDescription<'_>, _: &str) -> Result<MediaEndpoint, MediaError> {
        self.offer(c, Leg::A, sdp)
    }
    fn conference(&mut self, c: CallRef, sdp: &SessionDescription<'_>, _: &str) -> Result<MediaEndpoint, MediaError> {
        self.offer(c, Leg::A, sdp)
    }
    fn agent(&mut self, c: CallRef, sdp: &SessionDescription<'_>, _: &str) -> Result<MediaEndpoint, MediaError> {
        self.offer(c, Leg::A, sdp)
    }
    fn release(&mut self, _: CallRef) {}
    // Offers extended with the switch's codecs, answers settled.
    fn transcodes(&self) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let peers: [SocketAddr; 3] = [
        "127.0.0.2:5060".parse().unwrap(),
        "127.0.0.3:5060".parse().unwrap(),
        "127.0.0.9:5060".parse().unwrap(),
    ];
    let mut cfg = B2buaConfig::new("127.0.0.1:5060".parse().unwrap(), 1);
    cfg.max_calls = Some(16);
    cfg.max_call_duration = Some(Duration::from_secs(120));
    let mut b2b = B2bua::new(cfg, Null);
    let mut now = Instant::now();
    let mut waiting: Vec<CallRef> = Vec::new();
    let text = data;
    let mut parts = Vec::new();
    let mut start = 0;
    let sep = b"\n--\n";
    let mut i = 0;
    while i + sep.len() <= text.len() {
        if &text[i..i + sep.len()] == sep {
            parts.push(&text[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&text[start..]);
    for part in parts.into_iter().take(64) {
        let Some((&kind, rest)) = part.split_first() else {
            continue;
        };
        match kind {
            b'a' | b'b' | b'c' => b2b.receive(now, rest, peers[usize::from(kind - b'a')]),
            b'A' => b2b.receive_over(now, rest, peers[0], Transport::Tcp),
            b'B' => b2b.receive_over(now, rest, peers[1], Transport::Tcp),
            // A prompt over (a call that plays one goes on, or is hung up),
            // a TCP target that cannot be reached.
            b'p' => {
                for call in 0..4 {
                    b2b.prompt_over(now, CallRef(call));
                }
            }
            b'x' => b2b.transport_failed(now, peers[1]),
            // An agent hands its call on (to the second peer).
            b'T' => {
                for call in 0..4 {
                    b2b.transfer(now, CallRef(call), "sip:bob@127.0.0.3:5060", Duration::from_secs(5));
                }
            }
            b't' => {
                now += Duration::from_millis(100 * u64::from(rest.first().copied().unwrap_or(1)));
                b2b.handle_timeout(now);
            }
            b'r' => {
                let pick = rest.first().copied().unwrap_or(0) % 10;
                for call in waiting.drain(..) {
                    let action = match pick {
                        0 => Action::Bridge(Bridge {
                            targets: vec!["sip:b@127.0.0.3:5060".into(), "sip:c@127.0.0.4".into()],
                            fork: Fork::Serial,
                            ring_timeout: Duration::from_secs(5),
                            headers: vec![("X-Route".into(), "fuzz".into())],
                            codecs: Vec::new(),
                        }),
                        1 => Action::Echo,
                        2 => Action::Play { prompt: "p".into(), then: AfterPlay::Hangup },
                        3 => Action::Conference { room: "r".into() },
                        4 => Action::Bridge(Bridge {
                            targets: vec!["sip:b@127.0.0.3:5060".into(), "sip:c@127.0.0.4".into()],
                            fork: Fork::Parallel,
                            ring_timeout: Duration::from_secs(5),
                            headers: vec![("X-Route".into(), "fuzz".into())],
                            codecs: Vec::new(),
                        }),
                        5 => Action::Play {
                            prompt: "p".into(),
                            then: AfterPlay::Continue(Box::new(Action::Bridge(Bridge {
                                targets: vec!["sip:b@127.0.0.3:5060;transport=tcp".into()],
                                fork: Fork::Serial,
                                ring_timeout: Duration::from_secs(5),
                                headers: Vec::new(),
                                codecs: Vec::new(),
                            }))),
                        },
                        6 => Action::Bridge(Bridge {
                            targets: vec!["sip:b@127.0.0.3:5060;transport=tcp".into(), "sip:c@127.0.0.4".into()],
                            fork: Fork::Serial,
                            ring_timeout: Duration::from_secs(5),
                            headers: vec![("X-Route".into(), "fuzz".into())],
                            codecs: Vec::new(),
                        }),
                        8 => Action::Agent {
                            agent: "a".into(),
                            params: Default::default(),
                        },
                        7 => Action::Redirect {
                            code: 302,
                            contacts: vec!["sip:elsewhere@127.0.0.5".into()],
                        },
                        _ => Action::Reject { code: 486, reason: "Busy Here".into() },
                    };
                    b2b.route(now, call, action);
                }
            }
            _ => {}
        }
        while let Some(ev) = b2b.poll_event() {
            if let Event::Route { call, .. } = ev {
                waiting.push(call);
            }
        }
        while b2b.poll_transmit().is_some() {}
    }
    // Let every timer run out: nothing may be left hanging forever.
    for call in waiting.drain(..) {
        b2b.route(now, call, Action::Reject { code: 480, reason: "x".into() });
    }
    let end = now + Duration::from_secs(3600);
    for _ in 0..100_000 {
        let Some(t) = b2b.poll_timeout().filter(|t| *t <= end) else { break };
        now = now.max(t);
        b2b.handle_timeout(now);
        while b2b.poll_event().is_some() {}
        while b2b.poll_transmit().is_some() {}
    }
    assert_eq!(b2b.calls(), 0, "calls left after every timer ran");
});
