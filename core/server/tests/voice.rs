//! The voice agent on a live call, every piece real: the switch runs and
//! supervises the voice agent (`plugins/voice-agent`), the speech-to-text
//! sidecar (faster-whisper with the packaged tiny.en model) and the
//! text-to-speech sidecar (espeak-ng) from its config; the LLM is the
//! scripted OpenAI-compatible server (a real HTTP server streaming the
//! protocol); the caller is `sentiric call`, playing a question espeak-ng
//! said and recording what it hears.
//!
//! Needs the Python environment (`bash scripts/python.sh`: faster-whisper
//! and the model) and espeak-ng; the test command provides both.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{cdrs, python, rtp, said, wav_bytes, wav_samples, Switch};

/// A binary of the workspace's, built beside this test.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}

fn plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins")
}

/// A loopback address nothing listens on now.
fn free() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The scripted LLM server started from its binary: the process and its
/// base URL.
fn scripted_llm(dir: &Path, script: &str) -> (Killed, String) {
    let path = dir.join("script.toml");
    std::fs::write(&path, script).unwrap();
    let mut child = Command::new(bin("sentiric-scripted-llm"))
        .args(["--listen", "127.0.0.1:0", "--script"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("its address")
        .to_string();
    (Killed(child), url)
}

/// What `sentiric call` to `user` heard, playing `question`: its summary
/// and the recording's samples (8 kHz).
fn ask(sw: &Switch, dir: &Path, user: &str, question: &[i16]) -> (String, Vec<i16>) {
    let q = dir.join(format!("{user}-question.wav"));
    let a = dir.join(format!("{user}-answer.wav"));
    std::fs::write(&q, wav_bytes(question)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args(["call", &format!("sip:{user}@{}", sw.addr), "--play"])
        .arg(&q)
        .arg("--record")
        .arg(&a)
        .args(["--duration", "40"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let heard = std::fs::read(&a)
        .map(|b| wav_samples(&b))
        .unwrap_or_default();
    (summary, heard)
}

/// Where `heard` is louder than silence: its first and last sample, and
/// its RMS there.
fn voiced(heard: &[i16]) -> (usize, usize, f64) {
    let loud = |s: &&i16| s.unsigned_abs() > 600;
    let first = heard.iter().position(|s| loud(&s)).unwrap_or(0);
    let last = heard.iter().rposition(|s| loud(&s)).unwrap_or(0);
    let span = &heard[first..=last.max(first)];
    let rms =
        (span.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / span.len().max(1) as f64).sqrt();
    (first, last, rms)
}

/// The words in 8 kHz audio, as the speech-to-text sidecar's model hears
/// them.
fn transcribed(dir: &Path, samples: &[i16]) -> String {
    let path = dir.join("transcribe.wav");
    std::fs::write(&path, wav_bytes(samples)).unwrap();
    let script = "import sys, wave\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  import sidecar\n\
                  r = sidecar.Recognizer(sidecar.Settings(''))\n\
                  w = wave.open(sys.argv[2])\n\
                  x = sidecar.to_float(w.readframes(w.getnframes()), w.getframerate())\n\
                  print(r.transcribe(x, 'en')[0])\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(plugins().join("whisper-stt"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_lowercase()
}

#[test]
fn a_caller_asks_the_voice_agent_and_hears_its_answer() {
    let dir = std::env::temp_dir().join(format!("sentiric-voice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = dir.join("certs");
    let out = Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args(["certs", "init"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (llm, url) = scripted_llm(
        &dir,
        r#"
        [[reply]]
        when = "people"
        chunks = ["Yes, your table for two ", "is booked for seven tonight. ", "Goodbye!"]
        tools = [["set_cdr_tags", "{\"tags\": {\"topic\": \"booking\"}}"],
                 ["hang_up", "{\"reason\": \"answered\"}"]]
        [[reply]]
        chunks = ["Sorry, I did not catch that."]
        "#,
    );
    // The apology of the agent whose recogniser is down: a tone.
    let apology: Vec<i16> = (0..8000)
        .map(|i| (f64::sin(f64::from(i) * 0.25) * 9000.0) as i16)
        .collect();
    std::fs::write(dir.join("sorry.wav"), wav_bytes(&apology)).unwrap();
    let (stt, tts, voice, down) = (free(), free(), free(), free());
    let agent_config = |name: &str, stt: SocketAddr| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[llm]\nbase_url = \"{url}\"\nmodel = \"scripted\"\n\
                 [stt]\naddress = \"{stt}\"\n[tts]\naddress = \"{tts}\"\n\
                 [speech_tls]\ncerts = {certs:?}\n\
                 [failure]\napology_wav = {:?}\n",
                dir.join("sorry.wav")
            ),
        )
        .unwrap();
        path
    };
    let sidecar = |name: &str, addr: SocketAddr, command: Vec<String>| {
        format!(
            "[plugins.sidecars.{name}]\naddress = \"{addr}\"\ncerts = {certs:?}\n\
             connect_timeout_ms = 10000\ncommand = {command:?}\n"
        )
    };
    let s = |p: PathBuf| p.to_string_lossy().to_string();
    let agent = |addr: SocketAddr, config: PathBuf| {
        vec![
            s(bin("sentiric-voice-agent")),
            "--listen".into(),
            addr.to_string(),
            "--certs".into(),
            s(certs.clone()),
            "--config".into(),
            s(config),
        ]
    };
    let config = format!(
        "{}[[dialplan.rule]]\nuser = \"900\"\naction = \"agent\"\nagent = \"voice\"\n\
         params = {{ tools = \"hang_up,set_cdr_tags\", system_prompt = \"You answer callers \
         of a restaurant.\", stt_prompt = \"A caller phones a restaurant to book a table.\" }}\n\
         [[dialplan.rule]]\nuser = \"901\"\naction = \"agent\"\nagent = \"voice-down\"\n\
         [plugins]\n{}{}{}{}",
        rtp(34_000),
        sidecar("voice", voice, agent(voice, agent_config("voice", stt))),
        sidecar(
            "voice-down",
            down,
            agent(down, agent_config("down", free()))
        ),
        sidecar(
            "stt",
            stt,
            vec![
                s(python()),
                s(plugins().join("whisper-stt/sidecar.py")),
                "--listen".into(),
                stt.to_string(),
                "--certs".into(),
                s(certs.clone()),
            ]
        ),
        sidecar(
            "tts",
            tts,
            vec![
                s(bin("sentiric-espeak-tts-sidecar")),
                "--listen".into(),
                tts.to_string(),
                "--certs".into(),
                s(certs.clone()),
            ]
        ),
    );
    let sw = Switch::start(Some(&config), &[]);
    for name in ["voice", "voice-down", "stt", "tts"] {
        assert!(
            sw.wait_lines(
                &format!("sidecar {name}: connected"),
                1,
                Duration::from_secs(30)
            ),
            "{name}: {:#?}",
            sw.log()
        );
    }

    // The question, after half a second: the agent hears it, the LLM
    // answers (scripted), the answer is spoken back, then the agent hangs
    // up as the LLM asked.
    // (Whisper tiny.en mishears some of espeak-ng's words on a narrowband
    // call, G.711 keeping nothing above 4 kHz: "book a table" comes out
    // as "work out cable" — unless the route's stt_prompt, handed to the
    // recogniser with the audio, says what callers ask here.)
    let question = said("Can I book a table for two people?", 500);
    let (summary, heard) = ask(&sw, &dir, "900", &question);
    assert!(summary.contains("\"status\":200"), "{summary}");
    assert!(
        summary.contains("\"hung_up_by\":\"remote\""),
        "{summary}: {:#?}",
        sw.log()
    );
    // The answer: about as long as espeak-ng says it, loud enough, and
    // the scripted words when heard back.
    let (first, last, rms) = voiced(&heard);
    let secs = (last - first) as f64 / 8000.0;
    assert!((1.5..8.0).contains(&secs), "{secs} s of answer");
    assert!(rms > 400.0, "rms {rms}");
    let words = transcribed(&dir, &heard[first..=last]);
    for w in ["table", "tonight", "goodbye"] {
        assert!(words.contains(w), "{w:?} in {words:?}");
    }
    // The call's record: the tags the LLM set, the hang-up's reason, the
    // turn's transcript.
    let rows = cdrs(&sw, 1, Duration::from_secs(10));
    let cdr = rows
        .iter()
        .find(|r| r["request_uri"].as_str().unwrap_or("").contains("900"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(cdr["disposition"], "ANSWERED");
    let tags: serde_json::Value = serde_json::from_str(cdr["tags"].as_str().unwrap()).unwrap();
    assert_eq!(tags["topic"], "booking", "{tags}");
    assert_eq!(tags["hangup_reason"], "answered", "{tags}");
    let turns: serde_json::Value =
        serde_json::from_str(cdr["transcript"].as_str().unwrap()).unwrap();
    let turn = &turns[0];
    assert!(
        turn["caller"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("book a table for two people"),
        "{turns}"
    );
    assert_eq!(
        turn["agent"],
        "Yes, your table for two is booked for seven tonight. Goodbye!"
    );
    // The turn's event, with its stages' times.
    let events = sw.events();
    let turn = events
        .iter()
        .find_map(|e| e["body"].get("AgentTurn"))
        .expect("an AgentTurn event");
    assert_eq!(turn["agent"], "voice");
    assert!(turn["transcript_ms"].as_u64().unwrap() > 0, "{turn}");
    assert!(
        turn["first_audio_ms"].as_u64().unwrap() >= turn["first_token_ms"].as_u64().unwrap(),
        "{turn}"
    );
    assert_eq!(
        turn["tools"],
        serde_json::json!(["set_cdr_tags", "hang_up"])
    );

    // The agent whose recogniser is down: the caller hears the apology,
    // then the call ends, the cause in its record.
    let (summary, heard) = ask(&sw, &dir, "901", &question);
    assert!(summary.contains("\"status\":200"), "{summary}");
    assert!(summary.contains("\"hung_up_by\":\"remote\""), "{summary}");
    let (first, last, rms) = voiced(&heard);
    assert!(
        (0.7..1.3).contains(&((last - first) as f64 / 8000.0)),
        "{first}..{last}"
    );
    assert!(rms > 2000.0, "rms {rms}");
    let rows = cdrs(&sw, 2, Duration::from_secs(10));
    let cdr = rows
        .iter()
        .find(|r| r["request_uri"].as_str().unwrap_or("").contains("901"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let tags: serde_json::Value = serde_json::from_str(cdr["tags"].as_str().unwrap()).unwrap();
    assert_eq!(tags["agent_failure"], "stt_failed", "{tags}");
    assert_eq!(tags["hangup_reason"], "stt_failed", "{tags}");
    assert_eq!(cdr["hangup_side"], "switch");

    drop(llm);
    drop(sw);
    let _ = std::fs::remove_dir_all(&dir);
}
