//! Routing: what the switch does with a new call.
//!
//! Every inbound INVITE that starts a call is described by a
//! [`RouteRequest`] and answered by an [`Action`]: bridge it to one or more
//! targets, echo its audio, play a prompt, put it in a conference room, or
//! reject it. A [`Dialplan`] makes that decision. The B2BUA takes the
//! decision as an input, so a dialplan that answers later (a sidecar over
//! gRPC) fits the same call flow as one that answers at once.
//!
//! [`StaticDialplan`] is the built-in one, read from the `[dialplan]`
//! section of the config file: rules tried in order, the first whose every
//! matcher matches wins, and a default for calls no rule takes.
//!
//! ```toml
//! [[dialplan.rule]]
//! name = "echo test"
//! user = "600"
//! action = "echo"
//!
//! [[dialplan.rule]]
//! name = "welcome, then the operator"
//! user = "0"
//! action = "play"
//! prompt = "/var/lib/sentiric/welcome.wav"
//! then = "continue"          # on to the next rule that matches
//!
//! [[dialplan.rule]]
//! name = "UK numbers to the carrier, with failover"
//! user_regex = '^\+44\d{9,10}$'
//! source = ["10.0.0.0/8"]
//! action = "bridge"
//! targets = ["sip:{user}@192.0.2.10", "sip:{user}@192.0.2.11"]
//! fork = "serial"            # or "parallel"
//! ring_timeout_s = 30
//! codecs = ["PCMA", "PCMU"]  # put first in the offer to the targets
//!
//! [[dialplan.rule]]
//! name = "support line"
//! user = "5000"
//! action = "agent"           # an agent plugin holds the call
//! agent = "support-bot"      # a sidecar's name, or a library's plugin name
//! params = { greeting = "Hello {user}", system_prompt = "You sell tickets." }
//!                             # the agent's configuration for this route
//!
//! [dialplan.default]
//! action = "reject"
//! code = 404
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl Transport {
    /// Its name, lower case (`udp`, `tcp` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What routing sees of a new call.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The Request-URI.
    pub request_uri: &'a str,
    /// The Request-URI's user part (the dialled number), if it has one.
    pub user: Option<&'a str>,
    /// The From header's URI.
    pub from_uri: &'a str,
    /// The From URI's user part, if it has one.
    pub from_user: Option<&'a str>,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The transport it came on.
    pub transport: Transport,
    /// Its headers the switch passes to dialplans
    /// ([`B2buaConfig::route_headers`](crate::b2bua::B2buaConfig)): names
    /// lower case.
    pub headers: &'a [(String, String)],
}

/// How a bridge tries its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fork {
    /// One after another: the next on a 5xx, 408 or no answer in time.
    Serial,
    /// All at once: the first to answer wins, the others are cancelled.
    Parallel,
}

/// Connect the caller to another party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// SIP URIs to call, in order.
    pub targets: Vec<String>,
    /// Serial failover or parallel forking.
    pub fork: Fork,
    /// How long a target may ring before it counts as no answer.
    pub ring_timeout: Duration,
    /// Headers added to each INVITE to a target (names are tokens the
    /// switch does not set itself; values without line breaks).
    pub headers: Vec<(String, String)>,
    /// Codecs to prefer towards the targets, by SDP encoding name, the
    /// most preferred first (put first in the offer; the others follow);
    /// empty: the caller's order.
    pub codecs: Vec<String>,
}

