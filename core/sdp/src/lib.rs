//! Sans-IO SDP for the Sentiric switch.
//!
//! * [`session`]: parse and serialize session descriptions (RFC 8866),
//!   borrowing from the input where nothing changes; typed access to the
//!   attributes a media switch needs (`rtpmap`, `fmtp`, direction, `ptime`,
//!   `rtcp`, `rtcp-mux`, `telephone-event`), unknown ones kept verbatim.
//! * [`offer_answer`]: RFC 3264 — codec intersection in the offerer's
//!   order, answer directions, hold/resume, port 0 for rejected streams,
//!   and connection/port rewriting for media anchoring.
//!
//! Malformed SDP is an [`SdpError`] (answer 400); a well-formed offer with
//! nothing acceptable is a [`NegotiationError`] (answer 488). Nothing here
//! panics on input.
#![forbid(unsafe_code)]

pub mod offer_answer;
pub mod session;

pub use offer_answer::{answer, Codec, LocalMedia, NegotiationError};
pub use session::{
    AddrType, Attribute, Bandwidth, Connection, Direction, Media, Origin, RtpMap, SdpError,
    SdpErrorKind, SessionDescription, Timing,
};
