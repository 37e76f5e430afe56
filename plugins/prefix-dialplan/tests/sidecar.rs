//! The example built as a sidecar (the `sentiric-prefix-dialplan-sidecar`
//! binary): reached over mTLS with the switch's certificate, it gives the
//! decisions the same plugin gives in process, and SIGTERM stops it.

use std::process::Command;
use std::time::Duration;

use sentiric_plugin_prefix_dialplan::PrefixDialplan;
use sentiric_plugin_sdk::sidecar::{DialplanClient, Spawned, Tls};
use sentiric_plugin_sdk::{v1, Plugin};

const ROUTES: &str = r#"
[[route]]
prefix = "+4930"
targets = ["sip:berlin@127.0.0.2", "sip:backup@127.0.0.3"]
[[route]]
prefix = "+49"
targets = ["sip:de@127.0.0.2"]
hours = "00:00-00:00"
closed_targets = ["sip:voicemail@127.0.0.4"]
[default]
code = 404
reason = "No Route"
"#;

#[test]
fn the_sidecar_binary_decides_as_the_plugin_in_process() {
    let dir = std::env::temp_dir().join(format!("sentiric-prefix-sidecar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = dir.join("certs");
    sentiric_plugin_sdk::certs::init(&certs).unwrap();
    std::fs::write(dir.join("routes.toml"), ROUTES).unwrap();
    let mut sidecar = Spawned::start(
        env!("CARGO_BIN_EXE_sentiric-prefix-dialplan-sidecar"),
        [
            std::ffi::OsStr::new("--certs"),
            certs.as_os_str(),
            std::ffi::OsStr::new("--config"),
            dir.join("routes.toml").as_os_str(),
        ],
    )
    .unwrap();
    assert!(
        sidecar
            .line()
            .starts_with("sidecar sentiric-plugin-prefix-dialplan listening on "),
        "{}",
        sidecar.line()
    );
    let addr = sidecar.addr();

    let plugin = PrefixDialplan::new(ROUTES).unwrap();
    let tls = Tls::from_files(
        &certs.join("ca.pem"),
        &certs.join("switch.pem"),
        &certs.join("switch-key.pem"),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = DialplanClient::connect(addr, "localhost", &tls, Duration::from_secs(5))
            .await
            .unwrap();
        for user in ["+4930123", "+4989", "0800", ""] {
            let request = v1::RouteRequest {
                user: user.into(),
                time_unix_us: 1_700_000_000_000_000,
                ..v1::RouteRequest::default()
            };
            let remote = client
                .route(request.clone(), Duration::from_secs(5))
                .await
                .unwrap();
            let local = plugin.dialplan().unwrap().route(&request).unwrap();
            assert_eq!(remote, local, "{user}");
        }
        // SIGTERM with the client still connected: the sidecar says
        // goodbye on the connection (the client answers) and exits
        // cleanly, well before its drain timeout.
        let killed = Command::new("kill")
            .arg(sidecar.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let t0 = std::time::Instant::now();
        let exited = tokio::task::spawn_blocking(move || sidecar.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exited.success(), "{exited:?}");
        assert!(t0.elapsed() < sentiric_plugin_sdk::sidecar::DRAIN);
        drop(client);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sidecar_binary_refuses_bad_arguments() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sentiric-prefix-dialplan-sidecar"))
            .args(args)
            .output()
            .unwrap()
    };
    for (args, says) in [
        (&[][..], "--listen <IP:PORT>"),
        (
            &["--listen", "nowhere"][..],
            "'nowhere' for '--listen <IP:PORT>'",
        ),
        (&["--listen", "127.0.0.1:0"][..], "--certs"),
        (&["--bogus", "1"][..], "unexpected argument '--bogus'"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
