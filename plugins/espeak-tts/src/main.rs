//! The espeak-ng speech synthesiser as a sidecar:
//!
//! ```text
//! sentiric-espeak-tts-sidecar --listen 127.0.0.1:7447 --certs /etc/sentiric/certs
//! ```

fn main() -> std::process::ExitCode {
    sentiric_plugin_sdk::sidecar::main::<sentiric_plugin_espeak_tts::Espeak>(env!("CARGO_PKG_NAME"))
}
