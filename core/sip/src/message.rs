//! SIP messages (RFC 3261 §7): zero-copy parsing of a datagram or a framed
//! stream message into views that borrow the buffer, and serialization.
//!
//! Parsing does the work every element needs once per message: it finds the
//! start line and every header line (unfolding nothing, copying nothing),
//! recognises header names, and parses the headers RFC 3261 §8.1.1 makes
//! mandatory — Via, From, To, Call-ID, CSeq, Max-Forwards — plus
//! Content-Length, so that a message that comes out of [`Message::parse`]
//! can be handed to the transaction layer without further checks. Anything wrong becomes a [`ParseError`] whose
//! [`ParseError::disposition`] says whether to answer 400/505/513 or drop it.
//!
//! URIs and the address lists are the exception: at receipt only the
//! scheme of the Request-URI and of the From and To URIs is checked, and
//! Contact, Route and Record-Route are only found. The URIs and every
//! Contact, Route and Record-Route entry are checked by
//! [`Message::validate`], which the
//! transaction user runs on a request that starts a transaction (through
//! [`crate::check::check_request`]) and on a response it acts on.
//! Retransmissions absorbed by the transaction layer never pay for it.

use std::fmt::Write as _;

use crate::error::{ErrorKind, ParseError, StartKind};
use crate::header::{Header, HeaderName, Headers};
use crate::text::{is_token_byte, split_commas, trim_lws, unfold};
use crate::typed::{CSeq, Method, NameAddr, Via};
use crate::uri::scheme_of;

/// Bounds applied while parsing. Each bound that is hit gives its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest message accepted, start line to end of body.
    pub max_message_size: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
    /// Longest physical line accepted.
    pub max_line_length: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_message_size: 65_535,
            max_headers: 128,
            max_line_length: 8_192,
        }
    }
}

/// How the message arrived, which decides how its body is delimited
/// (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One message per datagram: a missing Content-Length means "to the end
    /// of the datagram", octets past Content-Length are discarded, and a
    /// Content-Length larger than what arrived is an error (400).
    Datagram,
    /// The buffer holds exactly one message cut by [`crate::StreamFramer`].
    Stream,
}

/// The mandatory headers, parsed once at receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreHeaders<'a> {
    /// Topmost Via.
    pub via: Via<'a>,
    /// From.
    pub from: NameAddr<'a>,
    /// To.
    pub to: NameAddr<'a>,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq.
    pub cseq: CSeq<'a>,
    /// Max-Forwards, when present.
    pub max_forwards: Option<u8>,
    /// Content-Length, when present.
    pub content_length: Option<u32>,
}

/// A request, borrowing the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Method.
    pub method: Method<'a>,
    /// Request-URI as written: see [`Request::uri`].
    uri: &'a str,
    /// All header lines, in order.
    pub headers: Headers<'a>,
    /// The body.
    pub body: &'a [u8],
    /// Parsed mandatory headers.
    pub core: CoreHeaders<'a>,
    /// The whole message as received (for forwarding and retransmission).
    pub raw: &'a [u8],
}

/// A response, borrowing the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: &'a str,
    /// All header lines, in order.
    pub headers: Headers<'a>,
    /// The body.
    pub body: &'a [u8],
    /// Parsed mandatory headers.
    pub core: CoreHeaders<'a>,
    /// The whole message as received.
    pub raw: &'a [u8],
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A request.
    Request(Request<'a>),
    /// A response.
    Response(Response<'a>),
}

impl<'a> Message<'a> {
    /// Parses one message with default limits, as received in a datagram.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Self::parse_with(buf, &ParseLimits::default(), Framing::Datagram)
    }

    /// Parses one message with the given limits and framing.
    pub fn parse_with(
        buf: &'a [u8],
        limits: &ParseLimits,
        framing: Framing,
    ) -> Result<Message<'a>, ParseError> {
        parse(buf, limits, framing)
    }

    /// The mandatory headers.
    pub fn core(&self) -> &CoreHeaders<'a> {
        match self {
            Message::Request(r) => &r.core,
            Message::Response(r) => &r.core,
        }
    }

    /// All header lines.
    pub fn headers(&self) -> &Headers<'a> {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &'a [u8] {
        match self {
            Message::Request(r) => r.body,
            Message::Response(r) => r.body,
        }
    }

    /// Serializes in canonical form: one line per header with folds
    /// collapsed, long header names, and a Content-Length that matches the body.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }

    /// [`Message::write_to`] into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.body().len() + 512);
        self.write_to(&mut v);
        v
    }

    /// Checks what [`Message::parse`] leaves for later (see the module
    /// documentation): the Request-URI, the From, To and Contact URIs and
    /// every Route and Record-Route entry. The error names the header at
    /// fault, and its disposition is 400 for a request, drop for a
    /// response.
    pub fn validate(&self) -> Result<(), ParseError> {
        match self {
            Message::Request(r) => r.validate(),
            Message::Response(r) => r.validate(),
        }
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request<'a>> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response<'a>> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }
}

