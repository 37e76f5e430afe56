//! The Sentiric plugin contract for Rust authors.
//!
//! The contract is written once, in `proto/sentiric/plugin/v1/plugin.proto`:
//! a dialplan's `Route`, an agent's `Converse`, speech to text and text to
//! speech. This crate has its messages as Rust types ([`v1`]), the
//! services as traits ([`Dialplan`], [`Agent`], [`SpeechToText`],
//! [`TextToSpeech`]), and two ways to ship an implementation:
//!
//! * **In process**: [`export_plugin!`] makes the crate a `cdylib` the
//!   switch loads from its plugin directory. The library exports three C
//!   functions ([`abi`]): its ABI version, one entry point that takes a
//!   method number and a protobuf message and returns one, and the free
//!   of what it returned. A panic in the plugin is caught at that
//!   boundary and comes back as an error: that call fails, the switch
//!   goes on. Build the plugin with `panic = "unwind"` (the default);
//!   with `panic = "abort"` a panic ends the switch.
//! * **As a sidecar** (feature `sidecar`): the same trait served over
//!   gRPC with mTLS ([`sidecar::serve`]), and the client the switch
//!   reaches it with; [`certs`] makes a development CA and certificates.
//!
//! ```ignore
//! use sentiric_plugin_sdk::{export_plugin, v1, Dialplan, Plugin, PluginError};
//!
//! struct AllToOne(String);
//!
//! impl Plugin for AllToOne {
//!     fn new(config: &str) -> Result<Self, PluginError> {
//!         Ok(AllToOne(config.trim().to_string()))
//!     }
//!     fn dialplan(&self) -> Option<&dyn Dialplan> {
//!         Some(self)
//!     }
//! }
//!
//! impl Dialplan for AllToOne {
//!     fn route(&self, _: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError> {
//!         Ok(sentiric_plugin_sdk::bridge([self.0.clone()]))
//!     }
//! }
//!
//! export_plugin!(AllToOne);
//! ```
//!
//! [`check_decision`] is what the switch holds every decision to, whichever
//! way the plugin runs: a decision it refuses is the plugin's error.

/// The contract's messages, generated from `plugin.proto`.
#[allow(missing_docs, clippy::doc_lazy_continuation, unreachable_pub)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/sentiric.plugin.v1.rs"));
}

#[allow(unsafe_code)]
pub mod abi;
#[cfg(feature = "sidecar")]
pub mod certs;
#[cfg(feature = "host")]
#[allow(unsafe_code)]
pub mod host;
#[cfg(feature = "sidecar")]
pub mod sidecar;
pub mod testing;

/// The guide (`README.md`): its Rust examples are compiled as doc tests,
/// as written.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod guide {}

use std::sync::Arc;

use v1::route_decision::Action;

/// A plugin's own error: the call fails with it (the switch logs it and
/// applies the plugin's fallback).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

impl PluginError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> PluginError {
        PluginError(message.into())
    }
}

/// Decides what happens to a new call.
///
/// Called on the switch's data-plane thread for in-process plugins: it
/// must answer within the dialplan's deadline (50 ms by default), and
/// should in microseconds. Blocking IO belongs in a sidecar.
pub trait Dialplan: Send + Sync {
    /// The decision for the call `request` describes.
    fn route(&self, request: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError>;
}

/// Holds conversations on live calls: the switch's `Converse` stream.
///
/// For each call routed to the agent, [`Agent::start`] makes a
/// [`Conversation`] from the call and the route's parameters; the
/// conversation is then told every input (the caller's audio as 20 ms
/// frames of 16 kHz PCM, DTMF, speech start and stop, plays done, the
/// end) and answers each with the actions it causes (audio to play,
/// stop, hang up, transfer, DTMF, CDR tags), in order.
///
/// In process, `input` runs on the switch's data-plane thread, every
/// 20 ms of every call it holds: it must return in microseconds. An agent
/// that waits on the network (speech, an LLM) belongs in a sidecar, or
/// hands that work to threads of its own and answers later inputs with
/// what came of it.
pub trait Agent: Send + Sync {
    /// A conversation for the call `start` describes. `later` is where it
    /// sends what it does on its own, between inputs (see [`Later`]); an
    /// agent that only ever answers inputs drops it.
    fn start(
        &self,
        start: &v1::ConverseStart,
        later: Later,
    ) -> Result<Box<dyn Conversation>, PluginError>;
}

/// Where a conversation sends the actions it takes on its own, not in
/// answer to an input: what its threads made of earlier inputs (an LLM's
/// answer, speech as it is synthesised, a tool's outcome). Cheap to clone
/// and usable from any thread.
///
/// Over gRPC they go out on the response stream at once, between the
/// actions that inputs cause. In process they are handed over with the
/// actions of the conversation's next input (the caller's audio comes
/// every 20 ms, so that is within 20 ms).
#[derive(Clone)]
pub struct Later {
    send: Arc<dyn Fn(v1::CallAction) -> bool + Send + Sync>,
}

impl Later {
    /// Actions sent to `send` (which says whether the conversation still
    /// takes them).
    pub fn new(send: impl Fn(v1::CallAction) -> bool + Send + Sync + 'static) -> Later {
        Later {
            send: Arc::new(send),
        }
    }

