//! Speech services without a model: text of DTMF keys is "spoken" as
//! their tones, and tones are "heard" as text. Deterministic and
//! instant, it is what a test or a demo of the speech contract needs
//! where a real recogniser and synthesiser would need models, and the
//! template for real ones:
//!
//! * **TextToSpeech**: each key of the text (`0`–`9`, `*`, `#`, `A`–`D`)
//!   becomes 100 ms of its two tones and 60 ms of silence, a space 200 ms
//!   of silence; any other character is refused. The audio comes in
//!   20 ms chunks at the sample rate asked for (16 kHz by default), each
//!   made as it is taken.
//! * **SpeechToText**: the audio (20 ms frames, any size of message) goes
//!   through the same Goertzel detector the switch uses for in-band DTMF;
//!   each key heard makes a partial transcript of the keys so far, and
//!   half a second without one after them (or the stream's end) makes
//!   the final one, with the keys' start and end.
//!
//! One source, shipped either way: the library the switch loads
//! (`export_plugin!` below), or a sidecar (`sentiric-dtmf-speech-sidecar`,
//! `src/main.rs`).

use std::collections::VecDeque;

use sentiric_media::dtmf::DtmfDetector;
use sentiric_media::tone::Tone;
use sentiric_plugin_sdk::{
    v1, Plugin, PluginError, Recognition, SpeechToText, Synthesis, TextToSpeech,
};

/// The plugin: no configuration.
#[derive(Debug, Default)]
pub struct DtmfSpeech;

/// A key's tone, and the silence after it, in milliseconds.
const TONE_MS: usize = 100;
const GAP_MS: usize = 60;
/// A space's silence.
const SPACE_MS: usize = 200;
/// Silence after keys that ends a transcript.
const END_MS: u64 = 500;

impl Plugin for DtmfSpeech {
    fn new(_config: &str) -> Result<Self, PluginError> {
        Ok(DtmfSpeech)
    }

    fn speech_to_text(&self) -> Option<&dyn SpeechToText> {
        Some(self)
    }

    fn text_to_speech(&self) -> Option<&dyn TextToSpeech> {
        Some(self)
    }

    // Arithmetic on samples: it never waits.
    fn may_block(&self) -> bool {
        false
    }
}

/// The sample rate a message asks for: 0 is 16 kHz.
fn rate(asked: u32) -> Result<u32, PluginError> {
    match asked {
        0 => Ok(16_000),
        8_000..=48_000 => Ok(asked),
        other => Err(PluginError::new(format!(
            "sample rate {other}: 8000 to 48000"
        ))),
    }
}

impl TextToSpeech for DtmfSpeech {
    fn synthesize(&self, text: &v1::Text) -> Result<Synthesis, PluginError> {
        let rate = rate(text.sample_rate)?;
        let per_ms = rate as usize / 1000;
        let mut parts = VecDeque::new();
        for c in text.text.chars() {
            if c == ' ' {
                parts.push_back((None, SPACE_MS * per_ms));
                continue;
            }
            let tone = Tone::dtmf(c.to_ascii_uppercase(), rate).ok_or_else(|| {
                PluginError::new(format!(
                    "cannot speak {c:?}: only 0-9, *, #, A-D and spaces"
                ))
            })?;
            parts.push_back((Some(tone), TONE_MS * per_ms));
            parts.push_back((None, GAP_MS * per_ms));
        }
        Ok(Box::new(Speaking {
            parts,
            rate,
            chunk: rate as usize / 50,
        }))
    }
}

/// A synthesis: what is left to say, made a chunk at a time.
struct Speaking {
    /// Tones (or silence) and the samples left of each.
    parts: VecDeque<(Option<Tone>, usize)>,
    rate: u32,
    /// Samples in a chunk (20 ms).
    chunk: usize,
}

impl Iterator for Speaking {
    type Item = Result<v1::Audio, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.parts.is_empty() {
            return None;
        }
        let mut pcm = vec![0i16; self.chunk];
        let mut at = 0;
        while at < pcm.len() {
            let Some((tone, left)) = self.parts.front_mut() else {
                pcm.truncate(at);
                break;
            };
            let n = (*left).min(pcm.len() - at);
            if let Some(t) = tone {
                t.fill(&mut pcm[at..at + n]);
            }
            at += n;
            *left -= n;
            if *left == 0 {
                self.parts.pop_front();
            }
        }
        Some(Ok(v1::Audio {
            pcm: pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
            sample_rate: self.rate,
            params: Default::default(),
        }))
    }
}

impl SpeechToText for DtmfSpeech {
    fn start(&self, first: &v1::Audio) -> Result<Box<dyn Recognition>, PluginError> {
        let rate = rate(first.sample_rate)?;
        Ok(Box::new(Hearing {
            detector: DtmfDetector::new(rate, 20, 40),
            frame: rate as usize / 50,
            rate,
            samples: Vec::new(),
            frames: 0,
            keys: String::new(),
            start_ms: 0,
            end_ms: 0,
        }))
    }
}

