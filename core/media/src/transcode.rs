//! Transcoding between any two of the switch's codecs: G.711 µ-law and
//! A-law, and Opus at 8, 12, 16, 24 or 48 kHz.
//!
//! A [`Transcoder`] sits between two legs, `a` and `b`, and converts each
//! direction: decode the payload from one leg's codec, resample to the
//! other leg's rate if they differ (20 ms frames, `rubato`), encode. It
//! takes payloads of any length — G.711 at any packet time, Opus packets
//! of up to 120 ms — and emits one 20 ms payload per frame of audio,
//! keeping a partial frame for the next call. The caller stamps each
//! emitted payload with the next RTP timestamp, [`Codec::rtp_step`] after
//! the last.
//!
//! Loss: a missing packet (`None`) on an Opus leg is concealed by libopus
//! and transcoded like audio; on a G.711 leg, which has no concealment of
//! its own, nothing is emitted, and the receiving end conceals as it
//! would any lost packet.

use crate::g711::Law;
use crate::opus_codec::{OpusCodec, OpusConfig, OpusError};
use crate::resample::{FrameResampler, ResampleError};

/// A codec a leg speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz (RTP payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (RTP payload type 8).
    Pcma,
    /// Opus (RFC 7587), coded at the configured rate.
    Opus(OpusConfig),
}

impl Codec {
    /// Opus with the switch's transcoding profile ([`OpusConfig::dense`]).
    pub fn opus(rate: u32) -> Codec {
        Codec::Opus(OpusConfig::dense(rate))
    }

    /// The rate of the PCM the codec is decoded to and encoded from.
    pub fn pcm_rate(&self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus(c) => c.rate,
        }
    }

    /// The RTP clock rate: 8000 for G.711, 48000 for Opus whatever its
    /// coded bandwidth (RFC 7587 §4.1).
    pub fn rtp_clock(&self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus(_) => 48000,
        }
    }

    /// RTP timestamp units per emitted 20 ms payload.
    pub fn rtp_step(&self) -> u32 {
        self.rtp_clock() / 50
    }

    /// The samples of one 20 ms frame at [`Codec::pcm_rate`].
    pub fn frame_len(&self) -> usize {
        (self.pcm_rate() / 50) as usize
    }
}

/// Why a transcoder could not be built or could not convert a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscodeError {
    /// The Opus library refused a setting or a packet.
    Opus(OpusError),
    /// The two rates cannot be converted on 20 ms frames.
    Resample(ResampleError),
}

impl std::fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranscodeError::Opus(e) => write!(f, "transcode: {e}"),
            TranscodeError::Resample(e) => write!(f, "transcode: {e}"),
        }
    }
}

impl std::error::Error for TranscodeError {}

impl From<OpusError> for TranscodeError {
    fn from(e: OpusError) -> Self {
        TranscodeError::Opus(e)
    }
}

impl From<ResampleError> for TranscodeError {
    fn from(e: ResampleError) -> Self {
        TranscodeError::Resample(e)
    }
}

/// One leg's codec state: G.711 is stateless, Opus keeps an encoder and a
/// decoder (one per leg, as the leg's two directions share a stream
/// configuration).
enum LegCodec {
    G711(Law),
    Opus(Box<OpusCodec>),
}

impl LegCodec {
    fn new(codec: Codec) -> Result<LegCodec, TranscodeError> {
        Ok(match codec {
            Codec::Pcmu => LegCodec::G711(Law::Ulaw),
            Codec::Pcma => LegCodec::G711(Law::Alaw),
            Codec::Opus(config) => LegCodec::Opus(Box::new(OpusCodec::configured(config)?)),
        })
    }

    /// Appends the decoded audio of `payload` (or its concealment) to `pcm`.
    fn decode(
        &mut self,
        payload: Option<&[u8]>,
        scratch: &mut Vec<i16>,
        pcm: &mut Vec<i16>,
    ) -> Result<(), TranscodeError> {
        match self {
            LegCodec::G711(law) => {
                if let Some(p) = payload {
                    law.decode(p, scratch);
                    pcm.extend_from_slice(scratch);
                }
            }
            LegCodec::Opus(o) => {
                o.decode(payload, scratch)?;
                pcm.extend_from_slice(scratch);
            }
        }
        Ok(())
    }

    fn encode(&mut self, frame: &[i16], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        match self {
            LegCodec::G711(law) => law.encode(frame, out),
            LegCodec::Opus(o) => o.encode(frame, out)?,
        }
        Ok(())
    }
}

/// One direction's buffers: decoded audio waiting to make a frame, and the
/// resampler when the rates differ.
struct Direction {
    pending: Vec<i16>,
    in_frame: usize,
    resampler: Option<FrameResampler>,
    resampled: Vec<i16>,
    scratch: Vec<i16>,
    payload: Vec<u8>,
}

impl Direction {
    fn new(from: Codec, to: Codec) -> Result<Direction, TranscodeError> {
        let resampler = if from.pcm_rate() == to.pcm_rate() {
            None
        } else {
            Some(FrameResampler::new(from.pcm_rate(), to.pcm_rate())?)
        };
        Ok(Direction {
            pending: Vec::with_capacity(from.frame_len() * 6),
            in_frame: from.frame_len(),
            resampler,
            resampled: Vec::with_capacity(to.frame_len()),
            scratch: Vec::with_capacity(from.frame_len() * 6),
            payload: Vec::with_capacity(1500),
        })
    }

