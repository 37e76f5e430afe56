//! Tone generators: a sum of up to two sines, with an on/off cadence —
//! DTMF digits, ringback, a beep.

use std::f64::consts::TAU;

/// DTMF row frequencies (Hz).
pub(crate) const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// DTMF column frequencies (Hz).
pub(crate) const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][column]`.
pub(crate) const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Row and column frequencies of a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYS.iter().enumerate() {
        for (c, k) in row.iter().enumerate() {
            if *k == d {
                return Some((ROWS[r], COLS[c]));
            }
        }
    }
    None
}

/// A tone: one or two frequencies at a level, switched on and off.
#[derive(Debug, Clone)]
pub struct Tone {
    freqs: [f64; 2],
    /// Peak amplitude of each component, in 16-bit units.
    amplitude: f64,
    sample_rate: u32,
    /// (on, off) in samples; `off == 0` is a continuous tone.
    cadence: (u64, u64),
    n: u64,
}

impl Tone {
    /// A tone of `f1` (and `f2`, 0 for none) Hz, each component at `dbfs`
    /// dB below full scale, on `sample_rate`.
    pub fn new(f1: f64, f2: f64, dbfs: f64, sample_rate: u32) -> Tone {
        Tone {
            freqs: [f1, f2],
            amplitude: 32767.0 * 10f64.powf(dbfs / 20.0),
            sample_rate: sample_rate.max(1),
            cadence: (1, 0),
            n: 0,
        }
    }

    /// The two tones of a DTMF digit, each at -10 dBFS.
    pub fn dtmf(digit: char, sample_rate: u32) -> Option<Tone> {
        let (r, c) = dtmf_frequencies(digit)?;
        Some(Tone::new(r, c, -10.0, sample_rate))
    }

    /// Ringback as North America plays it: 440 + 480 Hz, 2 s on, 4 s off.
    pub fn ringback(sample_rate: u32) -> Tone {
        Tone::new(440.0, 480.0, -16.0, sample_rate).with_cadence(2000, 4000)
    }

    /// A 1 kHz beep.
    pub fn beep(sample_rate: u32) -> Tone {
        Tone::new(1000.0, 0.0, -10.0, sample_rate)
    }

    /// Switches the tone on for `on_ms` and off for `off_ms`, repeating.
    pub fn with_cadence(mut self, on_ms: u64, off_ms: u64) -> Tone {
        let per_ms = u64::from(self.sample_rate) / 1000;
        self.cadence = ((on_ms * per_ms).max(1), off_ms * per_ms);
        self
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let (on, off) = self.cadence;
        let rate = f64::from(self.sample_rate);
        for o in out.iter_mut() {
            let audible = off == 0 || self.n % (on + off) < on;
            *o = if audible {
                let t = self.n as f64 / rate;
                let v: f64 = self
                    .freqs
                    .iter()
                    .filter(|f| **f > 0.0)
                    .map(|f| (TAU * f * t).sin())
                    .sum();
                (v * self.amplitude).round().clamp(-32768.0, 32767.0) as i16
            } else {
                0
            };
            self.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_and_level() {
        let mut t = Tone::ringback(8000);
        let mut buf = vec![0i16; 8000 * 6];
        t.fill(&mut buf);
        assert!(buf[..16000].iter().any(|&s| s != 0));
        assert!(buf[16000..48000].iter().all(|&s| s == 0));
        let mut b = Tone::beep(8000);
        let mut one = vec![0i16; 800];
        b.fill(&mut one);
        let peak = one.iter().map(|s| s.unsigned_abs()).max().unwrap();
        // -10 dBFS: 10362.
        assert!((10300..=10400).contains(&peak), "{peak}");
        assert_eq!(dtmf_frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(dtmf_frequencies('x'), None);
    }
}
