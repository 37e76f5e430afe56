//! A data-plane worker: one packet engine (io_uring or epoll) holding the
//! SIP socket and every RTP socket of the worker's calls, the B2BUA, the
//! relay and the dialplan, all on one thread.
//!
//! One loop turn: the engine waits for datagrams (or the B2BUA's next
//! deadline); RTP is relayed inside the turn (parse, source check,
//! rewrite, queued for the batched send); SIP datagrams are collected and
//! handed to the B2BUA after it, then its timers run, routing decisions
//! are made, media instructions applied to the engine and relay, and SIP
//! is sent.
//!
//! SIGTERM (or a first SIGINT) drains: new INVITEs get 503 with
//! Retry-After, calls up carry on until they end or the drain timeout
//! hangs them up, then the worker returns and the process exits. A second
//! SIGINT exits at once.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentiric_engine::b2bua::{
    owner_of, worker_prefix, B2bua, B2buaConfig, CallRef, Event, Leg, Refusal, Refusals,
};
use sentiric_engine::dialplan::{Dialplan, RouteRequest, StaticDialplan, Transport};
use sentiric_events::v1::{self, event::Body};
use sentiric_io::{Engine, Outbox, PacketHandler, Token};
use sentiric_media::mixer::MixMinus;
use sentiric_media::wav::WavPlayer;
use sentiric_rtp::dtmf::{char_event, event_char, DtmfDetector, DtmfEvent, DtmfPacket, DtmfSender};
use sentiric_rtp::packet::{RtpHeader, RtpPacket};
use sentiric_rtp::relay::{LatchPolicy, LegSpec, Relay, RelayDrop, TelephoneEvent};
use sentiric_sip::build::stateless_response;
use sentiric_sip::{Disposition, Message};

use crate::events::Events;
use crate::inbox::{Inbound, Inbox};
use crate::media::{Instruction, Media, RtpSocket};
use crate::plugins::{Begun, Conversing, Decision};
use crate::transcoding::Transcoded;
use crate::voice::{Coder, Voice};
use sentiric_media::agent::{AgentAudio, Heard, PlayDone};
use sentiric_plugin_sdk::v1 as pv1;

/// Media the worker takes in itself.
enum Taken {
    /// A conference member's or an agent call's, in this codec and
    /// payload type: decoded here for the mixer or the agent; with the
    /// format of its RFC 4733 digits, read here too.
    Member(Coder, u8, Option<Box<Digits>>),
    /// A transcoded call's leg.
    Transcoded(CallRef, Leg),
}

/// A caller's RFC 4733 digits, read from its stream.
struct Digits {
    te: TelephoneEvent,
    detector: DtmfDetector,
}

/// Datagrams of one turn: RTP relayed at once, SIP kept for after.
struct Turn {
    sip: Token,
    /// The worker's own SIP socket (B legs), with several workers.
    own: Option<Token>,
    relay: Relay<Token>,
    /// SIP messages of the turn: bytes, source, transport, and whether
    /// another worker passed it here (it is not placed again).
    inbox: Vec<(Vec<u8>, SocketAddr, Transport, bool)>,
    wake: Token,
    /// Sockets whose media the worker takes in itself rather than relays
    /// (one lookup per packet tells them apart, none while there are
    /// none).
    taken: HashMap<Token, Taken>,
    mixer_inbox: Vec<(Token, SocketAddr, Vec<i16>)>,
    /// Digits taken media sent this turn: its socket, the event, its
    /// duration in milliseconds.
    digits_inbox: Vec<(Token, u8, u32)>,
    /// Each transcoded call's transcoding state.
    transcoders: HashMap<CallRef, Transcoded>,
    /// Legs the switch terminates itself (prompts, conference members,
    /// agents): what they sent and were sent, for the call's CDR.
    local: HashMap<Token, LocalLeg>,
    /// The packet being built for a transcoded leg.
    scratch: Vec<u8>,
    /// RTP packets, and their bytes (UDP payload), sent on to a leg.
    relayed: u64,
    relayed_bytes: u64,
    dropped: u64,
}

impl PacketHandler for Turn {
    fn on_packet(
        &mut self,
        token: Token,
        from: SocketAddr,
        data: &mut [u8],
        now: Instant,
        out: &mut Outbox,
    ) {
        if token == self.sip || Some(token) == self.own {
            self.inbox
                .push((data.to_vec(), from, Transport::Udp, false));
            return;
        }
        if token == self.wake {
            return;
        }
        if !self.taken.is_empty() {
            match self.taken.get_mut(&token) {
                None => {}
                Some(Taken::Member(coder, pt, digits)) => {
                    // DTMF and comfort noise are not mixed.
                    let Ok(p) = RtpPacket::parse(data) else {
                        return;
                    };
                    let event = digits.as_ref().is_some_and(|d| d.te.pt == p.payload_type());
                    if let Some(l) = self.local.get_mut(&token) {
                        l.on_packet(&p, event, now);
                    }
                    if p.payload_type() == *pt {
                        let mut frame = Vec::with_capacity(160);
                        coder.decode(p.payload(), &mut frame);
                        frame.resize(160, 0);
                        self.mixer_inbox.push((token, from, frame));
                    } else if let Some(d) = digits.as_mut().filter(|d| d.te.pt == p.payload_type())
                    {
                        for e in d.detector.on_packet(p.timestamp(), p.payload()) {
                            if let DtmfEvent::End {
                                event, duration, ..
                            } = e
                            {
                                let ms = u32::from(duration) * 1000 / d.te.clock_rate.max(1);
                                self.digits_inbox.push((token, event, ms));
                            }
                        }
                    }
                    return;
                }
                Some(&mut Taken::Transcoded(call, leg)) => {
                    return self.transcode(call, leg, token, from, data, now, out);
                }
            }
        }
        match self.relay.on_rtp(token, from, data, now) {
            Ok((via, to)) => {
                out.push(via, to, data);
                self.relayed += 1;
                self.relayed_bytes += data.len() as u64;
            }
            // A prompt's caller: bridged to nothing, counted for its CDR.
            Err(RelayDrop::UnknownLeg) if self.local.contains_key(&token) => {
                if let (Some(l), Ok(p)) = (self.local.get_mut(&token), RtpPacket::parse(data)) {
                    l.on_packet(&p, false, now);
                }
            }
            Err(_) => self.dropped += 1,
        }
    }
}

/// A leg the switch terminates: RFC 3550 statistics of what it sends,
/// and the packets the switch's own streams sent it (the count shared
/// with its [`Stream`]).
struct LocalLeg {
    clock_rate: u32,
    /// Packets it sent, all (the statistics count from the end of RFC
    /// 3550's probation).
    packets: u64,
    stats: Option<sentiric_rtp::stats::ReceiverStats>,
    sent: Rc<Cell<u64>>,
}

impl LocalLeg {
    fn new(clock_rate: u32) -> LocalLeg {
        LocalLeg {
            clock_rate,
            packets: 0,
            stats: None,
            sent: Rc::default(),
        }
    }

    /// A packet the leg sent (`event`: an RFC 4733 one, untimed).
    fn on_packet(&mut self, p: &RtpPacket<'_>, event: bool, now: Instant) {
        self.packets += 1;
        let clock_rate = self.clock_rate;
        let s = self.stats.get_or_insert_with(|| {
            sentiric_rtp::stats::ReceiverStats::new(p.sequence(), clock_rate)
        });
        if event {
            s.on_untimed_packet(p.sequence(), p.payload().len());
        } else {
            s.on_packet(p.sequence(), p.timestamp(), p.payload().len(), now);
        }
    }

    /// What the leg sent, as the relay reports a bridged one.
    fn quality(&self) -> sentiric_rtp::relay::LegQuality {
        self.stats
            .as_ref()
            .map(|s| sentiric_rtp::relay::LegQuality {
                received: u32::try_from(self.packets).unwrap_or(u32::MAX),
                lost: s.lost(),
                jitter: s.jitter_duration(),
            })
            .unwrap_or_default()
    }
}

impl Turn {
    /// The leg on `token` is terminated by the switch in `voice`: its
    /// counts start (again); the count of what the switch sends it.
    fn local_leg(&mut self, token: Token, voice: Voice) -> Rc<Cell<u64>> {
        let leg = self
            .local
            .entry(token)
            .or_insert_with(|| LocalLeg::new(voice.step() * 50));
        Rc::clone(&leg.sent)
    }

    /// A packet on leg `leg` of a transcoded call: source-checked by the
    /// relay, converted, and what comes out sent to the other leg.
    #[allow(clippy::too_many_arguments)]
    fn transcode(
        &mut self,
        call: CallRef,
        leg: Leg,
        token: Token,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
        out: &mut Outbox,
    ) {
        let (Ok((via, to)), Some(t), Ok(p)) = (
            self.relay.accept(token, from, data, now),
            self.transcoders.get_mut(&call),
            RtpPacket::parse(data),
        ) else {
            self.dropped += 1;
            return;
        };
        let (mut sent, mut bytes) = (0, 0);
        let r = t.on_packet(leg, &p, &mut self.scratch, |b| {
            out.push(via, to, b);
            sent += 1;
            bytes += b.len() as u64;
        });
        self.relayed += sent;
        self.relayed_bytes += bytes;
        if r.is_err() {
            self.dropped += 1;
        }
    }
}

/// A stream the switch originates: G.711 frames as RTP under its own
/// SSRC, sequence and timestamp.
struct Stream {
    sock: UdpSocket,
    /// Packets sent, shared with the leg's [`LocalLeg`].
    sent: Rc<Cell<u64>>,
    coder: Coder,
    step: u32,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    started: bool,
}

impl Stream {
    fn new(sock: UdpSocket, voice: Voice, pt: u8, sent: Rc<Cell<u64>>) -> Result<Stream, String> {
        Ok(Stream {
            sock,
            sent,
            coder: Coder::new(voice)?,
            step: voice.step(),
            pt,
            seq: random_u64() as u16,
            ts: random_u64() as u32,
            ssrc: random_u64() as u32,
            started: false,
        })
    }

