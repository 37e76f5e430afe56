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
//! The second argument picks the parser: `sentiric` (default),
//! `sentiric-validated` (parse, then `Message::validate`), `rsip` or
//! `rsipstack`; each reads the same fields as in `benches/sip_parse.rs`.

use std::hint::black_box;

use sentiric_bench::INVITE;

#[path = "../peers.rs"]
mod peers;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let which = args.next().unwrap_or_else(|| "sentiric".into());
    let f: fn(&[u8]) -> usize = match which.as_str() {
        "sentiric" => peers::sentiric,
        "sentiric-validated" => peers::sentiric_validated,
        "rsip" => peers::rsip,
        "rsipstack" => peers::rsipstack,
        other => {
            eprintln!("unknown parser {other}: sentiric, sentiric-validated, rsip or rsipstack");
            std::process::exit(2);
        }
    };
    let mut acc = 0usize;
    for _ in 0..n {
        acc = acc.wrapping_add(f(black_box(INVITE)));
    }
    println!("{which}: {acc}");
}
