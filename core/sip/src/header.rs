//! Header fields: names (RFC 3261 §7.3, compact forms §7.3.3) and the
//! in-place list of a message's headers.

use std::fmt;

use crate::text::split_commas;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Known names are recognised case-insensitively
        /// and in their compact forms; any other name is kept as written.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName<'a> {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// An extension header, as written.
            Other(&'a str),
        }

        impl<'a> HeaderName<'a> {
            /// The canonical spelling of the name.
            pub fn as_str(&self) -> &'a str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Recognises a header name (case-insensitive; compact forms too).
            pub fn parse(name: &'a str) -> HeaderName<'a> {
                if let Some(h) = common(name) {
                    return h;
                }
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other(name);
                }
                $(
                    if name.len() == $canon.len() && name.eq_ignore_ascii_case($canon) {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name)
            }

            /// The compact form (RFC 3261 §7.3.3), when the name has one.
            pub fn compact(&self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact as char), )? )*
                    _ => None,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    Contact => "Contact", b'm';
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    Allow => "Allow";
    Supported => "Supported", b'k';
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    UserAgent => "User-Agent";
    Server => "Server";
    Subject => "Subject", b's';
    ContentEncoding => "Content-Encoding", b'e';
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    SessionExpires => "Session-Expires", b'x';
    MinSe => "Min-SE";
    Identity => "Identity", b'y';
    AcceptContact => "Accept-Contact", b'a';
    RejectContact => "Reject-Contact", b'j';
    RequestDisposition => "Request-Disposition", b'd';
    IdentityInfo => "Identity-Info", b'n';
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Reason => "Reason";
    Date => "Date";
    Timestamp => "Timestamp";
    MinExpires => "Min-Expires";
    RSeq => "RSeq";
    RAck => "RAck";
    Privacy => "Privacy";
    PAssertedIdentity => "P-Asserted-Identity";
    ContentDisposition => "Content-Disposition";
}

/// The headers of nearly every message, found by length and first letter
/// before the general table is searched.
#[inline]
fn common(name: &str) -> Option<HeaderName<'static>> {
    let b = name.as_bytes();
    if !(2..=16).contains(&b.len()) {
        return None;
    }
    let mut w = [0u8; 16];
    w[..b.len()].copy_from_slice(b);
    common_word(lower_word(u128::from_le_bytes(w), b.len()), b.len())
}

/// The first `len` bytes of `w`, letters lower-cased. Header names are
/// tokens: OR-ing 0x20 lower-cases their letters and maps no other token
/// byte onto a letter or `-`.
fn lower_word(w: u128, len: usize) -> u128 {
    let mask = if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * len)) - 1
    };
    (w | word(&[0x20; 16])) & mask
}

/// The common long names, from a lower-cased word holding `len` bytes.
fn common_word(lower: u128, len: usize) -> Option<HeaderName<'static>> {
    macro_rules! pick {
        ($($name:literal => $h:ident),* $(,)?) => {{
            $( if lower == const { word($name) } { return Some(HeaderName::$h); } )*
        }};
    }
    match len {
        2 => pick!(b"to" => To),
        3 => pick!(b"via" => Via),
        4 => pick!(b"from" => From, b"cseq" => CSeq),
        5 => pick!(b"route" => Route, b"allow" => Allow),
        7 => {
            pick!(b"call-id" => CallId, b"contact" => Contact, b"expires" => Expires, b"require" => Require)
        }
        9 => pick!(b"supported" => Supported),
        10 => pick!(b"user-agent" => UserAgent),
        12 => {
            pick!(b"max-forwards" => MaxForwards, b"content-type" => ContentType, b"record-route" => RecordRoute)
        }
        14 => pick!(b"content-length" => ContentLength),
        _ => {}
    }
    None
}

/// `s` as a little-endian word, as [`HeaderName::known`] reads a line.
const fn word(s: &[u8]) -> u128 {
    let mut w = 0u128;
    let mut i = s.len();
    while i > 0 {
        i -= 1;
        w = w << 8 | s[i] as u128;
    }
    w
}

