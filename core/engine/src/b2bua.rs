//! The back-to-back user agent: one call is two dialogs, A (the caller's,
//! where the switch is the UAS) and B (the callee's, where it is the UAC),
//! each with its own Call-ID, tags and CSeq, and media anchored on the
//! switch.
//!
//! Sans-IO like the SIP core under it: [`B2bua::receive`] takes a datagram
//! and where it came from, [`B2bua::handle_timeout`] the time, and
//! [`B2bua::route`] a dialplan's decision; [`B2bua::poll_transmit`],
//! [`B2bua::poll_event`] and [`B2bua::poll_timeout`] give what to send,
//! what happened and when to call again. Media goes through the
//! [`MediaPlane`] the owner supplies: the engine asks it for the switch's
//! address and ports facing each leg and rewrites every SDP body with them.
//!
//! What a call does today (SIP over UDP, or TCP: a caller's connection,
//! a target's `;transport=tcp`):
//! * A configured longest call duration: both legs get BYE at its end.
//! * Session timers (RFC 4028) when the caller asks for them (Supported:
//!   timer, Session-Expires): below 90 s, 422 with Min-SE; otherwise the
//!   2xx names the caller as refresher, each refresh (re-INVITE or UPDATE)
//!   moves the deadline, and without one both legs get BYE before the
//!   interval ends. Towards the callee the switch says `Supported: timer`;
//!   when B's 2xx sets a session timer, the switch refreshes it at half
//!   the interval (`refresher=uac`: UPDATE, or a re-INVITE with the last
//!   offer when B takes no UPDATE; 408, 481 or no answer ends the call)
//!   or expects B's refreshes (`refresher=uas`) and hangs up without one.
//! * Overload: beyond the configured concurrent calls or calls per second,
//!   or while draining, a new INVITE gets 503 with Retry-After; calls up
//!   are not touched.
//! * Every request that starts a transaction is checked first (RFC 3261
//!   §8.2: 400 malformed, 416 scheme, 420 Require, 483 Max-Forwards 0).
//! * INVITE: 100 Trying at once (by the transaction), then a
//!   [`Event::Route`] for the dialplan.
//! * bridge: an INVITE to the first target (Max-Forwards one less than
//!   A's), 180/183 relayed to A (early media through the relay), 2xx ACKed
//!   on B and relayed to A, whose ACK completes the call; a 5xx, 408,
//!   transaction timeout or ring timeout moves a serial bridge to the next
//!   target, any other failure is relayed to A.
//! * late offer (A's INVITE without SDP): B's 2xx carries the offer,
//!   anchored to A; B's ACK waits for A's, and carries its answer.
//! * CANCEL from A before the answer: 200 to the CANCEL, 487 to the INVITE,
//!   CANCEL to B.
//! * BYE from either side: 200 there, BYE to the other side.
//! * re-INVITE from either side once the call is up (hold, resume, a new
//!   address or codec): relayed on the other dialog with its SDP anchored
//!   (the relay takes the new address), the 2xx ACKed there and the
//!   answer relayed back; 491 while another is pending. UPDATE (RFC
//!   3311) the same way, without the ACK.
//! * codecs: offers carry the switch's codecs after the offerer's, and a
//!   call whose legs share none is transcoded ([`crate::codecs`]); RFC
//!   4733 events for a leg without telephone-event become tones.
//! * echo: the switch answers (SDP answer on its port facing A) and the
//!   media plane sends A's audio back.
//! * play, then hang up: the switch answers in G.711 and the media plane
//!   plays the prompt; its owner calls [`B2bua::prompt_over`] at the end.
//! * conference: the switch answers in G.711 and the media plane mixes
//!   the room (each member hears everyone else).
//! * agent, then a blind transfer ([`B2bua::transfer`]): the switch
//!   answers for the agent; the agent hands the call on to a target,
//!   which is invited while A stays on the agent; its 2xx is ACKed and its
//!   media joins A's as A's was answered (transcoded if need be), A is
//!   told nothing; its failure hangs A up, A's BYE meanwhile cancels it.
//! * parallel forking: every target at once; provisional responses go to
//!   A, the first 2xx wins and the other forks are cancelled (a 2xx that
//!   crosses the CANCEL is ACKed and hung up), and when every fork has
//!   failed A gets the best failure (RFC 3261 §16.7: 6xx first, then the
//!   lowest class).
//! * play, then continue: the prompt goes out as early media (183 with
//!   the switch's SDP; A is not answered, so not billed), and when it is
//!   over the dialplan's next action runs: a bridge keeps A's media as
//!   the 183 settled it (B's answer is anchored and transcoded to it if
//!   need be, A gets the same SDP in the 200), a reject ends the call
//!   with its code after the announcement. Another local answer after it
//!   (echo, conference, a second prompt) is 501.
//! * reject: the dialplan's code.
//! * INFO in a dialog (RFC 6086: DTMF as `application/dtmf-relay`, other
//!   packages): relayed to the other leg with its body, its answer
//!   relayed back (408 when none comes).
//! * OPTIONS outside a dialog: 200 with Allow. Requests for dialogs the
//!   switch does not know, and NOTIFY for no subscription: 481.
//!   SUBSCRIBE: 489 (no event package is offered, RFC 6665). Other
//!   requests: 501.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentiric_sip::build::{response_to, MessageBuilder};
use sentiric_sip::check::{check_request, RequestPolicy};
use sentiric_sip::dialog::Dialog;
use sentiric_sip::transaction::{
    IncomingRequest, IncomingResponse, Reliability, TimerConfig, TransactionEvent, TransactionId,
    TransactionLayer,
};
use sentiric_sip::{HeaderName, Host, Message, Method, Request, Response, Uri};

use crate::codecs::{self, LegFormat, OfferRecord, Transcoding};
use crate::dialplan::{reason_phrase, Action, AfterPlay, Fork, Transport};
use sentiric_sdp::offer_answer::{answer, Codec, LocalMedia};
use sentiric_sdp::session::Direction;

/// A call, as the engine names it to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller's leg: the switch answered its INVITE.
    A,
    /// The callee's leg: the switch sent the INVITE.
    B,
}

/// `A` (the caller's leg) or `B` (the callee's).
impl std::fmt::Display for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Leg::A => "A",
            Leg::B => "B",
        })
    }
}

impl Leg {
    /// The other side.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }
}

/// The switch's media endpoint for one leg: where that leg's peer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEndpoint {
    /// The address written into the SDP.
    pub ip: IpAddr,
    /// A port per media stream of the SDP, `None` to refuse the stream.
    pub ports: Vec<Option<u16>>,
}

/// Why media could not be anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// No ports left: the call gets 503.
    Exhausted,
    /// The SDP cannot be anchored (no usable stream): 488.
    NotAcceptable,
}

/// The data plane as the B2BUA sees it.
pub trait MediaPlane {
    /// `from` described its media in `sdp`; the switch will forward what
    /// the other leg sends to those addresses. Returns the switch's
    /// endpoint facing the other leg, to be written into the SDP sent there.
    fn offer(
        &mut self,
        call: CallRef,
        from: Leg,
        sdp: &sentiric_sdp::SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError>;

    /// The switch answers `call` itself and sends back what A sends (the
    /// echo test); A described its media in `sdp`. Returns the switch's
    /// endpoint facing A.
    fn echo(
        &mut self,
        call: CallRef,
        sdp: &sentiric_sdp::SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError>;

    /// The switch answers `call` itself and plays `prompt` to A (a path,
    /// or `builtin:NAME`), in G.711 as the answer chooses from A's offer
    /// (the first of PCMU and PCMA in its order; Opus too when the media
    /// plane [`MediaPlane::transcodes`]); when the prompt is over
    /// the owner calls [`B2bua::prompt_over`]. Returns the endpoint facing A.
    fn play(
        &mut self,
        call: CallRef,
        sdp: &sentiric_sdp::SessionDescription<'_>,
        prompt: &str,
    ) -> Result<MediaEndpoint, MediaError>;

    /// The switch answers `call` itself and joins A to the conference
    /// `room` (created with its first member), in G.711 as the answer
    /// chooses from A's offer. Returns the endpoint facing A.
    fn conference(
        &mut self,
        call: CallRef,
        sdp: &sentiric_sdp::SessionDescription<'_>,
        room: &str,
    ) -> Result<MediaEndpoint, MediaError>;

    /// The switch answers `call` itself and connects A to the agent
    /// `agent` (its audio both ways), in G.711 as the answer chooses from
    /// A's offer. Returns the endpoint facing A.
    fn agent(
        &mut self,
        call: CallRef,
        sdp: &sentiric_sdp::SessionDescription<'_>,
        agent: &str,
    ) -> Result<MediaEndpoint, MediaError>;

    /// The call is over: its ports can go back to the pool.
    fn release(&mut self, call: CallRef);

    /// Whether this media plane transcodes: when it does, offers relayed
    /// from one leg to the other carry the switch's codecs after the
    /// offerer's (see [`crate::codecs`]).
    fn transcodes(&self) -> bool {
        false
    }

    /// The legs of `call` settled their codecs: `Some` when they share
    /// none and media must be transcoded between the two, `None` when it
    /// is relayed as it comes. Called after the [`MediaPlane::offer`] of
    /// every answer.
    fn transcode(&mut self, call: CallRef, plan: Option<Transcoding>) {
        let _ = (call, plan);
    }
}

/// Which side of an offer/answer exchange an SDP body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SdpRole {
    Offer,
    Answer,
}

/// Why a new request was refused with 503 and Retry-After: overload
/// protection and drain. Counted ([`B2bua::refusals`]) so the shell can
/// say so in a metric and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The switch is draining (SIGTERM).
    Draining = 0,
    /// Held by the shell ([`B2bua::hold_new_calls`]: the event outbox is
    /// full).
    Held = 1,
    /// [`B2buaConfig::max_calls`] calls are up.
    MaxCalls = 2,
    /// Beyond [`B2buaConfig::max_cps`].
    MaxCps = 3,
    /// The transaction table holds [`B2buaConfig::max_transactions`].
    Transactions = 4,
}

impl Refusal {
    /// Every reason, in the order of [`Refusals`]' counts.
    pub const ALL: [Refusal; 5] = [
        Refusal::Draining,
        Refusal::Held,
        Refusal::MaxCalls,
        Refusal::MaxCps,
        Refusal::Transactions,
    ];