    /// Encodes and sends one 20 ms frame to `to`.
    fn send(
        &mut self,
        pcm: &[i16],
        to: Option<SocketAddr>,
        payload: &mut Vec<u8>,
        packet: &mut Vec<u8>,
    ) {
        self.coder.encode(pcm, payload);
        packet.clear();
        RtpHeader {
            marker: !self.started,
            payload_type: self.pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
        }
        .write(payload, packet);
        if let Some(to) = to {
            if self.sock.send_to(packet, to).is_ok() {
                self.sent.set(self.sent.get() + 1);
            }
        }
        self.started = true;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.step);
    }

    /// Sends one RFC 4733 packet `p` (payload type `pt`) to `to`, in the
    /// stream's sequence, taking a frame's time.
    fn send_event(&mut self, p: DtmfPacket, pt: u8, to: Option<SocketAddr>, packet: &mut Vec<u8>) {
        packet.clear();
        RtpHeader {
            marker: p.marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: p.timestamp,
            ssrc: self.ssrc,
        }
        .write(&p.payload, packet);
        if let Some(to) = to {
            if self.sock.send_to(packet, to).is_ok() {
                self.sent.set(self.sent.get() + 1);
            }
        }
        self.started = true;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.step);
    }
}

/// Digits an agent may have waiting to be sent.
const MAX_DIGITS: usize = 64;

/// The most of a turn's words (either side) an event carries, bytes.
const MAX_TURN_TEXT: usize = 4096;

/// `text` cut to at most `max` bytes, at a character's boundary.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// How long the target of an agent's transfer may ring.
const TRANSFER_RING: Duration = Duration::from_secs(60);

/// How long a call's end waits for its sidecar agent's last word (the
/// turn the hang-up cut short, CDR tags) after telling it the call ended.
const AGENT_LAST_WORD: Duration = Duration::from_secs(1);

/// What an agent may still do once its call has ended: report its turn
/// and tag the CDR.
fn last_word(action: &pv1::CallAction) -> bool {
    use pv1::call_action::Action as A;
    matches!(action.action, Some(A::Turn(_) | A::CdrTags(_)))
}

/// A log line about a call: its number in this worker, its Call-ID and
/// its trace id (from `ids`).
macro_rules! call_log {
    ($level:ident, $ids:expr, $call:expr, $($rest:tt)+) => {{
        let (call_id, trace_id) = ids_of($ids, $call);
        tracing::$level!(call = $call.0, call_id = %call_id, trace_id = %trace_id, $($rest)+)
    }};
}

/// A call connected to an agent: the caller's audio to it, its plays
/// spoken to the caller one frame per 20 ms.
struct AgentCall {
    /// The call's Call-ID and trace id, for its log lines.
    call_id: String,
    trace_id: String,
    /// The caller's socket.
    token: Token,
    stream: Stream,
    peer: Option<SocketAddr>,
    audio: AgentAudio,
    next: Instant,
    /// The conversation (dropped: it ends).
    link: Conversing,
    /// What an in-process agent asked, not yet carried out.
    actions: Vec<pv1::CallAction>,
    /// Why its conversation is over, when it is (the call ends).
    gone: Option<String>,
    /// The call is being hung up (by the agent, or for its failure):
    /// the stream's end is no (further) failure.
    hung_up: bool,
    /// The agent handed the call on: it may go before the target answers.
    transferred: bool,
    /// The caller's RFC 4733 format, if it offered one.
    te: Option<TelephoneEvent>,
    /// Digits the agent asked to send, not yet begun (events).
    to_send: VecDeque<u8>,
    /// The digit being sent.
    sending: Option<DtmfSender>,
    /// Frames of silence left between two digits.
    pause: u8,
}

impl AgentCall {
    /// Tells the agent `input`.
    fn tell(&mut self, input: pv1::call_input::Input) {
        if self.gone.is_none() {
            if let Err(why) = self.link.tell(input, &mut self.actions) {
                self.gone = Some(why);
            }
        }
    }

    /// Tells the agent its plays are over.
    fn done(&mut self, done: &mut Vec<PlayDone>) {
        for d in done.drain(..) {
            self.tell(pv1::call_input::Input::PlaybackDone(pv1::PlaybackDone {
                id: d.id,
                interrupted: d.interrupted,
            }));
        }
    }

    /// The caller's next 20 ms (8 kHz): to the agent, with speech start
    /// and stop; speech while the agent talks stops it (barge-in).
    fn hear(&mut self, frame: &[i16], heard: &mut Vec<Heard>, done: &mut Vec<PlayDone>) {
        use pv1::call_input::Input;
        self.audio.hear(frame, heard);
        for h in heard.drain(..) {
            let input = match h {
                Heard::Audio { pcm, ms } => Input::Audio(pv1::AudioFrame { pcm, time_ms: ms }),
                Heard::SpeechStarted { ms } => {
                    if self.audio.playing() {
                        self.audio.stop(done);
                        self.done(done);
                    }
                    Input::SpeechStarted(pv1::SpeechStarted { time_ms: ms })
                }
                Heard::SpeechStopped { ms } => {
                    Input::SpeechStopped(pv1::SpeechStopped { time_ms: ms })
                }
            };
            self.tell(input);
        }
    }

    /// Carries out what the agent asked; `emit` records the call's
    /// events.
    fn act<M: sentiric_engine::b2bua::MediaPlane>(
        &mut self,
        now: Instant,
        call: CallRef,
        action: pv1::CallAction,
        b2b: &mut B2bua<M>,
        done: &mut Vec<PlayDone>,
        emit: impl FnOnce(Body),
    ) {
        use pv1::call_action::Action as A;
        match action.action {
            Some(A::Play(p)) => self.audio.play(&p.id, &p.pcm, p.last),
            Some(A::Stop(_)) => {
                self.audio.stop(done);
                self.done(done);
            }
            Some(A::HangUp(h)) => {
                tracing::info!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id, "agent hangs up: {}", h.reason);
                // Why, in the CDR (the cause says the switch ended it).
                let reason = bounded(h.reason, 128);
                if !reason.is_empty() {
                    let tags = [("hangup_reason".to_string(), reason)].into();
                    if sentiric_plugin_sdk::check_tags(&tags).is_ok() {
                        emit(Body::CallTagged(v1::CallTagged { tags }));
                    }
                }
                self.hung_up = true;
                b2b.hang_up(now, call);
            }
            Some(A::Turn(t)) => emit(Body::AgentTurn(v1::AgentTurn {
                agent: self.link.agent().to_string(),
                transcript: bounded(t.transcript, MAX_TURN_TEXT),
                response: bounded(t.response, MAX_TURN_TEXT),
                transcript_ms: t.transcript_ms,
                first_token_ms: t.first_token_ms,
                first_audio_ms: t.first_audio_ms,
                interrupted: t.interrupted,
                tools: t.tools,
            })),
            Some(A::SendDtmf(d)) => {
                if self.te.is_none() {
                    tracing::warn!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id,
                        "agent: the caller offered no telephone-event; digits {} not sent",
                        d.digits
                    );
                    return;
                }
                for c in d.digits.chars() {
                    match char_event(c) {
                        Some(event) if self.to_send.len() < MAX_DIGITS => {
                            self.to_send.push_back(event)
                        }
                        Some(_) => tracing::warn!(
                        call = call.0,
                        call_id = %self.call_id,
                        trace_id = %self.trace_id,
                                "agent: digits beyond {MAX_DIGITS} waiting dropped"
                            ),
                        None => tracing::warn!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id, "agent: {c} is not a DTMF digit"),
                    }
                }
            }
            Some(A::CdrTags(t)) => match sentiric_plugin_sdk::check_tags(&t.tags) {
                Ok(()) => emit(Body::CallTagged(v1::CallTagged { tags: t.tags })),
                Err(e) => tracing::warn!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id, "agent: CDR tags refused: {e}"),
            },
            Some(A::Transfer(t)) => {
                if b2b.transfer(now, call, &t.uri, TRANSFER_RING) {
                    tracing::info!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id, "agent transfers the call to {}", t.uri);
                    self.transferred = true;
                } else {
                    tracing::warn!(
                    call = call.0,
                    call_id = %self.call_id,
                    trace_id = %self.trace_id,
                        "agent: transfer to {} refused (not a reachable SIP URI, or \
                         one is under way)",
                        t.uri
                    );
                }
            }
            None => {}
        }
    }

    /// The next frame of the digit being sent, if one is (or one waits
    /// and no pause is due): `true` when this frame went to a digit.
    fn send_digit(&mut self, packet: &mut Vec<u8>) -> bool {
        let Some(te) = self.te else {
            return false;
        };
        if self.sending.is_none() {
            if self.pause > 0 {
                self.pause -= 1;
                return false;
            }
            let Some(event) = self.to_send.pop_front() else {
                return false;
            };
            // 100 ms of tone, an update each frame (RFC 4733 §2.5.1).
            let step = u16::try_from(self.stream.step).unwrap_or(160);
            let total = u16::try_from(te.clock_rate / 10).unwrap_or(800);
            self.sending = Some(DtmfSender::new(event, self.stream.ts, total, step, 10));
        }
        match self.sending.as_mut().and_then(Iterator::next) {
            Some(p) => {
                self.stream.send_event(p, te.pt, self.peer, packet);
                true
            }
            None => {
                // Done: 40 ms before the next digit.
                self.sending = None;
                self.pause = 2;
                false
            }
        }
    }

    /// Speaks what is due at `now`.
    fn speak(
        &mut self,
        now: Instant,
        pcm: &mut Vec<i16>,
        payload: &mut Vec<u8>,
        packet: &mut Vec<u8>,
        done: &mut Vec<PlayDone>,
    ) {
        if now.saturating_duration_since(self.next) > Duration::from_millis(100) {
            self.next = now;
        }
        while self.next <= now {
            // A digit being sent takes the frame; the agent's audio waits.
            if !self.send_digit(packet) && self.audio.speak(pcm, done) {
                self.stream.send(pcm, self.peer, payload, packet);
            }
            self.next += Duration::from_millis(20);
        }
        self.done(done);
    }
}

/// A prompt being played to a caller: one packet every 20 ms.
struct Player {
    call: CallRef,
    stream: Stream,
    to: Option<SocketAddr>,
    prompt: WavPlayer,
    next: Instant,
}

impl Player {
    /// Sends what is due at `now`; `false` once the prompt is over.
    fn play(
        &mut self,
        now: Instant,
        pcm: &mut Vec<i16>,
        payload: &mut Vec<u8>,
        packet: &mut Vec<u8>,
    ) -> bool {
        // Late by more than a few frames (a stalled turn): catch up, do
        // not burst.
        if now.saturating_duration_since(self.next) > Duration::from_millis(100) {
            self.next = now;
        }
        while self.next <= now {
            if !self.prompt.next_frame(pcm) {
                return false;
            }
            self.stream.send(pcm, self.to, payload, packet);
            self.next += Duration::from_millis(20);
        }
        true
    }
}