    /// One that takes nothing (for tests, and hosts without a way back).
    pub fn nowhere() -> Later {
        Later::new(|_| false)
    }

    /// Sends `action`: `false` once the conversation is over (nobody is
    /// listening, and the action is dropped).
    pub fn send(&self, action: v1::call_action::Action) -> bool {
        (self.send)(v1::CallAction {
            action: Some(action),
        })
    }
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later").finish_non_exhaustive()
    }
}

/// One call's conversation with an [`Agent`].
pub trait Conversation: Send {
    /// What the agent does on `input`: actions pushed to `actions`, in
    /// the order the switch carries them out. An error ends the
    /// conversation (the switch applies the route's failure path).
    fn input(
        &mut self,
        input: v1::call_input::Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError>;
}

/// Transcribes streamed audio: the contract's `SpeechToText.Recognize`.
///
/// For each stream [`SpeechToText::start`] makes a [`Recognition`] from
/// its first message (its `params`: language …, and sample rate); every
/// message, the first included, is then given to it in order, and the
/// transcripts it makes (partial ones that may change, final ones for a
/// stretch of speech, with their timing) go back as they come; the
/// stream's end is [`Recognition::end`], for what is left.
pub trait SpeechToText: Send + Sync {
    /// A recognition for the stream that `first` begins.
    fn start(&self, first: &v1::Audio) -> Result<Box<dyn Recognition>, PluginError>;
}

/// One stream's recognition.
pub trait Recognition: Send {
    /// More audio: the transcripts it completes pushed to `out`. An
    /// error ends the stream.
    fn audio(&mut self, audio: v1::Audio, out: &mut Vec<v1::Transcript>)
        -> Result<(), PluginError>;

    /// The audio is over: the transcripts still to come (the last final
    /// one).
    fn end(&mut self, _out: &mut Vec<v1::Transcript>) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Speaks text: the contract's `TextToSpeech.Synthesize`.
pub trait TextToSpeech: Send + Sync {
    /// The audio of `text`, made as it is taken: each item a chunk of
    /// 16-bit mono PCM at `text.sample_rate` (0: 16 kHz), in order.
    fn synthesize(&self, text: &v1::Text) -> Result<Synthesis, PluginError>;
}

/// A synthesis under way: its chunks, made one at a time as they are
/// taken (an error ends it).
pub type Synthesis = Box<dyn Iterator<Item = Result<v1::Audio, PluginError>> + Send>;

/// A plugin: made once from its configuration when the switch loads it,
/// then asked for the services it implements.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin, from the configuration text the switch's config gives
    /// it (`[[plugin]] config`; empty when none).
    fn new(config: &str) -> Result<Self, PluginError>
    where
        Self: Sized;

    /// Its dialplan, if it is one.
    fn dialplan(&self) -> Option<&dyn Dialplan> {
        None
    }

    /// Its agent, if it is one.
    fn agent(&self) -> Option<&dyn Agent> {
        None
    }

    /// Its speech recogniser, if it has one.
    fn speech_to_text(&self) -> Option<&dyn SpeechToText> {
        None
    }

    /// Its speech synthesiser, if it has one.
    fn text_to_speech(&self) -> Option<&dyn TextToSpeech> {
        None
    }