    /// The reason as a metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Draining => "draining",
            Refusal::Held => "held",
            Refusal::MaxCalls => "max_calls",
            Refusal::MaxCps => "max_cps",
            Refusal::Transactions => "transactions",
        }
    }

    /// The Retry-After of the 503, in seconds.
    pub fn retry_after(self) -> u32 {
        match self {
            Refusal::Draining => 30,
            Refusal::MaxCps => 1,
            Refusal::Held | Refusal::MaxCalls | Refusal::Transactions => 5,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// New requests refused so far, per [`Refusal`] (in [`Refusal::ALL`]'s
/// order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals(pub [u64; 5]);

impl Refusals {
    /// The count for `reason`.
    pub fn get(&self, reason: Refusal) -> u64 {
        self.0[reason as usize]
    }

    fn add(&mut self, reason: Refusal) {
        self.0[reason as usize] += 1;
    }
}

/// What a call's owner learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new call waits for a routing decision ([`B2bua::route`]).
    Route {
        /// The call.
        call: CallRef,
        /// The caller's Call-ID (the A dialog's), for logs and records.
        call_id: String,
        /// The Request-URI.
        request_uri: String,
        /// Its user part.
        user: Option<String>,
        /// The From URI.
        from_uri: String,
        /// The To URI (the callee as the caller addressed it).
        to_uri: String,
        /// Its user part.
        from_user: Option<String>,
        /// Where the INVITE came from.
        source: SocketAddr,
        /// On which transport.
        transport: Transport,
        /// Its headers among [`B2buaConfig::route_headers`] it has: names
        /// lower case, a repeated header's values joined with `, `.
        headers: Vec<(String, String)>,
    },
    /// A was told the call rings (180) or has early media (183): once per
    /// status code and call.
    Ringing {
        /// The call.
        call: CallRef,
        /// 180, 183 or another 18x.
        status: u16,
        /// The response carried SDP (media flows before the answer).
        early_media: bool,
    },
    /// A target of the call's dialplan decision was not tried (a B leg
    /// the switch cannot reach as the URI asks): the call moves on.
    TargetRefused {
        /// The call.
        call: CallRef,
        /// The target URI.
        target: String,
        /// Why.
        why: TargetRefusal,
    },
    /// A leg of an answered call is gone ([`B2bua::probe`]: its dialog
    /// unknown there, or no answer): the switch hangs the call up; its
    /// [`Event::Ended`] follows.
    Lost {
        /// The call.
        call: CallRef,
        /// The leg that is gone.
        leg: Leg,
    },
    /// Both legs are up.
    Answered {
        /// The call.
        call: CallRef,
    },
    /// The call is over.
    Ended {
        /// The call.
        call: CallRef,
        /// The final status A got, or 200 for a call that was answered.
        status: u16,
        /// Who ended it: the leg that hung up, or `None` when the switch did.
        by: Option<Leg>,
    },
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// A request to a B leg (or its ACK): goes out from
    /// [`B2buaConfig::b_local`] when there is one.
    pub from_b: bool,
    /// For a TCP target: the owner sends it on a connection to `to`,
    /// opening one when there is none (and tells
    /// [`B2bua::transport_failed`] when that fails).
    pub stream: bool,
}

/// The token prefix of data-plane worker `index` when several share the
/// switch's address ([`B2buaConfig::token_prefix`]).
pub fn worker_prefix(index: usize) -> String {
    format!("w{index}x")
}

/// Which of several workers owns `msg`, from the token of the switch's own
/// it carries ([`worker_prefix`]): a response's top Via branch (it answers
/// the switch's request), a request's To tag (a dialog the switch is in).
/// `None` for a request outside any dialog, or a token not the switch's:
/// whoever receives it takes it.
pub fn owner_of(msg: &Message<'_>) -> Option<usize> {
    let token = match (msg.as_response(), msg.as_request()) {
        (Some(r), _) => r.via().branch()?.strip_prefix("z9hG4bK")?,
        (_, Some(r)) => r.to().tag()?,
        _ => return None,
    };
    token.strip_prefix('w')?.split_once('x')?.0.parse().ok()
}

/// The B2BUA's settings.
#[derive(Debug, Clone)]
pub struct B2buaConfig {
    /// The switch's SIP address, for Via and Contact.
    pub local: SocketAddr,
    /// The SIP address of this engine's own socket, for Via and Contact
    /// on B legs (several workers share `local`; B's responses and
    /// requests then reach the worker that owns the call). `local` when
    /// `None`.
    pub b_local: Option<SocketAddr>,
    /// Prefix of every tag, branch and Call-ID this engine mints, so that
    /// a message can be told apart as another engine's.
    pub token_prefix: String,
    /// RFC 3261 timers.
    pub timers: TimerConfig,
    /// Most server transactions alive at once; beyond, new requests get
    /// 503 (counted as [`Refusal::Transactions`]). Transactions rightly
    /// linger 64×T1 (32 s) after their last message (RFC 3261 Timer J,
    /// RFC 6026 Timers L and M), about four a call: a worker taking
    /// 1,000 calls/s holds ~130,000. The shell sizes it from memory; the
    /// switch's own requests (BYE, CANCEL) may use as many again, so that
    /// a call up can always be ended.
    pub max_transactions: usize,
    /// Seeds the tags, branches and Call-IDs the switch mints (give each
    /// process a random one).
    pub seed: u64,
    /// Most calls at once; beyond, new INVITEs get 503 with Retry-After.
    pub max_calls: Option<usize>,
    /// Most new calls per second (a token bucket holding one second's
    /// worth); beyond, new INVITEs get 503 with Retry-After.
    pub max_cps: Option<u32>,
    /// Longest a call may last once answered; then both legs get BYE.
    pub max_call_duration: Option<Duration>,
    /// The INVITE's headers passed to the dialplan with [`Event::Route`]
    /// (P-Asserted-Identity, Diversion and User-Agent by default).
    pub route_headers: Vec<String>,
    /// Holds the messages that end a call — its final response, its
    /// BYEs, the 200 to a BYE or CANCEL — and whatever its transactions
    /// send after, until the owner calls [`B2bua::release`] for it: the
    /// shell does once the call's end is recorded durably
    /// (`[events] durable_end`). Every [`Event::Ended`] then needs its
    /// release. Off by default.
    pub hold_ends: bool,
}

impl B2buaConfig {
    /// Defaults for a switch at `local`.
    pub fn new(local: SocketAddr, seed: u64) -> B2buaConfig {
        B2buaConfig {
            local,
            b_local: None,
            token_prefix: String::new(),
            timers: TimerConfig::default(),
            max_transactions: 500_000,
            seed,
            max_calls: None,
            max_cps: None,
            max_call_duration: None,
            route_headers: ["P-Asserted-Identity", "Diversion", "User-Agent"]
                .map(String::from)
                .to_vec(),
            hold_ends: false,
        }
    }
}

/// An ended call's messages waiting for [`B2bua::release`]
/// ([`B2buaConfig::hold_ends`]).
#[derive(Debug, Default)]
struct Held {
    /// In the order they were made, by the transaction that made each;
    /// a retransmission of one already here is left out (one copy goes
    /// on release; the transaction retransmits again after it).
    out: Vec<(TransactionId, Outgoing)>,
    /// The call's transactions: what they send joins `out`.
    txs: Vec<TransactionId>,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the dialplan.
    Routing,
    /// B's INVITE is out.
    Calling,
    /// B answered; waiting for A's ACK of the relayed 2xx.
    Answered,
    /// Both legs confirmed.
    Up,
    /// BYE sent to one side, waiting for its answer.
    Ending,
}

#[derive(Debug)]
struct LegB {
    invite_tx: TransactionId,
    /// The INVITE as sent, for CANCEL and failover.
    invite: Arc<[u8]>,
    to: SocketAddr,
    call_id: String,
    from_tag: String,
    dialog: Option<Dialog>,
    /// The CSeq of the INVITE (for the ACK).
    seq: u32,
    cancelled: bool,
    /// Over TCP (the target's `transport=tcp`): one connection to `to`
    /// carries the leg's messages both ways, nothing is retransmitted.
    tcp: bool,
}

#[derive(Debug)]
struct Call {
    state: State,
    /// A's INVITE as received.
    a_invite: Arc<[u8]>,
    /// A's INVITE had no SDP: B's 2xx carries the offer, A's ACK the
    /// answer, and B's ACK waits for it (RFC 3264 §4, "late offer").
    late_offer: bool,
    /// B's 2xx is waiting for A's ACK (the answer) to be ACKed.
    b_ack_pending: bool,
    a_tx: TransactionId,
    a_source: SocketAddr,
    /// How A reached the switch; over a stream, A's requests and the
    /// switch's go on A's connection and nothing is retransmitted.
    a_transport: Transport,
    a_tag: String,
    a_dialog: Option<Dialog>,
    b: Option<LegB>,
    /// Parallel forking: the targets still ringing, before one answers.
    forks: Vec<LegB>,
    /// The best failure heard from a fork so far (RFC 3261 §16.7).
    best_failure: Option<(u16, String)>,
    targets: Vec<String>,
    /// Headers the dialplan adds to each INVITE to a target.
    headers: Vec<(String, String)>,
    /// Codecs the dialplan prefers towards the targets, by SDP name.
    prefer: Vec<String>,
    next_target: usize,
    ring_timeout: Duration,
    ring_deadline: Option<Instant>,
    /// The provisional codes A was sent so far ([`Event::Ringing`]).
    rang: Vec<u16>,
    /// The codec each leg settled on, from the SDP that answered it
    /// (`PCMU/8000`; [`B2bua::codecs`]).
    codecs: (Option<String>, Option<String>),
    /// The relayed 2xx, retransmitted until A's ACK (§13.3.1.4).
    a_answer: Option<(Vec<u8>, Instant, Duration, Instant)>,
    answered: bool,
    /// When the call reaches its longest allowed duration.
    end_by: Option<Instant>,
    /// The session interval A asked for (RFC 4028), with A refreshing.
    session_expires: Option<u32>,
    /// When the switch gives up on A's refresh and hangs up.
    session_deadline: Option<Instant>,
    /// The session timer B asked for in its 2xx (RFC 4028), when it did.
    b_timer: Option<BTimer>,
    /// The last SDP offer the switch sent B, for a re-INVITE refresh.
    b_sdp: Option<Arc<[u8]>>,
    /// A re-INVITE from one leg being relayed to the other.
    reinvite: Option<Reinvite>,
    /// The last offer relayed, from which leg and as it was made: its
    /// answer is settled against it.
    offer: Option<(Leg, OfferRecord)>,
    /// A's media as the switch itself answered it (in the 183 of a prompt
    /// the dialplan continues after): B's answers are settled against it,
    /// and A is sent this SDP, not B's.
    a_media: Option<(Arc<[u8]>, LegFormat)>,
    /// Being handed on to B ([`B2bua::transfer`]): A is answered, B not
    /// yet.
    transferring: bool,
    /// What the dialplan does once the prompt being played is over.
    after_play: Option<Action>,
    /// The last ACK sent on each leg (A, B), resent when a 2xx is.
    last_ack: [Option<(Arc<[u8]>, SocketAddr)>; 2],
    /// The entries this call has in `by_tx` and `by_dialog`, removed
    /// with it (`tx_ids` holds its server transactions in dialog, and a
    /// CANCEL's, too: what they answer may end the call).
    tx_ids: Vec<TransactionId>,
    dialog_keys: Vec<(String, String)>,
}

impl Call {
    /// The call's pending deadlines.
    fn deadlines(&self) -> [Option<Instant>; 5] {
        [
            self.ring_deadline,
            self.a_answer.as_ref().map(|a| a.1),
            self.end_by,
            self.session_deadline,
            self.b_timer.as_ref().map(|t| t.due),
        ]
    }
}

/// A session timer on the B leg (RFC 4028), as B's 2xx set it.
#[derive(Debug, Clone, Copy)]
struct BTimer {
    /// The session interval, seconds.
    interval: u32,
    /// The switch refreshes (`refresher=uac`); else B does.
    switch_refreshes: bool,
    /// The next refresh the switch sends, or when it gives up on B's.
    due: Instant,
    /// B takes UPDATE (its Allow says so): refreshes are UPDATEs without
    /// a body, else re-INVITEs with the last offer B was sent.
    update: bool,
}

/// A re-INVITE in flight (RFC 3261 §14): from `from`, relayed on the other
/// leg's dialog.
#[derive(Debug)]
struct Reinvite {
    from: Leg,
    /// The request as received, to answer it.
    request: Arc<[u8]>,
    server_tx: TransactionId,
    /// The CSeq of the relayed INVITE, for its ACK.
    seq: u32,
    /// An UPDATE (RFC 3311): no ACK.
    update: bool,
}

/// What the switch itself answers a call with.
#[derive(Debug, Clone, Copy)]
enum Local<'a> {
    Echo,
    Play(&'a str),
    /// A prompt in early media, before the dialplan goes on.
    Announce(&'a str),
    Conference(&'a str),
    Agent(&'a str),
}

fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

/// What a transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxRole {
    BInvite,
    /// A session refresh the switch sent B (RFC 4028).
    Refresh,
    /// A request relayed to this leg (INFO): its answer goes back to the
    /// leg that sent it ([`B2bua::relays`]).
    Relay(Leg),
    /// A re-INVITE or UPDATE relayed to this leg.
    ReInvite(Leg),
    Bye(Leg),
    Cancel,
    /// An in-dialog OPTIONS asking whether the leg is still there.
    Probe(Leg),
}

impl TxRole {
    /// A request to the B leg: sent from [`B2buaConfig::b_local`].
    fn to_b(self) -> bool {
        matches!(
            self,
            TxRole::BInvite
                | TxRole::Cancel
                | TxRole::Refresh
                | TxRole::Bye(Leg::B)
                | TxRole::ReInvite(Leg::B)
                | TxRole::Relay(Leg::B)
                | TxRole::Probe(Leg::B)
        )
    }
}

/// Over a stream (`stream`), nothing is retransmitted.
fn reliability(stream: bool) -> Reliability {
    if stream {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

/// The B2BUA.
pub struct B2bua<M> {
    cfg: B2buaConfig,
    layer: TransactionLayer<SocketAddr>,
    media: M,
    calls: HashMap<CallRef, Call>,
    /// Server transaction of A's INVITE → call.
    by_a_tx: HashMap<TransactionId, CallRef>,
    /// Client transactions the calls sent.
    by_tx: HashMap<TransactionId, (CallRef, TxRole)>,
    /// Client transactions towards B legs, until they end: sent from
    /// [`B2buaConfig::b_local`].
    b_txs: std::collections::HashSet<TransactionId>,
    /// Client transactions to TCP targets, until they end.
    tcp_txs: std::collections::HashSet<TransactionId>,
    /// Requests relayed from one leg to the other (INFO): the relayed
    /// request's transaction → the original's server transaction and the
    /// original, to answer it.
    relays: HashMap<TransactionId, (TransactionId, Arc<[u8]>)>,
    /// (Call-ID, the switch's tag) → call and leg, for in-dialog requests.
    by_dialog: HashMap<(String, String), (CallRef, Leg)>,
    next_call: u64,
    counter: u64,
    out: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    /// CPS tokens left and when they were last refilled.
    cps: (f64, Option<Instant>),
    /// Calls' deadlines, earliest first; an entry whose time is no longer
    /// one of its call's deadlines is skipped.
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, CallRef)>>,
    draining: bool,
    /// New calls refused for a reason outside the engine (the event
    /// outbox full): 503 with Retry-After until lifted.
    holding: bool,
    /// New requests refused so far, by reason.
    refusals: Refusals,
    /// Ended calls whose last messages wait for [`B2bua::release`].
    held: HashMap<CallRef, Held>,
    /// The transactions of those calls → the call.
    held_txs: HashMap<TransactionId, CallRef>,
}

impl<M> std::fmt::Debug for B2bua<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// Why a target URI is not tried. Each makes the target fail (the call
/// moves on to its next target, or A gets 502) and is reported
/// ([`Event::TargetRefused`]); none is silently reached another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetRefusal {
    /// Not a SIP URI the switch can parse.
    Invalid,
    /// `sips:` or `;transport=tls`: only ever reached over TLS (RFC 3261
    /// §26.2.2), which the switch does not speak yet; never downgraded to
    /// UDP or TCP.
    NeedsTls,
    /// A transport the switch does not speak (`sctp`, `ws`, …).
    Transport,
    /// A host name: it needs the resolver (RFC 3263), to come.
    HostName,
}

impl std::fmt::Display for TargetRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetRefusal::Invalid => "not a SIP URI",
            TargetRefusal::NeedsTls => {
                "a sips: or transport=tls target is reached over TLS only, which this switch does not speak yet (no downgrade to UDP or TCP)"
            }
            TargetRefusal::Transport => "a transport this switch does not speak",
            TargetRefusal::HostName => {
                "a host name: the switch reaches IP addresses only until it resolves names (RFC 3263)"
            }
        })
    }
}