/// One conference member: what it sent, waiting for the mixer, and its
/// outgoing stream.
struct Member {
    call: CallRef,
    token: Token,
    stream: Stream,
    /// Where it sends from (symmetric RTP), else its SDP address.
    peer: Option<SocketAddr>,
    /// Decoded 20 ms frames in arrival order (a few at most).
    heard: std::collections::VecDeque<Vec<i16>>,
}

/// A conference room: every 20 ms, each member gets the mix of the others.
struct Room {
    members: Vec<Member>,
    mixer: MixMinus,
    next: Instant,
    outputs: Vec<Vec<i16>>,
}

impl Room {
    /// Mixes and sends what is due at `now`.
    fn tick(&mut self, now: Instant, payload: &mut Vec<u8>, packet: &mut Vec<u8>) {
        if now.saturating_duration_since(self.next) > Duration::from_millis(100) {
            self.next = now;
        }
        while self.next <= now {
            self.next += Duration::from_millis(20);
            let frames: Vec<Option<Vec<i16>>> = self
                .members
                .iter_mut()
                .map(|m| m.heard.pop_front())
                .collect();
            let inputs: Vec<Option<&[i16]>> = frames.iter().map(Option::as_deref).collect();
            self.outputs
                .resize_with(self.members.len(), || vec![0; 160]);
            self.mixer.mix(&inputs, &mut self.outputs);
            for (m, out) in self.members.iter_mut().zip(&self.outputs) {
                m.stream.send(out, m.peer, payload, packet);
            }
        }
    }
}

/// The worker's metrics, registered once: the handles cost an atomic
/// add each, where the macros look the series up every time.
struct Metrics {
    relayed: metrics::Counter,
    relayed_bytes: metrics::Counter,
    dropped: metrics::Counter,
    lost: metrics::Counter,
    jitter: metrics::Histogram,
    calls_active: metrics::Gauge,
    turn: metrics::Histogram,
    setup: metrics::Histogram,
    transcoded: metrics::Counter,
    requests: HashMap<String, metrics::Counter>,
    responses: HashMap<[u8; 3], metrics::Counter>,
    calls: HashMap<u16, metrics::Counter>,
    /// SIP transactions alive (every worker adds its change).
    transactions: metrics::Gauge,
    /// New requests refused with 503, by [`Refusal::ALL`]'s order.
    refused: [metrics::Counter; 5],
}

/// Says in the log that new requests are being refused (overload
/// protection or drain): the first refusal of a reason at once, then at
/// most once a minute with the count since.
#[derive(Default)]
struct RefusalLog {
    /// The engine's counts as last seen.
    seen: Refusals,
    /// Per reason: when last logged, and refusals since then.
    logged: [(Option<Instant>, u64); 5],
}

impl RefusalLog {
    /// Takes the engine's counts at `now`: adds the new refusals to `m`
    /// and logs them.
    fn update(&mut self, now: Instant, counts: Refusals, m: &Metrics, max_transactions: usize) {
        for (i, reason) in Refusal::ALL.into_iter().enumerate() {
            let new = counts.0[i] - self.seen.0[i];
            if new == 0 {
                continue;
            }
            m.refused[i].increment(new);
            let (last, since) = &mut self.logged[i];
            *since += new;
            if last.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60)) {
                continue;
            }
            let why = match reason {
                Refusal::Draining => "the switch is draining".to_string(),
                Refusal::Held => "the event outbox is full ([events] outbox_max_mb)".to_string(),
                Refusal::MaxCalls => "[limits] max_calls calls are up".to_string(),
                Refusal::MaxCps => "beyond [limits] max_cps".to_string(),
                Refusal::Transactions => format!(
                    "the worker's SIP transaction table is full ({max_transactions}: [limits] max_transactions)"
                ),
                _ => reason.to_string(),
            };
            tracing::warn!(
                reason = reason.as_str(),
                refused = *since,
                "overload protection: {since} new requests refused with 503 ({why})",
                since = *since
            );
            *last = Some(now);
            *since = 0;
        }
        self.seen = counts;
    }
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            relayed: metrics::counter!("sentiric_rtp_relayed_packets_total"),
            relayed_bytes: metrics::counter!("sentiric_rtp_relayed_bytes_total"),
            dropped: metrics::counter!("sentiric_rtp_dropped_packets_total"),
            lost: metrics::counter!("sentiric_rtp_lost_packets_total"),
            jitter: metrics::histogram!("sentiric_rtp_jitter_seconds"),
            calls_active: metrics::gauge!("sentiric_calls_active"),
            turn: metrics::histogram!("sentiric_worker_turn_seconds"),
            setup: metrics::histogram!("sentiric_call_setup_seconds"),
            transcoded: metrics::counter!("sentiric_calls_transcoded_total"),
            requests: HashMap::new(),
            responses: HashMap::new(),
            calls: HashMap::new(),
            transactions: metrics::gauge!("sentiric_sip_transactions"),
            refused: Refusal::ALL
                .map(|r| metrics::counter!("sentiric_calls_refused_total", "reason" => r.as_str())),
        }
    }

    fn request(&mut self, method: &str) {
        match self.requests.get(method) {
            Some(c) => c.increment(1),
            None => {
                let c = metrics::counter!("sentiric_sip_requests_total", "method" => method.to_string());
                c.increment(1);
                self.requests.insert(method.to_string(), c);
            }
        }
    }

    fn response(&mut self, code: [u8; 3]) {
        self.responses
            .entry(code)
            .or_insert_with(|| {
                let label = String::from_utf8_lossy(&code).into_owned();
                metrics::counter!("sentiric_sip_responses_total", "code" => label)
            })
            .increment(1);
    }

    fn call_ended(&mut self, status: u16) {
        self.calls
            .entry(status)
            .or_insert_with(
                || metrics::counter!("sentiric_calls_total", "code" => status.to_string()),
            )
            .increment(1);
    }
}

/// The per-call media state the worker keeps.
#[derive(Default)]
struct CallMedia {
    a: Option<Token>,
    b: Option<Token>,
    peer_a: Option<SocketAddr>,
    peer_b: Option<SocketAddr>,
    /// The format each leg's SDP gave its digits.
    dtmf_a: Option<TelephoneEvent>,
    dtmf_b: Option<TelephoneEvent>,
    /// The RTP clock rate of what each leg sends.
    clock_a: u32,
    clock_b: u32,
    /// Each leg's SDP says it does not send (on hold).
    quiet_a: bool,
    quiet_b: bool,
    /// Packets from the call's legs so far, and since when that count
    /// has not moved (the media timeout).
    seen: Option<(u64, Instant)>,
    /// When its legs were last asked whether they are there (no RTP to
    /// tell: in-dialog OPTIONS).
    probed: Option<Instant>,
    bridged: bool,
}

/// A leg's clock rate as its SDP gave it, or G.711's 8000 before its SDP
/// is known (its answer sets it then).
fn known_clock(rate: u32) -> u32 {
    if rate == 0 {
        8000
    } else {
        rate
    }
}

/// What the worker keeps of a call for its log lines and events.
struct CallInfo {
    /// The caller's Call-ID.
    call_id: String,
    /// Minted at ingress.
    trace_id: String,
    /// When the INVITE was routed (as it arrived).
    started: Instant,
    answered: Option<Instant>,
    /// The sequence number of the call's last event.
    seq: u64,
    /// The codecs the legs settled on, as of the answer.
    codecs: Option<v1::Codecs>,
    /// Why the switch ended it, when the status does not say
    /// (`media_timeout`).
    cause: Option<&'static str>,
}

impl CallInfo {
    /// Sends the call's next event.
    fn emit(&mut self, events: &Events, body: Body) {
        events.emit(self.next(body));
    }

    /// Sends the call's `CallEnded` (`body`): its last event.
    /// `false`: the events thread is gone.
    fn emit_end(&mut self, events: &Events, body: Body, ack: Option<crate::events::Ack>) -> bool {
        events.emit_end(self.next(body), ack)
    }

    /// `body` as the call's next event.
    fn next(&mut self, body: Body) -> v1::Event {
        self.seq += 1;
        let mut e = sentiric_events::unstamped(body);
        e.call_id.clone_from(&self.call_id);
        e.trace_id.clone_from(&self.trace_id);
        e.sequence = self.seq;
        e
    }

    /// The call's `CallEnded`, at `now`.
    fn ended(
        &self,
        now: Instant,
        status: u16,
        by: Option<Leg>,
        rtp: [Option<v1::RtpQuality>; 2],
    ) -> Body {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let side = match by {
            Some(Leg::A) => v1::Side::Caller,
            Some(Leg::B) => v1::Side::Callee,
            None => v1::Side::Switch,
        };
        let cause = match (status, by) {
            _ if self.cause.is_some() => self.cause.unwrap_or_default(),
            (200..=299, Some(_)) => "normal",
            (200..=299, None) => "ended_by_switch",
            (486 | 600, _) => "busy",
            (408 | 480, _) => "no_answer",
            (487, _) => "cancelled",
            (300..=399, _) => "redirected",
            (500..=599, _) => "failed",
            _ => "rejected",
        };
        let [caller_rtp, callee_rtp] = rtp;
        Body::CallEnded(v1::CallEnded {
            cause: cause.into(),
            side: side.into(),
            sip_code: u32::from(status),
            duration_ms: ms(now.saturating_duration_since(self.started)),
            talk_ms: self
                .answered
                .map_or(0, |a| ms(now.saturating_duration_since(a))),
            codecs: self.codecs.clone(),
            caller_rtp,
            callee_rtp,
        })
    }
}

/// A call waiting for a dialplan sidecar's answer: what the `[dialplan]`
/// rules need if it fails.
struct Asking {
    request_uri: String,
    user: Option<String>,
    from_uri: String,
    from_user: Option<String>,
    source: SocketAddr,
    transport: Transport,
    headers: Vec<(String, String)>,
}

impl Asking {
    fn request(&self) -> RouteRequest<'_> {
        RouteRequest {
            request_uri: &self.request_uri,
            user: self.user.as_deref(),
            from_uri: &self.from_uri,
            from_user: self.from_user.as_deref(),
            source: self.source,
            transport: self.transport,
            headers: &self.headers,
        }
    }
}

