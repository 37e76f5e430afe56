//! SDP session descriptions (RFC 8866): parse, inspect, modify, serialize.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// What was wrong with an SDP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// Not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// A line that is not `<letter>=<value>`.
    #[error("malformed line")]
    Line,
    /// A type letter RFC 8866 does not define (§5: reject the description).
    #[error("unknown line type")]
    UnknownType,
    /// `v=` missing, not first, or not 0.
    #[error("missing or unsupported v= line")]
    Version,
    /// `o=` missing or malformed.
    #[error("missing or malformed o= line")]
    Origin,
    /// A `c=` line is malformed.
    #[error("malformed c= line")]
    Connection,
    /// A `t=` line is malformed.
    #[error("malformed t= line")]
    Timing,
    /// An `m=` line is malformed.
    #[error("malformed m= line")]
    Media,
    /// A `b=` line is malformed.
    #[error("malformed b= line")]
    Bandwidth,
    /// A media stream has no connection address, and the session none either.
    #[error("media without connection address")]
    MissingConnection,
    /// More lines than the parser accepts.
    #[error("too many lines")]
    TooManyLines,
}

/// A malformed SDP body: answer 400 (RFC 3261 §21.4.1) or 488.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {kind}")]
pub struct SdpError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: SdpErrorKind,
}

impl SdpError {
    /// The SIP status to answer an offer with: 400 Bad Request.
    pub fn status(&self) -> u16 {
        400
    }
}

/// Address type of `o=` and `c=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl AddrType {
    fn parse(s: &str) -> Option<AddrType> {
        match s {
            "IP4" => Some(AddrType::Ip4),
            "IP6" => Some(AddrType::Ip6),
            _ => None,
        }
    }
    fn as_str(&self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
    /// The address type of an IP address.
    pub fn of(ip: &IpAddr) -> AddrType {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// User name (`-` when none).
    pub username: Cow<'a, str>,
    /// Session id (digits, may exceed 64 bits in the wild; kept as text).
    pub session_id: Cow<'a, str>,
    /// Session version, incremented on each modification.
    pub session_version: u64,
    /// Address type.
    pub addr_type: AddrType,
    /// Address of the originator.
    pub address: Cow<'a, str>,
}

/// `c=IN <addrtype> <address>` (multicast `/ttl/count` suffixes kept in `address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    /// Address type.
    pub addr_type: AddrType,
    /// Address as written.
    pub address: Cow<'a, str>,
}

impl Connection<'_> {
    /// The unicast IP address, when the address is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    /// A connection for `ip`.
    pub fn from_ip(ip: IpAddr) -> Connection<'static> {
        Connection {
            addr_type: AddrType::of(&ip),
            address: Cow::Owned(ip.to_string()),
        }
    }

    fn into_owned(self) -> Connection<'static> {
        Connection {
            addr_type: self.addr_type,
            address: Cow::Owned(self.address.into_owned()),
        }
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth<'a> {
    /// `AS`, `CT`, `TIAS`, …
    pub kind: Cow<'a, str>,
    /// kbit/s (or bit/s for TIAS).
    pub value: u64,
}

/// `t=<start> <stop>` with its `r=` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing<'a> {
    /// Start time (NTP seconds; 0 for unbounded).
    pub start: u64,
    /// Stop time.
    pub stop: u64,
    /// `r=` lines, verbatim.
    pub repeats: Vec<Cow<'a, str>>,
}

/// `a=<name>[:<value>]`, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute name.
    pub name: Cow<'a, str>,
    /// Value after the colon.
    pub value: Option<Cow<'a, str>>,
}

