//! What an agent costs a call, per 20 ms frame: the example echo agent
//! loaded as a cdylib against the same agent served as a gRPC sidecar over
//! mTLS on loopback, in the same run, and beside them the switch's own
//! audio work around any agent (the caller resampled to 16 kHz with voice
//! activity detection, the agent's play resampled back to 8 kHz).
//!
//! ```text
//! cargo build --release -p sentiric-plugin-echo-agent
//! cargo run --release -p sentiric-bench --example agent_cost -- [frames] [rounds]
//! ```
//!
//! Each frame is timed on its own. The cdylib's figure is the worker's
//! whole path: the input encoded (a 640-byte frame), the plugin's decode,
//! its conversation, the actions encoded and decoded by the host. The
//! sidecar's is one frame sent on the open `Converse` stream until its
//! echo comes back (the stream's HTTP/2 connection made once, TLS 1.3 with
//! client certificates). The audio figure is `AgentAudio::hear` on 20 ms
//! of 8 kHz speech-like sound and `speak` of the frame played back. Rounds
//! alternate the three (the sidecar a tenth as many frames); the figures
//! are the medians of the rounds' p50 and p99.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{median, pct};

use sentiric_media::agent::AgentAudio;
use sentiric_media::vad::VadConfig;
use sentiric_plugin_sdk::host::Library;
use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};

/// Frame `i` of the caller at 16 kHz, as the agent hears it.
fn frame(i: usize) -> Vec<u8> {
    (0..320)
        .flat_map(|n| {
            {
                let t = (i * 320 + n) as f64 / 16_000.0;
                ((t * 2.0 * std::f64::consts::PI * 440.0).sin() * 8000.0) as i16
            }
            .to_le_bytes()
        })
        .collect()
}

fn start() -> v1::ConverseStart {
    v1::ConverseStart {
        call: Some(v1::RouteRequest {
            call_id: "a84b4c76e66710@127.0.0.62".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            ..v1::RouteRequest::default()
        }),
        params: Default::default(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let frames: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let path = std::env::var("SENTIRIC_PLUGIN")
        .unwrap_or_else(|_| "target/release/libsentiric_plugin_echo_agent.so".into());
    let lib = Arc::new(
        Library::open(std::path::Path::new(&path)).unwrap_or_else(|e| {
            panic!("{e} (cargo build --release -p sentiric-plugin-echo-agent)")
        }),
    );
    lib.init("").unwrap();
    let mut conversation = lib.converse(&start()).unwrap();
    let mut audio = AgentAudio::new(VadConfig::default()).unwrap();
    let pcm: Vec<Vec<u8>> = (0..50).map(frame).collect();
    let caller: Vec<Vec<i16>> = (0..50)
        .map(|i| {
            frame(i)
                .chunks_exact(4)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        })
        .collect();
    let (mut c50, mut c99, mut a50, mut a99, mut s50, mut s99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut times = vec![0u64; frames];
    let (mut actions, mut heard, mut done, mut out) = (vec![], vec![], vec![], vec![]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut sidecar = rt.block_on(Sidecar::start());
    for _ in 0..rounds {
        for (i, t) in times.iter_mut().enumerate() {
            let input = Input::Audio(v1::AudioFrame {
                pcm: pcm[i % pcm.len()].clone(),
                time_ms: i as u64 * 20,
            });
            let t0 = Instant::now();
            conversation.input(input, &mut actions).unwrap();
            *t = t0.elapsed().as_nanos() as u64;
            assert!(matches!(
                actions.pop().and_then(|a| a.action),
                Some(Action::Play(_))
            ));
        }
        c50.push(pct(&mut times, 0.5));
        c99.push(pct(&mut times, 0.99));
        for (i, t) in times.iter_mut().enumerate() {
            let t0 = Instant::now();
            audio.hear(&caller[i % caller.len()], &mut heard);
            for h in heard.drain(..) {
                if let sentiric_media::agent::Heard::Audio { pcm, .. } = h {
                    audio.play("echo", &pcm, false);
                }
            }
            std::hint::black_box(audio.speak(&mut out, &mut done));
            *t = t0.elapsed().as_nanos() as u64;
        }
        a50.push(pct(&mut times, 0.5));
        a99.push(pct(&mut times, 0.99));
        let n = (frames / 10).max(1);
        let mut t = rt.block_on(sidecar.frames(&pcm, n));
        s50.push(pct(&mut t, 0.5));
        s99.push(pct(&mut t, 0.99));
    }
    let (c50, c99, a50, a99) = (median(c50), median(c99), median(a50), median(a99));
    let (s50, s99) = (median(s50), median(s99));
    println!(
        "frames={frames} rounds={rounds} cdylib_ns_p50={c50} p99={c99} \
         audio_ns_p50={a50} p99={a99} sidecar_us_p50={:.1} p99={:.1}",
        s50 as f64 / 1000.0,
        s99 as f64 / 1000.0,
    );
}

/// The echo agent served as a sidecar, and one conversation with it.
struct Sidecar {
    tx: tokio::sync::mpsc::Sender<v1::CallInput>,
    actions: sentiric_plugin_sdk::sidecar::tonic::Streaming<v1::CallAction>,
}

impl Sidecar {
    async fn start() -> Sidecar {
        use sentiric_plugin_echo_agent::EchoAgent;
        use sentiric_plugin_sdk::sidecar::tonic::codegen::tokio_stream::wrappers::ReceiverStream;
        let (addr, client_tls) = common::sidecar(EchoAgent).await;
        let channel = sentiric_plugin_sdk::sidecar::channel(
            addr,
            "localhost",
            &client_tls,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(v1::CallInput {
            input: Some(Input::Start(Box::new(start()))),
        })
        .await
        .unwrap();
        let actions = v1::agent_client::AgentClient::new(channel)
            .converse(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Sidecar { tx, actions }
    }

    /// `n` frames, each sent once the last came back: their round trips.
    async fn frames(&mut self, pcm: &[Vec<u8>], n: usize) -> Vec<u64> {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t0 = Instant::now();
            self.tx
                .send(v1::CallInput {
                    input: Some(Input::Audio(v1::AudioFrame {
                        pcm: pcm[i % pcm.len()].clone(),
                        time_ms: i as u64 * 20,
                    })),
                })
                .await
                .unwrap();
            let back = self.actions.message().await.unwrap();
            times.push(t0.elapsed().as_nanos() as u64);
            assert!(matches!(back.and_then(|a| a.action), Some(Action::Play(_))));
        }
        times
    }
}
