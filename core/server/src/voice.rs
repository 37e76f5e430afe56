//! The codec the switch speaks where it makes or hears the audio itself
//! — a prompt, a conference room, `sentiric call` — rather than relaying
//! it: G.711, or Opus coded from and to 8 kHz audio.

use sentiric_media::g711::Law;
use sentiric_media::opus_codec::{OpusCodec, OpusConfig};

/// A codec: G.711 or Opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Voice {
    /// G.711, µ-law or A-law.
    G711(Law),
    /// Opus (RFC 7587), coded from and to 8 kHz audio.
    Opus,
}

impl Voice {
    /// Its name in SDP.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Voice::G711(Law::Ulaw) => "PCMU",
            Voice::G711(Law::Alaw) => "PCMA",
            Voice::Opus => "opus",
        }
    }

    /// RTP timestamp units per 20 ms.
    pub(crate) fn step(self) -> u32 {
        match self {
            Voice::G711(_) => 160,
            Voice::Opus => 960,
        }
    }
}

/// Encodes and decodes 20 ms of 8 kHz audio in a [`Voice`].
pub(crate) enum Coder {
    G711(Law),
    Opus(Box<OpusCodec>),
}

impl Coder {
    pub(crate) fn new(voice: Voice) -> Result<Coder, String> {
        Ok(match voice {
            Voice::G711(law) => Coder::G711(law),
            Voice::Opus => Coder::Opus(Box::new(
                OpusCodec::configured(OpusConfig::speech(8000, 24_000))
                    .map_err(|e| e.to_string())?,
            )),
        })
    }

    /// `pcm`'s payload in `out`; empty when the encoder refused it.
    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Coder::G711(law) => law.encode(pcm, out),
            Coder::Opus(c) => {
                if c.encode(pcm, out).is_err() {
                    out.clear();
                }
            }
        }
    }

    /// `payload`'s audio in `out`; empty when the decoder refused it.
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self {
            Coder::G711(law) => law.decode(payload, out),
            Coder::Opus(c) => {
                if c.decode(Some(payload), out).is_err() {
                    out.clear();
                }
            }
        }
    }
}
