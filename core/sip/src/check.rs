//! Request checks an element makes after parsing and before processing:
//! the syntax [`crate::Message::parse`] leaves for later (§8.2 → 400, see
//! [`crate::Request::validate`]), URI schemes (RFC 3261 §8.2.2.1 → 416), extensions required of it
//! (§8.2.2.3 and §16.3 → 420 with Unsupported), Max-Forwards at a proxy
//! (§16.3 → 483) and body types (§8.2.3 → 415).

use std::borrow::Cow;

use crate::error::{Disposition, ParseError};
use crate::header::HeaderName;
use crate::message::Request;
use crate::typed::Method;

/// What this element accepts.
#[derive(Debug, Clone, Copy)]
pub struct RequestPolicy<'p> {
    /// URI schemes understood in the Request-URI and To (lower case).
    pub schemes: &'p [&'p str],
    /// Option tags this element supports (RFC 3261 §19.2).
    pub extensions: &'p [&'p str],
    /// Acting as a proxy: Max-Forwards 0 is refused and Proxy-Require checked.
    pub proxy: bool,
    /// Body types understood; `None` accepts any.
    pub content_types: Option<&'p [&'p str]>,
}

impl Default for RequestPolicy<'static> {
    fn default() -> Self {
        RequestPolicy {
            schemes: &["sip", "sips", "tel"],
            // Nothing is claimed until it is implemented: 100rel, timer and
            // replaces come with the call engine.
            extensions: &[],
            proxy: false,
            content_types: None,
        }
    }
}

/// Why a well-formed request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// 400: a URI or address header is malformed; the error names it.
    #[error("{0}")]
    Malformed(ParseError),
    /// 416: a URI scheme the element does not handle.
    #[error("unsupported URI scheme {0}")]
    UnsupportedUriScheme(&'a str),
    /// 420: option tags required but not supported; send them in Unsupported.
    #[error("unsupported extensions")]
    BadExtension(Vec<&'a str>),
    /// 483: Max-Forwards reached zero at a proxy.
    #[error("too many hops")]
    TooManyHops,
    /// 415: a body type the element does not understand.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(&'a str),
}

impl Rejection<'_> {
    /// Status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Malformed(_) => 400,
            Rejection::UnsupportedUriScheme(_) => 416,
            Rejection::BadExtension(_) => 420,
            Rejection::TooManyHops => 483,
            Rejection::UnsupportedMediaType(_) => 415,
        }
    }

    /// Reason phrase; a 400's names the header at fault.
    pub fn reason(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Rejection::Malformed(e) => {
                return match e.disposition() {
                    Disposition::Respond { reason, .. } => Cow::Owned(reason),
                    _ => Cow::Borrowed("Bad Request"),
                }
            }
            Rejection::UnsupportedUriScheme(_) => "Unsupported URI Scheme",
            Rejection::BadExtension(_) => "Bad Extension",
            Rejection::TooManyHops => "Too Many Hops",
            Rejection::UnsupportedMediaType(_) => "Unsupported Media Type",
        })
    }

    /// The extra header the response must carry, if any: `Unsupported` for
    /// 420 (§8.2.2.3), `Accept` for 415 is left to the caller's policy.
    pub fn extra_header(&self) -> Option<(HeaderName<'static>, String)> {
        match self {
            Rejection::BadExtension(tags) => Some((HeaderName::Unsupported, tags.join(", "))),
            _ => None,
        }
    }
}

/// Runs the checks in the order of RFC 3261 §8.2 / §16.3, starting with
/// the syntax that parsing left for later.
pub fn check_request<'a>(
    req: &Request<'a>,
    policy: &RequestPolicy<'_>,
) -> Result<(), Rejection<'a>> {
    req.validate().map_err(Rejection::Malformed)?;
    let scheme_ok = |s: &str| policy.schemes.iter().any(|k| k.eq_ignore_ascii_case(s));
    if !scheme_ok(req.uri_scheme()) {
        return Err(Rejection::UnsupportedUriScheme(req.uri_scheme()));
    }
    if !scheme_ok(req.to().uri_scheme()) {
        return Err(Rejection::UnsupportedUriScheme(req.to().uri_scheme()));
    }
    if policy.proxy && req.max_forwards() == Some(0) && req.method != Method::Options {
        return Err(Rejection::TooManyHops);
    }
    // ACK and CANCEL never carry requirements to be refused (§8.2.2.3).
    if !matches!(req.method, Method::Ack | Method::Cancel) {
        let supported = |t: &&str| policy.extensions.iter().any(|e| e.eq_ignore_ascii_case(t));
        let mut unsupported: Vec<&'a str> = req
            .headers
            .items(HeaderName::Require)
            .filter(|t| !t.is_empty() && !supported(t))
            .collect();
        if policy.proxy {
            unsupported.extend(
                req.headers
                    .items(HeaderName::ProxyRequire)
                    .filter(|t| !t.is_empty() && !supported(t)),
            );
        }
        if !unsupported.is_empty() {
            return Err(Rejection::BadExtension(unsupported));
        }
    }
    if let (Some(types), false) = (policy.content_types, req.body.is_empty()) {
        let ct = req.headers.value(HeaderName::ContentType).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !types.iter().any(|t| t.eq_ignore_ascii_case(mime)) {
            return Err(Rejection::UnsupportedMediaType(mime));
        }
    }
    Ok(())
}
