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
    let ty = type_name(name);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{type}}", &ty)
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

/// Rust's keywords, strict and reserved (2021 edition), and the crate
/// names a crate cannot take or its code could not tell from its own:
/// no library of these names compiles.
const RESERVED: [&str; 58] = [
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "sentiric_plugin_sdk",
    "union",
];

/// The names the template's code uses: a plugin type of one of these
/// names would shadow it.
const TEMPLATE_NAMES: [&str; 14] = [
    "Plugin",
    "Dialplan",
    "PluginError",
    "Call",
    "Action",
    "App",
    "Result",
    "Option",
    "Some",
    "Ok",
    "Err",
    "String",
    "ExitCode",
    "V1",
];

/// The plugin type's name for the crate `name`: its words capitalised
/// (`my-dialplan` → `MyDialplan`).
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A crate name cargo takes whose library and plugin type compile: a
/// Rust identifier once its dashes are underscores, not a keyword, its
/// type no name the template uses.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.ends_with(['-', '_'])
        && !RESERVED.contains(&name.replace('-', "_").as_str())
        && !TEMPLATE_NAMES.contains(&type_name(name).as_str());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a plugin's name is lower-case letters, digits, - and _, \
             beginning with a letter, neither a Rust keyword nor std, core or test, \
             nor a name the template uses (plugin, dialplan, call, result …) \
             (e.g. my-dialplan)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_and_rust_take() {
        for good in ["my-dialplan", "a", "trunk_2", "matcher", "plugin-two"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "My", "2x", "a b", "a-", "../x", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        // Keywords and crates no library may be named; names whose type
        // would shadow what the template's code uses.
        for bad in RESERVED.iter().chain(&[
            "plugin",
            "dialplan",
            "plugin-error",
            "call",
            "result",
            "ok",
            "v1",
            "sentiric-plugin-sdk",
        ]) {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(type_name("my-dialplan"), "MyDialplan");
        assert_eq!(type_name("trunk_2"), "Trunk2");
    }
}
