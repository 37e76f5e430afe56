//! `;name=value` parameter lists of URIs (RFC 3261 §19.1.1) and of header
//! fields (`generic-param`, RFC 3261 §25.1), viewed in place.

use crate::text::{is_lws, quoted_string_end, span, trim_lws, TOKEN};

/// `token` characters plus what a `host` adds (`[`, `]`, `:`).
static GEN_VALUE: [bool; 256] = crate::text::class(b"-.!%*_+`'~[]:");

/// A parameter list as it appears on the wire, starting at its first `;`
/// (or empty). Iterating never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

/// One parameter: its name and, when it has one, its value as written
/// (a quoted value keeps its quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name, as written.
    pub name: &'a str,
    /// The value, as written; `None` for a bare flag such as `lr`.
    pub value: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// Views `raw`, which is either empty or starts with `;`.
    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The list as written, including the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// `true` when the list has no parameters.
    pub fn is_empty(&self) -> bool {
        trim_lws(self.raw).is_empty()
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            rest: self.raw.strip_prefix(';').unwrap_or(self.raw),
            done: trim_lws(self.raw).is_empty(),
        }
    }

    /// The parameter named `name` (compared case-insensitively):
    /// `Some(None)` for a flag, `Some(Some(v))` for a valued one.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// `true` when a parameter named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Checks header-parameter syntax (`token [= (token / host /
    /// quoted-string)]`) and returns the value of the
    /// parameter named `want` (case-insensitive) found on the way, so that
    /// the typed header can keep it without a second scan.
    pub(crate) fn scan_generic(&self, want: &str) -> Result<Option<&'a str>, &'static str> {
        let raw = self.raw;
        let b = raw.as_bytes();
        let skip = |mut i: usize| {
            while i < b.len() && is_lws(b[i]) {
                i += 1;
            }
            i
        };
        let mut found = None;
        let mut i = skip(0);
        while i < b.len() {
            if b[i] != b';' {
                return Err("malformed parameter list");
            }
            i = skip(i + 1);
            let ns = i;
            i = span(b, i, &TOKEN);
            if i == ns {
                return Err("malformed parameter name");
            }
            let name = &raw[ns..i];
            i = skip(i);
            let mut value = None;
            if i < b.len() && b[i] == b'=' {
                i = skip(i + 1);
                let vs = i;
                if i < b.len() && b[i] == b'"' {
                    i += quoted_string_end(&b[i..]).ok_or("unterminated quoted parameter value")?;
                } else {
                    i = span(b, i, &GEN_VALUE);
                    if i == vs {
                        return Err("malformed parameter value");
                    }
                }
                value = Some(&raw[vs..i]);
                i = skip(i);
            }
            if found.is_none() && !want.is_empty() && name.eq_ignore_ascii_case(want) {
                found = Some(value.unwrap_or(""));
            }
        }
        Ok(found)
    }

    /// Checks URI-parameter syntax (`paramchar`, RFC 3261 §25.1): names and
    /// values non-empty, no white space, valid escapes.
    pub(crate) fn validate_uri(&self) -> Result<(), &'static str> {
        let b = self.raw.as_bytes();
        if b.is_empty() || crate::uri::scan_uri_params(b, 0) == Ok(b.len()) {
            Ok(())
        } else {
            Err("malformed URI parameter")
        }
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
    done: bool,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        if self.done {
            return None;
        }
        let b = self.rest.as_bytes();
        let mut i = 0;
        let mut eq = None;
        while i < b.len() {
            match b[i] {
                b'"' => match quoted_string_end(&b[i..]) {
                    Some(n) => {
                        i += n;
                        continue;
                    }
                    None => {
                        i = b.len();
                        break;
                    }
                },
                b'=' if eq.is_none() => eq = Some(i),
                b';' => break,
                _ => {}
            }
            i += 1;
        }
        let item = &self.rest[..i];
        if i < b.len() {
            self.rest = &self.rest[i + 1..];
        } else {
            self.done = true;
        }
        Some(match eq {
            Some(e) => Param {
                name: trim_lws(&item[..e]),
                value: Some(trim_lws(&item[e + 1..])),
            },
            None => Param {
                name: trim_lws(item),
                value: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_with_lws_and_quotes() {
        let p = Params::new(";  tag    = 1918181833n ; x=\"a;b\";lr");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name, "tag");
        assert_eq!(v[0].value, Some("1918181833n"));
        assert_eq!(v[1].value, Some("\"a;b\""));
        assert_eq!(p.get("LR"), Some(None));
        assert!(p.scan_generic("").is_ok());
    }

    #[test]
    fn empty_names_are_rejected() {
        assert!(Params::new(";;").scan_generic("").is_err());
        assert!(Params::new(";a=").scan_generic("").is_err());
        assert!(Params::new("").scan_generic("").is_ok());
        assert_eq!(Params::new("").iter().count(), 0);
    }
}
