//! The Sentiric B2BUA, sans-IO: call state machines over `sentiric-sip`,
//! `sentiric-sdp`, `sentiric-rtp` and `sentiric-media`, and routing
//! through dialplans. Like the protocol crates below it, it never opens a
//! socket or reads a clock: requests and the time go in, messages to send,
//! media instructions and deadlines come out.
//!
//! | module | what |
//! |---|---|
//! | [`codecs`] | codec negotiation across the legs: offers extended with the switch's codecs, answers settled, transcoding when the legs share none |
//! | [`dialplan`] | the routing decision for a new call; the static dialplan from the config file |
#![forbid(unsafe_code)]

pub mod b2bua;
pub mod codecs;
pub mod dialplan;
