//! Data-plane micro-benchmarks per packet or per 20 ms frame: the relay's
//! work on one RTP packet, G.711 at 8 kHz, the mix-minus mixer,
//! resampling, Opus and PCMU↔Opus transcoding, voice activity detection,
//! in-band DTMF detection.
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
use sentiric_media::opus_codec::OpusCodec;
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

fn opus(c: &mut Criterion) {
    for (rate, bitrate) in [(8000u32, 16_000), (16000, 24_000), (48000, 32_000)] {
        let mut codec = OpusCodec::new(rate, bitrate).unwrap();
        let mut pcm = vec![0i16; codec.frame_len()];
        Tone::new(440.0, 0.0, -12.0, rate).fill(&mut pcm);
        let (mut packet, mut back) = (Vec::new(), Vec::new());
        c.bench_function(&format!("opus/encode_{}k_20ms", rate / 1000), |b| {
            b.iter(|| codec.encode(black_box(&pcm), &mut packet).unwrap())
        });
        codec.encode(&pcm, &mut packet).unwrap();
        c.bench_function(&format!("opus/decode_{}k_20ms", rate / 1000), |b| {
            b.iter(|| codec.decode(Some(black_box(&packet)), &mut back).unwrap())
        });
    }
    for complexity in [0, 5, 10] {
        let mut codec = OpusCodec::with_complexity(48000, 32_000, complexity).unwrap();
        let mut pcm = vec![0i16; codec.frame_len()];
        Tone::new(440.0, 0.0, -12.0, 48000).fill(&mut pcm);
        let mut packet = Vec::new();
        c.bench_function(
            &format!("opus/encode_48k_complexity_{complexity}_20ms"),
            |b| b.iter(|| codec.encode(black_box(&pcm), &mut packet).unwrap()),
        );
    }
    // A PCMU leg bridged to an Opus leg: both directions of one 20 ms
    // frame. At 8 kHz Opus takes PCMU's rate as it is; at 48 kHz the
    // audio is resampled both ways.
    let mut opus8 = OpusCodec::new(8000, 16_000).unwrap();
    let mut pcm8 = vec![0i16; 160];
    Tone::new(440.0, 0.0, -12.0, 8000).fill(&mut pcm8);
    let mut ulaw8 = Vec::new();
    Law::Ulaw.encode(&pcm8, &mut ulaw8);
    let mut opus8_in = Vec::new();
    opus8.encode(&pcm8, &mut opus8_in).unwrap();
    let (mut l8, mut p8, mut d8, mut u8out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    c.bench_function("transcode/pcmu8k_opus8k_both_directions_20ms", |b| {
        b.iter(|| {
            Law::Ulaw.decode(black_box(&ulaw8), &mut l8);
            opus8.encode(&l8, &mut p8).unwrap();
            opus8.decode(Some(black_box(&opus8_in)), &mut d8).unwrap();
            Law::Ulaw.encode(&d8, &mut u8out);
        })
    });
    let mut opus = OpusCodec::new(48000, 32_000).unwrap();
    let mut up = FrameResampler::new(8000, 48000).unwrap();
    let mut down = FrameResampler::new(48000, 8000).unwrap();
    let mut pcm8 = vec![0i16; 160];
    Tone::new(440.0, 0.0, -12.0, 8000).fill(&mut pcm8);
    let mut ulaw = Vec::new();
    Law::Ulaw.encode(&pcm8, &mut ulaw);
    let mut opus_in = Vec::new();
    let mut pcm48 = vec![0i16; 960];
    Tone::new(440.0, 0.0, -12.0, 48000).fill(&mut pcm48);
    opus.encode(&pcm48, &mut opus_in).unwrap();
    let (mut lin8, mut lin48, mut pkt, mut dec48, mut dec8, mut ulaw_out) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    c.bench_function("transcode/pcmu8k_opus48k_both_directions_20ms", |b| {
        b.iter(|| {
            Law::Ulaw.decode(black_box(&ulaw), &mut lin8);
            up.process(&lin8, &mut lin48);
            opus.encode(&lin48, &mut pkt).unwrap();
            opus.decode(Some(black_box(&opus_in)), &mut dec48).unwrap();
            down.process(&dec48, &mut dec8);
            Law::Ulaw.encode(&dec8, &mut ulaw_out);
        })
    });
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

criterion_group!(benches, relay, g711, mixer, resample, opus, vad, dtmf);
criterion_main!(benches);
