//! URIs: `sip:` and `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any
//! other absolute URI kept opaque so that the element can answer 416
//! (Unsupported URI Scheme) instead of 400.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::params::Params;
use crate::text::{escapes_valid, find, span_class, unreserved};

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
        match scan_host(s, 0)? {
            (host, end) if end == s.len() => Ok(host),
            _ => Err(UriError::Host),
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

const USER_B: u8 = 1;
const PASSWORD_B: u8 = 2;
const HOST_B: u8 = 4;
/// A host byte that is neither a digit nor `.`: a name, not an address.
const NAME_B: u8 = 8;
const PERCENT_B: u8 = 16;
const HNV_B: u8 = 32;
const PARAM_B: u8 = 64;

/// Every byte class a SIP URI scan needs, one bit each, so that one table
/// lookup per byte serves the user, password, host and headers parts.
static CLASS: [u8; 256] = {
    let user: [bool; 256] = unreserved!("&" "=" "+" "$" "," ";" "?" "/");
    let password: [bool; 256] = unreserved!("&" "=" "+" "$" ",");
    let host: [bool; 256] = crate::text::class(b"-._");
    let hnv: [bool; 256] = unreserved!("[" "]" "/" "?" ":" "+" "$" "=" "&");
    let param: [bool; 256] = unreserved!("[" "]" "/" ":" "&" "+" "$");
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let mut k = 0;
        if user[c] {
            k |= USER_B;
        }
        if password[c] {
            k |= PASSWORD_B;
        }
        if host[c] {
            k |= HOST_B;
            if !(c as u8).is_ascii_digit() && c as u8 != b'.' {
                k |= NAME_B;
            }
        }
        if c as u8 == b'%' {
            k |= PERCENT_B;
        }
        if hnv[c] {
            k |= HNV_B;
        }
        if param[c] {
            k |= PARAM_B;
        }
        t[c] = k;
        c += 1;
    }
    t
};

/// Scans the URI parameters that start at `b[start]`, which must be `;`
/// (RFC 3261 §19.1.1: `paramchar` names and values, neither empty, valid
/// escapes); returns the offset of the first byte that is not part of
/// them (`?` starts the URI's headers).
pub(crate) fn scan_uri_params(b: &[u8], start: usize) -> Result<usize, ()> {
    if b.get(start) != Some(&b';') {
        return Err(());
    }
    let mut seen = 0;
    let mut in_value = false;
    let mut i = start + 1;
    loop {
        // One name or one value.
        let run = i;
        i = span_class(b, i, &CLASS, PARAM_B, &mut seen);
        if i == run {
            return Err(());
        }
        match b.get(i) {
            Some(b';') => in_value = false,
            Some(b'=') if !in_value => in_value = true,
            Some(b'=') => return Err(()),
            _ => break,
        }
        i += 1;
    }
    if seen & PERCENT_B != 0 && !crate::text::escapes_valid_bytes(&b[start..i]) {
        return Err(());
    }
    Ok(i)
}

/// Scans a host starting at `s[start]` and returns it with the offset just
/// past it. The caller decides what may follow.
pub(crate) fn scan_host(s: &str, start: usize) -> Result<(Host<'_>, usize), UriError> {
    let b = s.as_bytes();
    let first = *b.get(start).ok_or(UriError::Host)?;
    if first == b'[' {
        let close = start
            + b[start..]
                .iter()
                .position(|&c| c == b']')
                .ok_or(UriError::Host)?;
        let ip = s[start + 1..close]
            .parse::<Ipv6Addr>()
            .map_err(|_| UriError::Host)?;
        return Ok((Host::Ipv6(ip), close + 1));
    }
    if first.is_ascii_digit() {
        let (ip, end) = scan_ipv4(b, start);
        // Digits and dots followed by a name byte are a host name ("1und1.de").
        if b.get(end).is_none_or(|&c| CLASS[c as usize] & HOST_B == 0) {
            return ip.map(|ip| (Host::Ipv4(ip), end)).ok_or(UriError::Host);
        }
    } else if first == b'.' || first == b'-' {
        return Err(UriError::Host);
    }
    let mut seen = 0;
    let i = span_class(b, start, &CLASS, HOST_B, &mut seen);
    // Empty, or only digits and dots that are no IPv4 address.
    if seen & NAME_B == 0 {
        return Err(UriError::Host);
    }
    Ok((Host::Domain(&s[start..i]), i))
}