    /// Whether a call into it may block (IO, locks held long, sleeps).
    /// A sidecar runs such a plugin's calls on a pool of threads of their
    /// own; one that never blocks (`false`: pure computation over its
    /// configuration) is called on the thread that serves the request,
    /// which saves two thread switches a call.
    fn may_block(&self) -> bool {
        true
    }
}

/// A [`v1::RouteRequest`] over borrowed strings, encoded as the owned
/// message is: the host's way to ask an in-process plugin without
/// copying the call's strings first.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequestRef<'a> {
    /// The caller's Call-ID.
    pub call_id: &'a str,
    /// The trace id the switch gave the call.
    pub trace_id: &'a str,
    /// The From URI.
    pub from_uri: &'a str,
    /// The To URI.
    pub to_uri: &'a str,
    /// The Request-URI.
    pub request_uri: &'a str,
    /// The Request-URI's user part.
    pub user: &'a str,
    /// The From URI's user part.
    pub from_user: &'a str,
    /// The INVITE's headers the switch passes on: names lower case, the
    /// values of a repeated header joined with `, `.
    pub headers: &'a [(String, String)],
    /// Where the INVITE came from (`ip:port`).
    pub source: &'a str,
    /// Its transport (`udp`, `tcp` …).
    pub transport: &'a str,
    /// When the call came, µs since the Unix epoch.
    pub time_unix_us: i64,
}

impl RouteRequestRef<'_> {
    /// Appends its protobuf encoding (the bytes `v1::RouteRequest`
    /// encodes to with the same fields) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        use prost::encoding::{encode_key, encode_varint, encoded_len_varint, int64, WireType};
        let string = |tag: u32, s: &str, buf: &mut Vec<u8>| {
            if !s.is_empty() {
                encode_key(tag, WireType::LengthDelimited, buf);
                encode_varint(s.len() as u64, buf);
                buf.extend_from_slice(s.as_bytes());
            }
        };
        // In field order, as prost writes the message.
        for (tag, s) in [
            (1, self.call_id),
            (2, self.trace_id),
            (3, self.from_uri),
            (4, self.to_uri),
            (5, self.request_uri),
            (6, self.user),
            (7, self.from_user),
        ] {
            string(tag, s, buf);
        }
        // A map entry: a message of key (1) and value (2), either left
        // out when empty.
        let part = |s: &str| {
            if s.is_empty() {
                0
            } else {
                1 + encoded_len_varint(s.len() as u64) + s.len()
            }
        };
        for (name, value) in self.headers {
            encode_key(8, WireType::LengthDelimited, buf);
            encode_varint((part(name) + part(value)) as u64, buf);
            string(1, name, buf);
            string(2, value, buf);
        }
        string(9, self.source, buf);
        string(10, self.transport, buf);
        if self.time_unix_us != 0 {
            int64::encode(11, &self.time_unix_us, buf);
        }
    }
}

/// A decision of `action`, with no headers, tags or rule yet (see
/// [`v1::RouteDecision::with_rule`] and the other `with_` methods).
fn decide(action: Action) -> v1::RouteDecision {
    v1::RouteDecision {
        action: Some(action),
        ..v1::RouteDecision::default()
    }
}

/// A decision that bridges to `targets` (`sip:` or `sips:` URIs), trying
/// them in order; the switch's ring timeout (30 s) each and the caller's
/// codecs, unless the [`v1::Bridge`] in it is changed.
pub fn bridge<S: Into<String>>(targets: impl IntoIterator<Item = S>) -> v1::RouteDecision {
    decide(Action::Bridge(v1::Bridge {
        targets: targets.into_iter().map(Into::into).collect(),
        ..v1::Bridge::default()
    }))
}

/// A decision that refuses the call with `code` (400–699) and `reason`
/// (empty: the code's usual phrase).
pub fn reject(code: u32, reason: impl Into<String>) -> v1::RouteDecision {
    decide(Action::Reject(v1::Reject {
        code,
        reason: reason.into(),
    }))
}

/// Not this dialplan's call: the switch's `[dialplan]` rules decide it.
/// An answer, never a failure (counted as `result="declined"`, not
/// toward the circuit breaker); `reason` is for the switch's debug log.
pub fn decline(reason: impl Into<String>) -> v1::RouteDecision {
    decide(Action::Decline(v1::Decline {
        reason: reason.into(),
    }))
}

