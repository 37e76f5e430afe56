//! Sans-IO RTP for the Sentiric switch.
//!
//! Bytes, source addresses and the current time go in; verdicts, rewritten
//! headers, statistics and packets to send come out. Nothing here touches a
//! socket or a clock, so the data plane (`core/io`) can drive it from any
//! event loop and the tests can drive it from a simulation.
//!
//! | module | RFC |
//! |---|---|
//! | [`packet`] | RFC 3550 §5.1 (RTP header), RFC 8285 (header extensions) |
//! | [`rtcp`] | RFC 3550 §6 (SR, RR, SDES, BYE, APP; compound packets) |
//! | [`stats`] | RFC 3550 §6.4, Appendix A.1, A.3, A.8 |
//! | [`report`] | RFC 3550 §6.2, A.7: when and what a terminated leg reports |
//! | [`relay`] | symmetric RTP (RFC 4961) latching, strict source, SSRC/sequence/timestamp rewriting |
//! | [`dtmf`] | RFC 4733 telephone-events |
//! | [`jitter`] | an adaptive jitter buffer for legs the switch decodes |
#![forbid(unsafe_code)]

pub mod dtmf;
pub mod jitter;
pub mod packet;
pub mod relay;
pub mod report;
pub mod rtcp;
pub mod stats;

pub use packet::{RtpError, RtpHeader, RtpPacket};
