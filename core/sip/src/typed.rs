//! Typed views of the header fields the SIP core needs on every message:
//! Via (§20.42), From/To/Contact/Route/Record-Route (`name-addr` /
//! `addr-spec`, §20.10, §25.1), CSeq (§20.16) and the request method (§7.1).

use std::fmt;

use crate::params::Params;
use crate::text::{
    find, is_lws, is_token, is_token_byte, quoted_string_end, trim_lws, trim_lws_start,
};
use crate::uri::{scan_host, scheme_of, Host};

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method<'a> {
    /// INVITE (RFC 3261)
    Invite,
    /// ACK (RFC 3261)
    Ack,
    /// BYE (RFC 3261)
    Bye,
    /// CANCEL (RFC 3261)
    Cancel,
    /// OPTIONS (RFC 3261)
    Options,
    /// REGISTER (RFC 3261)
    Register,
    /// INFO (RFC 6086)
    Info,
    /// PRACK (RFC 3262)
    Prack,
    /// UPDATE (RFC 3311)
    Update,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other method token, as written.
    Extension(&'a str),
}

impl<'a> Method<'a> {
    /// Parses a method token; `None` when `s` is not a token.
    pub fn parse(s: &'a str) -> Option<Method<'a>> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Extension(other),
            _ => return None,
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of a CSeq header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number; RFC 3261 §8.1.1.5 bounds it below 2³¹.
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(value: &'a str) -> Result<CSeq<'a>, &'static str> {
        let v = trim_lws(value);
        let b = v.as_bytes();
        // Up to ten digits, accumulated as they are crossed.
        let mut seq: u64 = 0;
        let mut end = 0;
        while end < b.len() && end <= 10 && b[end].is_ascii_digit() {
            seq = seq * 10 + u64::from(b[end] - b'0');
            end += 1;
        }
        if end == 0 || end > 10 || seq >= 1 << 31 {
            return Err("sequence number is not a number below 2^31");
        }
        if !b.get(end).is_some_and(|&c| is_lws(c)) {
            return Err("missing method");
        }
        let method = Method::parse(trim_lws_start(&v[end..])).ok_or("malformed method")?;
        Ok(CSeq {
            seq: seq as u32,
            method,
        })
    }
}

/// One Via header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name and version, normally `SIP` and `2.0`.
    pub protocol: (&'a str, &'a str),
    /// Transport token (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …) as written.
    pub transport: &'a str,
    /// Host of the sent-by.
    pub host: Host<'a>,
    /// Host of the sent-by, as written.
    pub host_raw: &'a str,
    /// Port of the sent-by.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
    branch: Option<&'a str>,
}

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl<'a> Via<'a> {
    /// Parses one Via value (`sent-protocol LWS sent-by *( SEMI via-params )`),
    /// allowing LWS around the slashes as RFC 3261 does.
    pub fn parse(value: &'a str) -> Result<Via<'a>, &'static str> {
        let v = trim_lws(value);
        let b = v.as_bytes();
        let token = |mut i: usize| {
            let s = i;
            while i < b.len() && is_token_byte(b[i]) {
                i += 1;
            }
            (s, i)
        };
        // sent-protocol = name SLASH version SLASH transport, SLASH = SWS "/" SWS;
        // nearly always written "SIP/2.0/" exactly.
        if let Some(w) = b.get(..8) {
            // Lower-case the three letters only; the other five must match exactly.
            let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            if w | 0x20_2020 != u64::from_le_bytes(*b"sip/2.0/") {
                return Self::parse_general(v);
            }
            let (ts, te) = token(8);
            if te > ts && b.get(te).is_some_and(|&c| is_lws(c)) {
                return Self::sent_by(v, (&v[..3], &v[4..7]), &v[ts..te], te);
            }
        }
        Self::parse_general(v)
    }

    /// Via with any protocol name and version, and LWS around the slashes.
    fn parse_general(v: &'a str) -> Result<Via<'a>, &'static str> {
        let b = v.as_bytes();
        let skip = |mut i: usize| {
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            i
        };
        let token = |mut i: usize| {
            let s = i;
            while i < b.len() && is_token_byte(b[i]) {
                i += 1;
            }
            (s, i)
        };
        let (ns, ne) = token(0);
        let i = skip(ne);
        if ne == ns || b.get(i) != Some(&b'/') {
            return Err("malformed sent-protocol");
        }
        let (vs, ve) = token(skip(i + 1));
        let i = skip(ve);
        if ve == vs || b.get(i) != Some(&b'/') {
            return Err("malformed sent-protocol");
        }
        let (ts, te) = token(skip(i + 1));
        if te == ts {
            return Err("malformed sent-protocol");
        }
        if !b.get(te).is_some_and(|c| is_lws(*c)) {
            return Err("missing sent-by");
        }
        Self::sent_by(v, (&v[ns..ne], &v[vs..ve]), &v[ts..te], te)
    }

    /// The rest of a Via value from the white space after the transport:
    /// `sent-by *( SEMI via-params )`.
    fn sent_by(
        v: &'a str,
        protocol: (&'a str, &'a str),
        transport: &'a str,
        te: usize,
    ) -> Result<Via<'a>, &'static str> {
        let b = v.as_bytes();
        let skip = |mut i: usize| {
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            i
        };
        // sent-by = host [ COLON port ], LWS allowed around the colon
        let hs = skip(te);
        let (host, i) = scan_host(v, hs).map_err(|_| "malformed sent-by host")?;
        let host_raw = &v[hs..i];
        let mut j = skip(i);
        let port = if b.get(j) == Some(&b':') {
            j = skip(j + 1);
            let ps = j;
            let mut n: u32 = 0;
            while j < b.len() && b[j].is_ascii_digit() && j - ps < 6 {
                n = n * 10 + u32::from(b[j] - b'0');
                j += 1;
            }
            if j == ps {
                return Err("malformed sent-by port");
            }
            let p = u16::try_from(n).map_err(|_| "malformed sent-by port")?;
            j = skip(j);
            Some(p)
        } else {
            None
        };
        if j < b.len() && b[j] != b';' {
            return Err(if port.is_some() {
                "malformed sent-by port"
            } else {
                "malformed sent-by host"
            });
        }
        let params = Params::new(&v[j..]);
        let branch = params.scan_generic("branch")?.filter(|b| !b.is_empty());
        Ok(Via {
            protocol,
            transport,
            host,
            host_raw,
            port,
            params,
            branch,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// `true` when the branch starts with the RFC 3261 magic cookie.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

/// A `name-addr` or `addr-spec` with header parameters: the value of From,
/// To, Contact, Route, Record-Route, Refer-To and the like.
///
/// The URI is kept as written; [`NameAddr::uri`] parses it. A value from
/// [`NameAddr::parse`] has a valid URI. One inside a parsed message has had
/// its structure checked (display name, brackets, parameters, tag) and its
/// URI's scheme; the rest of the URI is checked by
/// [`crate::Message::validate`], which [`crate::check::check_request`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quoted strings keep their quotes).
    pub display_name: Option<&'a str>,
    uri: &'a str,
    /// `true` when the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// Header parameters after the URI (`;tag=…`, `;expires=…`).
    pub params: Params<'a>,
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses one `(name-addr / addr-spec) *(SEMI generic-param)` value,
    /// URI included.
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, &'static str> {
        let na = Self::parse_shallow(trim_lws(value))?;
        na.uri().map_err(|_| "malformed URI")?;
        Ok(na)
    }

    /// [`NameAddr::parse`] without the URI beyond its scheme: what a
    /// message parse does at receipt. `v` is trimmed of LWS already, as
    /// header values and list items are.
    pub(crate) fn parse_shallow(v: &'a str) -> Result<NameAddr<'a>, &'static str> {
        let b = v.as_bytes();
        let (display_name, after_display) = if b.first() == Some(&b'<') {
            (None, v)
        } else if b.first() == Some(&b'"') {
            let end = quoted_string_end(b).ok_or("unterminated quoted display name")?;
            (Some(&v[..end]), trim_lws_start(&v[end..]))
        } else {
            match find(v, b'<') {
                Some(lt) => {
                    let d = trim_lws(&v[..lt]);
                    if !d.bytes().all(|c| is_token_byte(c) || is_lws(c)) {
                        return Err("malformed display name");
                    }
                    ((!d.is_empty()).then_some(d), &v[lt..])
                }
                None => (None, v),
            }
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            // No URI byte is '>', so the first one closes the URI.
            let gt = memchr::memchr(b'>', inner.as_bytes()).ok_or("missing '>'")?;
            let uri = trim_lws(&inner[..gt]);
            scheme_of(uri).map_err(|_| "malformed URI")?;
            let rest = trim_lws_start(&inner[gt + 1..]);
            if !rest.is_empty() && !rest.starts_with(';') {
                return Err("unexpected text after '>'");
            }
            let params = Params::new(rest);
            let tag = params.scan_generic("tag")?;
            return Ok(NameAddr {
                display_name,
                uri,
                bracketed: true,
                params,
                tag,
            });
        }
        if display_name.is_some() {
            return Err("display name without '<'");
        }
        let end = find(v, b';').unwrap_or(v.len());
        let uri = trim_lws(&v[..end]);
        if uri.contains(['?', ',']) {
            return Err("URI with '?' or ',' must be enclosed in '<>'");
        }
        scheme_of(uri).map_err(|_| "malformed URI")?;
        let params = Params::new(&v[end..]);
        let tag = params.scan_generic("tag")?;
        Ok(NameAddr {
            display_name: None,
            uri,
            bracketed: false,
            params,
            tag,
        })
    }

    crate::uri::uri_text_accessors!("URI");

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.tag.filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "\"",
        "\"Alice\"",
        "\"a\\\"b\"",
        "Bob",
        " ",
        "\r\n ",
        "<",
        "<",
        ">",
        ">",
        "sip:",
        "SIPS:",
        "tel:",
        "urn:x",
        "alice",
        "@",
        "example.com",
        "10.0.0.1",
        ":5060",
        ";",
        ";tag=",
        "tag",
        "=",
        "1928",
        "lr",
        "?h=v",
        ",",
        "%41",
        "x y",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn name_addr_matches_the_reference(
            v in (
                prop::sample::select(&["", "\"Alice\" ", "Bob", "\"x", " ", "a b "][..]),
                prop::sample::select(&["<", "", " <"][..]),
                prop::sample::select(&["sip:", "sips:", "tel:", "urn:", "", "Sip:"][..]),
                prop::collection::vec(prop::sample::select(PIECES), 0..5),
                prop::sample::select(&[">", "", " >", ">;tag=1", " > ; tag = 2;lr", ";tag=3"][..]),
                prop::collection::vec(prop::sample::select(PIECES), 0..3),
            )
                .prop_map(|(d, lt, scheme, uri, gt, tail)| {
                    format!("{d}{lt}{scheme}{}{gt}{}", uri.concat(), tail.concat())
                })
        ) {
            let fast = NameAddr::parse(&v).ok().map(|n| {
                (n.display_name, n.uri_str(), n.bracketed, n.params.as_str(), n.tag)
            });
            prop_assert_eq!(fast, crate::reference::name_addr(&v), "{:?}", v);
        }
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.is_rfc3261_branch());
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.host_raw, "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = Via::parse("SIP/2.0/UDP [2001:db8::1]:5070;rport;received=192.0.2.1").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.1"));
    }

    #[test]
    fn bad_via() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0 host").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:99999").is_err());
        // Only the letters of "SIP/2.0/" are compared case-insensitively.
        assert!(Via::parse("SIP\x0f2.0/UDP host").is_err());
        assert!(Via::parse("SIP/\x122.0/UDP host").is_err());
        assert!(Via::parse("SIP/2\x0e0/UDP host").is_err());
        let v = Via::parse("sIp/2.0/tcp host").unwrap();
        assert_eq!((v.protocol, v.transport), (("sIp", "2.0"), "tcp"));
        let v = Via::parse("SIP/2.0/UDP").err();
        assert_eq!(v, Some("missing sent-by"));
    }

    #[test]
    fn cseq() {
        assert_eq!(CSeq::parse("0009\r\n  INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("2147483647 INVITE").is_ok());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name, Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some("caller"));
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(!n.bracketed);
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri().unwrap().as_sip().unwrap().params.is_empty());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(NameAddr::parse("isbn:2983792873").is_ok());
    }
}
