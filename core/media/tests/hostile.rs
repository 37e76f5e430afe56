//! Untrusted bytes never panic the WAV reader.

use proptest::prelude::*;
use sentiric_media::wav::Wav;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Wav::parse(&b);
    }

    #[test]
    fn mutated_files(samples in prop::collection::vec(any::<i16>(), 0..50),
                     flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let w = Wav { sample_rate: 8000, channels: 1, samples };
        let mut b = w.to_bytes();
        prop_assert_eq!(Wav::parse(&b), Ok(w));
        for (i, x) in flips {
            let i = i.index(b.len());
            b[i] = x;
        }
        if let Ok(w) = Wav::parse(&b) {
            let _ = w.mono();
        }
    }
}