macro_rules! core_accessors {
    () => {
        /// Topmost Via.
        pub fn via(&self) -> &Via<'a> {
            &self.core.via
        }
        /// From.
        pub fn from(&self) -> &NameAddr<'a> {
            &self.core.from
        }
        /// To.
        pub fn to(&self) -> &NameAddr<'a> {
            &self.core.to
        }
        /// Call-ID.
        pub fn call_id(&self) -> &'a str {
            self.core.call_id
        }
        /// CSeq.
        pub fn cseq(&self) -> &CSeq<'a> {
            &self.core.cseq
        }
        /// Every Via value, top first.
        pub fn vias(&self) -> impl Iterator<Item = &'a str> + '_ {
            self.headers.items(HeaderName::Via)
        }
        /// The first Contact address (a dialog's remote target), parsed
        /// now, URI included; `Ok(None)` when there is none or it is `*`.
        pub fn contact(&self) -> Result<Option<NameAddr<'a>>, &'static str> {
            first_contact(self.headers.value(HeaderName::Contact))
        }
    };
}

impl<'a> Request<'a> {
    core_accessors!();

    /// Max-Forwards, when present.
    pub fn max_forwards(&self) -> Option<u8> {
        self.core.max_forwards
    }

    crate::uri::uri_text_accessors!("Request-URI");

    /// See [`Message::validate`].
    pub fn validate(&self) -> Result<(), ParseError> {
        let err = |k| ParseError::new(k, StartKind::Request);
        self.uri().map_err(|e| err(ErrorKind::RequestUri(e)))?;
        validate_addresses_of(&self.core, &self.headers).map_err(err)
    }

    /// Parses a request, refusing responses.
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, ParseError> {
        match Message::parse(buf)? {
            Message::Request(r) => Ok(r),
            Message::Response(_) => Err(ParseError::new(ErrorKind::StartLine, StartKind::Response)),
        }
    }

    /// Serializes in canonical form (see [`Message::write_to`]).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers_and_body(&self.headers, self.body, out);
    }
}

impl<'a> Response<'a> {
    core_accessors!();

    /// See [`Message::validate`].
    pub fn validate(&self) -> Result<(), ParseError> {
        validate_addresses_of(&self.core, &self.headers)
            .map_err(|k| ParseError::new(k, StartKind::Response))
    }

    /// Parses a response, refusing requests.
    pub fn parse(buf: &'a [u8]) -> Result<Response<'a>, ParseError> {
        match Message::parse(buf)? {
            Message::Response(r) => Ok(r),
            Message::Request(_) => Err(ParseError::new(ErrorKind::StartLine, StartKind::Request)),
        }
    }

    /// Serializes in canonical form (see [`Message::write_to`]).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(32);
        let _ = write!(line, "SIP/2.0 {} ", self.status);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&self.headers, self.body, out);
    }
}

