//! A plugin's tests without a switch: [`Call`] makes the request the
//! switch would send for a call, [`Call::route`] asks a dialplan and
//! checks its decision as the switch does ([`check_decision`]). The same
//! request is what `sentiric route-test` sends a library or a sidecar.
//!
//! ```
//! use sentiric_plugin_sdk::testing::Call;
//! use sentiric_plugin_sdk::{bridge, decline, v1, Dialplan, PluginError};
//!
//! struct Germany;
//! impl Dialplan for Germany {
//!     fn route(&self, call: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError> {
//!         Ok(if call.user.starts_with("+49") {
//!             bridge(["sip:trunk@10.0.0.5"])
//!         } else {
//!             decline("not German")
//!         })
//!     }
//! }
//!
//! let d = Call::to("+4930123").from("sip:alice@10.0.0.9").route(&Germany).unwrap();
//! assert!(matches!(d.action, Some(v1::route_decision::Action::Bridge(_))));
//! ```

use crate::{check_decision, v1, Dialplan};

/// A call as the switch passes it to a dialplan, for a test.
#[derive(Debug, Clone)]
pub struct Call {
    request: v1::RouteRequest,
}

impl Call {
    /// A call to `user` (the Request-URI's user part) from
    /// `sip:caller@127.0.0.1` over UDP, now, with fresh Call-ID and trace
    /// id.
    pub fn to(user: impl Into<String>) -> Call {
        let user = user.into();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Call {
            request: v1::RouteRequest {
                call_id: format!("test-{:016x}@127.0.0.1", random()),
                trace_id: format!("{:016x}{:016x}", random(), random()),
                from_uri: "sip:caller@127.0.0.1".into(),
                to_uri: format!("sip:{user}@127.0.0.1"),
                request_uri: format!("sip:{user}@127.0.0.1"),
                from_user: "caller".into(),
                user,
                headers: Default::default(),
                source: "127.0.0.1:5060".into(),
                transport: "udp".into(),
                time_unix_us: i64::try_from(now.as_micros()).unwrap_or(i64::MAX),
            },
        }
    }

    /// From `uri` (its user part, if any, is `from_user`).
    #[must_use]
    pub fn from(mut self, uri: impl Into<String>) -> Call {
        let uri = uri.into();
        let rest = uri.split_once(':').map_or(uri.as_str(), |(_, r)| r);
        self.request.from_user = match rest.split_once('@') {
            Some((user, _)) => user.to_string(),
            None => String::new(),
        };
        self.request.from_uri = uri;
        self
    }

    /// With the INVITE's header `name: value`, as the switch passes it:
    /// the name lower case, a repeated header's values joined with `, `.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Call {
        let value = value.into();
        self.request
            .headers
            .entry(name.trim().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
        self
    }

    /// Come from `source` (`ip:port`).
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Call {
        self.request.source = source.into();
        self
    }

    /// Over `transport` (`udp`, `tcp`, `tls`).
    #[must_use]
    pub fn transport(mut self, transport: impl Into<String>) -> Call {
        self.request.transport = transport.into();
        self
    }

    /// At `time_unix_us`, microseconds since the Unix epoch.
    #[must_use]
    pub fn at(mut self, time_unix_us: i64) -> Call {
        self.request.time_unix_us = time_unix_us;
        self
    }

    /// The request.
    pub fn request(&self) -> &v1::RouteRequest {
        &self.request
    }

    /// The request, owned.
    pub fn into_request(self) -> v1::RouteRequest {
        self.request
    }

    /// `dialplan`'s decision for the call, checked as the switch checks
    /// it: its error, or the reason the switch would refuse the decision.
    pub fn route(&self, dialplan: &dyn Dialplan) -> Result<v1::RouteDecision, String> {
        let decision = dialplan.route(&self.request).map_err(|e| e.0)?;
        check_decision(&decision).map_err(|e| format!("decision refused: {e}"))?;
        Ok(decision)
    }
}

/// 64 random bits (ids for test calls, not secrets).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5e17_171c);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_the_request_the_switch_would_send() {
        let c = Call::to("+4930")
            .from("sip:alice@10.0.0.9")
            .header("Diversion", "<sip:a@10.0.0.1>")
            .header("diversion", "<sip:b@10.0.0.2>")
            .source("10.0.0.9:5062")
            .transport("tcp")
            .at(7);
        let r = c.request();
        assert_eq!((r.user.as_str(), r.from_user.as_str()), ("+4930", "alice"));
        assert_eq!(r.request_uri, "sip:+4930@127.0.0.1");
        assert_eq!(r.headers["diversion"], "<sip:a@10.0.0.1>, <sip:b@10.0.0.2>");
        assert_eq!(
            (r.source.as_str(), r.transport.as_str(), r.time_unix_us),
            ("10.0.0.9:5062", "tcp", 7)
        );
        assert_eq!(r.trace_id.len(), 32);
        assert_ne!(
            Call::to("1").request().call_id,
            Call::to("1").request().call_id
        );
        assert_eq!(Call::to("1").from("sip:10.0.0.1").request().from_user, "");
    }

    #[test]
    fn route_checks_the_decision_as_the_switch_does() {
        struct Bad;
        impl Dialplan for Bad {
            fn route(&self, r: &v1::RouteRequest) -> Result<v1::RouteDecision, crate::PluginError> {
                match r.user.as_str() {
                    "err" => Err(crate::PluginError::new("no")),
                    _ => Ok(crate::reject(700, "")),
                }
            }
        }
        assert_eq!(Call::to("err").route(&Bad), Err("no".to_string()));
        assert!(Call::to("x")
            .route(&Bad)
            .unwrap_err()
            .contains("reject code 700"));
    }
}