/// What makes an INVITE's SDP offer one the switch cannot take, as a
/// Warning code (RFC 3261 §20.43: 302 incompatible transport, 304 media
/// type not available, 399 other) and its text; `None` when it can (or
/// there is no offer: the late offer). Answered 488 with the Warning at
/// once, whatever the dialplan would do: never left unanswered, never
/// answered in another way than offered (an SRTP offer is not answered in
/// clear).
fn offer_problem(req: &Request<'_>) -> Option<(u16, String)> {
    if req.body.is_empty() {
        return None;
    }
    let ctype = req.headers.value(HeaderName::ContentType).unwrap_or("");
    let sdp = ctype
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp {
        return None;
    }
    let offer = match sentiric_sdp::SessionDescription::parse(req.body) {
        Ok(o) => o,
        Err(e) => return Some((399, format!("the SDP offer does not parse: {e}"))),
    };
    let Some(i) = offer
        .media
        .iter()
        .position(|m| m.kind.eq_ignore_ascii_case("audio") && m.port != 0)
    else {
        let disabled = offer
            .media
            .iter()
            .any(|m| m.kind.eq_ignore_ascii_case("audio"));
        return Some((
            304,
            if disabled {
                "the offer's audio stream is disabled (port 0)".to_string()
            } else {
                "the offer has no audio stream".to_string()
            },
        ));
    };
    if i != 0 {
        return Some((
            304,
            "the audio stream must be the offer's first".to_string(),
        ));
    }
    let proto = offer.media[i].proto.as_ref();
    if proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF") {
        return None;
    }
    Some((
        302,
        if proto.to_ascii_uppercase().contains("SAVP") {
            format!(
                "{proto}: SRTP is not supported yet (an offer with keys is not answered in clear)"
            )
        } else {
            format!("{proto}: the switch speaks RTP/AVP only")
        },
    ))
}

/// Where a target URI is reached: its host, which must be an IP address
/// here, and port (5060), and whether over TCP (`;transport=tcp`).
fn target(uri: &str) -> Result<(SocketAddr, bool), TargetRefusal> {
    let u = Uri::parse(uri).map_err(|_| TargetRefusal::Invalid)?;
    let sip = u.as_sip().ok_or(TargetRefusal::Invalid)?;
    let transport = sip.params.get("transport").flatten();
    let tcp = match transport {
        _ if sip.secure => return Err(TargetRefusal::NeedsTls),
        None => false,
        Some(t) if t.eq_ignore_ascii_case("udp") => false,
        Some(t) if t.eq_ignore_ascii_case("tcp") => true,
        Some(t) if t.eq_ignore_ascii_case("tls") => return Err(TargetRefusal::NeedsTls),
        Some(_) => return Err(TargetRefusal::Transport),
    };
    let ip = match sip.host {
        Host::Ipv4(v4) => IpAddr::V4(v4),
        Host::Ipv6(v6) => IpAddr::V6(v6),
        Host::Domain(_) => return Err(TargetRefusal::HostName),
    };
    Ok((SocketAddr::new(ip, sip.port.unwrap_or(5060)), tcp))
}

/// The address of an in-dialog remote target (a Contact) over a
/// datagram transport, when it names one the switch reaches.
fn target_addr(uri: &str) -> Option<SocketAddr> {
    target(uri).ok().map(|(addr, _)| addr)
}

impl<M: MediaPlane> B2bua<M> {
    /// A B2BUA over `media`.
    pub fn new(cfg: B2buaConfig, media: M) -> B2bua<M> {
        let layer = TransactionLayer::new(cfg.timers, cfg.max_transactions);
        B2bua {
            cfg,
            layer,
            media,
            calls: HashMap::new(),
            by_a_tx: HashMap::new(),
            by_tx: HashMap::new(),
            b_txs: std::collections::HashSet::new(),
            tcp_txs: std::collections::HashSet::new(),
            relays: HashMap::new(),
            by_dialog: HashMap::new(),
            next_call: 1,
            counter: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            cps: (0.0, None),
            timers: std::collections::BinaryHeap::new(),
            draining: false,
            holding: false,
            refusals: Refusals::default(),
            held: HashMap::new(),
            held_txs: HashMap::new(),
        }
    }

    /// While `on`, new INVITEs get 503 with Retry-After (5 s); calls up
    /// carry on. For the shell: the switch refuses calls it could not
    /// account for (its event outbox is full).
    pub fn hold_new_calls(&mut self, on: bool) {
        self.holding = on;
    }

    /// The codec each leg of `call` settled on, caller's then callee's
    /// (a leg the switch answers itself, or not yet answered: `None`).
    pub fn codecs(&self, call: CallRef) -> (Option<&str>, Option<&str>) {
        self.calls.get(&call).map_or((None, None), |c| {
            (c.codecs.0.as_deref(), c.codecs.1.as_deref())
        })
    }

    /// Stops taking calls: new INVITEs get 503 with Retry-After, calls up
    /// carry on until they end (or [`B2bua::hang_up_all`]).
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// `true` once [`B2bua::drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Ends every call now: BYE on both legs of answered calls, CANCEL
    /// and 503 for calls still ringing (the end of a drain timeout).
    pub fn hang_up_all(&mut self, now: Instant) {
        let calls: Vec<CallRef> = self.calls.keys().copied().collect();
        for call in calls {
            let answered = self.calls.get(&call).is_some_and(|c| c.answered);
            if answered {
                self.bye(now, call, Leg::A);
                self.bye(now, call, Leg::B);
                self.end(call, 200, None);
            } else {
                self.cancel_b(now, call);
                self.fail_a(now, call, 503, "Service Unavailable");
            }
        }
        self.drain_layer(now);
    }

    /// Queues `call`'s deadlines for [`B2bua::handle_timeout`] (after any
    /// of them was set).
    fn schedule(&mut self, call: CallRef) {
        if let Some(c) = self.calls.get(&call) {
            for t in c.deadlines().into_iter().flatten() {
                self.timers.push(std::cmp::Reverse((t, call)));
            }
        }
    }

    /// Maps a client transaction to the call, for its responses.
    /// Tracks a client transaction `call` started as `role`; `stream`: it
    /// runs over a TCP connection (to B: one the worker opens if need be).
    fn track_tx(&mut self, tx: TransactionId, call: CallRef, role: TxRole, stream: bool) {
        if role.to_b() {
            self.b_txs.insert(tx);
            if stream {
                self.tcp_txs.insert(tx);
            }
        }
        self.by_tx.insert(tx, (call, role));
        if let Some(c) = self.calls.get_mut(&call) {
            c.tx_ids.push(tx);
        }
    }

