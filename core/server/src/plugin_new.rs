//! `sentiric plugin new NAME`: a dialplan plugin crate to start from —
//! the library the switch loads, the same plugin as a sidecar binary
//! behind the crate's own `sidecar` feature (so the library carries no
//! gRPC), tests that ask it as the switch would
//! ([`sentiric_plugin_sdk::testing::Call`]), and a README with the
//! commands. The SDK is a path dependency on this source tree's
//! `plugin-sdk` (or `--sdk`).

use std::path::{Path, PathBuf};

/// The template's files: where each goes, and its text.
const FILES: [(&str, &str); 5] = [
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.in"),
    ),
    ("src/lib.rs", include_str!("../templates/plugin/lib.rs.in")),
    (
        "src/main.rs",
        include_str!("../templates/plugin/main.rs.in"),
    ),
    (
        "tests/route.rs",
        include_str!("../templates/plugin/route.rs.in"),
    ),
    (
        "README.md",
        include_str!("../templates/plugin/README.md.in"),
    ),
];

/// Where this binary's source tree had the SDK when it was built.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugin-sdk");

/// Makes the crate `name` in `parent` (with the SDK at `sdk`, or this
/// tree's); the files it wrote.
pub(crate) fn run(name: &str, parent: &Path, sdk: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    let sdk = match sdk {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(BUILT_SDK),
    };
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            format!(
                "no plugin SDK at {} (its Cargo.toml): give --sdk PATH/TO/sentiric/plugin-sdk",
                sdk.display()
            )
        })?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(format!("{} exists already: nothing written", dir.display()));
    }
    let crate_name = name.replace('-', "_");
    let type_name: String = name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let mut written = Vec::new();
    for (path, text) in FILES.iter().chain([(".gitignore", "/target\n")].iter()) {
        let file = dir.join(path);
        if let Some(d) = file.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&file, fill(text)).map_err(|e| format!("{}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// Names cargo refuses for a crate or Rust for its library's name.
const RESERVED: [&str; 20] = [
    "as", "async", "crate", "core", "enum", "extern", "fn", "impl", "let", "loop", "mod", "move",
    "pub", "ref", "self", "std", "struct", "super", "test", "type",
];

/// A crate name cargo takes, that is a Rust identifier once its dashes
/// are underscores.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.ends_with(['-', '_'])
        && !RESERVED.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a plugin's name is lower-case letters, digits, - and _, \
             beginning with a letter, not a Rust keyword, std, core or test \
             (e.g. my-dialplan)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_and_rust_take() {
        for good in ["my-dialplan", "a", "trunk_2"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "My", "2x", "a b", "a-", "../x", "é", "self", "test"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
