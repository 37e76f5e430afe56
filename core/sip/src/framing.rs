//! Cutting a byte stream (TCP, TLS) into SIP messages (RFC 3261 §18.3) and
//! recognising CRLF keep-alives (RFC 5626 §4.4.1).
//!
//! The framer owns a bounded buffer. Push received bytes in, then call
//! [`StreamFramer::next_frame`] until it returns `Ok(None)`. A
//! [`FramingError`] means the stream can no longer be trusted: the caller
//! closes the connection.

use crate::header::HeaderName;
use crate::message::{skip_leading_crlf, ParseLimits};

/// Which end of the connection this framer serves, which decides how a bare
/// CRLF is read (RFC 5626 §4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveRole {
    /// The server: `CRLFCRLF` is a ping to answer with a single CRLF; other
    /// CRLFs between messages are ignored (RFC 3261 §7.5).
    Server,
    /// The client: a CRLF between messages is the pong to its ping.
    Client,
}

/// One unit cut from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole message (start line, headers and exactly Content-Length body
    /// octets), ready for [`crate::Message::parse_with`] with
    /// [`crate::Framing::Stream`].
    Message(&'a [u8]),
    /// A keep-alive ping (`CRLFCRLF`); answer with [`PONG`].
    Ping,
    /// A keep-alive pong (`CRLF`).
    Pong,
}

/// The bytes of a keep-alive pong.
pub const PONG: &[u8] = b"\r\n";
/// The bytes of a keep-alive ping.
pub const PING: &[u8] = b"\r\n\r\n";

/// Why the stream must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The header section grew past the message size bound without ending.
    #[error("header section exceeds {limit} bytes")]
    HeaderTooLarge {
        /// Configured bound.
        limit: usize,
    },
    /// The message would exceed the size bound.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Declared size.
        size: usize,
        /// Configured bound.
        limit: usize,
    },
    /// No Content-Length: RFC 3261 §18.3 makes it mandatory on streams.
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// A Content-Length that is not a number, or several that disagree.
    #[error("malformed or conflicting Content-Length")]
    BadContentLength,
    /// The header section is not UTF-8.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
}

impl FramingError {
    /// Every framing error loses the message boundaries for good: close
    /// the connection (RFC 3261 §18.3; RFC 4475 §3.1.2.3).
    pub fn disposition(&self) -> crate::Disposition {
        crate::Disposition::CloseConnection
    }
}

/// Cuts messages out of a stream.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out, dropped on the next call.
    consumed: usize,
    limits: ParseLimits,
    role: KeepAliveRole,
    failed: bool,
}

impl StreamFramer {
    /// A framer with the given bounds and keep-alive role.
    pub fn new(limits: ParseLimits, role: KeepAliveRole) -> Self {
        StreamFramer {
            buf: Vec::with_capacity(4096),
            consumed: 0,
            limits,
            role,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
    }

    /// The next frame, `Ok(None)` when more bytes are needed. After an
    /// error every later call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FramingError> {
        self.compact();
        if self.failed {
            return Err(FramingError::BadContentLength);
        }
        let r = self.cut();
        match r {
            Ok(Some(Cut::Ping(n))) => {
                self.consumed = n;
                Ok(Some(Frame::Ping))
            }
            Ok(Some(Cut::Pong(n))) => {
                self.consumed = n;
                Ok(Some(Frame::Pong))
            }
            Ok(Some(Cut::Message(start, end))) => {
                self.consumed = end;
                Ok(Some(Frame::Message(&self.buf[start..end])))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn cut(&mut self) -> Result<Option<Cut>, FramingError> {
        let b = &self.buf[..];
        // Keep-alives and stray CRLFs between messages.
        if b.starts_with(b"\r\n") {
            match self.role {
                KeepAliveRole::Client => return Ok(Some(Cut::Pong(2))),
                KeepAliveRole::Server => {
                    if b.starts_with(PING) {
                        return Ok(Some(Cut::Ping(4)));
                    }
                    if b.len() < 4 && PING.starts_with(b) {
                        return Ok(None);
                    }
                    let skip = skip_leading_crlf(b);
                    self.buf.drain(..skip);
                    return self.cut();
                }
            }
        }
        let Some(head_end) = crate::text::find_head_end(b) else {
            if b.len() > self.limits.max_message_size {
                return Err(FramingError::HeaderTooLarge {
                    limit: self.limits.max_message_size,
                });
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(&b[..head_end]).map_err(|_| FramingError::NotUtf8)?;
        let cl = content_length(head)?.ok_or(FramingError::MissingContentLength)?;
        let total = head_end + 4 + cl;
        if total > self.limits.max_message_size {
            return Err(FramingError::MessageTooLarge {
                size: total,
                limit: self.limits.max_message_size,
            });
        }
        if b.len() < total {
            return Ok(None);
        }
        Ok(Some(Cut::Message(0, total)))
    }
}

enum Cut {
    Ping(usize),
    Pong(usize),
    Message(usize, usize),
}

/// Finds the Content-Length (or `l`) header in a header section. Several
/// occurrences are an error even when equal (RFC 4475 §3.3.9 shows why).
fn content_length(head: &str) -> Result<Option<usize>, FramingError> {
    let mut found = None;
    for line in head.split("\r\n").skip(1) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if HeaderName::parse(name) != HeaderName::ContentLength {
            continue;
        }
        if found.is_some() {
            return Err(FramingError::BadContentLength);
        }
        let v = line[colon + 1..].trim_matches([' ', '\t']);
        if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(FramingError::BadContentLength);
        }
        found = Some(
            v.parse::<usize>()
                .map_err(|_| FramingError::BadContentLength)?,
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn frames_byte_by_byte() {
        let mut f = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
        let mut stream = Vec::new();
        stream.extend_from_slice(PING);
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        let mut frames = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame().unwrap() {
                frames.push(match fr {
                    Frame::Message(m) => m.to_vec(),
                    Frame::Ping => b"PING".to_vec(),
                    Frame::Pong => b"PONG".to_vec(),
                });
            }
        }
        assert_eq!(frames, vec![b"PING".to_vec(), MSG.to_vec(), MSG.to_vec()]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn client_sees_pongs() {
        let mut f = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Client);
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn errors_close() {
        let mut f = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
        assert_eq!(
            FramingError::BadContentLength.disposition(),
            crate::Disposition::CloseConnection
        );
        let mut f = StreamFramer::new(ParseLimits::default(), KeepAliveRole::Server);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::MissingContentLength));
        let mut f = StreamFramer::new(
            ParseLimits {
                max_message_size: 64,
                ..ParseLimits::default()
            },
            KeepAliveRole::Server,
        );
        f.push(&[b'a'; 100]);
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::HeaderTooLarge { .. })
        ));
    }
}
