//! N-party mix-minus: each participant hears the sum of everyone but
//! itself — for conferences, and for whisper and barge (a participant
//! who hears but is not heard is one whose input is left out).

/// Mixes one frame for every participant.
#[derive(Debug, Default)]
pub struct MixMinus {
    sum: Vec<i32>,
    clipped: u64,
}

impl MixMinus {
    /// A mixer; its working buffer grows to the largest frame seen.
    pub fn new() -> Self {
        MixMinus::default()
    }

    /// Samples saturated to the 16-bit range since the mixer was made.
    pub fn clipped(&self) -> u64 {
        self.clipped
    }

    /// Mixes one frame. `inputs[i]` is participant i's frame (`None`
    /// when it is silent or only listens); `outputs[i]` receives the sum of
    /// every other input, saturated to 16 bits. All frames have the
    /// length of `outputs[0]`; shorter inputs count as zero-padded.
    ///
    /// # Panics
    /// When `inputs` and `outputs` differ in count or outputs in length.
    pub fn mix(&mut self, inputs: &[Option<&[i16]>], outputs: &mut [Vec<i16>]) {
        assert_eq!(inputs.len(), outputs.len(), "one output per input");
        let len = outputs.first().map_or(0, Vec::len);
        assert!(
            outputs.iter().all(|o| o.len() == len),
            "equal frame lengths"
        );
        self.sum.clear();
        self.sum.resize(len, 0);
        for input in inputs.iter().flatten() {
            for (acc, &s) in self.sum.iter_mut().zip(input.iter()) {
                *acc += i32::from(s);
            }
        }
        for (input, out) in inputs.iter().zip(outputs.iter_mut()) {
            let own = input.unwrap_or(&[]);
            for (k, o) in out.iter_mut().enumerate() {
                let v = self.sum[k] - i32::from(own.get(k).copied().unwrap_or(0));
                let c = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
                self.clipped += u64::from(c != v);
                *o = c as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_but_self_exactly() {
        let a = [100i16, -200, 300, 0];
        let b = [1i16, 2, 3, 4];
        let c = [-50i16, 50, -50, 50];
        let mut out = vec![vec![0i16; 4]; 4];
        let mut m = MixMinus::new();
        // The fourth participant only listens.
        m.mix(&[Some(&a), Some(&b), Some(&c), None], &mut out);
        for k in 0..4 {
            assert_eq!(out[0][k], b[k] + c[k]);
            assert_eq!(out[1][k], a[k] + c[k]);
            assert_eq!(out[2][k], a[k] + b[k]);
            assert_eq!(out[3][k], a[k] + b[k] + c[k]);
        }
        assert_eq!(m.clipped(), 0);
    }

    #[test]
    fn saturates_and_counts() {
        let loud = [30_000i16; 3];
        let mut out = vec![vec![0i16; 3]; 3];
        let mut m = MixMinus::new();
        m.mix(&[Some(&loud), Some(&loud), Some(&loud)], &mut out);
        assert!(out.iter().all(|o| o.iter().all(|&s| s == i16::MAX)));
        assert_eq!(m.clipped(), 9);
        // A short input counts as padded with silence.
        let short = [1000i16];
        let mut out = vec![vec![0i16; 3]; 2];
        m.mix(&[Some(&short), Some(&[5, 5, 5])], &mut out);
        assert_eq!(out[0], [5, 5, 5]);
        assert_eq!(out[1], [1000, 0, 0]);
    }
}