fn write_headers_and_body(headers: &Headers<'_>, body: &[u8], out: &mut Vec<u8>) {
    for h in headers {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(unfold(h.value).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut cl = String::with_capacity(24);
    let _ = write!(cl, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(cl.as_bytes());
    out.extend_from_slice(body);
}

/// Line-feed offsets of a header section: inline for any ordinary message,
/// spilling to the heap only past 64 lines.
struct LineEnds {
    inline: [usize; 64],
    n: usize,
    spill: Vec<usize>,
}

impl Default for LineEnds {
    fn default() -> Self {
        LineEnds {
            inline: [0; 64],
            n: 0,
            spill: Vec::new(),
        }
    }
}

impl LineEnds {
    fn push(&mut self, at: usize) {
        if self.n < self.inline.len() {
            self.inline[self.n] = at;
            self.n += 1;
        } else {
            self.spill.push(at);
        }
    }

    fn first(&self) -> Option<usize> {
        (self.n > 0).then(|| self.inline[0])
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.inline[..self.n].iter().chain(&self.spill).copied()
    }
}

/// Skips CRLFs before a start line (RFC 3261 §7.5).
pub(crate) fn skip_leading_crlf(buf: &[u8]) -> usize {
    let mut i = 0;
    while i + 1 < buf.len() && buf[i] == b'\r' && buf[i + 1] == b'\n' {
        i += 2;
    }
    i
}

fn parse<'a>(
    buf: &'a [u8],
    limits: &ParseLimits,
    framing: Framing,
) -> Result<Message<'a>, ParseError> {
    let unknown = |k| ParseError::new(k, StartKind::Unknown);
    let skip = skip_leading_crlf(buf);
    let buf = &buf[skip..];
    // The start kind is needed for every later error; classify it first.
    let start = if buf.len() >= 4 && buf[..4].eq_ignore_ascii_case(b"SIP/") {
        StartKind::Response
    } else {
        StartKind::Request
    };
    let err = |k| ParseError::new(k, start);
    if buf.len() > limits.max_message_size {
        return Err(err(ErrorKind::TooLarge {
            size: buf.len(),
            limit: limits.max_message_size,
        }));
    }
    // One SIMD pass over the line feeds finds the end of every line and the
    // empty line that ends the header section; the body is never scanned.
    let mut ends = LineEnds::default();
    let mut line_start = 0;
    let mut blank = None;
    for nl in crate::text::LineFeeds::new(buf) {
        if nl - line_start > limits.max_line_length {
            return Err(err(ErrorKind::LineTooLong {
                limit: limits.max_line_length,
            }));
        }
        if line_start > 0 && nl == line_start + 1 && buf[line_start] == b'\r' {
            blank = Some(line_start);
            break;
        }
        ends.push(nl);
        line_start = nl + 1;
    }
    let head_len = match blank {
        Some(b) => b,
        // A datagram whose last header line ends the datagram without the
        // empty line is still delimited by the datagram itself: accept it
        // (RFC 4475 §3.1.2.15 arrives that way).
        None if framing == Framing::Datagram && buf.ends_with(b"\r\n") => buf.len(),
        None if buf.len() - line_start > limits.max_line_length => {
            return Err(err(ErrorKind::LineTooLong {
                limit: limits.max_line_length,
            }))
        }
        None => return Err(err(ErrorKind::Unterminated)),
    };
    // `head` holds the start line and every header line, each with its CRLF.
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| err(ErrorKind::NotUtf8))?;
    let body_start = head_len + 2;

    // The start line must end with CRLF, not a bare LF.
    let first_end = match ends.first() {
        Some(n) if n > 0 && buf[n - 1] == b'\r' => n - 1,
        _ => return Err(err(ErrorKind::StartLine)),
    };
    if first_end > limits.max_line_length {
        return Err(err(ErrorKind::LineTooLong {
            limit: limits.max_line_length,
        }));
    }
    let start_line = &head[..first_end];
    enum Start<'a> {
        Req(Method<'a>, &'a str),
        Resp(u16, &'a str),
    }
    let parsed_start = match start {
        StartKind::Response => {
            let (code, reason) = parse_status_line(start_line).map_err(err)?;
            Start::Resp(code, reason)
        }
        _ => {
            let (m, u) = parse_request_line(start_line).map_err(|k| match k {
                // A line that is no request line at all cannot be answered.
                ErrorKind::StartLine if !start_line.contains("SIP/") => unknown(k),
                k => err(k),
            })?;
            Start::Req(m, u)
        }
    };

    let mut headers = Headers::with_capacity(16);
    let mut via: Option<Via<'a>> = None;
    let mut from: Option<&'a str> = None;
    let mut to: Option<&'a str> = None;
    let mut call_id: Option<&'a str> = None;
    let mut cseq: Option<&'a str> = None;
    let mut max_forwards: Option<&'a str> = None;
    let mut content_length: Option<&'a str> = None;

    let hb = head.as_bytes();
    // Header lines from the line ends found above; a line feed followed by
    // SP/HTAB is a fold and does not end the header.
    let mut line_start = first_end + 2;
    for nl in ends.iter().skip(1) {
        if nl + 1 < hb.len() && matches!(hb[nl + 1], b' ' | b'\t') {
            continue;
        }
        let line_end = nl;
        let this_start = line_start;
        line_start = nl + 1;
        if headers.len() == limits.max_headers {
            return Err(err(ErrorKind::TooManyHeaders {
                limit: limits.max_headers,
            }));
        }
        let line = &head[this_start..line_end];
        let line = line.strip_suffix('\r').unwrap_or(line);
        // `token *(SP / HTAB) ":"`. The common names are matched sixteen
        // bytes at a time; anything else is scanned byte by byte.
        let known = buf
            .get(this_start..this_start + 16)
            .and_then(|w| HeaderName::known(u128::from_le_bytes(w.try_into().ok()?)));
        let (name, colon) = match known {
            Some(k) => k,
            None => {
                let lb = line.as_bytes();
                let mut name_end = 0;
                while name_end < lb.len() && is_token_byte(lb[name_end]) {
                    name_end += 1;
                }
                let mut colon = name_end;
                while colon < lb.len() && (lb[colon] == b' ' || lb[colon] == b'\t') {
                    colon += 1;
                }
                if name_end == 0 || lb.get(colon) != Some(&b':') {
                    return Err(err(ErrorKind::HeaderLine));
                }
                (HeaderName::parse(&line[..name_end]), colon)
            }
        };
        let value = trim_lws(&line[colon + 1..]);
        let once = |slot: &mut Option<&'a str>, n: HeaderName<'static>| {
            if slot.is_some() {
                return Err(err(ErrorKind::Duplicate(n)));
            }
            *slot = Some(value);
            Ok(())
        };
        match name {
            HeaderName::Via => {
                for item in split_commas(value) {
                    let v = Via::parse(item).map_err(|problem| {
                        err(ErrorKind::Header {
                            name: HeaderName::Via,
                            problem,
                        })
                    })?;
                    if via.is_none() {
                        via = Some(v);
                    }
                }
            }
            HeaderName::From => once(&mut from, HeaderName::From)?,
            HeaderName::To => once(&mut to, HeaderName::To)?,
            HeaderName::CallId => once(&mut call_id, HeaderName::CallId)?,
            HeaderName::CSeq => once(&mut cseq, HeaderName::CSeq)?,
            HeaderName::MaxForwards => once(&mut max_forwards, HeaderName::MaxForwards)?,
            HeaderName::ContentLength => once(&mut content_length, HeaderName::ContentLength)?,
            _ => {}
        }
        headers.push(Header { name, value });
    }

    let bad =
        |name: HeaderName<'static>, problem: &'static str| err(ErrorKind::Header { name, problem });
    let via = via.ok_or_else(|| err(ErrorKind::Missing(HeaderName::Via)))?;
    let from =
        NameAddr::parse_shallow(from.ok_or_else(|| err(ErrorKind::Missing(HeaderName::From)))?)
            .map_err(|p| bad(HeaderName::From, p))?;
    let to = NameAddr::parse_shallow(to.ok_or_else(|| err(ErrorKind::Missing(HeaderName::To)))?)
        .map_err(|p| bad(HeaderName::To, p))?;
    let call_id = call_id.ok_or_else(|| err(ErrorKind::Missing(HeaderName::CallId)))?;
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad(HeaderName::CallId, "not a word[@word]"));
    }
    let cseq = CSeq::parse(cseq.ok_or_else(|| err(ErrorKind::Missing(HeaderName::CSeq)))?)
        .map_err(|p| bad(HeaderName::CSeq, p))?;
    let max_forwards = match max_forwards {
        Some(v) => Some(parse_max_forwards(v).map_err(|p| bad(HeaderName::MaxForwards, p))?),
        None => None,
    };
    let content_length = match content_length {
        Some(v) => Some(parse_content_length(v).map_err(|p| bad(HeaderName::ContentLength, p))?),
        None => None,
    };

    let available = buf.len() - body_start.min(buf.len());
    let body_start = body_start.min(buf.len());
    let body_len = match (content_length, framing) {
        (Some(cl), _) if cl as usize > available => {
            return Err(err(ErrorKind::BodyTruncated {
                declared: cl as usize,
                available,
            }))
        }
        (Some(cl), _) => cl as usize,
        (None, Framing::Stream) => return Err(err(ErrorKind::Missing(HeaderName::ContentLength))),
        (None, Framing::Datagram) => available,
    };
    let body = &buf[body_start..body_start + body_len];
    let raw = &buf[..body_start + body_len];
    let core = CoreHeaders {
        via,
        from,
        to,
        call_id,
        cseq,
        max_forwards,
        content_length,
    };
    Ok(match parsed_start {
        Start::Req(method, uri) => {
            if cseq.method != method {
                return Err(err(ErrorKind::CSeqMismatch));
            }
            Message::Request(Request {
                method,
                uri,
                headers,
                body,
                core,
                raw,
            })
        }
        Start::Resp(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
            core,
            raw,
        }),
    })
}

