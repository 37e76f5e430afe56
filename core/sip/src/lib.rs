//! Sans-IO SIP for the Sentiric switch.
//!
//! This crate never touches a socket, a clock or a thread. Bytes and the
//! current time go in; parsed messages, bytes to transmit and the next
//! deadline come out. That keeps every RFC timer and race testable on a
//! simulated network and every parser fuzzable.
//!
//! | module | RFC |
//! |---|---|
//! | [`message`], [`header`], [`typed`], [`uri`], [`params`] | RFC 3261 §7, §19, §20, §25; RFC 3966 |
//! | [`framing`] | RFC 3261 §18.3, RFC 5626 §4.4.1 |
//! | [`check`] | RFC 3261 §8.2.1–§8.2.2, §16.3 |
//! | [`build`] | RFC 3261 §8.1.1, §8.2.6 |
//! | [`transaction`] | RFC 3261 §17, RFC 6026 |
//! | [`dialog`] | RFC 3261 §12 |
//! | [`digest`] | RFC 7616, RFC 3261 §22 |
#![forbid(unsafe_code)]

pub mod build;
pub mod check;
pub mod dialog;
pub mod digest;
pub mod error;
pub mod framing;
pub mod header;
pub mod message;
pub mod params;
#[cfg(test)]
mod reference;
mod text;
pub mod transaction;
pub mod typed;
pub mod uri;

pub use error::{Disposition, ErrorKind, ParseError, StartKind};
pub use framing::{Frame, FramingError, KeepAliveRole, StreamFramer};
pub use header::{Header, HeaderName, Headers};
pub use message::{CoreHeaders, Framing, Message, ParseLimits, Request, Response};
pub use params::{Param, Params};
pub use text::{unescape, unfold, unquote};
pub use typed::{CSeq, Method, NameAddr, Via, MAGIC_COOKIE};
pub use uri::{Host, SipUri, TelUri, Uri, UriError, UriKind};