/// The dialplan's `decision` for `call`: said in the log and the call's
/// events (its tags go to the CDR), and done.
fn routed(
    b2b: &mut B2bua<Media>,
    ids: &mut HashMap<CallRef, CallInfo>,
    agent_params: &mut HashMap<CallRef, HashMap<String, String>>,
    events: &Events,
    now: Instant,
    call: CallRef,
    decision: Decision,
) {
    let Decision {
        action,
        rule,
        tags,
        params,
    } = decision;
    if let sentiric_engine::dialplan::Action::Agent {
        params: rule_params,
        ..
    } = &action
    {
        // A rule's own, then the plugin's over them.
        let mut all: HashMap<String, String> = rule_params.clone().into_iter().collect();
        all.extend(params);
        agent_params.insert(call, all);
    }
    if let Some(info) = ids.get_mut(&call) {
        tracing::debug!(
            call = call.0,
            call_id = %info.call_id,
            trace_id = %info.trace_id,
            "call routed: {action}"
        );
        let mut routed = crate::events::routed(&action);
        routed.rule = rule;
        routed.tags = tags;
        info.emit(events, Body::CallRouted(routed));
    }
    b2b.route(now, call, action);
}

/// The event of an RFC 4733 digit received from `side`.
fn received(side: v1::Side, digit: char, ms: u32) -> Body {
    Body::DtmfReceived(v1::DtmfReceived {
        side: side.into(),
        digit: digit.into(),
        duration_ms: ms,
        method: "rfc4733".into(),
    })
}

/// Records `body` as an event of `call`, if the call is known.
fn emit_for(ids: &mut HashMap<CallRef, CallInfo>, events: &Events, call: CallRef, body: Body) {
    if let Some(info) = ids.get_mut(&call) {
        info.emit(events, body);
    }
}

/// Who ended a call, as its log line says it.
fn ended_by(by: Option<Leg>) -> &'static str {
    match by {
        Some(Leg::A) => "the caller (A)",
        Some(Leg::B) => "the callee (B)",
        None => "the switch",
    }
}

/// A call's Call-ID and trace id for its log lines.
fn ids_of(ids: &HashMap<CallRef, CallInfo>, call: CallRef) -> (&str, &str) {
    ids.get(&call)
        .map_or(("", ""), |i| (i.call_id.as_str(), i.trace_id.as_str()))
}

/// Random bits for tags and SSRCs from the standard library's
/// OS-seeded hasher keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5e17_171c);
    h.finish()
}

/// What a worker is told besides its sockets.
pub(crate) struct Settings {
    /// This worker's place among the workers.
    pub(crate) index: usize,
    /// Every worker's inbox (this one's too), by index.
    pub(crate) workers: Vec<Inbox>,
    /// A worker keeps new calls below this share of its core.
    pub(crate) keep_calls_below: f64,
    /// Routing: the dialplan now (replaced on SIGHUP).
    pub(crate) router: Arc<crate::plugins::Router>,
    /// Most calls at once.
    pub(crate) max_calls: Option<usize>,
    /// Most new calls per second.
    pub(crate) max_cps: Option<u32>,
    /// Longest a call may last once answered.
    pub(crate) max_call_duration: Option<Duration>,
    /// Most SIP transactions the worker's table holds for requests it
    /// receives.
    pub(crate) max_transactions: usize,
    /// An answered call none of whose sending legs sent RTP this long is
    /// hung up (`[rtp] timeout_s`); and one whose legs all said they send
    /// nothing (`[rtp] silent_timeout_s`).
    pub(crate) media_timeout: Option<Duration>,
    pub(crate) silent_timeout: Option<Duration>,
    /// A call without RTP this long has its legs asked, this often,
    /// whether they are there (`[sip] probe_s`).
    pub(crate) probe: Option<Duration>,
    /// The INVITE's headers dialplans are given.
    pub(crate) route_headers: Vec<String>,
    /// Set by SIGTERM or SIGINT: drain, then return.
    pub(crate) stop: Arc<AtomicBool>,
    /// How long calls up may carry on once draining.
    pub(crate) drain_timeout: Duration,
    /// What the health endpoints report.
    pub(crate) status: Arc<crate::http::Status>,
    /// What reaches this worker from outside its engine, and the socket
    /// whose datagrams say so.
    pub(crate) inbox: std::sync::mpsc::Receiver<Inbound>,
    pub(crate) wake: UdpSocket,
    /// This worker's own SIP socket, for its B legs (with several
    /// workers).
    pub(crate) own: Option<UdpSocket>,
    /// Opens TCP connections to targets for this worker.
    pub(crate) connector: crate::tcp::Connector,
    /// Where the calls' events go.
    pub(crate) events: Events,
    /// A call's last SIP messages wait until its `CallEnded` is on disk
    /// (`[events] durable_end`).
    pub(crate) durable_end: bool,
}

/// Writers of the open TCP connections, by peer.
type Connections = HashMap<SocketAddr, tokio::sync::mpsc::UnboundedSender<Vec<u8>>>;

/// Sends `bytes` to `to`: on its TCP connection when it has one, over UDP
/// otherwise.
fn send(engine: &mut Engine, udp: Token, conns: &Connections, to: SocketAddr, bytes: &[u8]) {
    match conns.get(&to).map(|tx| tx.send(bytes.to_vec()).is_ok()) {
        Some(true) => {}
        Some(false) => tracing::debug!(%to, "SIP over TCP: the connection is gone"),
        None => engine.queue(udp, to, bytes),
    }
}

/// Where new calls go when several workers share the SIP address. The
/// kernel keeps each source on one worker, and a trunk sends every call
/// from one address: a worker keeps the calls it receives while it is
/// busy less than `[sip] keep_calls_below` of its core (half, by default)
/// and has ports, and hands the others to the least busy worker that has
/// ports (when that one is less busy by a tenth of a core; always, with a
/// threshold of 0, ties taken in turn), remembering where each went so
/// that the INVITE's
/// retransmissions and its CANCEL follow it. A call the dialplan sends to
/// a conference room goes to the worker the room's name hashes to, so
/// that a room is mixed on one worker. Passing a call costs a hop for its
/// INVITE and for A's requests in its dialog (their To tag names the
/// owner, [`owner_of`]): under half a core's load none is passed.
struct Placement {
    index: usize,
    /// Keep new calls below this busy share (thousandths).
    keep_below: u32,
    /// Turns ties among equally busy workers.
    turn: usize,
    /// New calls handed to another worker: Call-ID → worker, and when.
    placed: HashMap<String, (usize, Instant)>,
    /// Whether the dialplan has conference rooms to place (set again when
    /// it is reloaded).
    rooms: bool,
    /// The port pool, a partition per worker: a worker whose share runs
    /// low takes no new calls.
    pool: Arc<sentiric_io::ports::PortPool>,
}

impl Placement {
    fn new(
        index: usize,
        keep_below: f64,
        dialplan: &StaticDialplan,
        pool: Arc<sentiric_io::ports::PortPool>,
    ) -> Placement {
        Placement {
            pool,
            index,
            keep_below: (keep_below * 1000.0) as u32,
            turn: 0,
            placed: HashMap::new(),
            rooms: dialplan.has_conference(),
        }
    }

    /// The worker `msg` (a UDP datagram from `source`) goes to, when not
    /// this one: a new INVITE or CANCEL per the above; `None` for anything
    /// else, and for an INVITE `serving` says this worker already serves.
    fn home(
        &mut self,
        workers: &[Inbox],
        dialplan: &StaticDialplan,
        msg: &Message<'_>,
        source: SocketAddr,
        now: Instant,
        serving: impl FnOnce(&sentiric_sip::Request<'_>) -> bool,
    ) -> Option<usize> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let req = msg.as_request()?;
        let invite = req.method == sentiric_sip::Method::Invite;
        if !(invite || req.method == sentiric_sip::Method::Cancel) || req.to().tag().is_some() {
            return None;
        }
        if let Some(&(w, _)) = self.placed.get(req.call_id()) {
            return Some(w);
        }
        if !invite {
            return None;
        }
        if self.rooms {
            let uri = req.uri().ok();
            let from = req.from().uri().ok();
            let action = dialplan.route(&RouteRequest {
                request_uri: req.uri_str(),
                user: uri.as_ref().and_then(sentiric_sip::Uri::user),
                from_uri: req.from().uri_str(),
                from_user: from.as_ref().and_then(sentiric_sip::Uri::user),
                source,
                transport: Transport::Udp,
                headers: &[],
            });
            if let sentiric_engine::dialplan::Action::Conference { room } = action {
                let hasher = BuildHasherDefault::<DefaultHasher>::default();
                return Some(hasher.hash_one(room) as usize % workers.len());
            }
        }
        // Busy share, and whether nine tenths of its ports are taken or
        // resting (read as the call comes: at thousands of calls a second
        // a share runs out within the second), or three quarters of its
        // transaction table is (one trunk's calls all reach one worker:
        // past that they are spread over the others rather than refused).
        let load = |w: usize| {
            let (free, all) = self.pool.available(w, now);
            let txs = workers[w].load.transactions.load(Ordering::Relaxed);
            (
                workers[w].load.busy.load(Ordering::Relaxed),
                free * 10 < all || txs > 750,
            )
        };
        let (busy, low) = load(self.index);
        let always = self.keep_below == 0;
        if busy < self.keep_below && !low {
            return None;
        }
        self.turn = self.turn.wrapping_add(1);
        let n = workers.len();
        let (best, best_busy) = (0..n)
            .filter(|w| always || *w != self.index)
            .map(|w| (w, load(w)))
            .filter(|&(_, (_, low))| !low)
            .map(|(w, (b, _))| (w, b))
            // Tenths of a core: workers that close are equally busy.
            .min_by_key(|&(w, b)| (b / 100, (w + n - self.turn % n) % n))?;
        if best == self.index || (!low && !always && best_busy + 100 > busy) {
            return None;
        }
        // A retransmission of an INVITE this worker is serving stays (its
        // transaction answers it), however busy the worker has become
        // since: asked only here, when the call would go.
        if serving(req) {
            return None;
        }
        self.placed.insert(req.call_id().to_string(), (best, now));
        Some(best)
    }

    /// Forgets calls placed long enough ago that no retransmission or
    /// CANCEL of their INVITE can come (64·T1).
    fn expire(&mut self, now: Instant) {
        self.placed
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < Duration::from_secs(32));
    }
}

/// The token of `socket`: registered with `engine` when new, else the one
/// kept for its port.
fn register(
    engine: &mut Engine,
    kept: &mut HashMap<u16, Token>,
    socket: RtpSocket,
) -> std::io::Result<Token> {
    match socket.fresh {
        Some(s) => {
            let t = engine.add(s)?;
            kept.insert(socket.port, t);
            Ok(t)
        }
        None => kept.get(&socket.port).copied().ok_or_else(|| {
            std::io::Error::other(format!("no socket kept for port {}", socket.port))
        }),
    }
}

