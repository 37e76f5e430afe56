//! What an Opus leg costs and how it sounds, per rate and encoder
//! setting, on the speech-like signal of `sentiric_bench::speech_like`:
//! wall time per 20 ms frame for encode, decode and a whole PCMU ↔ Opus
//! transcode (both directions, with 8 ↔ 48 kHz resampling where Opus runs
//! at 48 kHz), the share of one core that is per call, and two measures
//! of the decoded speech against the input: SNR and log-spectral distance
//! (LSD, dB; lower is closer). Each figure is the median of 9 runs.
//!
//! `cargo run --release -p sentiric-bench --example opus_cost`

use std::time::Instant;

use sentiric_bench::speech_like;
use sentiric_media::g711::Law;
use sentiric_media::opus_codec::{OpusCodec, OpusConfig, OpusMode};
use sentiric_media::resample::FrameResampler;

const RUNS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The lag (codec delay, up to one frame) at which `got` fits `reference`.
fn best_lag(reference: &[i16], got: &[i16], max_lag: usize) -> usize {
    (0..max_lag)
        .max_by(|&a, &b| {
            let dot = |lag: usize| -> f64 {
                reference
                    .iter()
                    .zip(&got[lag..])
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum()
            };
            dot(a).total_cmp(&dot(b))
        })
        .unwrap_or(0)
}

fn snr_db(reference: &[i16], got: &[i16]) -> f64 {
    let (mut s, mut e) = (0.0f64, 0.0f64);
    for (&a, &b) in reference.iter().zip(got) {
        s += f64::from(a).powi(2);
        e += (f64::from(a) - f64::from(b)).powi(2);
    }
    10.0 * (s / e.max(1.0)).log10()
}

/// Mean log-spectral distance over the frames that carry speech, from a
/// plain DFT of each Hann-windowed frame up to 4 kHz.
fn lsd_db(reference: &[i16], got: &[i16], frame: usize, rate: u32) -> f64 {
    let bins = (4000 * frame as u32 / rate) as usize;
    let spectrum = |x: &[i16]| -> Vec<f64> {
        (1..bins)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &s) in x.iter().enumerate() {
                    let w = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / frame as f64).cos();
                    let ph = std::f64::consts::TAU * (k * n) as f64 / frame as f64;
                    re += w * f64::from(s) * ph.cos();
                    im -= w * f64::from(s) * ph.sin();
                }
                10.0 * (re * re + im * im + 1.0).log10()
            })
            .collect()
    };
    let (mut total, mut frames) = (0.0, 0);
    for (a, b) in reference.chunks_exact(frame).zip(got.chunks_exact(frame)) {
        let energy: f64 = a.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame as f64;
        if energy < 100.0 * 100.0 {
            continue;
        }
        let (sa, sb) = (spectrum(a), spectrum(b));
        let d: f64 = sa
            .iter()
            .zip(&sb)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / sa.len() as f64;
        total += d.sqrt();
        frames += 1;
    }
    total / f64::from(frames.max(1))
}

/// One PCMU ↔ Opus transcode of a 20 ms frame, both directions.
struct Transcode {
    codec: OpusCodec,
    up: Option<(FrameResampler, FrameResampler)>,
    bufs: [Vec<i16>; 4],
    packet: Vec<u8>,
    ulaw: Vec<u8>,
}

impl Transcode {
    fn new(config: OpusConfig) -> Transcode {
        let up = (config.rate != 8000).then(|| {
            (
                FrameResampler::new(8000, config.rate).unwrap(),
                FrameResampler::new(config.rate, 8000).unwrap(),
            )
        });
        Transcode {
            codec: OpusCodec::configured(config).unwrap(),
            up,
            bufs: Default::default(),
            packet: Vec::new(),
            ulaw: Vec::new(),
        }
    }

