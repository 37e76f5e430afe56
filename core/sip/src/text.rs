//! Character classes and lexical helpers of the RFC 3261 §25.1 grammar.
//!
//! Header values handed to these helpers may still contain obsolete line
//! folding (`CRLF` followed by `SP`/`HTAB`): the header scanner only cuts a
//! value at a line end that is *not* followed by whitespace, so every CR or LF
//! left inside a value is part of a fold and counts as linear white space.

/// `true` for the bytes of RFC 3261 `token`.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
}

pub(crate) static TOKEN: [bool; 256] = token_table();

/// `true` when `s` is a non-empty RFC 3261 `token`.
#[inline]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// `true` for linear white space, including the CR and LF of a fold.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space (folds included) from both ends.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    let mut j = b.len();
    while i < j && is_lws(b[i]) {
        i += 1;
    }
    while j > i && is_lws(b[j - 1]) {
        j -= 1;
    }
    // Only ASCII bytes were skipped, so both ends are char boundaries.
    &s[i..j]
}

/// Trims linear white space from the start.
#[inline]
pub(crate) fn trim_lws_start(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    &s[i..]
}

/// Finds the empty line that ends a header section (`CRLF CRLF`); returns
/// the offset of its first CR. The searcher is built once per process.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    FINDER.find(buf)
}

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of each byte of `x` that is zero, and no other bit.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The offsets of the `\n` bytes of a buffer, in order, found sixteen
/// bytes per step with word arithmetic (SWAR). A header section is a few
/// hundred bytes of 20–80 byte lines: a SIMD search restarted per line
/// would pay its set-up each time.
pub(crate) struct LineFeeds<'a> {
    b: &'a [u8],
    base: usize,
    /// Bit 7 of each byte of the current word that is a line feed.
    mask: u128,
}

impl<'a> LineFeeds<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        LineFeeds {
            b,
            base: 0,
            mask: lf_mask(b, 0),
        }
    }
}

impl Iterator for LineFeeds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += 16;
            if self.base >= self.b.len() {
                return None;
            }
            self.mask = lf_mask(self.b, self.base);
        }
        let at = self.base + (self.mask.trailing_zeros() / 8) as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Bit 7 of each byte that is `\n` among the (up to) sixteen at `b[at..]`.
#[inline(always)]
fn lf_mask(b: &[u8], at: usize) -> u128 {
    let w = match b.get(at..at + 16) {
        Some(w) => u128::from_le_bytes(w.try_into().unwrap_or([0; 16])),
        None => {
            // The tail: pad with bytes that are not line feeds.
            let mut pad = [0u8; 16];
            let tail = &b[at.min(b.len())..];
            pad[..tail.len()].copy_from_slice(tail);
            u128::from_le_bytes(pad)
        }
    };
    let x = w ^ (LO128 * u128::from(b'\n'));
    !(((x & LOW7_128).wrapping_add(LOW7_128)) | x | LOW7_128)
}

const LO128: u128 = (LO as u128) << 64 | LO as u128;
const LOW7_128: u128 = (LOW7 as u128) << 64 | LOW7 as u128;

/// Offset of the first `:` among the first 16 bytes that `w` holds
/// (little-endian), if any.
#[inline(always)]
pub(crate) fn first_colon(w: u128) -> Option<usize> {
    let colons = u128::from(LO) << 64 | u128::from(LO);
    let x = w ^ (colons * u128::from(b':'));
    let lo = zero_bytes(x as u64);
    if lo != 0 {
        return Some((lo.trailing_zeros() / 8) as usize);
    }
    let hi = zero_bytes((x >> 64) as u64);
    (hi != 0).then(|| 8 + (hi.trailing_zeros() / 8) as usize)
}

/// Offset of the first byte at or after `i` whose class in `table` lacks
/// `bit`; the classes of the bytes crossed are OR-ed into `seen`. Four
/// bytes per step: one branch per step instead of one per byte.
#[inline(always)]
pub(crate) fn span_class(
    b: &[u8],
    mut i: usize,
    table: &[u8; 256],
    bit: u8,
    seen: &mut u8,
) -> usize {
    while let Some(w) = b.get(i..i + 4) {
        let k = [
            table[w[0] as usize],
            table[w[1] as usize],
            table[w[2] as usize],
            table[w[3] as usize],
        ];
        if k[0] & k[1] & k[2] & k[3] & bit == 0 {
            break;
        }
        *seen |= k[0] | k[1] | k[2] | k[3];
        i += 4;
    }
    while let Some(&c) = b.get(i) {
        let k = table[c as usize];
        if k & bit == 0 {
            break;
        }
        *seen |= k;
        i += 1;
    }
    i
}

/// Offset of the first byte at or after `i` that `table` does not accept;
/// four bytes per step.
#[inline(always)]
pub(crate) fn span(b: &[u8], mut i: usize, table: &[bool; 256]) -> usize {
    while let Some(w) = b.get(i..i + 4) {
        if !(table[w[0] as usize]
            & table[w[1] as usize]
            & table[w[2] as usize]
            & table[w[3] as usize])
        {
            break;
        }
        i += 4;
    }
    while i < b.len() && table[b[i] as usize] {
        i += 1;
    }
    i
}

