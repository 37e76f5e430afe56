//! Relay logic for an anchored call leg: where its packets may come from,
//! where to send it packets, and how to rewrite the stream it is sent.
//!
//! * **Latching (symmetric RTP, RFC 4961).** Until a leg has sent a valid
//!   packet, the switch sends to the address its SDP named. The first valid
//!   packet latches the leg to its source address and port — through any
//!   NAT — and from then on the switch sends there.
//! * **Strict source.** Once latched, packets from any other address or port
//!   are dropped and counted: a stray or spoofed sender can never inject
//!   audio into a call ("RTP bleed"). Before latching, a policy decides
//!   whether any source may latch or only the SDP address.
//! * **Stream rewriting.** A leg must see one continuous stream — one SSRC,
//!   sequence numbers and timestamps that run on — even when what is sent
//!   to it changes source (a re-INVITE on the other side, a prompt played
//!   between two streams). [`StreamRewriter`] maps every input stream onto
//!   one output stream and marks the switch.
//! * **DTMF seen in passing.** A leg told its `telephone-event` format
//!   ([`Relay::telephone_event`]) has its RFC 4733 packets read as they
//!   are relayed; each digit it sends is reported once, when it ends
//!   ([`Relay::take_digits`]), for the call's events. The packets go on
//!   untouched.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::dtmf::{DtmfDetector, DtmfEvent};
use crate::packet::{self, RtpError, RtpPacket, FIXED_HEADER_LEN};
use crate::stats::ReceiverStats;

/// Who may latch a leg before its first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchPolicy {
    /// Any source (phones behind NAT send from another address than their
    /// SDP names).
    AnySource,
    /// Only the IP address the SDP named (any port): for trunks on
    /// known addresses.
    SdpAddress,
    /// Only the exact address and port the SDP named: nothing else can
    /// ever be forwarded, not even before the first packet.
    SdpExact,
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// From an address other than the latched one (or, before latching,
    /// one the policy refuses).
    ForeignSource,
    /// Not a valid RTP packet.
    Invalid(RtpError),
}

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; `latched` is true for the packet that latched the leg.
    Forward {
        /// This packet latched the leg.
        latched: bool,
    },
    /// Drop it.
    Drop(Drop),
}

/// Counters of one leg's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceCounters {
    /// Packets accepted.
    pub accepted: u64,
    /// Octets accepted (whole packets).
    pub octets: u64,
    /// Packets dropped for their source.
    pub foreign: u64,
    /// Packets dropped as malformed.
    pub invalid: u64,
}

/// The receive side of one leg: latching and strict source.
#[derive(Debug, Clone)]
pub struct SourceFilter {
    policy: LatchPolicy,
    expected: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    counters: SourceCounters,
}

impl SourceFilter {
    /// A leg whose SDP named `expected` (if it named anything usable).
    pub fn new(policy: LatchPolicy, expected: Option<SocketAddr>) -> Self {
        SourceFilter {
            policy,
            expected,
            latched: None,
            counters: SourceCounters::default(),
        }
    }

    /// Judges an RTP packet that arrived from `from`.
    pub fn check_rtp(&mut self, from: SocketAddr, buf: &[u8]) -> Verdict {
        match RtpPacket::parse(buf) {
            Ok(_) => self.check_source(from, buf.len()),
            Err(e) => Verdict::Drop(self.invalid(e)),
        }
    }

    /// Counts a packet that did not parse.
    fn invalid(&mut self, e: RtpError) -> Drop {
        self.counters.invalid += 1;
        Drop::Invalid(e)
    }

