//! The prompts a dialplan plays, loaded once at start so that no call
//! waits on a file: WAV files (16-bit PCM, any of the rates the player
//! resamples), or the built-in ones, `builtin:NAME`, made from tones.

use std::collections::HashMap;
use std::sync::Arc;

use sentiric_engine::dialplan::StaticDialplan;
use sentiric_media::tone::Tone;
use sentiric_media::wav::Wav;

/// Prompts by the name the dialplan gives them (a call playing one
/// shares it).
pub(crate) type Prompts = Arc<HashMap<String, Arc<Wav>>>;

/// A built-in prompt: `announcement` (a three-note chime, then a long
/// tone) or `beep`.
fn builtin(name: &str) -> Option<Wav> {
    let rate = 8000;
    let mut samples = Vec::new();
    let mut push = |f: f64, ms: usize, dbfs: f64| {
        let mut buf = vec![0i16; rate as usize * ms / 1000];
        if f > 0.0 {
            Tone::new(f, 0.0, dbfs, rate).fill(&mut buf);
        }
        samples.extend_from_slice(&buf);
    };
    match name {
        "announcement" => {
            for f in [523.25, 659.25, 783.99] {
                push(f, 300, -14.0);
                push(0.0, 60, 0.0);
            }
            push(0.0, 300, 0.0);
            push(440.0, 1000, -16.0);
            push(0.0, 200, 0.0);
        }
        "beep" => push(1000.0, 250, -14.0),
        _ => return None,
    }
    Some(Wav {
        sample_rate: rate,
        channels: 1,
        samples,
    })
}

/// Loads every prompt `dialplan` can play; the error names the prompt.
pub(crate) fn load(dialplan: &StaticDialplan) -> Result<Prompts, String> {
    let mut out = HashMap::new();
    for name in dialplan.prompts() {
        let wav = match name.strip_prefix("builtin:") {
            Some(b) => builtin(b).ok_or_else(|| {
                format!("dialplan prompt {name:?}: no such built-in prompt (announcement, beep)")
            })?,
            None => {
                let bytes =
                    std::fs::read(name).map_err(|e| format!("dialplan prompt {name:?}: {e}"))?;
                let wav =
                    Wav::parse(&bytes).map_err(|e| format!("dialplan prompt {name:?}: {e:?}"))?;
                if wav.sample_rate % 50 != 0 || wav.samples.is_empty() {
                    return Err(format!(
                        "dialplan prompt {name:?}: {} Hz is not framed in 20 ms, or it is empty",
                        wav.sample_rate
                    ));
                }
                wav
            }
        };
        out.insert(name.to_string(), Arc::new(wav));
    }
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_prompts_exist_and_are_not_silent() {
        for name in ["announcement", "beep"] {
            let w = builtin(name).unwrap();
            assert!(w.samples.iter().any(|s| s.unsigned_abs() > 1000), "{name}");
        }
        assert!(builtin("nope").is_none());
    }
}
