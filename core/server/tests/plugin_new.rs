//! `sentiric plugin new` as a plugin author follows it: the crate made,
//! its tests passing, its library built and asked with `route-test`,
//! loaded by a switch configured as the guide (plugin-sdk/README.md)
//! writes it, answering calls through it, and its sidecar built apart
//! (the library carries no gRPC), run, and asked over mTLS.
//! Built with this tree's Cargo.lock and crates (offline), in a target
//! directory of its own under the workspace's.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{call, Switch};

fn sentiric(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sentiric"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

/// `cargo ARGS` in `dir`, offline, into `target`.
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO"))
        .arg(args[0])
        .arg("--offline")
        .args(&args[1..])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The guide's ```LANG block (as written, its list indentation taken
/// off) that begins with `first`.
fn guide_block(guide: &str, lang: &str, first: &str) -> String {
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start() != format!("```{lang}") {
            continue;
        }
        let block: String = lines
            .by_ref()
            .take_while(|l| l.trim_start() != "```")
            .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
            .collect();
        if block.starts_with(first) {
            return block;
        }
    }
    panic!("no ```{lang} block beginning {first:?} in the guide")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_new_plugin_builds_tests_routes_and_serves_as_made() {
    let parent = std::env::temp_dir().join(format!("sentiric-plugin-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let p = parent.display().to_string();
    let out = sentiric(&["plugin", "new", "my-dialplan", "--dir", &p]);
    assert!(out.status.success(), "{out:?}");
    let dir = parent.join("my-dialplan");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "src/main.rs",
        "tests/route.rs",
        "README.md",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // Never over what is there; a name cargo would refuse.
    let again = sentiric(&["plugin", "new", "my-dialplan", "--dir", &p]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = sentiric(&["plugin", "new", "My Plugin", "--dir", &p]);
    assert_eq!(bad.status.code(), Some(2));

    // The crates this tree builds with, from the local registry.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = workspace().join("target/plugin-new");
    // As an author's CI would hold it: formatted, no warnings.
    let fmt = Command::new("cargo")
        .args(["fmt", "--check"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "{}",
        String::from_utf8_lossy(&fmt.stdout)
    );
    cargo(
        &dir,
        &target,
        &["clippy", "--all-targets", "--", "-D", "warnings"],
    );
    let tested = cargo(&dir, &target, &["test"]);
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(said.contains("test result: ok. 3 passed"), "{said}");
    let built = cargo(&dir, &target, &["build"]);
    let said = String::from_utf8_lossy(&built.stderr);
    assert!(!said.contains("warning"), "{said}");
    let lib = target.join("debug/libmy_dialplan.so");
    let bytes = std::fs::read(&lib).unwrap();
    assert!(
        !bytes.windows(7).any(|w| w == b"tonic::"),
        "the library carries the sidecar's gRPC"
    );
    // Not even built: tonic and tokio are the sidecar feature's alone.
    for (features, built) in [(&[][..], false), (&["--features", "sidecar"][..], true)] {
        for dep in ["tonic", "tokio"] {
            let tree = Command::new(env!("CARGO"))
                .args(["tree", "--offline", "-e", "normal", "-i", dep])
                .args(features)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(&dir)
                .output()
                .unwrap();
            let (out, err) = (
                String::from_utf8_lossy(&tree.stdout),
                String::from_utf8_lossy(&tree.stderr),
            );
            if built {
                assert!(
                    out.contains(&format!("{dep} v")),
                    "{dep} {features:?}: {out}{err}"
                );
            } else {
                assert!(
                    err.contains("did not match any packages"),
                    "{dep}: {out}{err}"
                );
            }
        }
    }

    // route-test on the built library, as its README says.
    let conf = dir.join("trunk.conf");
    std::fs::write(&conf, "10.0.0.5:5060\n").unwrap();
    let (lib_s, conf_s) = (lib.display().to_string(), conf.display().to_string());
    let asked = sentiric(&[
        "route-test",
        "--plugin",
        &lib_s,
        "--config",
        &conf_s,
        "--user",
        "+4930123",
    ]);
    assert!(asked.status.success(), "{asked:?}");
    let v: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(
        v["decision"]["action"]["Bridge"]["targets"][0],
        "sip:+4930123@10.0.0.5:5060"
    );

    // A switch routing through it with the guide's configuration as
    // written (plugin-sdk/README.md, "Tell the switch to route through
    // it"): the plugin directory beside the config file, 600 its echo
    // test, the rest declined to the rules' 404.
    let guide = std::fs::read_to_string(workspace().join("plugin-sdk/README.md")).unwrap();
    let config = guide_block(&guide, "toml", "[plugins]\ndir = \"plugins\"\n");
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("plugins")).unwrap();
    std::fs::copy(&lib, site.join("plugins/libmy_dialplan.so")).unwrap();
    let sw = Switch::start_at(
        &site.join("switch.toml"),
        &config,
        &[
            ("SENTIRIC_RTP_IP", "127.0.0.1"),
            ("SENTIRIC_RTP_MIN_PORT", "34400"),
            ("SENTIRIC_RTP_MAX_PORT", "34599"),
        ],
    );
    assert_eq!(call(&sw, "600"), 200, "{:#?}", sw.log());
    assert_eq!(call(&sw, "0800"), 404, "declined: the switch's rules");
    // As the guide says it logs it.
    let loaded = sw.lines("plugin my-dialplan 0.1.0 loaded from ");
    assert!(
        loaded.len() == 1
            && loaded[0].contains("/site/plugins/libmy_dialplan.so (build id ")
            && loaded[0].contains("): dialplan"),
        "{:#?}",
        sw.log()
    );
    drop(sw);

    // The sidecar, built apart as the README says, run and asked.
    let sidecar_target = workspace().join("target/plugin-new-sidecar");
    let built = cargo(
        &dir,
        &sidecar_target,
        &[
            "build",
            "--features",
            "sidecar",
            "--bin",
            "my-dialplan-sidecar",
        ],
    );
    // Nothing of the SDK's warns in an author's build (a path dependency:
    // cargo shows its warnings), the gRPC and TLS half included.
    let said = String::from_utf8_lossy(&built.stderr);
    assert!(!said.contains("warning"), "{said}");
    // The guide's table for a sidecar, as written, is a config the
    // switch takes.
    let table = guide_block(&guide, "toml", "[plugins]\ndialplan = \"mine\"");
    std::fs::write(site.join("sidecar.toml"), &table).unwrap();
    let checked = sentiric(&[
        "check-config",
        &site.join("sidecar.toml").display().to_string(),
    ]);
    assert!(checked.status.success(), "{table}\n{checked:?}");
    let bin = sidecar_target.join("debug/my-dialplan-sidecar");
    let help = Command::new(&bin).arg("--help").output().unwrap();
    assert!(help.status.success(), "{help:?}");
    assert!(String::from_utf8_lossy(&help.stdout).contains("my-dialplan"));
    let certs = dir.join("certs").display().to_string();
    assert!(sentiric(&["certs", "init", &certs]).status.success());
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--certs",
            &certs,
            "--config",
            &conf_s,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("listening on ")
                .nth(1)
                .map(|a| a.trim().to_string())
        })
        .expect("the sidecar says where it listens");
    let asked = sentiric(&[
        "route-test",
        "--sidecar",
        &addr,
        "--certs",
        &certs,
        "--user",
        "600",
    ]);
    let _ = child.kill();
    let _ = child.wait();
    // Where it listens is said once, on standard output: not in its log
    // too (a switch running it shows both).
    let log = std::io::read_to_string(stderr).unwrap();
    assert!(!log.contains("listening"), "{log}");
    assert!(log.contains("connected (TLS 1.3, X25519MLKEM768)"), "{log}");
    assert!(asked.status.success(), "{asked:?}");
    let v: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert!(
        v["decision"]["action"]["Answer"]["app"]["Echo"].is_object(),
        "{v:#}"
    );
    let _ = std::fs::remove_dir_all(&parent);
}
