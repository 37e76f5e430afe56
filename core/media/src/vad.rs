//! Voice activity detection for barge-in and silence detection.
//!
//! `earshot` scores each 16 ms of 16 kHz audio for voice (0 to 1). On top
//! of the scores, [`Vad`] decides when speech starts and stops the way a
//! voice agent needs: speech must last a minimum time before it counts (so
//! a short backchannel or a cough does not cut the agent off), and a short
//! pause does not end it (hangover).

use earshot::Detector;

/// Samples per detector frame at 16 kHz.
const CHUNK: usize = 256;
/// Milliseconds per detector frame.
const CHUNK_MS: u32 = 16;

/// Speech activity changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech started, `ms` after the stream began (the start of the
    /// speech, not the moment it was confirmed).
    SpeechStart {
        /// When it began.
        ms: u64,
    },
    /// Speech stopped.
    SpeechStop {
        /// When the last voiced frame ended.
        ms: u64,
    },
}

/// How eagerly [`Vad`] reports speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Score at or above which a frame is voiced.
    pub threshold: f32,
    /// Voiced time before speech counts as started. The detector hears a
    /// voice for a while after it ends (a 150 ms backchannel scores as
    /// about 260 ms voiced), so the default, 300 ms, lets backchannels
    /// pass and starts speech about 300 ms into it.
    pub min_speech_ms: u32,
    /// Unvoiced time before speech counts as stopped.
    pub hangover_ms: u32,
    /// A chunk quieter than this (RMS, 16-bit sample units) is unvoiced
    /// whatever the model scores it: the model hears a voice for some
    /// 80 ms after it ends, and on a clean line the quiet says at once
    /// that it has. 0: the model alone decides.
    pub silence_rms: u16,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            min_speech_ms: 300,
            hangover_ms: 400,
            // About -60 dBFS: below a phone line's noise.
            silence_rms: 30,
        }
    }
}

/// The speech/no-speech state machine over per-frame scores, separate from
/// the detector so that it can be driven by any scores.
#[derive(Debug, Clone)]
pub struct SpeechGate {
    cfg: VadConfig,
    speaking: bool,
    /// Consecutive voiced (when silent) or unvoiced (when speaking) ms.
    run_ms: u32,
    run_start_ms: u64,
    now_ms: u64,
}

impl SpeechGate {
    /// A gate in the silent state.
    pub fn new(cfg: VadConfig) -> Self {
        SpeechGate {
            cfg,
            speaking: false,
            run_ms: 0,
            run_start_ms: 0,
            now_ms: 0,
        }
    }

    /// `true` while speech is on.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// `true` while voiced audio has begun but is not yet long enough to
    /// count as speech (an onset, or a backchannel that will stay short).
    pub fn rising(&self) -> bool {
        !self.speaking && self.run_ms > 0
    }

    /// One frame of `ms` with its score.
    pub fn push(&mut self, score: f32, ms: u32) -> Option<VadEvent> {
        let voiced = score >= self.cfg.threshold;
        let at = self.now_ms;
        self.now_ms += u64::from(ms);
        // A run counts frames that argue for changing state.
        let against = voiced != self.speaking;
        if !against {
            self.run_ms = 0;
            return None;
        }
        if self.run_ms == 0 {
            self.run_start_ms = at;
        }
        self.run_ms += ms;
        let needed = if self.speaking {
            self.cfg.hangover_ms
        } else {
            self.cfg.min_speech_ms
        };
        if self.run_ms < needed.max(1) {
            return None;
        }
        self.speaking = !self.speaking;
        self.run_ms = 0;
        Some(if self.speaking {
            VadEvent::SpeechStart {
                ms: self.run_start_ms,
            }
        } else {
            VadEvent::SpeechStop {
                ms: self.run_start_ms,
            }
        })
    }
}

/// Voice activity detection on a 16 kHz stream of any frame size.
pub struct Vad {
    detector: Box<Detector>,
    gate: SpeechGate,
    pending: Vec<i16>,
    last_score: f32,
    /// `silence_rms`.
    floor: f32,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad")
            .field("gate", &self.gate)
            .field("last_score", &self.last_score)
            .finish_non_exhaustive()
    }
}

impl Vad {
    /// A detector with `cfg`.
    pub fn new(cfg: VadConfig) -> Self {
        Vad {
            detector: Detector::default_boxed(),
            gate: SpeechGate::new(cfg),
            pending: Vec::with_capacity(2 * CHUNK),
            last_score: 0.0,
            floor: f32::from(cfg.silence_rms),
        }
    }

    /// The latest frame's voice score.
    pub fn last_score(&self) -> f32 {
        self.last_score
    }

    /// `true` while speech is on.
    pub fn speaking(&self) -> bool {
        self.gate.speaking()
    }

    /// `true` while voice has begun but is not speech yet
    /// ([`SpeechGate::rising`]).
    pub fn rising(&self) -> bool {
        self.gate.rising()
    }

    /// Feeds 16 kHz samples (e.g. a 20 ms frame of 320); returns the
    /// changes they reveal.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        self.pending.extend_from_slice(samples);
        let mut events = Vec::new();
        let mut at = 0;
        while self.pending.len() - at >= CHUNK {
            let chunk = &self.pending[at..at + CHUNK];
            let quiet = self.floor > 0.0
                && chunk.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>()
                    < self.floor * self.floor * CHUNK as f32;
            // The model still runs on quiet chunks: its state follows
            // the audio.
            let mut score = self.detector.predict_i16(chunk);
            if quiet {
                score = 0.0;
            }
            self.last_score = score;
            events.extend(self.gate.push(score, CHUNK_MS));
            at += CHUNK;
        }
        self.pending.drain(..at);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gate: &mut SpeechGate, scores: &[(f32, usize)]) -> Vec<VadEvent> {
        let mut out = vec![];
        for &(s, n) in scores {
            for _ in 0..n {
                out.extend(gate.push(s, 16));
            }
        }
        out
    }

    #[test]
    fn minimum_speech_and_hangover() {
        let mut g = SpeechGate::new(VadConfig {
            threshold: 0.5,
            min_speech_ms: 160,
            hangover_ms: 320,
            silence_rms: 0,
        });
        // A 96 ms backchannel does not start speech.
        assert!(run(&mut g, &[(0.1, 10), (0.9, 6), (0.1, 10)]).is_empty());
        // 320 ms of speech starts it at its beginning (416 ms in), a 160 ms
        // pause does not stop it, a 480 ms pause does, at its beginning.
        let ev = run(&mut g, &[(0.9, 20), (0.2, 10), (0.9, 5), (0.2, 30)]);
        assert_eq!(
            ev,
            [
                VadEvent::SpeechStart { ms: 416 },
                VadEvent::SpeechStop {
                    ms: 416 + 320 + 160 + 80
                }
            ]
        );
        assert!(!g.speaking());
    }
}
