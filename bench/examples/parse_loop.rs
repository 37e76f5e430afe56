//! Parses the benchmark INVITE in a loop: a steady workload for profilers
//! (`valgrind --tool=callgrind`, `perf record`).
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut acc = 0usize;
    for _ in 0..n {
        let m = sentiric_sip::Message::parse(std::hint::black_box(sentiric_bench::INVITE))
            .expect("parses");
        acc += sentiric_bench::core_fields(&m).0;
    }
    println!("{acc}");
}
