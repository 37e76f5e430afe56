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

/// A scripted OpenAI-compatible chat server (streaming, tool calls) for
/// trying the voice agent without a model.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sentiric-scripted-llm",
    version,
    after_help = "Once it listens, standard output gets one line: `scripted LLM listening on http://ADDR/v1`. \
Exit status: 0 stopped by SIGTERM or SIGINT; 2 a wrong command line, script or address."
)]
struct Cli {
    /// Where it serves (port 0: the kernel's choice, printed)
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// The replies, a TOML file (see the module's doc)
    #[arg(long, value_name = "FILE")]
    script: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sentiric-scripted-llm: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let (listen, path) = (cli.listen, cli.script.display().to_string());
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
