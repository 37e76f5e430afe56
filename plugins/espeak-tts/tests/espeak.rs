//! The espeak-ng synthesiser for real (Debian's espeak-ng must be
//! installed: the test command installs it), in process and as its
//! sidecar binary over mTLS.

use std::time::Duration;

use sentiric_plugin_espeak_tts::Espeak;
use sentiric_plugin_sdk::sidecar::{self, tonic, Spawned};
use sentiric_plugin_sdk::{v1, Plugin, TextToSpeech};

fn text(t: &str, rate: u32) -> v1::Text {
    v1::Text {
        text: t.into(),
        sample_rate: rate,
        ..Default::default()
    }
}

/// Duration (s) and RMS of 16-bit PCM at `rate`.
fn measure(pcm: &[u8], rate: u32) -> (f64, f64) {
    let s: Vec<f64> = pcm
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect();
    let rms = (s.iter().map(|x| x * x).sum::<f64>() / s.len().max(1) as f64).sqrt();
    (s.len() as f64 / f64::from(rate), rms)
}

#[test]
fn speech_comes_in_20_ms_chunks_at_the_rate_asked_for() {
    let tts = Espeak::new("").unwrap();
    for rate in [16_000, 8_000, 48_000] {
        let chunks: Vec<v1::Audio> = tts
            .synthesize(&text("Our opening hours are nine to five.", rate))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(chunks.iter().all(|c| c.sample_rate == rate));
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.pcm.len() == rate as usize / 50 * 2));
        let pcm: Vec<u8> = chunks.into_iter().flat_map(|c| c.pcm).collect();
        let (secs, rms) = measure(&pcm, rate);
        assert!((1.2..4.0).contains(&secs), "{secs} s at {rate}");
        assert!(rms > 500.0, "rms {rms}");
    }
    // A voice that is not a name is refused before anything runs.
    let mut bad = text("hello", 0);
    bad.voice = "en; rm -rf".into();
    assert!(tts.synthesize(&bad).is_err());
    // A voice espeak-ng does not have fails the synthesis, clearly.
    bad.voice = "xx-nonexistent".into();
    let first = tts.synthesize(&bad).unwrap().next();
    assert!(matches!(first, Some(Err(_)) | None), "{first:?}");
    // Dropped half-way (a barge-in): the program is ended with it.
    let mut long = tts
        .synthesize(&text(&"This goes on and on. ".repeat(40), 0))
        .unwrap();
    assert!(long.next().unwrap().is_ok());
    let running = espeak_children();
    assert_eq!(running.len(), 1, "{running:?}");
    drop(long);
    // Killed and reaped at once: no process left, not even a zombie.
    assert_eq!(espeak_children(), Vec::<String>::new());
    assert!(
        !std::path::Path::new(&format!("/proc/{}", running[0])).exists(),
        "espeak-ng {} still there",
        running[0]
    );
}

/// This process's espeak-ng children (their pids), zombies included.
fn espeak_children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().into_string().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid …: the command may hold spaces.
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1;
            let ppid = rest.split(' ').nth(1)?;
            (comm == "espeak-ng" && ppid == me).then_some(pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_speaks_over_mtls() {
    sidecar::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("sentiric-espeak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    sentiric_plugin_sdk::certs::init(&dir).unwrap();
    let certs = dir.to_str().unwrap();
    let side = Spawned::start(
        env!("CARGO_BIN_EXE_sentiric-espeak-tts-sidecar"),
        ["--certs", certs],
    )
    .unwrap();
    let tls = sidecar::Tls::from_files(
        &dir.join("ca.pem"),
        &dir.join("switch.pem"),
        &dir.join("switch-key.pem"),
    )
    .unwrap();
    let ch = sidecar::channel(side.addr(), "localhost", &tls, Duration::from_secs(5))
        .await
        .unwrap();
    let mut client = v1::text_to_speech_client::TextToSpeechClient::new(ch);
    let mut stream = client
        .synthesize(tonic::Request::new(text("Hello from the sidecar.", 16_000)))
        .await
        .unwrap()
        .into_inner();
    let mut pcm = Vec::new();
    while let Some(a) = stream.message().await.unwrap() {
        pcm.extend(a.pcm);
    }
    let (secs, rms) = measure(&pcm, 16_000);
    assert!((0.8..3.0).contains(&secs), "{secs}");
    assert!(rms > 500.0);
    let _ = std::fs::remove_dir_all(dir);
}
