//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    earliest, Bytes, Delivery, Reliability, Slot, Timer, TimerConfig, TransactionError,
    TransactionEvent,
};
use crate::build::MessageBuilder;
use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::text::unfold;
use crate::typed::Method;

/// States of an INVITE client transaction (Figure 5, RFC 6026 Figure 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, no response yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A non-2xx final response arrived and was ACKed.
    Completed,
    /// A 2xx arrived; its retransmissions still go to the TU (RFC 6026).
    Accepted,
    /// Over.
    Terminated,
}

/// What the ACK for a non-2xx final response copies from the INVITE
/// (§17.1.1.3).
#[derive(Debug, Clone)]
struct AckTemplate {
    uri: String,
    via: String,
    from: String,
    call_id: String,
    seq: u32,
    routes: Vec<String>,
}

impl AckTemplate {
    fn new(req: &Request<'_>) -> Self {
        AckTemplate {
            uri: req.uri_str().to_string(),
            via: req
                .vias()
                .next()
                .map(|v| unfold(v).into_owned())
                .unwrap_or_default(),
            from: req
                .headers
                .value(HeaderName::From)
                .map(|v| unfold(v).into_owned())
                .unwrap_or_default(),
            call_id: req.call_id().to_string(),
            seq: req.cseq().seq,
            routes: req
                .headers
                .all(HeaderName::Route)
                .map(|h| unfold(h.value).into_owned())
                .collect(),
        }
    }