/// A handle to send from a registered socket (a prompt's or a conference
/// member's stream).
fn sending_handle(engine: &Engine, token: Token) -> std::io::Result<UdpSocket> {
    engine
        .socket(token)
        .ok_or_else(|| std::io::Error::other("socket gone"))?
        .try_clone()
}

/// The longest an ended call's last messages wait for its `CallEnded`
/// to reach the disk (`[events] durable_end`): well before the peer's
/// transaction times out (64×T1, 32 s), which would make its
/// retransmitted BYE meet a 481.
const DURABLE_MAX: Duration = Duration::from_secs(10);

/// Runs a worker until it has drained after a stop signal.
pub(crate) fn run(
    mut engine: Engine,
    sip: UdpSocket,
    media: Media,
    settings: Settings,
) -> std::io::Result<()> {
    let Settings {
        index,
        workers,
        keep_calls_below,
        router,
        max_calls,
        max_cps,
        max_call_duration,
        max_transactions,
        media_timeout,
        silent_timeout,
        probe,
        route_headers,
        stop,
        drain_timeout,
        status,
        inbox,
        wake,
        own,
        connector,
        events,
        durable_end,
    } = settings;
    // What waits for a TCP connection being opened, by target.
    let mut connecting: HashMap<SocketAddr, Vec<Arc<[u8]>>> = HashMap::new();
    let mut conns = Connections::new();
    let (mut generation, mut host) = router.current();
    let mut placement = Placement::new(index, keep_calls_below, host.rules(), media.pool());
    let mut last_cpu = sentiric_io::affinity::thread_cpu_time().unwrap_or_default();
    status.ready.store(true, Ordering::Relaxed);
    let local = sip.local_addr()?;
    let sender = sip.try_clone()?;
    let sip_token = engine.add_large(sip)?;
    // Its datagrams only end the engine's wait: TCP messages are waiting.
    let wake_token = engine.add(wake)?;
    let mut cfg = B2buaConfig::new(local, random_u64());
    if let Some(o) = &own {
        cfg.b_local = Some(o.local_addr()?);
        cfg.token_prefix = worker_prefix(index);
    }
    let own_token = own.map(|o| engine.add_large(o)).transpose()?;
    cfg.max_calls = max_calls;
    cfg.max_cps = max_cps;
    cfg.max_call_duration = max_call_duration;
    cfg.max_transactions = max_transactions;
    cfg.route_headers = route_headers;
    cfg.hold_ends = durable_end;
    let mut b2b = B2bua::new(cfg, media);
    let mut drain_deadline: Option<Instant> = None;
    let mut turn = Turn {
        sip: sip_token,
        own: own_token,
        relay: Relay::new(),
        inbox: Vec::new(),
        wake: wake_token,
        taken: HashMap::new(),
        mixer_inbox: Vec::new(),
        digits_inbox: Vec::new(),
        transcoders: HashMap::new(),
        local: HashMap::new(),
        scratch: Vec::new(),
        relayed: 0,
        relayed_bytes: 0,
        dropped: 0,
    };
    let mut calls: HashMap<CallRef, CallMedia> = HashMap::new();
    // Each call's Call-ID (A leg), the trace id minted at ingress, and
    // when it was routed.
    let mut ids: HashMap<CallRef, CallInfo> = HashMap::new();
    // Calls waiting for a dialplan sidecar's answer.
    let mut asked: HashMap<CallRef, Asking> = HashMap::new();
    // Calls connected to an agent, and the parameters of those about to
    // be.
    let mut agents: HashMap<CallRef, AgentCall> = HashMap::new();
    // Agent calls whose media is released, waiting for the agent's last
    // word: the agent, until when, and the call's CallEnded.
    let mut leaving: HashMap<CallRef, (AgentCall, Instant, Body)> = HashMap::new();
    let mut agent_params: HashMap<CallRef, HashMap<String, String>> = HashMap::new();
    let mut agent_tokens: HashMap<Token, CallRef> = HashMap::new();
    let (mut heard, mut done) = (Vec::new(), Vec::new());
    let (mut relayed, mut relayed_bytes, mut dropped) = (0u64, 0u64, 0u64);
    let mut next_gauges = Instant::now();
    let mut m = Metrics::new();
    let mut calls_up = 0.0;
    let mut transactions_up = 0.0;
    let mut next_media_check = Instant::now() + Duration::from_secs(1);
    let mut refusal_log = RefusalLog::default();
    let mut players: Vec<Player> = Vec::new();
    let mut rooms: HashMap<String, Room> = HashMap::new();
    let (mut pcm, mut payload, mut packet) = (Vec::new(), Vec::new(), Vec::new());
    // Calls ended this turn, with their CallEnded (none for a call never
    // routed), emitted at the turn's end.
    let mut ended: Vec<(CallRef, Option<Body>)> = Vec::new();
    // Ended calls whose last messages wait for their CallEnded on disk
    // (`[events] durable_end`), oldest first, and when each began to.
    let mut holding: VecDeque<(Instant, CallRef)> = VecDeque::new();
    let unsynced = metrics::counter!("sentiric_events_durable_end_unsynced_total");
    let mut next_unsynced_log = Instant::now();
    // How calls with media ended, until their media is released.
    let mut endings: HashMap<CallRef, (u16, Option<Leg>)> = HashMap::new();
    // RTP sockets registered with the engine, by port, kept between calls.
    let mut kept: HashMap<u16, Token> = HashMap::new();
    let ssrc_seed = random_u64();
    loop {
        let now = Instant::now();
        let next = players
            .iter()
            .map(|p| p.next)
            .chain(agents.values().map(|a| a.next))
            .chain(leaving.values().map(|l| l.1))
            .chain(b2b.poll_timeout())
            .min();
        // Media work left by the end of the last turn (a prompt over, the
        // dialplan going on) is applied at once.
        let next = if b2b.media().pending.is_empty() {
            next
        } else {
            Some(now)
        };
        let wait = next
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        engine.poll(Some(wait), &mut turn)?;
        let now = Instant::now();
        // A dialplan reloaded (SIGHUP): the calls to come take it.
        if router.generation() != generation {
            (generation, host) = router.current();
            placement.rooms = host.rules().has_conference();
        }
        if turn.relay.has_digits() {
            for d in turn.relay.take_digits() {
                // Digits are rare: the call found by its sockets.
                let Some((call, side)) = calls.iter().find_map(|(call, c)| {
                    let side = if c.a == Some(d.key) {
                        v1::Side::Caller
                    } else if c.b == Some(d.key) {
                        v1::Side::Callee
                    } else {
                        return None;
                    };
                    Some((*call, side))
                }) else {
                    continue;
                };
                if let Some(digit) = event_char(d.event) {
                    let ms = u32::try_from(d.duration.as_millis()).unwrap_or(u32::MAX);
                    emit_for(&mut ids, &events, call, received(side, digit, ms));
                }
            }
        }
        while let Ok(ev) = inbox.try_recv() {
            match ev {
                Inbound::Opened(peer, tx) => {
                    for bytes in connecting.remove(&peer).unwrap_or_default() {
                        let _ = tx.send(bytes.to_vec());
                    }
                    conns.insert(peer, tx);
                }
                Inbound::Message(peer, bytes) => {
                    turn.inbox.push((bytes, peer, Transport::Tcp, false))
                }
                Inbound::Closed(peer) => {
                    conns.remove(&peer);
                    // A connection that could not be opened: its calls
                    // move on (503 from that target).
                    if connecting.remove(&peer).is_some() {
                        b2b.transport_failed(now, peer);
                    }
                }
                Inbound::Datagram(peer, bytes) => {
                    turn.inbox.push((bytes, peer, Transport::Udp, true))
                }
                Inbound::AgentAction(call, action) => {
                    if let Some(a) = agents.get_mut(&call) {
                        let emit = |b| emit_for(&mut ids, &events, call, b);
                        a.act(now, call, *action, &mut b2b, &mut done, emit);
                    } else if let Some((a, _, _)) = leaving.get_mut(&call) {
                        if last_word(&action) {
                            let emit = |b| emit_for(&mut ids, &events, call, b);
                            a.act(now, call, *action, &mut b2b, &mut done, emit);
                        }
                    }
                }
                // The agent of an ended call is done: the call's end now.
                Inbound::AgentGone(call, _) if leaving.contains_key(&call) => {
                    if let Some((_, _, body)) = leaving.remove(&call) {
                        ended.push((call, Some(body)));
                    }
                }
                // Its CallEnded is on disk: the call's last messages go.
                Inbound::Durable(call) => {
                    b2b.release(call);
                }
                Inbound::AgentGone(call, why) => {
                    // Still up (its media not released): it ends, and its
                    // release tidies the rest. Unless the agent hung up
                    // itself, its conversation broke. An agent that handed
                    // the call on may go.
                    if let Some(a) = agents.get_mut(&call).filter(|a| !a.transferred) {
                        if !a.hung_up {
                            a.link.broke();
                            call_log!(warn, &ids, call, "{why}; the call ends");
                        }
                        b2b.hang_up(now, call);
                    }
                }
                Inbound::Routed(reply) => {
                    let Some(asking) = asked.remove(&reply.call) else {
                        continue;
                    };
                    let call = reply.call;
                    let decision = host.finish(*reply, &asking.request());
                    // A call that ended meanwhile (CANCEL) is gone.
                    if b2b.is_routing(call) {
                        routed(
                            &mut b2b,
                            &mut ids,
                            &mut agent_params,
                            &events,
                            now,
                            call,
                            decision,
                        );
                    }
                }
            }
        }
        // Calls the switch could not record are not taken.
        b2b.hold_new_calls(events.full());
        for (bytes, from, transport, passed_here) in std::mem::take(&mut turn.inbox) {
            match Message::parse(&bytes) {
                Ok(msg) => {
                    // Another worker's call (its token), or a new call
                    // another worker is home to: over there.
                    if workers.len() > 1 && transport == Transport::Udp && !passed_here {
                        let home = owner_of(&msg).or_else(|| {
                            placement.home(&workers, host.rules(), &msg, from, now, |r| {
                                b2b.is_retransmission(r)
                            })
                        });
                        // A worker that has drained and gone leaves its
                        // share to the others.
                        let passed = home
                            .filter(|w| *w != index)
                            .and_then(|w| workers.get(w))
                            .is_some_and(|w| {
                                w.post(&sender, Inbound::Datagram(from, bytes.clone()))
                            });
                        if passed {
                            continue;
                        }
                    }
                    if let Some(r) = msg.as_request() {
                        m.request(r.method.as_str());
                    }
                    b2b.receive_message(now, &msg, from, transport);
                }
                Err(e) => {
                    // §8.2 / §21: the response the parse error names, sent
                    // statelessly; responses and garbage are dropped.
                    if let Disposition::Respond { status, reason } = e.disposition() {
                        let tag = format!("{:016x}", random_u64());
                        if let Some(r) = stateless_response(&bytes, status, &reason, &tag) {
                            send(&mut engine, sip_token, &conns, from, &r);
                        }
                    }
                }
            }
        }
        b2b.handle_timeout(now);
        // Draining: no new calls; calls up carry on until they end or the
        // drain timeout, then the worker returns.
        if stop.load(Ordering::Relaxed) && drain_deadline.is_none() {
            b2b.drain();
            if index == 0 {
                events.emit_node(Body::NodeDraining(v1::NodeDraining {
                    calls_up: workers
                        .iter()
                        .map(|w| u64::from(w.load.calls.load(Ordering::Relaxed)))
                        .sum(),
                    drain_timeout_s: u32::try_from(drain_timeout.as_secs()).unwrap_or(u32::MAX),
                }));
            }
            status.ready.store(false, Ordering::Relaxed);
            drain_deadline = Some(now + drain_timeout);
            tracing::info!(
                calls = b2b.calls(),
                "worker {index} draining: {} calls up, new calls refused, {} s at most",
                b2b.calls(),
                drain_timeout.as_secs()
            );
        }
        let hang_up = drain_deadline.is_some_and(|d| now >= d && b2b.calls() > 0);
        if hang_up {
            tracing::warn!(
                calls = b2b.calls(),
                "drain timeout: hanging up {} calls",
                b2b.calls()
            );
            b2b.hang_up_all(now);
        }
        while let Some(ev) = b2b.poll_event() {
            match ev {
                Event::Route {
                    call,
                    call_id,
                    request_uri,
                    user,
                    from_uri,
                    to_uri,
                    from_user,
                    source,
                    transport,
                    headers,
                } => {
                    let trace_id = format!("{:016x}{:016x}", random_u64(), random_u64());
                    let mut info = CallInfo {
                        call_id,
                        trace_id,
                        started: now,
                        answered: None,
                        seq: 0,
                        codecs: None,
                        cause: None,
                    };
                    let asking = Asking {
                        request_uri,
                        user,
                        from_uri,
                        from_user,
                        source,
                        transport,
                        headers,
                    };
                    let begun = host.begin(
                        call,
                        &asking.request(),
                        [&info.call_id, &info.trace_id, &to_uri],
                        &workers[index],
                    );
                    let started = |from_uri, request_uri| {
                        Body::CallStarted(v1::CallStarted {
                            from_uri,
                            to_uri,
                            request_uri,
                            source: source.to_string(),
                            transport: transport.to_string(),
                        })
                    };
                    match begun {
                        // Decided: the call's strings go into its event.
                        Begun::Decided(decision) => {
                            let Asking {
                                request_uri,
                                from_uri,
                                ..
                            } = asking;
                            info.emit(&events, started(from_uri, request_uri));
                            ids.insert(call, info);
                            routed(
                                &mut b2b,
                                &mut ids,
                                &mut agent_params,
                                &events,
                                now,
                                call,
                                decision,
                            );
                        }
                        // The call waits for the sidecar's answer, its
                        // request kept for the fallback.
                        Begun::Asked => {
                            let body = started(asking.from_uri.clone(), asking.request_uri.clone());
                            info.emit(&events, body);
                            ids.insert(call, info);
                            asked.insert(call, asking);
                        }
                    }
                }
                Event::Ringing {
                    call,
                    status,
                    early_media,
                } => {
                    if let Some(info) = ids.get_mut(&call) {
                        info.emit(
                            &events,
                            Body::CallRinging(v1::CallRinging {
                                sip_code: u32::from(status),
                                early_media,
                            }),
                        );
                    }
                }
                Event::Lost { call, leg } => {
                    if let Some(info) = ids.get_mut(&call) {
                        info.cause = Some("leg_gone");
                        tracing::info!(
                            call = call.0,
                            call_id = %info.call_id,
                            trace_id = %info.trace_id,
                            "the {} leg is gone (its dialog unknown there, or no answer to OPTIONS): hanging up",
                            if leg == Leg::A { "caller's" } else { "callee's" }
                        );
                    }
                }
                Event::TargetRefused { call, target, why } => {
                    let (call_id, trace_id) = ids_of(&ids, call);
                    tracing::warn!(
                        call = call.0,
                        call_id = %call_id,
                        trace_id = %trace_id,
                        target,
                        "target {target} not tried: {why}"
                    );
                }
                Event::Answered { call } => {
                    let (call_id, trace_id) = ids_of(&ids, call);
                    tracing::debug!(call = call.0, call_id = %call_id, trace_id = %trace_id, "call answered");
                    if let Some(info) = ids.get_mut(&call) {
                        let setup = now.saturating_duration_since(info.started);
                        m.setup.record(setup.as_secs_f64());
                        info.answered = Some(now);
                        let (caller, callee) = b2b.codecs(call);
                        info.codecs = Some(v1::Codecs {
                            caller: caller.unwrap_or_default().into(),
                            callee: callee.unwrap_or_default().into(),
                        });
                        info.emit(
                            &events,
                            Body::CallAnswered(v1::CallAnswered {
                                answered_by: String::new(),
                                setup_ms: u64::try_from(setup.as_millis()).unwrap_or(u64::MAX),
                                codecs: info.codecs.clone(),
                            }),
                        );
                    }
                }
                Event::Ended { call, status, by } => {
                    m.call_ended(status);
                    // A call with media says how it ended with its media,
                    // in one line and one event, when the media is
                    // released.
                    if calls.contains_key(&call) {
                        endings.insert(call, (status, by));
                        continue;
                    }
                    let body = ids
                        .get(&call)
                        .map(|info| info.ended(now, status, by, [None, None]));
                    ended.push((call, body));
                    let (call_id, trace_id) = ids_of(&ids, call);
                    tracing::info!(
                        call = call.0,
                        call_id = %call_id,
                        trace_id = %trace_id,
                        status,
                        worker = index,
                        "call ended: {status}, by {}",
                        ended_by(by)
                    );
                }
            }
        }
        // Media work the B2BUA left. A socket the engine cannot take (out
        // of descriptors or the like) ends that call; the others carry on.
        macro_rules! or_hang_up {
            ($e:expr, $call:expr) => {
                match $e {
                    Ok(t) => t,
                    Err(e) => {
                        call_log!(warn, &ids, $call, "media socket: {e}");
                        b2b.hang_up(now, $call);
                        continue;
                    }
                }
            };
        }
        // A call's RTP socket: registered when new, else the one kept for
        // its port; one the engine refuses is given up (the port binds a
        // new one next time) and ends the call.
        macro_rules! rtp_token {
            ($socket:expr, $call:expr) => {{
                let port = $socket.port;
                match register(&mut engine, &mut kept, $socket) {
                    Ok(t) => t,
                    Err(e) => {
                        b2b.media_mut().closed(port);
                        call_log!(warn, &ids, $call, "media socket: {e}");
                        b2b.hang_up(now, $call);
                        continue;
                    }
                }
            }};
        }
        for ins in std::mem::take(&mut b2b.media_mut().pending) {
            match ins {
                Instruction::Add { call, leg, socket } => {
                    let token = rtp_token!(socket, call);
                    let c = calls.entry(call).or_default();
                    match leg {
                        Leg::A => c.a = Some(token),
                        Leg::B => c.b = Some(token),
                    }
                }
                Instruction::Expect {
                    call,
                    leg,
                    peer,
                    dtmf,
                    clock_rate,
                    sends,
                } => {
                    // B answered an agent's transfer: the agent leaves,
                    // the caller's media goes to the relay.
                    if leg == Leg::B {
                        if let Some(mut a) = agents.remove(&call) {
                            turn.taken.remove(&a.token);
                            agent_tokens.remove(&a.token);
                            a.tell(pv1::call_input::Input::Ended(pv1::CallEnded {
                                cause: "transferred".into(),
                            }));
                            call_log!(info, &ids, call, "transferred: the agent leaves the call");
                        }
                    }
                    let c = calls.entry(call).or_default();
                    match leg {
                        Leg::A => {
                            (c.peer_a, c.dtmf_a, c.clock_a, c.quiet_a) =
                                (peer, dtmf, clock_rate, !sends)
                        }
                        Leg::B => {
                            (c.peer_b, c.dtmf_b, c.clock_b, c.quiet_b) =
                                (peer, dtmf, clock_rate, !sends)
                        }
                    }
                    let (Some(a), Some(b)) = (c.a, c.b) else {
                        continue;
                    };
                    if c.bridged {
                        let key = if leg == Leg::A { a } else { b };
                        turn.relay.renegotiate(key, peer);
                        turn.relay.telephone_event(key, dtmf);
                        turn.relay.clock_rate(key, clock_rate);
                    } else {
                        let ssrc = (ssrc_seed ^ call.0.wrapping_mul(0x9e37_79b9)) as u32;
                        turn.relay.bridge(
                            LegSpec {
                                key: a,
                                sdp_addr: c.peer_a,
                                ssrc,
                                clock_rate: known_clock(c.clock_a),
                            },
                            LegSpec {
                                key: b,
                                sdp_addr: c.peer_b,
                                ssrc: ssrc.rotate_left(16),
                                clock_rate: known_clock(c.clock_b),
                            },
                            LatchPolicy::AnySource,
                        );
                        turn.relay.telephone_event(a, c.dtmf_a);
                        turn.relay.telephone_event(b, c.dtmf_b);
                        c.bridged = true;
                    }
                }
                Instruction::Echo {
                    call,
                    socket,
                    peer,
                    dtmf,
                    clock_rate,
                    sends,
                } => {
                    let token = rtp_token!(socket, call);
                    // A leg bridged to itself: what arrives goes back to
                    // the latched source, under the switch's SSRC.
                    let leg = LegSpec {
                        key: token,
                        sdp_addr: peer,
                        ssrc: (ssrc_seed ^ call.0.wrapping_mul(0x9e37_79b9)) as u32,
                        clock_rate,
                    };
                    turn.relay.bridge(leg, leg, LatchPolicy::AnySource);
                    turn.relay.telephone_event(token, dtmf);
                    let c = calls.entry(call).or_default();
                    c.a = Some(token);
                    c.quiet_a = !sends;
                    c.bridged = true;
                }
                Instruction::Play {
                    call,
                    socket,
                    peer,
                    wav,
                    voice,
                    pt,
                } => {
                    // Registered so that what the caller sends is read (and
                    // dropped: the leg is bridged to nothing).
                    let token = rtp_token!(socket, call);
                    let sock = or_hang_up!(sending_handle(&engine, token), call);
                    calls.entry(call).or_default().a = Some(token);
                    let sent = turn.local_leg(token, voice);
                    let started = WavPlayer::new(&wav, 8000)
                        .map_err(|e| e.to_string())
                        .and_then(|prompt| Ok((prompt, Stream::new(sock, voice, pt, sent)?)));
                    match started {
                        Ok((prompt, stream)) => players.push(Player {
                            call,
                            stream,
                            to: peer,
                            prompt,
                            next: now,
                        }),
                        Err(e) => {
                            call_log!(warn, &ids, call, "prompt: {e}");
                            b2b.hang_up(now, call);
                        }
                    }
                }
                Instruction::Agent {
                    call,
                    socket,
                    peer,
                    agent,
                    voice,
                    pt,
                    dtmf,
                } => {
                    let token = rtp_token!(socket, call);
                    let sock = or_hang_up!(sending_handle(&engine, token), call);
                    calls.entry(call).or_default().a = Some(token);
                    let sent = turn.local_leg(token, voice);
                    let made = Stream::new(sock, voice, pt, sent).and_then(|stream| {
                        let hearing = Coder::new(voice)?;
                        let (call_id, trace_id) = ids_of(&ids, call);
                        let start = pv1::ConverseStart {
                            call: Some(pv1::RouteRequest {
                                call_id: call_id.into(),
                                trace_id: trace_id.into(),
                                ..pv1::RouteRequest::default()
                            }),
                            params: agent_params.remove(&call).unwrap_or_default(),
                        };
                        let link = host.converse(call, &agent, start, &workers[index])?;
                        let audio = AgentAudio::new(link.vad()).map_err(|e| e.to_string())?;
                        Ok((stream, hearing, audio, link))
                    });
                    match made {
                        Ok((stream, hearing, audio, link)) => {
                            let digits = dtmf.map(|te| {
                                Box::new(Digits {
                                    te,
                                    detector: DtmfDetector::new(),
                                })
                            });
                            turn.taken.insert(token, Taken::Member(hearing, pt, digits));
                            agent_tokens.insert(token, call);
                            agents.insert(
                                call,
                                AgentCall {
                                    call_id: ids_of(&ids, call).0.to_string(),
                                    trace_id: ids_of(&ids, call).1.to_string(),
                                    token,
                                    stream,
                                    peer,
                                    audio,
                                    next: now,
                                    link,
                                    actions: Vec::new(),
                                    gone: None,
                                    hung_up: false,
                                    transferred: false,
                                    te: dtmf,
                                    to_send: VecDeque::new(),
                                    sending: None,
                                    pause: 0,
                                },
                            );
                            call_log!(info, &ids, call, %agent, "connected to agent {agent}");
                        }
                        Err(e) => {
                            call_log!(warn, &ids, call, "agent {agent}: {e}; the call ends");
                            b2b.hang_up(now, call);
                        }
                    }
                }
                Instruction::Join {
                    call,
                    socket,
                    peer,
                    room,
                    voice,
                    pt,
                } => {
                    let token = rtp_token!(socket, call);
                    let sock = or_hang_up!(sending_handle(&engine, token), call);
                    calls.entry(call).or_default().a = Some(token);
                    let sent = turn.local_leg(token, voice);
                    let (stream, hearing) =
                        match (Stream::new(sock, voice, pt, sent), Coder::new(voice)) {
                            (Ok(s), Ok(h)) => (s, h),
                            (Err(e), _) | (_, Err(e)) => {
                                call_log!(warn, &ids, call, "conference: {e}");
                                b2b.hang_up(now, call);
                                continue;
                            }
                        };
                    turn.taken.insert(token, Taken::Member(hearing, pt, None));
                    let r = rooms.entry(room.clone()).or_insert_with(|| Room {
                        members: Vec::new(),
                        mixer: MixMinus::new(),
                        next: now,
                        outputs: Vec::new(),
                    });
                    r.members.push(Member {
                        call,
                        token,
                        stream,
                        peer,
                        heard: std::collections::VecDeque::new(),
                    });
                    call_log!(info, &ids, call, %room, members = r.members.len(), "joined conference");
                }
                Instruction::Transcode { call, plan } => {
                    let Some(&CallMedia {
                        a: Some(a),
                        b: Some(b),
                        ..
                    }) = calls.get(&call)
                    else {
                        continue;
                    };
                    let (call_id, trace_id) = ids_of(&ids, call);
                    match plan {
                        Some(plan) => {
                            if turn
                                .transcoders
                                .get(&call)
                                .is_some_and(|t| t.plan() == plan)
                            {
                                continue;
                            }
                            let ssrc = (ssrc_seed ^ call.0.wrapping_mul(0x9e37_79b9)) as u32;
                            match Transcoded::new(plan, ssrc) {
                                Ok(t) => {
                                    tracing::info!(
                                        call = call.0,
                                        call_id = %call_id,
                                        trace_id = %trace_id,
                                        "transcoding: A speaks {} (payload type {}), B {} ({})",
                                        plan.a.codec,
                                        plan.a.pt,
                                        plan.b.codec,
                                        plan.b.pt
                                    );
                                    m.transcoded.increment(1);
                                    turn.transcoders.insert(call, t);
                                    turn.taken.insert(a, Taken::Transcoded(call, Leg::A));
                                    turn.taken.insert(b, Taken::Transcoded(call, Leg::B));
                                }
                                Err(e) => {
                                    tracing::warn!(
                                        call = call.0,
                                        call_id = %call_id,
                                        trace_id = %trace_id,
                                        "transcoder: {e}"
                                    );
                                    b2b.hang_up(now, call);
                                }
                            }
                        }
                        None => {
                            if turn.transcoders.remove(&call).is_some() {
                                tracing::info!(
                                    call = call.0,
                                    call_id = %call_id,
                                    trace_id = %trace_id,
                                    "transcoding ends: the legs share a codec"
                                );
                            }
                            turn.taken.remove(&a);
                            turn.taken.remove(&b);
                        }
                    }
                }
                Instruction::Release { call } => {
                    players.retain(|p| p.call != call);
                    agent_params.remove(&call);
                    let mut agent_leaving = None;
                    if let Some(mut a) = agents.remove(&call) {
                        turn.taken.remove(&a.token);
                        agent_tokens.remove(&a.token);
                        a.tell(pv1::call_input::Input::Ended(pv1::CallEnded {
                            cause: "ended".into(),
                        }));
                        agent_leaving = Some(a);
                    }
                    turn.transcoders.remove(&call);
                    for r in rooms.values_mut() {
                        r.members.retain(|m| {
                            let stays = m.call != call;
                            if !stays {
                                turn.taken.remove(&m.token);
                            }
                            stays
                        });
                    }
                    rooms.retain(|_, r| !r.members.is_empty());
                    if let Some(c) = calls.remove(&call) {
                        let from = |t: Option<Token>| {
                            t.and_then(|t| turn.relay.counters(t)).unwrap_or_default()
                        };
                        let quality = |t: Option<Token>| {
                            t.and_then(|t| turn.relay.quality(t)).unwrap_or_default()
                        };
                        let (a, b) = (from(c.a), from(c.b));
                        let (qa, qb) = (quality(c.a), quality(c.b));
                        for q in [qa, qb] {
                            if q.received > 0 {
                                m.lost.increment(u64::try_from(q.lost).unwrap_or(0));
                                m.jitter.record(q.jitter.as_secs_f64());
                            }
                        }
                        let (status, by) = endings.remove(&call).unwrap_or((0, None));
                        let rtp = |q: sentiric_rtp::relay::LegQuality, sent: u64| v1::RtpQuality {
                            packets_received: u64::from(q.received),
                            packets_sent: sent,
                            packets_lost: u64::try_from(q.lost).unwrap_or(0),
                            jitter_us: u32::try_from(q.jitter.as_micros()).unwrap_or(u32::MAX),
                        };
                        // A leg the switch terminated (a prompt, a room,
                        // an agent: before a bridge, or all along).
                        let local = c.a.and_then(|t| turn.local.remove(&t));
                        let (qa_all, sent_a) = match &local {
                            Some(l) => {
                                let lq = l.quality();
                                (
                                    sentiric_rtp::relay::LegQuality {
                                        received: lq.received + qa.received,
                                        lost: lq.lost + qa.lost,
                                        jitter: if qa.received > 0 {
                                            qa.jitter
                                        } else {
                                            lq.jitter
                                        },
                                    },
                                    l.sent.get() + b.accepted,
                                )
                            }
                            None => (qa, b.accepted),
                        };
                        let qualities = match c.b {
                            Some(_) => [Some(rtp(qa_all, sent_a)), Some(rtp(qb, a.accepted))],
                            // The echo test (the leg bridged to itself:
                            // what A sent came back to it), or a local
                            // app: no callee.
                            None if c.bridged && local.is_none() => {
                                [Some(rtp(qa_all, a.accepted)), None]
                            }
                            None => [Some(rtp(qa_all, sent_a)), None],
                        };
                        let body = ids.get(&call).map(|i| i.ended(now, status, by, qualities));
                        match (body, agent_leaving.take()) {
                            // A sidecar agent answers the end in its own
                            // time: the call's end waits for its last word.
                            (Some(body), Some(a)) if a.link.answers_later() && a.gone.is_none() => {
                                leaving.insert(call, (a, now + AGENT_LAST_WORD, body));
                            }
                            (Some(body), a) => {
                                // An in-process agent answered at once.
                                if let Some(mut a) = a {
                                    for action in std::mem::take(&mut a.actions) {
                                        if last_word(&action) {
                                            let emit = |b| emit_for(&mut ids, &events, call, b);
                                            a.act(now, call, action, &mut b2b, &mut done, emit);
                                        }
                                    }
                                }
                                ended.push((call, Some(body)));
                            }
                            (None, _) => ended.push((call, None)),
                        }
                        let (call_id, trace_id) = ids_of(&ids, call);
                        tracing::info!(
                            call = call.0,
                            call_id = %call_id,
                            trace_id = %trace_id,
                            status,
                            worker = index,
                            lost_from_a = qa.lost,
                            jitter_from_a_ms = qa.jitter.as_secs_f64() * 1000.0,
                            lost_from_b = qb.lost,
                            jitter_from_b_ms = qb.jitter.as_secs_f64() * 1000.0,
                            "call ended: {status}, by {}; media: from A {} packets ({} foreign, {} invalid), \
                             from B {} packets ({} foreign, {} invalid)",
                            ended_by(by),
                            qa_all.received, a.foreign, a.invalid, qb.received, b.foreign, b.invalid
                        );
                        // The sockets stay registered for their ports' next
                        // calls.
                        for t in [c.a, c.b].into_iter().flatten() {
                            turn.taken.remove(&t);
                            turn.relay.unbridge(t);
                        }
                    }
                }
            }
        }
        // Conferences: queue what members sent, then mix what is due.
        for (token, from, frame) in std::mem::take(&mut turn.mixer_inbox) {
            if let Some(a) = agent_tokens.get(&token).and_then(|c| agents.get_mut(c)) {
                a.peer = Some(from);
                a.hear(&frame, &mut heard, &mut done);
                continue;
            }
            let Some(m) = rooms
                .values_mut()
                .flat_map(|r| r.members.iter_mut())
                .find(|m| m.token == token)
            else {
                continue;
            };
            m.peer = Some(from);
            if m.heard.len() >= 5 {
                m.heard.pop_front();
            }
            m.heard.push_back(frame);
        }
        for r in rooms.values_mut() {
            r.tick(now, &mut payload, &mut packet);
        }
        // Digits agent callers sent: to their agents, and the calls'
        // events.
        for (token, event, ms) in std::mem::take(&mut turn.digits_inbox) {
            let (Some(&call), Some(digit)) = (agent_tokens.get(&token), event_char(event)) else {
                continue;
            };
            if let Some(a) = agents.get_mut(&call) {
                a.tell(pv1::call_input::Input::Dtmf(pv1::Dtmf {
                    digit: digit.into(),
                    duration_ms: ms,
                }));
            }
            emit_for(
                &mut ids,
                &events,
                call,
                received(v1::Side::Caller, digit, ms),
            );
        }
        // In-process agents answered what they were told: carry it out
        // before speaking (an echo's frame goes out in this turn).
        for (&call, a) in agents.iter_mut() {
            for action in std::mem::take(&mut a.actions) {
                let emit = |b| emit_for(&mut ids, &events, call, b);
                a.act(now, call, action, &mut b2b, &mut done, emit);
            }
            if !a.hung_up {
                if let Some(why) = &a.gone {
                    call_log!(warn, &ids, call, "{why}; the call ends");
                    a.hung_up = true;
                    b2b.hang_up(now, call);
                }
            }
        }
        for a in agents.values_mut() {
            a.speak(now, &mut pcm, &mut payload, &mut packet, &mut done);
        }
        // Prompts: what is due; a prompt that is over hangs its call up,
        // or the dialplan goes on.
        let mut over = Vec::new();
        for p in players.iter_mut() {
            if !p.play(now, &mut pcm, &mut payload, &mut packet) {
                over.push(p.call);
            }
        }
        for call in over {
            players.retain(|p| p.call != call);
            b2b.prompt_over(now, call);
        }
        // Agents that said nothing more in time: their calls end now.
        let due: Vec<CallRef> = leaving
            .iter()
            .filter(|(_, l)| l.1 <= now)
            .map(|(c, _)| *c)
            .collect();
        for call in due {
            if let Some((_, _, body)) = leaving.remove(&call) {
                ended.push((call, Some(body)));
            }
        }
        for (call, body) in ended.drain(..) {
            match (ids.remove(&call), body) {
                (Some(mut info), Some(body)) => {
                    // With durable_end the call's last messages wait for
                    // the events thread's word (Inbound::Durable).
                    let ack = durable_end.then(|| crate::events::Ack {
                        to: workers[index].clone(),
                        call,
                        since: now,
                    });
                    if !info.emit_end(&events, body, ack) {
                        // No events thread to tell us: nothing to wait for.
                        if b2b.release(call) {
                            unsynced.increment(1);
                        }
                    } else if durable_end {
                        holding.push_back((now, call));
                    }
                }
                // Nothing to record: nothing to wait for.
                _ => {
                    b2b.release(call);
                }
            }
        }
        // An end the disk has not taken in DURABLE_MAX (the outbox full,
        // the disk failing) goes out all the same, before the peers'
        // transactions give up on it (32 s): counted, and logged once in
        // a while.
        let mut expired = 0;
        while let Some(&(since, call)) = holding.front() {
            if now.saturating_duration_since(since) < DURABLE_MAX {
                break;
            }
            holding.pop_front();
            expired += usize::from(b2b.release(call));
        }
        if expired > 0 {
            unsynced.increment(expired as u64);
            if now >= next_unsynced_log {
                tracing::error!(
                    calls = expired,
                    "{expired} calls' last messages sent {} s after their end without \
                     their CallEnded on disk (the event outbox full or failing)",
                    DURABLE_MAX.as_secs()
                );
                next_unsynced_log = now + Duration::from_secs(10);
            }
        }
        // Released ones leave the front as they come to it.
        while holding.front().is_some_and(|&(_, c)| !b2b.is_held(c)) {
            holding.pop_front();
        }
        // Once a second, before this turn's messages go out (a BYE or
        // OPTIONS made here goes with them, not at the next wake-up).
        if now >= next_media_check {
            next_media_check = now + Duration::from_secs(1);
            // Calls whose legs stopped sending (a caller gone without BYE):
            // both legs hung up, the cause in the CDR.
            let mut idle = Vec::new();
            let mut probes = Vec::new();
            for (&call, c) in calls.iter_mut() {
                let Some(info) = ids.get(&call).filter(|i| i.answered.is_some()) else {
                    c.seen = None;
                    continue;
                };
                let count: u64 = [c.a, c.b]
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        turn.relay.counters(t).map_or(0, |k| k.accepted)
                            + turn.local.get(&t).map_or(0, |l| l.packets)
                    })
                    .sum();
                let on_hold = c.quiet_a && (c.b.is_none() || c.quiet_b);
                let limit = if on_hold {
                    silent_timeout
                } else {
                    media_timeout
                };
                match c.seen {
                    Some((n, _)) if n == count => {}
                    _ => c.seen = Some((count, now)),
                }
                if let (Some(limit), Some((_, since))) = (limit, c.seen) {
                    let quiet = now.saturating_duration_since(since);
                    if quiet >= limit && info.cause.is_none() {
                        idle.push((call, quiet, on_hold));
                    }
                }
                // No RTP to tell whether its legs are there: ask them.
                if let (Some(every), Some((_, since))) = (probe, c.seen) {
                    let last = c.probed.unwrap_or(since).max(since);
                    if now.saturating_duration_since(last) >= every {
                        c.probed = Some(now);
                        probes.push(call);
                    }
                }
            }
            for call in probes.drain(..) {
                b2b.probe(now, call);
            }
            for (call, quiet, on_hold) in idle {
                if let Some(info) = ids.get_mut(&call) {
                    info.cause = Some("media_timeout");
                    tracing::info!(
                        call = call.0,
                        call_id = %info.call_id,
                        trace_id = %info.trace_id,
                        "no RTP from the call's legs for {} s ([rtp] {}): hanging up both",
                        quiet.as_secs(),
                        if on_hold {
                            "silent_timeout_s, on hold"
                        } else {
                            "timeout_s"
                        }
                    );
                }
                b2b.hang_up(now, call);
            }
        }
        while let Some(o) = b2b.poll_transmit() {
            if let Some(code) = o.bytes.strip_prefix(b"SIP/2.0 ").and_then(|r| r.get(..3)) {
                m.response([code[0], code[1], code[2]]);
            }
            match (own_token, o.from_b) {
                // A TCP target without a connection yet: ask for one, and
                // keep what it is to carry.
                _ if o.stream && !conns.contains_key(&o.to) => {
                    let waiting = connecting.entry(o.to).or_default();
                    if waiting.is_empty() {
                        let _ = connector.send((o.to, index));
                    }
                    waiting.push(o.bytes);
                }
                (Some(own), true) if !conns.contains_key(&o.to) => {
                    engine.queue(own, o.to, &o.bytes);
                }
                _ => send(&mut engine, sip_token, &conns, o.to, &o.bytes),
            }
        }
        // Counters as they go; gauges once a second.
        m.relayed.increment(turn.relayed - relayed);
        m.relayed_bytes
            .increment(turn.relayed_bytes - relayed_bytes);
        m.dropped.increment(turn.dropped - dropped);
        (relayed, relayed_bytes, dropped) = (turn.relayed, turn.relayed_bytes, turn.dropped);
        m.turn.record(now.elapsed().as_secs_f64());
        // Every worker adds its change: the gauge is the process's total.
        let up = b2b.calls() as f64;
        if up != calls_up {
            // For the others to read (NodeDraining's count): written when
            // it changes, not every turn.
            workers[index].load.calls.store(
                u32::try_from(b2b.calls()).unwrap_or(u32::MAX),
                Ordering::Relaxed,
            );
        }
        m.calls_active.increment(up - calls_up);
        calls_up = up;
        if now >= next_gauges {
            // How busy this worker was over the last second, for the
            // others to place new calls.
            let cpu = sentiric_io::affinity::thread_cpu_time().unwrap_or_default();
            let span = now.saturating_duration_since(next_gauges - Duration::from_secs(1));
            let busy = (cpu.saturating_sub(last_cpu).as_secs_f64() / span.as_secs_f64().max(0.001)
                * 1000.0) as u32;
            last_cpu = cpu;
            workers[index]
                .load
                .busy
                .store(busy.min(1000), Ordering::Relaxed);
            let txs = b2b.transactions();
            workers[index].load.transactions.store(
                u32::try_from(txs.saturating_mul(1000) / max_transactions.max(1))
                    .unwrap_or(u32::MAX),
                Ordering::Relaxed,
            );
            m.transactions.increment(txs as f64 - transactions_up);
            transactions_up = txs as f64;
            refusal_log.update(now, b2b.refusals(), &m, max_transactions);

            placement.expire(now);
            next_gauges = now + Duration::from_secs(1);
            if index == 0 {
                b2b.media().record_pool();
            }
            engine.stats().record(index, engine.kind());
        }
        if drain_deadline.is_some() && b2b.calls() == 0 && leaving.is_empty() && b2b.held() == 0 {
            tracing::info!("worker {index} drained");
            // The last call's last responses, queued this turn.
            return engine.send_queued();
        }
    }
}
