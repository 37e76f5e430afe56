//! Digest authentication for SIP (RFC 3261 §22.4 with RFC 7616's
//! algorithms): MD5 and SHA-256 (and their `-sess` forms), `qop=auth`,
//! challenges and credentials as header values, and a server-side
//! [`Authenticator`] with stateless, expiring nonces.
//!
//! Nonces are `hex(issued_at) || hex(HMAC-SHA-256(secret, issued_at || realm))`:
//! the server keeps no table, yet forged nonces are refused and old ones are
//! reported stale so the client retries with a fresh challenge (`stale=true`).
//! Time is an input (seconds since the Unix epoch), as everywhere in this crate.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::text::{split_commas, trim_lws, unquote};

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617; the default when none is named).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 7616).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive).
    pub fn parse(s: &str) -> Option<Algorithm> {
        [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, a)| a)
    }

    /// The name as written in headers.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(&self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex digest of the `:`-joined parts.
    fn h(&self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run::<Sha256>(parts),
        }
    }
}

/// Writes `v` as a quoted string, escaping `"` and `\\` (RFC 3261 §25.1).
fn q(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        if c != '\r' && c != '\n' {
            s.push(c);
        }
    }
    s.push('"');
    s
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a challenge or credentials could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not Digest (RFC 4475 §3.3.7): answer with a new challenge.
    #[error("authentication scheme is not Digest")]
    UnsupportedScheme,
    /// A required parameter is missing.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// An algorithm this implementation does not know.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// A qop other than `auth`.
    #[error("unsupported qop")]
    UnsupportedQop,
    /// Parameters that do not parse.
    #[error("malformed parameters")]
    Malformed,
}

/// Why credentials were refused by [`Authenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The nonce was ours but has expired: challenge again with `stale=true`.
    #[error("nonce expired")]
    Stale,
    /// The nonce was not issued by this server (or for another realm).
    #[error("nonce not issued here")]
    BadNonce,
    /// The realm differs from the one challenged.
    #[error("wrong realm")]
    WrongRealm,
    /// The digest response does not match: wrong password or tampering.
    #[error("response does not match")]
    BadResponse,
    /// The credentials do not parse.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// Splits `Digest a=b, c="d"` into its parameters.
fn auth_params(value: &str) -> Result<Vec<(&str, &str)>, DigestError> {
    let v = trim_lws(value);
    let sp = v
        .find([' ', '\t', '\r', '\n'])
        .ok_or(DigestError::Malformed)?;
    if !v[..sp].eq_ignore_ascii_case("Digest") {
        return Err(DigestError::UnsupportedScheme);
    }
    let mut out = Vec::new();
    for item in split_commas(&v[sp..]) {
        if item.is_empty() {
            continue;
        }
        let eq = item.find('=').ok_or(DigestError::Malformed)?;
        let name = trim_lws(&item[..eq]);
        let val = trim_lws(&item[eq + 1..]);
        let well_formed = if val.starts_with('"') {
            // A quoted value: closed, and no line breaks inside.
            val.len() >= 2
                && crate::text::quoted_string_end(val.as_bytes()) == Some(val.len())
                && !val.contains(['\r', '\n'])
        } else {
            // token / token68 (nonces and responses are often base64).
            !val.is_empty()
                && val
                    .bytes()
                    .all(|b| crate::text::is_token_byte(b) || matches!(b, b'/' | b'=' | b':'))
        };
        if name.is_empty() || !well_formed {
            return Err(DigestError::Malformed);
        }
        out.push((name, val));
    }
    Ok(out)
}

fn param<'a>(params: &[(&'a str, &'a str)], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| unquote(v))
}

