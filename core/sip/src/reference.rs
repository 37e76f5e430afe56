//! Straightforward reference versions of the hand-tuned scanners, kept for
//! tests only: property tests check that the fast code accepts and rejects
//! exactly what these do and yields the same fields.

use std::net::Ipv6Addr;

use crate::params::Params;
use crate::text::{escapes_valid, is_lws, is_token_byte, quoted_string_end, unreserved};
use crate::uri::{Host, SipUri, UriError};

static HOST_BYTE: [bool; 256] = crate::text::class(b"-._");
static USER: [bool; 256] = unreserved!("&" "=" "+" "$" "," ";" "?" "/");
static PASSWORD: [bool; 256] = unreserved!("&" "=" "+" "$" ",");
static HNV: [bool; 256] = unreserved!("[" "]" "/" "?" ":" "+" "$" "=" "&");
static PARAMCHAR: [bool; 256] = unreserved!("[" "]" "/" ":" "&" "+" "$");
static GEN_VALUE: [bool; 256] = crate::text::class(b"-.!%*_+`'~[]:");

pub(crate) fn host(s: &str) -> Result<Host<'_>, UriError> {
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
                let octets: Vec<&str> = s.split('.').collect();
                if octets.len() == 4
                    && octets.iter().all(|o| {
                        (1..=3).contains(&o.len())
                            && o.bytes().all(|d| d.is_ascii_digit())
                            && o.parse::<u16>().is_ok_and(|v| v < 256)
                    })
                {
                    let o: Vec<u8> = octets.iter().map(|o| o.parse().unwrap()).collect();
                    return Ok(Host::Ipv4(std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3])));
                }
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

pub(crate) fn uri_params(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix(';') else {
        return raw.is_empty();
    };
    rest.split(';').all(|p| {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        !name.is_empty()
            && name.bytes().all(|c| PARAMCHAR[c as usize])
            && value.is_none_or(|v| !v.is_empty() && v.bytes().all(|c| PARAMCHAR[c as usize]))
    }) && escapes_valid(raw)
}

/// `(params, value of want)`: header-parameter syntax, one item at a time.
pub(crate) fn generic_params<'a>(raw: &'a str, want: &str) -> Option<Option<&'a str>> {
    let t = raw.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8));
    if t.is_empty() {
        return Some(None);
    }
    let mut found = None;
    let b = raw.as_bytes();
    let mut i = 0;
    let skip = |mut i: usize| {
        while i < b.len() && is_lws(b[i]) {
            i += 1;
        }
        i
    };
    i = skip(i);
    while i < b.len() {
        if b[i] != b';' {
            return None;
        }
        i = skip(i + 1);
        let ns = i;
        while i < b.len() && is_token_byte(b[i]) {
            i += 1;
        }
        if i == ns {
            return None;
        }
        let name = &raw[ns..i];
        i = skip(i);
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i = skip(i + 1);
            let vs = i;
            if i < b.len() && b[i] == b'"' {
                i += quoted_string_end(&b[i..])?;
            } else {
                while i < b.len() && GEN_VALUE[b[i] as usize] {
                    i += 1;
                }
                if i == vs {
                    return None;
                }
            }
            value = Some(&raw[vs..i]);
            i = skip(i);
        }
        if found.is_none() && name.eq_ignore_ascii_case(want) {
            found = Some(value.unwrap_or(""));
        }
    }
    Some(found)
}

pub(crate) fn sip(rest: &str, secure: bool) -> Result<SipUri<'_>, UriError> {
    let b = rest.as_bytes();
    let (user, password, hp) = match b.iter().position(|&c| c == b'@') {
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
            if !(escapes_valid(user) && password.is_none_or(escapes_valid)) {
                return Err(UriError::User);
            }
            (Some(user), password, at + 1)
        }
        None => (None, None, 0),
    };
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
    let host = host(host_raw)?;
    let port = if b.get(i) == Some(&b':') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &rest[start..i];
        if digits.is_empty() || digits.len() > 5 {
            return Err(UriError::Port);
        }
        Some(digits.parse::<u16>().map_err(|_| UriError::Port)?)
    } else {
        None
    };
    let after = &rest[i..];
    if !after.is_empty() && !after.starts_with([';', '?']) {
        return Err(UriError::Host);
    }
    let (params_raw, headers) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    if !uri_params(params_raw) {
        return Err(UriError::Param);
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
        params: Params::new(params_raw),
        headers,
    })
}

/// The old name-addr logic: find `>` first, then parse what is inside.
/// Returns (display name, URI text, bracketed, parameters, tag).
#[allow(clippy::type_complexity)]
pub(crate) fn name_addr(value: &str) -> Option<(Option<&str>, &str, bool, &str, Option<&str>)> {
    use crate::text::{trim_lws, trim_lws_start};
    let v = trim_lws(value);
    let b = v.as_bytes();
    let (display_name, after_display) = if b.first() == Some(&b'"') {
        let end = quoted_string_end(b)?;
        (Some(&v[..end]), trim_lws_start(&v[end..]))
    } else {
        match v.find('<') {
            Some(lt) => {
                let d = trim_lws(&v[..lt]);
                if !d.bytes().all(|c| is_token_byte(c) || is_lws(c)) {
                    return None;
                }
                ((!d.is_empty()).then_some(d), &v[lt..])
            }
            None => (None, v),
        }
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let gt = inner.find('>')?;
        let uri_raw = trim_lws(&inner[..gt]);
        crate::Uri::parse(uri_raw).ok()?;
        let rest = trim_lws_start(&inner[gt + 1..]);
        if !rest.is_empty() && !rest.starts_with(';') {
            return None;
        }
        let tag = generic_params(rest, "tag")?;
        return Some((display_name, uri_raw, true, rest, tag));
    }
    if display_name.is_some() {
        return None;
    }
    let end = v.find(';').unwrap_or(v.len());
    let uri_raw = trim_lws(&v[..end]);
    if uri_raw.contains(['?', ',']) {
        return None;
    }
    crate::Uri::parse(uri_raw).ok()?;
    let tag = generic_params(&v[end..], "tag")?;
    Some((None, uri_raw, false, &v[end..], tag))
}