impl<'a> Attribute<'a> {
    /// A flag attribute such as `a=rtcp-mux`.
    pub fn flag(name: &'static str) -> Attribute<'a> {
        Attribute {
            name: Cow::Borrowed(name),
            value: None,
        }
    }

    /// A valued attribute.
    pub fn new(name: &'static str, value: String) -> Attribute<'a> {
        Attribute {
            name: Cow::Borrowed(name),
            value: Some(Cow::Owned(value)),
        }
    }

    fn into_owned(self) -> Attribute<'static> {
        Attribute {
            name: Cow::Owned(self.name.into_owned()),
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
        }
    }
}

/// Media direction (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (the default).
    SendRecv,
    /// `sendonly`
    SendOnly,
    /// `recvonly`
    RecvOnly,
    /// `inactive`
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// `true` when this side sends.
    pub fn sends(&self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// `true` when this side receives.
    pub fn receives(&self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with send and receive swapped (offer → answer view).
    pub fn reversed(&self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => *d,
        }
    }

    /// From send/receive flags.
    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: &'a str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (audio), when given.
    pub channels: Option<u8>,
}

impl<'a> RtpMap<'a> {
    /// Parses the value of an `rtpmap` attribute.
    pub fn parse(value: &'a str) -> Option<RtpMap<'a>> {
        let (pt, rest) = value.split_once(' ')?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next()?;
        let clock_rate = parts.next()?.parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.parse().ok()?),
            None => None,
        };
        if encoding.is_empty() || parts.next().is_some() {
            return None;
        }
        Some(RtpMap {
            payload_type: pt.parse().ok().filter(|p| *p < 128)?,
            encoding,
            clock_rate,
            channels,
        })
    }

    /// The static payload types of RFC 3551 §6 a switch meets in practice.
    pub fn static_type(pt: u8) -> Option<RtpMap<'static>> {
        let (encoding, clock_rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            4 => ("G723", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            13 => ("CN", 8000),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(RtpMap {
            payload_type: pt,
            encoding,
            clock_rate,
            channels: Some(1),
        })
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `application`, …
    pub kind: Cow<'a, str>,
    /// Transport port; 0 for a rejected or disabled stream.
    pub port: u16,
    /// `/<number of ports>`, when given.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, …
    pub proto: Cow<'a, str>,
    /// Formats (payload type numbers for RTP).
    pub formats: Vec<Cow<'a, str>>,
    /// `i=`
    pub information: Option<Cow<'a, str>>,
    /// `c=` lines of this stream.
    pub connections: Vec<Connection<'a>>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth<'a>>,
    /// `k=`
    pub key: Option<Cow<'a, str>>,
    /// `a=` lines, in order.
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> Media<'a> {
    /// The first attribute named `name`, and its value.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref())
    }

    /// Every `rtpmap` of this stream.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap<'_>> {
        self.attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| a.value.as_deref().and_then(RtpMap::parse))
    }

    /// The `rtpmap` of a payload type, or its RFC 3551 static mapping.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap<'_>> {
        self.rtpmaps()
            .find(|m| m.payload_type == pt)
            .or_else(|| RtpMap::static_type(pt))
    }

    /// The `fmtp` parameters of a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, params) = v.split_once(' ')?;
                (p.parse::<u8>().ok()? == pt).then_some(params.trim())
            })
    }

    /// The payload types listed on the `m=` line (RTP profiles).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The payload type of `telephone-event` (RFC 4733) at `clock_rate`.
    pub fn telephone_event(&self, clock_rate: u32) -> Option<u8> {
        self.rtpmaps()
            .find(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == clock_rate
            })
            .map(|m| m.payload_type)
    }

    /// The direction attribute of this stream, if it has one.
    pub fn direction_attr(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .filter(|a| a.value.is_none())
            .find_map(|a| Direction::parse(&a.name))
    }

    /// Replaces any direction attribute with `dir`.
    pub fn set_direction(&mut self, dir: Direction) {
        self.attributes
            .retain(|a| !(a.value.is_none() && Direction::parse(&a.name).is_some()));
        self.attributes.push(Attribute::flag(dir.as_str()));
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")??.trim().parse().ok()
    }

    /// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
    pub fn rtcp(&self) -> Option<(u16, Option<Connection<'_>>)> {
        let v = self.attribute("rtcp")??;
        let mut it = v.split_whitespace();
        let port = it.next()?.parse().ok()?;
        let conn = match (it.next(), it.next(), it.next()) {
            (Some("IN"), Some(t), Some(a)) => Some(Connection {
                addr_type: AddrType::parse(t)?,
                address: Cow::Borrowed(a),
            }),
            _ => None,
        };
        Some((port, conn))
    }

    /// `a=rtcp-mux` (RFC 5761).
    pub fn rtcp_mux(&self) -> bool {
        self.attribute("rtcp-mux").is_some()
    }

    /// Copies every borrowed field so the stream outlives its input.
    pub fn into_owned(self) -> Media<'static> {
        Media {
            kind: Cow::Owned(self.kind.into_owned()),
            port: self.port,
            port_count: self.port_count,
            proto: Cow::Owned(self.proto.into_owned()),
            formats: self
                .formats
                .into_iter()
                .map(|f| Cow::Owned(f.into_owned()))
                .collect(),
            information: self.information.map(|i| Cow::Owned(i.into_owned())),
            connections: self
                .connections
                .into_iter()
                .map(Connection::into_owned)
                .collect(),
            bandwidths: self
                .bandwidths
                .into_iter()
                .map(|b| Bandwidth {
                    kind: Cow::Owned(b.kind.into_owned()),
                    value: b.value,
                })
                .collect(),
            key: self.key.map(|k| Cow::Owned(k.into_owned())),
            attributes: self
                .attributes
                .into_iter()
                .map(Attribute::into_owned)
                .collect(),
        }
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription<'a> {
    /// `o=`
    pub origin: Origin<'a>,
    /// `s=` (`-` when absent in the input).
    pub session_name: Cow<'a, str>,
    /// `i=`
    pub information: Option<Cow<'a, str>>,
    /// `u=`
    pub uri: Option<Cow<'a, str>>,
    /// `e=` lines.
    pub emails: Vec<Cow<'a, str>>,
    /// `p=` lines.
    pub phones: Vec<Cow<'a, str>>,
    /// Session-level `c=`.
    pub connection: Option<Connection<'a>>,
    /// Session-level `b=`.
    pub bandwidths: Vec<Bandwidth<'a>>,
    /// `t=` lines with their `r=` lines (`t=0 0` when absent in the input).
    pub timings: Vec<Timing<'a>>,
    /// `z=`
    pub zone: Option<Cow<'a, str>>,
    /// `k=`
    pub key: Option<Cow<'a, str>>,
    /// Session-level `a=` lines.
    pub attributes: Vec<Attribute<'a>>,
    /// `m=` sections.
    pub media: Vec<Media<'a>>,
}