/// A WWW-Authenticate / Proxy-Authenticate challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// `true` when `qop="auth"` is offered.
    pub qop_auth: bool,
    /// `true` when the previous nonce was merely stale.
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = auth_params(value)?;
        let algorithm = match param(&p, "algorithm") {
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
            None => Algorithm::Md5,
        };
        let qop_auth = match param(&p, "qop") {
            Some(q) => {
                let any_auth = q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth"));
                if !any_auth {
                    return Err(DigestError::UnsupportedQop);
                }
                true
            }
            None => false,
        };
        Ok(Challenge {
            realm: param(&p, "realm")
                .ok_or(DigestError::Missing("realm"))?
                .into_owned(),
            nonce: param(&p, "nonce")
                .ok_or(DigestError::Missing("nonce"))?
                .into_owned(),
            opaque: param(&p, "opaque").map(|o| o.into_owned()),
            algorithm,
            qop_auth,
            stale: param(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            q(&self.realm),
            q(&self.nonce),
            self.algorithm.as_str()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque={}", q(o));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Answers the challenge (client side). `cnonce` must be fresh random
    /// text and `nc` counts uses of this nonce, from 1.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> Credentials {
        let ha1 = ha1(self.algorithm, username, &self.realm, password);
        let qop = self
            .qop_auth
            .then(|| (format!("{nc:08x}"), cnonce.to_string()));
        let response = compute(
            self.algorithm,
            &ha1,
            &self.nonce,
            method,
            uri,
            qop.as_ref().map(|(n, c)| (n.as_str(), c.as_str())),
        );
        Credentials {
            username: username.to_string(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_string(),
            response,
            algorithm: self.algorithm,
            cnonce: qop.as_ref().map(|(_, c)| c.clone()),
            nc: qop.as_ref().map(|(n, _)| n.clone()),
            qop_auth: self.qop_auth,
            opaque: self.opaque.clone(),
        }
    }
}

/// An Authorization / Proxy-Authorization value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm.
    pub realm: String,
    /// The server nonce being answered.
    pub nonce: String,
    /// The digest-uri.
    pub uri: String,
    /// The digest response (hex).
    pub response: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Nonce count, 8 hex digits (with qop).
    pub nc: Option<String>,
    /// `true` for `qop=auth`.
    pub qop_auth: bool,
    /// Opaque value echoed back.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = auth_params(value)?;
        let get = |n: &'static str| {
            param(&p, n)
                .map(|v| v.into_owned())
                .ok_or(DigestError::Missing(n))
        };
        let algorithm = match param(&p, "algorithm") {
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
            None => Algorithm::Md5,
        };
        let qop_auth = match param(&p, "qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => true,
            Some(_) => return Err(DigestError::UnsupportedQop),
            None => false,
        };
        let response = get("response")?;
        if response.is_empty() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::Malformed);
        }
        let creds = Credentials {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: response.to_ascii_lowercase(),
            algorithm,
            // cnonce and nc only mean something with qop (RFC 7616 §3.4);
            // without it they are dropped, so the value serializes back
            // to what was understood.
            cnonce: param(&p, "cnonce")
                .filter(|_| qop_auth)
                .map(|v| v.into_owned()),
            nc: param(&p, "nc").filter(|_| qop_auth).map(|v| v.into_owned()),
            qop_auth,
            opaque: param(&p, "opaque").map(|v| v.into_owned()),
        };
        if qop_auth && (creds.cnonce.is_none() || creds.nc.is_none()) {
            return Err(DigestError::Missing("cnonce/nc"));
        }
        // nc-value = 8LHEX (RFC 7616 §3.4).
        if creds
            .nc
            .as_ref()
            .is_some_and(|n| n.len() != 8 || !n.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(DigestError::Malformed);
        }
        Ok(creds)
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\", algorithm={}",
            q(&self.username),
            q(&self.realm),
            q(&self.nonce),
            q(&self.uri),
            self.response,
            self.algorithm.as_str()
        );
        if let (true, Some(c), Some(n)) = (self.qop_auth, &self.cnonce, &self.nc) {
            let _ = write!(s, ", qop=auth, cnonce={}, nc={n}", q(c));
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque={}", q(o));
        }
        s
    }
}

/// `H(username:realm:password)`, what a registrar may store instead of passwords.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.h(&[username, realm, password])
}

