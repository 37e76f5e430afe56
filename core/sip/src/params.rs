//! `;name=value` parameter lists of URIs (RFC 3261 §19.1.1) and of header
//! fields (`generic-param`, RFC 3261 §25.1), viewed in place.

use crate::text::{escapes_valid, is_token, quoted_string_end, trim_lws};

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

    /// Checks header-parameter syntax: `token [= (token / host / quoted-string)]`.
    pub(crate) fn validate_generic(&self) -> Result<(), &'static str> {
        for p in self.iter() {
            if !is_token(p.name) {
                return Err("malformed parameter name");
            }
            if let Some(v) = p.value {
                if v.starts_with('"') {
                    if quoted_string_end(v.as_bytes()) != Some(v.len()) {
                        return Err("unterminated quoted parameter value");
                    }
                } else if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| crate::text::is_token_byte(b) || matches!(b, b'[' | b']' | b':'))
                {
                    return Err("malformed parameter value");
                }
            }
        }
        Ok(())
    }

    /// Checks URI-parameter syntax (`paramchar`, RFC 3261 §25.1).
    pub(crate) fn validate_uri(&self) -> Result<(), &'static str> {
        fn paramchar(s: &str) -> bool {
            !s.is_empty()
                && escapes_valid(s)
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'-' | b'_'
                                | b'.'
                                | b'!'
                                | b'~'
                                | b'*'
                                | b'\''
                                | b'('
                                | b')'
                                | b'%'
                                | b'['
                                | b']'
                                | b'/'
                                | b':'
                                | b'&'
                                | b'+'
                                | b'$'
                        )
                })
        }
        for p in self.iter() {
            if !paramchar(p.name) {
                return Err("malformed URI parameter");
            }
            if let Some(v) = p.value {
                if !paramchar(v) {
                    return Err("malformed URI parameter value");
                }
            }
        }
        Ok(())
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
        assert!(p.validate_generic().is_ok());
    }

    #[test]
    fn empty_names_are_rejected() {
        assert!(Params::new(";;").validate_generic().is_err());
        assert!(Params::new(";a=").validate_generic().is_err());
        assert!(Params::new("").validate_generic().is_ok());
        assert_eq!(Params::new("").iter().count(), 0);
    }
}
