//! Parsing allocates per message, never per header: counted with dhat's
//! heap-testing mode on the benchmark's INVITE and on a longer one.

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn one_allocation_per_message() {
    // One profiler per process: this is the only test in this file.
    let _profiler = dhat::Profiler::builder().testing().build();

    let before = blocks();
    let m = sentiric_sip::Message::parse(sentiric_bench::INVITE).unwrap();
    std::hint::black_box(sentiric_bench::core_fields(&m));
    drop(m);
    assert_eq!(
        blocks() - before,
        1,
        "the header index is the only allocation"
    );

    // Twice as many headers: the index may grow once, nothing per header.
    let text = String::from_utf8(sentiric_bench::INVITE.to_vec()).unwrap();
    let extra: String = (0..12)
        .map(|i| format!("X-Extra-{i}: value {i}\r\n"))
        .collect();
    let long = text.replacen("Content-Type:", &format!("{extra}Content-Type:"), 1);
    let before = blocks();
    let m = sentiric_sip::Message::parse(long.as_bytes()).unwrap();
    assert_eq!(m.headers().len(), 23);
    drop(m);
    let n = blocks() - before;
    assert!(n <= 2, "{n} allocations for 23 headers");
}
