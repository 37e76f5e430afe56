//! Checked zero-copy views of RTP packets (RFC 3550 §5.1) and the header
//! fields a relay rewrites.
//!
//! [`RtpPacket::parse`] applies the header validity checks of RFC 3550
//! Appendix A.1 that need no stream state — version 2, the CSRC list, the
//! header extension and the padding count all inside the packet — so every
//! accessor afterwards is infallible and never reads out of bounds.

use bytemuck::{Pod, Zeroable};

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("shorter than the RTP fixed header")]
    TooShort,
    /// The version field is not 2.
    #[error("RTP version {0}, not 2")]
    Version(u8),
    /// The CSRC list runs past the end of the packet.
    #[error("CSRC list runs past the packet")]
    CsrcOverrun,
    /// The header extension runs past the end of the packet.
    #[error("header extension runs past the packet")]
    ExtensionOverrun,
    /// The padding count is zero or larger than what follows the header.
    #[error("bad padding count")]
    Padding,
}

/// The fixed part of the header as it lies on the wire (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Fixed {
    /// V (2 bits), P, X, CC (4 bits).
    vpxcc: u8,
    /// M, PT (7 bits).
    mpt: u8,
    seq: [u8; 2],
    ts: [u8; 4],
    ssrc: [u8; 4],
}

/// Length of the fixed header.
pub const FIXED_HEADER_LEN: usize = std::mem::size_of::<Fixed>();

/// `true` when a packet on an rtcp-mux port is RTCP rather than RTP: its
/// second byte is an RTCP packet type 192–223 (RFC 5761 §4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// A checked view of one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

fn fixed(buf: &[u8]) -> &Fixed {
    bytemuck::from_bytes(&buf[..FIXED_HEADER_LEN])
}

impl<'a> RtpPacket<'a> {
    /// Checks `buf` and views it as an RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if buf.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        let f = fixed(buf);
        let version = f.vpxcc >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(f.vpxcc & 0x0f);
        if header_len > buf.len() {
            return Err(RtpError::CsrcOverrun);
        }
        if f.vpxcc & 0x10 != 0 {
            let ext = buf
                .get(header_len..header_len + 4)
                .ok_or(RtpError::ExtensionOverrun)?;
            header_len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            if header_len > buf.len() {
                return Err(RtpError::ExtensionOverrun);
            }
        }
        let mut payload_end = buf.len();
        if f.vpxcc & 0x20 != 0 {
            let pad = usize::from(buf[buf.len() - 1]);
            if pad == 0 || header_len + pad > buf.len() {
                return Err(RtpError::Padding);
            }
            payload_end -= pad;
        }
        Ok(RtpPacket {
            buf,
            header_len,
            payload_end,
        })
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        fixed(self.buf).mpt & 0x80 != 0
    }

    /// The payload type, 0–127.
    pub fn payload_type(&self) -> u8 {
        fixed(self.buf).mpt & 0x7f
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes(fixed(self.buf).seq)
    }

    /// The timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes(fixed(self.buf).ts)
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes(fixed(self.buf).ssrc)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let n = usize::from(fixed(self.buf).vpxcc & 0x0f);
        self.buf[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * n]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension: the profile-defined 16 bits and the data
    /// (RFC 3550 §5.3.1; RFC 8285 elements are inside the data).
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        if fixed(self.buf).vpxcc & 0x10 == 0 {
            return None;
        }
        let at = FIXED_HEADER_LEN + 4 * usize::from(fixed(self.buf).vpxcc & 0x0f);
        let profile = u16::from_be_bytes([self.buf[at], self.buf[at + 1]]);
        Some((profile, &self.buf[at + 4..self.header_len]))
    }

    /// Length of the header: fixed part, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.payload_end]
    }

    /// Number of padding bytes at the end (0 without the P bit).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }
}

/// The fixed-header fields of a packet to build or to rewrite in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// The marker bit.
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// The 12-byte fixed header: version 2, no padding, extension or CSRCs.
    pub fn to_bytes(&self) -> [u8; FIXED_HEADER_LEN] {
        let f = Fixed {
            vpxcc: 0x80,
            mpt: u8::from(self.marker) << 7 | (self.payload_type & 0x7f),
            seq: self.sequence.to_be_bytes(),
            ts: self.timestamp.to_be_bytes(),
            ssrc: self.ssrc.to_be_bytes(),
        };
        bytemuck::cast(f)
    }

    /// Appends a whole packet: this header and `payload`.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
        out.extend_from_slice(payload);
    }
}