    fn run(
        &mut self,
        decoder: &mut LegCodec,
        encoder: &mut LegCodec,
        payload: Option<&[u8]>,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        decoder.decode(payload, &mut self.scratch, &mut self.pending)?;
        self.frames(encoder, emit)
    }

    /// Encodes and emits every whole frame of the audio pending.
    fn frames(
        &mut self,
        encoder: &mut LegCodec,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        let mut emitted = 0;
        let mut start = 0;
        let mut result = Ok(());
        while self.pending.len() - start >= self.in_frame {
            let frame = &self.pending[start..start + self.in_frame];
            start += self.in_frame;
            let frame = match self.resampler.as_mut() {
                Some(r) => {
                    r.process(frame, &mut self.resampled);
                    &self.resampled[..]
                }
                None => frame,
            };
            // A frame the encoder refuses is dropped, not retried.
            result = encoder.encode(frame, &mut self.payload);
            if result.is_err() {
                break;
            }
            emit(&self.payload);
            emitted += 1;
        }
        self.pending.drain(..start);
        result.map(|()| emitted)
    }
}

/// Converts audio both ways between leg `a` and leg `b`.
pub struct Transcoder {
    a: LegCodec,
    b: LegCodec,
    codecs: (Codec, Codec),
    a_to_b: Direction,
    b_to_a: Direction,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("a", &self.codecs.0)
            .field("b", &self.codecs.1)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// A transcoder between a leg speaking `a` and one speaking `b`.
    pub fn new(a: Codec, b: Codec) -> Result<Transcoder, TranscodeError> {
        Ok(Transcoder {
            a: LegCodec::new(a)?,
            b: LegCodec::new(b)?,
            codecs: (a, b),
            a_to_b: Direction::new(a, b)?,
            b_to_a: Direction::new(b, a)?,
        })
    }

    /// The codecs of leg `a` and leg `b`.
    pub fn codecs(&self) -> (Codec, Codec) {
        self.codecs
    }

    /// Converts a payload leg `a` sent (`None`: one was lost) for leg `b`,
    /// calling `emit` with each 20 ms payload ready; returns how many.
    pub fn a_to_b(
        &mut self,
        payload: Option<&[u8]>,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        self.a_to_b
            .run(&mut self.a, &mut self.b, payload, &mut emit)
    }

    /// Audio the switch makes in place of what leg `a` sent (a DTMF tone
    /// for an event `b` cannot take), at `a`'s [`Codec::pcm_rate`]:
    /// converted and emitted for leg `b` as [`Transcoder::a_to_b`] does.
    pub fn pcm_a_to_b(
        &mut self,
        pcm: &[i16],
        mut emit: impl FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        self.a_to_b.pending.extend_from_slice(pcm);
        self.a_to_b.frames(&mut self.b, &mut emit)
    }

    /// [`Transcoder::pcm_a_to_b`] the other way: audio at `b`'s rate for `a`.
    pub fn pcm_b_to_a(
        &mut self,
        pcm: &[i16],
        mut emit: impl FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        self.b_to_a.pending.extend_from_slice(pcm);
        self.b_to_a.frames(&mut self.a, &mut emit)
    }

    /// Converts a payload leg `b` sent for leg `a` (see [`Transcoder::a_to_b`]).
    pub fn b_to_a(
        &mut self,
        payload: Option<&[u8]>,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<usize, TranscodeError> {
        self.b_to_a
            .run(&mut self.b, &mut self.a, payload, &mut emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_packet_times_are_reframed_to_20_ms() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
        let mut sizes = Vec::new();
        // 30 ms, 30 ms, 10 ms: 70 ms in, three 20 ms frames out, 10 ms kept.
        for len in [240, 240, 80] {
            t.a_to_b(Some(&vec![0xff; len]), |p| sizes.push(p.len()))
                .unwrap();
        }
        assert_eq!(sizes, [160, 160, 160]);
        t.a_to_b(Some(&[0xff; 80]), |p| sizes.push(p.len()))
            .unwrap();
        assert_eq!(sizes.len(), 4);
    }

    #[test]
    fn a_lost_g711_packet_emits_nothing_a_lost_opus_packet_is_concealed() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::opus(8000)).unwrap();
        assert_eq!(t.a_to_b(None, |_| {}).unwrap(), 0);
        let mut sizes = Vec::new();
        assert_eq!(t.b_to_a(None, |p| sizes.push(p.len())).unwrap(), 1);
        assert_eq!(sizes, [160]);
    }

    #[test]
    fn a_garbage_opus_packet_is_an_error_not_a_panic() {
        let mut t = Transcoder::new(Codec::opus(48000), Codec::Pcmu).unwrap();
        // TOC code 3 with a frame count of zero is invalid (RFC 6716 §3.2.5).
        let r = t.a_to_b(Some(&[0x03, 0x00]), |_| {});
        assert!(r.is_err(), "{r:?}");
        // The transcoder still works afterwards.
        assert_eq!(t.a_to_b(None, |_| {}).unwrap(), 1);
    }

    #[test]
    fn rtp_steps() {
        assert_eq!(Codec::Pcma.rtp_step(), 160);
        assert_eq!(Codec::opus(8000).rtp_step(), 960);
        assert_eq!(Codec::opus(16000).frame_len(), 320);
    }
}
