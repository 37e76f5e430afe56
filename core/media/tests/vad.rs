//! The voice activity detector on real signals: silence and steady noise
//! never start speech; a synthetic voiced vowel does.

use sentiric_media::agent::{AgentAudio, Heard};
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

/// 16 kHz → 8 kHz by taking every other sample (the vowel has nothing
/// above 4 kHz worth keeping).
fn to_8k(s: &[i16]) -> Vec<i16> {
    s.iter().step_by(2).copied().collect()
}

/// Barge-in on an agent call: the agent talks (a steady tone), the caller
/// says `vowel_ms` of a vowel from 400 ms on. Per 20 ms frame: whether the
/// agent's audio was ducked, its level, and the speech events; the agent
/// is stopped (as the worker does) on speech start.
fn barge(vowel_ms: usize) -> (Vec<bool>, Vec<f64>, Vec<Heard>) {
    let mut a = AgentAudio::new(VadConfig::default()).unwrap();
    let talk: Vec<u8> = (0..16000 * 3)
        .map(|i| (f64::sin(i as f64 * 0.2) * 8000.0) as i16)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    a.play("answer", &talk, true);
    let mut seed = 11;
    let mut caller = to_8k(&noise(16000 * 2 / 5, 100.0, &mut seed));
    caller.extend(to_8k(&vowel(16 * vowel_ms)));
    caller.extend(to_8k(&noise(16000, 100.0, &mut seed)));
    let (mut ducked, mut level, mut events) = (vec![], vec![], vec![]);
    let (mut heard, mut out, mut done) = (vec![], vec![], vec![]);
    for frame in caller.chunks(160) {
        a.hear(frame, &mut heard);
        for h in heard.drain(..) {
            if matches!(h, Heard::SpeechStarted { .. }) {
                a.stop(&mut done);
            }
            if !matches!(h, Heard::Audio { .. }) {
                events.push(h);
            }
        }
        ducked.push(a.ducked());
        a.speak(&mut out, &mut done);
        level.push(if out.is_empty() {
            0.0
        } else {
            (out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / out.len() as f64).sqrt()
        });
    }
    (ducked, level, events)
}

#[test]
fn the_callers_voice_ducks_the_agent_at_once_and_speech_stops_it() {
    let (ducked, level, events) = barge(800);
    // The vowel begins at frame 20 (400 ms): ducked within 100 ms (the
    // frame after the decision fully: the resampler's delay).
    let first = ducked.iter().position(|&d| d).expect("ducked");
    assert!((20..=24).contains(&first), "ducked from frame {first}");
    assert!(
        level[first + 1] < level[first - 1] / 6.0,
        "{:?}",
        &level[..first + 2]
    );
    // Speech starts once the voice lasted the minimum (300 ms): the
    // agent is stopped then.
    let started = events
        .iter()
        .find_map(|h| match h {
            Heard::SpeechStarted { ms } => Some(*ms),
            _ => None,
        })
        .expect("speech started");
    assert!((380..=520).contains(&started), "{started}");
    let silent = level.iter().rposition(|&l| l > 0.0).unwrap() + 1;
    assert!(
        (first + 14..=first + 17).contains(&silent),
        "stopped at {silent}"
    );
}

#[test]
fn a_backchannel_only_ducks_the_agent_while_it_lasts() {
    let (ducked, level, events) = barge(150);
    assert!(
        !events
            .iter()
            .any(|h| matches!(h, Heard::SpeechStarted { .. })),
        "{events:?}"
    );
    let first = ducked.iter().position(|&d| d).expect("ducked");
    let last = ducked.iter().rposition(|&d| d).unwrap();
    assert!(last - first <= 12, "ducked {first}..{last}");
    // The agent goes on at its level, to the end of the caller's audio.
    let before = level[first - 1];
    assert!(level[last + 2..].iter().all(|&l| l > before * 0.8));
}
