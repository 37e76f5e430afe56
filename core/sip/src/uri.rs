//! URIs: `sip:` and `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any
//! other absolute URI kept opaque so that the element can answer 416
//! (Unsupported URI Scheme) instead of 400.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::params::Params;
use crate::text::escapes_valid;

/// Why a URI did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix, or a scheme with illegal characters.
    #[error("missing or malformed URI scheme")]
    Scheme,
    /// The user part has characters RFC 3261 does not allow there.
    #[error("malformed user part")]
    User,
    /// The password part has characters RFC 3261 does not allow there.
    #[error("malformed password")]
    Password,
    /// The host is empty or malformed.
    #[error("malformed host")]
    Host,
    /// The port is not a number in 0..=65535.
    #[error("malformed port")]
    Port,
    /// A URI parameter is malformed.
    #[error("malformed URI parameter")]
    Param,
    /// The `?headers` part is malformed.
    #[error("malformed URI headers")]
    Headers,
    /// A `tel:` number is malformed.
    #[error("malformed telephone number")]
    Telephone,
    /// Opaque part empty or containing white space.
    #[error("malformed URI")]
    Opaque,
}

/// The host of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, as written.
    Domain(&'a str),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference (written in brackets).
    Ipv6(Ipv6Addr),
}

impl Host<'_> {
    /// Parses a host: an IPv6 reference in brackets, a dotted IPv4 address,
    /// or a host name (letters, digits, `-`, `.`, and `_` as seen in the wild).
    pub fn parse(s: &str) -> Result<Host<'_>, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::Host)?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| UriError::Host);
        }
        if s.is_empty() {
            return Err(UriError::Host);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s
                .parse::<Ipv4Addr>()
                .map(Host::Ipv4)
                .map_err(|_| UriError::Host);
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !s.starts_with(['.', '-']);
        if ok {
            Ok(Host::Domain(s))
        } else {
            Err(UriError::Host)
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let rest = &s[end + 1..];
                let port = match rest.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if rest.is_empty() => None,
                    None => return Err(UriError::Host),
                };
                (&s[..=end], port)
            }
            None => return Err(UriError::Host),
        }
    } else {
        match s.rfind(':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UriError::Port);
            }
            Some(p.parse::<u16>().map_err(|_| UriError::Port)?)
        }
        None => None,
    };
    Ok((Host::parse(host)?, port))
}

/// A `sip:` or `sips:` URI, viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `true` for `sips:`.
    pub secure: bool,
    /// The user part, still `%HH`-escaped (see [`crate::unescape`]).
    pub user: Option<&'a str>,
    /// The password, still escaped.
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The host as written.
    pub host_raw: &'a str,
    /// The port, when given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// The `?` headers part, without the `?`.
    pub headers: Option<&'a str>,
}

impl SipUri<'_> {
    /// `true` when the URI carries the `lr` parameter (loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `transport` parameter, if any.
    pub fn transport(&self) -> Option<&str> {
        self.params.get("transport").flatten()
    }
}

/// A `tel:` URI (RFC 3966), viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number, with visual separators as written.
    pub number: &'a str,
    /// Parameters such as `phone-context`.
    pub params: Params<'a>,
}

impl TelUri<'_> {
    /// `true` for a global number (`+` prefix).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
}

/// A parsed URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriKind<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque.
    Other {
        /// The scheme, as written.
        scheme: &'a str,
        /// Everything after the `:`.
        opaque: &'a str,
    },
}