/// The first entry of a Contact value, parsed; `None` for no value or
/// `Contact: *`.
fn first_contact(value: Option<&str>) -> Result<Option<NameAddr<'_>>, &'static str> {
    match value {
        None | Some("*") => Ok(None),
        Some(v) => match split_commas(v).next() {
            Some(item) if !item.is_empty() => NameAddr::parse(item).map(Some),
            _ => Err("empty list item"),
        },
    }
}

/// The URIs of From and To, and every entry of every Contact, Route and
/// Record-Route line, checked completely.
fn validate_addresses_of(core: &CoreHeaders<'_>, headers: &Headers<'_>) -> Result<(), ErrorKind> {
    let bad = |name, problem| ErrorKind::Header { name, problem };
    core.from
        .uri()
        .map_err(|_| bad(HeaderName::From, "malformed URI"))?;
    core.to
        .uri()
        .map_err(|_| bad(HeaderName::To, "malformed URI"))?;
    for h in headers {
        let name = match h.name {
            HeaderName::Contact if h.value == "*" => continue,
            HeaderName::Contact => HeaderName::Contact,
            HeaderName::Route => HeaderName::Route,
            HeaderName::RecordRoute => HeaderName::RecordRoute,
            _ => continue,
        };
        for item in split_commas(h.value) {
            if item.is_empty() {
                return Err(bad(name, "empty list item"));
            }
            NameAddr::parse(item).map_err(|p| bad(name, p))?;
        }
    }
    Ok(())
}