    /// Judges a packet already known to be well formed (RTCP, or RTP the
    /// caller parsed) by its source alone.
    pub fn check_source(&mut self, from: SocketAddr, len: usize) -> Verdict {
        let latched_now = match self.latched {
            Some(addr) if addr == from => false,
            Some(_) => return self.foreign(),
            None => {
                let allowed = match (self.policy, self.expected) {
                    (LatchPolicy::AnySource, _) => true,
                    (LatchPolicy::SdpAddress, Some(e)) => same_ip(e.ip(), from.ip()),
                    (LatchPolicy::SdpExact, Some(e)) => {
                        same_ip(e.ip(), from.ip()) && e.port() == from.port()
                    }
                    (LatchPolicy::SdpAddress | LatchPolicy::SdpExact, None) => false,
                };
                if !allowed {
                    return self.foreign();
                }
                self.latched = Some(from);
                true
            }
        };
        self.counters.accepted += 1;
        self.counters.octets += len as u64;
        Verdict::Forward {
            latched: latched_now,
        }
    }

    fn foreign(&mut self) -> Verdict {
        self.counters.foreign += 1;
        Verdict::Drop(Drop::ForeignSource)
    }

    /// Where to send this leg its packets: the latched source, else the
    /// SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.expected)
    }

    /// The latched source, once there is one.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// A new SDP for the leg (re-INVITE, UPDATE): a new expected address,
    /// and the latch is released so that the leg may move.
    pub fn renegotiated(&mut self, expected: Option<SocketAddr>) {
        self.expected = expected;
        self.latched = None;
    }

    /// The counters.
    pub fn counters(&self) -> SourceCounters {
        self.counters
    }
}

/// IPv4 and IPv4-mapped IPv6 compare equal.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// Maps every input stream onto one continuous output stream.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    ssrc: u32,
    clock_rate: u32,
    mapping: Option<Mapping>,
    /// Sequence number, timestamp and time of the newest packet sent.
    last: Option<(u16, u32, Instant)>,
}

impl StreamRewriter {
    /// Output SSRC `ssrc`, on a media clock of `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        StreamRewriter {
            ssrc,
            clock_rate: clock_rate.max(1),
            mapping: None,
            last: None,
        }
    }

    /// The output SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A new media clock (the input's codec changed).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate.max(1);
    }

    /// Output sequence number and timestamp for an input packet, and
    /// whether it starts a new input stream (its marker bit should be set).
    pub fn map(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> (u16, u32, bool) {
        let switched = match self.mapping {
            Some(m) if m.ssrc == ssrc => false,
            _ => {
                // Continue after the newest packet sent: next sequence
                // number, and the timestamp advanced by the time elapsed
                // (at least one tick, so no two sources share an instant).
                let (seq_offset, ts_offset) = match self.last {
                    None => (0, 0),
                    Some((last_seq, last_ts, at)) => {
                        let elapsed = now.saturating_duration_since(at);
                        let ticks = (elapsed.as_nanos() * u128::from(self.clock_rate)
                            / 1_000_000_000)
                            .clamp(1, u128::from(u32::MAX >> 1))
                            as u32;
                        (
                            last_seq.wrapping_add(1).wrapping_sub(seq),
                            last_ts.wrapping_add(ticks).wrapping_sub(ts),
                        )
                    }
                };
                self.mapping = Some(Mapping {
                    ssrc,
                    seq_offset,
                    ts_offset,
                });
                true
            }
        };
        let m = self.mapping.unwrap_or(Mapping {
            ssrc,
            seq_offset: 0,
            ts_offset: 0,
        });
        let out_seq = seq.wrapping_add(m.seq_offset);
        let out_ts = ts.wrapping_add(m.ts_offset);
        // Only a newer packet moves the continuation point; a late one
        // keeps its place in the sequence.
        let newer = match self.last {
            None => true,
            Some((last_seq, _, _)) => switched || (out_seq.wrapping_sub(last_seq) as i16) > 0,
        };
        if newer {
            self.last = Some((out_seq, out_ts, now));
        }
        (out_seq, out_ts, switched)
    }

    /// Rewrites the RTP packet in `buf` in place: output SSRC, sequence
    /// number and timestamp, and the marker bit on the first packet of a
    /// new input stream.
    pub fn rewrite(&mut self, buf: &mut [u8], now: Instant) -> Result<(), RtpError> {
        let fields = Fields::of(&RtpPacket::parse(buf)?);
        self.apply(buf, fields, now);
        Ok(())
    }

    /// [`Self::rewrite`] for a packet already parsed into `f`.
    fn apply(&mut self, buf: &mut [u8], f: Fields, now: Instant) {
        let (out_seq, out_ts, switched) = self.map(f.ssrc, f.seq, f.ts, now);
        debug_assert!(buf.len() >= FIXED_HEADER_LEN);
        packet::rewrite(buf, out_seq, out_ts, self.ssrc);
        if switched && !f.marker {
            packet::set_payload_type(buf, f.pt, true);
        }
    }
}

