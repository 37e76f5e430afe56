//! The voice agent against real services on loopback: the DTMF speech
//! sidecar as its speech-to-text and text-to-speech (deterministic: keys
//! spoken as tones, tones heard as keys), the scripted OpenAI-compatible
//! server as its LLM, a webhook server; the conversation driven as the
//! switch drives it (inputs in, actions out through `Later`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sentiric_plugin_dtmf_speech::DtmfSpeech;
use sentiric_plugin_sdk::sidecar::{self, Tls};
use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};
use sentiric_plugin_sdk::{Agent, Conversation, Later, Plugin, SpeechToText, TextToSpeech};
use sentiric_plugin_voice_agent::scripted::{Reply, Script, ScriptedLlm};
use sentiric_plugin_voice_agent::VoiceAgent;
use tokio::sync::mpsc::UnboundedReceiver;

/// A fresh directory with development certificates.
fn certs(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sentiric-voice-agent-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    sentiric_plugin_sdk::certs::init(&dir).unwrap();
    dir
}

/// The DTMF speech services as a sidecar on a loopback port.
async fn speech_sidecar(certs: &Path) -> SocketAddr {
    let tls = Tls::from_files(
        &certs.join("ca.pem"),
        &certs.join("sidecar.pem"),
        &certs.join("sidecar-key.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        sidecar::serve(DtmfSpeech, listener, &tls, std::future::pending())
            .await
            .unwrap()
    });
    addr
}

/// A loopback port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The agent's configuration; `key`: a line for `[llm]`.
fn config(
    llm: &str,
    stt: SocketAddr,
    tts: SocketAddr,
    certs: &Path,
    key: &str,
    extra: &str,
) -> String {
    format!(
        r#"
        [llm]
        base_url = "{llm}"
        model = "scripted"
        timeout_ms = 5000
        {key}
        [stt]
        address = "{stt}"
        [tts]
        address = "{tts}"
        [speech_tls]
        certs = "{}"
        {extra}
        "#,
        certs.display()
    )
}

/// A conversation with the agent and what it does.
struct Call {
    conversation: Box<dyn Conversation>,
    actions: UnboundedReceiver<v1::CallAction>,
    ms: u64,
}