impl HeaderName<'static> {
    /// Recognises the common header names from the first sixteen bytes of a
    /// header line (little-endian): the name and the offset of its colon,
    /// when the line starts with one of them immediately followed by `:`.
    /// `None` sends the caller to the byte-by-byte path, which handles
    /// every other name, white space before the colon and malformed lines.
    #[inline]
    pub(crate) fn known(w: u128) -> Option<(HeaderName<'static>, usize)> {
        let len = crate::text::first_colon(w)?;
        if len == 0 {
            return None;
        }
        let lower = lower_word(w, len);
        if len == 1 {
            let h = match lower as u8 {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'k' => HeaderName::Supported,
                _ => return None,
            };
            return Some((h, 1));
        }
        common_word(lower, len).map(|h| (h, len))
    }
}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HeaderName<'_> {
    /// `true` for header names whose value may be a comma-separated list
    /// (RFC 3261 §7.3.1); these may also appear on several lines.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::ContentEncoding
                | HeaderName::AllowEvents
                | HeaderName::Warning
                | HeaderName::Reason
                | HeaderName::PAssertedIdentity
        )
    }

    /// Compares names the way RFC 3261 does: case-insensitively, with
    /// compact forms equal to their long forms.
    pub fn matches(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.as_str() == b.as_str() && !matches!(a, HeaderName::Other(_)),
        }
    }
}

/// One header field line (with any folded continuation lines), in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name, recognised.
    pub name: HeaderName<'a>,
    /// The value, with surrounding white space removed; folds inside it are
    /// kept as written (see [`crate::unfold`]).
    pub value: &'a str,
}

impl<'a> Header<'a> {
    /// The comma-separated items of a list header, trimmed. For other
    /// headers, one item: the whole value.
    pub fn items(&self) -> impl Iterator<Item = &'a str> + 'a {
        let list = self.name.is_list();
        let value = self.value;
        let mut whole = Some(value);
        let mut split = split_commas(value);
        std::iter::from_fn(move || if list { split.next() } else { whole.take() })
    }
}

/// The headers of one message, in the order they arrived.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    list: Vec<Header<'a>>,
}

impl<'a> Headers<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Headers {
            list: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, h: Header<'a>) {
        self.list.push(h);
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// `true` when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All header lines in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header<'a>> {
        self.list.iter()
    }

    /// The first line with this name.
    pub fn get(&self, name: HeaderName<'_>) -> Option<&Header<'a>> {
        self.list.iter().find(|h| h.name.matches(&name))
    }

    /// The value of the first line with this name.
    pub fn value(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.get(name).map(|h| h.value)
    }

    /// Every line with this name.
    pub fn all<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'s Header<'a>> + 's {
        self.list.iter().filter(move |h| h.name.matches(&name))
    }

    /// Every comma-separated item of every line with this name, in order.
    pub fn items<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.all(name).flat_map(|h| h.items())
    }
}

impl<'s, 'a> IntoIterator for &'s Headers<'a> {
    type Item = &'s Header<'a>;
    type IntoIter = std::slice::Iter<'s, Header<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_by_word() {
        let known = |line: &[u8]| {
            let mut w = [0u8; 16];
            w[..line.len()].copy_from_slice(line);
            HeaderName::known(u128::from_le_bytes(w))
        };
        assert_eq!(known(b"Via: SIP/2.0/UDP"), Some((HeaderName::Via, 3)));
        assert_eq!(
            known(b"cOnTeNt-LeNgTh:0"),
            Some((HeaderName::ContentLength, 14))
        );
        assert_eq!(known(b"v:"), Some((HeaderName::Via, 1)));
        assert_eq!(known(b"To :"), None);
        assert_eq!(known(b"X-Via: 1"), None);
        assert_eq!(known(b"Vi\xe1: 1"), None);
        assert_eq!(known(b":"), None);
        assert_eq!(known(b"Content-Length-X"), None);
    }

    #[test]
    fn names() {
        assert_eq!(HeaderName::parse("cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("L"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::parse("C%6Fntact"),
            HeaderName::Other("C%6Fntact")
        );
        assert_eq!(HeaderName::Via.compact(), Some('v'));
        assert!(HeaderName::Other("X-a").matches(&HeaderName::Other("x-A")));
        for c in "ifTvlmskceoruxy".chars() {
            let s = c.to_string();
            assert!(
                !matches!(HeaderName::parse(&s), HeaderName::Other(_)),
                "{c}"
            );
        }
    }
}
