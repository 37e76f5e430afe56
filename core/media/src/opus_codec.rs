//! Opus (RFC 6716) at 8, 16 or 48 kHz on 20 ms mono frames, through the
//! `opus` crate's bindings to the reference libopus (built from source by
//! `opusic-sys`; not the unmaintained `audiopus`). A lost packet is
//! decoded as `None`: libopus conceals it.

/// Why Opus refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusError(pub String);

impl std::fmt::Display for OpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "opus: {}", self.0)
    }
}

impl std::error::Error for OpusError {}

fn err(e: opus::Error) -> OpusError {
    OpusError(e.to_string())
}

/// An Opus encoder and decoder for one leg.
pub struct OpusCodec {
    encoder: opus::Encoder,
    decoder: opus::Decoder,
    frame: usize,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusCodec")
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

impl OpusCodec {
    /// A codec at `rate` Hz (8000, 12000, 16000, 24000 or 48000) for VoIP,
    /// encoding at `bitrate` bits per second with libopus's default
    /// complexity, 10. (Encoding time does not fall steadily with
    /// complexity: see BENCHMARKS.md before choosing another.)
    pub fn new(rate: u32, bitrate: i32) -> Result<OpusCodec, OpusError> {
        Self::with_complexity(rate, bitrate, 10)
    }

    /// [`OpusCodec::new`] with an explicit encoder complexity (0–10).
    pub fn with_complexity(
        rate: u32,
        bitrate: i32,
        complexity: i32,
    ) -> Result<OpusCodec, OpusError> {
        let mut encoder =
            opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip).map_err(err)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate))
            .map_err(err)?;
        encoder
            .set_complexity(complexity.clamp(0, 10))
            .map_err(err)?;
        let decoder = opus::Decoder::new(rate, opus::Channels::Mono).map_err(err)?;
        Ok(OpusCodec {
            encoder,
            decoder,
            frame: (rate / 50) as usize,
            packet: vec![0; 1500],
        })
    }

    /// Samples per 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// Encodes one 20 ms frame (`pcm` padded or cut to the frame) into `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), OpusError> {
        let n = if pcm.len() == self.frame {
            self.encoder.encode(pcm, &mut self.packet).map_err(err)?
        } else {
            let mut f = pcm.to_vec();
            f.resize(self.frame, 0);
            self.encoder.encode(&f, &mut self.packet).map_err(err)?
        };
        out.clear();
        out.extend_from_slice(&self.packet[..n]);
        Ok(())
    }

    /// Decodes one packet, or conceals a lost one (`None`), into `out`.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), OpusError> {
        out.clear();
        out.resize(self.frame, 0);
        let n = self
            .decoder
            .decode(packet.unwrap_or(&[]), out, false)
            .map_err(err)?;
        out.truncate(n);
        Ok(())
    }
}
