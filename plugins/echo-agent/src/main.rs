//! The echo agent as a sidecar:
//!
//! ```text
//! sentiric-echo-agent-sidecar --listen 127.0.0.1:7445 --certs /etc/sentiric/certs
//! ```

fn main() -> std::process::ExitCode {
    sentiric_plugin_sdk::sidecar::main::<sentiric_plugin_echo_agent::EchoAgent>(env!(
        "CARGO_PKG_NAME"
    ))
}