/// The header fields the rewriter reads, copied out of the parsed packet
/// so that the buffer can then be written.
#[derive(Debug, Clone, Copy)]
struct Fields {
    ssrc: u32,
    seq: u16,
    ts: u32,
    pt: u8,
    marker: bool,
}

impl Fields {
    fn of(p: &RtpPacket<'_>) -> Fields {
        Fields {
            ssrc: p.ssrc(),
            seq: p.sequence(),
            ts: p.timestamp(),
            pt: p.payload_type(),
            marker: p.marker(),
        }
    }
}

/// Why [`Relay::on_rtp`] did not forward a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayDrop {
    /// The socket belongs to no bridged leg.
    UnknownLeg,
    /// The leg's source filter refused it.
    Filtered(Drop),
    /// The other leg has no address to send to yet (no SDP, no latch).
    NoDestination,
}

#[derive(Debug, Clone)]
struct RelayLeg<K> {
    peer: K,
    filter: SourceFilter,
    /// Rewrites what this leg receives into what its peer is sent.
    to_peer: StreamRewriter,
    /// RFC 3550 reception statistics of what this leg receives, from its
    /// first accepted packet.
    stats: Option<ReceiverStats>,
    clock_rate: u32,
    /// The leg's `telephone-event` format and the digits in its stream.
    dtmf: Option<(TelephoneEvent, DtmfDetector)>,
}

impl<K: Copy> RelayLeg<K> {
    /// Parses and source-checks a packet arriving on this leg (`key`) and
    /// counts it in the leg's statistics; its header fields for the
    /// rewrite. A digit it ends goes to `digits`.
    fn admit(
        &mut self,
        key: K,
        from: SocketAddr,
        buf: &[u8],
        now: Instant,
        digits: &mut Vec<Digit<K>>,
    ) -> Result<Fields, RelayDrop> {
        // One parse per packet serves the source check and the rewrite.
        let p = match RtpPacket::parse(buf) {
            Ok(p) => p,
            Err(e) => return Err(RelayDrop::Filtered(self.filter.invalid(e))),
        };
        let fields = Fields::of(&p);
        if let Verdict::Drop(d) = self.filter.check_source(from, buf.len()) {
            return Err(RelayDrop::Filtered(d));
        }
        let event = self.dtmf.as_ref().is_some_and(|(te, _)| te.pt == fields.pt);
        if let Some((te, detector)) = self.dtmf.as_mut().filter(|_| event) {
            for ev in detector.on_packet(fields.ts, p.payload()) {
                if let DtmfEvent::End {
                    event, duration, ..
                } = ev
                {
                    digits.push(Digit {
                        key,
                        event,
                        duration: std::time::Duration::from_micros(
                            u64::from(duration) * 1_000_000 / u64::from(te.clock_rate.max(1)),
                        ),
                    });
                }
            }
        }
        let clock_rate = self.clock_rate;
        let stats = self
            .stats
            .get_or_insert_with(|| ReceiverStats::new(fields.seq, clock_rate));
        let payload = buf.len().saturating_sub(FIXED_HEADER_LEN);
        if event {
            // An RFC 4733 event's packets all carry its start's timestamp
            // (§2.5.1.2), so their transit grows 50 ms a packet: counted,
            // but no measure of the path's jitter.
            stats.on_untimed_packet(fields.seq, payload);
        } else {
            stats.on_packet(fields.seq, fields.ts, payload, now);
        }
        Ok(fields)
    }
}

