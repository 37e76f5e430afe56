//! Sample-rate conversion between 8, 16 and 48 kHz on 20 ms frames, with
//! `rubato`'s synchronous FFT resampler (anti-aliased, fixed ratio): a
//! frame in, a frame out, no allocation per frame.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Why a resampler could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResampleError(pub String);

impl std::fmt::Display for ResampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resampler: {}", self.0)
    }
}

impl std::error::Error for ResampleError {}

/// Converts 20 ms frames of mono 16-bit PCM from one rate to another.
pub struct FrameResampler {
    inner: Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    in_frame: usize,
    out_frame: usize,
}

impl std::fmt::Debug for FrameResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameResampler")
            .field("in_frame", &self.in_frame)
            .field("out_frame", &self.out_frame)
            .finish_non_exhaustive()
    }
}

impl FrameResampler {
    /// A resampler from `in_rate` to `out_rate` Hz (each a multiple of 50,
    /// so that 20 ms is a whole number of samples).
    pub fn new(in_rate: u32, out_rate: u32) -> Result<FrameResampler, ResampleError> {
        if in_rate % 50 != 0 || out_rate % 50 != 0 || in_rate == 0 || out_rate == 0 {
            return Err(ResampleError(format!(
                "{in_rate} -> {out_rate} Hz is not 20 ms framed"
            )));
        }
        let in_frame = (in_rate / 50) as usize;
        let out_frame = (out_rate / 50) as usize;
        let inner = Fft::<f32>::new(
            in_rate as usize,
            out_rate as usize,
            in_frame,
            1,
            FixedSync::Both,
        )
        .map_err(|e| ResampleError(e.to_string()))?;
        if inner.input_frames_next() != in_frame || inner.output_frames_next() != out_frame {
            return Err(ResampleError(format!(
                "chunks of {} -> {} frames, not {in_frame} -> {out_frame}",
                inner.input_frames_next(),
                inner.output_frames_next()
            )));
        }
        Ok(FrameResampler {
            inner,
            input: vec![0.0; in_frame],
            output: vec![0.0; out_frame],
            in_frame,
            out_frame,
        })
    }

    /// Samples per input frame.
    pub fn input_len(&self) -> usize {
        self.in_frame
    }

    /// Samples per output frame.
    pub fn output_len(&self) -> usize {
        self.out_frame
    }

    /// Output samples of delay the conversion adds.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Converts one frame; `input` shorter than a frame is padded with
    /// silence, longer is cut. `out` is cleared and filled with one frame.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        for (d, s) in self
            .input
            .iter_mut()
            .zip(input.iter().chain(std::iter::repeat(&0)))
        {
            *d = f32::from(*s) / 32768.0;
        }
        out.clear();
        let written = match (
            InterleavedSlice::new(&self.input, 1, self.in_frame),
            InterleavedSlice::new_mut(&mut self.output, 1, self.out_frame),
        ) {
            (Ok(i), Ok(mut o)) => self
                .inner
                .process_into_buffer(&i, &mut o, None)
                .map_or(0, |(_, w)| w),
            _ => 0,
        };
        out.extend(
            self.output[..written]
                .iter()
                .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        out.resize(self.out_frame, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        for (a, b) in [
            (8000, 16000),
            (16000, 8000),
            (8000, 48000),
            (48000, 8000),
            (16000, 48000),
            (48000, 16000),
        ] {
            let r = FrameResampler::new(a, b).unwrap();
            assert_eq!(
                (r.input_len(), r.output_len()),
                ((a / 50) as usize, (b / 50) as usize)
            );
        }
        assert!(FrameResampler::new(8000, 44_123).is_err());
    }
}