    fn build(&self, resp: &Response<'_>) -> Bytes {
        let to = resp.headers.value(HeaderName::To).unwrap_or("");
        let mut b = MessageBuilder::request(Method::Ack, &self.uri)
            .header(HeaderName::Via, &self.via)
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, &self.from)
            .header(HeaderName::To, &unfold(to))
            .header(HeaderName::CallId, &self.call_id);
        let mut cseq = String::with_capacity(16);
        let _ = write!(cseq, "{} ACK", self.seq);
        b.push_header("CSeq", &cseq);
        for r in &self.routes {
            b.push_header("Route", r);
        }
        Arc::from(b.finish())
    }
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInviteTransaction {
    state: ClientInviteState,
    cfg: TimerConfig,
    reliability: Reliability,
    request: Bytes,
    ack: Option<Bytes>,
    template: AckTemplate,
    a_interval: Duration,
    timer_a: Slot,
    timer_b: Slot,
    timer_d: Slot,
    timer_m: Slot,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientInviteTransaction {
    outputs!(timer_a, timer_b, timer_d, timer_m);

    /// Starts the transaction: the INVITE is queued for sending at once.
    pub fn new(
        now: Instant,
        request: &Request<'_>,
        cfg: TimerConfig,
        reliability: Reliability,
    ) -> Result<Self, TransactionError> {
        if request.method != Method::Invite {
            return Err(TransactionError::WrongMethod);
        }
        let mut t = ClientInviteTransaction {
            state: ClientInviteState::Calling,
            cfg,
            reliability,
            request: Arc::from(request.raw),
            ack: None,
            template: AckTemplate::new(request),
            a_interval: cfg.t1,
            timer_a: Slot::default(),
            timer_b: Slot::default(),
            timer_d: Slot::default(),
            timer_m: Slot::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.transmits.push_back(t.request.clone());
        if reliability == Reliability::Unreliable {
            t.timer_a.set(now + cfg.t1);
        }
        t.timer_b.set(now + cfg.t1x64());
        Ok(t)
    }

    /// Current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// The INVITE as sent, for building a CANCEL (§9.1).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matched to this transaction (§17.1.1.2).
    pub fn on_response(&mut self, now: Instant, resp: &Response<'_>) -> Delivery {
        use ClientInviteState::*;
        let class = resp.status / 100;
        match (self.state, class) {
            (Calling | Proceeding, 1) => {
                self.state = Proceeding;
                self.timer_a.clear();
                Delivery::Deliver
            }
            (Calling | Proceeding, 2) => {
                self.state = Accepted;
                self.timer_a.clear();
                self.timer_b.clear();
                self.timer_m.set(now + self.cfg.t1x64());
                Delivery::Deliver
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.timer_a.clear();
                self.timer_b.clear();
                let ack = self.template.build(resp);
                self.transmits.push_back(ack.clone());
                self.ack = Some(ack);
                match self.reliability {
                    Reliability::Unreliable => self.timer_d.set(now + self.cfg.timer_d),
                    Reliability::Reliable => self.terminate(),
                }
                Delivery::Deliver
            }
            (Completed, 3..=6) => {
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(ack.clone());
                }
                Delivery::Absorb
            }
            // RFC 6026 §8.4: 2xx retransmissions in Accepted go to the TU.
            (Accepted, 2) => Delivery::Deliver,
            _ => Delivery::Absorb,
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_b.due(now) {
            self.timer_b.clear();
            self.events.push_back(TransactionEvent::Timeout(Timer::B));
            self.terminate();
            return;
        }
        if self.timer_a.due(now) {
            self.transmits.push_back(self.request.clone());
            self.a_interval *= 2;
            self.timer_a.set(now + self.a_interval);
        }
        if self.timer_d.due(now) || self.timer_m.due(now) {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.clear_timers();
        self.events.push_back(TransactionEvent::Terminated);
    }
}

/// States of a non-INVITE client transaction (Figure 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; retransmissions are absorbed.
    Completed,
    /// Over.
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    state: ClientNonInviteState,
    cfg: TimerConfig,
    reliability: Reliability,
    request: Bytes,
    e_interval: Duration,
    timer_e: Slot,
    timer_f: Slot,
    timer_k: Slot,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ClientNonInviteTransaction {
    outputs!(timer_e, timer_f, timer_k);

    /// Starts the transaction: the request is queued for sending at once.
    pub fn new(
        now: Instant,
        request: &Request<'_>,
        cfg: TimerConfig,
        reliability: Reliability,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod);
        }
        let mut t = ClientNonInviteTransaction {
            state: ClientNonInviteState::Trying,
            cfg,
            reliability,
            request: Arc::from(request.raw),
            e_interval: cfg.t1,
            timer_e: Slot::default(),
            timer_f: Slot::default(),
            timer_k: Slot::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.transmits.push_back(t.request.clone());
        if reliability == Reliability::Unreliable {
            t.timer_e.set(now + cfg.t1);
        }
        t.timer_f.set(now + cfg.t1x64());
        Ok(t)
    }

    /// Current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// A response matched to this transaction (§17.1.2.2).
    pub fn on_response(&mut self, now: Instant, resp: &Response<'_>) -> Delivery {
        use ClientNonInviteState::*;
        match (self.state, resp.status >= 200) {
            (Trying | Proceeding, false) => {
                self.state = Proceeding;
                Delivery::Deliver
            }
            (Trying | Proceeding, true) => {
                self.state = Completed;
                self.timer_e.clear();
                self.timer_f.clear();
                match self.reliability {
                    Reliability::Unreliable => self.timer_k.set(now + self.cfg.t4),
                    Reliability::Reliable => self.terminate(),
                }
                Delivery::Deliver
            }
            _ => Delivery::Absorb,
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_f.due(now) {
            self.timer_f.clear();
            self.events.push_back(TransactionEvent::Timeout(Timer::F));
            self.terminate();
            return;
        }
        if self.timer_e.due(now) {
            self.transmits.push_back(self.request.clone());
            self.e_interval = match self.state {
                ClientNonInviteState::Proceeding => self.cfg.t2,
                _ => (self.e_interval * 2).min(self.cfg.t2),
            };
            self.timer_e.set(now + self.e_interval);
        }
        if self.timer_k.due(now) {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.clear_timers();
        self.events.push_back(TransactionEvent::Terminated);
    }
}