/// What follows a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPlay {
    /// Hang up.
    Hangup,
    /// Go on with this action.
    Continue(Box<Action>),
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Call the targets and connect the first to answer.
    Bridge(Bridge),
    /// Answer and send the caller's audio back.
    Echo,
    /// Answer and play a WAV prompt (a path, or `builtin:NAME` for one
    /// compiled into the switch).
    Play {
        /// The prompt.
        prompt: String,
        /// What comes after it.
        then: AfterPlay,
    },
    /// Answer and join a named conference room.
    Conference {
        /// The room's name.
        room: String,
    },
    /// Answer and connect the caller to the agent plugin `agent` (its
    /// audio both ways; the owner of the media holds the conversation).
    Agent {
        /// The agent's name.
        agent: String,
        /// The route's configuration for it (system prompt, greeting,
        /// voice …), given to it with the call.
        params: BTreeMap<String, String>,
    },
    /// Send the caller elsewhere: a 3xx with a Contact for each URI.
    Redirect {
        /// The status code, 300–399.
        code: u16,
        /// Where to, in order of preference.
        contacts: Vec<String>,
    },
    /// Refuse the call with a final response.
    Reject {
        /// The status code, 400–699.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// What a log line says of an action: `bridge to sip:a@h, sip:b@h
/// (serial)`, `reject 404 Not Found`, `agent voice`.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Bridge(b) => write!(
                f,
                "bridge to {} ({})",
                b.targets.join(", "),
                match b.fork {
                    Fork::Serial => "serial",
                    Fork::Parallel => "parallel",
                }
            ),
            Action::Echo => f.write_str("echo"),
            Action::Play { prompt, then } => {
                write!(f, "play {prompt}")?;
                match then {
                    AfterPlay::Hangup => f.write_str(", then hang up"),
                    AfterPlay::Continue(next) => write!(f, ", then {next}"),
                }
            }
            Action::Conference { room } => write!(f, "conference room {room}"),
            Action::Agent { agent, .. } => write!(f, "agent {agent}"),
            Action::Redirect { code, contacts } => {
                write!(f, "redirect {code} to {}", contacts.join(", "))
            }
            Action::Reject { code, reason } => write!(f, "reject {code} {reason}"),
        }
    }
}

/// Makes routing decisions.
pub trait Dialplan: Send + Sync {
    /// The action for a new call.
    fn route(&self, request: &RouteRequest<'_>) -> Action;
}

/// A `[dialplan]` section of the config file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialplanConfig {
    /// The rules, tried in order (`[[dialplan.rule]]`).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// What a call no rule takes gets (`[dialplan.default]`); 404 if unset.
    #[serde(default)]
    pub default: Option<RuleConfig>,
}

/// One `[[dialplan.rule]]`, as written: matchers and an action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for logs and metrics.
    pub name: Option<String>,
    /// The dialled user is exactly this.
    pub user: Option<String>,
    /// The dialled user starts with this.
    pub user_prefix: Option<String>,
    /// The dialled user matches this regular expression (unanchored: use
    /// `^` and `$` for a whole match).
    pub user_regex: Option<String>,
    /// The From URI matches this regular expression.
    pub from_regex: Option<String>,
    /// The source address is in one of these (`10.0.0.0/8`, `::1`, …).
    pub source: Option<Vec<String>>,
    /// The request came on this transport.
    pub transport: Option<Transport>,
    /// `bridge`, `echo`, `play`, `conference`, `agent` or `reject`.
    pub action: Option<String>,
    /// bridge: SIP URIs; `{user}` and `{from_user}` are filled in.
    pub targets: Option<Vec<String>>,
    /// bridge: `serial` (default) or `parallel`.
    pub fork: Option<Fork>,
    /// bridge: seconds a target may ring (default 60).
    pub ring_timeout_s: Option<u32>,
    /// bridge: codecs to prefer towards the targets (`["PCMA", "PCMU"]`),
    /// put first in the offer in this order.
    pub codecs: Option<Vec<String>>,
    /// play: the WAV file, or `builtin:NAME`.
    pub prompt: Option<String>,
    /// play: `hangup` (default) or `continue` (on to the next rule that
    /// matches).
    pub then: Option<String>,
    /// conference: the room's name; `{user}` is filled in.
    pub room: Option<String>,
    /// agent: the agent plugin that holds the call.
    pub agent: Option<String>,
    /// agent: its configuration for this route (`{user}` is filled in).
    pub params: Option<BTreeMap<String, String>>,
    /// reject: the status code (default 404).
    pub code: Option<u16>,
    /// reject: the reason phrase (default: the code's usual one).
    pub reason: Option<String>,
}

/// A dialplan the config refused, naming the bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanError {
    /// Where: `dialplan.rule[2].user_regex`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for DialplanError {}