impl Call {
    fn start(agent: &VoiceAgent, params: &[(&str, &str)]) -> Call {
        let (tx, actions) = tokio::sync::mpsc::unbounded_channel();
        let start = v1::ConverseStart {
            call: Some(v1::RouteRequest {
                call_id: "voice-test".into(),
                ..Default::default()
            }),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let conversation = agent
            .start(&start, Later::new(move |a| tx.send(a).is_ok()))
            .unwrap();
        Call {
            conversation,
            actions,
            ms: 0,
        }
    }

    fn tell(&mut self, input: Input) {
        let mut out = Vec::new();
        self.conversation.input(input, &mut out).unwrap();
        assert!(out.is_empty(), "the voice agent answers later: {out:?}");
    }

    /// The caller says `keys` (as the DTMF speech synthesiser says them),
    /// framed by the switch's speech start and stop, in real time.
    async fn say(&mut self, keys: &str) {
        let pcm: Vec<u8> = DtmfSpeech
            .synthesize(&v1::Text {
                text: keys.into(),
                ..Default::default()
            })
            .unwrap()
            .flat_map(|c| c.unwrap().pcm)
            .collect();
        self.tell(Input::SpeechStarted(v1::SpeechStarted { time_ms: self.ms }));
        // Then 300 ms of silence, as the detector's hangover.
        let silence = vec![0u8; 640 * 15];
        for frame in pcm.chunks(640).chain(silence.chunks(640)) {
            let mut f = frame.to_vec();
            f.resize(640, 0);
            self.tell(Input::Audio(v1::AudioFrame {
                pcm: f,
                time_ms: self.ms,
            }));
            self.ms += 20;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.tell(Input::SpeechStopped(v1::SpeechStopped { time_ms: self.ms }));
    }

    /// The next action, within 10 s.
    async fn next(&mut self) -> Action {
        tokio::time::timeout(Duration::from_secs(10), self.actions.recv())
            .await
            .expect("an action within 10 s")
            .expect("the conversation goes on")
            .action
            .expect("an action")
    }

    /// Actions up to (and with) the first for which `last` holds.
    async fn until(&mut self, last: impl Fn(&Action) -> bool) -> Vec<Action> {
        let mut out = Vec::new();
        loop {
            let a = self.next().await;
            let done = last(&a);
            out.push(a);
            if done {
                return out;
            }
        }
    }
}

/// The keys heard in 16 kHz PCM, by the DTMF speech recogniser.
fn heard(pcm: &[u8]) -> String {
    let mut r = DtmfSpeech
        .start(&v1::Audio {
            sample_rate: 16_000,
            ..Default::default()
        })
        .unwrap();
    let mut out = Vec::new();
    for c in pcm.chunks(640) {
        r.audio(
            v1::Audio {
                pcm: c.to_vec(),
                sample_rate: 16_000,
                params: Default::default(),
            },
            &mut out,
        )
        .unwrap();
    }
    r.end(&mut out).unwrap();
    out.iter()
        .filter(|t| t.r#final)
        .map(|t| t.text.replace(' ', ""))
        .collect()
}

fn played(actions: &[Action], id: &str) -> (Vec<u8>, bool) {
    let mut pcm = Vec::new();
    let mut last = false;
    for a in actions {
        if let Action::Play(p) = a {
            if p.id == id {
                pcm.extend_from_slice(&p.pcm);
                last |= p.last;
            }
        }
    }
    (pcm, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_is_heard_answered_spoken_and_its_tools_run() {
    std::env::set_var("SENTIRIC_VOICE_AGENT_TEST_KEY", "test-key-not-secret");
    let dir = certs("turn");
    let speech = speech_sidecar(&dir).await;
    let llm = ScriptedLlm::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            reply: vec![Reply {
                when: "123".into(),
                chunks: vec!["45".into(), "6\n".into(), "78#".into()],
                tools: vec![
                    ("set_cdr_tags".into(), r#"{"tags":{"code":"123"}}"#.into()),
                    ("hang_up".into(), r#"{"reason":"caller done"}"#.into()),
                ],
                first_token_ms: 30,
                chunk_ms: 10,
            }],
        },
    )
    .await
    .unwrap();
    let key = "api_key_env = \"SENTIRIC_VOICE_AGENT_TEST_KEY\"";
    let agent = VoiceAgent::new(&config(&llm.base_url(), speech, speech, &dir, key, "")).unwrap();
    let mut call = Call::start(
        &agent,
        &[
            ("greeting", "0"),
            ("system_prompt", "Answer in keys."),
            ("tools", "hang_up,set_cdr_tags"),
        ],
    );
    // The greeting is said first, and reported as a turn of its own once
    // it has been heard.
    let greeting = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    let (pcm, last) = played(&greeting, "answer-1");
    assert!(last);
    assert_eq!(heard(&pcm), "0");
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: "answer-1".into(),
        interrupted: false,
    }));
    match call.next().await {
        Action::Turn(t) => assert_eq!((t.transcript.as_str(), t.response.as_str()), ("", "0")),
        other => panic!("{other:?}"),
    }

    let t0 = Instant::now();
    call.say("123").await;
    let mut turn = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    // Nothing hangs up before the answer is heard …
    assert!(!turn.iter().any(|a| matches!(a, Action::HangUp(_))));
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: "answer-2".into(),
        interrupted: false,
    }));
    turn.extend(call.until(|a| matches!(a, Action::Turn(_))).await);
    let Some(Action::Turn(report)) = turn.last() else {
        unreachable!()
    };
    assert_eq!(report.transcript, "123");
    assert_eq!(report.response, "456\n78#");
    assert_eq!(report.tools, ["set_cdr_tags", "hang_up"]);
    assert!(!report.interrupted);
    // The stages in order, each after the caller stopped.
    assert!(report.transcript_ms > 0, "{report:?}");
    assert!(
        report.first_token_ms >= report.transcript_ms + 25,
        "{report:?}"
    );
    assert!(report.first_audio_ms >= report.first_token_ms, "{report:?}");
    assert!(u128::from(report.first_audio_ms) < t0.elapsed().as_millis());
    // The answer spoken, sentence by sentence, as one play.
    let (pcm, last) = played(&turn, "answer-2");
    assert!(last);
    assert_eq!(heard(&pcm), "45678#");
    assert!(turn.iter().any(
        |a| matches!(a, Action::CdrTags(t) if t.tags.get("code").map(String::as_str) == Some("123"))
    ));
    // … then the call ends as the LLM asked.
    match call.next().await {
        Action::HangUp(h) => assert_eq!(h.reason, "caller done"),
        other => panic!("{other:?}"),
    }
    // What the endpoint was asked: the prompt, the greeting, the words,
    // the tools the route allows; the key as a bearer token.
    let asked = llm.asked();
    assert_eq!(asked.len(), 1);
    let body = &asked[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["content"], "Answer in keys.");
    assert_eq!(body["messages"][1]["role"], "assistant");
    assert_eq!(body["messages"][1]["content"], "0");
    assert_eq!(body["messages"][2]["content"], "123");
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["hang_up", "set_cdr_tags"]);
    assert_eq!(
        asked[0].authorization.as_deref(),
        Some("Bearer test-key-not-secret")
    );
    // The key is in no Debug output.
    assert!(!format!("{agent:?}").contains("test-key-not-secret"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_speech_over_the_answer_cancels_it() {
    let dir = certs("barge");
    let speech = speech_sidecar(&dir).await;
    let llm = ScriptedLlm::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            reply: vec![
                Reply {
                    when: "9".into(),
                    chunks: vec!["9".into()],
                    ..Default::default()
                },
                Reply {
                    // A long answer, slowly: sentence after sentence.
                    chunks: (0..20).map(|_| "1111\n".to_string()).collect(),
                    chunk_ms: 150,
                    ..Default::default()
                },
            ],
        },
    )
    .await
    .unwrap();
    let agent = VoiceAgent::new(&config(&llm.base_url(), speech, speech, &dir, "", "")).unwrap();
    let mut call = Call::start(&agent, &[]);
    call.say("5").await;
    // Its first audio …
    let first = call.until(|a| matches!(a, Action::Play(_))).await;
    assert!(matches!(first.last(), Some(Action::Play(p)) if p.id == "answer-1"));
    // … then the caller speaks over it.
    call.say("9").await;
    let cut = call.until(|a| matches!(a, Action::Turn(_))).await;
    assert!(cut.iter().any(|a| matches!(a, Action::Stop(_))), "{cut:?}");
    let Some(Action::Turn(report)) = cut.last() else {
        unreachable!()
    };
    assert!(report.interrupted);
    assert_eq!(report.transcript, "5");
    assert!(report.response.starts_with("1111"));
    assert!(report.response.len() < 20 * 5);
    // The new words get their own answer, reported once heard; nothing
    // of the one cut off comes after the stop.
    let answer = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    assert!(
        answer
            .iter()
            .all(|a| !matches!(a, Action::Play(p) if p.id == "answer-1")),
        "{answer:?}"
    );
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: "answer-2".into(),
        interrupted: false,
    }));
    let next = call.until(|a| matches!(a, Action::Turn(_))).await;
    let Some(Action::Turn(report)) = next.last() else {
        unreachable!()
    };
    assert_eq!(report.transcript, "9");
    assert_eq!(report.response, "9");
    // The LLM saw what was said before the barge-in.
    let asked = llm.asked();
    let messages = asked[1].body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"], "5");
    assert!(messages[2]["content"].as_str().unwrap().starts_with("1111"));
    assert_eq!(messages[3]["content"], "9");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_again_before_the_words_are_in_makes_one_turn() {
    let dir = certs("again");
    let speech = speech_sidecar(&dir).await;
    let llm = ScriptedLlm::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            reply: vec![Reply {
                chunks: vec!["7".into()],
                ..Default::default()
            }],
        },
    )
    .await
    .unwrap();
    let agent = VoiceAgent::new(&config(&llm.base_url(), speech, speech, &dir, "", "")).unwrap();
    let mut call = Call::start(&agent, &[]);
    // The caller's speech stops and starts again at once: the first
    // stretch's final transcript is mostly still on its way (a round trip
    // to the recogniser) when the second begins. Both are heard, as one
    // turn. (Should the first's words come in before the second begins,
    // their turn starts and is cut at once, its words going with the
    // next: the same answer.)
    call.say("12").await;
    call.say("34").await;
    let spoken = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    let Some(Action::Play(play)) = spoken.last() else {
        unreachable!()
    };
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: play.id.clone(),
        interrupted: false,
    }));
    let turn = call
        .until(|a| matches!(a, Action::Turn(t) if !t.interrupted))
        .await;
    let Some(Action::Turn(report)) = turn.last() else {
        unreachable!()
    };
    assert_eq!(report.transcript, "12 34");
    assert_eq!(report.response, "7");
    let asked = llm.asked();
    let messages = asked.last().unwrap().body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1]["content"], "12 34");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_to_text_down_plays_the_apology_then_hangs_up() {
    let dir = certs("stt-down");
    let speech = speech_sidecar(&dir).await;
    // The apology: half a second of a tone, as a WAV file at 8 kHz.
    let wav = dir.join("sorry.wav");
    let mut rec = sentiric_media::wav::WavRecorder::new(8_000, 1);
    let tone: Vec<i16> = (0..4000)
        .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
        .collect();
    rec.push(&tone, None);
    std::fs::write(&wav, rec.to_bytes()).unwrap();
    let llm = ScriptedLlm::start("127.0.0.1:0".parse().unwrap(), Script::default())
        .await
        .unwrap();
    let extra = format!("[failure]\napology_wav = \"{}\"", wav.display());
    let agent = VoiceAgent::new(&config(
        &llm.base_url(),
        closed_port(),
        speech,
        &dir,
        "",
        &extra,
    ))
    .unwrap();
    let mut call = Call::start(&agent, &[]);
    call.tell(Input::SpeechStarted(v1::SpeechStarted { time_ms: 0 }));
    let acts = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    assert!(acts.iter().any(|a| matches!(a, Action::CdrTags(t)
        if t.tags.get("agent_failure").map(String::as_str) == Some("stt_failed"))));
    let (pcm, last) = played(&acts, "apology");
    assert!(last);
    // Half a second at 16 kHz.
    assert!((15_000..=17_000).contains(&pcm.len()), "{}", pcm.len());
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: "apology".into(),
        interrupted: false,
    }));
    match call.next().await {
        Action::HangUp(h) => assert_eq!(h.reason, "stt_failed"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_speech_down_transfers_the_call() {
    let dir = certs("tts-down");
    let speech = speech_sidecar(&dir).await;
    let llm = ScriptedLlm::start("127.0.0.1:0".parse().unwrap(), Script::default())
        .await
        .unwrap();
    let extra = "[failure]\ntransfer_to = \"sip:operator@127.0.0.1:5999\"";
    let agent = VoiceAgent::new(&config(
        &llm.base_url(),
        speech,
        closed_port(),
        &dir,
        "",
        extra,
    ))
    .unwrap();
    // The greeting cannot be said.
    let mut call = Call::start(&agent, &[("greeting", "1")]);
    let acts = call.until(|a| matches!(a, Action::Transfer(_))).await;
    assert!(acts.iter().any(|a| matches!(a, Action::CdrTags(t)
        if t.tags.get("agent_failure").map(String::as_str) == Some("tts_failed"))));
    let Some(Action::Transfer(t)) = acts.last() else {
        unreachable!()
    };
    assert_eq!(t.uri, "sip:operator@127.0.0.1:5999");
    let _ = std::fs::remove_dir_all(dir);
}

/// A webhook on loopback: answers every POST with `answer`; the bodies it
/// got.
async fn webhook(answer: &'static str) -> (SocketAddr, UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Head, then Content-Length bytes of body.
                let body = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break text[end + 4..end + 4 + len].to_string();
                        }
                    }
                };
                let _ = tx.send(body);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answer_goes_back_to_the_llm_and_dtmf_and_transfer_are_sent() {
    let dir = certs("webhook");
    let speech = speech_sidecar(&dir).await;
    let (hook, mut posted) = webhook(r#"{"balance":"42"}"#).await;
    let llm = ScriptedLlm::start(
        "127.0.0.1:0".parse().unwrap(),
        Script {
            reply: vec![
                Reply {
                    // The webhook's answer came back: say it, send the
                    // digits, hand the call on.
                    when: "balance".into(),
                    chunks: vec!["42".into()],
                    tools: vec![
                        ("send_dtmf".into(), r#"{"digits":"42#"}"#.into()),
                        ("transfer".into(), r#"{"uri":"sip:desk@127.0.0.1"}"#.into()),
                    ],
                    ..Default::default()
                },
                Reply {
                    when: "7".into(),
                    tools: vec![("lookup".into(), r#"{"account":"7"}"#.into())],
                    ..Default::default()
                },
            ],
        },
    )
    .await
    .unwrap();
    let extra = format!(
        "[webhooks.lookup]\nurl = \"http://{hook}/balance\"\ndescription = \"An account's balance\"\n\
         parameters = '{{\"type\":\"object\",\"properties\":{{\"account\":{{\"type\":\"string\"}}}}}}'"
    );
    let agent =
        VoiceAgent::new(&config(&llm.base_url(), speech, speech, &dir, "", &extra)).unwrap();
    let mut call = Call::start(
        &agent,
        &[
            ("tools", "lookup,send_dtmf,transfer"),
            ("transfer_allow", "sip:desk@"),
        ],
    );
    call.say("7").await;
    let mut acts = call.until(|a| matches!(a, Action::Play(p) if p.last)).await;
    call.tell(Input::PlaybackDone(v1::PlaybackDone {
        id: "answer-1".into(),
        interrupted: false,
    }));
    acts.extend(call.until(|a| matches!(a, Action::Turn(_))).await);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), posted.recv())
            .await
            .unwrap()
            .unwrap(),
        r#"{"account":"7"}"#
    );
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::SendDtmf(d) if d.digits == "42#")));
    let Some(Action::Turn(report)) = acts.last() else {
        unreachable!()
    };
    assert_eq!(report.tools, ["lookup", "send_dtmf", "transfer"]);
    assert_eq!(heard(&played(&acts, "answer-1").0), "42");
    match call.next().await {
        Action::Transfer(t) => assert_eq!(t.uri, "sip:desk@127.0.0.1"),
        other => panic!("{other:?}"),
    }
    // The second request carried the webhook's answer as the tool's.
    let asked = llm.asked();
    assert_eq!(asked.len(), 2);
    let messages = asked[1].body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["content"], r#"{"balance":"42"}"#);
    let _ = std::fs::remove_dir_all(dir);
}