    /// Maps a dialog (Call-ID, the switch's tag) to the call and leg.
    fn track_dialog(&mut self, key: (String, String), call: CallRef, leg: Leg) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.dialog_keys.push(key.clone());
        }
        self.by_dialog.insert(key, (call, leg));
    }

    /// New requests refused so far (503 with Retry-After), by reason.
    pub fn refusals(&self) -> Refusals {
        self.refusals
    }

    /// Transactions alive (lingering ones included).
    pub fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// Whether a new call may start, or why not.
    fn admit(&mut self, now: Instant) -> Result<(), Refusal> {
        if self.draining {
            return Err(Refusal::Draining);
        }
        if self.holding {
            return Err(Refusal::Held);
        }
        if self
            .cfg
            .max_calls
            .is_some_and(|max| self.calls.len() >= max)
        {
            return Err(Refusal::MaxCalls);
        }
        if let Some(cps) = self.cfg.max_cps {
            let cap = f64::from(cps.max(1));
            let (tokens, at) = self.cps;
            let refill = at.map_or(cap, |at| {
                now.saturating_duration_since(at).as_secs_f64() * cap
            });
            let tokens = (tokens + refill).min(cap);
            if tokens < 1.0 {
                self.cps = (tokens, Some(now));
                return Err(Refusal::MaxCps);
            }
            self.cps = (tokens - 1.0, Some(now));
        }
        Ok(())
    }

    /// The media plane.
    pub fn media(&self) -> &M {
        &self.media
    }

    /// The media plane, to drain what it queued.
    pub fn media_mut(&mut self) -> &mut M {
        &mut self.media
    }

    /// Calls alive.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// A token nobody else has: tags, branches, Call-IDs.
    fn token(&mut self) -> String {
        self.counter += 1;
        let x = self
            .cfg
            .seed
            .wrapping_add(self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        format!("{}{:016x}", self.cfg.token_prefix, x ^ (x >> 29))
    }

    /// The switch's address facing `leg`.
    fn local(&self, leg: Leg) -> SocketAddr {
        match (leg, self.cfg.b_local) {
            (Leg::B, Some(b)) => b,
            _ => self.cfg.local,
        }
    }

    /// Whether `leg` of `call` runs over a stream (TCP).
    fn stream(&self, call: CallRef, leg: Leg) -> bool {
        self.calls.get(&call).is_some_and(|c| match leg {
            Leg::A => c.a_transport != Transport::Udp,
            Leg::B => c.b.as_ref().is_some_and(|b| b.tcp),
        })
    }

    /// A Via for a request on `leg` of `call`, with a new branch.
    fn via(&mut self, call: CallRef, leg: Leg) -> String {
        let tcp = self.stream(call, leg);
        self.via_over(leg, tcp)
    }

    fn via_over(&mut self, leg: Leg, tcp: bool) -> String {
        let branch = self.token();
        // Over TCP, B reaches the switch where it listens for TCP.
        let (proto, local) = if tcp {
            ("TCP", self.cfg.local)
        } else {
            ("UDP", self.local(leg))
        };
        format!("SIP/2.0/{proto} {local};branch=z9hG4bK{branch}")
    }

    /// The switch's Contact on `leg` of `call`.
    fn contact(&self, call: CallRef, leg: Leg) -> String {
        if self.stream(call, leg) {
            format!("<sip:{};transport=tcp>", self.cfg.local)
        } else {
            format!("<sip:{}>", self.local(leg))
        }
    }

    /// A datagram arrived from `source`.
    pub fn receive(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) {
        self.receive_over(now, bytes, source, Transport::Udp);
    }

    /// A message arrived from `source` over `transport` (over a stream,
    /// one framed message; the owner sends what answers `source` back on
    /// the same connection).
    pub fn receive_over(
        &mut self,
        now: Instant,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) {
        let Ok(msg) = Message::parse(bytes) else {
            // Malformed input: answered statelessly by the server's shell
            // (`build::stateless_response`), or dropped.
            return;
        };
        self.receive_message(now, &msg, source, transport);
    }

    /// Whether `req` is a retransmission of a request this engine is
    /// already serving (its server transaction is alive): a worker
    /// keeps such a request rather than hand it to another as new.
    pub fn is_retransmission(&self, req: &Request<'_>) -> bool {
        self.layer.has_server_transaction(req)
    }

    /// [`B2bua::receive_over`] for a message its owner has parsed already.
    pub fn receive_message(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        source: SocketAddr,
        transport: Transport,
    ) {
        if let Some(req) = msg.as_request() {
            // The top Via stamped with where the request came from (RFC
            // 3261 §18.2.1, RFC 3581): its responses carry it back.
            match sentiric_sip::build::stamp_via(req, source) {
                Some(stamped) => match Message::parse(&stamped) {
                    Ok(Message::Request(stamped)) => {
                        self.on_request(now, &stamped, source, transport)
                    }
                    _ => self.on_request(now, req, source, transport),
                },
                None => self.on_request(now, req, source, transport),
            }
        } else if let Some(resp) = msg.as_response() {
            self.on_response(now, resp);
        }
        self.drain_layer(now);
    }

    fn respond(&mut self, now: Instant, tx: TransactionId, bytes: Vec<u8>) {
        let _ = self.layer.send_response(now, tx, bytes);
    }

    fn on_request(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        source: SocketAddr,
        transport: Transport,
    ) {
        let reliability = if transport == Transport::Udp {
            Reliability::Unreliable
        } else {
            Reliability::Reliable
        };
        match self.layer.receive_request(now, req, source, reliability) {
            IncomingRequest::New(tx) => self.on_new_request(now, tx, req, source, transport),
            IncomingRequest::Cancel { id, invite } => {
                let status = if invite.is_some() { 200 } else { 481 };
                let resp = response_to(req, status, reason_phrase_any(status), None).finish();
                self.respond(now, id, resp);
                if let Some(call) = invite.and_then(|i| self.by_a_tx.get(&i).copied()) {
                    // Its 200 is one of the messages that end the call.
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.tx_ids.push(id);
                    }
                    self.cancel_call(now, call);
                }
            }
            IncomingRequest::Ack { .. } => self.on_ack(req),
            IncomingRequest::Absorbed => {}
            IncomingRequest::Overloaded => {
                self.refusals.add(Refusal::Transactions);
                let retry = Refusal::Transactions.retry_after().to_string();
                let resp = response_to(req, 503, "Service Unavailable", None)
                    .header(HeaderName::RetryAfter, &retry)
                    .finish();
                self.out.push_back(Outgoing {
                    to: source,
                    bytes: resp.into(),
                    from_b: false,
                    stream: false,
                });
            }
        }
    }

    fn on_new_request(
        &mut self,
        now: Instant,
        tx: TransactionId,
        req: &Request<'_>,
        source: SocketAddr,
        transport: Transport,
    ) {
        // RFC 3261 §8.2: scheme, Require, Max-Forwards, the URIs checked
        // on every request that starts a transaction.
        // An offer or answer is SDP: another body in an INVITE or UPDATE
        // (multipart included) gets 415 with Accept (§8.2.3), never a
        // call set up as if it had no SDP.
        let offers = matches!(req.method, Method::Invite | Method::Update);
        let policy = RequestPolicy {
            proxy: true,
            content_types: offers.then_some(&["application/sdp"][..]),
            ..RequestPolicy::default()
        };
        if let Err(rejection) = check_request(req, &policy) {
            let tag = self.token();
            let mut b = response_to(req, rejection.status(), &rejection.reason(), Some(&tag));
            if let Some((name, value)) = rejection.extra_header() {
                b = b.header(name, &value);
            }
            if rejection.status() == 415 {
                b = b.header(HeaderName::Accept, "application/sdp");
            }
            return self.respond(now, tx, b.finish());
        }
        let to_tag = req.to().tag();
        if let Some(tag) = to_tag {
            // In a dialog: find it by Call-ID and the switch's tag.
            let key = (req.call_id().to_string(), tag.to_string());
            let Some(&(call, leg)) = self.by_dialog.get(&key) else {
                let r = response_to(req, 481, "Call/Transaction Does Not Exist", None).finish();
                return self.respond(now, tx, r);
            };
            return self.in_dialog(now, tx, req, call, leg);
        }
        match req.method {
            Method::Invite => self.new_call(now, tx, req, source, transport),
            Method::Options => {
                let tag = self.token();
                let r = response_to(req, 200, "OK", Some(&tag))
                    .header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::Accept, "application/sdp")
                    .finish();
                self.respond(now, tx, r);
            }
            // A NOTIFY for no subscription of the switch's (RFC 6665 §4.1.3).
            Method::Bye | Method::Notify => {
                let r = response_to(req, 481, "Call/Transaction Does Not Exist", None).finish();
                self.respond(now, tx, r);
            }
            // The switch takes no event package (RFC 6665 §4.2.1.1).
            Method::Subscribe => {
                let tag = self.token();
                let r = response_to(req, 489, "Bad Event", Some(&tag)).finish();
                self.respond(now, tx, r);
            }
            _ => {
                let tag = self.token();
                let r = response_to(req, 501, "Not Implemented", Some(&tag))
                    .header(HeaderName::Allow, ALLOW)
                    .finish();
                self.respond(now, tx, r);
            }
        }
    }

    fn new_call(
        &mut self,
        now: Instant,
        tx: TransactionId,
        req: &Request<'_>,
        source: SocketAddr,
        transport: Transport,
    ) {
        let a_tag = self.token();
        if let Err(why) = self.admit(now) {
            // Overload or drain: calls up are untouched.
            self.refusals.add(why);
            let r = response_to(req, 503, "Service Unavailable", Some(&a_tag))
                .header(HeaderName::RetryAfter, &why.retry_after().to_string())
                .finish();
            return self.respond(now, tx, r);
        }
        if let Some((code, text)) = offer_problem(req) {
            let warning = format!(
                "{code} {} \"{}\"",
                self.cfg.local,
                text.replace(['"', '\\'], "'")
            );
            let r = response_to(req, 488, "Not Acceptable Here", Some(&a_tag))
                .header(HeaderName::Warning, &warning)
                .finish();
            return self.respond(now, tx, r);
        }
        // RFC 4028: a session interval below the switch's minimum is
        // refused with 422 and the minimum; one A supports refreshing is
        // kept, with A as the refresher.
        let session_expires = req
            .headers
            .value(HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok());
        if session_expires.is_some_and(|se| se < MIN_SE) {
            let r = response_to(req, 422, "Session Interval Too Small", Some(&a_tag))
                .header(HeaderName::MinSe, &MIN_SE.to_string())
                .finish();
            return self.respond(now, tx, r);
        }
        let supports_timer = req
            .headers
            .items(HeaderName::Supported)
            .any(|t| t.eq_ignore_ascii_case("timer"));
        let session_expires = session_expires.filter(|_| supports_timer);
        let id = CallRef(self.next_call);
        self.next_call += 1;
        let uri = req.uri().ok();
        let from = req.from().uri().ok();
        self.events.push_back(Event::Route {
            call: id,
            call_id: req.call_id().to_string(),
            request_uri: req.uri_str().to_string(),
            user: uri.as_ref().and_then(Uri::user).map(str::to_string),
            from_uri: req.from().uri_str().to_string(),
            to_uri: req.to().uri_str().to_string(),
            from_user: from.as_ref().and_then(Uri::user).map(str::to_string),
            source,
            transport,
            headers: self.route_headers(&req.headers),
        });
        self.by_a_tx.insert(tx, id);
        self.calls.insert(
            id,
            Call {
                state: State::Routing,
                a_invite: req.raw.into(),
                late_offer: req.body.is_empty(),
                b_ack_pending: false,
                a_tx: tx,
                a_source: source,
                a_transport: transport,
                a_tag,
                a_dialog: None,
                b: None,
                forks: Vec::new(),
                best_failure: None,
                targets: Vec::new(),
                headers: Vec::new(),
                prefer: Vec::new(),
                next_target: 0,
                ring_timeout: Duration::from_secs(60),
                ring_deadline: None,
                rang: Vec::new(),
                codecs: (None, None),
                a_answer: None,
                answered: false,
                end_by: None,
                session_expires,
                session_deadline: None,
                b_timer: None,
                b_sdp: None,
                reinvite: None,
                offer: None,
                a_media: None,
                transferring: false,
                after_play: None,
                last_ack: [None, None],
                tx_ids: Vec::new(),
                dialog_keys: Vec::new(),
            },
        );
    }

    /// `call` waits for the dialplan's decision ([`B2bua::route`]); not
    /// once it has ended (a CANCEL meanwhile).
    pub fn is_routing(&self, call: CallRef) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.state == State::Routing)
    }

    /// The dialplan decided what `call` does.
    pub fn route(&mut self, now: Instant, call: CallRef, action: Action) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != State::Routing {
            return;
        }
        // After a prompt in early media, A's SDP is settled: the switch's
        // own answer cannot change to another local one.
        let local = matches!(
            action,
            Action::Echo | Action::Play { .. } | Action::Conference { .. } | Action::Agent { .. }
        );
        if c.a_media.is_some() && local {
            self.fail_a(now, call, 501, "Not Implemented");
            return self.drain_layer(now);
        }
        match action {
            Action::Bridge(b) if b.fork == Fork::Serial || b.targets.len() == 1 => {
                c.targets = b.targets;
                c.ring_timeout = b.ring_timeout;
                c.headers = b.headers;
                c.prefer = b.codecs;
                self.try_next_target(now, call, 480);
            }
            Action::Bridge(b) => {
                c.ring_timeout = b.ring_timeout;
                c.headers = b.headers;
                c.prefer = b.codecs;
                let mut failure = None;
                for target in &b.targets {
                    if let Err(e) = self.invite_b(now, call, target, true) {
                        failure = Some(e);
                    }
                }
                let none = self.calls.get(&call).is_some_and(|c| c.forks.is_empty());
                if none {
                    let (code, reason) = failure.unwrap_or((480, "Temporarily Unavailable"));
                    self.fail_a(now, call, code, reason);
                }
            }
            Action::Reject { code, reason } => self.fail_a(now, call, code, &reason),
            Action::Redirect { code, contacts } => self.redirect_a(now, call, code, &contacts),
            Action::Echo => self.answer_locally(now, call, Local::Echo),
            Action::Play {
                prompt,
                then: AfterPlay::Hangup,
            } => self.answer_locally(now, call, Local::Play(&prompt)),
            Action::Play {
                prompt,
                then: AfterPlay::Continue(next),
            } => {
                // Early media (183): A is not answered, and what follows
                // the prompt decides how the call ends or goes on.
                // A prompt its owner never ends is given up after three
                // minutes, as proxies give up on an INVITE (Timer C).
                if let Some(c) = self.calls.get_mut(&call) {
                    c.after_play = Some(*next);
                    c.ring_deadline = Some(now + Duration::from_secs(180));
                }
                self.schedule(call);
                self.answer_locally(now, call, Local::Announce(&prompt));
            }
            Action::Conference { room } => self.answer_locally(now, call, Local::Conference(&room)),
            Action::Agent { agent, .. } => self.answer_locally(now, call, Local::Agent(&agent)),
        }
        self.drain_layer(now);
    }

    /// The switch could not open a connection to `dest` (a TCP target), or
    /// lost it before its INVITE was answered: every B leg still calling
    /// there fails as if it had answered 503 (RFC 3261 §8.1.3.1), and the
    /// call moves on to its next target or fails.
    pub fn transport_failed(&mut self, now: Instant, dest: SocketAddr) {
        let calls: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.answered)
            .filter(|(_, c)| {
                c.b.iter()
                    .chain(c.forks.iter())
                    .any(|b| b.tcp && b.to == dest)
            })
            .map(|(k, _)| *k)
            .collect();
        for call in calls {
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            if let Some(i) = c.forks.iter().position(|b| b.tcp && b.to == dest) {
                self.on_fork_failure(now, call, i, 503, "Service Unavailable".into());
            } else if c.b.as_ref().is_some_and(|b| b.tcp && b.to == dest) {
                c.b = None;
                c.ring_deadline = None;
                self.try_next_target(now, call, 503);
            }
        }
        self.drain_layer(now);
    }

    /// The prompt `call` was answered with is over: the dialplan's next
    /// action when the prompt continues (the call is routed again, A's
    /// media kept), else the call is hung up.
    pub fn prompt_over(&mut self, now: Instant, call: CallRef) {
        let next = self.calls.get_mut(&call).and_then(|c| c.after_play.take());
        match next {
            Some(action) => self.route(now, call, action),
            None => self.hang_up(now, call),
        }
    }

    /// Sends B's INVITE to the next target, or fails A with `status` when
    /// none is left.
    fn try_next_target(&mut self, now: Instant, call: CallRef, mut status: u16) {
        loop {
            let Some(c) = self.calls.get(&call) else {
                return;
            };
            let Some(target) = c.targets.get(c.next_target).cloned() else {
                let reason = reason_phrase_any(status).to_string();
                return self.fail_a(now, call, status, &reason);
            };
            if let Some(c) = self.calls.get_mut(&call) {
                c.next_target += 1;
            }
            match self.invite_b(now, call, &target, false) {
                Ok(()) => return,
                Err((code, reason)) if code == 503 || code == 488 => {
                    return self.fail_a(now, call, code, reason)
                }
                // An unusable target: try the next one; 502 if it was
                // the last.
                Err((code, _)) => status = code,
            }
        }
    }

    /// The headers of `headers` the dialplan is given
    /// ([`B2buaConfig::route_headers`]).
    fn route_headers(&self, headers: &sentiric_sip::header::Headers<'_>) -> Vec<(String, String)> {
        self.cfg
            .route_headers
            .iter()
            .filter_map(|name| {
                // Joined as they come: no list of them first.
                let mut joined: Option<String> = None;
                for h in headers.all(HeaderName::parse(name)) {
                    match joined.as_mut() {
                        Some(j) => {
                            j.push_str(", ");
                            j.push_str(h.value.trim());
                        }
                        None => joined = Some(h.value.trim().to_string()),
                    }
                }
                joined.map(|v| (name.to_ascii_lowercase(), v))
            })
            .collect()
    }

    /// INVITEs `target` as a B leg: the one leg of a serial bridge, or
    /// one fork of a parallel one.
    fn invite_b(
        &mut self,
        now: Instant,
        call: CallRef,
        target: &str,
        fork: bool,
    ) -> Result<(), (u16, &'static str)> {
        let (to, tcp) = match self::target(target) {
            Ok(t) => t,
            Err(why) => {
                self.events.push_back(Event::TargetRefused {
                    call,
                    target: target.to_string(),
                    why,
                });
                return Err((502, "Bad Gateway"));
            }
        };
        let via = self.via_over(Leg::B, tcp);
        let call_id = format!("{}@sentiric", self.token());
        let from_tag = self.token();
        let contact = if tcp {
            format!("<sip:{};transport=tcp>", self.cfg.local)
        } else {
            format!("<sip:{}>", self.local(Leg::B))
        };
        let c = self
            .calls
            .get(&call)
            .ok_or((500, "Server Internal Error"))?;
        let a_invite = c.a_invite.clone();
        let msg = Message::parse(&a_invite).map_err(|_| (500, "Server Internal Error"))?;
        let a = msg.as_request().ok_or((500, "Server Internal Error"))?;
        let max_forwards = a.max_forwards().unwrap_or(70).saturating_sub(1);
        let body = self.anchored(call, Leg::A, a.body, SdpRole::Offer)?;
        if let (Some(sdp), Some(c)) = (&body, self.calls.get_mut(&call)) {
            c.b_sdp = Some(sdp.as_slice().into());
        }
        let mut b = MessageBuilder::request(Method::Invite, target)
            .header(HeaderName::Via, &via)
            .header(HeaderName::MaxForwards, &max_forwards.to_string())
            .header(
                HeaderName::From,
                &format!(
                    "{};tag={from_tag}",
                    strip_tag(a.headers.value(HeaderName::From).unwrap_or(""))
                ),
            )
            .header(HeaderName::To, &format!("<{target}>"))
            .header(HeaderName::CallId, &call_id)
            .header(HeaderName::Contact, &contact)
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::Supported, "timer");
        b.push_header("CSeq", "1 INVITE");
        if let Some(c) = self.calls.get(&call) {
            for (name, value) in &c.headers {
                b.push_header(name, value);
            }
        }
        let bytes = match &body {
            Some(sdp) => b.body(Some("application/sdp"), sdp),
            None => b.finish(),
        };
        let parsed = Message::parse(&bytes).map_err(|_| (500, "Server Internal Error"))?;
        let req = parsed.as_request().ok_or((500, "Server Internal Error"))?;
        let tx = self
            .layer
            .send_request(now, req, to, reliability(tcp))
            .map_err(|_| (503, "Service Unavailable"))?;
        self.track_tx(tx, call, TxRole::BInvite, tcp);
        let c = self
            .calls
            .get_mut(&call)
            .ok_or((500, "Server Internal Error"))?;
        c.state = State::Calling;
        c.ring_deadline = Some(now + c.ring_timeout);
        let leg = LegB {
            invite_tx: tx,
            invite: bytes.into(),
            to,
            call_id,
            from_tag,
            dialog: None,
            seq: 1,
            cancelled: false,
            tcp,
        };
        if fork {
            c.forks.push(leg);
        } else {
            c.b = Some(leg);
        }
        self.schedule(call);
        Ok(())
    }

    /// `body` (from leg `from`) rewritten to the switch's endpoint facing
    /// the other leg; `None` for no body.
    ///
    /// An offer is extended with the switch's codecs when the media plane
    /// transcodes, and recorded; an answer is settled against the offer
    /// it answers, and the media plane told whether to transcode.
    fn anchored(
        &mut self,
        call: CallRef,
        from: Leg,
        body: &[u8],
        role: SdpRole,
    ) -> Result<Option<Vec<u8>>, (u16, &'static str)> {
        if body.is_empty() {
            return Ok(None);
        }
        let mut sdp = sentiric_sdp::SessionDescription::parse(body)
            .map_err(|_| (488, "Not Acceptable Here"))?;
        let ep = self.media.offer(call, from, &sdp).map_err(|e| match e {
            MediaError::Exhausted => (503, "Service Unavailable"),
            MediaError::NotAcceptable => (488, "Not Acceptable Here"),
        })?;
        match role {
            SdpRole::Offer => {
                let record = codecs::extend_offer(&mut sdp, self.media.transcodes());
                if let Some(c) = self.calls.get_mut(&call) {
                    c.offer = Some((from, record));
                    // Towards the targets, the dialplan's preference first.
                    if from == Leg::A {
                        codecs::prefer(&mut sdp, &c.prefer);
                    }
                }
            }
            SdpRole::Answer => {
                let settled = match self.calls.get(&call).and_then(|c| c.offer.as_ref()) {
                    Some((offerer, record)) if *offerer != from => {
                        codecs::settle_answer(record, &mut sdp).map(|(o, a)| match offerer {
                            Leg::A => Transcoding { a: o, b: a },
                            Leg::B => Transcoding { a, b: o },
                        })
                    }
                    _ => None,
                };
                self.media.transcode(call, settled);
            }
        }
        sdp.anchor(ep.ip, |i, _| ep.ports.get(i).copied().flatten());
        Ok(Some(sdp.to_bytes()))
    }

    /// A final failure to A (before any answer), and the call is over.
    fn fail_a(&mut self, now: Instant, call: CallRef, status: u16, reason: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.transferring {
            // A was answered: the transfer's failure hangs it up.
            self.bye(now, call, Leg::A);
            return self.end(call, status, None);
        }
        let (tx, tag, invite) = (c.a_tx, c.a_tag.clone(), c.a_invite.clone());
        if let Ok(msg) = Message::parse(&invite) {
            if let Some(req) = msg.as_request() {
                let mut b = response_to(req, status, reason, Some(&tag));
                if status == 503 {
                    b = b.header(HeaderName::RetryAfter, "5");
                }
                self.respond(now, tx, b.finish());
            }
        }
        self.end(call, status, None);
    }

    /// Sends A elsewhere (RFC 3261 §21.3): `code` (3xx) with a Contact
    /// for each of `contacts`, and the call ends.
    fn redirect_a(&mut self, now: Instant, call: CallRef, code: u16, contacts: &[String]) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (tx, tag, invite) = (c.a_tx, c.a_tag.clone(), c.a_invite.clone());
        let reason = match code {
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            _ => "Redirection",
        };
        if let Ok(msg) = Message::parse(&invite) {
            if let Some(req) = msg.as_request() {
                let mut b = response_to(req, code, reason, Some(&tag));
                for uri in contacts {
                    b = b.header(HeaderName::Contact, &format!("<{uri}>"));
                }
                self.respond(now, tx, b.finish());
            }
        }
        self.end(call, code, None);
    }

    fn end(&mut self, call: CallRef, status: u16, by: Option<Leg>) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        self.by_a_tx.remove(&c.a_tx);
        for key in &c.dialog_keys {
            self.by_dialog.remove(key);
        }
        for tx in &c.tx_ids {
            self.by_tx.remove(tx);
        }
        if self.cfg.hold_ends {
            // What this call's transactions have queued (the messages
            // that end it) and will send waits for its release.
            let mut txs = c.tx_ids;
            txs.push(c.a_tx);
            for tx in &txs {
                self.held_txs.insert(*tx, call);
            }
            self.held.insert(
                call,
                Held {
                    out: Vec::new(),
                    txs,
                },
            );
            self.take_transmits();
        }
        self.media.release(call);
        self.events.push_back(Event::Ended { call, status, by });
    }

    /// Lets the messages that ended `call` go out
    /// ([`B2buaConfig::hold_ends`]), in the order they were made; what
    /// its transactions send from now on goes at once. `false` for a
    /// call not held (released already, or never): nothing to do.
    pub fn release(&mut self, call: CallRef) -> bool {
        let Some(h) = self.held.remove(&call) else {
            return false;
        };
        for tx in &h.txs {
            if self.held_txs.get(tx) == Some(&call) {
                self.held_txs.remove(tx);
            }
        }
        self.out.extend(h.out.into_iter().map(|(_, o)| o));
        true
    }

    /// Ended calls whose messages wait for [`B2bua::release`].
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether `call`'s messages wait for [`B2bua::release`].
    pub fn is_held(&self, call: CallRef) -> bool {
        self.held.contains_key(&call)
    }

    /// Moves what the transactions queued to the outgoing messages, or to
    /// the hold of the ended call they belong to.
    fn take_transmits(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            // Requests the switch sends B (and their retransmissions).
            let o = Outgoing {
                to: t.destination,
                bytes: t.bytes,
                from_b: self.b_txs.contains(&t.id),
                stream: self.tcp_txs.contains(&t.id),
            };
            match self.held_txs.get(&t.id).and_then(|c| self.held.get_mut(c)) {
                Some(h) => {
                    let copy = h
                        .out
                        .iter()
                        .any(|(id, q)| *id == t.id && q.bytes == o.bytes);
                    if !copy {
                        h.out.push((t.id, o));
                    }
                }
                None => self.out.push_back(o),
            }
        }
    }

    fn cancel_call(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.answered {
            return; // too late: the 2xx is out, A will ACK and BYE
        }
        self.cancel_b(now, call);
        self.fail_a(now, call, 487, "Request Terminated");
    }

    /// CANCELs B's pending INVITE (§9.1), if one is out.
    fn cancel_b(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut cancels = Vec::new();
        for b in c.b.iter_mut().chain(c.forks.iter_mut()) {
            let confirmed = b
                .dialog
                .as_ref()
                .is_some_and(|d| d.state == sentiric_sip::dialog::DialogState::Confirmed);
            if !b.cancelled && !confirmed {
                b.cancelled = true;
                cancels.push((b.invite.clone(), b.to, b.tcp));
            }
        }
        for (invite, to, tcp) in cancels {
            self.send_cancel(now, call, &invite, to, tcp);
        }
    }

    /// The CANCEL of an INVITE the switch sent (§9.1): its Request-URI,
    /// top Via, From, To, Call-ID and CSeq number.
    fn send_cancel(
        &mut self,
        now: Instant,
        call: CallRef,
        invite: &[u8],
        to: SocketAddr,
        tcp: bool,
    ) {
        let Ok(msg) = Message::parse(invite) else {
            return;
        };
        let Some(inv) = msg.as_request() else {
            return;
        };
        let h = &inv.headers;
        let mut cancel = MessageBuilder::request(Method::Cancel, inv.uri_str())
            .header(HeaderName::Via, h.value(HeaderName::Via).unwrap_or(""))
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, h.value(HeaderName::From).unwrap_or(""))
            .header(HeaderName::To, h.value(HeaderName::To).unwrap_or(""))
            .header(HeaderName::CallId, inv.call_id());
        cancel.push_header("CSeq", &format!("{} CANCEL", inv.cseq().seq));
        let bytes = cancel.finish();
        if let Ok(m) = Message::parse(&bytes) {
            if let Some(r) = m.as_request() {
                if let Ok(tx) = self.layer.send_request(now, r, to, reliability(tcp)) {
                    self.track_tx(tx, call, TxRole::Cancel, tcp);
                }
            }
        }
    }

    fn on_ack(&mut self, req: &Request<'_>) {
        let Some(tag) = req.to().tag() else {
            return;
        };
        let key = (req.call_id().to_string(), tag.to_string());
        let Some(&(call, Leg::A)) = self.by_dialog.get(&key) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != State::Answered {
            return;
        }
        c.state = State::Up;
        c.a_answer = None;
        if let Some(d) = c.a_dialog.as_mut() {
            let _ = d.on_request(req);
        }
        if std::mem::take(&mut c.b_ack_pending) {
            // A's answer to B's offer, anchored, in B's ACK. An answer the
            // switch cannot anchor leaves B's ACK without one.
            let answer = self
                .anchored(call, Leg::A, req.body, SdpRole::Answer)
                .ok()
                .flatten();
            self.send_ack_b(call, answer.as_deref());
        }
        self.events.push_back(Event::Answered { call });
    }

    fn in_dialog(
        &mut self,
        now: Instant,
        tx: TransactionId,
        req: &Request<'_>,
        call: CallRef,
        leg: Leg,
    ) {
        let ok = {
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            // Its response may be one that ends the call (200 to a BYE).
            c.tx_ids.push(tx);
            let dialog = match leg {
                Leg::A => c.a_dialog.as_mut(),
                Leg::B => c.b.as_mut().and_then(|b| b.dialog.as_mut()),
            };
            dialog.map(|d| d.on_request(req))
        };
        match ok {
            None => {
                let r = response_to(req, 481, "Call/Transaction Does Not Exist", None).finish();
                return self.respond(now, tx, r);
            }
            Some(Err(e)) => {
                let r = response_to(req, e.status(), reason_phrase_any(e.status()), None).finish();
                return self.respond(now, tx, r);
            }
            Some(Ok(())) => {}
        }
        match req.method {
            Method::Bye => {
                let r = response_to(req, 200, "OK", None).finish();
                self.respond(now, tx, r);
                if self.calls.get(&call).is_some_and(|c| c.transferring) {
                    // B not answered yet.
                    self.cancel_b(now, call);
                } else {
                    self.bye(now, call, leg.other());
                }
                self.end(call, 200, Some(leg));
            }
            Method::Invite | Method::Update => {
                // B refreshing its session timer (or changing the session,
                // which refreshes it too): its deadline moves.
                if let (Leg::B, Some(t)) = (
                    leg,
                    self.calls.get_mut(&call).and_then(|c| c.b_timer.as_mut()),
                ) {
                    if !t.switch_refreshes {
                        t.due = session_deadline(now, t.interval);
                    }
                }
                self.schedule(call);
                self.reinvite(now, tx, req, call, leg)
            }
            // INFO (RFC 6086: DTMF as application/dtmf-relay, and other
            // packages) goes to the other leg end to end.
            Method::Info => self.relay(now, tx, req, call, leg),
            // The switch takes no event package (RFC 6665 §4.2.1.1).
            Method::Subscribe => {
                let r = response_to(req, 489, "Bad Event", None).finish();
                self.respond(now, tx, r);
            }
            _ => {
                let r = response_to(req, 501, "Not Implemented", None)
                    .header(HeaderName::Allow, ALLOW)
                    .finish();
                self.respond(now, tx, r);
            }
        }
    }

    /// Relays an in-dialog request from `leg` on the other leg's dialog,
    /// its body and content headers as they came; the answer goes back
    /// with the same status ([`TxRole::Relay`]).
    fn relay(
        &mut self,
        now: Instant,
        tx: TransactionId,
        req: &Request<'_>,
        call: CallRef,
        leg: Leg,
    ) {
        let other = leg.other();
        let via = self.via(call, other);
        let stream = self.stream(call, other);
        let Some((d, to)) = self.dialog_target(call, other) else {
            let r = response_to(req, 481, "Call/Transaction Does Not Exist", None).finish();
            return self.respond(now, tx, r);
        };
        let mut b = d.create_request(req.method, &via);
        for name in ["Info-Package", "Content-Disposition"] {
            if let Some(v) = req.headers.value(HeaderName::Other(name)) {
                b.push_header(name, v);
            }
        }
        let ctype = req.headers.value(HeaderName::ContentType);
        let bytes = if req.body.is_empty() {
            b.finish()
        } else {
            b.body(ctype, req.body)
        };
        if let Some(sent) = self.send_in_dialog(now, call, &bytes, to, TxRole::Relay(other), stream)
        {
            self.relays.insert(sent, (tx, req.raw.into()));
        }
    }

    /// Answers a request the switch relayed, as the other leg answered it.
    #[allow(clippy::too_many_arguments)]
    fn answer_relayed(
        &mut self,
        now: Instant,
        server: TransactionId,
        original: &[u8],
        status: u16,
        reason: &str,
        ctype: Option<&str>,
        body: Option<&[u8]>,
    ) {
        let Ok(msg) = Message::parse(original) else {
            return;
        };
        let Some(req) = msg.as_request() else {
            return;
        };
        let b = response_to(req, status, reason, None);
        let bytes = match body {
            Some(body) => b.body(ctype, body),
            None => b.finish(),
        };
        self.respond(now, server, bytes);
    }

    /// `leg`'s dialog and where its requests go (the remote target, or
    /// the address the leg's first message came from or went to).
    fn dialog_target(&mut self, call: CallRef, leg: Leg) -> Option<(&mut Dialog, SocketAddr)> {
        let c = self.calls.get_mut(&call)?;
        let (dialog, fallback, stream) = match leg {
            Leg::A => (
                c.a_dialog.as_mut(),
                c.a_source,
                c.a_transport != Transport::Udp,
            ),
            Leg::B => {
                let b = c.b.as_mut()?;
                (b.dialog.as_mut(), b.to, b.tcp)
            }
        };
        let d = dialog?;
        let to = if stream {
            // The leg's connection (RFC 3261 §18: requests to a UA reached
            // over a stream reuse its connection).
            fallback
        } else {
            d.remote_target_uri()
                .and_then(|u| target_addr(u.as_str()))
                .unwrap_or(fallback)
        };
        Some((d, to))
    }

    /// Sends BYE on `leg`'s dialog, if it has one.
    fn bye(&mut self, now: Instant, call: CallRef, leg: Leg) {
        let via = self.via(call, leg);
        let Some((d, to)) = self.dialog_target(call, leg) else {
            return;
        };
        let bytes = d.create_request(Method::Bye, &via).finish();
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = State::Ending;
        }
        let stream = self.stream(call, leg);
        self.send_in_dialog(now, call, &bytes, to, TxRole::Bye(leg), stream);
    }

    /// Sends an in-dialog request; over a stream (`stream`: A's
    /// connection, or B's TCP) nothing is retransmitted. Its transaction,
    /// unless the request could not be sent.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallRef,
        bytes: &[u8],
        to: SocketAddr,
        role: TxRole,
        stream: bool,
    ) -> Option<TransactionId> {
        let m = Message::parse(bytes).ok()?;
        let r = m.as_request()?;
        let tx = self
            .layer
            .send_request(now, r, to, reliability(stream))
            .ok()?;
        self.track_tx(tx, call, role, stream);
        Some(tx)
    }

    /// A re-INVITE from `leg` (hold, resume, a new codec or address):
    /// relayed on the other leg's dialog with its SDP anchored; one at a
    /// time per call (491 while one is pending, §14.2).
    fn reinvite(
        &mut self,
        now: Instant,
        tx: TransactionId,
        req: &Request<'_>,
        call: CallRef,
        leg: Leg,
    ) {
        let method = if req.method == Method::Update {
            Method::Update
        } else {
            Method::Invite
        };
        let busy = self
            .calls
            .get(&call)
            .is_none_or(|c| c.state != State::Up || c.reinvite.is_some());
        if busy {
            let r = response_to(req, 491, "Request Pending", None).finish();
            return self.respond(now, tx, r);
        }
        let body = match self.anchored(call, leg, req.body, SdpRole::Offer) {
            Ok(b) => b,
            Err((code, reason)) => {
                let r = response_to(req, code, reason, None).finish();
                return self.respond(now, tx, r);
            }
        };
        let via = self.via(call, leg.other());
        let contact = self.contact(call, leg.other());
        let Some((d, to)) = self.dialog_target(call, leg.other()) else {
            let r = response_to(req, 500, "Server Internal Error", None).finish();
            return self.respond(now, tx, r);
        };
        let b = d
            .create_request(method, &via)
            .header(HeaderName::Contact, &contact)
            .header(HeaderName::Allow, ALLOW);
        let seq = d.local_seq.unwrap_or(1);
        let update = method == Method::Update;
        if let (Leg::A, Some(sdp), Some(c)) = (leg, &body, self.calls.get_mut(&call)) {
            c.b_sdp = Some(sdp.as_slice().into());
        }
        let bytes = match &body {
            Some(sdp) => b.body(Some("application/sdp"), sdp),
            None => b.finish(),
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.reinvite = Some(Reinvite {
                from: leg,
                request: req.raw.into(),
                server_tx: tx,
                seq,
                update,
            });
        }
        let stream = self.stream(call, leg.other());
        self.send_in_dialog(now, call, &bytes, to, TxRole::ReInvite(leg.other()), stream);
    }

    /// The other leg answered a relayed re-INVITE: ACK a 2xx there, and
    /// answer the leg that asked with the same status and the SDP anchored.
    fn on_reinvite_response(&mut self, now: Instant, call: CallRef, resp: &Response<'_>) {
        if resp.status < 200 {
            return;
        }
        let Some(r) = self.calls.get_mut(&call).and_then(|c| c.reinvite.take()) else {
            return;
        };
        let other = r.from.other();
        let mut body = None;
        if resp.status < 300 && r.update {
            if let Some((d, _)) = self.dialog_target(call, other) {
                let _ = d.on_response(resp);
            }
        }
        if resp.status < 300 && !r.update {
            let via = self.via(call, other);
            let stream = other == Leg::B && self.stream(call, other);
            if let Some((d, to)) = self.dialog_target(call, other) {
                let _ = d.on_response(resp);
                let ack: Arc<[u8]> = d.create_ack(r.seq, &via).finish().into();
                self.out.push_back(Outgoing {
                    to,
                    bytes: ack.clone(),
                    from_b: other == Leg::B,
                    stream,
                });
                if let Some(c) = self.calls.get_mut(&call) {
                    c.last_ack[leg_index(other)] = Some((ack, to));
                }
            }
        }
        if resp.status < 300 {
            match self.anchored(call, other, resp.body, SdpRole::Answer) {
                Ok(b) => body = b,
                Err((code, reason)) => {
                    // The far end took an SDP the switch cannot anchor:
                    // refuse it to the asker (the far end keeps its old
                    // media until a new offer).
                    return self.answer_reinvite(now, call, &r, code, reason, None);
                }
            }
        }
        let reason = resp_reason(resp);
        self.answer_reinvite(now, call, &r, resp.status, &reason, body.as_deref());
    }

    fn answer_reinvite(
        &mut self,
        now: Instant,
        call: CallRef,
        r: &Reinvite,
        status: u16,
        reason: &str,
        sdp: Option<&[u8]>,
    ) {
        let contact = self.contact(call, r.from);
        let Ok(msg) = Message::parse(&r.request) else {
            return;
        };
        let Some(req) = msg.as_request() else {
            return;
        };
        let mut b = response_to(req, status, reason, None);
        if (200..300).contains(&status) {
            b = b.header(HeaderName::Contact, &contact);
            // A refresh from A (RFC 4028): the interval again, and the
            // switch's deadline moves.
            let se = self
                .calls
                .get(&call)
                .and_then(|c| c.session_expires)
                .filter(|_| r.from == Leg::A);
            if let Some(se) = se {
                b = b
                    .header(HeaderName::SessionExpires, &format!("{se};refresher=uac"))
                    .header(HeaderName::Require, "timer");
                if let Some(c) = self.calls.get_mut(&call) {
                    c.session_deadline = Some(session_deadline(now, se));
                }
                self.schedule(call);
            }
        }
        let bytes = match sdp {
            Some(sdp) => b.body(Some("application/sdp"), sdp),
            None => b.finish(),
        };
        self.respond(now, r.server_tx, bytes);
    }

    fn on_response(&mut self, now: Instant, resp: &Response<'_>) {
        let tx = match self.layer.receive_response(now, resp) {
            IncomingResponse::Deliver(tx) => tx,
            IncomingResponse::Absorbed => return,
            IncomingResponse::Stray => {
                // A retransmitted 2xx for B's INVITE: ACK it again.
                if (200..300).contains(&resp.status) && resp.cseq().method == Method::Invite {
                    self.reack(resp);
                }
                return;
            }
        };
        let Some(&(call, role)) = self.by_tx.get(&tx) else {
            return;
        };
        match role {
            TxRole::BInvite => self.on_b_invite_response(now, call, tx, resp),
            TxRole::Refresh => self.on_refresh_response(now, call, resp),
            TxRole::ReInvite(_) => self.on_reinvite_response(now, call, resp),
            TxRole::Relay(_) if resp.status >= 200 => {
                if let Some((server, original)) = self.relays.remove(&tx) {
                    let body = (!resp.body.is_empty()).then_some(resp.body);
                    let ctype = resp.headers.value(HeaderName::ContentType);
                    self.answer_relayed(
                        now,
                        server,
                        &original,
                        resp.status,
                        &resp_reason(resp),
                        ctype,
                        body,
                    );
                }
            }
            TxRole::Relay(_) => {}
            // The dialog is gone at the far end (RFC 3261 §12.2.2: 481),
            // or the request timed out there.
            TxRole::Probe(leg) if matches!(resp.status, 408 | 481) => self.lost(now, call, leg),
            // Any other final answer: the leg is there (405, 501 too).
            TxRole::Probe(_) => {}
            // Responses to BYE and CANCEL need nothing more.
            TxRole::Bye(_) | TxRole::Cancel => {}
        }
    }

    /// Asks each leg of an answered call whether it is still there: an
    /// OPTIONS in its dialog (RFC 3261 §11, §12.2). A leg whose dialog is
    /// gone (481), that answers 408 or does not answer at all (Timer F)
    /// is lost: [`Event::Lost`], and both legs get BYE. For calls that
    /// carry no RTP to tell (on hold); `false` when the call is not up.
    pub fn probe(&mut self, now: Instant, call: CallRef) -> bool {
        let up = self
            .calls
            .get(&call)
            .is_some_and(|c| c.answered && c.state == State::Up);
        if !up {
            return false;
        }
        for leg in [Leg::A, Leg::B] {
            let via = self.via(call, leg);
            let Some((d, to)) = self.dialog_target(call, leg) else {
                continue;
            };
            let bytes = d
                .create_request(Method::Options, &via)
                .header(HeaderName::Accept, "application/sdp")
                .finish();
            let stream = self.stream(call, leg);
            self.send_in_dialog(now, call, &bytes, to, TxRole::Probe(leg), stream);
        }
        self.drain_layer(now);
        true
    }

    /// `leg` of `call` is gone: said, and the call hung up.
    fn lost(&mut self, now: Instant, call: CallRef, leg: Leg) {
        if !self.calls.contains_key(&call) {
            return;
        }
        self.events.push_back(Event::Lost { call, leg });
        self.bye(now, call, Leg::A);
        self.bye(now, call, Leg::B);
        self.end(call, 200, None);
    }

    /// A 2xx retransmitted after its transaction ended: the ACK sent for
    /// it is lost, send it again (§13.2.2.4).
    fn reack(&mut self, resp: &Response<'_>) {
        let Some(tag) = resp.from().tag() else {
            return;
        };
        let key = (resp.call_id().to_string(), tag.to_string());
        let Some(&(call, leg)) = self.by_dialog.get(&key) else {
            return;
        };
        if let Some((bytes, to)) = self
            .calls
            .get(&call)
            .and_then(|c| c.last_ack[leg_index(leg)].clone())
        {
            let stream = leg == Leg::B && self.stream(call, leg);
            self.out.push_back(Outgoing {
                to,
                bytes,
                from_b: leg == Leg::B,
                stream,
            });
        }
    }

    /// ACKs B's 2xx to the INVITE, with `sdp` (a late offer's answer).
    fn send_ack_b(&mut self, call: CallRef, sdp: Option<&[u8]>) {
        let via = self.via(call, Leg::B);
        let stream = self.stream(call, Leg::B);
        let Some(seq) = self
            .calls
            .get(&call)
            .and_then(|c| c.b.as_ref())
            .map(|b| b.seq)
        else {
            return;
        };
        let Some((d, to)) = self.dialog_target(call, Leg::B) else {
            return;
        };
        let ack = d.create_ack(seq, &via);
        let ack: Arc<[u8]> = match sdp {
            Some(sdp) => ack.body(Some("application/sdp"), sdp),
            None => ack.finish(),
        }
        .into();
        self.out.push_back(Outgoing {
            to,
            bytes: ack.clone(),
            from_b: true,
            stream,
        });
        if let Some(c) = self.calls.get_mut(&call) {
            c.last_ack[1] = Some((ack, to));
        }
    }

    fn on_b_invite_response(
        &mut self,
        now: Instant,
        call: CallRef,
        tx: TransactionId,
        resp: &Response<'_>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(i) = c.forks.iter().position(|f| f.invite_tx == tx) {
            return self.on_fork_response(now, call, tx, i, resp);
        }
        let Some(b) = c.b.as_mut() else {
            return;
        };
        if b.invite_tx != tx {
            return; // an earlier target's late answer
        }
        let status = resp.status;
        match status {
            100 => {}
            101..=199 => {
                if resp.to().tag().is_some() && b.dialog.is_none() {
                    if let Ok(msg) = Message::parse(&b.invite) {
                        if let Some(inv) = msg.as_request() {
                            b.dialog = Dialog::new_uac(inv, resp).ok();
                        }
                    }
                }
                // A, answered, hears the agent until B answers.
                if !c.transferring {
                    self.relay_to_a(now, call, resp);
                }
            }
            200..=299 => {
                let b_key;
                {
                    if b.dialog.is_none() {
                        if let Ok(msg) = Message::parse(&b.invite) {
                            if let Some(inv) = msg.as_request() {
                                b.dialog = Dialog::new_uac(inv, resp).ok();
                            }
                        }
                    } else if let Some(d) = b.dialog.as_mut() {
                        let _ = d.on_response(resp);
                    }
                    b_key = (b.call_id.clone(), b.from_tag.clone());
                }
                c.ring_deadline = None;
                c.answered = true;
                if let Some(codec) = first_codec(resp.body) {
                    c.codecs.1 = Some(codec);
                }
                c.b_timer = b_session_timer(now, resp);
                // A late offer's answer comes in A's ACK: B's ACK waits.
                let late = c.late_offer && !resp.body.is_empty();
                c.b_ack_pending = late;
                self.track_dialog(b_key, call, Leg::B);
                if !late {
                    self.send_ack_b(call, None);
                }
                self.schedule(call);
                if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.b.as_ref().is_some_and(|b| b.cancelled))
                {
                    // A cancelled while B answered: hang B up (§9.1).
                    if late {
                        self.send_ack_b(call, None);
                    }
                    self.bye(now, call, Leg::B);
                    return;
                }
                if self.calls.get(&call).is_some_and(|c| c.transferring) {
                    return self.join_b(now, call, resp);
                }
                self.relay_to_a(now, call, resp);
            }
            _ => {
                c.ring_deadline = None;
                if b.cancelled {
                    return; // the 487 to our CANCEL
                }
                let serial_next = matches!(status, 408 | 500..=599);
                if serial_next {
                    c.b = None;
                    self.try_next_target(now, call, status);
                } else {
                    let reason = resp_reason(resp);
                    self.fail_a(now, call, status, &reason);
                }
            }
        }
    }

    /// A response from one fork of a parallel bridge: provisional ones go
    /// to A; the first 2xx wins (the others are cancelled) and continues as
    /// a serial bridge's answer; failures are kept until the last fork has
    /// failed, and the best of them goes to A (RFC 3261 §16.7).
    fn on_fork_response(
        &mut self,
        now: Instant,
        call: CallRef,
        tx: TransactionId,
        i: usize,
        resp: &Response<'_>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match resp.status {
            100 => {}
            101..=199 => {
                if !c.forks[i].cancelled && !c.answered {
                    self.relay_to_a(now, call, resp);
                }
            }
            200..=299 if c.forks[i].cancelled || c.b.is_some() => {
                // Answered across our CANCEL: take it and hang it up.
                let leg = c.forks.remove(i);
                self.ack_and_bye(now, call, &leg, resp);
            }
            200..=299 => {
                let winner = c.forks.remove(i);
                // Cancel the others first: the winner is not one of them.
                self.cancel_b(now, call);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.b = Some(winner);
                }
                // Now the serial path: dialog, ACK, 2xx to A.
                self.on_b_invite_response(now, call, tx, resp);
            }
            status => {
                let reason = resp_reason(resp);
                self.on_fork_failure(now, call, i, status, reason);
            }
        }
    }

    /// Fork `i` failed with `status`; A gets the best failure once no
    /// fork is left ringing.
    fn on_fork_failure(
        &mut self,
        now: Instant,
        call: CallRef,
        i: usize,
        status: u16,
        reason: String,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let leg = c.forks.remove(i);
        if !leg.cancelled {
            let rank = |s: u16| if s >= 600 { 0 } else { s / 100 };
            if c.best_failure
                .as_ref()
                .is_none_or(|(b, _)| rank(status) < rank(*b))
            {
                c.best_failure = Some((status, reason));
            }
        }
        if c.forks.is_empty() && c.b.is_none() && !c.answered {
            c.ring_deadline = None;
            let (status, reason) = c
                .best_failure
                .take()
                .unwrap_or((480, "Temporarily Unavailable".into()));
            self.fail_a(now, call, status, &reason);
        }
    }

    /// A 2xx from a leg the switch no longer wants: ACK it, then BYE.
    fn ack_and_bye(&mut self, now: Instant, call: CallRef, leg: &LegB, resp: &Response<'_>) {
        let Ok(msg) = Message::parse(&leg.invite) else {
            return;
        };
        let Some(inv) = msg.as_request() else {
            return;
        };
        let Ok(mut d) = Dialog::new_uac(inv, resp) else {
            return;
        };
        let to = if leg.tcp {
            leg.to
        } else {
            d.remote_target_uri()
                .and_then(|u| target_addr(u.as_str()))
                .unwrap_or(leg.to)
        };
        let via = self.via_over(Leg::B, leg.tcp);
        self.out.push_back(Outgoing {
            to,
            bytes: d.create_ack(leg.seq, &via).finish().into(),
            from_b: true,
            stream: leg.tcp,
        });
        let via = self.via_over(Leg::B, leg.tcp);
        let bye = d.create_request(Method::Bye, &via).finish();
        self.send_in_dialog(now, call, &bye, to, TxRole::Bye(Leg::B), leg.tcp);
    }

    /// Refreshes B's session (RFC 4028 §9, the switch the refresher): an
    /// UPDATE without a body when B takes UPDATE, else a re-INVITE with
    /// the last offer B was sent; the next one at half the interval.
    fn refresh_b(&mut self, now: Instant, call: CallRef, t: BTimer) {
        let via = self.via(call, Leg::B);
        let contact = self.contact(call, Leg::B);
        let sdp = self.calls.get(&call).and_then(|c| c.b_sdp.clone());
        let Some((d, to)) = self.dialog_target(call, Leg::B) else {
            return;
        };
        let method = if t.update || sdp.is_none() {
            Method::Update
        } else {
            Method::Invite
        };
        let b = d
            .create_request(method, &via)
            .header(HeaderName::Contact, &contact)
            .header(
                HeaderName::SessionExpires,
                &format!("{};refresher=uac", t.interval),
            )
            .header(HeaderName::Supported, "timer");
        let bytes = match (method, sdp) {
            (Method::Invite, Some(sdp)) => b.body(Some("application/sdp"), &sdp),
            _ => b.finish(),
        };
        if let Some(t) = self.calls.get_mut(&call).and_then(|c| c.b_timer.as_mut()) {
            t.due = now + Duration::from_secs(u64::from(t.interval / 2));
        }
        let stream = self.stream(call, Leg::B);
        self.send_in_dialog(now, call, &bytes, to, TxRole::Refresh, stream);
        self.schedule(call);
    }

    /// B answered the switch's refresh: a 2xx to a re-INVITE is ACKed; 408
    /// or 481 end the session (RFC 4028 §10); another failure leaves it
    /// to the next refresh.
    fn on_refresh_response(&mut self, now: Instant, call: CallRef, resp: &Response<'_>) {
        match resp.status {
            200..=299 if resp.cseq().method == Method::Invite => {
                let via = self.via(call, Leg::B);
                let stream = self.stream(call, Leg::B);
                if let Some((d, to)) = self.dialog_target(call, Leg::B) {
                    let _ = d.on_response(resp);
                    let ack = d.create_ack(resp.cseq().seq, &via).finish();
                    self.out.push_back(Outgoing {
                        to,
                        bytes: ack.into(),
                        from_b: true,
                        stream,
                    });
                }
            }
            408 | 481 => {
                self.bye(now, call, Leg::A);
                self.bye(now, call, Leg::B);
                self.end(call, 408, None);
            }
            _ => {}
        }
    }

    /// Relays a response B sent to A's INVITE: same code and reason, A's
    /// own dialog identifiers, the SDP anchored.
    fn relay_to_a(&mut self, now: Instant, call: CallRef, resp: &Response<'_>) {
        let fixed = self.calls.get(&call).and_then(|c| c.a_media.clone());
        if let Some((sdp, format)) = fixed {
            return self.relay_to_a_fixed(now, call, resp, &sdp, format);
        }
        // A late offer: B's 2xx (or its early-media 18x) carries the offer.
        let role = if self.calls.get(&call).is_some_and(|c| c.late_offer) {
            SdpRole::Offer
        } else {
            SdpRole::Answer
        };
        let body = match self.anchored(call, Leg::B, resp.body, role) {
            Ok(b) => b,
            Err((code, reason)) => {
                if resp.status >= 200 {
                    self.bye(now, call, Leg::B);
                    self.fail_a(now, call, code, reason);
                }
                return;
            }
        };
        let reason = resp_reason(resp);
        self.respond_a(now, call, resp.status, &reason, body.as_deref());
    }

    /// [`B2bua::relay_to_a`] when A's media was settled by the switch's own
    /// early answer (`sdp`, A speaking `a`): B's SDP is anchored and its
    /// codec settled against A's, and A is sent the same SDP again.
    fn relay_to_a_fixed(
        &mut self,
        now: Instant,
        call: CallRef,
        resp: &Response<'_>,
        sdp: &[u8],
        a: LegFormat,
    ) {
        let mut settled = Ok(None);
        if !resp.body.is_empty() {
            settled = sentiric_sdp::SessionDescription::parse(resp.body)
                .map_err(|_| ())
                .and_then(|b_sdp| {
                    self.media.offer(call, Leg::B, &b_sdp).map_err(|_| ())?;
                    codecs::settle_fixed(a, &b_sdp)
                });
            if let Ok(plan) = settled {
                self.media
                    .transcode(call, plan.map(|b| Transcoding { a, b }));
            }
        }
        if settled.is_err() {
            if resp.status >= 200 {
                self.bye(now, call, Leg::B);
                self.fail_a(now, call, 488, "Not Acceptable Here");
            }
            return;
        }
        let reason = resp_reason(resp);
        let body = (resp.status >= 200 || !resp.body.is_empty()).then_some(sdp);
        self.respond_a(now, call, resp.status, &reason, body);
    }

    /// Sends A a provisional or 2xx response to its INVITE, from the
    /// switch's side of A's dialog: the dialog is made (early or
    /// confirmed) with the first response that can make it, and a 2xx is
    /// retransmitted until A's ACK (§13.3.1.4).
    fn respond_a(
        &mut self,
        now: Instant,
        call: CallRef,
        status: u16,
        reason: &str,
        sdp: Option<&[u8]>,
    ) {
        let contact = self.contact(call, Leg::A);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Ok(msg) = Message::parse(&c.a_invite) else {
            return;
        };
        let Some(a) = msg.as_request() else {
            return;
        };
        let mut b = response_to(a, status, reason, Some(&c.a_tag))
            .header(HeaderName::Contact, &contact)
            .header(HeaderName::Allow, ALLOW);
        if let (200..=299, Some(se)) = (status, c.session_expires) {
            b = b
                .header(HeaderName::SessionExpires, &format!("{se};refresher=uac"))
                .header(HeaderName::Require, "timer");
            c.session_deadline = Some(session_deadline(now, se));
        }
        let bytes = match sdp {
            Some(sdp) => b.body(Some("application/sdp"), sdp),
            None => b.finish(),
        };
        if c.a_dialog.is_none() {
            c.a_dialog = Dialog::new_uas(a, &c.a_tag, status < 200).ok();
            if c.a_dialog.is_some() {
                let key = (a.call_id().to_string(), c.a_tag.clone());
                c.dialog_keys.push(key.clone());
                self.by_dialog.insert(key, (call, Leg::A));
            }
        } else if status >= 200 {
            if let Some(d) = c.a_dialog.as_mut() {
                d.state = sentiric_sip::dialog::DialogState::Confirmed;
            }
        }
        if (101..200).contains(&status) && !c.rang.contains(&status) {
            c.rang.push(status);
            self.events.push_back(Event::Ringing {
                call,
                status,
                early_media: sdp.is_some(),
            });
        }
        if (200..300).contains(&status) {
            if let Some(codec) = sdp.and_then(first_codec) {
                c.codecs.0 = Some(codec);
            }
            c.state = State::Answered;
            c.answered = true;
            c.end_by = self.cfg.max_call_duration.map(|d| now + d);
            if c.a_transport == Transport::Udp {
                let t1 = self.cfg.timers.t1;
                c.a_answer = Some((bytes.clone(), now + t1, t1, now + self.cfg.timers.t1x64()));
            }
        }
        let tx = c.a_tx;
        self.respond(now, tx, bytes);
        self.schedule(call);
    }

    /// The switch answers A itself: the echo test (A's audio sent back,
    /// any codec the switch knows), a prompt (G.711; the media plane plays
    /// it and the owner calls [`B2bua::prompt_over`] when it is over) or a
    /// conference room (G.711, mixed by the media plane). An SDP answer on
    /// the switch's port facing A.
    fn answer_locally(&mut self, now: Instant, call: CallRef, local: Local<'_>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let invite = c.a_invite.clone();
        let Some(a) = Message::parse(&invite)
            .ok()
            .and_then(|m| m.as_request().cloned())
        else {
            return;
        };
        let Ok(offer) = sentiric_sdp::SessionDescription::parse(a.body) else {
            // No offer in the INVITE (an offer in the ACK) is not taken yet.
            return self.fail_a(now, call, 488, "Not Acceptable Here");
        };
        let ep = match local {
            Local::Play(p) | Local::Announce(p) => self.media.play(call, &offer, p),
            Local::Conference(room) => self.media.conference(call, &offer, room),
            Local::Agent(agent) => self.media.agent(call, &offer, agent),
            Local::Echo => self.media.echo(call, &offer),
        };
        let ep = match ep {
            Ok(ep) => ep,
            Err(MediaError::Exhausted) => {
                return self.fail_a(now, call, 503, "Service Unavailable")
            }
            Err(MediaError::NotAcceptable) => {
                return self.fail_a(now, call, 488, "Not Acceptable Here")
            }
        };
        let mut codecs = vec![Codec::new("PCMU", 8000, 1), Codec::new("PCMA", 8000, 1)];
        let kind = local;
        if matches!(local, Local::Echo) {
            // Echo sends back what it gets: any codec the switch knows.
            codecs.push(Codec::new("G722", 8000, 1));
            codecs.push(Codec::new("opus", 48000, 2));
        } else if self.media.transcodes() {
            // Prompts and rooms are coded for the caller: Opus too.
            codecs.push(Codec::new("opus", 48000, 2));
        }
        let local = LocalMedia {
            address: ep.ip,
            codecs,
            telephone_event: true,
            direction: Direction::SendRecv,
            rtcp_mux: false,
            username: "sentiric".into(),
            session_id: self.cfg.seed ^ call.0,
            session_version: 1,
        };
        let early = matches!(kind, Local::Announce(_));
        match answer(&offer, &local, |i| ep.ports.get(i).copied().flatten()) {
            Ok(sdp) if early => {
                let Some(format) = codecs::answered_format(&sdp) else {
                    return self.fail_a(now, call, 488, "Not Acceptable Here");
                };
                let sdp: Arc<[u8]> = sdp.to_bytes().into();
                if let Some(c) = self.calls.get_mut(&call) {
                    c.a_media = Some((sdp.clone(), format));
                }
                self.respond_a(now, call, 183, "Session Progress", Some(&sdp));
            }
            Ok(sdp) => {
                let bytes: Arc<[u8]> = sdp.to_bytes().into();
                // An agent may hand the call on ([`B2bua::transfer`]):
                // A's media stays as answered, B's joins it.
                if let (Local::Agent(_), Some(format)) = (kind, codecs::answered_format(&sdp)) {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.a_media = Some((bytes.clone(), format));
                    }
                }
                self.respond_a(now, call, 200, "OK", Some(&bytes));
            }
            Err(_) => self.fail_a(now, call, 488, "Not Acceptable Here"),
        }
    }

    /// Hands `call`, answered by the switch for an agent and up, on to
    /// `target` (a blind transfer): B is invited with A's offer (the
    /// switch's codecs added when it transcodes) while A stays connected;
    /// when B answers, its media joins A's as A's was answered
    /// (transcoded if B chose another codec), nothing is sent to A, and
    /// the call goes on as a bridged one. If B fails (or does not answer
    /// in `ring_timeout`), the switch hangs A up with B's status. `false`
    /// when the call cannot be handed on: not an agent's, not up, already
    /// being handed on, or `target` is not a SIP URI the switch can reach.
    pub fn transfer(
        &mut self,
        now: Instant,
        call: CallRef,
        target: &str,
        ring_timeout: Duration,
    ) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let eligible = c.state == State::Up
            && c.a_media.is_some()
            && c.b.is_none()
            && c.forks.is_empty()
            && !c.transferring;
        if !eligible || self::target(target).is_err() {
            return false;
        }
        c.transferring = true;
        c.targets = vec![target.to_string()];
        c.next_target = 0;
        c.ring_timeout = ring_timeout;
        c.headers.clear();
        c.prefer.clear();
        self.try_next_target(now, call, 480);
        self.drain_layer(now);
        true
    }

    /// B answered a transfer ([`B2bua::transfer`]): its media joins A's
    /// as A's was answered; A is told nothing. B's SDP the switch cannot
    /// use ends the call.
    fn join_b(&mut self, now: Instant, call: CallRef, resp: &Response<'_>) {
        let Some((_, a)) = self.calls.get(&call).and_then(|c| c.a_media.clone()) else {
            return;
        };
        let joined = sentiric_sdp::SessionDescription::parse(resp.body)
            .map_err(|_| ())
            .and_then(|b_sdp| {
                self.media.offer(call, Leg::B, &b_sdp).map_err(|_| ())?;
                codecs::settle_fixed(a, &b_sdp)
            });
        match joined {
            Ok(plan) => {
                self.media
                    .transcode(call, plan.map(|b| Transcoding { a, b }));
                if let Some(c) = self.calls.get_mut(&call) {
                    c.transferring = false;
                    c.state = State::Up;
                }
            }
            Err(()) => {
                self.bye(now, call, Leg::B);
                self.bye(now, call, Leg::A);
                self.end(call, 488, None);
            }
        }
    }

    /// The switch ends `call` now (a prompt is over): BYE to every leg
    /// that has a dialog, or 480 to a caller not yet answered.
    pub fn hang_up(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.transferring {
            // B not answered yet: its INVITE cancelled, A's dialog ended.
            self.cancel_b(now, call);
            self.bye(now, call, Leg::A);
            self.end(call, 200, None);
        } else if c.answered {
            self.bye(now, call, Leg::A);
            self.bye(now, call, Leg::B);
            self.end(call, 200, None);
        } else {
            self.cancel_b(now, call);
            self.fail_a(now, call, 480, "Temporarily Unavailable");
        }
        self.drain_layer(now);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drain_layer(now);
        // The calls with a deadline due, from the heap: no walk over every
        // call.
        let mut due: Vec<CallRef> = Vec::new();
        while let Some(std::cmp::Reverse((t, call))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let current = self
                .calls
                .get(&call)
                .is_some_and(|c| c.deadlines().contains(&Some(t)));
            if current && !due.contains(&call) {
                due.push(call);
            }
        }
        for call in due {
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            if c.session_deadline.is_some_and(|d| d <= now) {
                // A stopped refreshing (RFC 4028 §10): hang both legs up.
                self.bye(now, call, Leg::A);
                self.bye(now, call, Leg::B);
                self.end(call, 408, None);
                continue;
            }
            if let Some(t) = c.b_timer.filter(|t| t.due <= now) {
                if t.switch_refreshes {
                    self.refresh_b(now, call, t);
                } else {
                    // B stopped refreshing (RFC 4028 §10).
                    self.bye(now, call, Leg::A);
                    self.bye(now, call, Leg::B);
                    self.end(call, 408, None);
                }
                continue;
            }
            if c.end_by.is_some_and(|d| d <= now) {
                // The longest a call may last: hang both legs up.
                self.bye(now, call, Leg::A);
                self.bye(now, call, Leg::B);
                self.end(call, 200, None);
                continue;
            }
            if c.ring_deadline.is_some_and(|d| d <= now) {
                c.ring_deadline = None;
                self.cancel_b(now, call);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.b = None;
                }
                self.try_next_target(now, call, 480);
                continue;
            }
            if let Some((bytes, at, gap, give_up)) = c.a_answer.take() {
                if at > now {
                    c.a_answer = Some((bytes, at, gap, give_up));
                    continue;
                }
                if now >= give_up {
                    // No ACK for the 2xx (§13.3.1.4): hang both legs up.
                    self.bye(now, call, Leg::A);
                    self.bye(now, call, Leg::B);
                    self.end(call, 408, None);
                    continue;
                }
                let gap2 = (gap * 2).min(self.cfg.timers.t2);
                let tx = c.a_tx;
                c.a_answer = Some((bytes.clone(), (now + gap2).min(give_up), gap2, give_up));
                self.respond(now, tx, bytes);
                self.schedule(call);
            }
        }
        self.drain_layer(now);
    }

    fn drain_layer(&mut self, now: Instant) {
        self.take_transmits();
        while let Some(ev) = self.layer.poll_event() {
            match ev.event {
                TransactionEvent::Timeout(_) => {
                    if let Some((server, original)) = self.relays.remove(&ev.id) {
                        self.answer_relayed(
                            now,
                            server,
                            &original,
                            408,
                            "Request Timeout",
                            None,
                            None,
                        );
                    }
                    if let Some(&(call, TxRole::Probe(leg))) = self.by_tx.get(&ev.id) {
                        self.lost(now, call, leg);
                    }
                    if let Some(&(call, TxRole::Refresh)) = self.by_tx.get(&ev.id) {
                        // B never answered the refresh (RFC 4028 §10).
                        self.bye(now, call, Leg::A);
                        self.bye(now, call, Leg::B);
                        self.end(call, 408, None);
                    }
                    if let Some(&(call, TxRole::ReInvite(_))) = self.by_tx.get(&ev.id) {
                        // The other leg never answered: 408 to the asker.
                        if let Some(r) = self.calls.get_mut(&call).and_then(|c| c.reinvite.take()) {
                            self.answer_reinvite(now, call, &r, 408, "Request Timeout", None);
                        }
                    }
                    if let Some(&(call, TxRole::BInvite)) = self.by_tx.get(&ev.id) {
                        let fork = self
                            .calls
                            .get(&call)
                            .and_then(|c| c.forks.iter().position(|f| f.invite_tx == ev.id));
                        if let Some(i) = fork {
                            self.on_fork_failure(now, call, i, 408, "Request Timeout".into());
                        }
                        // No final response from this target: 408, next one.
                        if let Some(c) = self.calls.get_mut(&call) {
                            if c.b.as_ref().is_some_and(|b| b.invite_tx == ev.id) && !c.answered {
                                c.b = None;
                                c.ring_deadline = None;
                                self.try_next_target(now, call, 408);
                            }
                        }
                    }
                    self.by_tx.remove(&ev.id);
                    self.b_txs.remove(&ev.id);
                    self.tcp_txs.remove(&ev.id);
                }
                TransactionEvent::Terminated => {
                    self.relays.remove(&ev.id);
                    self.by_tx.remove(&ev.id);
                    self.b_txs.remove(&ev.id);
                    self.tcp_txs.remove(&ev.id);
                    self.by_a_tx.remove(&ev.id);
                }
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`B2bua::handle_timeout`] must next run.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Entries no longer a deadline of their call are dropped on the way.
        let mut next = None;
        while let Some(std::cmp::Reverse((t, call))) = self.timers.peek().copied() {
            let current = self
                .calls
                .get(&call)
                .is_some_and(|c| c.deadlines().contains(&Some(t)));
            if current {
                next = Some(t);
                break;
            }
            self.timers.pop();
        }
        next.into_iter().chain(self.layer.poll_timeout()).min()
    }
}

