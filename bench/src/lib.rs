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

/// A deterministic speech-like signal at `rate` Hz: voiced syllables (a
/// gliding 95–185 Hz glottal source through the first three formants of
/// /a/, /i/ or /u/) with fricative noise bursts and short pauses, at a
/// talker's level (about −20 dBFS). Codec figures measured on it are
/// closer to a call's than figures on a sine.
pub fn speech_like(rate: u32, seconds: f64) -> Vec<i16> {
    const VOWELS: [[f64; 3]; 3] = [
        [730.0, 1090.0, 2440.0],
        [270.0, 2290.0, 3010.0],
        [300.0, 870.0, 2240.0],
    ];
    let fs = f64::from(rate);
    let n = (seconds * fs) as usize;
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    // 300 ms syllables: 40 ms fricative onset, 200 ms vowel, 60 ms pause.
    let syllable = (0.3 * fs) as usize;
    for i in 0..n {
        let s = i / syllable;
        let t = (i % syllable) as f64 / fs;
        let formants = VOWELS[s % 3];
        let v = if t < 0.04 {
            0.3 * noise()
        } else if t < 0.24 {
            let f0 =
                95.0 + 90.0 * (0.5 + 0.5 * (std::f64::consts::TAU * 0.7 * i as f64 / fs).sin());
            phase += f0 / fs;
            phase -= phase.floor();
            let mut sum = 0.0;
            let mut k = 1.0;
            while k * f0 < fs / 2.0 && k * f0 < 3800.0 {
                let f = k * f0;
                let gain: f64 = formants
                    .iter()
                    .map(|&fr| 1.0 / (1.0 + ((f - fr) / 90.0).powi(2)))
                    .sum();
                sum += gain / k * (std::f64::consts::TAU * k * phase).sin();
                k += 1.0;
            }
            // Rise and fall over the vowel.
            let env = ((t - 0.04) / 0.2 * std::f64::consts::PI).sin();
            0.5 * env * sum
        } else {
            0.003 * noise()
        };
        out.push((v * 3277.0).clamp(-32768.0, 32767.0) as i16);
    }
    out
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