/// The digest response for `ha1` (already `H(user:realm:pass)`);
/// `qop` is `(nc, cnonce)` for `qop=auth`, `None` for RFC 2069 style.
pub fn compute(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = match (algorithm.is_sess(), qop) {
        (true, Some((_, cnonce))) => algorithm.h(&[ha1, nonce, cnonce]),
        _ => ha1.to_string(),
    };
    let ha2 = algorithm.h(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => algorithm.h(&[&ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => algorithm.h(&[&ha1, nonce, &ha2]),
    }
}

/// Issues challenges and verifies credentials with stateless nonces.
#[derive(Clone)]
pub struct Authenticator {
    secret: Vec<u8>,
    nonce_lifetime_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Authenticator")
            .field("nonce_lifetime_secs", &self.nonce_lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `secret` keys the nonce MAC (at least 16 random bytes);
    /// nonces expire after `nonce_lifetime_secs`.
    pub fn new(secret: &[u8], nonce_lifetime_secs: u64) -> Self {
        Authenticator {
            secret: secret.to_vec(),
            nonce_lifetime_secs,
        }
    }

    fn mac(&self, issued: u64, realm: &str) -> String {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes any key length"),
        };
        m.update(&issued.to_be_bytes());
        m.update(realm.as_bytes());
        hex(&m.finalize().into_bytes())
    }

    /// A fresh challenge for `realm`, issued at `now_unix`.
    pub fn challenge(
        &self,
        now_unix: u64,
        realm: &str,
        algorithm: Algorithm,
        stale: bool,
    ) -> Challenge {
        Challenge {
            realm: realm.to_string(),
            nonce: format!("{now_unix:016x}{}", self.mac(now_unix, realm)),
            opaque: None,
            algorithm,
            qop_auth: true,
            stale,
        }
    }

    /// Verifies credentials for a request with `method` against the user's
    /// stored `ha1` ([`ha1`]). Requires `qop=auth`.
    pub fn verify(
        &self,
        now_unix: u64,
        realm: &str,
        creds: &Credentials,
        method: &str,
        ha1: &str,
    ) -> Result<(), AuthError> {
        if creds.realm != realm {
            return Err(AuthError::WrongRealm);
        }
        let n = &creds.nonce;
        if n.len() != 16 + 64 || !n.is_ascii() {
            return Err(AuthError::BadNonce);
        }
        let issued = u64::from_str_radix(&n[..16], 16).map_err(|_| AuthError::BadNonce)?;
        if !constant_time_eq(&n.as_bytes()[16..], self.mac(issued, realm).as_bytes()) {
            return Err(AuthError::BadNonce);
        }
        if !creds.qop_auth {
            return Err(DigestError::Missing("qop").into());
        }
        let qop = match (&creds.nc, &creds.cnonce) {
            (Some(nc), Some(c)) => (nc.as_str(), c.as_str()),
            _ => return Err(DigestError::Missing("cnonce/nc").into()),
        };
        let expected = compute(creds.algorithm, ha1, n, method, &creds.uri, Some(qop));
        if !constant_time_eq(expected.as_bytes(), creds.response.as_bytes()) {
            return Err(AuthError::BadResponse);
        }
        // Checked last so that a stale nonce with a wrong password is still
        // reported as a bad password only once the client re-challenges.
        if now_unix.saturating_sub(issued) > self.nonce_lifetime_secs || issued > now_unix + 60 {
            return Err(AuthError::Stale);
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = compute(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_examples() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            let r = compute(
                alg,
                &ha1,
                nonce,
                "GET",
                "/dir/index.html",
                Some(("00000001", cnonce)),
            );
            assert_eq!(r, want, "{alg:?}");
        }
    }

    #[test]
    fn challenge_answer_verify() {
        let auth = Authenticator::new(b"0123456789abcdef0123456789abcdef", 300);
        for alg in [
            Algorithm::Md5,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Md5Sess,
        ] {
            let ch = auth.challenge(1_000, "sentiric", alg, false);
            let parsed = Challenge::parse(&ch.to_header_value()).unwrap();
            assert_eq!(parsed, ch);
            let creds = parsed.answer("al\"ice", "s3cret", "REGISTER", "sip:127.0.0.1", "abc", 1);
            let creds = Credentials::parse(&creds.to_header_value()).unwrap();
            assert_eq!(creds.username, "al\"ice");
            let stored = ha1(alg, "al\"ice", "sentiric", "s3cret");
            assert_eq!(
                auth.verify(1_010, "sentiric", &creds, "REGISTER", &stored),
                Ok(())
            );
            // Wrong password, wrong method, expired nonce, forged nonce, other realm.
            let wrong = ha1(alg, "al\"ice", "sentiric", "guess");
            assert_eq!(
                auth.verify(1_010, "sentiric", &creds, "REGISTER", &wrong),
                Err(AuthError::BadResponse)
            );
            assert_eq!(
                auth.verify(1_010, "sentiric", &creds, "INVITE", &stored),
                Err(AuthError::BadResponse)
            );
            assert_eq!(
                auth.verify(1_301, "sentiric", &creds, "REGISTER", &stored),
                Err(AuthError::Stale)
            );
            let mut forged = creds.clone();
            forged.nonce = format!("{:016x}{}", 1_000u64, "0".repeat(64));
            assert_eq!(
                auth.verify(1_010, "sentiric", &forged, "REGISTER", &stored),
                Err(AuthError::BadNonce)
            );
            assert_eq!(
                auth.verify(1_010, "other", &creds, "REGISTER", &stored),
                Err(AuthError::WrongRealm)
            );
        }
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(DigestError::UnsupportedScheme)
        );
        assert!(Credentials::parse("Digest username=\"a\"").is_err());
        assert!(
            Challenge::parse("Digest realm=\"a\", nonce=\"n\", algorithm=SHA-512-256").is_err()
        );
        assert!(Challenge::parse("Digest realm=\"a\", nonce=\"n\", qop=\"auth-int\"").is_err());
        let c =
            Challenge::parse("Digest realm=\"a, b\", nonce=\"n\", qop=\"auth,auth-int\"").unwrap();
        assert_eq!(c.realm, "a, b");
        assert!(c.qop_auth);
        assert!(Credentials::parse("Digest").is_err());
        assert!(Credentials::parse("Digest username=\"unterminated").is_err());
    }
}
