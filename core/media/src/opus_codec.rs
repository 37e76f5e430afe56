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

/// How the encoder codes: the choice that sets both the sound and the
/// price of an Opus leg (see BENCHMARKS.md for both, per rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusMode {
    /// libopus's VoIP application: SILK (linear prediction) for speech at
    /// narrow and wide band, hybrid above. The better sound per bit.
    Speech,
    /// libopus's restricted-low-delay application: CELT (transform) only.
    /// Costs about half as much to encode, needs more bits for the same
    /// speech quality.
    LowDelay,
}

/// Encoder settings for one Opus leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Sample rate of the PCM side: 8000, 12000, 16000, 24000 or 48000.
    pub rate: u32,
    /// Target bits per second.
    pub bitrate: i32,
    /// Encoder complexity, 0–10 (libopus's default is 10).
    pub complexity: i32,
    /// Coding mode.
    pub mode: OpusMode,
    /// In-band forward error correction (SDP `useinbandfec=1`).
    pub fec: bool,
    /// Discontinuous transmission in silence (SDP `usedtx=1`).
    pub dtx: bool,
}

impl OpusConfig {
    /// Speech at `rate` Hz and `bitrate` b/s with libopus's defaults:
    /// SILK, complexity 10, no FEC, no DTX.
    pub fn speech(rate: u32, bitrate: i32) -> OpusConfig {
        OpusConfig {
            rate,
            bitrate,
            complexity: 10,
            mode: OpusMode::Speech,
            fec: false,
            dtx: false,
        }
    }

    /// The switch's profile for transcoded legs: SILK at complexity 1, at
    /// `rate` Hz with a bitrate that suits it (16 kb/s narrowband, 24 kb/s
    /// wideband, 32 kb/s above). Measured on speech (BENCHMARKS.md), SILK's
    /// spectral distortion at 8 kHz is the same at complexity 1 as at 10,
    /// for a third of the encoder's time; complexity 0 costs no less and
    /// codes a G.711-quantised tone 8 dB worse.
    pub fn dense(rate: u32) -> OpusConfig {
        let bitrate = match rate {
            0..=8000 => 16_000,
            8001..=16000 => 24_000,
            _ => 32_000,
        };
        OpusConfig {
            complexity: 1,
            ..OpusConfig::speech(rate, bitrate)
        }
    }
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
        Self::configured(OpusConfig::speech(rate, bitrate))
    }

    /// [`OpusCodec::new`] with an explicit encoder complexity (0–10).
    pub fn with_complexity(
        rate: u32,
        bitrate: i32,
        complexity: i32,
    ) -> Result<OpusCodec, OpusError> {
        Self::configured(OpusConfig {
            complexity,
            ..OpusConfig::speech(rate, bitrate)
        })
    }

    /// A codec with every encoder setting chosen.
    pub fn configured(config: OpusConfig) -> Result<OpusCodec, OpusError> {
        let application = match config.mode {
            OpusMode::Speech => opus::Application::Voip,
            OpusMode::LowDelay => opus::Application::LowDelay,
        };
        let mut encoder =
            opus::Encoder::new(config.rate, opus::Channels::Mono, application).map_err(err)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(config.bitrate))
            .map_err(err)?;
        encoder
            .set_complexity(config.complexity.clamp(0, 10))
            .map_err(err)?;
        encoder.set_inband_fec(config.fec).map_err(err)?;
        encoder.set_dtx(config.dtx).map_err(err)?;
        let decoder = opus::Decoder::new(config.rate, opus::Channels::Mono).map_err(err)?;
        Ok(OpusCodec {
            encoder,
            decoder,
            frame: (config.rate / 50) as usize,
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

    /// Decodes one packet (up to 120 ms, the most one Opus packet holds),
    /// or conceals a lost 20 ms (`None` or an empty packet), into `out`.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), OpusError> {
        let packet = packet.filter(|p| !p.is_empty());
        out.clear();
        out.resize(self.frame * if packet.is_some() { 6 } else { 1 }, 0);
        let n = self
            .decoder
            .decode(packet.unwrap_or(&[]), out, false)
            .map_err(err)?;
        out.truncate(n);
        Ok(())
    }
}