/// Scans the run of digits and dots at `b[start..]`: the dotted-quad IPv4
/// address it spells (four octets of one to three digits, each at most
/// 255), if it spells one, and where the run ends.
fn scan_ipv4(b: &[u8], start: usize) -> (Option<Ipv4Addr>, usize) {
    let mut o = [0u8; 4];
    let mut n = 0;
    let mut v: u32 = 0;
    let mut digits: u32 = 0;
    let mut bad = false;
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            // Wraps on absurd runs; `digits` has already made those bad.
            v = v.wrapping_mul(10).wrapping_add(u32::from(d));
            digits += 1;
        } else if c == b'.' {
            bad |= digits.wrapping_sub(1) > 2 || v > 255 || n == 3;
            o[n & 3] = v as u8;
            n += 1;
            v = 0;
            digits = 0;
        } else {
            break;
        }
        i += 1;
    }
    bad |= digits.wrapping_sub(1) > 2 || v > 255 || n != 3;
    if bad {
        (None, i)
    } else {
        (Some(Ipv4Addr::new(o[0], o[1], o[2], v as u8)), i)
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
            let kind = UriKind::Sip(parse_sip_whole(&raw[4..], false)?);
            return Ok(Uri { raw, kind });
        }
        let scheme = scheme_of(raw)?;
        let rest = &raw[scheme.len() + 1..];
        let kind = if scheme.eq_ignore_ascii_case("sip") {
            UriKind::Sip(parse_sip_whole(rest, false)?)
        } else if scheme.eq_ignore_ascii_case("sips") {
            UriKind::Sip(parse_sip_whole(rest, true)?)
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

/// [`parse_sip`] on text that must hold the URI and nothing else.
fn parse_sip_whole(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    let (uri, end) = parse_sip(rest, secure)?;
    if end == rest.len() {
        return Ok(uri);
    }
    // Name the part that the stray byte follows.
    Err(if uri.headers.is_some() {
        UriError::Headers
    } else if !uri.params.as_str().is_empty() {
        UriError::Param
    } else if uri.port.is_some() {
        UriError::Port
    } else {
        UriError::Host
    })
}

/// `uri()`, `uri_str()` and `uri_scheme()` for a view that keeps a URI as
/// written in its `uri` field and parses it on demand.
macro_rules! uri_text_accessors {
    ($what:literal) => {
        #[doc = concat!("Parses the ", $what, ".")]
        pub fn uri(&self) -> Result<$crate::uri::Uri<'a>, $crate::uri::UriError> {
            $crate::uri::Uri::parse(self.uri)
        }

        #[doc = concat!("The ", $what, " as written.")]
        pub fn uri_str(&self) -> &'a str {
            self.uri
        }

        #[doc = concat!("The ", $what, "'s scheme as written (compare it case-insensitively).")]
        pub fn uri_scheme(&self) -> &'a str {
            $crate::uri::scheme_of(self.uri).unwrap_or("")
        }
    };
}
pub(crate) use uri_text_accessors;

/// The scheme of an absolute URI (`ALPHA *(ALPHA / DIGIT / "+" / "-" /
/// ".")` before the first `:`), as written.
pub(crate) fn scheme_of(raw: &str) -> Result<&str, UriError> {
    if let [b's' | b'S', b'i' | b'I', b'p' | b'P', b':', ..] = raw.as_bytes() {
        return Ok(&raw[..3]);
    }
    let colon = find(raw, b':').ok_or(UriError::Scheme)?;
    let sb = &raw.as_bytes()[..colon];
    if sb.is_empty()
        || !sb[0].is_ascii_alphabetic()
        || !sb
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err(UriError::Scheme);
    }
    Ok(&raw[..colon])
}

