//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    earliest, status_of, Bytes, Delivery, Reliability, Slot, Timer, TimerConfig, TransactionError,
    TransactionEvent,
};
use crate::build::response_to;
use crate::message::Request;
use crate::typed::Method;

/// States of an INVITE server transaction (Figure 7, RFC 6026 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// INVITE received; provisional responses may be sent.
    Proceeding,
    /// A 2xx was sent; request retransmissions are absorbed (RFC 6026).
    Accepted,
    /// A non-2xx final response was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; absorbing its retransmissions.
    Confirmed,
    /// Over.
    Terminated,
}

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    state: ServerInviteState,
    cfg: TimerConfig,
    reliability: Reliability,
    last_response: Option<Bytes>,
    g_interval: Duration,
    timer_g: Slot,
    timer_h: Slot,
    timer_i: Slot,
    timer_l: Slot,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerInviteTransaction {
    outputs!(timer_g, timer_h, timer_i, timer_l);

    /// Starts the transaction for a received INVITE; with
    /// [`TimerConfig::send_trying`] a 100 Trying is queued at once.
    pub fn new(
        _now: Instant,
        request: &Request<'_>,
        cfg: TimerConfig,
        reliability: Reliability,
    ) -> Result<Self, TransactionError> {
        if request.method != Method::Invite {
            return Err(TransactionError::WrongMethod);
        }
        let mut t = ServerInviteTransaction {
            state: ServerInviteState::Proceeding,
            cfg,
            reliability,
            last_response: None,
            g_interval: cfg.t1,
            timer_g: Slot::default(),
            timer_h: Slot::default(),
            timer_i: Slot::default(),
            timer_l: Slot::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if cfg.send_trying {
            let trying: Bytes = Arc::from(response_to(request, 100, "Trying", None).finish());
            t.transmits.push_back(trying.clone());
            t.last_response = Some(trying);
        }
        Ok(t)
    }

    /// Current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// A request matched to this transaction: a retransmitted INVITE or the
    /// ACK for a non-2xx final response (§17.2.1).
    pub fn on_request(&mut self, now: Instant, req: &Request<'_>) -> Delivery {
        use ServerInviteState::*;
        match (self.state, req.method) {
            (Proceeding | Completed, Method::Invite) => {
                if let Some(r) = &self.last_response {
                    self.transmits.push_back(r.clone());
                }
                Delivery::Absorb
            }
            (Completed, Method::Ack) => {
                self.state = Confirmed;
                self.timer_g.clear();
                self.timer_h.clear();
                match self.reliability {
                    Reliability::Unreliable => self.timer_i.set(now + self.cfg.t4),
                    Reliability::Reliable => self.terminate(),
                }
                Delivery::Absorb
            }
            // RFC 6026 §7.1: an ACK that matches in Accepted goes to the TU.
            (Accepted, Method::Ack) => Delivery::Deliver,
            _ => Delivery::Absorb,
        }
    }

    /// The TU sends a response through the transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Vec<u8>,
    ) -> Result<(), TransactionError> {
        use ServerInviteState::*;
        let status = status_of(&response).ok_or(TransactionError::InvalidState)?;
        let bytes: Bytes = Arc::from(response);
        match (self.state, status) {
            (Proceeding, 100..=199) => {
                self.last_response = Some(bytes.clone());
                self.transmits.push_back(bytes);
            }
            (Proceeding, 200..=299) => {
                self.state = Accepted;
                self.transmits.push_back(bytes);
                self.timer_l.set(now + self.cfg.t1x64());
            }
            // RFC 6026 §7.1: the TU retransmits its 2xx through the transaction.
            (Accepted, 200..=299) => self.transmits.push_back(bytes),
            (Proceeding, _) => {
                self.state = Completed;
                self.last_response = Some(bytes.clone());
                self.transmits.push_back(bytes);
                if self.reliability == Reliability::Unreliable {
                    self.timer_g.set(now + self.cfg.t1);
                }
                self.timer_h.set(now + self.cfg.t1x64());
            }
            _ => return Err(TransactionError::InvalidState),
        }
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_h.due(now) {
            self.timer_h.clear();
            self.events.push_back(TransactionEvent::Timeout(Timer::H));
            self.terminate();
            return;
        }
        if self.timer_g.due(now) {
            if let Some(r) = &self.last_response {
                self.transmits.push_back(r.clone());
            }
            self.g_interval = (self.g_interval * 2).min(self.cfg.t2);
            self.timer_g.set(now + self.g_interval);
        }
        if self.timer_i.due(now) || self.timer_l.due(now) {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.clear_timers();
        self.events.push_back(TransactionEvent::Terminated);
    }
}

/// States of a non-INVITE server transaction (Figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// Request received, nothing sent yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent.
    Completed,
    /// Over.
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    state: ServerNonInviteState,
    cfg: TimerConfig,
    reliability: Reliability,
    last_response: Option<Bytes>,
    timer_j: Slot,
    transmits: VecDeque<Bytes>,
    events: VecDeque<TransactionEvent>,
}

impl ServerNonInviteTransaction {
    outputs!(timer_j);

    /// Starts the transaction for a received non-INVITE request.
    pub fn new(
        _now: Instant,
        request: &Request<'_>,
        cfg: TimerConfig,
        reliability: Reliability,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::WrongMethod);
        }
        Ok(ServerNonInviteTransaction {
            state: ServerNonInviteState::Trying,
            cfg,
            reliability,
            last_response: None,
            timer_j: Slot::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// Current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// A retransmission of the request (§17.2.2).
    pub fn on_request(&mut self, _now: Instant, _req: &Request<'_>) -> Delivery {
        if let (ServerNonInviteState::Proceeding | ServerNonInviteState::Completed, Some(r)) =
            (self.state, &self.last_response)
        {
            self.transmits.push_back(r.clone());
        }
        Delivery::Absorb
    }

    /// The TU sends a response through the transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Vec<u8>,
    ) -> Result<(), TransactionError> {
        use ServerNonInviteState::*;
        let status = status_of(&response).ok_or(TransactionError::InvalidState)?;
        let bytes: Bytes = Arc::from(response);
        match (self.state, status >= 200) {
            (Trying | Proceeding, false) => {
                self.state = Proceeding;
                self.last_response = Some(bytes.clone());
                self.transmits.push_back(bytes);
            }
            (Trying | Proceeding, true) => {
                self.state = Completed;
                self.last_response = Some(bytes.clone());
                self.transmits.push_back(bytes);
                match self.reliability {
                    Reliability::Unreliable => self.timer_j.set(now + self.cfg.t1x64()),
                    Reliability::Reliable => self.terminate(),
                }
            }
            _ => return Err(TransactionError::InvalidState),
        }
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_j.due(now) {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.clear_timers();
        self.events.push_back(TransactionEvent::Terminated);
    }
}
