//! The DTMF speech services as a sidecar process, over gRPC with mTLS:
//! text synthesised there comes back as audio in 20 ms chunks, and that
//! audio streamed to its recogniser comes back as the same text; text it
//! cannot speak is refused.

use std::time::Duration;

use sentiric_plugin_sdk::sidecar::{channel, tonic, Spawned, Tls};
use sentiric_plugin_sdk::v1;

/// The sidecar binary, on a loopback port, with the certificates in `certs`.
fn start(certs: &std::path::Path) -> Spawned {
    Spawned::start(
        env!("CARGO_BIN_EXE_sentiric-dtmf-speech-sidecar"),
        [std::ffi::OsStr::new("--certs"), certs.as_os_str()],
    )
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn what_the_sidecar_says_its_recogniser_hears_back() {
    let dir = std::env::temp_dir().join(format!("sentiric-dtmf-speech-{}", std::process::id()));
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

    let mut tts = v1::text_to_speech_client::TextToSpeechClient::new(ch.clone());
    let mut stream = tts
        .synthesize(v1::Text {
            text: "4711#".into(),
            ..v1::Text::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(a) = stream.message().await.unwrap() {
        chunks.push(a);
    }
    // Five keys of 160 ms, in 20 ms chunks of 16 kHz: 40 of 640 bytes.
    assert_eq!(chunks.len(), 40);
    assert!(chunks
        .iter()
        .all(|c| c.pcm.len() == 640 && c.sample_rate == 16_000));

    let mut stt = v1::speech_to_text_client::SpeechToTextClient::new(ch.clone());
    let heard: Vec<v1::Transcript> = {
        let mut transcripts = stt
            .recognize(tonic::codegen::tokio_stream::iter(chunks))
            .await
            .unwrap()
            .into_inner();
        let mut heard = Vec::new();
        while let Some(t) = transcripts.message().await.unwrap() {
            heard.push(t);
        }
        heard
    };
    let finals: Vec<&str> = heard
        .iter()
        .filter(|t| t.r#final)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(finals, ["4711#"], "{heard:?}");
    assert_eq!(heard.iter().filter(|t| !t.r#final).count(), 5);

    let refused = tts
        .synthesize(v1::Text {
            text: "hello".into(),
            ..v1::Text::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let _ = std::fs::remove_dir_all(&dir);
}