fn parse_max_forwards(v: &str) -> Result<u8, &'static str> {
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number");
    }
    v.parse::<u16>()
        .ok()
        .and_then(|n| u8::try_from(n).ok())
        .ok_or("larger than 255")
}

fn parse_content_length(v: &str) -> Result<u32, &'static str> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a non-negative number");
    }
    v.parse::<u64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("too large")
}

fn parse_version(v: &str) -> Result<(), ErrorKind> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    // Compare bytes: `v` may hold any UTF-8, and a str slice at a fixed
    // index could split a character.
    let b = v.as_bytes();
    let looks_like_version = b.len() > 4
        && b[..4].eq_ignore_ascii_case(b"SIP/")
        && b[4..].split(|c| *c == b'.').count() == 2
        && b[4..]
            .split(|c| *c == b'.')
            .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    Err(if looks_like_version {
        ErrorKind::Version
    } else {
        ErrorKind::StartLine
    })
}

fn parse_request_line(line: &str) -> Result<(Method<'_>, &str), ErrorKind> {
    // RFC 3261 wants single spaces; RFC 4475 §3.1.2.9/10 allow accepting
    // extra ones. Any other white space inside a part is an error.
    let b = line.as_bytes();
    let mut parts = [(0usize, 0usize); 3];
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        if n == 3 {
            return Err(ErrorKind::StartLine);
        }
        let start = i;
        if n == 1 {
            // The Request-URI is the long part: a SIMD search pays off.
            i = memchr::memchr(b' ', &b[i..]).map_or(b.len(), |k| i + k);
        } else {
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
        }
        parts[n] = (start, i);
        n += 1;
    }
    let part = |k: usize| &line[parts[k].0..parts[k].1];
    parse_version(part(2).trim_end_matches('\t'))?;
    let method = Method::parse(part(0)).ok_or(ErrorKind::Method)?;
    let uri = part(1);
    scheme_of(uri).map_err(ErrorKind::RequestUri)?;
    Ok((method, uri))
}