/// An address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0–{max}"))?,
        };
        Ok(Cidr { addr, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The action part of a rule, checked; templates still unfilled.
#[derive(Debug, Clone)]
enum Template {
    Bridge {
        targets: Vec<String>,
        fork: Fork,
        ring_timeout: Duration,
        codecs: Vec<String>,
    },
    Echo,
    Play {
        prompt: String,
        continue_after: bool,
    },
    Conference {
        room: String,
    },
    Agent {
        agent: String,
        params: BTreeMap<String, String>,
    },
    Reject {
        code: u16,
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    user: Option<String>,
    user_prefix: Option<String>,
    user_regex: Option<Regex>,
    from_regex: Option<Regex>,
    source: Vec<Cidr>,
    transport: Option<Transport>,
    action: Template,
}

impl Rule {
    fn matches(&self, r: &RouteRequest<'_>) -> bool {
        let user = r.user.unwrap_or("");
        self.user.as_deref().is_none_or(|u| u == user)
            && self
                .user_prefix
                .as_deref()
                .is_none_or(|p| user.starts_with(p))
            && self.user_regex.as_ref().is_none_or(|re| re.is_match(user))
            && self
                .from_regex
                .as_ref()
                .is_none_or(|re| re.is_match(r.from_uri))
            && (self.source.is_empty() || self.source.iter().any(|c| c.contains(r.source.ip())))
            && self.transport.is_none_or(|t| t == r.transport)
    }
}

/// The built-in dialplan: ordered rules from the config file.
#[derive(Debug, Clone)]
pub struct StaticDialplan {
    rules: Vec<Rule>,
    default: Template,
}

/// The usual reason phrase of a final response code (RFC 3261 §21).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Rejected",
    }
}

fn err(key: &str, message: impl Into<String>) -> DialplanError {
    DialplanError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Whether `name` can be an SDP encoding name (RFC 4566's token: letters,
/// digits and `-`, `_`, `.`, at most 32).
pub fn is_codec_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Fills `{user}` and `{from_user}` in.
fn fill(template: &str, r: &RouteRequest<'_>) -> String {
    template
        .replace("{user}", r.user.unwrap_or(""))
        .replace("{from_user}", r.from_user.unwrap_or(""))
}

impl RuleConfig {
    /// Checks the action and its fields; `key` is where the rule sits.
    fn template(&self, key: &str) -> Result<Template, DialplanError> {
        let action = self.action.as_deref().ok_or_else(|| {
            err(
                &format!("{key}.action"),
                "missing: bridge, echo, play, conference, agent or reject",
            )
        })?;
        // Which optional fields each action reads; any other one set is a
        // mistake worth naming.
        let fields: [(&str, bool); 11] = [
            ("targets", self.targets.is_some()),
            ("fork", self.fork.is_some()),
            ("ring_timeout_s", self.ring_timeout_s.is_some()),
            ("codecs", self.codecs.is_some()),
            ("prompt", self.prompt.is_some()),
            ("then", self.then.is_some()),
            ("room", self.room.is_some()),
            ("agent", self.agent.is_some()),
            ("params", self.params.is_some()),
            ("code", self.code.is_some()),
            ("reason", self.reason.is_some()),
        ];
        let used: &[&str] = match action {
            "bridge" => &["targets", "fork", "ring_timeout_s", "codecs"],
            "echo" => &[],
            "play" => &["prompt", "then"],
            "conference" => &["room"],
            "agent" => &["agent", "params"],
            "reject" => &["code", "reason"],
            other => {
                return Err(err(
                    &format!("{key}.action"),
                    format!(
                        "unknown action {other:?}: bridge, echo, play, conference, agent or reject"
                    ),
                ))
            }
        };
        if let Some((field, _)) = fields.iter().find(|(f, set)| *set && !used.contains(f)) {
            return Err(err(
                &format!("{key}.{field}"),
                format!("not used by action {action:?}"),
            ));
        }
        Ok(match action {
            "bridge" => {
                let targets = self.targets.clone().unwrap_or_default();
                if targets.is_empty() {
                    return Err(err(
                        &format!("{key}.targets"),
                        "bridge needs at least one target",
                    ));
                }
                for (i, t) in targets.iter().enumerate() {
                    let sample = t.replace("{user}", "1").replace("{from_user}", "1");
                    if let Err(e) = sentiric_sip::Uri::parse(&sample) {
                        return Err(err(
                            &format!("{key}.targets[{i}]"),
                            format!("{t:?} is not a SIP URI ({e})"),
                        ));
                    }
                }
                let secs = self.ring_timeout_s.unwrap_or(60);
                if secs == 0 {
                    return Err(err(&format!("{key}.ring_timeout_s"), "must be at least 1"));
                }
                let codecs = self.codecs.clone().unwrap_or_default();
                if let Some(c) = codecs.iter().find(|c| !is_codec_name(c)) {
                    return Err(err(
                        &format!("{key}.codecs"),
                        format!("{c:?} is not an SDP encoding name"),
                    ));
                }
                Template::Bridge {
                    targets,
                    fork: self.fork.unwrap_or(Fork::Serial),
                    ring_timeout: Duration::from_secs(u64::from(secs)),
                    codecs,
                }
            }
            "echo" => Template::Echo,
            "play" => {
                let prompt = self
                    .prompt
                    .clone()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| err(&format!("{key}.prompt"), "play needs a prompt"))?;
                let continue_after = match self.then.as_deref().unwrap_or("hangup") {
                    "hangup" => false,
                    "continue" => true,
                    other => {
                        return Err(err(
                            &format!("{key}.then"),
                            format!("{other:?}: hangup or continue"),
                        ))
                    }
                };
                Template::Play {
                    prompt,
                    continue_after,
                }
            }
            "conference" => Template::Conference {
                room: self
                    .room
                    .clone()
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| err(&format!("{key}.room"), "conference needs a room"))?,
            },
            "agent" => Template::Agent {
                agent: self
                    .agent
                    .clone()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| err(&format!("{key}.agent"), "agent needs an agent plugin"))?,
                params: self.params.clone().unwrap_or_default(),
            },
            _ => {
                let code = self.code.unwrap_or(404);
                if !(400..=699).contains(&code) {
                    return Err(err(
                        &format!("{key}.code"),
                        format!("{code}: a rejection is a final failure, 400–699"),
                    ));
                }
                let reason = self
                    .reason
                    .clone()
                    .unwrap_or_else(|| reason_phrase(code).to_string());
                if reason.chars().any(|c| c.is_control()) {
                    return Err(err(&format!("{key}.reason"), "control characters"));
                }
                Template::Reject { code, reason }
            }
        })
    }

    fn has_matchers(&self) -> Option<&'static str> {
        [
            ("user", self.user.is_some()),
            ("user_prefix", self.user_prefix.is_some()),
            ("user_regex", self.user_regex.is_some()),
            ("from_regex", self.from_regex.is_some()),
            ("source", self.source.is_some()),
            ("transport", self.transport.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(f, _)| f)
    }
}

