//! The command lines as a person meets them: every `--help` on standard
//! output with exit status 0 and nothing done, unknown flags named with
//! exit status 2, completions and a man page from the same definition,
//! and `events tail` / `cdr list` finding (or saying they cannot find)
//! what the switch with the same `--config` writes — from any directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sentiric() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentiric"))
}

/// A fresh, empty directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentiric-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A binary built beside this test (the sidecars of the plugin crates).
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}

/// A child killed when dropped: a test that fails leaves nothing running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd`'s output, or a failure if it has not ended within 10 s (a
/// command that should refuse at once and does not would hang the test).
fn within_10s(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let end = Instant::now() + Duration::from_secs(10);
    while running.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "{cmd:?} still running after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    use std::io::Read as _;
    running
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    running
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut err)
        .unwrap();
    Output {
        status: running.0.wait().unwrap(),
        stdout: out,
        stderr: err,
    }
}

/// `args` run in `cwd`, which must be left as it was (empty).
fn in_empty(cwd: &Path, mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).current_dir(cwd);
    let out = within_10s(cmd);
    assert_eq!(
        entries(cwd),
        Vec::<String>::new(),
        "{args:?} wrote into the working directory"
    );
    out
}

#[test]
fn every_help_is_on_standard_output_and_does_nothing() {
    let cwd = scratch("help");
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["check-config"],
        &["call"],
        &["events"],
        &["events", "tail"],
        &["cdr"],
        &["cdr", "list"],
        &["certs"],
        &["certs", "init"],
        &["completions"],
        &["man"],
    ];
    for sub in commands {
        for help in ["--help", "-h"] {
            let mut args = sub.to_vec();
            args.push(help);
            let out = in_empty(&cwd, sentiric(), &args);
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert!(stdout.contains("Usage: sentiric"), "{args:?}: {stdout}");
            assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
        }
        // The help of each subcommand is its own: it names it.
        if let Some(last) = sub.last() {
            let out = sentiric().args(*sub).arg("--help").output().unwrap();
            let usage = text(&out.stdout);
            let usage = usage.lines().find(|l| l.starts_with("Usage:")).unwrap();
            assert!(usage.contains(last), "{sub:?}: {usage}");
        }
    }
    // Options are there, with what they take.
    let out = sentiric().args(["call", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    for want in [
        "--play <FILE.wav>",
        "--record <FILE.wav>",
        "--codec <CODEC>",
        "pcmu",
        "Exit status",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    let out = sentiric().args(["run", "--help"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("--http-listen <IP:PORT>"),
        "{}",
        text(&out.stdout)
    );

    let out = in_empty(&cwd, sentiric(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("sentiric {}", env!("CARGO_PKG_VERSION"))
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn a_wrong_command_line_is_named_with_exit_status_2() {
    let cwd = scratch("wrong");
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--bogus"], "--bogus"),
        (&["run", "--listen", "127.0.0.1"], "IP:PORT expected"),
        (
            &["run", "--http-listen", "localhost:9060"],
            "IP:PORT expected",
        ),
        (&["frobnicate"], "frobnicate"),
        (&["check-config"], "<FILE>"),
        (&["call"], "<URI>"),
        (&["call", "sip:a@127.0.0.1", "--codec", "g729"], "g729"),
        (&["call", "sip:a@127.0.0.1", "--dtmf", "12x"], "'x'"),
        (&["cdr", "list", "-n", "-1"], "-1"),
        (&["cdr", "list", "-n", "0"], "0"),
        (&["events", "tail", "-n", "many"], "many"),
        (&["certs", "init"], "<DIR>"),
        (&["completions", "cmd"], "cmd"),
    ];
    for (args, named) in cases {
        let out = in_empty(&cwd, sentiric(), args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error:") && stderr.contains(named),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A near miss gets a suggestion.
    let out = sentiric().args(["run", "--confg", "x"]).output().unwrap();
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn completions_and_the_man_page_come_from_the_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = sentiric().args(["completions", shell]).output().unwrap();
        let script = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        for word in ["check-config", "http-listen", "record"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let out = sentiric().arg("man").output().unwrap();
    let page = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{page:.200}"
    );
    assert!(page.contains(".TH sentiric 1"), "{page:.400}");
    assert!(page.contains("check\\-config"), "{page}");
}

#[test]
fn the_sidecar_binaries_answer_help_and_version() {
    for name in [
        "sentiric-echo-agent-sidecar",
        "sentiric-dtmf-speech-sidecar",
        "sentiric-prefix-dialplan-sidecar",
        "sentiric-espeak-tts-sidecar",
        "sentiric-voice-agent",
    ] {
        let cwd = scratch(name);
        let out = in_empty(&cwd, Command::new(built(name)), &["--help"]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(help.contains(&format!("Usage: {name}")), "{name}: {help}");
        for want in ["--listen <IP:PORT>", "--certs <DIR>", "--config <FILE>"] {
            assert!(help.contains(want), "{name}: {want}: {help}");
        }
        let out = in_empty(&cwd, Command::new(built(name)), &["--version"]);
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(
            text(&out.stdout).starts_with(name),
            "{name}: {}",
            text(&out.stdout)
        );
        let out = in_empty(
            &cwd,
            Command::new(built(name)),
            &["--listen", "127.0.0.1:0", "--bogus"],
        );
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains("--bogus"),
            "{name}: {}",
            text(&out.stderr)
        );
        // Run with nothing: what it needs, and its usage.
        let out = in_empty(&cwd, Command::new(built(name)), &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains("--listen") && text(&out.stderr).contains("Usage:"),
            "{name}: {}",
            text(&out.stderr)
        );
        // No certificates: said, not a panic.
        let out = in_empty(
            &cwd,
            Command::new(built(name)),
            &["--listen", "127.0.0.1:0"],
        );
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains("--certs"),
            "{name}: {}",
            text(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&cwd);
    }
    let name = "sentiric-scripted-llm";
    let out = Command::new(built(name)).arg("--help").output().unwrap();
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        help.contains("--listen <IP:PORT>") && help.contains("--script"),
        "{help}"
    );
    let out = Command::new(built(name)).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with(name), "{}", text(&out.stdout));
}

#[test]
fn certs_init_makes_what_it_says_where_it_is_told() {
    let cwd = scratch("certs");
    let out = sentiric()
        .args(["certs", "init", "made"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut files = entries(&cwd.join("made"));
    files.sort();
    assert!(files.contains(&"ca.pem".to_string()), "{files:?}");
    assert_eq!(entries(&cwd), vec!["made".to_string()]);
    let _ = std::fs::remove_dir_all(&cwd);
}

/// A config file in its own directory naming relative paths, read by
/// commands run from another directory.
fn config_elsewhere(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let root = scratch(name);
    let (conf_dir, cwd) = (root.join("etc"), root.join("elsewhere"));
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let file = conf_dir.join("sentiric.toml");
    std::fs::write(
        &file,
        "[events]\noutbox = \"outbox\"\n[cdr]\ndatabase = \"sqlite://cdr.db?mode=rwc\"\n",
    )
    .unwrap();
    (root, file, cwd)
}

#[test]
fn cdr_list_reads_the_configs_database_and_never_makes_one() {
    let (root, file, cwd) = config_elsewhere("cdr");
    let out = sentiric()
        .args(["cdr", "list", "--config"])
        .arg(&file)
        .current_dir(&cwd)
        .env_remove("SENTIRIC_CDR_DATABASE")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = root.join("etc").join("cdr.db");
    assert!(
        stderr.contains(&format!("no CDR database at {}", want.display())),
        "{stderr}"
    );
    assert!(!want.exists(), "cdr list made {}", want.display());
    assert_eq!(entries(&cwd), Vec::<String>::new());
    // Without --config: the working directory's, and said so.
    let out = sentiric()
        .args(["cdr", "list"])
        .current_dir(&cwd)
        .env_remove("SENTIRIC_CDR_DATABASE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(entries(&cwd), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&root);
}

/// One event, encoded as the switch writes it.
fn event(call_id: &str) -> Vec<u8> {
    use prost::Message as _;
    sentiric_events::v1::Event {
        call_id: call_id.to_string(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn events_tail_finds_the_configs_outbox_and_follows_it() {
    let (root, file, cwd) = config_elsewhere("tail");
    let tail = |extra: &[&str]| {
        let mut c = sentiric();
        c.args(["events", "tail", "--config"])
            .arg(&file)
            .args(extra)
            .current_dir(&cwd)
            .env_remove("SENTIRIC_EVENTS_OUTBOX");
        c
    };
    // Nothing there yet: said, naming where it looked.
    let out = tail(&[]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let outbox = root.join("etc").join("outbox");
    assert!(
        stderr.contains(&format!("no event outbox at {}", outbox.display())),
        "{stderr}"
    );

    // A directory that holds no outbox is said to, too.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sentiric()
        .args(["events", "tail", "--dir"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no event outbox at"),
        "{}",
        text(&out.stderr)
    );

    let (mut writer, _) =
        sentiric_events::outbox::Outbox::open(sentiric_events::outbox::OutboxConfig::new(&outbox))
            .unwrap();
    for i in 0..5 {
        writer.append(&event(&format!("before-{i}"))).unwrap();
    }
    writer.write().unwrap();
    let out = tail(&["-n", "2"]).output().unwrap();
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("before-3") && lines[1].contains("before-4"),
        "{lines:?}"
    );

    // -f: the last one, then each as it is written.
    let mut follower = Running(
        tail(&["-n", "1", "-f"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = follower.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(first.contains("before-4"), "{first}");
    for i in 0..3 {
        writer.append(&event(&format!("after-{i}"))).unwrap();
        writer.write().unwrap();
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut followed = Vec::new();
    while followed.len() < 3 && Instant::now() < end {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            followed.push(l);
        }
    }
    drop(follower);
    assert_eq!(followed.len(), 3, "{followed:?}");
    for (i, l) in followed.iter().enumerate() {
        assert!(l.contains(&format!("after-{i}")), "{followed:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_taken_address_is_named_with_its_key() {
    let cwd = scratch("bind");
    let taken_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cases = [
        (
            vec![
                "--listen".to_string(),
                "127.0.0.1:0".to_string(),
                "--http-listen".to_string(),
                taken_tcp.local_addr().unwrap().to_string(),
            ],
            format!(
                "health and metrics on {} ([http] listen or --http-listen): ",
                taken_tcp.local_addr().unwrap()
            ),
        ),
        (
            vec![
                "--listen".to_string(),
                taken_udp.local_addr().unwrap().to_string(),
            ],
            format!(
                "SIP over UDP on {} ([sip] listen or --listen): ",
                taken_udp.local_addr().unwrap()
            ),
        ),
    ];
    for (args, says) in cases {
        let mut cmd = sentiric();
        cmd.arg("run").args(&args).current_dir(&cwd);
        let out = within_10s(cmd);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&says), "{args:?}: {stderr}");
        assert!(stderr.contains("in use"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn a_path_in_the_config_the_switch_cannot_use_is_a_config_error() {
    let out = within_10s({
        let mut cmd = sentiric();
        cmd.args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("SENTIRIC_EVENTS_OUTBOX", "/proc/sentiric-nope/outbox");
        cmd
    });
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[events] outbox = \"/proc/sentiric-nope/outbox\""),
        "{stderr}"
    );
}

#[test]
fn check_config_says_where_a_bad_value_came_from() {
    let dir = scratch("check");
    let file = dir.join("s.toml");
    std::fs::write(&file, "[sip]\nworkers = 1\nlistne = \"127.0.0.1:5060\"\n").unwrap();
    let out = sentiric().arg("check-config").arg(&file).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sip.listne: unknown field"), "{stderr}");
    assert!(
        stderr.contains("did you mean `listen`? (line 3, column 1)"),
        "{stderr}"
    );

    std::fs::write(&file, "[sip]\nworkers = 1\n").unwrap();
    let out = sentiric()
        .arg("check-config")
        .arg(&file)
        .env("SENTIRIC_SIP_LISTNE", "127.0.0.1:5060")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SENTIRIC_SIP_LISTNE in the environment"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean SENTIRIC_SIP_LISTEN?"),
        "{stderr}"
    );
    let out = sentiric().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{}: ok", file.display()));
    let _ = std::fs::remove_dir_all(&dir);
}
