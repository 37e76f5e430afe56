//! WAV (RIFF, 16-bit PCM) for prompts and recordings, without IO: bytes
//! in, samples out and the other way round. The prompt player resamples a
//! file of 8, 16 or 48 kHz to the leg's rate, 20 ms at a time; the
//! recorder writes mono (one leg or a mix) or stereo (one leg per side).

use crate::resample::FrameResampler;

/// Why bytes are not a WAV file this switch plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavError {
    /// Not RIFF/WAVE, or a chunk runs past the end.
    NotWav,
    /// No `fmt ` or no `data` chunk.
    MissingChunk,
    /// Not 16-bit linear PCM, or not one or two channels.
    Unsupported,
}

impl std::fmt::Display for WavError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WavError::NotWav => "not a RIFF/WAVE file",
            WavError::MissingChunk => "WAV file without fmt or data chunk",
            WavError::Unsupported => "WAV file is not 16-bit PCM, mono or stereo",
        })
    }
}

impl std::error::Error for WavError {}

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Wav {
    /// Parses a RIFF/WAVE file of 16-bit PCM (format 1, or the
    /// extensible format carrying PCM); other chunks are skipped.
    pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::NotWav);
        }
        let mut at = 12;
        let mut fmt = None;
        let mut data = None;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let len = le32(bytes, at + 4) as usize;
            let body = bytes.get(at + 8..at + 8 + len).ok_or(WavError::NotWav)?;
            match id {
                b"fmt " if len >= 16 => fmt = Some(body),
                b"data" => data = Some(body),
                _ => {}
            }
            // Chunks are padded to an even length.
            at += 8 + len + (len & 1);
        }
        let (fmt, data) = (
            fmt.ok_or(WavError::MissingChunk)?,
            data.ok_or(WavError::MissingChunk)?,
        );
        let format = le16(fmt, 0);
        let channels = le16(fmt, 2);
        let sample_rate = le32(fmt, 4);
        let bits = le16(fmt, 14);
        let pcm = format == 1 || (format == 0xfffe && fmt.len() >= 26 && le16(fmt, 24) == 1);
        if !pcm || bits != 16 || !(1..=2).contains(&channels) || sample_rate == 0 {
            return Err(WavError::Unsupported);
        }
        let samples = data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(Wav {
            sample_rate,
            channels,
            samples,
        })
    }

    /// The file's bytes: a 44-byte header and the samples.
    pub fn to_bytes(&self) -> Vec<u8> {
        let data_len = (self.samples.len() * 2) as u32;
        let block = u32::from(self.channels) * 2;
        let mut v = Vec::with_capacity(44 + data_len as usize);
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&self.channels.to_le_bytes());
        v.extend_from_slice(&self.sample_rate.to_le_bytes());
        v.extend_from_slice(&(self.sample_rate * block).to_le_bytes());
        v.extend_from_slice(&(block as u16).to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        for s in &self.samples {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    }

    /// The samples as mono (stereo averaged).
    pub fn mono(&self) -> Vec<i16> {
        if self.channels == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(2)
            .map(|c| ((i32::from(c[0]) + i32::from(c[1])) / 2) as i16)
            .collect()
    }
}

/// Plays a prompt 20 ms at a time at the leg's rate.
#[derive(Debug)]
pub struct WavPlayer {
    samples: Vec<i16>,
    pos: usize,
    resampler: Option<FrameResampler>,
    in_frame: usize,
    out_frame: usize,
    scratch: Vec<i16>,
}

impl WavPlayer {
    /// A player of `wav` (mono, or stereo averaged) at `rate` Hz.
    pub fn new(wav: &Wav, rate: u32) -> Result<WavPlayer, crate::resample::ResampleError> {
        let resampler = (wav.sample_rate != rate)
            .then(|| FrameResampler::new(wav.sample_rate, rate))
            .transpose()?;
        Ok(WavPlayer {
            samples: wav.mono(),
            pos: 0,
            in_frame: (wav.sample_rate / 50) as usize,
            out_frame: (rate / 50) as usize,
            resampler,
            scratch: Vec::new(),
        })
    }

