//! RTCP (RFC 3550 §6): checked views of compound packets — SR, RR, SDES,
//! BYE, APP, and any other type kept as raw bytes — and writers for the
//! reports a terminated leg sends.
//!
//! [`Compound::parse`] applies RFC 3550 Appendix A.2: every packet is
//! version 2, the first is an SR or RR, only the last may be padded, and
//! the lengths add up to the datagram exactly. Each packet's own layout
//! (report blocks, SDES chunks, BYE reason) is checked as well, so a
//! malformed compound is rejected as a whole and nothing afterwards reads
//! out of bounds.

use bytemuck::{Pod, Zeroable};

/// Packet type of a sender report.
pub const SR: u8 = 200;
/// Packet type of a receiver report.
pub const RR: u8 = 201;
/// Packet type of a source description.
pub const SDES: u8 = 202;
/// Packet type of a goodbye.
pub const BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const APP: u8 = 204;

/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

/// Why bytes are not a valid RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header, or a length that runs past the datagram.
    #[error("truncated RTCP packet")]
    Truncated,
    /// A version other than 2.
    #[error("RTCP version is not 2")]
    Version,
    /// The first packet is neither SR nor RR (RFC 3550 §6.1).
    #[error("compound packet does not start with SR or RR")]
    FirstNotReport,
    /// Padding on a packet other than the last, or a bad padding count.
    #[error("bad RTCP padding")]
    Padding,
    /// A packet's body does not fit its count or type.
    #[error("malformed RTCP {0} packet")]
    Body(u8),
}

/// The 4-byte header every RTCP packet starts with.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Common {
    /// V (2 bits), P, count (5 bits).
    vpc: u8,
    pt: u8,
    /// Length in 32-bit words minus one.
    length: [u8; 2],
}

/// A report block (RFC 3550 §6.4.1) as it lies on the wire.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct RawBlock {
    ssrc: [u8; 4],
    fraction: u8,
    cumulative: [u8; 3],
    highest: [u8; 4],
    jitter: [u8; 4],
    lsr: [u8; 4],
    dlsr: [u8; 4],
}

const BLOCK_LEN: usize = std::mem::size_of::<RawBlock>();

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn from_raw(r: &RawBlock) -> Self {
        let c = r.cumulative;
        // Sign-extend the 24-bit count.
        let cumulative = i32::from_be_bytes([c[0], c[1], c[2], 0]) >> 8;
        ReportBlock {
            ssrc: u32::from_be_bytes(r.ssrc),
            fraction_lost: r.fraction,
            cumulative_lost: cumulative,
            highest_sequence: u32::from_be_bytes(r.highest),
            jitter: u32::from_be_bytes(r.jitter),
            last_sr: u32::from_be_bytes(r.lsr),
            delay_since_last_sr: u32::from_be_bytes(r.dlsr),
        }
    }

    fn to_raw(self) -> RawBlock {
        let c = self
            .cumulative_lost
            .clamp(-0x80_0000, 0x7f_ffff)
            .to_be_bytes();
        RawBlock {
            ssrc: self.ssrc.to_be_bytes(),
            fraction: self.fraction_lost,
            cumulative: [c[1], c[2], c[3]],
            highest: self.highest_sequence.to_be_bytes(),
            jitter: self.jitter.to_be_bytes(),
            lsr: self.last_sr.to_be_bytes(),
            dlsr: self.delay_since_last_sr.to_be_bytes(),
        }
    }
}

fn blocks(b: &[u8]) -> impl Iterator<Item = ReportBlock> + '_ {
    b.chunks_exact(BLOCK_LEN)
        .map(|c| ReportBlock::from_raw(bytemuck::from_bytes(c)))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReportView<'a> {
    body: &'a [u8],
    count: usize,
}

impl<'a> SenderReportView<'a> {
    /// The sender.
    pub fn ssrc(&self) -> u32 {
        be32(self.body, 0)
    }
    /// The NTP timestamp, 32.32 fixed point.
    pub fn ntp(&self) -> u64 {
        u64::from(be32(self.body, 4)) << 32 | u64::from(be32(self.body, 8))
    }
    /// The RTP timestamp that corresponds to [`Self::ntp`].
    pub fn rtp_timestamp(&self) -> u32 {
        be32(self.body, 12)
    }
    /// Packets sent.
    pub fn packet_count(&self) -> u32 {
        be32(self.body, 16)
    }
    /// Payload octets sent.
    pub fn octet_count(&self) -> u32 {
        be32(self.body, 20)
    }
    /// The reception report blocks.
    pub fn reports(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        blocks(&self.body[24..24 + self.count * BLOCK_LEN])
    }
}

