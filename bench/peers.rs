//! The same work for each parser: parse the message and read the top Via's
//! branch, the From and To tags, CSeq, Call-ID, Max-Forwards and the body,
//! typed. Shared by `benches/sip_parse.rs` and `examples/parse_loop.rs`
//! through `#[path]`, since rsip and rsipstack are dev-dependencies only.

/// Sentiric: the core headers are parsed at receipt; the URIs inside them
/// wait for `validate`.
pub(crate) fn sentiric(bytes: &[u8]) -> usize {
    let m = sentiric_sip::Message::parse(bytes).expect("parses");
    sentiric_bench::core_fields(&m).0
}

/// Sentiric as a transaction user sees a new request: parsed, then
/// validated completely (the Request-URI, the From, To and Contact URIs).
pub(crate) fn sentiric_validated(bytes: &[u8]) -> usize {
    let m = sentiric_sip::Message::parse(bytes).expect("parses");
    m.validate().expect("valid");
    sentiric_bench::core_fields(&m).0
}

/// rsip 0.4: typed headers are parsed on access.
pub(crate) fn rsip(bytes: &[u8]) -> usize {
    use rsip::prelude::*;
    let m = rsip::SipMessage::try_from(bytes).expect("parses");
    let rsip::SipMessage::Request(r) = m else {
        panic!("a request")
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

/// rsipstack 0.7: its own parser, same shape of API as rsip.
pub(crate) fn rsipstack(bytes: &[u8]) -> usize {
    use rsipstack::sip::prelude::*;
    let m = rsipstack::sip::SipMessage::try_from(bytes).expect("parses");
    let rsipstack::sip::SipMessage::Request(r) = m else {
        panic!("a request")
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