/// Position of the first `c` in `s`: a plain loop, faster than a SIMD
/// search on the short fields of a header value.
#[inline]
pub(crate) fn find(s: &str, c: u8) -> Option<usize> {
    s.as_bytes().iter().position(|&x| x == c)
}

/// A byte class as a lookup table: alphanumerics plus `extra`.
pub(crate) const fn class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `unreserved` and `%` of RFC 3261 §25.1, the base of the URI classes.
macro_rules! unreserved {
    ($($extra:literal)*) => {
        crate::text::class(concat!("-_.!~*'()%", $($extra),*).as_bytes())
    };
}
pub(crate) use unreserved;

/// Finds the end of a quoted string that starts at `s[0] == '"'`; returns the
/// index just past the closing quote, or `None` when it is unterminated.
pub(crate) fn quoted_string_end(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s.first(), Some(&b'"'));
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits a header value at top-level commas: commas inside a quoted string
/// or inside `<...>` do not split. Each item is trimmed of LWS.
///
/// An unbalanced quote or angle bracket yields one final item holding the
/// rest, which the typed parser for that header then rejects.
pub(crate) fn split_commas(value: &str) -> CommaSplit<'_> {
    CommaSplit { rest: Some(value) }
}

/// Iterator returned by [`split_commas`].
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let bytes = s.as_bytes();
        if memchr::memchr(b',', bytes).is_none() {
            self.rest = None;
            return Some(trim_lws(s));
        }
        let mut i = 0;
        let mut in_angle = false;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => match quoted_string_end(&bytes[i..]) {
                    Some(n) => {
                        i += n;
                        continue;
                    }
                    None => break,
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    self.rest = Some(&s[i + 1..]);
                    return Some(trim_lws(&s[..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(trim_lws(s))
    }
}

/// Value of one hexadecimal digit.
#[inline]
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks that every `%` in `s` starts a valid `%HH` escape.
pub(crate) fn escapes_valid(s: &str) -> bool {
    escapes_valid_bytes(s.as_bytes())
}

/// [`escapes_valid`] on bytes.
pub(crate) fn escapes_valid_bytes(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'%', &b[i..]) {
        let p = i + off;
        if p + 2 >= b.len() {
            return false;
        }
        if hex_val(b[p + 1]).is_none() || hex_val(b[p + 2]).is_none() {
            return false;
        }
        i = p + 3;
    }
    true
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2 / RFC 3986 §2.1). Returns the
/// decoded bytes; a malformed escape is kept literally. Borrows when there is
/// nothing to decode.
pub fn unescape(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if memchr::memchr(b'%', b).is_none() {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Removes the quotes and `\` escapes of a quoted string; borrows when the
/// string has no quoted pairs. `s` may or may not carry the surrounding quotes.
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(s);
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Replaces each fold (CRLF + whitespace run) and whitespace run inside a
/// header value by a single space, as RFC 3261 §7.3.1 allows. Borrows when
/// the value has no CR or LF.
pub fn unfold(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| b == b'\r' || b == b'\n') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut in_ws = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if !in_ws {
                out.push(' ');
            }
            in_ws = true;
        } else {
            out.push(c);
            in_ws = false;
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_angles() {
        let v: Vec<_> =
            split_commas(r#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z@w>, "q\"," <sip:u>"#).collect();
        assert_eq!(
            v,
            vec![
                r#""a, b" <sip:x@y;p=1,2>;q=1"#,
                "<sip:z@w>",
                r#""q\"," <sip:u>"#
            ]
        );
    }

    #[test]
    fn swar_scans() {
        let text = b"ab\ncd\n\n\x0b\nefghijklmnopq\n\n\n0123456789\n";
        for len in 0..text.len() {
            let t = &text[..len];
            let want: Vec<usize> = (0..t.len()).filter(|&i| t[i] == b'\n').collect();
            assert_eq!(LineFeeds::new(t).collect::<Vec<_>>(), want);
        }

        let w = |s: &[u8; 16]| u128::from_le_bytes(*s);
        assert_eq!(first_colon(w(b"Via: SIP/2.0/UDP")), Some(3));
        assert_eq!(first_colon(w(b"Content-Length:1")), Some(14));
        assert_eq!(first_colon(w(b"Content-Type-ab:")), Some(15));
        assert_eq!(first_colon(w(b"no colon here...")), None);
        assert_eq!(first_colon(w(b":\x00\x3b\x3a::::::::::::")), Some(0));
    }

    #[test]
    fn escapes() {
        assert!(escapes_valid("a%20b%2f"));
        assert!(!escapes_valid("a%2"));
        assert!(!escapes_valid("a%"));
        assert!(!escapes_valid("%zz"));
        assert_eq!(&*unescape("%75se%72"), b"user");
        assert_eq!(&*unescape("null-%00-null"), b"null-\0-null");
        assert_eq!(&*unescape("100%"), b"100%");
    }

    #[test]
    fn unquote_and_unfold() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(unfold("a\r\n  b\tc"), "a b c");
    }
}