    /// The next 20 ms in `out`; `false` once the prompt is over (the
    /// last frame is padded with silence).
    pub fn next_frame(&mut self, out: &mut Vec<i16>) -> bool {
        if self.pos >= self.samples.len() {
            return false;
        }
        let end = (self.pos + self.in_frame).min(self.samples.len());
        let chunk = &self.samples[self.pos..end];
        self.pos = end;
        match self.resampler.as_mut() {
            Some(r) => {
                r.process(chunk, &mut self.scratch);
                out.clear();
                out.extend_from_slice(&self.scratch);
            }
            None => {
                out.clear();
                out.extend_from_slice(chunk);
                out.resize(self.out_frame, 0);
            }
        }
        true
    }
}

/// Records a call: mono (one signal) or stereo (one leg per side).
#[derive(Debug, Clone)]
pub struct WavRecorder {
    wav: Wav,
}

impl WavRecorder {
    /// A recorder at `rate` Hz with 1 or 2 channels.
    pub fn new(rate: u32, channels: u16) -> WavRecorder {
        WavRecorder {
            wav: Wav {
                sample_rate: rate,
                channels: channels.clamp(1, 2),
                samples: Vec::new(),
            },
        }
    }

    /// Appends one frame: `left` alone for mono; `left` and `right` (the
    /// two legs; a missing or short side is silence) for stereo.
    pub fn push(&mut self, left: &[i16], right: Option<&[i16]>) {
        if self.wav.channels == 1 {
            self.wav.samples.extend_from_slice(left);
            return;
        }
        let right = right.unwrap_or(&[]);
        let n = left.len().max(right.len());
        for k in 0..n {
            self.wav.samples.push(left.get(k).copied().unwrap_or(0));
            self.wav.samples.push(right.get(k).copied().unwrap_or(0));
        }
    }

    /// The recording so far, as a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.wav.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chunks() {
        let w = Wav {
            sample_rate: 16000,
            channels: 2,
            samples: vec![1, -1, 2, -2, 300, -300],
        };
        let mut b = w.to_bytes();
        assert_eq!(b.len(), 44 + 12);
        assert_eq!(Wav::parse(&b).unwrap(), w);
        assert_eq!(w.mono(), [0, 0, 0]);
        // An odd-sized LIST chunk before the data is skipped with its pad.
        let mut with_list = b[..36].to_vec();
        with_list.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        with_list.extend_from_slice(&b[36..]);
        assert_eq!(Wav::parse(&with_list).unwrap(), w);
        // Malformed.
        assert_eq!(Wav::parse(b"RIFF"), Err(WavError::NotWav));
        b[34] = 8; // 8-bit
        assert_eq!(Wav::parse(&b), Err(WavError::Unsupported));
        assert_eq!(Wav::parse(&b[..36]), Err(WavError::MissingChunk));
        let mut cut = w.to_bytes();
        cut.truncate(50);
        assert_eq!(Wav::parse(&cut), Err(WavError::NotWav));
    }

    #[test]
    fn player_and_recorder() {
        let prompt = Wav {
            sample_rate: 8000,
            channels: 1,
            samples: (0..400).map(|i| i as i16).collect(),
        };
        let mut p = WavPlayer::new(&prompt, 8000).unwrap();
        let mut frame = Vec::new();
        let mut frames = 0;
        let mut rec = WavRecorder::new(8000, 2);
        while p.next_frame(&mut frame) {
            assert_eq!(frame.len(), 160);
            rec.push(&frame, None);
            frames += 1;
        }
        assert_eq!(frames, 3, "400 samples: two frames and a padded third");
        let back = Wav::parse(&rec.to_bytes()).unwrap();
        assert_eq!(back.channels, 2);
        assert_eq!(back.samples.len(), 3 * 160 * 2);
        assert_eq!(&back.samples[..6], &[0, 0, 1, 0, 2, 0]);
        // At another rate, frames come out at the leg's size.
        let mut p = WavPlayer::new(&prompt, 16000).unwrap();
        assert!(p.next_frame(&mut frame));
        assert_eq!(frame.len(), 320);
    }
}
