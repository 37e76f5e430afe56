//! Data-plane micro-benchmarks per packet or per 20 ms frame: the relay's
//! work on one RTP packet, G.711 at 8 kHz, the mix-minus mixer,
//! resampling, voice activity detection, in-band DTMF detection.
//!
//! `cargo bench -p sentiric-bench --bench media`

// criterion's macros generate public functions without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use sentiric_media::dtmf::DtmfDetector;
use sentiric_media::g711::Law;
use sentiric_media::mixer::MixMinus;
use sentiric_media::resample::FrameResampler;
use sentiric_media::tone::Tone;
use sentiric_media::vad::{Vad, VadConfig};
use sentiric_rtp::packet::RtpHeader;
use sentiric_rtp::relay::{LatchPolicy, LegSpec, Relay};

fn frame() -> Vec<i16> {
    let mut f = vec![0i16; 160];
    Tone::new(440.0, 1000.0, -12.0, 8000).fill(&mut f);
    f
}

fn relay(c: &mut Criterion) {
    let a: SocketAddr = "127.0.0.2:4000".parse().unwrap();
    let b: SocketAddr = "127.0.0.3:5000".parse().unwrap();
    let mut r = Relay::new();
    r.bridge(
        LegSpec {
            key: 1u32,
            sdp_addr: Some(a),
            ssrc: 10,
        },
        LegSpec {
            key: 2u32,
            sdp_addr: Some(b),
            ssrc: 20,
        },
        LatchPolicy::AnySource,
        8000,
    );
    let mut pkt = Vec::new();
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: 1,
        timestamp: 160,
        ssrc: 99,
    }
    .write(&[0xff; 160], &mut pkt);
    let now = Instant::now();
    let mut seq = 0u16;
    c.bench_function("rtp/relay_172_byte_pcmu_packet", |bench| {
        bench.iter(|| {
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(r.on_rtp(1, a, black_box(&mut pkt), now).ok())
        })
    });
}

fn g711(c: &mut Criterion) {
    let pcm = frame();
    let mut codes = Vec::with_capacity(160);
    let mut back = Vec::with_capacity(160);
    for law in [Law::Ulaw, Law::Alaw] {
        c.bench_function(&format!("g711/{law:?}_encode_20ms"), |b| {
            b.iter(|| law.encode(black_box(&pcm), &mut codes))
        });
        law.encode(&pcm, &mut codes);
        c.bench_function(&format!("g711/{law:?}_decode_20ms"), |b| {
            b.iter(|| law.decode(black_box(&codes), &mut back))
        });
    }
}

fn mixer(c: &mut Criterion) {
    for n in [3usize, 10] {
        let frames: Vec<Vec<i16>> = (0..n).map(|_| frame()).collect();
        let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let mut outputs = vec![vec![0i16; 160]; n];
        let mut m = MixMinus::new();
        c.bench_function(&format!("mixer/mix_minus_{n}_parties_20ms"), |b| {
            b.iter(|| m.mix(black_box(&inputs), &mut outputs))
        });
    }
}

fn resample(c: &mut Criterion) {
    for (a, b) in [
        (8000u32, 16000u32),
        (16000, 8000),
        (8000, 48000),
        (48000, 8000),
    ] {
        let mut r = FrameResampler::new(a, b).unwrap();
        let mut input = vec![0i16; r.input_len()];
        Tone::new(440.0, 0.0, -12.0, a).fill(&mut input);
        let mut out = Vec::with_capacity(r.output_len());
        c.bench_function(
            &format!("resample/{}k_to_{}k_20ms", a / 1000, b / 1000),
            |bench| bench.iter(|| r.process(black_box(&input), &mut out)),
        );
    }
}

fn vad(c: &mut Criterion) {
    let mut v = Vad::new(VadConfig::default());
    let mut frame = vec![0i16; 320];
    Tone::new(200.0, 700.0, -20.0, 16000).fill(&mut frame);
    c.bench_function("vad/earshot_20ms_16k", |b| {
        b.iter(|| black_box(v.push(black_box(&frame))))
    });
}

fn dtmf(c: &mut Criterion) {
    let f = frame();
    let det = DtmfDetector::new(8000, 20, 40);
    c.bench_function("dtmf/goertzel_classify_20ms", |b| {
        b.iter(|| det.classify(black_box(&f)))
    });
}

criterion_group!(benches, relay, g711, mixer, resample, vad, dtmf);
criterion_main!(benches);
