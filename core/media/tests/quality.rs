//! Measured quality: G.711 signal-to-noise on sines, DTMF detection on
//! generated tones and its rejection of single tones and silence.

use sentiric_media::dtmf::DtmfDetector;
use sentiric_media::g711::Law;
use sentiric_media::tone::Tone;

fn snr_db(reference: &[i16], got: &[i16]) -> f64 {
    let signal: f64 = reference.iter().map(|&s| f64::from(s).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

#[test]
fn g711_snr_on_sines() {
    // G.711's quantisation SNR is about 38 dB over a wide range of levels.
    for law in [Law::Ulaw, Law::Alaw] {
        for (freq, dbfs) in [
            (1000.0, -3.0),
            (440.0, -10.0),
            (2500.0, -20.0),
            (300.0, -30.0),
        ] {
            let mut t = Tone::new(freq, 0.0, dbfs, 8000);
            let mut pcm = vec![0i16; 8000];
            t.fill(&mut pcm);
            let (mut codes, mut back) = (Vec::new(), Vec::new());
            law.encode(&pcm, &mut codes);
            law.decode(&codes, &mut back);
            let snr = snr_db(&pcm, &back);
            assert!(
                snr > 33.0,
                "{law:?} {freq} Hz at {dbfs} dBFS: SNR {snr:.1} dB"
            );
        }
    }
}

fn frames(tone: &mut Tone, ms: usize) -> Vec<Vec<i16>> {
    (0..ms / 20)
        .map(|_| {
            let mut f = vec![0i16; 160];
            tone.fill(&mut f);
            f
        })
        .collect()
}

#[test]
fn detects_every_key_once() {
    let mut det = DtmfDetector::new(8000, 20, 40);
    let mut got = String::new();
    for key in "0123456789*#ABCD".chars() {
        let mut on = Tone::dtmf(key, 8000).unwrap();
        let mut off = Tone::new(0.0, 0.0, -90.0, 8000);
        for f in frames(&mut on, 100)
            .iter()
            .chain(frames(&mut off, 60).iter())
        {
            if let Some(d) = det.push(f) {
                got.push(d.key);
                assert_eq!(d.samples, 800, "{key} held 100 ms");
            }
        }
    }
    assert_eq!(got, "0123456789*#ABCD");
}

#[test]
fn survives_g711_and_rejects_non_keys() {
    let mut det = DtmfDetector::new(8000, 20, 40);
    // Through µ-law, at a lower level.
    let mut five = Tone::new(770.0, 1336.0, -20.0, 8000);
    let mut got = vec![];
    for f in frames(&mut five, 80) {
        let (mut c, mut back) = (Vec::new(), Vec::new());
        Law::Ulaw.encode(&f, &mut c);
        Law::Ulaw.decode(&c, &mut back);
        got.extend(det.push(&back));
    }
    got.extend(det.finish());
    assert_eq!(got.iter().map(|d| d.key).collect::<String>(), "5");
    // A single tone, a too-short key, and a strong twist: nothing.
    let mut single = Tone::new(770.0, 0.0, -10.0, 8000);
    let mut short = Tone::dtmf('9', 8000).unwrap();
    let mut twisted_row = Tone::new(852.0, 0.0, -6.0, 8000);
    let mut twisted_col = Tone::new(1477.0, 0.0, -26.0, 8000);
    let mut det = DtmfDetector::new(8000, 20, 40);
    let mut found = vec![];
    for f in frames(&mut single, 200) {
        found.extend(det.push(&f));
    }
    let silence = vec![0i16; 160];
    found.extend(det.push(&silence));
    found.extend(det.push(&frames(&mut short, 20)[0]));
    found.extend(det.push(&silence));
    for _ in 0..10 {
        let (mut a, mut b) = (vec![0i16; 160], vec![0i16; 160]);
        twisted_row.fill(&mut a);
        twisted_col.fill(&mut b);
        let mix: Vec<i16> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| x.saturating_add(*y))
            .collect();
        found.extend(det.push(&mix));
    }
    found.extend(det.finish());
    assert!(found.is_empty(), "{found:?}");
}
