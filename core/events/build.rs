//! Generates the event types from `proto/sentiric/event/v1/events.proto`
//! with a vendored `protoc`, so a build needs nothing installed.

fn main() -> std::io::Result<()> {
    let proto_root = "../../proto";
    let file = "../../proto/sentiric/event/v1/events.proto";
    println!("cargo:rerun-if-changed={file}");
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // JSON for people (`sentiric events tail`) and for the JSON content
    // type, read back by `sentiric cdr`; protobuf on the wire by default.
    // A field a JSON producer leaves out takes its protobuf default.
    config.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    config.message_attribute(".", "#[serde(default)]");
    config.compile_protos(&[file], &[proto_root])
}