/// A decision that sends the caller to `contacts` with a 302 (set
/// [`v1::Redirect::code`] for another 3xx).
pub fn redirect<S: Into<String>>(contacts: impl IntoIterator<Item = S>) -> v1::RouteDecision {
    decide(Action::Redirect(v1::Redirect {
        code: 302,
        contacts: contacts.into_iter().map(Into::into).collect(),
    }))
}

/// A decision that answers the call with its own audio sent back (the
/// echo test).
pub fn echo() -> v1::RouteDecision {
    answer(v1::answer::App::Echo(v1::Echo {}))
}

/// A decision that answers the call, plays the prompt `prompt` (a name
/// in the switch's `[prompts]`) and hangs up.
pub fn play(prompt: impl Into<String>) -> v1::RouteDecision {
    answer(v1::answer::App::Play(v1::Play {
        prompt: prompt.into(),
        then_bridge: None,
    }))
}

/// A decision that plays `prompt` in early media, then bridges to
/// `targets`.
pub fn play_then_bridge<S: Into<String>>(
    prompt: impl Into<String>,
    targets: impl IntoIterator<Item = S>,
) -> v1::RouteDecision {
    answer(v1::answer::App::Play(v1::Play {
        prompt: prompt.into(),
        then_bridge: Some(v1::Bridge {
            targets: targets.into_iter().map(Into::into).collect(),
            ..v1::Bridge::default()
        }),
    }))
}

/// A decision that answers the call and joins it to the conference room
/// `room`.
pub fn conference(room: impl Into<String>) -> v1::RouteDecision {
    answer(v1::answer::App::Conference(v1::Conference {
        room: room.into(),
    }))
}

/// A decision that answers the call and connects it to the agent
/// `plugin` (a library's plugin name or a sidecar's name in the switch's
/// config), which is given `params` with the call (a system prompt, a
/// greeting, a language …).
pub fn agent<K: Into<String>, V: Into<String>>(
    plugin: impl Into<String>,
    params: impl IntoIterator<Item = (K, V)>,
) -> v1::RouteDecision {
    answer(v1::answer::App::Agent(v1::ConnectAgent {
        plugin: plugin.into(),
        params: params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    }))
}

/// A decision that answers the call with `app`.
fn answer(app: v1::answer::App) -> v1::RouteDecision {
    decide(Action::Answer(v1::Answer { app: Some(app) }))
}

impl v1::RouteDecision {
    /// This decision, naming `rule` as the one that decided (the call's
    /// `CallRouted` event and the switch's log say it).
    #[must_use]
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = rule.into();
        self
    }

    /// This decision, with the CDR tag `name` = `value`.
    #[must_use]
    pub fn with_tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cdr_tags.insert(name.into(), value.into());
        self
    }

    /// This decision, adding the header `name: value` to the INVITEs sent
    /// to its bridge targets.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.add_headers.insert(name.into(), value.into());
        self
    }
}

/// Most bridge targets or redirect contacts a decision may name.
pub const MAX_TARGETS: usize = 16;
/// Most headers to add, and most CDR tags.
pub const MAX_ENTRIES: usize = 32;
/// Longest URI, header value or tag value, in bytes.
pub const MAX_VALUE: usize = 1024;

/// Why a decision cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDecision {
    /// It names no action.
    #[error("no action")]
    NoAction,
    /// A reject code outside 400–699.
    #[error("reject code {0} is not 400-699")]
    RejectCode(u32),
    /// A redirect code outside 300–399.
    #[error("redirect code {0} is not 300-399")]
    RedirectCode(u32),
    /// A bridge, or a redirect, with no target or too many.
    #[error("{0} targets (1 to {MAX_TARGETS})")]
    Targets(usize),
    /// A target that is not a SIP URI one can send to.
    #[error("target {0:?} is not a sip: or sips: URI")]
    Target(String),
    /// An application without what it needs (a prompt, a room, an agent).
    #[error("{0} without a name")]
    Unnamed(&'static str),
    /// A header or tag name that is not a token, a value with a line
    /// break, or too many or too long.
    #[error("{0}")]
    Field(String),
}