/// One pass over `user[:password]@host[:port][;params][?headers]`: a
/// single class lookup per byte, each part validated as it is crossed.
/// Stops at the first byte that cannot continue the URI and returns its
/// offset with the URI before it.
fn parse_sip(rest: &str, secure: bool) -> Result<(SipUri<'_>, usize), UriError> {
    let b = rest.as_bytes();
    let n = b.len();
    // The user run ends at `@` (userinfo), at `:` (a password or a port:
    // the byte after the password run decides) or anywhere else (no
    // userinfo: the run was the host, rescanned below).
    let mut seen = 0;
    let i = span_class(b, 0, &CLASS, USER_B, &mut seen);
    let userinfo = match b.get(i) {
        Some(b'@') => Some((i, None, i + 1)),
        Some(b':') => {
            let j = span_class(b, i + 1, &CLASS, PASSWORD_B, &mut seen);
            (b.get(j) == Some(&b'@')).then_some((i, Some(&rest[i + 1..j]), j + 1))
        }
        _ => None,
    };
    let (user, password, hp) = match userinfo {
        Some((0, _, _)) => return Err(UriError::User),
        Some((user_end, password, hp)) => {
            let user = &rest[..user_end];
            if seen & PERCENT_B != 0 && !(escapes_valid(user) && password.is_none_or(escapes_valid))
            {
                return Err(UriError::User);
            }
            (Some(user), password, hp)
        }
        None => (None, None, 0),
    };
    let (host, mut i) = scan_host(rest, hp)?;
    let host_raw = &rest[hp..i];
    let port = if b.get(i) == Some(&b':') {
        let start = i + 1;
        i = start;
        let mut v: u32 = 0;
        while i < n && b[i].is_ascii_digit() {
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
    let params_start = i;
    if b.get(i) == Some(&b';') {
        i = scan_uri_params(b, i).map_err(|_| UriError::Param)?;
    }
    let params = Params::new(&rest[params_start..i]);
    let headers = if b.get(i) == Some(&b'?') {
        let hs = i + 1;
        i = span_class(b, hs, &CLASS, HNV_B, &mut seen);
        let h = &rest[hs..i];
        if h.is_empty() || !escapes_valid(h) {
            return Err(UriError::Headers);
        }
        Some(h)
    } else {
        None
    };
    let uri = SipUri {
        secure,
        user,
        password,
        host,
        host_raw,
        port,
        params,
        headers,
    };
    Ok((uri, i))
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
    use proptest::prelude::*;

    /// Pieces that, strung together, make valid URIs, near misses and junk.
    const PIECES: &[&str] = &[
        "alice",
        "+1555",
        "@",
        "@",
        ":",
        ":",
        ";",
        ";",
        "?",
        "=",
        "=",
        "example.com",
        "h.x",
        "127.0.0.1",
        "10.0.0.255",
        "1.2.3",
        "300.1.1.1",
        "1.2.3.4.5",
        "01.2.3.4",
        "1und1.de",
        "[::1]",
        "[2001:db8::1",
        "[x]",
        "5060",
        "99999",
        "123456",
        "lr",
        "transport",
        "udp",
        "user",
        "phone",
        "h=v",
        "%41",
        "%4",
        "%zz",
        "%",
        " ",
        ">",
        "-",
        ".",
        "_",
        "/",
        "&",
        "$",
        ",",
        "!",
        "~",
        "*",
        "'",
        "(",
        "[",
        "]",
        "\"",
        "pw",
        "é",
    ];

    fn uri_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..10).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn sip_scan_matches_the_reference(s in uri_text()) {
            let fast = parse_sip_whole(&s, false);
            let slow = crate::reference::sip(&s, false);
            prop_assert_eq!(fast.is_ok(), slow.is_ok(), "{:?}: {:?} vs {:?}", s, fast, slow);
            if let (Ok(f), Ok(r)) = (fast, slow) {
                prop_assert_eq!(f, r);
            }
        }

        #[test]
        fn host_scan_matches_the_reference(s in uri_text()) {
            prop_assert_eq!(Host::parse(&s).ok(), crate::reference::host(&s).ok(), "{:?}", s);
        }

        #[test]
        fn uri_params_match_the_reference(s in uri_text()) {
            let s = format!(";{s}");
            let p = Params::new(&s);
            prop_assert_eq!(p.validate_uri().is_ok(), crate::reference::uri_params(&s), "{:?}", s);
        }
    }

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
