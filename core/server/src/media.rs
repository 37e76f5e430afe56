//! The B2BUA's media plane on a data-plane worker: ports from the pool,
//! sockets bound on the media address, and the relay bridging them.
//!
//! [`Media`] answers the engine's [`MediaPlane`] calls at once (it binds
//! the sockets there, so a port that cannot be bound is a 503 before any
//! SDP names it) and leaves what needs the worker's packet engine — adding
//! sockets, bridging, releasing — as [`Instruction`]s the worker applies
//! after the turn.
//!
//! A port's socket, once bound and registered with the engine, stays for
//! the next call the port is leased to: a call's end unbridges it, and
//! the next call's bridge takes it up, with no socket made, bound or
//! closed per call (at high call rates that was a tenth of the switch's
//! work). Datagrams reaching a port between calls are dropped by the
//! relay, as they were by the kernel when the socket was closed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Instant;

use sentiric_engine::b2bua::{CallRef, Leg, MediaEndpoint, MediaError, MediaPlane};
use sentiric_engine::codecs::Transcoding;
use sentiric_io::ports::{PortLease, PortPool};
use sentiric_io::socket::{bind_udp, UdpOptions};
use sentiric_media::g711::Law;
use std::sync::Arc;

use sentiric_media::wav::Wav;
use sentiric_rtp::relay::TelephoneEvent;
use sentiric_sdp::SessionDescription;

use crate::prompts::Prompts;
use crate::voice::Voice;

/// The socket on a port: newly bound (`fresh`, for the worker to
/// register), or the worker's already, kept from an earlier call.
#[derive(Debug)]
pub(crate) struct RtpSocket {
    /// The port.
    pub(crate) port: u16,
    /// The socket, when it is new.
    pub(crate) fresh: Option<UdpSocket>,
}

/// Work for the worker's engine and relay.
#[derive(Debug)]
pub(crate) enum Instruction {
    /// Register the socket facing `leg` of `call`.
    Add {
        /// The call.
        call: CallRef,
        /// The leg the socket faces.
        leg: Leg,
        /// The socket.
        socket: RtpSocket,
    },
    /// `leg`'s peer said (in SDP) it receives at `peer`.
    Expect {
        /// The call.
        call: CallRef,
        /// The leg.
        leg: Leg,
        /// Its media address, when the SDP named a usable one.
        peer: Option<SocketAddr>,
        /// The format its digits come in, when the SDP named one.
        dtmf: Option<TelephoneEvent>,
        /// The RTP clock rate of what it sends (its SDP's first format).
        clock_rate: u32,
        /// Its SDP says it sends (sendrecv, sendonly): a leg on hold
        /// (inactive, recvonly) does not.
        sends: bool,
    },
    /// Send what arrives on `socket` back to where it came from (the
    /// echo test); `peer` is where the caller's SDP said it receives.
    Echo {
        /// The call.
        call: CallRef,
        /// The socket facing the caller.
        socket: RtpSocket,
        /// The caller's media address.
        peer: Option<SocketAddr>,
        /// The format the caller's digits come in.
        dtmf: Option<TelephoneEvent>,
        /// The RTP clock rate of what the caller sends.
        clock_rate: u32,
        /// The caller's SDP says it sends.
        sends: bool,
    },
    /// Connect the caller on `socket` (sending to `peer`, in `voice` with
    /// payload type `pt`) to the agent `agent`.
    Agent {
        /// The call.
        call: CallRef,
        /// The socket facing the caller.
        socket: RtpSocket,
        /// The caller's media address.
        peer: Option<SocketAddr>,
        /// The agent's name.
        agent: String,
        /// The codec.
        voice: Voice,
        /// Its payload type.
        pt: u8,
        /// The format of the caller's digits (RFC 4733), both ways.
        dtmf: Option<TelephoneEvent>,
    },
    /// Play `wav` on `socket` to `peer` in `voice` (payload type `pt`), then
    /// tell the B2BUA to hang up.
    Play {
        /// The call.
        call: CallRef,
        /// The socket facing the caller.
        socket: RtpSocket,
        /// The caller's media address.
        peer: Option<SocketAddr>,
        /// The prompt.
        wav: Arc<Wav>,
        /// The codec, as the answer chose.
        voice: Voice,
        /// The payload type.
        pt: u8,
    },
    /// Join the caller on `socket` to the conference `room`.
    Join {
        /// The call.
        call: CallRef,
        /// The socket facing the caller.
        socket: RtpSocket,
        /// The caller's media address from its SDP.
        peer: Option<SocketAddr>,
        /// The room's name.
        room: String,
        /// The codec, as the answer chose.
        voice: Voice,
        /// The payload type.
        pt: u8,
    },
    /// The legs' codecs settled: transcode between them (`Some`), or
    /// relay untouched (`None`).
    Transcode {
        /// The call.
        call: CallRef,
        /// What each leg speaks, when they share no codec.
        plan: Option<Transcoding>,
    },
    /// The call is over: unbridge and close its sockets.
    Release {
        /// The call.
        call: CallRef,
    },
}