/// Checks `decision` the way the switch does before it acts on it.
pub fn check_decision(decision: &v1::RouteDecision) -> Result<(), InvalidDecision> {
    use v1::answer::App;
    match decision.action.as_ref().ok_or(InvalidDecision::NoAction)? {
        Action::Bridge(b) => {
            check_targets(&b.targets)?;
            check_codecs(&b.codecs)?;
        }
        Action::Reject(r) if !(400..=699).contains(&r.code) => {
            return Err(InvalidDecision::RejectCode(r.code))
        }
        Action::Reject(r) => check_value("reason", &r.reason)?,
        Action::Redirect(r) if r.code != 0 && !(300..=399).contains(&r.code) => {
            return Err(InvalidDecision::RedirectCode(r.code))
        }
        Action::Redirect(r) => check_targets(&r.contacts)?,
        Action::Decline(_) if !decision.add_headers.is_empty() => {
            return Err(InvalidDecision::Field(
                "a decline adds no headers (it has no target)".into(),
            ))
        }
        Action::Decline(d) => check_value("reason", &d.reason)?,
        Action::Answer(a) => match a.app.as_ref().ok_or(InvalidDecision::NoAction)? {
            App::Echo(_) => {}
            App::Play(p) if p.prompt.is_empty() => return Err(InvalidDecision::Unnamed("play")),
            App::Play(p) => {
                if let Some(b) = &p.then_bridge {
                    check_targets(&b.targets)?;
                }
            }
            App::Conference(c) if c.room.is_empty() => {
                return Err(InvalidDecision::Unnamed("conference"))
            }
            App::Conference(_) => {}
            App::Agent(a) if a.plugin.is_empty() => return Err(InvalidDecision::Unnamed("agent")),
            App::Agent(_) => {}
        },
    }
    check_map("header", &decision.add_headers)?;
    check_map("CDR tag", &decision.cdr_tags)?;
    check_value("rule", &decision.rule)
}

/// Whether an agent's CDR tags ([`v1::SetCdrTags`]) can be recorded: as
/// a decision's (names tokens of at most 64 bytes, values without line
/// breaks, at most 32).
pub fn check_tags(tags: &std::collections::HashMap<String, String>) -> Result<(), InvalidDecision> {
    check_map("CDR tag", tags)
}

/// A decision's headers or tags: how many, their names, their values.
fn check_map(
    what: &str,
    map: &std::collections::HashMap<String, String>,
) -> Result<(), InvalidDecision> {
    if map.len() > MAX_ENTRIES {
        return Err(InvalidDecision::Field(format!(
            "{} {what}s (at most {MAX_ENTRIES})",
            map.len()
        )));
    }
    for (name, value) in map {
        let token = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
        if !token {
            return Err(InvalidDecision::Field(format!(
                "{what} name {name:?} is not a token"
            )));
        }
        if what == "header" && SWITCH_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return Err(InvalidDecision::Field(format!(
                "header {name} is the switch's own"
            )));
        }
        check_value(what, value)?;
    }
    Ok(())
}

/// Headers the switch writes in its INVITEs itself (long and compact
/// forms): a decision may not add them.
const SWITCH_HEADERS: &[&str] = &[
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Max-Forwards",
    "Content-Length",
    "l",
    "Content-Type",
    "c",
    "Route",
    "Record-Route",
    "Allow",
    "Supported",
    "k",
    "Require",
    "Proxy-Require",
    "Session-Expires",
    "x",
    "Min-SE",
];

fn check_targets(targets: &[String]) -> Result<(), InvalidDecision> {
    if targets.is_empty() || targets.len() > MAX_TARGETS {
        return Err(InvalidDecision::Targets(targets.len()));
    }
    for t in targets {
        let lower = t.get(..5).map(str::to_ascii_lowercase);
        let sip = lower.as_deref() == Some("sips:")
            || lower.as_deref().is_some_and(|l| l.starts_with("sip:"));
        let host = t.split_once(':').map_or("", |(_, rest)| rest);
        if !sip
            || host.is_empty()
            || t.len() > MAX_VALUE
            || t.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(InvalidDecision::Target(t.clone()));
        }
    }
    Ok(())
}

/// A bridge's codec preference: SDP encoding names (RFC 4566 tokens of
/// letters, digits, `-`, `_`, `.`; at most 32 bytes), at most 16.
fn check_codecs(codecs: &[String]) -> Result<(), InvalidDecision> {
    if codecs.len() > MAX_TARGETS {
        return Err(InvalidDecision::Field(format!(
            "{} codecs (at most {MAX_TARGETS})",
            codecs.len()
        )));
    }
    for c in codecs {
        let name = !c.is_empty()
            && c.len() <= 32
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name {
            return Err(InvalidDecision::Field(format!(
                "codec {c:?} is not an SDP encoding name"
            )));
        }
    }
    Ok(())
}

