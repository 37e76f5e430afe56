//! Text to speech on espeak-ng, offline on the CPU: each `Synthesize` runs
//! the `espeak-ng` program (Debian's package) with the text on its
//! standard input, reads the WAV it writes to standard output as it is
//! made, and streams it back in 20 ms chunks resampled to the rate asked
//! for (16 kHz by default). The program runs in a process of its own:
//! espeak-ng is GPL-3, and neither this sidecar nor the switch links it.
//!
//! Configuration (`--config`, TOML, every key optional):
//!
//! ```toml
//! program = "espeak-ng"   # the program to run
//! voice = "en-us"         # used when a request names none
//! words_per_minute = 175
//! ```
//!
//! A request's `voice` (or `language`, when it names no voice) picks the
//! espeak-ng voice; names are checked (letters, digits, `-`, `+`, `_`)
//! before they reach the command line, and the text never does.

use std::io::{BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use sentiric_media::resample::FrameResampler;
use sentiric_plugin_sdk::{v1, Plugin, PluginError, Synthesis, TextToSpeech};
use serde::Deserialize;

/// The synthesiser's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The program.
    pub program: String,
    /// The voice when a request names none.
    pub voice: String,
    /// Speaking rate.
    pub words_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            program: "espeak-ng".into(),
            voice: "en-us".into(),
            words_per_minute: 175,
        }
    }
}

/// The plugin.
#[derive(Debug, Clone)]
pub struct Espeak {
    settings: Settings,
}

/// The most text one request may carry.
const MAX_TEXT: usize = 4096;

impl Plugin for Espeak {
    fn new(config: &str) -> Result<Self, PluginError> {
        let settings: Settings =
            toml::from_str(config).map_err(|e| PluginError::new(e.to_string()))?;
        if !voice_name(&settings.voice) || !(80..=450).contains(&settings.words_per_minute) {
            return Err(PluginError::new(
                "voice: letters, digits, - + _; words_per_minute: 80 to 450",
            ));
        }
        // The program must run: a missing package is a start-up error,
        // not every call's.
        let probe = Command::new(&settings.program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| PluginError::new(format!("{}: {e}", settings.program)))?;
        if !probe.success() {
            return Err(PluginError::new(format!(
                "{} --version: {probe}",
                settings.program
            )));
        }
        Ok(Espeak { settings })
    }

    fn text_to_speech(&self) -> Option<&dyn TextToSpeech> {
        Some(self)
    }
}

fn voice_name(v: &str) -> bool {
    v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+_".contains(&b))
}

impl TextToSpeech for Espeak {
    fn synthesize(&self, text: &v1::Text) -> Result<Synthesis, PluginError> {
        let rate = if text.sample_rate == 0 {
            16_000
        } else {
            text.sample_rate
        };
        if rate % 50 != 0 || !(8_000..=48_000).contains(&rate) {
            return Err(PluginError::new(format!(
                "sample rate {rate}: 8000 to 48000, a multiple of 50"
            )));
        }
        if text.text.len() > MAX_TEXT {
            return Err(PluginError::new(format!(
                "{} bytes of text (at most {MAX_TEXT})",
                text.text.len()
            )));
        }
        let voice = [&text.voice, &text.language]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or(&self.settings.voice);
        if !voice_name(voice) {
            return Err(PluginError::new(format!("voice {voice:?}")));
        }
        let mut child = Command::new(&self.settings.program)
            .args(["--stdout", "-v", voice, "-s"])
            .arg(self.settings.words_per_minute.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PluginError::new(format!("{}: {e}", self.settings.program)))?;
        // The text on standard input, so it is never an argument. Small:
        // the pipe takes it whole; closing it starts the speech.
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            let line = text.text.replace(['\r', '\n'], " ");
            stdin
                .write_all(line.as_bytes())
                .map_err(|e| PluginError::new(format!("espeak-ng's input: {e}")))?;
        }
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Box::new(Speaking {
            child,
            stdout,
            rate,
            state: State::Header,
        }))
    }
}

