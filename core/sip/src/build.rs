//! Writing messages: requests and responses built header by header into one
//! buffer, responses derived from a request (RFC 3261 §8.2.6), and stateless
//! error responses for requests that failed to parse.

use std::fmt::Write as _;

use crate::header::HeaderName;
use crate::message::{skip_leading_crlf, Request};
use crate::typed::Method;

/// Writes a message into one buffer. Content-Length is added by
/// [`MessageBuilder::body`] / [`MessageBuilder::finish`].
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(method: Method<'_>, uri: &str) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(method.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(uri.as_bytes());
        buf.extend_from_slice(b" SIP/2.0\r\n");
        MessageBuilder { buf }
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(status: u16, reason: &str) -> Self {
        let mut buf = Vec::with_capacity(512);
        let mut line = String::with_capacity(16);
        let _ = write!(line, "SIP/2.0 {status} ");
        buf.extend_from_slice(line.as_bytes());
        // A reason phrase cannot hold a line break.
        buf.extend(reason.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        buf.extend_from_slice(b"\r\n");
        MessageBuilder { buf }
    }

    /// Adds a header line. Line breaks in `value` are replaced by spaces so
    /// that no caller can inject a header.
    pub fn header(mut self, name: HeaderName<'_>, value: &str) -> Self {
        self.push_header(name.as_str(), value);
        self
    }

    /// Adds a header line in place.
    pub fn push_header(&mut self, name: &str, value: &str) {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend(
            value
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Ends the header section with Content-Type (when given),
    /// Content-Length and the body.
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let Some(ct) = content_type {
            self.push_header("Content-Type", ct);
        }
        let mut cl = String::with_capacity(24);
        let _ = write!(cl, "Content-Length: {}\r\n\r\n", body.len());
        self.buf.extend_from_slice(cl.as_bytes());
        self.buf.extend_from_slice(body);
        self.buf
    }

    /// Ends the message with no body.
    pub fn finish(self) -> Vec<u8> {
        self.body(None, b"")
    }
}

/// Starts a response to `req` as RFC 3261 §8.2.6.2 says: every Via, From,
/// To (with `to_tag` added when the request's To has none), Call-ID and
/// CSeq are copied.
pub fn response_to(
    req: &Request<'_>,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> MessageBuilder {
    let mut b = MessageBuilder::response(status, reason);
    for via in req.headers.all(HeaderName::Via) {
        b.push_header("Via", via.value);
    }
    b.push_header("From", req.headers.value(HeaderName::From).unwrap_or(""));
    let to = req.headers.value(HeaderName::To).unwrap_or("");
    match (req.to().tag(), to_tag) {
        (None, Some(tag)) if status != 100 => {
            let mut v = String::with_capacity(to.len() + tag.len() + 5);
            v.push_str(&crate::text::unfold(to));
            v.push_str(";tag=");
            v.push_str(tag);
            b.push_header("To", &v);
        }
        _ => b.push_header("To", to),
    }
    b.push_header("Call-ID", req.call_id());
    let mut cseq = String::with_capacity(24);
    let _ = write!(cseq, "{} {}", req.cseq().seq, req.cseq().method);
    b.push_header("CSeq", &cseq);
    b
}

/// Builds the stateless response that [`crate::Disposition::Respond`] asks
/// for, from the raw bytes of a request that did not parse: the Via, From,
/// To, Call-ID and CSeq lines are copied as found, and `to_tag` is added to
/// a To without a tag (RFC 3261 §8.2.6.2). `None` when the request has no
/// Via to send the response to.
pub fn stateless_response(raw: &[u8], status: u16, reason: &str, to_tag: &str) -> Option<Vec<u8>> {
    let raw = &raw[skip_leading_crlf(raw)..];
    let head_end = crate::text::find_head_end(raw).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut b = MessageBuilder::response(status, reason);
    let mut has_via = false;
    let mut lines = head.split("\r\n").skip(1).peekable();
    while let Some(first) = lines.next() {
        let mut line = first.to_string();
        while let Some(next) = lines.peek() {
            if next.starts_with([' ', '\t']) {
                line.push(' ');
                line.push_str(next.trim());
                lines.next();
            } else {
                break;
            }
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        let name = HeaderName::parse(line[..colon].trim());
        let value = line[colon + 1..].trim();
        match name {
            HeaderName::Via => {
                has_via = true;
                b.push_header("Via", value);
            }
            HeaderName::To if !has_tag(value) => {
                b.push_header("To", &format!("{value};tag={to_tag}"));
            }
            HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq => {
                b.push_header(name.as_str(), value);
            }
            _ => {}
        }
    }
    has_via.then(|| b.finish())
}

/// `true` when a To value that may not parse carries a `tag` parameter
/// after its URI.
fn has_tag(value: &str) -> bool {
    let after_uri = match value.rfind('>') {
        Some(gt) => &value[gt..],
        None => value,
    };
    after_uri.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("tag"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Response};

    #[test]
    fn response_copies_the_dialog_headers() {
        let raw = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@h>;tag=x\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let req = Request::parse(raw).unwrap();
        let bytes = response_to(&req, 486, "Busy Here", Some("t1")).finish();
        let r = Response::parse(&bytes).unwrap();
        assert_eq!(r.status, 486);
        assert_eq!(r.vias().count(), 2);
        assert_eq!(r.to().tag(), Some("t1"));
        assert_eq!(r.cseq().seq, 7);
        assert_eq!(r.call_id(), "c1");
    }

    #[test]
    fn stateless_400_for_garbage_request() {
        let raw = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=x\r\nTo: \"unbalanced <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\r\n";
        let err = Message::parse(raw).unwrap_err();
        let crate::Disposition::Respond { status, reason } = err.disposition() else {
            panic!("expected a response")
        };
        let bytes = stateless_response(raw, status, &reason, "st1").unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("To: \"unbalanced <sip:b@h>;tag=st1\r\n"),
            "{text}"
        );
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (malformed To header"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"));
        assert!(stateless_response(b"garbage\r\n\r\n", 400, "x", "t").is_none());
        // A To that already has a tag keeps it.
        let tagged = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=old\r\nCSeq: x\r\n\r\n";
        let text = String::from_utf8(stateless_response(tagged, 400, "x", "new").unwrap()).unwrap();
        assert!(text.contains("To: <sip:b@h>;tag=old\r\n"), "{text}");
    }
}