fn check_value(what: &str, value: &str) -> Result<(), InvalidDecision> {
    if value.len() > MAX_VALUE || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(InvalidDecision::Field(format!(
            "{what} value too long or with a line break"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_the_switch_can_carry_out_pass() {
        for d in [
            bridge(["sip:a@127.0.0.1:5060", "sips:b@example.invalid"]),
            reject(486, "Busy Here"),
            reject(699, ""),
            v1::RouteDecision {
                action: Some(Action::Redirect(v1::Redirect {
                    code: 0,
                    contacts: vec!["sip:x@127.0.0.1".into()],
                })),
                ..v1::RouteDecision::default()
            },
        ] {
            assert_eq!(check_decision(&d), Ok(()), "{d:?}");
        }
        let mut d = bridge(["sip:a@127.0.0.1"]);
        d.add_headers.insert("X-Route".into(), "berlin".into());
        d.cdr_tags.insert("account".into(), "42".into());
        assert_eq!(check_decision(&d), Ok(()));
    }

    #[test]
    fn each_helper_makes_the_decision_it_names() {
        use v1::answer::App;
        let app = |d: &v1::RouteDecision| match &d.action {
            Some(Action::Answer(v1::Answer { app: Some(app) })) => app.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(app(&echo()), App::Echo(v1::Echo {}));
        assert!(
            matches!(app(&play("welcome")), App::Play(p) if p.prompt == "welcome" && p.then_bridge.is_none())
        );
        assert!(matches!(
            app(&play_then_bridge("ringback", ["sip:a@127.0.0.1"])),
            App::Play(v1::Play { then_bridge: Some(b), .. }) if b.targets == ["sip:a@127.0.0.1"]
        ));
        assert!(matches!(app(&conference("sales")), App::Conference(c) if c.room == "sales"));
        assert!(matches!(
            app(&agent("voice", [("greeting", "hello")])),
            App::Agent(a) if a.plugin == "voice" && a.params["greeting"] == "hello"
        ));
        assert!(matches!(
            redirect(["sip:x@127.0.0.1"]).action,
            Some(Action::Redirect(v1::Redirect { code: 302, ref contacts })) if contacts == &["sip:x@127.0.0.1"]
        ));
        assert!(matches!(
            decline("not mine").action,
            Some(Action::Decline(v1::Decline { ref reason })) if reason == "not mine"
        ));
        let d = reject(404, "")
            .with_rule("r")
            .with_tag("a", "1")
            .with_header("X-A", "2");
        assert_eq!(
            (
                d.rule.as_str(),
                d.cdr_tags["a"].as_str(),
                d.add_headers["X-A"].as_str()
            ),
            ("r", "1", "2")
        );
        for d in [
            echo(),
            play("welcome"),
            play_then_bridge("ringback", ["sip:a@127.0.0.1"]),
            conference("sales"),
            agent("voice", [("greeting", "hello")]),
            redirect(["sip:x@127.0.0.1"]),
            decline("").with_tag("seen", "1"),
        ] {
            assert_eq!(check_decision(&d), Ok(()), "{d:?}");
        }
        // A decline has no target for headers; its reason is a value.
        assert!(check_decision(&decline("").with_header("X-A", "1")).is_err());
        assert!(check_decision(&decline("a\r\nVia: x")).is_err());
        assert!(check_decision(&conference("")).is_err());
    }

    #[test]
    fn a_borrowed_request_encodes_as_the_message() {
        use prost::Message;
        let r = RouteRequestRef {
            call_id: "c1@127.0.0.1",
            trace_id: "0123456789abcdef",
            from_uri: "sip:alice@127.0.0.2",
            to_uri: "sip:+4930123@127.0.0.1",
            request_uri: "sip:+4930123@127.0.0.1:5060",
            user: "+4930123",
            from_user: "", // left out, as the message leaves it
            headers: &[("user-agent".to_string(), "sentiric-call".to_string())],
            source: "127.0.0.2:5060",
            transport: "udp",
            time_unix_us: 1_800_000_000_123_456,
        };
        let owned = v1::RouteRequest {
            call_id: r.call_id.into(),
            trace_id: r.trace_id.into(),
            from_uri: r.from_uri.into(),
            to_uri: r.to_uri.into(),
            request_uri: r.request_uri.into(),
            user: r.user.into(),
            from_user: String::new(),
            headers: [("user-agent".to_string(), "sentiric-call".to_string())].into(),
            source: r.source.into(),
            transport: r.transport.into(),
            time_unix_us: r.time_unix_us,
        };
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(buf, owned.encode_to_vec());
        assert_eq!(v1::RouteRequest::decode(buf.as_slice()).unwrap(), owned);
        // Several headers (the owned map's order is its own), one empty.
        let headers = [
            (
                "diversion".to_string(),
                "<sip:a@127.0.0.3>;reason=busy".to_string(),
            ),
            ("p-asserted-identity".to_string(), String::new()),
            ("user-agent".to_string(), "x".to_string()),
        ];
        let mut buf = Vec::new();
        RouteRequestRef {
            headers: &headers,
            ..r
        }
        .encode(&mut buf);
        let decoded = v1::RouteRequest::decode(buf.as_slice()).unwrap();
        assert_eq!(decoded.headers, headers.iter().cloned().collect());
        let mut none = Vec::new();
        RouteRequestRef::default().encode(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn malformed_and_out_of_range_decisions_are_refused() {
        let mut header = bridge(["sip:a@127.0.0.1"]);
        header
            .add_headers
            .insert("X-A".into(), "1\r\nVia: injected".into());
        let mut name = bridge(["sip:a@127.0.0.1"]);
        name.cdr_tags.insert("bad name".into(), "1".into());
        let many = bridge((0..17).map(|i| format!("sip:{i}@127.0.0.1")));
        let cases = [
            (v1::RouteDecision::default(), InvalidDecision::NoAction),
            (reject(700, ""), InvalidDecision::RejectCode(700)),
            (reject(200, ""), InvalidDecision::RejectCode(200)),
            (bridge(Vec::<String>::new()), InvalidDecision::Targets(0)),
            (many, InvalidDecision::Targets(17)),
            (
                bridge(["http://a"]),
                InvalidDecision::Target("http://a".into()),
            ),
            (bridge(["sip:"]), InvalidDecision::Target("sip:".into())),
            (
                bridge(["sip:a@b c"]),
                InvalidDecision::Target("sip:a@b c".into()),
            ),
            (
                v1::RouteDecision {
                    action: Some(Action::Redirect(v1::Redirect {
                        code: 404,
                        contacts: vec!["sip:x@y".into()],
                    })),
                    ..v1::RouteDecision::default()
                },
                InvalidDecision::RedirectCode(404),
            ),
            (
                v1::RouteDecision {
                    action: Some(Action::Answer(v1::Answer {
                        app: Some(v1::answer::App::Play(v1::Play::default())),
                    })),
                    ..v1::RouteDecision::default()
                },
                InvalidDecision::Unnamed("play"),
            ),
        ];
        for (d, why) in cases {
            assert_eq!(check_decision(&d), Err(why), "{d:?}");
        }
        assert!(matches!(
            check_decision(&header),
            Err(InvalidDecision::Field(_))
        ));
        for owned in ["Via", "call-id", "CONTACT", "m"] {
            let mut d = bridge(["sip:a@127.0.0.1"]);
            d.add_headers.insert(owned.into(), "x".into());
            assert_eq!(
                check_decision(&d),
                Err(InvalidDecision::Field(format!(
                    "header {owned} is the switch's own"
                ))),
            );
        }
        assert!(matches!(
            check_decision(&name),
            Err(InvalidDecision::Field(_))
        ));
        let mut codecs = bridge(["sip:a@127.0.0.1"]);
        if let Some(Action::Bridge(b)) = codecs.action.as_mut() {
            b.codecs = vec!["PCMA".into(), "opus".into()];
        }
        assert_eq!(check_decision(&codecs), Ok(()));
        if let Some(Action::Bridge(b)) = codecs.action.as_mut() {
            b.codecs.push("PC\r\nMA".into());
        }
        assert_eq!(
            check_decision(&codecs),
            Err(InvalidDecision::Field(
                "codec \"PC\\r\\nMA\" is not an SDP encoding name".into()
            ))
        );
    }
}
