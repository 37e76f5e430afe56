//! The voice agent as a sidecar:
//!
//! ```text
//! sentiric-voice-agent --listen 127.0.0.1:7448 --certs /etc/sentiric/certs \
//!     --config /etc/sentiric/voice-agent.toml
//! ```

fn main() -> std::process::ExitCode {
    sentiric_plugin_sdk::sidecar::main::<sentiric_plugin_voice_agent::VoiceAgent>(env!(
        "CARGO_PKG_NAME"
    ))
}
