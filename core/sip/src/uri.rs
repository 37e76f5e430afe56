//! URIs: `sip:` and `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any
//! other absolute URI kept opaque so that the element can answer 416
//! (Unsupported URI Scheme) instead of 400.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::params::Params;
use crate::text::{escapes_valid, find, unreserved};

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
        let b = s.as_bytes();
        match b.first() {
            None => Err(UriError::Host),
            Some(b'[') => match s[1..].strip_suffix(']') {
                Some(inner) => inner
                    .parse::<Ipv6Addr>()
                    .map(Host::Ipv6)
                    .map_err(|_| UriError::Host),
                None => Err(UriError::Host),
            },
            Some(c) => {
                if c.is_ascii_digit() {
                    if let Some(ip) = parse_ipv4(s) {
                        return Ok(Host::Ipv4(ip));
                    }
                    // All digits and dots, yet no IPv4 address: malformed.
                    if b.iter().all(|x| x.is_ascii_digit() || *x == b'.') {
                        return Err(UriError::Host);
                    }
                }
                if *c != b'.' && *c != b'-' && b.iter().all(|x| HOST_BYTE[*x as usize]) {
                    Ok(Host::Domain(s))
                } else {
                    Err(UriError::Host)
                }
            }
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

pub(crate) static HOST_BYTE: [bool; 256] = crate::text::class(b"-._");
static USER: [bool; 256] = unreserved!("&" "=" "+" "$" "," ";" "?" "/");
static PASSWORD: [bool; 256] = unreserved!("&" "=" "+" "$" ",");
static HNV: [bool; 256] = unreserved!("[" "]" "/" "?" ":" "+" "$" "=" "&");
pub(crate) static PARAMCHAR: [bool; 256] = unreserved!("[" "]" "/" ":" "&" "+" "$");

/// Dotted-quad IPv4 without the generality of `FromStr`: four decimal
/// octets of one to three digits, each at most 255.
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut n = 0;
    let mut v: u32 = 0;
    let mut digits = 0;
    for &c in s.as_bytes() {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            v = v * 10 + u32::from(d);
            digits += 1;
        } else if c == b'.' && digits > 0 && digits <= 3 && v < 256 && n < 3 {
            o[n] = v as u8;
            n += 1;
            v = 0;
            digits = 0;
        } else {
            return None;
        }
    }
    if n == 3 && digits > 0 && digits <= 3 && v < 256 {
        o[3] = v as u8;
        Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
    } else {
        None
    }
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
        if let [b's' | b'S', b'i' | b'I', b'p' | b'P', b':', ..] = raw.as_bytes() {
            let kind = UriKind::Sip(parse_sip(&raw[4..], false)?);
            return Ok(Uri { raw, kind });
        }
        let colon = find(raw, b':').ok_or(UriError::Scheme)?;
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

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    let b = rest.as_bytes();
    // One scan finds the end of the userinfo and whether any escape needs checking.
    let mut at = None;
    let mut has_escape = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'@' => {
                at = Some(i);
                break;
            }
            b'%' => has_escape = true,
            _ => {}
        }
    }
    let (user, password, hp) = match at {
        Some(at) => {
            let ui = &b[..at];
            let user_end = ui.iter().position(|&c| !USER[c as usize]).unwrap_or(at);
            if user_end == 0 {
                return Err(UriError::User);
            }
            let password = match ui.get(user_end) {
                None => None,
                Some(b':') => {
                    let p = &rest[user_end + 1..at];
                    if !p.bytes().all(|c| PASSWORD[c as usize]) {
                        return Err(UriError::Password);
                    }
                    Some(p)
                }
                Some(_) => return Err(UriError::User),
            };
            let user = &rest[..user_end];
            if has_escape && !(escapes_valid(user) && password.is_none_or(escapes_valid)) {
                return Err(UriError::User);
            }
            (Some(user), password, at + 1)
        }
        None => (None, None, 0),
    };
    // hostport
    let mut i = hp;
    if b.get(i) == Some(&b'[') {
        i += b[i..]
            .iter()
            .position(|&c| c == b']')
            .ok_or(UriError::Host)?
            + 1;
    } else {
        while i < b.len() && HOST_BYTE[b[i] as usize] {
            i += 1;
        }
    }
    let host_raw = &rest[hp..i];
    let host = Host::parse(host_raw)?;
    let port = if b.get(i) == Some(&b':') {
        let start = i + 1;
        i = start;
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
            if i - start > 5 {
                return Err(UriError::Port);
            }
        }
        if i == start {
            return Err(UriError::Port);
        }
        Some(u16::try_from(v).map_err(|_| UriError::Port)?)
    } else {
        None
    };
    let after = &rest[i..];
    if !after.is_empty() && !after.starts_with([';', '?']) {
        return Err(if port.is_some() {
            UriError::Port
        } else {
            UriError::Host
        });
    }
    let (params_raw, headers) = match find(after, b'?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    let params = Params::new(params_raw);
    if !params_raw.is_empty() {
        params.validate_uri().map_err(|_| UriError::Param)?;
    }
    if let Some(h) = headers {
        if h.is_empty() || !h.bytes().all(|c| HNV[c as usize]) || !escapes_valid(h) {
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
    let end = find(rest, b';').unwrap_or(rest.len());
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