/// A recognition: the detector, the audio not yet a whole frame, and the
/// keys of the transcript under way.
struct Hearing {
    detector: DtmfDetector,
    /// Samples in a frame (20 ms).
    frame: usize,
    rate: u32,
    samples: Vec<i16>,
    /// Frames heard so far.
    frames: u64,
    keys: String,
    start_ms: u64,
    end_ms: u64,
}

impl Hearing {
    /// A key the detector reports, ending `at_ms`.
    fn key(&mut self, key: char, samples: usize, at_ms: u64, out: &mut Vec<v1::Transcript>) {
        let held = samples as u64 * 1000 / u64::from(self.rate);
        if self.keys.is_empty() {
            self.start_ms = at_ms.saturating_sub(held);
        }
        self.keys.push(key);
        self.end_ms = at_ms;
        out.push(self.transcript(false));
    }

    fn transcript(&self, last: bool) -> v1::Transcript {
        v1::Transcript {
            text: self.keys.clone(),
            r#final: last,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            confidence: 1.0,
        }
    }

    /// The keys so far as a final transcript, if there are any.
    fn done(&mut self, out: &mut Vec<v1::Transcript>) {
        if !self.keys.is_empty() {
            out.push(self.transcript(true));
            self.keys.clear();
        }
    }
}

impl Recognition for Hearing {
    fn audio(
        &mut self,
        audio: v1::Audio,
        out: &mut Vec<v1::Transcript>,
    ) -> Result<(), PluginError> {
        if audio.sample_rate != 0 && audio.sample_rate != self.rate {
            return Err(PluginError::new(format!(
                "sample rate {} in a {} Hz stream",
                audio.sample_rate, self.rate
            )));
        }
        self.samples.extend(
            audio
                .pcm
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        let whole = self.samples.len() / self.frame * self.frame;
        let frames: Vec<i16> = self.samples.drain(..whole).collect();
        for f in frames.chunks_exact(self.frame) {
            let at_ms = self.frames * 20;
            self.frames += 1;
            if let Some(d) = self.detector.push(f) {
                self.key(d.key, d.samples, at_ms, out);
            }
            if !self.keys.is_empty() && at_ms.saturating_sub(self.end_ms) >= END_MS {
                self.done(out);
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<v1::Transcript>) -> Result<(), PluginError> {
        if let Some(d) = self.detector.finish() {
            let at_ms = self.frames * 20;
            self.key(d.key, d.samples, at_ms, out);
        }
        self.done(out);
        Ok(())
    }
}

sentiric_plugin_sdk::export_plugin!(DtmfSpeech);

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` spoken, then heard: the transcripts.
    fn round_trip(text: &str, rate: u32, chunk: usize) -> Vec<v1::Transcript> {
        let speech = DtmfSpeech;
        let spoken: Vec<u8> = speech
            .synthesize(&v1::Text {
                text: text.into(),
                sample_rate: rate,
                ..v1::Text::default()
            })
            .unwrap()
            .flat_map(|a| a.unwrap().pcm)
            .collect();
        let mut r = speech
            .start(&v1::Audio {
                sample_rate: rate,
                ..v1::Audio::default()
            })
            .unwrap();
        let mut out = Vec::new();
        for piece in spoken.chunks(chunk) {
            r.audio(
                v1::Audio {
                    pcm: piece.to_vec(),
                    ..v1::Audio::default()
                },
                &mut out,
            )
            .unwrap();
        }
        r.end(&mut out).unwrap();
        out
    }

    #[test]
    fn what_it_says_it_hears_back() {
        for (rate, chunk) in [(16_000, 640), (8_000, 100), (48_000, 7_777)] {
            let t = round_trip("12#9 *0", rate, chunk);
            let finals: Vec<&str> = t
                .iter()
                .filter(|t| t.r#final)
                .map(|t| t.text.as_str())
                .collect();
            assert_eq!(finals, ["12#9*0"], "{rate} Hz: {t:?}");
            // A partial for each key, growing, before the final.
            let partials: Vec<&str> = t
                .iter()
                .filter(|t| !t.r#final)
                .map(|t| t.text.as_str())
                .collect();
            assert_eq!(partials, ["1", "12", "12#", "12#9", "12#9*", "12#9*0"]);
            let last = t.last().unwrap();
            // Six keys and a space: 6 × 160 ms + 200 ms, the last gap
            // after the final tone.
            assert!(last.start_ms <= 20, "{last:?}");
            assert!((1000..=1120).contains(&last.end_ms), "{last:?}");
        }
    }

    #[test]
    fn a_long_pause_ends_a_transcript() {
        let t = round_trip("12    34", 16_000, 640);
        let finals: Vec<&str> = t
            .iter()
            .filter(|t| t.r#final)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(finals, ["12", "34"]);
    }

    #[test]
    fn what_it_cannot_say_or_hear_is_refused() {
        let speech = DtmfSpeech;
        let words = v1::Text {
            text: "hello".into(),
            ..v1::Text::default()
        };
        assert!(speech.synthesize(&words).is_err());
        let odd = v1::Audio {
            sample_rate: 100,
            ..v1::Audio::default()
        };
        assert!(speech.start(&odd).is_err());
    }
}