/// How a leg's incoming stream fared (RFC 3550 §6.4.1 measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegQuality {
    /// Packets received from the leg's latched source, every one (RFC
    /// 3550's statistics leave out the first, its probation).
    pub received: u32,
    /// Packets the sequence numbers say were sent less those received
    /// (RFC 3550 A.3; negative with duplicates).
    pub lost: i32,
    /// Interarrival jitter.
    pub jitter: std::time::Duration,
}

/// The `telephone-event` format (RFC 4733) of what a leg sends: its
/// payload type and clock rate, from the leg's SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The payload type.
    pub pt: u8,
    /// The clock rate of its timestamps and durations.
    pub clock_rate: u32,
}

/// A DTMF digit a leg sent, reported as its event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit<K> {
    /// The leg it arrived on.
    pub key: K,
    /// The RFC 4733 event code (see [`crate::dtmf::event_char`]).
    pub event: u8,
    /// How long it was held.
    pub duration: std::time::Duration,
}

/// The relay of one data-plane worker: bridged pairs of legs, each leg
/// known by the key of the switch's socket facing it (`K`: a socket token,
/// a port). Sans-IO: the worker's engine gives it packets and sends what
/// it returns.
#[derive(Debug, Clone)]
pub struct Relay<K> {
    legs: std::collections::HashMap<K, RelayLeg<K>>,
    /// Digits ended since the last [`Relay::take_digits`].
    digits: Vec<Digit<K>>,
}

impl<K> Default for Relay<K> {
    fn default() -> Self {
        Relay {
            legs: std::collections::HashMap::new(),
            digits: Vec::new(),
        }
    }
}

/// One side of a bridge: the switch's socket facing the endpoint, and
/// where the endpoint's SDP said it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSpec<K> {
    /// The key of the switch's socket facing this endpoint.
    pub key: K,
    /// The endpoint's address from its SDP, if usable.
    pub sdp_addr: Option<SocketAddr>,
    /// The SSRC the switch uses towards this endpoint.
    pub ssrc: u32,
    /// The RTP clock rate of what this endpoint sends (its codec's: 8000
    /// for G.711, 48000 for Opus): its jitter is measured on it, and a
    /// switch of its source is bridged on it.
    pub clock_rate: u32,
}

impl<K: Copy + Eq + std::hash::Hash> Relay<K> {
    /// An empty relay.
    pub fn new() -> Self {
        Relay::default()
    }

    /// Bridges two legs: what arrives on `a.key` goes to `b`'s endpoint
    /// through `b.key`, and the other way round.
    pub fn bridge(&mut self, a: LegSpec<K>, b: LegSpec<K>, policy: LatchPolicy) {
        self.legs.insert(
            a.key,
            RelayLeg {
                peer: b.key,
                filter: SourceFilter::new(policy, a.sdp_addr),
                to_peer: StreamRewriter::new(b.ssrc, a.clock_rate),
                stats: None,
                clock_rate: a.clock_rate.max(1),
                dtmf: None,
            },
        );
        self.legs.insert(
            b.key,
            RelayLeg {
                peer: a.key,
                filter: SourceFilter::new(policy, b.sdp_addr),
                to_peer: StreamRewriter::new(a.ssrc, b.clock_rate),
                stats: None,
                clock_rate: b.clock_rate.max(1),
                dtmf: None,
            },
        );
    }

    /// Removes the bridge `key` is part of.
    pub fn unbridge(&mut self, key: K) {
        if let Some(leg) = self.legs.remove(&key) {
            self.legs.remove(&leg.peer);
        }
    }

    /// A new SDP address for the leg on `key` (the answer after the offer,
    /// a re-INVITE): its filter expects that address and the latch is
    /// released. `false` when `key` is not bridged.
    pub fn renegotiate(&mut self, key: K, sdp_addr: Option<SocketAddr>) -> bool {
        match self.legs.get_mut(&key) {
            Some(leg) => {
                leg.filter.renegotiated(sdp_addr);
                true
            }
            None => false,
        }
    }

