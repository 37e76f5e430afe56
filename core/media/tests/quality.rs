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

use sentiric_media::resample::FrameResampler;

/// Runs `pcm` through `r` frame by frame.
fn resample_all(r: &mut FrameResampler, pcm: &[i16]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut frame = Vec::new();
    for chunk in pcm.chunks(r.input_len()) {
        r.process(chunk, &mut frame);
        out.extend_from_slice(&frame);
    }
    out
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn tone(freq: f64, dbfs: f64, rate: u32, secs: f64) -> Vec<i16> {
    let mut t = Tone::new(freq, 0.0, dbfs, rate);
    let mut v = vec![0i16; (f64::from(rate) * secs) as usize];
    t.fill(&mut v);
    v
}

#[test]
fn resampling_keeps_the_passband_level() {
    for (a, b) in [
        (8000, 16000),
        (8000, 48000),
        (16000, 48000),
        (48000, 8000),
        (16000, 8000),
    ] {
        let input = tone(1000.0, -6.0, a, 1.0);
        let mut r = FrameResampler::new(a, b).unwrap();
        let out = resample_all(&mut r, &input);
        assert_eq!(out.len(), (b / 50 * 50) as usize);
        // Skip the delay and a little more; compare levels in dB.
        let settled = &out[r.delay() + (b as usize / 50)..];
        let gain = 20.0 * (rms(settled) / rms(&input)).log10();
        assert!(
            gain.abs() < 0.5,
            "{a} -> {b}: 1 kHz changes by {gain:.2} dB"
        );
    }
}

#[test]
fn downsampling_removes_what_the_new_rate_cannot_carry() {
    // 6 kHz fits 16 kHz but not 8 kHz (Nyquist 4 kHz): it must not fold
    // back as a 2 kHz alias.
    let input = tone(6000.0, -6.0, 16000, 1.0);
    let mut r = FrameResampler::new(16000, 8000).unwrap();
    let out = resample_all(&mut r, &input);
    let settled = &out[r.delay() + 160..];
    let attenuation = 20.0 * (rms(&input) / rms(settled).max(1e-9)).log10();
    assert!(
        attenuation > 40.0,
        "6 kHz only {attenuation:.1} dB down at 8 kHz"
    );
}

#[test]
fn round_trip_8k_16k_8k() {
    let input = tone(700.0, -10.0, 8000, 1.0);
    let mut up = FrameResampler::new(8000, 16000).unwrap();
    let mut down = FrameResampler::new(16000, 8000).unwrap();
    let back = resample_all(&mut down, &resample_all(&mut up, &input));
    // Align by the lag with the best match, then measure.
    let best = (0..400)
        .map(|lag| {
            let n = input.len() - lag - 400;
            let err: f64 = (400..n)
                .map(|k| (f64::from(input[k]) - f64::from(back[k + lag])).powi(2))
                .sum();
            (err, lag)
        })
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .unwrap();
    let lag = best.1;
    let n = input.len() - lag - 400;
    let snr = snr_db(&input[400..n], &back[400 + lag..n + lag]);
    assert!(snr > 30.0, "round trip SNR {snr:.1} dB at lag {lag}");
}

use sentiric_media::opus_codec::{OpusCodec, OpusConfig, OpusMode};

/// SNR of `got` against `reference` at the lag (codec delay) that fits best.
fn aligned_snr(reference: &[i16], got: &[i16], max_lag: usize) -> (f64, usize) {
    let skip = reference.len() / 10;
    (0..max_lag)
        .map(|lag| {
            let n = reference.len() - max_lag;
            (snr_db(&reference[skip..n], &got[skip + lag..n + lag]), lag)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

#[test]
fn opus_snr_on_a_sine() {
    // Measured 2026-11-26: 31.2, 33.3 and 23.9 dB.
    for (rate, bitrate, floor) in [
        (8000, 16_000, 25.0),
        (16000, 24_000, 25.0),
        (48000, 32_000, 18.0),
    ] {
        let mut codec = OpusCodec::new(rate, bitrate).unwrap();
        let input = tone(440.0, -12.0, rate, 1.0);
        let (mut packet, mut frame, mut out) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0;
        for chunk in input.chunks(codec.frame_len()) {
            codec.encode(chunk, &mut packet).unwrap();
            bytes += packet.len();
            codec.decode(Some(&packet), &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        let (snr, lag) = aligned_snr(&input, &out, rate as usize / 50);
        assert!(snr > floor, "{rate} Hz: SNR {snr:.1} dB at delay {lag}");
        assert!(
            bytes * 8 <= bitrate as usize * 12 / 10,
            "{rate} Hz: {bytes} bytes in 1 s"
        );
        // A lost packet is concealed with a full frame.
        codec.decode(None, &mut frame).unwrap();
        assert_eq!(frame.len(), codec.frame_len());
    }
}

#[test]
fn opus_cheap_profiles_on_a_sine() {
    // The profiles that trade encoder effort for density (BENCHMARKS.md):
    // SILK at complexity 0 and CELT-only low delay, at 8 kHz, 16 kb/s.
    // Measured 2026-11-26: 24.1 and 18.2 dB (complexity 10: 31.2 dB).
    for (mode, complexity, floor) in [(OpusMode::Speech, 0, 20.0), (OpusMode::LowDelay, 0, 14.0)] {
        let mut codec = OpusCodec::configured(OpusConfig {
            complexity,
            mode,
            ..OpusConfig::speech(8000, 16_000)
        })
        .unwrap();
        let input = tone(440.0, -12.0, 8000, 1.0);
        let (mut packet, mut frame, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in input.chunks(codec.frame_len()) {
            codec.encode(chunk, &mut packet).unwrap();
            codec.decode(Some(&packet), &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        let (snr, lag) = aligned_snr(&input, &out, 160);
        println!("{mode:?} complexity {complexity}: SNR {snr:.1} dB at delay {lag}");
        assert!(
            snr > floor,
            "{mode:?} complexity {complexity}: SNR {snr:.1} dB"
        );
    }
}

#[test]
fn opus_dtx_sends_almost_nothing_in_silence() {
    let mut codec = OpusCodec::configured(OpusConfig {
        dtx: true,
        ..OpusConfig::speech(8000, 16_000)
    })
    .unwrap();
    let silence = vec![0i16; 160];
    let mut packet = Vec::new();
    let mut bytes = 0;
    for _ in 0..50 {
        codec.encode(&silence, &mut packet).unwrap();
        bytes += packet.len();
    }
    // Without DTX a second of silence still costs tens of bytes a frame.
    assert!(bytes < 200, "{bytes} bytes for 1 s of silence");
}

use sentiric_media::transcode::{Codec, Transcoder};

/// Level (dBFS) of the `freq` Hz sine in `x` and its SNR: the least-squares
/// fit of a sine and a cosine at `freq` against everything else. Blind to
/// delay and phase, which codecs and resamplers shift by fractions of a
/// sample.
fn tone_fit(x: &[i16], rate: u32, freq: f64) -> (f64, f64) {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let v = f64::from(v);
        ss += s * s;
        sc += s * c;
        cc += c * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
    let (mut fit, mut rest) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let f = a * s + b * c;
        fit += f * f;
        rest += (f64::from(v) - f).powi(2);
    }
    let rms = (fit / x.len() as f64).sqrt();
    (
        20.0 * (rms * std::f64::consts::SQRT_2 / 32768.0).log10(),
        10.0 * (fit / rest.max(1e-9)).log10(),
    )
}

/// A phone speaking `codec`: its own encoder and decoder.
enum Phone {
    G711(Law),
    Opus(Box<OpusCodec>),
}

impl Phone {
    fn new(codec: Codec) -> Phone {
        match codec {
            Codec::Pcmu => Phone::G711(Law::Ulaw),
            Codec::Pcma => Phone::G711(Law::Alaw),
            Codec::Opus(c) => Phone::Opus(Box::new(OpusCodec::configured(c).unwrap())),
        }
    }

    fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Phone::G711(law) => law.encode(pcm, &mut out),
            Phone::Opus(o) => o.encode(pcm, &mut out).unwrap(),
        }
        out
    }

    fn decode(&mut self, payload: &[u8], pcm: &mut Vec<i16>) {
        let mut frame = Vec::new();
        match self {
            Phone::G711(law) => law.decode(payload, &mut frame),
            Phone::Opus(o) => o.decode(Some(payload), &mut frame).unwrap(),
        }
        pcm.extend_from_slice(&frame);
    }
}

#[test]
fn transcoding_between_any_two_codecs_keeps_a_tone() {
    let codecs = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::opus(8000),
        Codec::opus(16000),
        Codec::opus(48000),
    ];
    for from in codecs {
        for to in codecs {
            if from == to {
                continue;
            }
            let mut t = Transcoder::new(from, to).unwrap();
            let (mut speaker, mut listener) = (Phone::new(from), Phone::new(to));
            let input = tone(440.0, -12.0, from.pcm_rate(), 1.0);
            let mut heard = Vec::new();
            let mut payloads = 0;
            for frame in input.chunks(from.frame_len()) {
                let sent = speaker.encode(frame);
                payloads += t
                    .a_to_b(Some(&sent), |p| {
                        listener.decode(p, &mut heard);
                    })
                    .unwrap();
            }
            assert_eq!(payloads, 50, "{from:?} -> {to:?}");
            assert_eq!(heard.len(), to.pcm_rate() as usize, "{from:?} -> {to:?}");
            // The first 100 ms hold the codecs' and resampler's start-up.
            let (level, snr) = tone_fit(&heard[heard.len() / 10..], to.pcm_rate(), 440.0);
            println!("{from:?} -> {to:?}: level {level:.2} dBFS, SNR {snr:.1} dB");
            // Measured 2026-12-01: G.711 to G.711 32.1–37.5 dB; paths
            // through Opus (complexity 1) 22.2–30.8 dB.
            let floor = if matches!(from, Codec::Opus(_)) || matches!(to, Codec::Opus(_)) {
                18.0
            } else {
                30.0
            };
            assert!(snr > floor, "{from:?} -> {to:?}: SNR {snr:.1} dB");
            assert!(
                (level + 12.0).abs() < 1.5,
                "{from:?} -> {to:?}: level {level:.2} dBFS"
            );
        }
    }
}