fn regex(key: &str, re: Option<&str>) -> Result<Option<Regex>, DialplanError> {
    re.map(|re| Regex::new(re).map_err(|e| err(key, format!("not a regular expression: {e}"))))
        .transpose()
}

impl StaticDialplan {
    /// Checks a `[dialplan]` section; the error names the bad key.
    pub fn from_config(config: &DialplanConfig) -> Result<StaticDialplan, DialplanError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, r) in config.rules.iter().enumerate() {
            let key = format!("dialplan.rule[{i}]");
            let source = r
                .source
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, s)| Cidr::parse(s).map_err(|m| err(&format!("{key}.source[{j}]"), m)))
                .collect::<Result<Vec<_>, _>>()?;
            if r.source.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    &format!("{key}.source"),
                    "an empty list matches nothing",
                ));
            }
            rules.push(Rule {
                name: r.name.clone().unwrap_or_else(|| format!("rule {i}")),
                user: r.user.clone(),
                user_prefix: r.user_prefix.clone(),
                user_regex: regex(&format!("{key}.user_regex"), r.user_regex.as_deref())?,
                from_regex: regex(&format!("{key}.from_regex"), r.from_regex.as_deref())?,
                source,
                transport: r.transport,
                action: r.template(&key)?,
            });
        }
        let default = match &config.default {
            Some(d) => {
                if let Some(field) = d.has_matchers() {
                    return Err(err(
                        &format!("dialplan.default.{field}"),
                        "the default takes every call no rule took: it has no matchers",
                    ));
                }
                let t = d.template("dialplan.default")?;
                if matches!(
                    t,
                    Template::Play {
                        continue_after: true,
                        ..
                    }
                ) {
                    return Err(err(
                        "dialplan.default.then",
                        "nothing comes after the default",
                    ));
                }
                t
            }
            None => Template::Reject {
                code: 404,
                reason: reason_phrase(404).to_string(),
            },
        };
        Ok(StaticDialplan { rules, default })
    }

    /// The demo dialplan of the embedded default config: 600 echo, 700 an
    /// announcement, 800 a conference room, anything else 404.
    pub fn demo() -> StaticDialplan {
        let rule = |user: &str, action: &str| RuleConfig {
            name: Some(format!("demo {user}")),
            user: Some(user.to_string()),
            action: Some(action.to_string()),
            ..RuleConfig::default()
        };
        let config = DialplanConfig {
            rules: vec![
                rule("600", "echo"),
                RuleConfig {
                    prompt: Some("builtin:announcement".to_string()),
                    ..rule("700", "play")
                },
                RuleConfig {
                    room: Some("demo".to_string()),
                    ..rule("800", "conference")
                },
            ],
            default: None,
        };
        StaticDialplan::from_config(&config).expect("the demo dialplan is valid")
    }

    /// The rules' actions and the default's.
    fn templates(&self) -> impl Iterator<Item = &Template> {
        self.rules
            .iter()
            .map(|r| &r.action)
            .chain(std::iter::once(&self.default))
    }

    /// Whether any rule (or the default) sends calls to a conference room.
    pub fn has_conference(&self) -> bool {
        self.templates()
            .any(|t| matches!(t, Template::Conference { .. }))
    }

    /// Every prompt the rules and the default may play (to load at start).
    pub fn prompts(&self) -> Vec<&str> {
        self.templates()
            .filter_map(|t| match t {
                Template::Play { prompt, .. } => Some(prompt.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Every agent the rules and the default may connect calls to.
    pub fn agents(&self) -> Vec<&str> {
        self.templates()
            .filter_map(|t| match t {
                Template::Agent { agent, .. } => Some(agent.as_str()),
                _ => None,
            })
            .collect()
    }

    /// How many rules it has (the default aside).
    pub fn rules_len(&self) -> usize {
        self.rules.len()
    }

    /// The name of the rule that takes `request`, or `None` for the default.
    pub fn matching_rule(&self, request: &RouteRequest<'_>) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.matches(request))
            .map(|r| r.name.as_str())
    }

    /// The action of the first rule from `from` on that matches.
    fn route_from(&self, from: usize, r: &RouteRequest<'_>) -> Action {
        let found = self.rules[from..]
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(r));
        let (template, next) = match found {
            Some((i, rule)) => (&rule.action, from + i + 1),
            None => (&self.default, self.rules.len()),
        };
        match template {
            Template::Bridge {
                targets,
                fork,
                ring_timeout,
                codecs,
            } => Action::Bridge(Bridge {
                targets: targets.iter().map(|t| fill(t, r)).collect(),
                fork: *fork,
                ring_timeout: *ring_timeout,
                headers: Vec::new(),
                codecs: codecs.clone(),
            }),
            Template::Echo => Action::Echo,
            Template::Play {
                prompt,
                continue_after,
            } => Action::Play {
                prompt: prompt.clone(),
                then: if *continue_after {
                    AfterPlay::Continue(Box::new(self.route_from(next, r)))
                } else {
                    AfterPlay::Hangup
                },
            },
            Template::Conference { room } => Action::Conference {
                room: fill(room, r),
            },
            Template::Agent { agent, params } => Action::Agent {
                agent: agent.clone(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(v, r)))
                    .collect(),
            },
            Template::Reject { code, reason } => Action::Reject {
                code: *code,
                reason: reason.clone(),
            },
        }
    }
}

impl Dialplan for StaticDialplan {
    fn route(&self, request: &RouteRequest<'_>) -> Action {
        self.route_from(0, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }
}
