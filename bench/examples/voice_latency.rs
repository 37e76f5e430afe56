//! A voice agent's turn, timed from the caller's side of a live call:
//! the end of the caller's speech → the first packet of the agent's answer
//! arriving, and barge-in: the caller's onset over the answer → the
//! answer ducked → stopped; a 150 ms backchannel over it → not stopped.
//!
//! ```text
//! cargo build --release --bins -p sentiric-server \
//!     -p sentiric-plugin-voice-agent -p sentiric-plugin-espeak-tts
//! cargo build --release -p sentiric-bench --example voice_latency
//! target/release/examples/voice_latency stub [turns]   # speech services stubbed
//! target/release/examples/voice_latency real [turns]   # faster-whisper, espeak-ng
//! SENTIRIC_LLM_URL=http://127.0.0.1:8089/v1 \
//!     target/release/examples/voice_latency real [turns]   # and a real LLM
//! ```
//!
//! The switch (`target/release/sentiric`) runs the voice agent
//! (`target/release/sentiric-voice-agent`) as its sidecar; the LLM is the
//! scripted OpenAI-compatible server (first token at once), in this
//! process, or the endpoint `SENTIRIC_LLM_URL` names (model
//! `SENTIRIC_LLM_MODEL`; e.g. the demo's llama-server on SmolLM2) — then
//! every turn is a plain one (no barge-in: a model's answer may be over
//! before the caller would speak into it). `stub`: speech-to-text and text-to-speech are sidecars in
//! this process that answer at once (the transcript when the audio ends;
//! two seconds of a tone per sentence), so what is measured is the
//! switch's and the agent's own work and the hops between them. `real`:
//! the faster-whisper sidecar (Python, `target/python`) and the espeak-ng
//! sidecar, run by the switch, on this CPU.
//!
//! The caller (SIP and RTP on 127.0.0.74) says a question espeak-ng
//! made, waits for the answer and for its end; every other turn it
//! speaks again a second into the answer (barge-in), and every third it
//! says a 150 ms vowel into it (a backchannel). Printed: per turn and as
//! medians, voice to voice, the detector's hangover (configured), the
//! agent's stage times from its AgentTurn events (after the switch's
//! speech stop: final transcript, first token, first audio sent), and
//! the switch's own share: voice to voice less the hangover and less the
//! models' time. The run binds only loopback addresses.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentiric_media::g711::{ulaw_decode, ulaw_encode};
use sentiric_plugin_sdk::sidecar::{self, Tls};
use sentiric_plugin_sdk::{
    v1, Plugin, PluginError, Recognition, SpeechToText, Synthesis, TextToSpeech,
};
use sentiric_plugin_voice_agent::scripted::{Reply, Script, ScriptedLlm};
use sentiric_rtp::packet::{RtpHeader, RtpPacket};
use sentiric_sip::{HeaderName, Message};

const UAC: &str = "127.0.0.74";
/// The detector's hangover: the switch waits this long after the last
/// voiced audio before it says speech stopped.
const HANGOVER_MS: u64 = 400;

/// Speech services that answer at once.
struct Stub;

impl Plugin for Stub {
    fn new(_: &str) -> Result<Self, PluginError> {
        Ok(Stub)
    }
    fn speech_to_text(&self) -> Option<&dyn SpeechToText> {
        Some(self)
    }
    fn text_to_speech(&self) -> Option<&dyn TextToSpeech> {
        Some(self)
    }
    fn may_block(&self) -> bool {
        false
    }
}

impl SpeechToText for Stub {
    fn start(&self, _: &v1::Audio) -> Result<Box<dyn Recognition>, PluginError> {
        Ok(Box::new(Heard))
    }
}

/// Hears the same words in any audio, when it ends.
struct Heard;

impl Recognition for Heard {
    fn audio(&mut self, _: v1::Audio, _: &mut Vec<v1::Transcript>) -> Result<(), PluginError> {
        Ok(())
    }
    fn end(&mut self, out: &mut Vec<v1::Transcript>) -> Result<(), PluginError> {
        out.push(v1::Transcript {
            text: "Can I book a table for two people?".into(),
            r#final: true,
            ..Default::default()
        });
        Ok(())
    }
}

impl TextToSpeech for Stub {
    fn synthesize(&self, _: &v1::Text) -> Result<Synthesis, PluginError> {
        // Two seconds of 300 Hz at 16 kHz, in 20 ms chunks.
        Ok(Box::new((0..100).map(|c| {
            Ok(v1::Audio {
                pcm: (0..320)
                    .flat_map(|n| {
                        let t = f64::from(c * 320 + n) / 16_000.0;
                        (((std::f64::consts::TAU * 300.0 * t).sin() * 8000.0) as i16).to_le_bytes()
                    })
                    .collect(),
                sample_rate: 16_000,
                params: Default::default(),
            })
        })))
    }
}

