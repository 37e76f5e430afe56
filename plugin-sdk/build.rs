//! Generates the contract's types from `proto/sentiric/plugin/v1/plugin.proto`
//! with a vendored `protoc`, so a build needs nothing installed.

fn main() -> std::io::Result<()> {
    let proto_root = "../proto";
    let file = "../proto/sentiric/plugin/v1/plugin.proto";
    println!("cargo:rerun-if-changed={file}");
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // An agent's stream is mostly audio frames: its rare first message
    // (the whole call) boxed, so every frame is not its size.
    config.boxed(".sentiric.plugin.v1.CallInput.input.start");
    if std::env::var_os("CARGO_FEATURE_SERDE").is_some() {
        // JSON for people: `sentiric route-test` prints a decision so.
        config.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
        config.message_attribute(".", "#[serde(default)]");
    }
    if std::env::var_os("CARGO_FEATURE_SIDECAR").is_some() {
        // The services too, as tonic servers and clients.
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_with_config(config, &[file], &[proto_root])
    } else {
        config.compile_protos(&[file], &[proto_root])
    }
}
