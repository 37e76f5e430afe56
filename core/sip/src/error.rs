//! Parse errors and what the receiving element must do about them.

use crate::header::HeaderName;
use crate::uri::UriError;

/// What the element receiving a malformed message must do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Answer the request with this status code and reason phrase
    /// (statelessly; the request never reaches a transaction).
    Respond {
        /// Status code (400, 505, 513, …).
        status: u16,
        /// Reason phrase naming the fault.
        reason: String,
    },
    /// Discard the message silently (malformed responses, unparseable
    /// start lines: RFC 3261 §18.1.2, RFC 4475 §3.1.2.19).
    Drop,
    /// Close the stream connection: its framing can no longer be trusted
    /// (RFC 3261 §18.3).
    CloseConnection,
}

/// Which side of the exchange the malformed message came from: the start
/// line decides whether a response can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// The start line was a request line.
    Request,
    /// The start line was a status line.
    Response,
    /// The start line could not be classified.
    Unknown,
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message exceeds the configured size bound.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Size of the message.
        size: usize,
        /// Configured bound.
        limit: usize,
    },
    /// More header lines than the configured bound.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// Configured bound.
        limit: usize,
    },
    /// A line longer than the configured bound.
    #[error("a line exceeds {limit} bytes")]
    LineTooLong {
        /// Configured bound.
        limit: usize,
    },
    /// No empty line ends the header section.
    #[error("header section is not terminated by an empty line")]
    Unterminated,
    /// The start line and headers are not UTF-8.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// The request or status line is malformed.
    #[error("malformed start line")]
    StartLine,
    /// The SIP version is not 2.0.
    #[error("unsupported SIP version")]
    Version,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    StatusCode,
    /// The method token is malformed.
    #[error("malformed method")]
    Method,
    /// The Request-URI is malformed.
    #[error("malformed Request-URI: {0}")]
    RequestUri(UriError),
    /// A header line has no colon or a malformed name.
    #[error("malformed header line")]
    HeaderLine,
    /// A header value is malformed.
    #[error("malformed {name} header: {problem}")]
    Header {
        /// The header at fault.
        name: HeaderName<'static>,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A mandatory header is missing.
    #[error("missing {0} header")]
    Missing(HeaderName<'static>),
    /// A header that may appear once appears more than once.
    #[error("duplicate {0} header")]
    Duplicate(HeaderName<'static>),
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// Content-Length claims more body than the datagram holds.
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    BodyTruncated {
        /// Declared length.
        declared: usize,
        /// Bytes actually present.
        available: usize,
    },
}

/// A message that could not be parsed: what was wrong, and whether it was a
/// request or a response (which decides the [`Disposition`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What was wrong.
    pub kind: ErrorKind,
    /// What kind of message it was.
    pub start: StartKind,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, start: StartKind) -> Self {
        ParseError { kind, start }
    }

    /// The response (or silence) RFC 3261 asks for.
    pub fn disposition(&self) -> Disposition {
        match self.start {
            StartKind::Response | StartKind::Unknown => Disposition::Drop,
            StartKind::Request => match &self.kind {
                ErrorKind::Version => Disposition::Respond {
                    status: 505,
                    reason: "Version Not Supported".into(),
                },
                ErrorKind::TooLarge { .. } => Disposition::Respond {
                    status: 513,
                    reason: "Message Too Large".into(),
                },
                other => Disposition::Respond {
                    status: 400,
                    reason: bad_request_reason(other),
                },
            },
        }
    }

    /// The status code of [`ParseError::disposition`], when it is a response.
    pub fn status(&self) -> Option<u16> {
        match self.disposition() {
            Disposition::Respond { status, .. } => Some(status),
            _ => None,
        }
    }
}

fn bad_request_reason(kind: &ErrorKind) -> String {
    let mut s = String::from("Bad Request (");
    s.push_str(&kind.to_string());
    s.push(')');
    // A reason phrase may not carry CR or LF.
    s.retain(|c| c != '\r' && c != '\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_header() {
        let e = ParseError::new(
            ErrorKind::Header {
                name: HeaderName::Via,
                problem: "missing sent-by",
            },
            StartKind::Request,
        );
        assert_eq!(
            e.disposition(),
            Disposition::Respond {
                status: 400,
                reason: "Bad Request (malformed Via header: missing sent-by)".into()
            }
        );
        let e = ParseError::new(ErrorKind::Version, StartKind::Request);
        assert_eq!(e.status(), Some(505));
        let e = ParseError::new(ErrorKind::StatusCode, StartKind::Response);
        assert_eq!(e.disposition(), Disposition::Drop);
    }
}