/// The first format of an SDP's first media line, as `NAME/RATE`
/// (`PCMU/8000`, `opus/48000/2`): the codec a leg settled on when the SDP
/// is the answer.
fn first_codec(sdp: &[u8]) -> Option<String> {
    let sdp = sentiric_sdp::SessionDescription::parse(sdp).ok()?;
    let m = sdp.media.first()?;
    let pt = m.payload_types().next()?;
    Some(match (m.rtpmap(pt), pt) {
        (Some(r), _) => match r.channels {
            Some(ch) if ch > 1 => format!("{}/{}/{ch}", r.encoding, r.clock_rate),
            _ => format!("{}/{}", r.encoding, r.clock_rate),
        },
        (None, 0) => "PCMU/8000".into(),
        (None, 8) => "PCMA/8000".into(),
        (None, 9) => "G722/8000".into(),
        (None, 18) => "G729/8000".into(),
        (None, pt) => pt.to_string(),
    })
}

/// The shortest session interval the switch accepts (RFC 4028 §5: 90 s
/// at least).
pub const MIN_SE: u32 = 90;

/// When the side that does not refresh gives up: before the interval
/// ends, by the smaller of 32 s and a third of it (RFC 4028 §10).
fn session_deadline(now: Instant, se: u32) -> Instant {
    now + Duration::from_secs(u64::from(se - (se / 3).min(32)))
}

