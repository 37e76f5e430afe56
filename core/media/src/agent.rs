//! The audio of a call connected to an agent, sans-IO (no sockets, no
//! clock of its own): what the caller says, as the agent contract hears
//! it — 20 ms frames of 16 kHz PCM, and speech start and stop from the
//! voice activity detector — and what the agent says, queued at 16 kHz
//! and taken out as 8 kHz frames, one per 20 ms, for the call's codec; a
//! stop (barge-in) empties the queue at once.
//!
//! Barge-in in two steps: from the first voiced chunk the detector
//! hears, the agent's audio is ducked ([`DUCK_GAIN`], about -18 dB),
//! within a frame or two of the caller's onset; once the voice has lasted
//! the detector's minimum speech time it is speech (`SpeechStarted`) and
//! the worker stops the agent's audio. Voice shorter than that (a
//! backchannel: "mm-hm") only ducks the agent while it lasts.
//!
//! The worker that owns the call decodes the caller's RTP to 8 kHz for
//! [`AgentAudio::hear`], sends what it returns to the agent, hands the
//! agent's plays to [`AgentAudio::play`], and every 20 ms encodes what
//! [`AgentAudio::speak`] gives it.

use std::collections::VecDeque;

use crate::resample::{FrameResampler, ResampleError};
use crate::vad::{Vad, VadConfig, VadEvent};

/// Samples in 20 ms at 8 kHz.
const FRAME_8K: usize = 160;
/// Samples in 20 ms at 16 kHz.
const FRAME_16K: usize = 320;

/// The agent's audio while the caller's voice has begun but is not yet
/// speech: ×1/8 (about -18 dB).
pub const DUCK_GAIN: f32 = 0.125;

/// What the agent hears of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// 20 ms of the caller: 16 kHz, 16-bit signed little-endian mono
    /// (640 bytes), starting `ms` after the first frame.
    Audio {
        /// The samples' bytes.
        pcm: Vec<u8>,
        /// Its start.
        ms: u64,
    },
    /// The caller started speaking (at the speech's start, not when the
    /// detector was sure).
    SpeechStarted {
        /// When.
        ms: u64,
    },
    /// The caller stopped speaking.
    SpeechStopped {
        /// When the last voiced audio ended.
        ms: u64,
    },
}

/// A play of the agent's that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayDone {
    /// The play's id, as the agent gave it.
    pub id: String,
    /// Stopped before its end.
    pub interrupted: bool,
}

/// A play in the queue.
#[derive(Debug)]
struct Play {
    id: String,
    /// Its samples still in the queue.
    queued: usize,
    /// Its last chunk has come.
    last: bool,
}

/// One call's audio to and from an agent.
pub struct AgentAudio {
    up: FrameResampler,
    down: FrameResampler,
    vad: Vad,
    heard_ms: u64,
    /// The agent's audio not yet spoken, 16 kHz.
    queue: VecDeque<i16>,
    /// The plays it belongs to, in order.
    plays: VecDeque<Play>,
    frame: Vec<i16>,
    resampled: Vec<i16>,
    /// The caller's voice has begun: the agent's audio is ducked.
    ducked: bool,
}

impl std::fmt::Debug for AgentAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAudio")
            .field("heard_ms", &self.heard_ms)
            .field("queued", &self.queue.len())
            .field("plays", &self.plays)
            .finish_non_exhaustive()
    }
}

impl AgentAudio {
    /// A call's audio with the detector set as `vad` says.
    pub fn new(vad: VadConfig) -> Result<AgentAudio, ResampleError> {
        Ok(AgentAudio {
            up: FrameResampler::new(8_000, 16_000)?,
            down: FrameResampler::new(16_000, 8_000)?,
            vad: Vad::new(vad),
            heard_ms: 0,
            queue: VecDeque::new(),
            plays: VecDeque::new(),
            frame: Vec::with_capacity(FRAME_16K),
            resampled: Vec::with_capacity(FRAME_16K),
            ducked: false,
        })
    }

    /// 20 ms of the caller at 8 kHz (160 samples; shorter is padded with
    /// silence): its frame for the agent, and the speech changes it
    /// reveals, pushed to `out`.
    pub fn hear(&mut self, pcm_8k: &[i16], out: &mut Vec<Heard>) {
        self.up.process(pcm_8k, &mut self.resampled);
        out.push(Heard::Audio {
            pcm: self
                .resampled
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
            ms: self.heard_ms,
        });
        for e in self.vad.push(&self.resampled) {
            out.push(match e {
                VadEvent::SpeechStart { ms } => Heard::SpeechStarted { ms },
                VadEvent::SpeechStop { ms } => Heard::SpeechStopped { ms },
            });
        }
        self.ducked = self.vad.rising();
        self.heard_ms += 20;
    }

    /// `true` while the agent's audio is ducked: the caller's voice has
    /// begun and is not yet speech.
    pub fn ducked(&self) -> bool {
        self.ducked
    }

    /// `true` while the caller speaks, as the detector has it.
    pub fn caller_speaking(&self) -> bool {
        self.vad.speaking()
    }

