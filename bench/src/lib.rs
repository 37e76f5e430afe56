//! Shared inputs for the benchmarks in `benches/` and the allocation test
//! in `tests/`, so that every figure in `BENCHMARKS.md` is measured on the
//! same bytes.

/// A typical INVITE with an SDP offer: Via, Max-Forwards, From, To,
/// Call-ID, CSeq, Contact, Allow, Supported, Content-Type and
/// Content-Length: 893 bytes.
pub const INVITE: &[u8] = b"INVITE sip:+15551230001@127.0.0.2:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-524287-1---8d8c8dc2e5b5e7a1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Carrier\" <sip:+15551230000@127.0.0.1:5060;user=phone>;tag=1928301774\r\n\
To: <sip:+15551230001@127.0.0.2:5060;user=phone>\r\n\
Call-ID: a84b4c76e66710-8c8c8dc2e5b5e7a1@127.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+15551230000@127.0.0.1:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY\r\n\
Supported: timer, replaces, 100rel\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 309\r\n\
\r\n\
v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// Reads the core headers of a parsed message the way a transaction layer
/// does, so that a benchmark cannot skip work the others do.
pub fn core_fields(m: &sentiric_sip::Message<'_>) -> (usize, u32, usize) {
    let c = m.core();
    let n = c.via.branch().map_or(0, str::len)
        + c.from.tag().map_or(0, str::len)
        + c.to.tag().map_or(0, str::len)
        + c.call_id.len()
        + c.cseq.method.as_str().len()
        + c.from.uri_str().len()
        + usize::from(c.max_forwards.unwrap_or(0));
    (n, c.cseq.seq, m.body().len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_message_is_typical() {
        assert!(
            (700..=900).contains(&super::INVITE.len()),
            "{}",
            super::INVITE.len()
        );
        let m = sentiric_sip::Message::parse(super::INVITE).unwrap();
        assert_eq!(m.body().len(), 309);
        assert!(sentiric_sdp::SessionDescription::parse(m.body()).is_ok());
    }
}
