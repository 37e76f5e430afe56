//! Audio processing for the Sentiric switch, without IO: samples in,
//! samples out, on 16-bit linear PCM frames.
//!
//! | module | what |
//! |---|---|
//! | [`g711`] | ITU-T G.711 µ-law and A-law, table based |
//! | [`opus_codec`] | Opus (RFC 6716) at 8, 16 or 48 kHz through libopus |
//! | [`mixer`] | N-party mix-minus with saturation and a clip counter |
//! | [`resample`] | 8 / 16 / 48 kHz conversion on 20 ms frames (`rubato`) |
//! | [`transcode`] | any codec to any other, both ways, reframed to 20 ms |
//! | [`tone`] | sine and dual-tone generators: DTMF, ringback, beep |
//! | [`dtmf`] | in-band DTMF detection (Goertzel) |
//! | [`vad`] | voice activity (`earshot`) with minimum speech and hangover |
//! | [`wav`] | WAV prompts (played at the leg's rate) and recordings (mono or stereo) |
//! | [`agent`] | an agent call's audio: the caller as 16 kHz frames with speech start/stop, the agent's plays spoken at 8 kHz, stopped on barge-in |
#![forbid(unsafe_code)]

pub mod agent;
pub mod dtmf;
pub mod g711;
pub mod mixer;
pub mod opus_codec;
pub mod resample;
pub mod tone;
pub mod transcode;
pub mod vad;
pub mod wav;