    /// Queues a chunk of the agent's play `id`: 16 kHz, 16-bit signed
    /// little-endian mono (an odd last byte is dropped); `last` ends the
    /// play.
    pub fn play(&mut self, id: &str, pcm_16k: &[u8], last: bool) {
        let before = self.queue.len();
        self.queue.extend(
            pcm_16k
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        let n = self.queue.len() - before;
        match self.plays.back_mut() {
            Some(p) if p.id == id && !p.last => {
                p.queued += n;
                p.last = last;
            }
            _ => self.plays.push_back(Play {
                id: id.to_string(),
                queued: n,
                last,
            }),
        }
    }

    /// `true` while some of the agent's audio waits to be spoken.
    pub fn playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next 20 ms of the agent's audio at 8 kHz (160 samples) in
    /// `out`, and the plays it finished in `done`; `false` (and `out`
    /// empty) when there is nothing to say. A play whose next chunk is
    /// late is padded with silence.
    pub fn speak(&mut self, out: &mut Vec<i16>, done: &mut Vec<PlayDone>) -> bool {
        out.clear();
        if self.queue.is_empty() {
            // Plays whose last chunk came empty are over too.
            self.finish_plays(done);
            return false;
        }
        let n = self.queue.len().min(FRAME_16K);
        self.frame.clear();
        self.frame.extend(self.queue.drain(..n));
        let mut taken = n;
        while taken > 0 {
            let Some(p) = self.plays.front_mut() else {
                break;
            };
            let t = taken.min(p.queued);
            p.queued -= t;
            taken -= t;
            if p.queued > 0 || !p.last {
                break;
            }
            let p = self.plays.pop_front().expect("the front");
            done.push(PlayDone {
                id: p.id,
                interrupted: false,
            });
        }
        self.finish_plays(done);
        if self.ducked {
            for s in &mut self.frame {
                *s = (f32::from(*s) * DUCK_GAIN) as i16;
            }
        }
        self.down.process(&self.frame, out);
        out.truncate(FRAME_8K);
        true
    }

    /// Stops the agent's audio at once (barge-in): everything queued is
    /// dropped and each play in it is over, interrupted.
    pub fn stop(&mut self, done: &mut Vec<PlayDone>) {
        self.queue.clear();
        done.extend(self.plays.drain(..).map(|p| PlayDone {
            id: p.id,
            interrupted: true,
        }));
    }

    /// Plays at the front with nothing left and their last chunk in.
    fn finish_plays(&mut self, done: &mut Vec<PlayDone>) {
        while self.plays.front().is_some_and(|p| p.queued == 0 && p.last) {
            let p = self.plays.pop_front().expect("the front");
            done.push(PlayDone {
                id: p.id,
                interrupted: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_8k(hz: f64, frame: usize) -> Vec<i16> {
        (0..FRAME_8K)
            .map(|i| {
                let t = (frame * FRAME_8K + i) as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    #[test]
    fn the_caller_is_heard_as_16_khz_frames_on_a_20_ms_clock() {
        let mut a = AgentAudio::new(VadConfig::default()).unwrap();
        let mut out = Vec::new();
        for f in 0..10 {
            a.hear(&tone_8k(440.0, f), &mut out);
        }
        let frames: Vec<_> = out
            .iter()
            .filter_map(|h| match h {
                Heard::Audio { pcm, ms } => Some((pcm.clone(), *ms)),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 10);
        for (i, (pcm, ms)) in frames.iter().enumerate() {
            assert_eq!(pcm.len(), 640, "320 samples, 2 bytes each");
            assert_eq!(*ms, i as u64 * 20);
        }
        // Past the resampler's delay the tone comes through at its level
        // (8000 peak: 5657 RMS).
        let last: Vec<i16> = frames[9]
            .0
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert!((4500.0..6500.0).contains(&rms(&last)), "{}", rms(&last));
        // A tone is not speech; silence neither.
        assert!(!out.iter().any(|h| matches!(h, Heard::SpeechStarted { .. })));
        assert!(!a.caller_speaking());
    }

    #[test]
    fn plays_come_out_as_8_khz_frames_and_end_in_order() {
        let mut a = AgentAudio::new(VadConfig::default()).unwrap();
        let bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|i| ((i as i16 % 100) * 50).to_le_bytes())
                .collect()
        };
        let (mut out, mut done) = (Vec::new(), Vec::new());
        assert!(!a.speak(&mut out, &mut done), "nothing to say");
        // "a": 30 ms in two chunks, then "b": 10 ms.
        a.play("a", &bytes(400), false);
        a.play("a", &bytes(80), true);
        a.play("b", &bytes(160), true);
        assert!(a.playing());
        assert!(a.speak(&mut out, &mut done));
        assert_eq!(out.len(), FRAME_8K);
        assert!(done.is_empty(), "a has 10 ms left");
        // The next frame ends a (10 ms) and b (10 ms).
        assert!(a.speak(&mut out, &mut done));
        assert_eq!(
            done,
            [
                PlayDone {
                    id: "a".into(),
                    interrupted: false
                },
                PlayDone {
                    id: "b".into(),
                    interrupted: false
                }
            ]
        );
        assert!(!a.speak(&mut out, &mut done));
        assert!(out.is_empty());
    }

    #[test]
    fn a_play_waits_for_its_next_chunk_and_stop_interrupts_it() {
        let mut a = AgentAudio::new(VadConfig::default()).unwrap();
        let (mut out, mut done) = (Vec::new(), Vec::new());
        a.play("long", &vec![1u8; 640 * 5], false);
        assert!(a.speak(&mut out, &mut done));
        // Barge-in: the rest is dropped, the play is over, interrupted.
        a.stop(&mut done);
        assert_eq!(
            done,
            [PlayDone {
                id: "long".into(),
                interrupted: true
            }]
        );
        assert!(!a.playing());
        assert!(!a.speak(&mut out, &mut done));
        // A play still streaming when its queue runs dry is not over; an
        // empty last chunk ends it.
        done.clear();
        a.play("s", &vec![0u8; 640], false);
        assert!(a.speak(&mut out, &mut done));
        assert!(!a.speak(&mut out, &mut done));
        assert!(done.is_empty());
        a.play("s", &[], true);
        assert!(!a.speak(&mut out, &mut done));
        assert_eq!(
            done,
            [PlayDone {
                id: "s".into(),
                interrupted: false
            }]
        );
    }
}
