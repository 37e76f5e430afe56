//! Parsing a typical INVITE and reading its core headers: Sentiric, rsip
//! 0.4 and rsipstack 0.7 on the same bytes in the same run.
//!
//! `cargo bench -p sentiric-bench --bench sip_parse`

// criterion's macros generate public functions without docs.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sentiric_bench::INVITE;

#[path = "../peers.rs"]
mod peers;

fn sentiric(c: &mut Criterion) {
    let mut g = c.benchmark_group("invite_parse_core_headers");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    type Parse = fn(&[u8]) -> usize;
    let parsers: [(&str, Parse); 4] = [
        ("sentiric", peers::sentiric),
        ("sentiric-validated", peers::sentiric_validated),
        ("rsip-0.4", peers::rsip),
        ("rsipstack-0.7", peers::rsipstack),
    ];
    for (name, parse) in parsers {
        g.bench_function(name, |b| b.iter(|| parse(black_box(INVITE))));
    }
    g.finish();

    let mut g = c.benchmark_group("sentiric_sip");
    let m = sentiric_sip::Message::parse(INVITE).expect("parses");
    g.bench_function("serialize_invite", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            m.write_to(&mut out);
            black_box(out.len())
        })
    });
    let mut framer = sentiric_sip::StreamFramer::new(
        sentiric_sip::ParseLimits::default(),
        sentiric_sip::KeepAliveRole::Server,
    );
    g.bench_function("stream_frame_invite", |b| {
        b.iter(|| {
            framer.push(black_box(INVITE));
            match framer.next_frame() {
                Ok(Some(sentiric_sip::Frame::Message(m))) => black_box(m.len()),
                _ => unreachable!(),
            }
        })
    });
    let body = m.body();
    g.bench_function("sdp_parse_offer", |b| {
        b.iter(|| {
            let sd = sentiric_sdp::SessionDescription::parse(black_box(body)).expect("sdp");
            black_box(sd.media[0].payload_types().count())
        })
    });
    g.finish();
}

criterion_group!(benches, sentiric);
criterion_main!(benches);