    /// A new RTP clock rate for what the leg on `key` sends (a re-INVITE
    /// that changed its codec). `false` when `key` is not bridged.
    pub fn clock_rate(&mut self, key: K, clock_rate: u32) -> bool {
        match self.legs.get_mut(&key) {
            Some(leg) => {
                let clock_rate = clock_rate.max(1);
                if leg.clock_rate != clock_rate {
                    leg.clock_rate = clock_rate;
                    leg.to_peer.set_clock_rate(clock_rate);
                    if let Some(s) = leg.stats.as_mut() {
                        s.set_clock_rate(clock_rate);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// The `telephone-event` format the leg on `key` sends its digits in
    /// (`None`: none, its digits are not watched). `false` when `key` is
    /// not bridged.
    pub fn telephone_event(&mut self, key: K, te: Option<TelephoneEvent>) -> bool {
        match self.legs.get_mut(&key) {
            Some(leg) => {
                if leg.dtmf.as_ref().map(|d| d.0) != te {
                    leg.dtmf = te.map(|te| (te, DtmfDetector::new()));
                }
                true
            }
            None => false,
        }
    }

    /// The digits legs sent since the last call, in order.
    pub fn take_digits(&mut self) -> std::vec::Drain<'_, Digit<K>> {
        self.digits.drain(..)
    }

    /// `true` when a digit waits for [`Relay::take_digits`].
    pub fn has_digits(&self) -> bool {
        !self.digits.is_empty()
    }

    /// Number of legs (twice the bridges).
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// `true` with no bridge.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// How the stream received on `key` fared: received, lost, jitter.
    pub fn quality(&self, key: K) -> Option<LegQuality> {
        let leg = self.legs.get(&key)?;
        let s = leg.stats.as_ref()?;
        Some(LegQuality {
            received: u32::try_from(leg.filter.counters().accepted).unwrap_or(u32::MAX),
            lost: s.lost(),
            jitter: s.jitter_duration(),
        })
    }

    /// A leg's receive counters.
    pub fn counters(&self, key: K) -> Option<SourceCounters> {
        self.legs.get(&key).map(|l| l.filter.counters())
    }

    /// An RTP packet arrived on `key` from `from`: checks its source,
    /// rewrites it in place for the other leg, and returns the key to send
    /// it from and the address to send it to.
    pub fn on_rtp(
        &mut self,
        key: K,
        from: SocketAddr,
        buf: &mut [u8],
        now: Instant,
    ) -> Result<(K, SocketAddr), RelayDrop> {
        let leg = self.legs.get_mut(&key).ok_or(RelayDrop::UnknownLeg)?;
        let fields = leg.admit(key, from, buf, now, &mut self.digits)?;
        leg.to_peer.apply(buf, fields, now);
        let peer = leg.peer;
        self.destination(peer)
    }

    /// An RTP packet arrived on `key` from `from` for a call whose media
    /// the caller converts itself (a transcoded call): checks its source
    /// and counts it as [`Relay::on_rtp`] does, leaves it as it came, and
    /// returns the key to send the converted media from and the address
    /// to send it to.
    pub fn accept(
        &mut self,
        key: K,
        from: SocketAddr,
        buf: &[u8],
        now: Instant,
    ) -> Result<(K, SocketAddr), RelayDrop> {
        let leg = self.legs.get_mut(&key).ok_or(RelayDrop::UnknownLeg)?;
        leg.admit(key, from, buf, now, &mut self.digits)?;
        let peer = leg.peer;
        self.destination(peer)
    }

    fn destination(&self, peer: K) -> Result<(K, SocketAddr), RelayDrop> {
        let dest = self
            .legs
            .get(&peer)
            .and_then(|p| p.filter.destination())
            .ok_or(RelayDrop::NoDestination)?;
        Ok((peer, dest))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::packet::RtpHeader;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(pt: u8, ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc,
        }
        .write(payload, &mut v);
        v
    }

    fn pkt(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        rtp(0, ssrc, seq, ts, &[0xff; 160])
    }

    #[test]
    fn latches_then_strict() {
        let mut f = SourceFilter::new(LatchPolicy::AnySource, Some(addr("127.0.0.2:4000")));
        assert_eq!(f.destination(), Some(addr("127.0.0.2:4000")));
        let p = pkt(1, 1, 0);
        // Garbage never latches.
        assert!(matches!(
            f.check_rtp(addr("127.0.0.9:1"), &[1, 2, 3]),
            Verdict::Drop(Drop::Invalid(_))
        ));
        assert_eq!(
            f.check_rtp(addr("127.0.0.3:5000"), &p),
            Verdict::Forward { latched: true }
        );
        assert_eq!(f.destination(), Some(addr("127.0.0.3:5000")));
        assert_eq!(
            f.check_rtp(addr("127.0.0.3:5000"), &p),
            Verdict::Forward { latched: false }
        );
        // Another port, another address: dropped.
        for other in ["127.0.0.3:5001", "127.0.0.4:5000", "[::1]:5000"] {
            assert_eq!(
                f.check_rtp(addr(other), &p),
                Verdict::Drop(Drop::ForeignSource),
                "{other}"
            );
        }
        let c = f.counters();
        assert_eq!((c.accepted, c.foreign, c.invalid), (2, 3, 1));
        // A re-INVITE releases the latch.
        f.renegotiated(Some(addr("127.0.0.5:6000")));
        assert_eq!(f.destination(), Some(addr("127.0.0.5:6000")));
        assert_eq!(
            f.check_rtp(addr("127.0.0.5:6002"), &p),
            Verdict::Forward { latched: true }
        );
    }

    #[test]
    fn sdp_address_policy() {
        let mut f = SourceFilter::new(LatchPolicy::SdpAddress, Some(addr("127.0.0.2:4000")));
        let p = pkt(1, 1, 0);
        assert_eq!(
            f.check_rtp(addr("127.0.0.7:4000"), &p),
            Verdict::Drop(Drop::ForeignSource)
        );
        assert_eq!(
            f.check_rtp(addr("127.0.0.2:4100"), &p),
            Verdict::Forward { latched: true }
        );
        let mut none = SourceFilter::new(LatchPolicy::SdpAddress, None);
        assert_eq!(
            none.check_rtp(addr("127.0.0.2:4100"), &p),
            Verdict::Drop(Drop::ForeignSource)
        );
        let mut exact = SourceFilter::new(LatchPolicy::SdpExact, Some(addr("127.0.0.2:4000")));
        assert_eq!(
            exact.check_rtp(addr("127.0.0.2:4100"), &p),
            Verdict::Drop(Drop::ForeignSource)
        );
        assert_eq!(
            exact.check_rtp(addr("127.0.0.2:4000"), &p),
            Verdict::Forward { latched: true }
        );
        let mut mapped = SourceFilter::new(LatchPolicy::SdpAddress, Some(addr("127.0.0.2:4000")));
        assert_eq!(
            mapped.check_rtp(addr("[::ffff:127.0.0.2]:4000"), &p),
            Verdict::Forward { latched: true }
        );
    }

    #[test]
    fn one_continuous_stream_across_sources() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(0xabcd, 8000);
        let mut out = Vec::new();
        // Source A: 5 packets from seq 1000.
        for i in 0..5u16 {
            let mut p = pkt(0xa, 1000 + i, 50_000 + u32::from(i) * 160);
            r.rewrite(&mut p, t0 + Duration::from_millis(20 * u64::from(i)))
                .unwrap();
            out.push(p);
        }
        // Source B (a prompt) 40 ms after A's last packet, from seq 7.
        for i in 0..5u16 {
            let mut p = pkt(0xb, 7 + i, 9 + u32::from(i) * 160);
            r.rewrite(&mut p, t0 + Duration::from_millis(120 + 20 * u64::from(i)))
                .unwrap();
            out.push(p);
        }
        let v: Vec<_> = out
            .iter()
            .map(|p| {
                let p = RtpPacket::parse(p).unwrap();
                (p.ssrc(), p.sequence(), p.timestamp(), p.marker())
            })
            .collect();
        assert!(v.iter().all(|x| x.0 == 0xabcd));
        let seqs: Vec<u16> = v.iter().map(|x| x.1).collect();
        assert_eq!(seqs, (1000..1010).collect::<Vec<u16>>());
        // A's last timestamp 50_640, then 40 ms = 320 ticks later.
        assert_eq!(v[4].2, 50_640);
        assert_eq!(v[5].2, 50_960);
        assert_eq!(v[9].2, 50_960 + 4 * 160);
        assert_eq!(
            v.iter().map(|x| x.3).collect::<Vec<_>>(),
            [true, false, false, false, false, true, false, false, false, false]
        );
    }

    #[test]
    fn digits_a_leg_sends_are_reported_once_as_they_end() {
        use crate::dtmf::DtmfSender;
        let t0 = Instant::now();
        let mut r = Relay::new();
        let leg = |key, port| LegSpec {
            key,
            sdp_addr: Some(SocketAddr::from(([127, 0, 0, 2], port))),
            ssrc: key,
            clock_rate: 8000,
        };
        r.bridge(leg(1u32, 4000), leg(2, 4002), LatchPolicy::AnySource);
        let te = TelephoneEvent {
            pt: 101,
            clock_rate: 8000,
        };
        assert!(r.telephone_event(1, Some(te)));
        assert!(!r.telephone_event(9, Some(te)), "not bridged");
        let from = addr("127.0.0.2:4000");
        let mut seq = 0u16;
        let mut send = |r: &mut Relay<u32>, pt: u8, ts: u32, payload: &[u8]| {
            seq += 1;
            let mut v = rtp(pt, 7, seq, ts, payload);
            // Relayed untouched but for the header's rewrite.
            assert_eq!(r.on_rtp(1, from, &mut v, t0).map(|x| x.0), Ok(2));
            assert_eq!(&v[12..], payload);
        };
        send(&mut r, 0, 0, &[0xff; 160]);
        // '5' for 800 ticks (100 ms), its end sent three times, then '#'.
        for (event, ts) in [(5u8, 160u32), (11, 2000)] {
            for p in DtmfSender::new(event, ts, 800, 160, 10) {
                send(&mut r, 101, p.timestamp, &p.payload);
            }
        }
        // The same packets on the leg not told of its format: not read.
        for p in DtmfSender::new(1, 5000, 800, 160, 10) {
            let mut v = rtp(101, 8, 1, p.timestamp, &p.payload);
            let _ = r.on_rtp(2, addr("127.0.0.2:4002"), &mut v, t0);
        }
        assert!(r.has_digits());
        let got: Vec<Digit<u32>> = r.take_digits().collect();
        let ms100 = std::time::Duration::from_millis(100);
        assert_eq!(
            got,
            [
                Digit {
                    key: 1,
                    event: 5,
                    duration: ms100
                },
                Digit {
                    key: 1,
                    event: 11,
                    duration: ms100
                }
            ]
        );
        assert!(!r.has_digits());
        // Told of no format any more: nothing.
        r.telephone_event(1, None);
        for p in DtmfSender::new(3, 9000, 800, 160, 10) {
            send(&mut r, 101, p.timestamp, &p.payload);
        }
        assert!(!r.has_digits());
    }

    #[test]
    fn a_legs_incoming_quality() {
        let t0 = Instant::now();
        let mut r = Relay::new();
        let (a, b) = (
            LegSpec {
                key: 1u32,
                sdp_addr: Some(addr("127.0.0.2:4000")),
                ssrc: 0xa,
                clock_rate: 8000,
            },
            LegSpec {
                key: 2u32,
                sdp_addr: Some(addr("127.0.0.3:4000")),
                ssrc: 0xb,
                clock_rate: 8000,
            },
        );
        r.bridge(a, b, LatchPolicy::AnySource);
        assert_eq!(r.quality(1), None, "nothing received yet");
        // Sequence 1, 2, 3, 5 on time: four received, one lost (RFC 3550
        // A.1 counts the loss from the packet that ends the source's
        // probation), no jitter.
        for (i, seq) in [1u16, 2, 3, 5].into_iter().enumerate() {
            let mut p = pkt(7, seq, u32::from(seq) * 160);
            let at = t0 + std::time::Duration::from_millis(20 * u64::from(seq));
            assert!(
                r.on_rtp(1, addr("127.0.0.2:4000"), &mut p, at).is_ok(),
                "{i}"
            );
        }
        let q = r.quality(1).unwrap();
        assert_eq!((q.received, q.lost), (4, 1));
        assert!(
            q.jitter < std::time::Duration::from_micros(200),
            "{:?}",
            q.jitter
        );
        assert_eq!(r.quality(2), None);
    }

    #[test]
    fn relay_between_two_legs() {
        let t0 = Instant::now();
        let mut r = Relay::new();
        let a = LegSpec {
            key: 1u32,
            sdp_addr: Some(addr("127.0.0.2:4000")),
            ssrc: 0xa,
            clock_rate: 8000,
        };
        let b = LegSpec {
            key: 2u32,
            sdp_addr: None,
            ssrc: 0xb,
            clock_rate: 8000,
        };
        r.bridge(a, b, LatchPolicy::AnySource);
        // B has no address until it sends: A's packets cannot go anywhere yet.
        let mut p = pkt(77, 1, 0);
        assert_eq!(
            r.on_rtp(1, addr("127.0.0.2:4000"), &mut p, t0),
            Err(RelayDrop::NoDestination)
        );
        // B sends from 127.0.0.3:5000: to A's latched address, as SSRC 0xa.
        let mut p = pkt(88, 10, 0);
        assert_eq!(
            r.on_rtp(2, addr("127.0.0.3:5000"), &mut p, t0),
            Ok((1, addr("127.0.0.2:4000")))
        );
        assert_eq!(RtpPacket::parse(&p).unwrap().ssrc(), 0xa);
        // Now A's packets reach B, as SSRC 0xb.
        let mut p = pkt(77, 2, 160);
        assert_eq!(
            r.on_rtp(1, addr("127.0.0.2:4000"), &mut p, t0),
            Ok((2, addr("127.0.0.3:5000")))
        );
        assert_eq!(RtpPacket::parse(&p).unwrap().ssrc(), 0xb);
        // A spoofed packet on B's socket is dropped and counted.
        let mut p = pkt(88, 11, 160);
        assert_eq!(
            r.on_rtp(2, addr("127.0.0.9:5000"), &mut p, t0),
            Err(RelayDrop::Filtered(Drop::ForeignSource))
        );
        assert_eq!(r.counters(2).unwrap().foreign, 1);
        assert_eq!(
            r.on_rtp(3, addr("127.0.0.9:5000"), &mut p, t0),
            Err(RelayDrop::UnknownLeg)
        );
        r.unbridge(2);
        assert!(r.is_empty());
    }

    #[test]
    fn late_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(1, 8000);
        assert_eq!(r.map(5, 100, 0, t0).0, 100);
        assert_eq!(r.map(5, 102, 320, t0).0, 102);
        assert_eq!(r.map(5, 101, 160, t0).0, 101);
        // Switching continues after the newest (102), not the late one.
        let (seq, _, switched) = r.map(6, 1, 0, t0 + Duration::from_millis(20));
        assert_eq!((seq, switched), (103, true));
        // Wrap of the input sequence.
        let mut r = StreamRewriter::new(1, 8000);
        r.map(5, 65_535, 0, t0);
        assert_eq!(r.map(5, 0, 160, t0).0, 0);
    }
}