/// A synthesis: espeak-ng's output as it comes.
struct Speaking {
    child: Child,
    stdout: BufReader<ChildStdout>,
    rate: u32,
    state: State,
}

enum State {
    /// The WAV header not read yet.
    Header,
    /// Samples: 20 ms frames at espeak's rate, resampled.
    Samples {
        resampler: Option<Box<FrameResampler>>,
        frame: usize,
        out: Vec<i16>,
    },
    Done,
}

impl Drop for Speaking {
    fn drop(&mut self) {
        // Stopped early (barge-in): the program goes too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Speaking {
    /// Reads the RIFF header up to the `data` chunk: espeak's rate.
    fn header(&mut self) -> Result<u32, PluginError> {
        let bad = |what: &str| PluginError::new(format!("espeak-ng's output: {what}"));
        let mut riff = [0u8; 12];
        self.stdout
            .read_exact(&mut riff)
            .map_err(|_| bad("no WAV header (is the voice installed?)"))?;
        if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
            return Err(bad("not WAV"));
        }
        let mut rate = None;
        loop {
            let mut chunk = [0u8; 8];
            self.stdout
                .read_exact(&mut chunk)
                .map_err(|_| bad("no data chunk"))?;
            let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            match &chunk[..4] {
                b"data" => break,
                b"fmt " => {
                    let mut fmt = vec![0u8; len as usize];
                    self.stdout
                        .read_exact(&mut fmt)
                        .map_err(|_| bad("short fmt chunk"))?;
                    if fmt.len() < 16 {
                        return Err(bad("short fmt chunk"));
                    }
                    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
                    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
                    if channels != 1 || bits != 16 {
                        return Err(bad("not 16-bit mono"));
                    }
                    rate = Some(u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]));
                }
                _ => {
                    let mut skip = vec![0u8; len as usize];
                    self.stdout
                        .read_exact(&mut skip)
                        .map_err(|_| bad("short chunk"))?;
                }
            }
        }
        rate.ok_or_else(|| bad("no fmt chunk"))
    }

    fn next_chunk(&mut self) -> Option<Result<v1::Audio, PluginError>> {
        loop {
            match &mut self.state {
                State::Done => return None,
                State::Header => {
                    let from = match self.header() {
                        Ok(r) => r,
                        Err(e) => {
                            self.state = State::Done;
                            return Some(Err(e));
                        }
                    };
                    let resampler = if from == self.rate {
                        None
                    } else {
                        match FrameResampler::new(from, self.rate) {
                            Ok(r) => Some(Box::new(r)),
                            Err(e) => {
                                self.state = State::Done;
                                return Some(Err(PluginError::new(e.to_string())));
                            }
                        }
                    };
                    self.state = State::Samples {
                        resampler,
                        frame: (from / 50) as usize,
                        out: Vec::new(),
                    };
                }
                State::Samples {
                    resampler,
                    frame,
                    out,
                } => {
                    let mut bytes = vec![0u8; *frame * 2];
                    let n = read_full(&mut self.stdout, &mut bytes);
                    if n == 0 {
                        self.state = State::Done;
                        return None;
                    }
                    let samples: Vec<i16> = bytes[..n - n % 2]
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    let pcm = match resampler {
                        Some(r) => {
                            r.process(&samples, out);
                            out.as_slice()
                        }
                        None => samples.as_slice(),
                    };
                    return Some(Ok(v1::Audio {
                        pcm: pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
                        sample_rate: self.rate,
                        params: Default::default(),
                    }));
                }
            }
        }
    }
}

/// Fills `buf` unless the stream ends first: the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

impl Iterator for Speaking {
    type Item = Result<v1::Audio, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_names_are_checked() {
        assert!(voice_name("en-us"));
        assert!(voice_name("en+f3"));
        assert!(!voice_name("en us"));
        assert!(!voice_name("-v;rm"));
        assert!(!voice_name(""));
        assert!(!voice_name("-x"));
    }
}
