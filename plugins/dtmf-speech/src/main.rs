//! The DTMF speech services as a sidecar:
//!
//! ```text
//! sentiric-dtmf-speech-sidecar --listen 127.0.0.1:7446 --certs /etc/sentiric/certs
//! ```

fn main() -> std::process::ExitCode {
    sentiric_plugin_sdk::sidecar::main::<sentiric_plugin_dtmf_speech::DtmfSpeech>(env!(
        "CARGO_PKG_NAME"
    ))
}