/// A receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReportView<'a> {
    body: &'a [u8],
    count: usize,
}

impl<'a> ReceiverReportView<'a> {
    /// The receiver.
    pub fn ssrc(&self) -> u32 {
        be32(self.body, 0)
    }
    /// The reception report blocks.
    pub fn reports(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        blocks(&self.body[4..4 + self.count * BLOCK_LEN])
    }
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Item type (1 CNAME, 2 NAME, … 8 PRIV).
    pub kind: u8,
    /// The item's text, as sent (UTF-8 by the RFC, not checked here).
    pub value: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: u32,
    /// Its items, in order.
    pub items: Vec<SdesItem<'a>>,
}

/// A source description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesView<'a> {
    /// The chunks, in order.
    pub chunks: Vec<SdesChunk<'a>>,
}

/// A goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByeView<'a> {
    body: &'a [u8],
    count: usize,
    reason: Option<&'a [u8]>,
}

impl<'a> ByeView<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.body[..4 * self.count]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
    /// The reason for leaving, if given.
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }
}

/// An application-defined packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppView<'a> {
    /// The 5-bit subtype.
    pub subtype: u8,
    /// The source.
    pub ssrc: u32,
    /// The four-character name.
    pub name: [u8; 4],
    /// Application data.
    pub data: &'a [u8],
}

/// One packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// SR.
    SenderReport(SenderReportView<'a>),
    /// RR.
    ReceiverReport(ReceiverReportView<'a>),
    /// SDES.
    SourceDescription(SdesView<'a>),
    /// BYE.
    Goodbye(ByeView<'a>),
    /// APP.
    App(AppView<'a>),
    /// Any other type (feedback, XR, …), kept as its body after the header.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The count field.
        count: u8,
        /// Everything after the 4-byte header, padding excluded.
        body: &'a [u8],
    },
}

/// A checked compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compound<'a> {
    /// The packets, in order.
    pub packets: Vec<RtcpPacket<'a>>,
}

impl<'a> Compound<'a> {
    /// Checks and views a compound packet (RFC 3550 §6.1 and Appendix A.2).
    pub fn parse(buf: &'a [u8]) -> Result<Compound<'a>, RtcpError> {
        let mut packets = Vec::with_capacity(3);
        let mut at = 0;
        while at < buf.len() {
            let head = buf.get(at..at + 4).ok_or(RtcpError::Truncated)?;
            let c: &Common = bytemuck::from_bytes(head);
            if c.vpc >> 6 != 2 {
                return Err(RtcpError::Version);
            }
            let len = 4 * (usize::from(u16::from_be_bytes(c.length)) + 1);
            let whole = buf.get(at..at + len).ok_or(RtcpError::Truncated)?;
            let last = at + len == buf.len();
            if at == 0 && c.pt != SR && c.pt != RR {
                return Err(RtcpError::FirstNotReport);
            }
            let mut body = &whole[4..];
            if c.vpc & 0x20 != 0 {
                let pad = usize::from(whole[len - 1]);
                if !last || pad == 0 || pad > body.len() {
                    return Err(RtcpError::Padding);
                }
                body = &body[..body.len() - pad];
            }
            packets.push(packet(c.pt, c.vpc & 0x1f, body)?);
            at += len;
        }
        if packets.is_empty() {
            return Err(RtcpError::Truncated);
        }
        Ok(Compound { packets })
    }
}

fn packet(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let n = usize::from(count);
    let bad = RtcpError::Body(pt);
    Ok(match pt {
        SR => {
            if body.len() < 24 + n * BLOCK_LEN {
                return Err(bad);
            }
            RtcpPacket::SenderReport(SenderReportView { body, count: n })
        }
        RR => {
            if body.len() < 4 + n * BLOCK_LEN {
                return Err(bad);
            }
            RtcpPacket::ReceiverReport(ReceiverReportView { body, count: n })
        }
        SDES => RtcpPacket::SourceDescription(sdes(body, n).ok_or(bad)?),
        BYE => {
            let mut reason = None;
            if body.len() < 4 * n {
                return Err(bad);
            }
            if let Some(&rlen) = body.get(4 * n) {
                let text = body
                    .get(4 * n + 1..4 * n + 1 + usize::from(rlen))
                    .ok_or(bad)?;
                reason = Some(text);
            }
            RtcpPacket::Goodbye(ByeView {
                body,
                count: n,
                reason,
            })
        }
        APP => {
            if body.len() < 8 || body.len() % 4 != 0 {
                return Err(bad);
            }
            RtcpPacket::App(AppView {
                subtype: count,
                ssrc: be32(body, 0),
                name: [body[4], body[5], body[6], body[7]],
                data: &body[8..],
            })
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            body,
        },
    })
}

/// SDES chunks: SSRC, items, a null item, padding to a word boundary.
fn sdes(body: &[u8], count: usize) -> Option<SdesView<'_>> {
    let mut chunks = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let ssrc = be32(body.get(at..at + 4)?, 0);
        at += 4;
        let mut items = Vec::new();
        loop {
            let kind = *body.get(at)?;
            if kind == 0 {
                // The null item, then padding to the next 32-bit boundary.
                at = (at + 4) & !3;
                break;
            }
            let len = usize::from(*body.get(at + 1)?);
            let value = body.get(at + 2..at + 2 + len)?;
            items.push(SdesItem { kind, value });
            at += 2 + len;
        }
        if at > body.len() {
            return None;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Some(SdesView { chunks })
}

fn header(out: &mut Vec<u8>, count: u8, pt: u8, body_len: usize) {
    debug_assert_eq!(body_len % 4, 0);
    let words = u16::try_from(body_len / 4).unwrap_or(u16::MAX);
    let c = Common {
        vpc: 0x80 | (count & 0x1f),
        pt,
        length: words.to_be_bytes(),
    };
    out.extend_from_slice(bytemuck::bytes_of(&c));
}

/// A sender report to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// Wallclock, NTP 32.32 fixed point.
    pub ntp: u64,
    /// RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// Appends the packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        let reports = &self.reports[..self.reports.len().min(31)];
        header(out, reports.len() as u8, SR, 24 + reports.len() * BLOCK_LEN);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.packet_count.to_be_bytes());
        out.extend_from_slice(&self.octet_count.to_be_bytes());
        for r in reports {
            out.extend_from_slice(bytemuck::bytes_of(&r.to_raw()));
        }
    }
}