/// The session timer B's 2xx sets (RFC 4028 §7.2), if it has one: the
/// interval, and who refreshes (`refresher=uac`: the switch).
fn b_session_timer(now: Instant, resp: &Response<'_>) -> Option<BTimer> {
    let value = resp.headers.value(HeaderName::SessionExpires)?;
    let mut parts = value.split(';');
    let interval = parts.next()?.trim().parse::<u32>().ok()?.max(MIN_SE);
    let switch_refreshes = parts.any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("refresher") && v.trim().eq_ignore_ascii_case("uac")
        })
    });
    let update = resp
        .headers
        .items(HeaderName::Allow)
        .any(|m| m.eq_ignore_ascii_case("UPDATE"));
    Some(BTimer {
        interval,
        switch_refreshes,
        due: if switch_refreshes {
            now + Duration::from_secs(u64::from(interval / 2))
        } else {
            session_deadline(now, interval)
        },
        update,
    })
}

/// Methods the switch takes.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

fn reason_phrase_any(code: u16) -> &'static str {
    match code {
        200 => "OK",
        _ => reason_phrase(code),
    }
}

/// A response's reason phrase as sent (the usual one when it is empty).
fn resp_reason(resp: &Response<'_>) -> String {
    if resp.reason.is_empty() {
        reason_phrase_any(resp.status).to_string()
    } else {
        resp.reason.to_string()
    }
}

/// A From value without its tag parameter (the switch puts its own).
fn strip_tag(from: &str) -> String {
    let mut out = String::with_capacity(from.len());
    // Header parameters follow the `>` of a name-addr, or the first `;`
    // of a bare addr-spec (RFC 3261 §20.10).
    let after = match from.rfind('>') {
        Some(i) => i + 1,
        None => from.find(';').unwrap_or(from.len()),
    };
    let (head, params) = from.split_at(after);
    out.push_str(head);
    for p in params.split(';').filter(|p| !p.trim().is_empty()) {
        if !p.trim().to_ascii_lowercase().starts_with("tag=") {
            let _ = write!(out, ";{}", p.trim());
        }
    }
    out
}