    /// PCMU in → Opus out, and an Opus packet in → PCMU out.
    fn frame(&mut self, ulaw_in: &[u8], opus_in: &[u8]) {
        let [lin8, lin, dec, dec8] = &mut self.bufs;
        Law::Ulaw.decode(ulaw_in, lin8);
        let pcm = match &mut self.up {
            Some((up, _)) => {
                up.process(lin8, lin);
                &*lin
            }
            None => &*lin8,
        };
        self.codec.encode(pcm, &mut self.packet).unwrap();
        self.codec.decode(Some(opus_in), dec).unwrap();
        let out = match &mut self.up {
            Some((_, down)) => {
                down.process(dec, dec8);
                &*dec8
            }
            None => &*dec,
        };
        Law::Ulaw.encode(out, &mut self.ulaw);
    }
}

fn main() {
    let profiles: [(&str, OpusMode, i32); 6] = [
        ("speech cx10", OpusMode::Speech, 10),
        ("speech cx5", OpusMode::Speech, 5),
        ("speech cx1", OpusMode::Speech, 1),
        ("speech cx0", OpusMode::Speech, 0),
        ("lowdelay cx5", OpusMode::LowDelay, 5),
        ("lowdelay cx0", OpusMode::LowDelay, 0),
    ];
    println!(
        "{:>5} {:>6} {:<13} {:>9} {:>9} {:>11} {:>7} {:>7} {:>7}",
        "rate", "b/s", "profile", "enc µs", "dec µs", "pcmu↔opus", "% core", "SNR", "LSD"
    );
    for (rate, bitrate) in [(8000u32, 16_000), (16000, 24_000), (48000, 32_000)] {
        let pcm = speech_like(rate, 6.0);
        let pcm8 = speech_like(8000, 6.0);
        let frame = (rate / 50) as usize;
        for (name, mode, complexity) in profiles {
            let config = OpusConfig {
                complexity,
                mode,
                ..OpusConfig::speech(rate, bitrate)
            };
            let (mut enc, mut dec, mut both) = (Vec::new(), Vec::new(), Vec::new());
            let mut decoded = Vec::new();
            let mut packets = Vec::new();
            for _ in 0..RUNS {
                let mut codec = OpusCodec::configured(config).unwrap();
                let mut pkt = Vec::new();
                packets.clear();
                let t = Instant::now();
                for f in pcm.chunks_exact(frame) {
                    codec.encode(f, &mut pkt).unwrap();
                    packets.push(pkt.clone());
                }
                enc.push(t.elapsed().as_secs_f64() * 1e6 / packets.len() as f64);
                let mut out = Vec::new();
                decoded.clear();
                let t = Instant::now();
                for p in &packets {
                    codec.decode(Some(p), &mut out).unwrap();
                    decoded.extend_from_slice(&out);
                }
                dec.push(t.elapsed().as_secs_f64() * 1e6 / packets.len() as f64);

                // The PCMU side's frames and the Opus side's packets.
                let mut ulaw = Vec::new();
                Law::Ulaw.encode(&pcm8, &mut ulaw);
                let mut tc = Transcode::new(config);
                let t = Instant::now();
                for (u, p) in ulaw.chunks_exact(160).zip(&packets) {
                    tc.frame(u, p);
                }
                both.push(t.elapsed().as_secs_f64() * 1e6 / packets.len() as f64);
            }
            let lag = best_lag(&pcm[frame..pcm.len() - 2 * frame], &decoded[frame..], frame);
            let aligned = &decoded[lag..];
            let n = pcm.len() - 2 * frame;
            let both = median(both);
            println!(
                "{rate:>5} {bitrate:>6} {name:<13} {:>9.1} {:>9.1} {:>11.1} {:>6.2}% {:>6.1} {:>7.2}",
                median(enc),
                median(dec),
                both,
                both / 20_000.0 * 100.0,
                snr_db(&pcm[..n], &aligned[..n]),
                lsd_db(&pcm[..n], &aligned[..n], frame, rate),
            );
        }
    }
}