/// A receiver report to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// The receiver.
    pub ssrc: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

impl ReceiverReport {
    /// Appends the packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        let reports = &self.reports[..self.reports.len().min(31)];
        header(out, reports.len() as u8, RR, 4 + reports.len() * BLOCK_LEN);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for r in reports {
            out.extend_from_slice(bytemuck::bytes_of(&r.to_raw()));
        }
    }
}

/// Appends an SDES packet with one chunk holding a CNAME (at most 255
/// bytes of it are sent).
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut Vec<u8>) {
    let text = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC, type, length, text, null item, padding to a word.
    let chunk_len = (4 + 2 + text.len() + 1).div_ceil(4) * 4;
    header(out, 1, SDES, chunk_len);
    let start = out.len();
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(text.len() as u8);
    out.extend_from_slice(text);
    out.resize(start + chunk_len, 0);
}

/// Appends a BYE for `ssrcs` (at most 31) with an optional reason (at most
/// 255 bytes of it).
pub fn write_bye(ssrcs: &[u32], reason: Option<&str>, out: &mut Vec<u8>) {
    let ssrcs = &ssrcs[..ssrcs.len().min(31)];
    let reason = reason.map(|r| &r.as_bytes()[..r.len().min(255)]);
    let body_len = (4 * ssrcs.len() + reason.map_or(0, |r| 1 + r.len())).div_ceil(4) * 4;
    header(out, ssrcs.len() as u8, BYE, body_len);
    let start = out.len();
    for s in ssrcs {
        out.extend_from_slice(&s.to_be_bytes());
    }
    if let Some(r) = reason {
        out.push(r.len() as u8);
        out.extend_from_slice(r);
    }
    out.resize(start + body_len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32) -> ReportBlock {
        ReportBlock {
            ssrc: n,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 70_000 + n,
            jitter: 12,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65_536,
        }
    }

    fn compound() -> Vec<u8> {
        let mut v = Vec::new();
        SenderReport {
            ssrc: 1,
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packet_count: 50,
            octet_count: 8000,
            reports: vec![block(2), block(3)],
        }
        .write(&mut v);
        write_sdes_cname(1, "sentiric@127.0.0.1", &mut v);
        write_bye(&[1, 9], Some("call ended"), &mut v);
        v
    }

    #[test]
    fn round_trip() {
        let v = compound();
        let c = Compound::parse(&v).unwrap();
        assert_eq!(c.packets.len(), 3);
        let RtcpPacket::SenderReport(sr) = &c.packets[0] else {
            panic!("{:?}", c.packets[0])
        };
        assert_eq!(sr.ssrc(), 1);
        assert_eq!(sr.ntp(), 0x0102_0304_0506_0708);
        assert_eq!(
            (sr.rtp_timestamp(), sr.packet_count(), sr.octet_count()),
            (160, 50, 8000)
        );
        assert_eq!(sr.reports().collect::<Vec<_>>(), vec![block(2), block(3)]);
        let RtcpPacket::SourceDescription(sd) = &c.packets[1] else {
            panic!()
        };
        assert_eq!(sd.chunks[0].ssrc, 1);
        assert_eq!(sd.chunks[0].items[0].value, b"sentiric@127.0.0.1");
        let RtcpPacket::Goodbye(bye) = &c.packets[2] else {
            panic!()
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![1, 9]);
        assert_eq!(bye.reason(), Some(&b"call ended"[..]));

        let mut rr = Vec::new();
        ReceiverReport {
            ssrc: 5,
            reports: vec![block(1)],
        }
        .write(&mut rr);
        let c = Compound::parse(&rr).unwrap();
        let RtcpPacket::ReceiverReport(r) = &c.packets[0] else {
            panic!()
        };
        assert_eq!(r.ssrc(), 5);
        assert_eq!(r.reports().next(), Some(block(1)));
    }

    #[test]
    fn malformed_compounds_are_rejected() {
        let v = compound();
        // Cut anywhere but between two packets: rejected. Cut between
        // packets, what is left is a shorter valid compound.
        let mut boundaries = vec![];
        let mut at = 0;
        while at < v.len() {
            at += 4 * (usize::from(u16::from_be_bytes([v[at + 2], v[at + 3]])) + 1);
            boundaries.push(at);
        }
        for cut in 0..v.len() {
            let r = Compound::parse(&v[..cut]);
            assert_eq!(r.is_ok(), boundaries.contains(&cut), "cut at {cut}: {r:?}");
        }
        // First packet not a report.
        let mut sdes_first = Vec::new();
        write_sdes_cname(1, "x", &mut sdes_first);
        assert_eq!(Compound::parse(&sdes_first), Err(RtcpError::FirstNotReport));
        // Version 1.
        let mut bad = v.clone();
        bad[0] = (bad[0] & 0x3f) | 0x40;
        assert_eq!(Compound::parse(&bad), Err(RtcpError::Version));
        // Padding bit on the first of several packets.
        let mut pad = v.clone();
        pad[0] |= 0x20;
        assert_eq!(Compound::parse(&pad), Err(RtcpError::Padding));
        // A report count larger than the body.
        let mut count = v.clone();
        count[0] = (count[0] & 0xe0) | 5;
        assert_eq!(Compound::parse(&count), Err(RtcpError::Body(SR)));
        // An SDES chunk whose item runs past its packet.
        let mut sd = Vec::new();
        ReceiverReport::default().write(&mut sd);
        let at = sd.len();
        write_sdes_cname(1, "abc", &mut sd);
        sd[at + 9] = 200;
        assert_eq!(Compound::parse(&sd), Err(RtcpError::Body(SDES)));
        // Trailing bytes that are no packet.
        let mut tail = v.clone();
        tail.extend_from_slice(&[0x80, 0xc8]);
        assert_eq!(Compound::parse(&tail), Err(RtcpError::Truncated));
    }

    #[test]
    fn negative_cumulative_loss_round_trips() {
        for lost in [-0x80_0000, -1, 0, 1, 0x7f_ffff] {
            let b = ReportBlock {
                cumulative_lost: lost,
                ..ReportBlock::default()
            };
            assert_eq!(ReportBlock::from_raw(&b.to_raw()).cumulative_lost, lost);
        }
    }
}