#[derive(Debug)]
struct CallPorts {
    /// The lease facing A and, for a bridge, the one facing B.
    a: PortLease,
    b: Option<PortLease>,
}

/// The worker's [`MediaPlane`].
#[derive(Debug)]
pub(crate) struct Media {
    pool: Arc<PortPool>,
    partition: usize,
    ip: IpAddr,
    calls: HashMap<CallRef, CallPorts>,
    /// Ports of the pool another socket held when bound.
    bind_failures: u64,
    /// Ports whose socket the worker holds registered.
    open: std::collections::HashSet<u16>,
    /// The prompts the dialplan plays.
    prompts: Prompts,
    /// Whether offers carry the switch's codecs and calls are transcoded.
    transcode: bool,
    /// For the worker to apply.
    pub(crate) pending: Vec<Instruction>,
}

impl Media {
    /// Ports from `pool`'s `partition`, sockets on `ip`.
    pub(crate) fn new(
        pool: Arc<PortPool>,
        partition: usize,
        ip: IpAddr,
        prompts: Prompts,
        transcode: bool,
    ) -> Media {
        Media {
            pool,
            partition,
            ip,
            calls: HashMap::new(),
            bind_failures: 0,
            open: std::collections::HashSet::new(),
            prompts,
            transcode,
            pending: Vec::new(),
        }
    }

    /// One port facing the caller of a call the switch answers itself;
    /// `make` builds the instruction from the bound socket, the caller's
    /// SDP address and the offer's G.711 choice (`None`: not acceptable).
    fn local(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        make: impl FnOnce(RtpSocket, Option<SocketAddr>, Option<(Voice, u8)>) -> Option<Instruction>,
    ) -> Result<MediaEndpoint, MediaError> {
        if sdp.media.is_empty() || sdp.media[0].kind != "audio" || self.calls.contains_key(&call) {
            return Err(MediaError::NotAcceptable);
        }
        let g711 = voice_choice(sdp, self.transcode);
        let (a, socket) = self.lease_and_bind()?;
        let Some(instruction) = make(socket, media_addr(sdp), g711) else {
            let _ = self.pool.release(a, Instant::now());
            return Err(MediaError::NotAcceptable);
        };
        self.calls.insert(call, CallPorts { a, b: None });
        self.pending.push(instruction);
        let mut ports = vec![None; sdp.media.len()];
        ports[0] = Some(a.rtp);
        Ok(MediaEndpoint { ip: self.ip, ports })
    }

    /// The port pool (shared by the workers, a partition each).
    pub(crate) fn pool(&self) -> Arc<PortPool> {
        Arc::clone(&self.pool)
    }

    /// Records the pool's capacity, use and exhaustion as metrics.
    pub(crate) fn record_pool(&self) {
        self.pool.stats(Instant::now()).record();
    }

    /// The worker could not keep the socket on `port` (the engine refused
    /// it): the next lease of the port binds a new one.
    pub(crate) fn closed(&mut self, port: u16) {
        self.open.remove(&port);
    }

