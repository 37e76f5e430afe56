//! The echo agent as a sidecar process: a conversation over gRPC with
//! mTLS gets every frame of audio back as a play, a digit back as a digit
//! with the digits so far as a CDR tag, `#` hangs up, and a
//! stream that does not start with `start` is refused.

use std::time::Duration;

use sentiric_plugin_sdk::sidecar::{channel, tonic, Spawned, Tls};
use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};

/// The sidecar binary, on a loopback port, with the certificates in `certs`.
fn start(certs: &std::path::Path) -> Spawned {
    Spawned::start(
        env!("CARGO_BIN_EXE_sentiric-echo-agent-sidecar"),
        [std::ffi::OsStr::new("--certs"), certs.as_os_str()],
    )
    .unwrap()
}

/// The inputs as the request's stream.
fn stream(
    inputs: Vec<v1::CallInput>,
) -> impl tonic::codegen::tokio_stream::Stream<Item = v1::CallInput> {
    tonic::codegen::tokio_stream::iter(inputs)
}

fn input(i: Input) -> v1::CallInput {
    v1::CallInput { input: Some(i) }
}

/// 20 ms at 16 kHz: 320 samples, frame `n` a ramp of its own.
fn frame(n: u64) -> Vec<u8> {
    (0..320u16)
        .flat_map(|i| (i as i16 * 7 + n as i16).to_le_bytes())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn the_echo_agent_plays_the_callers_audio_back() {
    let dir = std::env::temp_dir().join(format!("sentiric-echo-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = dir.join("certs");
    sentiric_plugin_sdk::certs::init(&certs).unwrap();
    let sidecar = start(&certs);
    let tls = Tls::from_files(
        &certs.join("ca.pem"),
        &certs.join("switch.pem"),
        &certs.join("switch-key.pem"),
    )
    .unwrap();
    let ch = channel(sidecar.addr(), "localhost", &tls, Duration::from_secs(5))
        .await
        .unwrap();
    let mut agent = v1::agent_client::AgentClient::new(ch);

    // A call: start, five frames, a digit, then `#`.
    let mut inputs = vec![input(Input::Start(Box::default()))];
    inputs.extend((0..5).map(|n| {
        input(Input::Audio(v1::AudioFrame {
            pcm: frame(n),
            time_ms: n * 20,
        }))
    }));
    for digit in ["5", "#"] {
        inputs.push(input(Input::Dtmf(v1::Dtmf {
            digit: digit.into(),
            duration_ms: 100,
        })));
    }
    let mut actions = agent.converse(stream(inputs)).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(a) = tokio::time::timeout(Duration::from_secs(5), actions.message())
        .await
        .expect("the agent answers")
        .unwrap()
    {
        got.push(a.action.unwrap());
        if got.len() == 8 {
            break;
        }
    }
    for (n, a) in got[..5].iter().enumerate() {
        match a {
            Action::Play(p) => {
                assert_eq!((p.id.as_str(), p.last), ("echo", false));
                assert_eq!(p.pcm, frame(n as u64), "frame {n} back as it came");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        matches!(&got[5], Action::SendDtmf(d) if d.digits == "5"),
        "{:?}",
        got[5]
    );
    match &got[6] {
        Action::CdrTags(t) => assert_eq!(t.tags["echo_digits"], "5"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&got[7], Action::HangUp(_)), "{:?}", got[7]);

    // Audio before start: refused.
    let refused = agent
        .converse(stream(vec![input(Input::Audio(v1::AudioFrame {
            pcm: frame(0),
            time_ms: 0,
        }))]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let _ = std::fs::remove_dir_all(&dir);
}
