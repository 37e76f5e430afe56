//! The stream framer fed in arbitrary chunk sizes: no panic, frames are
//! exactly what the stream held, and framed messages go to the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentiric_sip::{Frame, Framing, KeepAliveRole, Message, ParseLimits, StreamFramer};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let limits = ParseLimits { max_message_size: 4096, ..ParseLimits::default() };
    let role = if first & 0x80 == 0 { KeepAliveRole::Server } else { KeepAliveRole::Client };
    let mut framer = StreamFramer::new(limits, role);
    let mut framed = 0usize;
    for piece in rest.chunks(chunk) {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    framed += m.len();
                    assert!(m.len() <= limits.max_message_size);
                    let _ = Message::parse_with(m, &limits, Framing::Stream);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(framed <= rest.len());
});
