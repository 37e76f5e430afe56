//! An example dialplan plugin: routes a call by the longest number prefix
//! its Request-URI's user matches, each route with optional opening hours.
//!
//! Configuration (TOML, the `config` of its `[[plugin]]` entry):
//!
//! ```toml
//! # Opening hours are in this offset from UTC.
//! utc_offset_minutes = 60
//!
//! [[route]]
//! prefix = "+4930"
//! targets = ["sip:berlin@10.0.0.5"]
//!
//! [[route]]
//! prefix = "+49"
//! targets = ["sip:office@10.0.0.6"]
//! # Open 08:00 to 18:00; outside, the closed targets or, without any, 480.
//! hours = "08:00-18:00"
//! closed_targets = ["sip:voicemail@10.0.0.7"]
//!
//! # No prefix matched: refused with this code (404 when left out), or,
//! # with `decline = true` instead, left to the switch's [dialplan] rules.
//! [default]
//! code = 404
//! ```
//!
//! Built as a `cdylib` it is loaded by the switch in process; its
//! [`PrefixDialplan`] is plain Rust, tested as such below.

use sentiric_plugin_sdk::{bridge, decline, reject, v1, Dialplan, Plugin, PluginError};
use serde::Deserialize;

/// One route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    prefix: String,
    targets: Vec<String>,
    /// `HH:MM-HH:MM`; a range past midnight (`22:00-06:00`) wraps.
    #[serde(default)]
    hours: Option<String>,
    #[serde(default)]
    closed_targets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Default {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    reason: String,
    /// Not this plugin's call: the switch's rules decide.
    #[serde(default)]
    decline: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    utc_offset_minutes: i32,
    #[serde(default)]
    route: Vec<Route>,
    default: Option<Default>,
}

/// A route ready to match: its opening hours in minutes of the day.
#[derive(Debug, Clone)]
struct Compiled {
    route: Route,
    open: Option<(u32, u32)>,
}

/// The plugin: routes, longest prefix first.
#[derive(Debug, Clone)]
pub struct PrefixDialplan {
    routes: Vec<Compiled>,
    offset_minutes: i64,
    /// `code` is `None` when it declines.
    default: Default,
}

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl PrefixDialplan {
    /// The decision for `request` at `time_unix_us`.
    pub fn route_at(&self, request: &v1::RouteRequest, time_unix_us: i64) -> v1::RouteDecision {
        let user = request.user.as_str();
        let Some(c) = self
            .routes
            .iter()
            .find(|c| user.starts_with(c.route.prefix.as_str()))
        else {
            return match self.default.code {
                None => decline("no prefix matched"),
                Some(code) => reject(code, self.default.reason.clone()),
            }
            .with_rule("default");
        };
        let open = c.open.is_none_or(|(from, to)| {
            let local_min = (time_unix_us.div_euclid(60_000_000) + self.offset_minutes)
                .rem_euclid(24 * 60) as u32;
            if from <= to {
                (from..to).contains(&local_min)
            } else {
                local_min >= from || local_min < to
            }
        });
        let mut d = if open {
            bridge(c.route.targets.clone())
        } else if c.route.closed_targets.is_empty() {
            reject(480, "Closed")
        } else {
            bridge(c.route.closed_targets.clone())
        };
        d.rule = format!(
            "prefix {}{}",
            c.route.prefix,
            if open { "" } else { " (closed)" }
        );
        d.cdr_tags
            .insert("route_prefix".into(), c.route.prefix.clone());
        d
    }
}

impl Plugin for PrefixDialplan {
    fn new(config: &str) -> Result<Self, PluginError> {
        let cfg: Config =
            toml::from_str(config).map_err(|e| PluginError::new(format!("config: {e}")))?;
        let mut routes = Vec::new();
        for route in cfg.route {
            if route.targets.is_empty() {
                return Err(PluginError::new(format!(
                    "route {:?}: no targets",
                    route.prefix
                )));
            }
            let open = match &route.hours {
                None => None,
                Some(h) => {
                    let (from, to) = h
                        .split_once('-')
                        .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
                        .ok_or_else(|| {
                            PluginError::new(format!("route {:?}: hours {h:?}", route.prefix))
                        })?;
                    Some((from, to))
                }
            };
            routes.push(Compiled { route, open });
        }
        // Longest prefix first.
        routes.sort_by_key(|c| std::cmp::Reverse(c.route.prefix.len()));
        let mut default = cfg.default.unwrap_or(Default {
            code: None,
            reason: String::new(),
            decline: false,
        });
        match (default.decline, default.code) {
            (true, Some(_)) => {
                return Err(PluginError::new(
                    "default: decline = true or a code, not both",
                ))
            }
            (true, None) => {}
            (false, None) => default.code = Some(404),
            (false, Some(code)) if !(400..=699).contains(&code) => {
                return Err(PluginError::new(format!(
                    "default code {code} is not 400-699"
                )))
            }
            (false, Some(_)) => {}
        }
        Ok(PrefixDialplan {
            routes,
            offset_minutes: i64::from(cfg.utc_offset_minutes),
            default,
        })
    }

