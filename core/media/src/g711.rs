//! ITU-T G.711: µ-law (PCMU) and A-law (PCMA), table based.
//!
//! Decoding is one lookup in a 256-entry table. Encoding is one lookup in
//! a table indexed by the top 14 bits (µ-law) or 13 bits (A-law) of the
//! sample, which are all the bits either law can represent. Every table is
//! computed at compile time from the law's segment definition.

/// µ-law bias added before the segment search (G.711 §3.2).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law encodes before clipping.
const ULAW_CLIP: i32 = 32635;

const fn ulaw_encode_slow(sample: i32) -> u8 {
    let (sign, mut mag) = if sample < 0 {
        (0x80, -sample)
    } else {
        (0, sample)
    };
    if mag > ULAW_CLIP {
        mag = ULAW_CLIP;
    }
    mag += ULAW_BIAS;
    // Segment: position of the highest set bit above bit 7.
    let mut segment = 7;
    while segment > 0 && mag & (0x80 << segment) == 0 {
        segment -= 1;
    }
    let mantissa = (mag >> (segment + 3)) & 0x0f;
    !((sign | (segment << 4) | mantissa) as u8)
}

const fn ulaw_decode_slow(code: u8) -> i16 {
    let c = !code;
    let segment = ((c >> 4) & 0x07) as i32;
    let mantissa = (c & 0x0f) as i32;
    let mag = (((mantissa << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    if c & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

const fn alaw_encode_slow(sample: i32) -> u8 {
    // A-law works on 13-bit magnitudes.
    let s = sample >> 3;
    let (mask, mag) = if s >= 0 { (0xd5, s) } else { (0x55, -s - 1) };
    let mut segment = 0;
    while segment < 8 && mag > (0x20 << segment) - 1 {
        segment += 1;
    }
    let code = if segment >= 8 {
        0x7f
    } else if segment < 2 {
        (segment << 4) | ((mag >> 1) & 0x0f)
    } else {
        (segment << 4) | ((mag >> segment) & 0x0f)
    };
    (code ^ mask) as u8
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let c = (code ^ 0x55) as i32;
    let segment = (c & 0x70) >> 4;
    let mut mag = (c & 0x0f) << 4;
    mag += 8;
    if segment >= 1 {
        mag += 0x100;
    }
    if segment > 1 {
        mag <<= segment - 1;
    }
    if c & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_slow(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_slow(i as u8);
        i += 1;
    }
    t
};

/// Indexed by `sample >> 2` as an unsigned 14-bit number.
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        // Sign-extend the 14-bit index back to a sample.
        let sample = ((i as i32) << 18) >> 16;
        t[i] = ulaw_encode_slow(sample);
        i += 1;
    }
    t
};

/// Indexed by `sample >> 3` as an unsigned 13-bit number.
static ALAW_ENCODE: [u8; 1 << 13] = {
    let mut t = [0u8; 1 << 13];
    let mut i = 0;
    while i < (1 << 13) {
        let sample = ((i as i32) << 19) >> 16;
        t[i] = alaw_encode_slow(sample);
        i += 1;
    }
    t
};

/// Encodes one sample to µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((sample as u16) >> 2) as usize]
}

/// Decodes one µ-law byte.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample as u16) >> 3) as usize]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// The two laws, for code that handles either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, RTP payload type 0 (PCMU).
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA).
    Alaw,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// Encodes `pcm` into `out` (cleared first).
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| ulaw_encode(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| alaw_encode(s))),
        }
    }

    /// Decodes `codes` into `out` (cleared first).
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        match self {
            Law::Ulaw => out.extend(codes.iter().map(|&c| ulaw_decode(c))),
            Law::Alaw => out.extend(codes.iter().map(|&c| alaw_decode(c))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_segment_definition() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode_slow(i32::from(s & !3)), "{s}");
            assert_eq!(alaw_encode(s), alaw_encode_slow(i32::from(s & !7)), "{s}");
        }
    }

    #[test]
    fn known_code_points() {
        // Silence, and the extremes of each law.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
    }

    #[test]
    fn every_code_survives_decode_encode() {
        for c in 0..=255u8 {
            // µ-law has two zeros (0x7f and 0xff); both decode to 0.
            if c != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "µ {c:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A {c:#x}");
        }
    }

    #[test]
    fn monotonic() {
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= last_u && a >= last_a, "{s}");
            (last_u, last_a) = (u, a);
        }
    }
}