/// A URI: the text as written and its parsed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    kind: UriKind<'a>,
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = raw.find(':').ok_or(UriError::Scheme)?;
        let scheme = &raw[..colon];
        let rest = &raw[colon + 1..];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError::Scheme);
        }
        let kind = if scheme.eq_ignore_ascii_case("sip") {
            UriKind::Sip(parse_sip(rest, false)?)
        } else if scheme.eq_ignore_ascii_case("sips") {
            UriKind::Sip(parse_sip(rest, true)?)
        } else if scheme.eq_ignore_ascii_case("tel") {
            UriKind::Tel(parse_tel(rest)?)
        } else {
            if rest.is_empty() || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(UriError::Opaque);
            }
            UriKind::Other {
                scheme,
                opaque: rest,
            }
        };
        Ok(Uri { raw, kind })
    }

    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The parsed form.
    pub fn kind(&self) -> &UriKind<'a> {
        &self.kind
    }

    /// The SIP URI, when this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match &self.kind {
            UriKind::Sip(s) => Some(s),
            _ => None,
        }
    }

    /// The scheme, lower-case for the known ones.
    pub fn scheme(&self) -> &'a str {
        match &self.kind {
            UriKind::Sip(s) if s.secure => "sips",
            UriKind::Sip(_) => "sip",
            UriKind::Tel(_) => "tel",
            UriKind::Other { scheme, .. } => scheme,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&'a str> {
        match &self.kind {
            UriKind::Sip(s) => s.user,
            UriKind::Tel(t) => Some(t.number),
            UriKind::Other { .. } => None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(match rest.find('@') {
            Some(at) if rest[..at].bytes().any(|b| b <= b' ' || b == 0x7f) => UriError::User,
            _ => UriError::Host,
        });
    }
    let (user, password, hostpart) = match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, password) = match userinfo.find(':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            let user_ok = !user.is_empty()
                && escapes_valid(user)
                && user.bytes().all(|b| {
                    is_unreserved(b)
                        || matches!(
                            b,
                            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
                        )
                });
            if !user_ok {
                return Err(UriError::User);
            }
            if let Some(p) = password {
                let ok = escapes_valid(p)
                    && p.bytes().all(|b| {
                        is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
                    });
                if !ok {
                    return Err(UriError::Password);
                }
            }
            (Some(user), password, &rest[at + 1..])
        }
        None => (None, None, rest),
    };
    let end = hostpart.find([';', '?']).unwrap_or(hostpart.len());
    let host_raw_port = &hostpart[..end];
    let (host, port) = parse_hostport(host_raw_port)?;
    let host_raw = match port {
        Some(_) => &host_raw_port[..host_raw_port.rfind(':').unwrap_or(host_raw_port.len())],
        None => host_raw_port,
    };
    let after = &hostpart[end..];
    let (params_raw, headers) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    let params = Params::new(params_raw);
    params.validate_uri().map_err(|_| UriError::Param)?;
    if let Some(h) = headers {
        let ok = !h.is_empty()
            && escapes_valid(h)
            && h.bytes().all(|b| {
                is_unreserved(b)
                    || matches!(
                        b,
                        b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
                    )
            });
        if !ok {
            return Err(UriError::Headers);
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        host_raw,
        port,
        params,
        headers,
    })
}

fn parse_tel(rest: &str) -> Result<TelUri<'_>, UriError> {
    let end = rest.find(';').unwrap_or(rest.len());
    let number = &rest[..end];
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = !digits.is_empty()
        && digits
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
        && digits
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')'));
    if !ok {
        return Err(UriError::Telephone);
    }
    let params = Params::new(&rest[end..]);
    params.validate_uri().map_err(|_| UriError::Param)?;
    Ok(TelUri { number, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).expect(s).kind {
            UriKind::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn basic_sip() {
        let u = sip("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi");
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Domain("example.com"));
        assert_eq!(u.host_raw, "example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers, Some("subject=hi"));
    }

    #[test]
    fn ipv6_and_ipv4() {
        let u = sip("sips:[2001:db8::10]:5061");
        assert!(u.secure);
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        let u = sip("sip:192.0.2.4");
        assert_eq!(u.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4)));
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:300.1.1.1").is_err());
    }

    #[test]
    fn rfc4475_user_parts() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(u.params.iter().count(), 2);
    }

    #[test]
    fn tel_and_opaque() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.user(), Some("+1-201-555-0123"));
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme(), "nobodyKnowsThisScheme");
        assert!(Uri::parse("soap.beep://192.0.2.103:3002").is_ok());
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:a@b:99999").is_err());
    }
}