/// Most lines one description may have: bounds work on hostile input.
pub const MAX_LINES: usize = 1024;

fn parse_connection(v: &str) -> Option<Connection<'_>> {
    let mut it = v.split(' ');
    if it.next()? != "IN" {
        return None;
    }
    let addr_type = AddrType::parse(it.next()?)?;
    let address = it.next()?;
    if address.is_empty() || it.next().is_some() {
        return None;
    }
    let host = address.split('/').next()?;
    let ok = match addr_type {
        AddrType::Ip4 => host.parse::<std::net::Ipv4Addr>().is_ok() || is_fqdn(host),
        AddrType::Ip6 => host.parse::<std::net::Ipv6Addr>().is_ok() || is_fqdn(host),
    };
    ok.then_some(Connection {
        addr_type,
        address: Cow::Borrowed(address),
    })
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn parse_media(v: &str) -> Option<Media<'_>> {
    let mut it = v.split(' ').filter(|s| !s.is_empty());
    let kind = it.next()?;
    let port_s = it.next()?;
    let (port, port_count) = match port_s.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (port_s.parse().ok()?, None),
    };
    let proto = it.next()?;
    let formats: Vec<Cow<'_, str>> = it.map(Cow::Borrowed).collect();
    if formats.is_empty() || kind.is_empty() || proto.is_empty() {
        return None;
    }
    if proto.contains("RTP")
        && formats
            .iter()
            .any(|f| f.parse::<u8>().map_or(true, |p| p > 127))
    {
        return None;
    }
    Some(Media {
        kind: Cow::Borrowed(kind),
        port,
        port_count,
        proto: Cow::Borrowed(proto),
        formats,
        information: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    })
}

