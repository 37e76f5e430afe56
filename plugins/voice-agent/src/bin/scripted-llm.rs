//! The scripted OpenAI-compatible server as a program: for trying the
//! voice agent without a model, and for its tests and benchmarks.
//!
//! ```text
//! sentiric-scripted-llm --listen 127.0.0.1:8089 --script script.toml
//! ```
//!
//! `script.toml` (see `sentiric_plugin_voice_agent::scripted`):
//!
//! ```toml
//! [[reply]]
//! when = "opening hours"          # found in the last message (any case)
//! chunks = ["We are open ", "from ten to four. "]
//! tools = [["hang_up", "{\"reason\": \"answered\"}"]]
//! first_token_ms = 0
//! [[reply]]                       # anything else
//! chunks = ["Sorry, could you say that again?"]
//! ```
//!
//! Once it listens, standard output gets one line:
//! `scripted LLM listening on http://ADDR/v1`.

use std::net::SocketAddr;

use sentiric_plugin_voice_agent::scripted::{Script, ScriptedLlm};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sentiric-scripted-llm: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut script) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag}: needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {value}: {e}"))?,
                )
            }
            "--script" => script = Some(value),
            other => return Err(format!("{other}: unknown option")),
        }
    }
    let listen = listen.ok_or("--listen ADDR is needed")?;
    let path = script.ok_or("--script FILE is needed")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let script: Script = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = ScriptedLlm::start(listen, script)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        println!("scripted LLM listening on {}", server.base_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