    fn dialplan(&self) -> Option<&dyn Dialplan> {
        Some(self)
    }

    /// A lookup in memory: never blocks.
    fn may_block(&self) -> bool {
        false
    }
}

impl Dialplan for PrefixDialplan {
    fn route(&self, request: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError> {
        let now = if request.time_unix_us > 0 {
            request.time_unix_us
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        };
        Ok(self.route_at(request, now))
    }
}

sentiric_plugin_sdk::export_plugin!(PrefixDialplan);

#[cfg(test)]
mod tests {
    use super::*;
    use sentiric_plugin_sdk::check_decision;
    use v1::route_decision::Action;

    const CONFIG: &str = r#"
utc_offset_minutes = 60
[[route]]
prefix = "+49"
targets = ["sip:office@127.0.0.1:5070"]
hours = "08:00-18:00"
closed_targets = ["sip:voicemail@127.0.0.1:5071"]
[[route]]
prefix = "+4930"
targets = ["sip:berlin@127.0.0.1:5072"]
[[route]]
prefix = "+1"
targets = ["sip:us@127.0.0.1:5073"]
hours = "22:00-06:00"
[default]
code = 404
reason = "No Route"
"#;

    fn call(user: &str) -> v1::RouteRequest {
        v1::RouteRequest {
            user: user.into(),
            ..v1::RouteRequest::default()
        }
    }

    /// 2026-12-01 at `h`:`m` UTC, in µs.
    fn at(h: i64, m: i64) -> i64 {
        (1_764_547_200 + h * 3600 + m * 60) * 1_000_000
    }

    fn targets(d: &v1::RouteDecision) -> Vec<String> {
        match &d.action {
            Some(Action::Bridge(b)) => b.targets.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_hours_are_local() {
        let p = PrefixDialplan::new(CONFIG).unwrap();
        // 09:00 UTC is 10:00 at +1 h: open.
        let d = p.route_at(&call("+4989123"), at(9, 0));
        assert_eq!(targets(&d), ["sip:office@127.0.0.1:5070"]);
        assert_eq!(d.rule, "prefix +49");
        assert_eq!(d.cdr_tags["route_prefix"], "+49");
        // 17:30 UTC is 18:30 local: closed, to voicemail.
        let d = p.route_at(&call("+4989123"), at(17, 30));
        assert_eq!(targets(&d), ["sip:voicemail@127.0.0.1:5071"]);
        assert_eq!(d.rule, "prefix +49 (closed)");
        // Berlin has no hours and the longer prefix.
        let d = p.route_at(&call("+49301234"), at(3, 0));
        assert_eq!(targets(&d), ["sip:berlin@127.0.0.1:5072"]);
        // A range past midnight: 23:30 local open, 12:00 local closed
        // with no closed targets: 480.
        assert_eq!(
            targets(&p.route_at(&call("+1555"), at(22, 30))),
            ["sip:us@127.0.0.1:5073"]
        );
        let d = p.route_at(&call("+1555"), at(11, 0));
        assert!(matches!(
            d.action,
            Some(Action::Reject(v1::Reject { code: 480, .. }))
        ));
        let d = p.route_at(&call("0800"), at(11, 0));
        assert!(matches!(
            d.action,
            Some(Action::Reject(v1::Reject { code: 404, .. }))
        ));
        for user in ["+4989", "+4930", "+1", "x"] {
            for h in [0, 9, 17, 23] {
                assert_eq!(check_decision(&p.route_at(&call(user), at(h, 0))), Ok(()));
            }
        }
    }

    #[test]
    fn with_decline_a_number_no_route_matches_is_left_to_the_rules() {
        let p = PrefixDialplan::new(
            "[[route]]\nprefix = \"+49\"\ntargets = [\"sip:a@127.0.0.1\"]\n[default]\ndecline = true\n",
        )
        .unwrap();
        let d = p.route_at(&call("0800"), at(11, 0));
        assert!(matches!(d.action, Some(Action::Decline(_))), "{d:?}");
        assert_eq!((d.rule.as_str(), check_decision(&d)), ("default", Ok(())));
        assert_eq!(
            targets(&p.route_at(&call("+4930"), at(11, 0))),
            ["sip:a@127.0.0.1"]
        );
        // Without [default]: 404.
        let p = PrefixDialplan::new("").unwrap();
        assert!(matches!(
            p.route_at(&call("0800"), 0).action,
            Some(Action::Reject(v1::Reject { code: 404, .. }))
        ));
    }

    #[test]
    fn a_bad_configuration_is_an_error() {
        for bad in [
            "[[route]]\nprefix = \"1\"\ntargets = []\n",
            "[[route]]\nprefix = \"1\"\ntargets = [\"sip:a@b\"]\nhours = \"8-18\"\n",
            "[[route]]\nprefix = \"1\"\ntargets = [\"sip:a@b\"]\nhours = \"08:00-25:00\"\n",
            "[default]\ncode = 200\n",
            "[default]\ncode = 404\ndecline = true\n",
            "nonsense = 1\n",
        ] {
            assert!(PrefixDialplan::new(bad).is_err(), "{bad}");
        }
    }
}
