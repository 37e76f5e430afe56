//! The prefix dialplan as a sidecar: the same plugin the cdylib exports,
//! served over gRPC with mTLS.
//!
//! ```text
//! sentiric-prefix-dialplan-sidecar --listen 127.0.0.1:7443 \
//!     --certs /etc/sentiric/certs --config routes.toml
//! ```

fn main() -> std::process::ExitCode {
    sentiric_plugin_sdk::sidecar::main::<sentiric_plugin_prefix_dialplan::PrefixDialplan>(env!(
        "CARGO_PKG_NAME"
    ))
}
