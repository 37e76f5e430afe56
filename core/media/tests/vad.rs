//! The voice activity detector on real signals: silence and steady noise
//! never start speech; a synthetic voiced vowel does.

use sentiric_media::vad::{Vad, VadConfig, VadEvent};

/// Deterministic white noise at roughly `level` peak.
fn noise(n: usize, level: f64, seed: &mut u32) -> Vec<i16> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            ((f64::from(*seed) / f64::from(u32::MAX) * 2.0 - 1.0) * level) as i16
        })
        .collect()
}

/// A vowel-like sound: a 120 Hz pulse train through two formant
/// resonators (about 700 and 1200 Hz, an /a/), with a syllable-rate
/// loudness contour, at 16 kHz.
fn vowel(n: usize) -> Vec<i16> {
    let rate = 16000.0f64;
    let resonator = |f: f64, bw: f64| {
        let r = (-std::f64::consts::PI * bw / rate).exp();
        let c = 2.0 * r * (std::f64::consts::TAU * f / rate).cos();
        (c, -r * r)
    };
    let (a1, a2) = resonator(700.0, 110.0);
    let (b1, b2) = resonator(1200.0, 120.0);
    let (mut y1, mut y2, mut z1, mut z2) = (0.0, 0.0, 0.0, 0.0);
    let period = (rate / 120.0) as usize;
    (0..n)
        .map(|k| {
            let x = if k % period == 0 { 1.0 } else { 0.0 };
            let y = x + a1 * y1 + a2 * y2;
            (y2, y1) = (y1, y);
            let z = y + b1 * z1 + b2 * z2;
            (z2, z1) = (z1, z);
            let contour = 0.6 + 0.4 * (std::f64::consts::TAU * 4.0 * k as f64 / rate).sin();
            (z * 400.0 * contour).clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

fn feed(vad: &mut Vad, samples: &[i16]) -> Vec<VadEvent> {
    samples.chunks(320).flat_map(|f| vad.push(f)).collect()
}

#[test]
fn silence_and_noise_are_not_speech() {
    let mut vad = Vad::new(VadConfig::default());
    let mut seed = 7;
    assert!(feed(&mut vad, &vec![0; 16000 * 2]).is_empty());
    assert!(
        feed(&mut vad, &noise(16000 * 3, 300.0, &mut seed)).is_empty(),
        "score {}",
        vad.last_score()
    );
    assert!(!vad.speaking());
}

#[test]
fn a_voiced_vowel_is_speech() {
    let mut vad = Vad::new(VadConfig::default());
    let mut seed = 9;
    let mut signal = noise(16000, 100.0, &mut seed);
    signal.extend(vowel(16000 * 2));
    signal.extend(noise(16000 * 2, 100.0, &mut seed));
    let ev = feed(&mut vad, &signal);
    assert!(
        matches!(ev.first(), Some(VadEvent::SpeechStart { ms }) if (900..=1400).contains(ms)),
        "{ev:?}"
    );
    assert!(
        matches!(ev.get(1), Some(VadEvent::SpeechStop { ms }) if (2900..=3600).contains(ms)),
        "{ev:?}"
    );
}