fn parse_status_line(line: &str) -> Result<(u16, &str), ErrorKind> {
    let sp = line.find(' ').ok_or(ErrorKind::StartLine)?;
    parse_version(&line[..sp])?;
    let rest = line[sp + 1..].trim_start_matches(' ');
    let code_end = rest.find(' ').unwrap_or(rest.len());
    let code = &rest[..code_end];
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::StatusCode);
    }
    let status: u16 = code.parse().map_err(|_| ErrorKind::StatusCode)?;
    if !(100..=699).contains(&status) {
        return Err(ErrorKind::StatusCode);
    }
    let reason = rest.get(code_end + 1..).unwrap_or("");
    Ok((status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Disposition;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn parses_core_headers() {
        let m = Message::parse(INVITE).unwrap();
        let r = m.as_request().unwrap();
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.example.com");
        assert_eq!(r.cseq().seq, 314159);
        assert_eq!(r.from().tag(), Some("1928301774"));
        assert_eq!(r.to().tag(), None);
        assert_eq!(r.via().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(r.max_forwards(), Some(70));
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.headers.len(), 9);
    }

    #[test]
    fn uris_and_contact_are_checked_when_asked() {
        let m = Message::parse(INVITE).unwrap();
        m.validate().unwrap();
        let r = m.as_request().unwrap();
        assert_eq!(r.uri().unwrap().user(), Some("bob"));
        assert_eq!(r.uri_scheme(), "sip");
        let c = r.contact().unwrap().unwrap();
        assert_eq!(c.uri_str(), "sip:alice@pc33.atlanta.example.com");

        let text = std::str::from_utf8(INVITE).unwrap();
        let star = text.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "Contact: *",
        );
        let m = Message::parse(star.as_bytes()).unwrap();
        assert_eq!(m.as_request().unwrap().contact(), Ok(None));
        m.validate().unwrap();

        // Malformed URIs pass the parse and fail validation, naming the header.
        for (from, to, header) in [
            (
                "<sip:alice@pc33.atlanta.example.com>",
                "<sip:alice@pc33:99999>",
                "Contact",
            ),
            (
                "Bob <sip:bob@biloxi.example.com>",
                "Bob <sip:bob@bi loxi>",
                "To",
            ),
            (
                "sip:bob@biloxi.example.com SIP",
                "sip:bob@[::1 SIP",
                "Request-URI",
            ),
        ] {
            let bad = text.replacen(from, to, 1);
            let m = Message::parse(bad.as_bytes()).unwrap_or_else(|e| panic!("{to}: {e}"));
            let e = m.validate().unwrap_err();
            assert!(e.to_string().contains(header), "{to}: {e}");
            assert_eq!(e.status(), Some(400));
        }
        let bad = text.replacen(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "Contact: <sip:alice@pc33:99999>",
            1,
        );
        let m = Message::parse(bad.as_bytes()).unwrap();
        assert!(m.as_request().unwrap().contact().is_err());
    }

    #[test]
    fn roundtrip() {
        let m = Message::parse(INVITE).unwrap();
        let bytes = m.to_bytes();
        let m2 = Message::parse(&bytes).unwrap();
        assert_eq!(m.core(), m2.core());
        assert_eq!(m.body(), m2.body());
    }

    #[test]
    fn limits() {
        let limits = ParseLimits {
            max_headers: 3,
            ..ParseLimits::default()
        };
        let e = Message::parse_with(INVITE, &limits, Framing::Datagram).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyHeaders { limit: 3 });
        assert_eq!(e.status(), Some(400));
        let limits = ParseLimits {
            max_message_size: 100,
            ..ParseLimits::default()
        };
        let e = Message::parse_with(INVITE, &limits, Framing::Datagram).unwrap_err();
        assert_eq!(e.status(), Some(513));
        let limits = ParseLimits {
            max_line_length: 40,
            ..ParseLimits::default()
        };
        let e = Message::parse_with(INVITE, &limits, Framing::Datagram).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LineTooLong { limit: 40 });
    }

    #[test]
    fn status_lines() {
        let ok = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let r = Response::parse(ok).unwrap();
        assert_eq!(r.status, 180);
        assert_eq!(r.reason, "Ringing");
        let bad = b"SIP/2.0 099 Low\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        assert_eq!(
            Message::parse(bad).unwrap_err().disposition(),
            Disposition::Drop
        );
    }
}