/// `text` as espeak-ng says it, 8 kHz.
fn said(text: &str) -> Vec<i16> {
    let tmp = std::env::temp_dir().join(format!("sentiric-vl-{}.wav", std::process::id()));
    let ok = Command::new("espeak-ng")
        .arg("-w")
        .arg(&tmp)
        .arg(text)
        .status()
        .expect("espeak-ng");
    assert!(ok.success());
    let wav = sentiric_media::wav::Wav::parse(&std::fs::read(&tmp).unwrap()).unwrap();
    let _ = std::fs::remove_file(&tmp);
    let mut player = sentiric_media::wav::WavPlayer::new(&wav, 8000).unwrap();
    let (mut out, mut frame) = (Vec::new(), Vec::new());
    while player.next_frame(&mut frame) {
        out.extend_from_slice(&frame);
    }
    out
}

/// A vowel (120 Hz pulses through two formants), `ms` long, 8 kHz.
fn vowel(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|k| {
            let t = k as f64 / 8000.0;
            let pulse = (t * 120.0).fract();
            let v = (-pulse * 30.0).exp()
                * ((std::f64::consts::TAU * 700.0 * t).sin()
                    + 0.5 * (std::f64::consts::TAU * 1200.0 * t).sin());
            (v * 9000.0) as i16
        })
        .collect()
}

fn rms(frame: &[u8]) -> f64 {
    (frame
        .iter()
        .map(|&b| f64::from(ulaw_decode(b)).powi(2))
        .sum::<f64>()
        / frame.len().max(1) as f64)
        .sqrt()
}

/// What the caller heard: each packet's arrival and level.
#[derive(Default)]
struct Received {
    packets: Vec<(Instant, f64)>,
}

impl Received {
    /// The median level of the packets that came between `from` and `to`.
    fn level(&self, from: Instant, to: Instant) -> f64 {
        median(
            self.packets
                .iter()
                .filter(|(t, _)| *t > from && *t < to)
                .map(|(_, l)| *l)
                .collect(),
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * 0.95).round() as usize]
}