    fn lease_and_bind(&mut self) -> Result<(PortLease, RtpSocket), MediaError> {
        let now = Instant::now();
        // A port another socket holds is skipped (it rests in quarantine
        // and is tried again later), not fatal: try a run of them.
        for _ in 0..64 {
            let lease = self
                .pool
                .allocate(self.partition, now)
                .map_err(|_| MediaError::Exhausted)?;
            if self.open.contains(&lease.rtp) {
                let socket = RtpSocket {
                    port: lease.rtp,
                    fresh: None,
                };
                return Ok((lease, socket));
            }
            let opts = UdpOptions::default();
            match bind_udp(SocketAddr::new(self.ip, lease.rtp), &opts) {
                Ok(s) => {
                    self.open.insert(lease.rtp);
                    let socket = RtpSocket {
                        port: lease.rtp,
                        fresh: Some(s),
                    };
                    return Ok((lease, socket));
                }
                Err(e) => {
                    self.bind_failures += 1;
                    if self.bind_failures.is_power_of_two() {
                        tracing::warn!(
                            port = lease.rtp,
                            taken = self.bind_failures,
                            "RTP port {} of the pool is taken ({e}): does [rtp] overlap \
                             another service or the ephemeral port range?",
                            lease.rtp
                        );
                    }
                    let _ = self.pool.release(lease, now);
                }
            }
        }
        Err(MediaError::Exhausted)
    }
}

/// The codec an answer to `sdp` leads with: the offer's first of PCMU,
/// PCMA and (when `opus`) Opus, in its order, as the engine's answer
/// keeps the offer's order.
fn voice_choice(sdp: &SessionDescription<'_>, opus: bool) -> Option<(Voice, u8)> {
    let m = sdp.media.first()?;
    m.payload_types().find_map(|pt| match pt {
        0 => Some((Voice::G711(Law::Ulaw), 0)),
        8 => Some((Voice::G711(Law::Alaw), 8)),
        _ => m
            .rtpmap(pt)
            .filter(|r| {
                opus && r.encoding.eq_ignore_ascii_case("opus")
                    && r.clock_rate == 48000
                    && r.channels == Some(2)
            })
            .map(|_| (Voice::Opus, pt)),
    })
}

/// The `telephone-event` format stream 0 of `sdp` names (RFC 4733 §7):
/// the payload type its sender's digits come in.
fn telephone_event(sdp: &SessionDescription<'_>) -> Option<TelephoneEvent> {
    let m = sdp.media.first()?;
    m.payload_types().find_map(|pt| {
        m.rtpmap(pt)
            .filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
            .map(|r| TelephoneEvent {
                pt,
                clock_rate: r.clock_rate,
            })
    })
}

/// The RTP clock rate of stream 0's first format: what the endpoint
/// sends (an answer names the one format chosen first; an offer's first is
/// the offerer's preference, settled by the answer's own). 8000 when the
/// SDP does not say.
fn clock_rate(sdp: &SessionDescription<'_>) -> u32 {
    sdp.media
        .first()
        .and_then(|m| m.rtpmap(m.payload_types().next()?))
        .map_or(8000, |r| r.clock_rate)
}

/// Whether stream 0 of `sdp` says its endpoint sends (sendrecv or
/// sendonly; a call on hold says inactive or recvonly).
fn sends(sdp: &SessionDescription<'_>) -> bool {
    matches!(
        sdp.direction(0),
        sentiric_sdp::Direction::SendRecv | sentiric_sdp::Direction::SendOnly
    )
}

/// The media address stream 0 of `sdp` names: its connection address and
/// port, if both are usable.
fn media_addr(sdp: &SessionDescription<'_>) -> Option<SocketAddr> {
    let m = sdp.media.first()?;
    let ip = sdp.connection_of(0)?.ip()?;
    (m.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, m.port))
}