impl<'a> SessionDescription<'a> {
    /// Parses an SDP body (CRLF or LF line ends).
    pub fn parse(body: &'a [u8]) -> Result<SessionDescription<'a>, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError {
            line: 0,
            kind: SdpErrorKind::NotUtf8,
        })?;
        Self::parse_str(text)
    }

    /// Parses SDP text.
    pub fn parse_str(text: &'a str) -> Result<SessionDescription<'a>, SdpError> {
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| (i + 1, l));
        let err = |line, kind| SdpError { line, kind };
        let split = |n: usize, l: &'a str| -> Result<(u8, &'a str), SdpError> {
            let b = l.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(err(n, SdpErrorKind::Line));
            }
            Ok((b[0], &l[2..]))
        };
        match lines.next() {
            Some((n, l)) => {
                let (t, v) = split(n, l)?;
                if t != b'v' || v.trim() != "0" {
                    return Err(err(n, SdpErrorKind::Version));
                }
            }
            None => return Err(err(1, SdpErrorKind::Version)),
        }
        let origin = match lines.next() {
            Some((n, l)) => {
                let (t, v) = split(n, l)?;
                if t != b'o' {
                    return Err(err(n, SdpErrorKind::Origin));
                }
                let f: Vec<&str> = v.split(' ').collect();
                if f.len() != 6 || f[3] != "IN" {
                    return Err(err(n, SdpErrorKind::Origin));
                }
                Origin {
                    username: Cow::Borrowed(f[0]),
                    session_id: Cow::Borrowed(f[1]),
                    session_version: f[2].parse().map_err(|_| err(n, SdpErrorKind::Origin))?,
                    addr_type: AddrType::parse(f[4]).ok_or(err(n, SdpErrorKind::Origin))?,
                    address: Cow::Borrowed(f[5]),
                }
            }
            None => return Err(err(2, SdpErrorKind::Origin)),
        };
        let mut sd = SessionDescription {
            origin,
            session_name: Cow::Borrowed("-"),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: Vec::new(),
            zone: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut count = 2;
        for (n, l) in lines {
            count += 1;
            if count > MAX_LINES {
                return Err(err(n, SdpErrorKind::TooManyLines));
            }
            let (t, v) = split(n, l)?;
            let bw = |v: &'a str| -> Result<Bandwidth<'a>, SdpError> {
                let (k, val) = v.split_once(':').ok_or(err(n, SdpErrorKind::Bandwidth))?;
                Ok(Bandwidth {
                    kind: Cow::Borrowed(k),
                    value: val
                        .trim()
                        .parse()
                        .map_err(|_| err(n, SdpErrorKind::Bandwidth))?,
                })
            };
            let attr = |v: &'a str| match v.split_once(':') {
                Some((name, val)) => Attribute {
                    name: Cow::Borrowed(name),
                    value: Some(Cow::Borrowed(val)),
                },
                None => Attribute {
                    name: Cow::Borrowed(v),
                    value: None,
                },
            };
            if let Some(m) = sd.media.last_mut() {
                match t {
                    b'i' => m.information = Some(Cow::Borrowed(v)),
                    b'c' => m
                        .connections
                        .push(parse_connection(v).ok_or(err(n, SdpErrorKind::Connection))?),
                    b'b' => m.bandwidths.push(bw(v)?),
                    b'k' => m.key = Some(Cow::Borrowed(v)),
                    b'a' => m.attributes.push(attr(v)),
                    b'm' => sd
                        .media
                        .push(parse_media(v).ok_or(err(n, SdpErrorKind::Media))?),
                    _ => return Err(err(n, SdpErrorKind::UnknownType)),
                }
                continue;
            }
            match t {
                b's' => sd.session_name = Cow::Borrowed(v),
                b'i' => sd.information = Some(Cow::Borrowed(v)),
                b'u' => sd.uri = Some(Cow::Borrowed(v)),
                b'e' => sd.emails.push(Cow::Borrowed(v)),
                b'p' => sd.phones.push(Cow::Borrowed(v)),
                b'c' => {
                    sd.connection =
                        Some(parse_connection(v).ok_or(err(n, SdpErrorKind::Connection))?)
                }
                b'b' => sd.bandwidths.push(bw(v)?),
                b't' => {
                    let (a, b) = v.split_once(' ').ok_or(err(n, SdpErrorKind::Timing))?;
                    sd.timings.push(Timing {
                        start: a.parse().map_err(|_| err(n, SdpErrorKind::Timing))?,
                        stop: b.trim().parse().map_err(|_| err(n, SdpErrorKind::Timing))?,
                        repeats: Vec::new(),
                    });
                }
                b'r' => sd
                    .timings
                    .last_mut()
                    .ok_or(err(n, SdpErrorKind::Timing))?
                    .repeats
                    .push(Cow::Borrowed(v)),
                b'z' => sd.zone = Some(Cow::Borrowed(v)),
                b'k' => sd.key = Some(Cow::Borrowed(v)),
                b'a' => sd.attributes.push(attr(v)),
                b'm' => sd
                    .media
                    .push(parse_media(v).ok_or(err(n, SdpErrorKind::Media))?),
                _ => return Err(err(n, SdpErrorKind::UnknownType)),
            }
        }
        if sd.timings.is_empty() {
            sd.timings.push(Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            });
        }
        if sd.connection.is_none() {
            if let Some(i) = sd
                .media
                .iter()
                .position(|m| m.connections.is_empty() && m.port != 0)
            {
                return Err(err(i, SdpErrorKind::MissingConnection));
            }
        }
        Ok(sd)
    }

    /// The direction of stream `i`: its own attribute, else the session's,
    /// else `sendrecv` (RFC 8866 §6.7).
    pub fn direction(&self, i: usize) -> Direction {
        self.media
            .get(i)
            .and_then(Media::direction_attr)
            .or_else(|| {
                self.attributes
                    .iter()
                    .filter(|a| a.value.is_none())
                    .find_map(|a| Direction::parse(&a.name))
            })
            .unwrap_or(Direction::SendRecv)
    }

    /// The connection address of stream `i`.
    pub fn connection_of(&self, i: usize) -> Option<&Connection<'a>> {
        self.media
            .get(i)?
            .connections
            .first()
            .or(self.connection.as_ref())
    }

    /// `true` when stream `i` is on hold: `sendonly`/`inactive`, or the
    /// RFC 2543 style `c=0.0.0.0`.
    pub fn is_hold(&self, i: usize) -> bool {
        let d = self.direction(i);
        let zero = self
            .connection_of(i)
            .and_then(Connection::ip)
            .is_some_and(|ip| ip.is_unspecified());
        matches!(d, Direction::SendOnly | Direction::Inactive) || zero
    }

    /// Media anchoring: every connection address becomes `ip`, and stream
    /// `i` gets the port `port_for(i)` returns (0 when `None`); `a=rtcp`
    /// lines are rewritten to `port + 1` (or dropped with `rtcp-mux`). The
    /// session version is incremented.
    pub fn anchor(
        &mut self,
        ip: IpAddr,
        mut port_for: impl FnMut(usize, &Media<'a>) -> Option<u16>,
    ) {
        self.connection = Some(Connection::from_ip(ip));
        self.origin.addr_type = AddrType::of(&ip);
        self.origin.address = Cow::Owned(ip.to_string());
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
        for i in 0..self.media.len() {
            let port = if self.media[i].port == 0 {
                None
            } else {
                port_for(i, &self.media[i])
            };
            let m = &mut self.media[i];
            m.connections.clear();
            m.port = port.unwrap_or(0);
            let mux = m.rtcp_mux();
            m.attributes.retain(|a| a.name != "rtcp");
            if let (Some(p), false) = (port, mux) {
                m.attributes
                    .push(Attribute::new("rtcp", p.saturating_add(1).to_string()));
            }
        }
    }

    /// Copies every borrowed field so the description outlives its input.
    pub fn into_owned(self) -> SessionDescription<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        SessionDescription {
            origin: Origin {
                username: own(self.origin.username),
                session_id: own(self.origin.session_id),
                session_version: self.origin.session_version,
                addr_type: self.origin.addr_type,
                address: own(self.origin.address),
            },
            session_name: own(self.session_name),
            information: self.information.map(own),
            uri: self.uri.map(own),
            emails: self.emails.into_iter().map(own).collect(),
            phones: self.phones.into_iter().map(own).collect(),
            connection: self.connection.map(Connection::into_owned),
            bandwidths: self
                .bandwidths
                .into_iter()
                .map(|b| Bandwidth {
                    kind: own(b.kind),
                    value: b.value,
                })
                .collect(),
            timings: self
                .timings
                .into_iter()
                .map(|t| Timing {
                    start: t.start,
                    stop: t.stop,
                    repeats: t.repeats.into_iter().map(own).collect(),
                })
                .collect(),
            zone: self.zone.map(own),
            key: self.key.map(own),
            attributes: self
                .attributes
                .into_iter()
                .map(Attribute::into_owned)
                .collect(),
            media: self.media.into_iter().map(Media::into_owned).collect(),
        }
    }

    /// Serializes with CRLF line ends, in RFC 8866 order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn write_attrs(f: &mut fmt::Formatter<'_>, attrs: &[Attribute<'_>]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for SessionDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.addr_type.as_str(),
            o.address,
            self.session_name
        )?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c=IN {} {}\r\n", c.addr_type.as_str(), c.address)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.kind, b.value)?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.zone {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        write_attrs(f, &self.attributes)?;
        for m in &self.media {
            let mut line = String::with_capacity(64);
            let _ = write!(line, "m={} {}", m.kind, m.port);
            if let Some(n) = m.port_count {
                let _ = write!(line, "/{n}");
            }
            let _ = write!(line, " {}", m.proto);
            for fmt_ in &m.formats {
                line.push(' ');
                line.push_str(fmt_);
            }
            write!(f, "{line}\r\n")?;
            if let Some(i) = &m.information {
                write!(f, "i={i}\r\n")?;
            }
            for c in &m.connections {
                write!(f, "c=IN {} {}\r\n", c.addr_type.as_str(), c.address)?;
            }
            for b in &m.bandwidths {
                write!(f, "b={}:{}\r\n", b.kind, b.value)?;
            }
            if let Some(k) = &m.key {
                write!(f, "k={k}\r\n")?;
            }
            write_attrs(f, &m.attributes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97 101\r\na=rtpmap:97 opus/48000/2\r\na=fmtp:97 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=rtcp:49171\r\na=sendrecv\r\na=x-unknown:kept verbatim\r\nm=video 0 RTP/AVP 31\r\n";

    #[test]
    fn parses_the_fields_a_switch_needs() {
        let sd = SessionDescription::parse_str(OFFER).unwrap();
        assert_eq!(sd.origin.session_version, 2890844526);
        let m = &sd.media[0];
        assert_eq!(m.port, 49170);
        assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 8, 97, 101]);
        assert_eq!(m.rtpmap(0).unwrap().encoding, "PCMU");
        let opus = m.rtpmap(97).unwrap();
        assert_eq!(
            (opus.encoding, opus.clock_rate, opus.channels),
            ("opus", 48000, Some(2))
        );
        assert_eq!(m.fmtp(97), Some("useinbandfec=1"));
        assert_eq!(m.telephone_event(8000), Some(101));
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(m.rtcp().unwrap().0, 49171);
        assert!(!m.rtcp_mux());
        assert_eq!(sd.direction(0), Direction::SendRecv);
        assert_eq!(m.attribute("x-unknown"), Some(Some("kept verbatim")));
        assert_eq!(
            sd.connection_of(0).unwrap().ip(),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(sd.media[1].port, 0);
    }

    #[test]
    fn roundtrips_byte_exact_for_canonical_input() {
        let sd = SessionDescription::parse_str(OFFER).unwrap();
        assert_eq!(sd.to_string(), OFFER);
        let owned = sd.clone().into_owned();
        assert_eq!(owned, sd);
    }

    #[test]
    fn malformed_is_an_error() {
        for (bad, kind) in [
            ("", SdpErrorKind::Version),
            ("v=1\r\n", SdpErrorKind::Version),
            ("o=x\r\n", SdpErrorKind::Version),
            ("v=0\r\ns=-\r\n", SdpErrorKind::Origin),
            ("v=0\r\no=a 1 x IN IP4 h\r\n", SdpErrorKind::Origin),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP5 1.2.3.4\r\n",
                SdpErrorKind::Connection,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
                SdpErrorKind::Media,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 300\r\n",
                SdpErrorKind::Media,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\n",
                SdpErrorKind::MissingConnection,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nx=1\r\n",
                SdpErrorKind::UnknownType,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nnot a line\r\n",
                SdpErrorKind::Line,
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nb=AS\r\n",
                SdpErrorKind::Bandwidth,
            ),
            ("v=0\r\no=a 1 1 IN IP4 h\r\nr=1 2\r\n", SdpErrorKind::Timing),
        ] {
            let e = SessionDescription::parse_str(bad).unwrap_err();
            assert_eq!(e.kind, kind, "{bad:?}");
            assert_eq!(e.status(), 400);
        }
        assert_eq!(
            SessionDescription::parse(&[0xff, 0xfe]).unwrap_err().kind,
            SdpErrorKind::NotUtf8
        );
    }

    #[test]
    fn ipv6_hold_and_anchor() {
        let sdp = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        let mut sd = SessionDescription::parse_str(sdp).unwrap();
        assert!(sd.is_hold(0));
        sd.anchor("127.0.0.1".parse().unwrap(), |_, _| Some(20000));
        let out = sd.to_string();
        assert!(out.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(out.contains("o=- 1 2 IN IP4 127.0.0.1\r\n"));
        assert!(out.contains("m=audio 20000 RTP/AVP 0\r\n"));
        assert!(out.contains("a=rtcp:20001\r\n"));
        let zero = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(SessionDescription::parse_str(zero).unwrap().is_hold(0));
    }
}
