//! Parsing a typical INVITE and reading its core headers: Sentiric, rsip
//! 0.4 and rsipstack 0.7 on the same bytes in the same run.
//!
//! `cargo bench -p sentiric-bench --bench sip_parse`

// criterion's macros generate public functions without docs.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sentiric_bench::{core_fields, INVITE};

fn sentiric(c: &mut Criterion) {
    let mut g = c.benchmark_group("invite_parse_core_headers");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("sentiric", |b| {
        b.iter(|| {
            let m = sentiric_sip::Message::parse(black_box(INVITE)).expect("parses");
            black_box(core_fields(&m))
        })
    });
    g.bench_function("rsip-0.4", |b| {
        use rsip::prelude::*;
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(INVITE)).expect("parses");
            let rsip::SipMessage::Request(r) = m else {
                unreachable!()
            };
            let via = r.via_header().expect("via").typed().expect("typed via");
            let from = r.from_header().expect("from").typed().expect("typed from");
            let to = r.to_header().expect("to").typed().expect("typed to");
            let cseq = r.cseq_header().expect("cseq").typed().expect("typed cseq");
            let call_id = r.call_id_header().expect("call-id").value().len();
            let mf = r
                .max_forwards_header()
                .expect("mf")
                .num()
                .expect("mf number");
            black_box((
                via.branch().map(|b| b.to_string().len()),
                from.tag().map(|t| t.value().len()),
                to.tag().map(|t| t.value().len()),
                cseq.seq,
                call_id,
                mf,
                r.body.len(),
            ))
        })
    });
    g.bench_function("rsipstack-0.7", |b| {
        use rsipstack::sip::prelude::*;
        b.iter(|| {
            let m = rsipstack::sip::SipMessage::try_from(black_box(INVITE)).expect("parses");
            let rsipstack::sip::SipMessage::Request(r) = m else {
                unreachable!()
            };
            let via = r.via_header().expect("via").typed().expect("typed via");
            let from = r.from_header().expect("from").typed().expect("typed from");
            let to = r.to_header().expect("to").typed().expect("typed to");
            let cseq = r.cseq_header().expect("cseq").typed().expect("typed cseq");
            let call_id = r.call_id_header().expect("call-id").value().len();
            let mf: u32 = r
                .max_forwards_header()
                .expect("mf")
                .value()
                .trim()
                .parse()
                .expect("mf number");
            black_box((
                via.branch().map(|b| b.to_string().len()),
                from.tag().map(|t| t.value().len()),
                to.tag().map(|t| t.value().len()),
                cseq.seq,
                call_id,
                mf,
                r.body.len(),
            ))
        })
    });
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