/// Overwrites the sequence number, timestamp and SSRC of the RTP packet in
/// `buf` (already checked by [`RtpPacket::parse`], or at least 12 bytes).
///
/// # Panics
/// When `buf` is shorter than the fixed header.
pub fn rewrite(buf: &mut [u8], sequence: u16, timestamp: u32, ssrc: u32) {
    let f: &mut Fixed = bytemuck::from_bytes_mut(&mut buf[..FIXED_HEADER_LEN]);
    f.seq = sequence.to_be_bytes();
    f.ts = timestamp.to_be_bytes();
    f.ssrc = ssrc.to_be_bytes();
}

/// Overwrites the payload type and marker bit of the packet in `buf`.
///
/// # Panics
/// When `buf` is shorter than the fixed header.
pub fn set_payload_type(buf: &mut [u8], payload_type: u8, marker: bool) {
    let f: &mut Fixed = bytemuck::from_bytes_mut(&mut buf[..FIXED_HEADER_LEN]);
    f.mpt = u8::from(marker) << 7 | (payload_type & 0x7f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3550 §5.1 layout written out by hand: V=2, P, X, CC=1, M, PT=0.
    fn sample() -> Vec<u8> {
        let mut b = vec![
            0b1011_0001, // V=2 P=1 X=1 CC=1
            0x80,        // M=1 PT=0
            0x12,
            0x34, // seq
            0x00,
            0x00,
            0x03,
            0x20, // ts 800
            0xde,
            0xad,
            0xbe,
            0xef, // ssrc
            0x01,
            0x02,
            0x03,
            0x04, // csrc
            0xbe,
            0xde,
            0x00,
            0x01, // extension profile, 1 word
            0x10,
            0xaa,
            0x00,
            0x00, // one-byte element id 1, len 1
        ];
        b.extend_from_slice(&[7u8; 160]);
        b.extend_from_slice(&[0, 0, 3]); // padding of 3
        b
    }

    #[test]
    fn fields() {
        let b = sample();
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 800);
        assert_eq!(p.ssrc(), 0xdead_beef);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![0x0102_0304]);
        assert_eq!(p.extension(), Some((0xbede, &[0x10, 0xaa, 0, 0][..])));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[7u8; 160][..]);
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn malformed() {
        let b = sample();
        assert_eq!(RtpPacket::parse(&b[..11]), Err(RtpError::TooShort));
        let mut v1 = b.clone();
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version(1)));
        let mut cc = b.clone();
        cc[0] |= 0x0f;
        cc.truncate(60);
        assert_eq!(RtpPacket::parse(&cc), Err(RtpError::CsrcOverrun));
        assert_eq!(RtpPacket::parse(&b[..18]), Err(RtpError::ExtensionOverrun));
        let mut ext = b.clone();
        ext[18] = 0xff;
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::ExtensionOverrun));
        let mut pad = b.clone();
        *pad.last_mut().unwrap() = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding));
        *pad.last_mut().unwrap() = 200;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding));
    }

    #[test]
    fn build_and_rewrite() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xffff_fff0,
            ssrc: 42,
        };
        let mut v = Vec::new();
        h.write(&[1, 2, 3], &mut v);
        let p = RtpPacket::parse(&v).unwrap();
        assert_eq!(
            (
                p.marker(),
                p.payload_type(),
                p.sequence(),
                p.timestamp(),
                p.ssrc()
            ),
            (true, 8, 65535, 0xffff_fff0, 42)
        );
        assert_eq!(p.payload(), &[1, 2, 3]);
        rewrite(&mut v, 7, 9, 11);
        set_payload_type(&mut v, 101, false);
        let p = RtpPacket::parse(&v).unwrap();
        assert_eq!(
            (
                p.marker(),
                p.payload_type(),
                p.sequence(),
                p.timestamp(),
                p.ssrc()
            ),
            (false, 101, 7, 9, 11)
        );
        assert!(!is_rtcp(&v));
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
    }
}
