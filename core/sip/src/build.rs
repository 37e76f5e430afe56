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

/// The request's bytes with its top Via stamped as the server transport
/// stamps it on receipt from `source` (RFC 3261 §18.2.1, RFC 3581 §4):
/// `received=` with the source address when the sent-by's host is not that
/// address, or when the Via asks for `rport`; `rport=` with the source port
/// when it asks. Responses built from the stamped request carry both back
/// (and go to them). `None` when nothing needs stamping (the common case:
/// no copy is made).
pub fn stamp_via(req: &Request<'_>, source: std::net::SocketAddr) -> Option<Vec<u8>> {
    use crate::uri::Host;
    let via = req.via();
    let rport = via.rport();
    let same_host = match via.host {
        Host::Ipv4(ip) => std::net::IpAddr::V4(ip) == source.ip(),
        Host::Ipv6(ip) => std::net::IpAddr::V6(ip) == source.ip(),
        Host::Domain(_) => false,
    };
    let has_received = via.params.get("received").is_some();
    let add_received = !has_received && (rport.is_some() || !same_host);
    let fill_rport = rport == Some(None);
    if !add_received && !fill_rport {
        return None;
    }
    // The top Via's text, as a span of the raw message.
    let top = req.headers.items(HeaderName::Via).next()?;
    let base = req.raw.as_ptr() as usize;
    let start = (top.as_ptr() as usize).checked_sub(base)?;
    let end = start + top.len();
    if end > req.raw.len() {
        return None;
    }
    let mut stamped = String::with_capacity(top.len() + 40);
    for (i, part) in top.split(';').enumerate() {
        if i > 0 {
            stamped.push(';');
        }
        let part = part.trim();
        if i > 0 && fill_rport && part.eq_ignore_ascii_case("rport") {
            let _ = write!(stamped, "rport={}", source.port());
        } else {
            stamped.push_str(part);
        }
    }
    if add_received {
        let _ = write!(stamped, ";received={}", source.ip());
    }
    let mut out = Vec::with_capacity(req.raw.len() + 40);
    out.extend_from_slice(&req.raw[..start]);
    out.extend_from_slice(stamped.as_bytes());
    out.extend_from_slice(&req.raw[end..]);
    Some(out)
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
    fn the_top_via_is_stamped_with_received_and_rport() {
        let source: std::net::SocketAddr = "192.0.2.7:40123".parse().unwrap();
        let req_with = |via: &str| {
            format!(
                "OPTIONS sip:b@h SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2;rport\r\n\
                 From: <sip:a@h>;tag=x\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
                 Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let top = |raw: &[u8]| {
            let req = Request::parse(raw).unwrap();
            let v = req
                .headers
                .items(HeaderName::Via)
                .next()
                .unwrap()
                .to_string();
            v
        };
        // RFC 3581 §4: rport asks for both, whatever the sent-by says.
        let raw = req_with("SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1");
        let req = Request::parse(raw.as_bytes()).unwrap();
        let stamped = stamp_via(&req, source).unwrap();
        assert_eq!(
            top(&stamped),
            "SIP/2.0/UDP 192.0.2.7:5060;rport=40123;branch=z9hG4bK1;received=192.0.2.7"
        );
        let resp = response_to(&Request::parse(&stamped).unwrap(), 200, "OK", None).finish();
        let r = Response::parse(&resp).unwrap();
        assert_eq!(r.via().rport(), Some(Some(40123)));
        assert_eq!(r.via().params.get("received"), Some(Some("192.0.2.7")));
        // Only the top Via: the second keeps its bare rport.
        assert_eq!(r.vias().count(), 2);
        assert!(String::from_utf8_lossy(&resp).contains("z9hG4bK2;rport\r\n"));
        // RFC 3261 §18.2.1: a sent-by host that is not the source.
        let raw = req_with("SIP/2.0/UDP phone.example.com;branch=z9hG4bK1");
        let req = Request::parse(raw.as_bytes()).unwrap();
        assert_eq!(
            top(&stamp_via(&req, source).unwrap()),
            "SIP/2.0/UDP phone.example.com;branch=z9hG4bK1;received=192.0.2.7"
        );
        // Nothing to stamp: the same address, no rport; no copy made.
        let raw = req_with("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1");
        assert!(stamp_via(&Request::parse(raw.as_bytes()).unwrap(), source).is_none());
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
