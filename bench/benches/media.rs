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
use sentiric_bench::speech_like;
use sentiric_media::dtmf::DtmfDetector;
use sentiric_media::g711::Law;
use sentiric_media::mixer::MixMinus;
use sentiric_media::opus_codec::{OpusCodec, OpusConfig, OpusMode};
use sentiric_media::resample::FrameResampler;
use sentiric_media::tone::Tone;
use sentiric_media::transcode::{Codec, Transcoder};
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
            clock_rate: 8000,
        },
        LegSpec {
            key: 2u32,
            sdp_addr: Some(b),
            ssrc: 20,
            clock_rate: 8000,
        },
        LatchPolicy::AnySource,
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
    // A PCMU leg bridged to an Opus leg through `Transcoder`: both
    // directions of a 20 ms frame, cycling through a second of speech-like
    // audio (a frame repeated over and over costs the encoder half as much
    // as speech does). Opus at PCMU's 8 kHz needs no resampling (an Opus
    // leg's RTP clock is 48 kHz whatever the coded band); at 48 kHz the
    // audio is resampled both ways. `dense` is the switch's transcoding
    // profile (SILK, complexity 1); the others are what BENCHMARKS.md
    // weighs it against.
    let speech8 = speech_like(8000, 1.0);
    let ulaw_frames: Vec<Vec<u8>> = speech8
        .chunks_exact(160)
        .map(|f| {
            let mut u = Vec::new();
            Law::Ulaw.encode(f, &mut u);
            u
        })
        .collect();
    // The far Opus end codes as asked (`maxplaybackrate` in the switch's
    // SDP) or, the worst case, fullband at 48 kHz with libopus's defaults
    // as a browser does.
    let fullband = OpusConfig::speech(48000, 32_000);
    for (name, config, peer) in [
        ("opus8k_dense", OpusConfig::dense(8000), None),
        (
            "opus8k_dense_fullband_peer",
            OpusConfig::dense(8000),
            Some(fullband),
        ),
        (
            "opus8k_libopus_defaults",
            OpusConfig::speech(8000, 16_000),
            None,
        ),
        (
            "opus8k_lowdelay_cx0",
            OpusConfig {
                complexity: 0,
                mode: OpusMode::LowDelay,
                ..OpusConfig::speech(8000, 16_000)
            },
            None,
        ),
        ("opus48k_dense", OpusConfig::dense(48000), None),
    ] {
        let peer = peer.unwrap_or(config);
        let speech = speech_like(peer.rate, 1.0);
        let mut far = OpusCodec::configured(peer).unwrap();
        let packets: Vec<Vec<u8>> = speech
            .chunks_exact((peer.rate / 50) as usize)
            .map(|f| {
                let mut p = Vec::new();
                far.encode(f, &mut p).unwrap();
                p
            })
            .collect();
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Opus(config)).unwrap();
        let mut bytes = 0;
        let mut i = 0;
        c.bench_function(
            &format!("transcode/pcmu_{name}_both_directions_20ms"),
            |b| {
                b.iter(|| {
                    i = (i + 1) % packets.len();
                    t.a_to_b(Some(black_box(&ulaw_frames[i])), |p| bytes += p.len())
                        .unwrap();
                    t.b_to_a(Some(black_box(&packets[i])), |p| bytes += p.len())
                        .unwrap();
                })
            },
        );
        black_box(bytes);
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

criterion_group!(benches, relay, g711, mixer, resample, opus, vad, dtmf);
criterion_main!(benches);
