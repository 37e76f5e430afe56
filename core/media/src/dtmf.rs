//! In-band DTMF detection: the Goertzel filter over each frame for the
//! eight DTMF frequencies, with the checks a receiver needs to tell a key
//! from speech — both tones present and dominant, twist within limits,
//! and the digit held for a minimum time.

use std::f64::consts::TAU;

use crate::tone::{COLS, KEYS, ROWS};

/// Goertzel power of one frequency over `samples`.
fn goertzel(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// A detected key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// The key.
    pub key: char,
    /// How long it was held, in samples (known when it is released).
    pub samples: usize,
}

/// Detects DTMF in a stream of frames (e.g. 20 ms).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    rate: f64,
    /// Frames a key must last to count.
    min_frames: u32,
    current: Option<(char, u32)>,
    frame_len: usize,
}

impl DtmfDetector {
    /// A detector for `sample_rate` requiring a key to last `min_ms`
    /// (40 ms is the usual minimum of a valid key press).
    pub fn new(sample_rate: u32, frame_ms: u32, min_ms: u32) -> Self {
        DtmfDetector {
            rate: f64::from(sample_rate.max(1)),
            min_frames: min_ms.div_ceil(frame_ms.max(1)).max(1),
            current: None,
            frame_len: 0,
        }
    }

    /// The key present in one frame, if any.
    pub fn classify(&self, frame: &[i16]) -> Option<char> {
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        if energy < 1e3 * frame.len() as f64 {
            return None;
        }
        let rows: Vec<f64> = ROWS
            .iter()
            .map(|&f| goertzel(frame, f, self.rate))
            .collect();
        let cols: Vec<f64> = COLS
            .iter()
            .map(|&f| goertzel(frame, f, self.rate))
            .collect();
        let best = |v: &[f64]| {
            let (i, &p) = v
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap_or((0, &0.0));
            let second = v
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &q)| q)
                .fold(0.0, f64::max);
            (i, p, second)
        };
        let (r, rp, r2) = best(&rows);
        let (c, cp, c2) = best(&cols);
        // Each tone clearly above the others of its group.
        if rp < 8.0 * r2 || cp < 8.0 * c2 {
            return None;
        }
        // Twist: the tones within 8 dB of each other (power ratio 6.3).
        if rp > 6.3 * cp || cp > 6.3 * rp {
            return None;
        }
        // The two tones carry most of the frame's energy (a pure sine's
        // Goertzel power is about energy · N / 2).
        let n = frame.len() as f64;
        if (rp + cp) < 0.5 * energy * n / 2.0 {
            return None;
        }
        Some(KEYS[r][c])
    }

    /// Feeds one frame; returns a digit when a key press that lasted long
    /// enough ends.
    pub fn push(&mut self, frame: &[i16]) -> Option<Digit> {
        self.frame_len = frame.len();
        let key = self.classify(frame);
        match (self.current, key) {
            (Some((k, n)), Some(now)) if k == now => {
                self.current = Some((k, n + 1));
                None
            }
            (prev, now) => {
                self.current = now.map(|k| (k, 1));
                match prev {
                    Some((k, n)) if n >= self.min_frames => Some(Digit {
                        key: k,
                        samples: n as usize * self.frame_len,
                    }),
                    _ => None,
                }
            }
        }
    }

    /// Ends the stream: reports a key still held long enough.
    pub fn finish(&mut self) -> Option<Digit> {
        let (k, n) = self.current.take()?;
        (n >= self.min_frames).then_some(Digit {
            key: k,
            samples: n as usize * self.frame_len,
        })
    }
}