fn sdp_media(body: &[u8]) -> Option<SocketAddr> {
    let sdp = sentiric_sdp::SessionDescription::parse(body).ok()?;
    let ip = sdp.connection_of(0)?.ip()?;
    Some(SocketAddr::new(ip, sdp.media.first()?.port))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let real = args.next().as_deref() == Some("real");
    let turns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let dir = std::env::temp_dir().join(format!("sentiric-voice-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = dir.join("certs");
    let ok = Command::new("target/release/sentiric")
        .args(["certs", "init"])
        .arg(&certs)
        .output()
        .expect("cargo build --release --bin sentiric");
    assert!(ok.status.success());
    sidecar::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let answer = "Your table for two is booked for seven tonight. \
                  Thank you for calling, we look forward to seeing you.";
    let llm = rt.block_on(async {
        ScriptedLlm::start(
            "127.0.0.1:0".parse().unwrap(),
            Script {
                reply: vec![Reply {
                    chunks: answer.split_inclusive(' ').map(String::from).collect(),
                    ..Default::default()
                }],
            },
        )
        .await
        .unwrap()
    });
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (voice, stt, tts) = (free(), free(), free());
    let s = |p: &Path| p.to_string_lossy().to_string();
    let release = |name: &str| -> PathBuf {
        let p = Path::new("target/release").join(name);
        assert!(p.exists(), "{}: build it first", p.display());
        std::fs::canonicalize(p).unwrap()
    };
    let mut sidecars = String::new();
    let table = |name: &str, addr: SocketAddr, command: Vec<String>| {
        format!(
            "[plugins.sidecars.{name}]\naddress = \"{addr}\"\ncerts = {:?}\n\
             connect_timeout_ms = 10000\ncommand = {command:?}\n",
            s(&certs)
        )
    };
    if real {
        // Not canonicalized: the environment's python is a link to the
        // interpreter, and only called by its own path is it the
        // environment's.
        let python = std::env::current_dir()
            .unwrap()
            .join("target/python/bin/python");
        assert!(python.exists(), "bash scripts/python.sh");
        sidecars.push_str(&table(
            "stt",
            stt,
            vec![
                s(&python),
                s(&std::fs::canonicalize("plugins/whisper-stt/sidecar.py").unwrap()),
                "--listen".into(),
                stt.to_string(),
                "--certs".into(),
                s(&certs),
            ],
        ));
        sidecars.push_str(&table(
            "tts",
            tts,
            vec![
                s(&release("sentiric-espeak-tts-sidecar")),
                "--listen".into(),
                tts.to_string(),
                "--certs".into(),
                s(&certs),
            ],
        ));
    } else {
        let tls = Tls::from_files(
            &certs.join("ca.pem"),
            &certs.join("sidecar.pem"),
            &certs.join("sidecar-key.pem"),
        )
        .unwrap();
        for addr in [stt, tts] {
            let tls = tls.clone();
            rt.spawn(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                sidecar::serve(Stub, listener, &tls, std::future::pending())
                    .await
                    .unwrap();
            });
        }
    }
    let (llm_url, llm_model) = match std::env::var("SENTIRIC_LLM_URL") {
        Ok(url) => (
            url,
            std::env::var("SENTIRIC_LLM_MODEL").unwrap_or_else(|_| "default".into()),
        ),
        Err(_) => (llm.base_url(), "scripted".into()),
    };
    let agent_config = dir.join("voice.toml");
    std::fs::write(
        &agent_config,
        format!(
            "[llm]\nbase_url = {llm_url:?}\nmodel = {llm_model:?}\n[stt]\naddress = \"{stt}\"\n\
             [tts]\naddress = \"{tts}\"\n[speech_tls]\ncerts = {:?}\n\
             [defaults]\nstt_prompt = \"A caller phones a restaurant to book a table.\"\n",
            s(&certs)
        ),
    )
    .unwrap();
    sidecars.push_str(&table(
        "voice",
        voice,
        vec![
            s(&release("sentiric-voice-agent")),
            "--listen".into(),
            voice.to_string(),
            "--certs".into(),
            s(&certs),
            "--config".into(),
            s(&agent_config),
        ],
    ));
    let (switch, addr) = common::start_sentiric(
        &dir,
        &format!(
            "[rtp]\nip = \"127.0.0.1\"\nmin_port = 20000\nmax_port = 20999\n\
             [[dialplan.rule]]\nuser = \"900\"\naction = \"agent\"\nagent = \"voice\"\n\
             params = {{ tools = \"\" }}\n\
             [plugins]\n[plugins.vad]\nhangover_ms = {HANGOVER_MS}\n{sidecars}"
        ),
    );

    // The speech sidecars listening (the recogniser loads its model
    // first) before the call: the agent would take them for down.
    for addr in [stt, tts] {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{addr} never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The caller.
    let sip = UdpSocket::bind(format!("{UAC}:0")).unwrap();
    let rtp = UdpSocket::bind(format!("{UAC}:0")).unwrap();
    sip.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sip.local_addr().unwrap();
    let phone = rtp.local_addr().unwrap();
    let body = format!(
        "v=0\r\no=- 1 1 IN IP4 {UAC}\r\ns=-\r\nc=IN IP4 {UAC}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        phone.port()
    );
    let invite = format!(
        "INVITE sip:900@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-vl\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{me}>;tag=vl\r\nTo: <sip:900@{addr}>\r\n\
         Call-ID: voice-latency@{UAC}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Until the agent's sidecars are up, the call is refused (503): again.
    let mut buf = vec![0u8; 65_535];
    let give_up = Instant::now() + Duration::from_secs(60);
    let (to, remote) = 'call: loop {
        assert!(Instant::now() < give_up, "the call was never answered");
        sip.send_to(invite.as_bytes(), addr).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            let Ok((n, _)) = sip.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = Message::parse(&buf[..n]) else {
                continue;
            };
            let Some(r) = m.as_response() else { continue };
            if r.status < 200 {
                continue;
            }
            let to = r.headers.value(HeaderName::To).unwrap_or("").to_string();
            let ack = format!(
                "ACK sip:900@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-vl-ack\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:caller@{me}>;tag=vl\r\nTo: {to}\r\n\
                 Call-ID: voice-latency@{UAC}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            );
            sip.send_to(ack.as_bytes(), addr).unwrap();
            if r.status == 200 {
                break 'call (to, sdp_media(r.body).expect("the switch's media"));
            }
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
    };

    // What the caller hears, as it comes.
    let heard = Arc::new(Mutex::new(Received::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (heard, stop, rtp) = (
            Arc::clone(&heard),
            Arc::clone(&stop),
            rtp.try_clone().unwrap(),
        );
        rtp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, _)) = rtp.recv_from(&mut buf) {
                    let at = Instant::now();
                    if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                        heard.lock().unwrap().packets.push((at, rms(p.payload())));
                    }
                }
            }
        })
    };
    // The caller's side of the call: 20 ms frames in real time, from a
    // script of what to say when.
    let question = said("Can I book a table for two people?");
    // Its speech: from its first loud frame to its last (espeak-ng pads
    // both ends with silence).
    let loud_frame = |f: &[i16]| {
        (f.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / f.len() as f64).sqrt() > 300.0
    };
    let frames: Vec<&[i16]> = question.chunks(160).collect();
    let onset_frame = frames.iter().position(|f| loud_frame(f)).unwrap();
    let end_frame = frames.iter().rposition(|f| loud_frame(f)).unwrap();
    // The switch's detector on the same audio, here: how long after the
    // last loud frame it says speech stopped (the hangover and its lag).
    let detector_ms = {
        let mut a = sentiric_media::agent::AgentAudio::new(sentiric_media::vad::VadConfig {
            hangover_ms: HANGOVER_MS as u32,
            ..Default::default()
        })
        .unwrap();
        let mut out = Vec::new();
        let mut at = None;
        let padded: Vec<i16> = question.iter().copied().chain(vec![0; 8000 * 2]).collect();
        for (i, f) in padded.chunks(160).enumerate() {
            a.hear(f, &mut out);
            if i > end_frame
                && out
                    .iter()
                    .any(|h| matches!(h, sentiric_media::agent::Heard::SpeechStopped { .. }))
            {
                at = Some(i);
                break;
            }
            out.clear();
        }
        at.map_or(f64::NAN, |i| ((i - end_frame) * 20) as f64)
    };
    let mut seq = 0u16;
    let mut clock = Instant::now();
    let mut send = |samples: &[i16]| -> Instant {
        let mut last = Instant::now();
        for frame in samples.chunks(160) {
            let mut payload: Vec<u8> = frame.iter().map(|&s| ulaw_encode(s)).collect();
            payload.resize(160, 0xff);
            let mut pkt = Vec::with_capacity(172);
            RtpHeader {
                marker: seq == 0,
                payload_type: 0,
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0x5e1f_0000,
            }
            .write(&payload, &mut pkt);
            clock += Duration::from_millis(20);
            if let Some(w) = clock.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            } else {
                clock = Instant::now();
            }
            last = Instant::now();
            let _ = rtp.send_to(&pkt, remote);
            seq = seq.wrapping_add(1);
        }
        last
    };
    let silence = |ms: usize| vec![0i16; ms * 8];
    let loud = 300.0;
    // The answer's packets after `from`: the first loud one, and the
    // first after it that has been quiet for 600 ms (its end).
    let answer_after = |from: Instant| -> (Option<Instant>, Option<Instant>, f64) {
        let h = heard.lock().unwrap();
        let after: Vec<&(Instant, f64)> = h.packets.iter().filter(|(t, _)| *t > from).collect();
        let first = after.iter().position(|(_, l)| *l > loud);
        let Some(first) = first else {
            return (None, None, 0.0);
        };
        let level = median(after[first..].iter().take(50).map(|(_, l)| *l).collect());
        let mut quiet_since = None;
        for (t, l) in &after[first..] {
            if *l > loud {
                quiet_since = None;
            } else if quiet_since.is_none() {
                quiet_since = Some(*t);
            }
            if let Some(q) = quiet_since {
                if t.duration_since(q) > Duration::from_millis(600) {
                    return (Some(after[first].0), Some(q), level);
                }
            }
        }
        (Some(after[first].0), None, level)
    };
    let wait_for = |what: &dyn Fn() -> bool, limit: Duration| {
        let t0 = Instant::now();
        while !what() && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    send(&silence(1000));
    let (mut v2v, mut duck, mut stop_ms, mut kept) = (vec![], vec![], vec![], 0usize);
    let mut backchannels = 0usize;
    for turn in 0..turns {
        send(&question[..end_frame * 160]);
        let end = send(&question[end_frame * 160..(end_frame + 1) * 160]);
        send(&question[(end_frame + 1) * 160..]);
        // Silence until the answer begins (20 s at most).
        let begun = Instant::now();
        let mut first = None;
        while begun.elapsed() < Duration::from_secs(20) {
            send(&silence(100));
            if let (Some(f), _, _) = answer_after(end) {
                first = Some(f);
                break;
            }
        }
        let Some(first) = first else {
            println!("turn {turn}: no answer");
            continue;
        };
        v2v.push(ms(first - end));
        // Barge-in and backchannels need an answer of a known length: the
        // scripted one's (a model's may be over before a second is).
        let kind = if llm_model == "scripted" { turn % 3 } else { 0 };
        match kind {
            1 => {
                // Barge-in a second into the answer: the question again.
                send(&silence(1000));
                send(&question[..onset_frame * 160]);
                let onset = send(&question[onset_frame * 160..(onset_frame + 1) * 160]);
                send(&question[(onset_frame + 1) * 160..]);
                let h = heard.lock().unwrap();
                // (What came since, then now: a pause at the end counts.)
                let now = (Instant::now(), 0.0);
                let after: Vec<&(Instant, f64)> = h
                    .packets
                    .iter()
                    .filter(|(t, _)| *t > onset)
                    .chain(std::iter::once(&now))
                    .collect();
                let level = h.level(first, onset);
                if let Some((t, _)) = after.iter().find(|(_, l)| *l < level / 4.0) {
                    duck.push(ms(*t - onset));
                }
                // Stopped: the last of the answer's packets before a pause
                // of 300 ms (or a quiet one), as its frame ends.
                let stopped = after.windows(2).find_map(|w| {
                    let (a, b) = (w[0], w[1]);
                    (b.1 < 30.0 || b.0.duration_since(a.0) > Duration::from_millis(300))
                        .then_some(a.0 + Duration::from_millis(20))
                });
                if let Some(t) = stopped {
                    stop_ms.push(ms(t - onset));
                }
                if std::env::var_os("VL_DEBUG").is_some() {
                    for (t, l) in after.iter().take(60) {
                        eprint!("{:.0}:{:.0} ", ms(*t - onset), l);
                    }
                    eprintln!();
                }
                drop(h);
                // Its answer is the next turn's business: let it finish.
                wait_for(&|| answer_after(onset).1.is_some(), Duration::from_secs(20));
            }
            2 => {
                // A backchannel a second in: the answer goes on.
                send(&silence(1000));
                let at = send(&vowel(150));
                send(&silence(1500));
                backchannels += 1;
                let h = heard.lock().unwrap();
                let level = h.level(first, at);
                let went_on = h
                    .packets
                    .iter()
                    .filter(|(t, _)| *t > at + Duration::from_millis(600))
                    .take(10)
                    .all(|(_, l)| *l > level / 2.0);
                kept += usize::from(went_on);
                drop(h);
                wait_for(&|| answer_after(end).1.is_some(), Duration::from_secs(20));
            }
            _ => wait_for(&|| answer_after(end).1.is_some(), Duration::from_secs(20)),
        }
        send(&silence(500));
    }
    stop.store(true, Ordering::Relaxed);
    listener.join().unwrap();
    let bye = format!(
        "BYE sip:900@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-vl-bye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{me}>;tag=vl\r\nTo: {to}\r\n\
         Call-ID: voice-latency@{UAC}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(bye.as_bytes(), addr);
    std::thread::sleep(Duration::from_millis(500));

    // The agent's stages, from its turns' events.
    let out = Command::new("target/release/sentiric")
        .args(["events", "tail", "-n", "10000", "--dir"])
        .arg(dir.join("events"))
        .output()
        .unwrap();
    let turns_ev: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["body"].get("AgentTurn").cloned())
        .inspect(|t| {
            if std::env::var_os("VL_DEBUG").is_some() {
                eprintln!("{t}");
            }
        })
        .filter(|t| t["interrupted"] == false)
        .collect();
    let stage = |k: &str| {
        median(
            turns_ev
                .iter()
                .filter_map(|t| t[k].as_f64())
                .filter(|v| *v > 0.0)
                .collect(),
        )
    };
    let (transcript, token, audio) = (
        stage("transcript_ms"),
        stage("first_token_ms"),
        stage("first_audio_ms"),
    );
    drop(switch);
    drop(llm);
    let _ = std::fs::remove_dir_all(&dir);
    let v = median(v2v.clone());
    println!(
        "mode={} llm={llm_model} turns={} answered={} voice_to_voice_ms_p50={v:.0} p95={:.0} hangover_ms={HANGOVER_MS} \
         agent_transcript_ms={transcript:.0} agent_first_token_ms={token:.0} agent_first_audio_ms={audio:.0} \
         detector_stop_ms={detector_ms:.0} after_detector_ms={:.0} barge_in_duck_ms_p50={:.0} p95={:.0} barge_in_stop_ms_p50={:.0} p95={:.0} \
         backchannels_kept={kept}/{backchannels}",
        if real { "real" } else { "stub" },
        turns,
        v2v.len(),
        p95(v2v.clone()),
        v - detector_ms,
        median(duck.clone()),
        p95(duck),
        median(stop_ms.clone()),
        p95(stop_ms),
    );
}