impl MediaPlane for Media {
    fn offer(
        &mut self,
        call: CallRef,
        from: Leg,
        sdp: &SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError> {
        if sdp.media.is_empty() || sdp.media[0].kind != "audio" {
            return Err(MediaError::NotAcceptable);
        }
        if !self.calls.contains_key(&call) {
            let (a, sa) = self.lease_and_bind()?;
            let (b, sb) = match self.lease_and_bind() {
                Ok(x) => x,
                Err(e) => {
                    let _ = self.pool.release(a, Instant::now());
                    return Err(e);
                }
            };
            self.calls.insert(call, CallPorts { a, b: Some(b) });
            self.pending.push(Instruction::Add {
                call,
                leg: Leg::A,
                socket: sa,
            });
            self.pending.push(Instruction::Add {
                call,
                leg: Leg::B,
                socket: sb,
            });
        } else if from == Leg::A && self.calls[&call].b.is_none() {
            // A prompt answered A and the call goes on to a bridge: the
            // socket facing A stays, one facing B joins it.
            let (b, sb) = self.lease_and_bind()?;
            if let Some(p) = self.calls.get_mut(&call) {
                p.b = Some(b);
            }
            self.pending.push(Instruction::Add {
                call,
                leg: Leg::B,
                socket: sb,
            });
        }
        let ports = &self.calls[&call];
        // The SDP goes to the other leg: it names the socket facing it.
        let facing = match (from, ports.b) {
            (Leg::A, Some(b)) => b.rtp,
            (Leg::B, _) => ports.a.rtp,
            (Leg::A, None) => return Err(MediaError::NotAcceptable),
        };
        self.pending.push(Instruction::Expect {
            call,
            leg: from,
            peer: media_addr(sdp),
            dtmf: telephone_event(sdp),
            clock_rate: clock_rate(sdp),
            sends: sends(sdp),
        });
        let mut out = vec![None; sdp.media.len()];
        out[0] = Some(facing);
        Ok(MediaEndpoint {
            ip: self.ip,
            ports: out,
        })
    }

    fn echo(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
    ) -> Result<MediaEndpoint, MediaError> {
        let dtmf = telephone_event(sdp);
        let clock_rate = clock_rate(sdp);
        let sends = sends(sdp);
        self.local(call, sdp, |socket, peer, _| {
            Some(Instruction::Echo {
                call,
                socket,
                peer,
                dtmf,
                clock_rate,
                sends,
            })
        })
    }

    fn play(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        prompt: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        let wav = self
            .prompts
            .get(prompt)
            .cloned()
            .ok_or(MediaError::NotAcceptable)?;
        self.local(call, sdp, |socket, peer, g711| {
            let (voice, pt) = g711?;
            Some(Instruction::Play {
                call,
                socket,
                peer,
                wav,
                voice,
                pt,
            })
        })
    }

    fn conference(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        room: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        self.local(call, sdp, |socket, peer, g711| {
            let (voice, pt) = g711?;
            Some(Instruction::Join {
                call,
                socket,
                peer,
                room: room.to_string(),
                voice,
                pt,
            })
        })
    }

    fn agent(
        &mut self,
        call: CallRef,
        sdp: &SessionDescription<'_>,
        agent: &str,
    ) -> Result<MediaEndpoint, MediaError> {
        let dtmf = telephone_event(sdp);
        self.local(call, sdp, |socket, peer, g711| {
            let (voice, pt) = g711?;
            Some(Instruction::Agent {
                call,
                socket,
                peer,
                agent: agent.to_string(),
                voice,
                pt,
                dtmf,
            })
        })
    }

    fn release(&mut self, call: CallRef) {
        if let Some(p) = self.calls.remove(&call) {
            let now = Instant::now();
            for lease in std::iter::once(p.a).chain(p.b) {
                let _ = self.pool.release(lease, now);
            }
            self.pending.push(Instruction::Release { call });
        }
    }

    fn transcodes(&self) -> bool {
        self.transcode
    }

    fn transcode(&mut self, call: CallRef, plan: Option<Transcoding>) {
        if self.calls.get(&call).is_some_and(|p| p.b.is_some()) {
            self.pending.push(Instruction::Transcode { call, plan });
        }
    }
}
