//! Parses the benchmark INVITE in a loop and reads its core headers: a
//! steady workload for profilers and for instruction counts, which stay
//! the same on a noisy machine where wall-clock time does not.
//!
//! ```text
//! cargo build --release -p sentiric-bench --example parse_loop
//! valgrind --tool=callgrind target/release/examples/parse_loop 20000 sentiric
//! valgrind --tool=callgrind target/release/examples/parse_loop 20000 rsipstack
//! ```
//!
//! The second argument picks the parser: `sentiric` (default), `rsip` or
//! `rsipstack`; each reads the same fields as in `benches/sip_parse.rs`.

use std::hint::black_box;

use sentiric_bench::{core_fields, INVITE};

fn sentiric() -> usize {
    let m = sentiric_sip::Message::parse(black_box(INVITE)).expect("parses");
    core_fields(&m).0
}

fn rsip() -> usize {
    use rsip::prelude::*;
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
    via.branch().map_or(0, |b| b.to_string().len())
        + from.tag().map_or(0, |t| t.value().len())
        + to.tag().map_or(0, |t| t.value().len())
        + cseq.seq as usize
        + call_id
        + mf as usize
        + r.body.len()
}

fn rsipstack() -> usize {
    use rsipstack::sip::prelude::*;
    let m = rsipstack::sip::SipMessage::try_from(black_box(INVITE)).expect("parses");
    let rsipstack::sip::SipMessage::Request(r) = m else {
        unreachable!()
    };
    let via = r.via_header().expect("via").typed().expect("typed via");
    let from = r.from_header().expect("from").typed().expect("typed from");
    let to = r.to_header().expect("to").typed().expect("typed to");
    let cseq = r.cseq_header().expect("cseq").typed().expect("typed cseq");
    let call_id = r.call_id_header().expect("call-id").value().len();
    let mf: usize = r
        .max_forwards_header()
        .expect("mf")
        .value()
        .trim()
        .parse()
        .expect("mf");
    via.branch().map_or(0, |b| b.to_string().len())
        + from.tag().map_or(0, |t| t.value().len())
        + to.tag().map_or(0, |t| t.value().len())
        + cseq.seq as usize
        + call_id
        + mf
        + r.body.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let which = args.next().unwrap_or_else(|| "sentiric".into());
    let f: fn() -> usize = match which.as_str() {
        "sentiric" => sentiric,
        "rsip" => rsip,
        "rsipstack" => rsipstack,
        other => {
            eprintln!("unknown parser {other}: sentiric, rsip or rsipstack");
            std::process::exit(2);
        }
    };
    let mut acc = 0usize;
    for _ in 0..n {
        acc = acc.wrapping_add(f());
    }
    println!("{which}: {acc}");
}
