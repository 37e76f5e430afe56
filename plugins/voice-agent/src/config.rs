//! The voice agent's configuration: its `--config` TOML file for what is
//! the same for every call (the LLM endpoint, the speech sidecars,
//! webhooks, what to do when a speech service is down), and the route's
//! parameters for what may differ per call (prompt, greeting, voice,
//! language, tools).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The `--config` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The chat-completions endpoint.
    pub llm: LlmConfig,
    /// The speech-to-text sidecar.
    pub stt: SidecarConfig,
    /// The text-to-speech sidecar.
    pub tts: SidecarConfig,
    /// The client certificate the agent shows the speech sidecars.
    pub speech_tls: SpeechTls,
    /// Per-call settings unless the route's parameters say otherwise.
    #[serde(default)]
    pub defaults: CallSettings,
    /// HTTP webhooks the LLM may call, by tool name.
    #[serde(default)]
    pub webhooks: BTreeMap<String, Webhook>,
    /// What a call does when a speech service fails.
    #[serde(default)]
    pub failure: Failure,
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Up to the version, e.g. `http://127.0.0.1:8080/v1`:
    /// `/chat/completions` is added.
    pub base_url: String,
    /// The model's name, as the endpoint knows it.
    pub model: String,
    /// The environment variable that holds the API key (sent as a bearer
    /// token; never logged). None: no key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Or a file that holds it (its first line).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// The longest an answer may take to begin, ms.
    #[serde(default = "default_llm_timeout_ms")]
    pub timeout_ms: u64,
    /// At most this many tokens an answer (0: the endpoint's default).
    #[serde(default)]
    pub max_tokens: u32,
    /// Sampling temperature (none: the endpoint's default).
    #[serde(default)]
    pub temperature: Option<f32>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where the key comes from, never the key.
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("api_key_file", &self.api_key_file)
            .finish_non_exhaustive()
    }
}

fn default_llm_timeout_ms() -> u64 {
    30_000
}

/// A speech sidecar.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    /// Where it listens.
    pub address: SocketAddr,
    /// The name its certificate carries.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// How long a connection may take, ms.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
}

fn default_server_name() -> String {
    "localhost".into()
}

fn default_connect_ms() -> u64 {
    2_000
}

/// PEM files for the agent's side of mTLS with the speech sidecars.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechTls {
    /// A directory with `ca.pem`, `switch.pem` and `switch-key.pem` (as
    /// `sentiric certs init` makes them): the agent is the sidecars'
    /// client, as the switch is.
    #[serde(default)]
    pub certs: Option<PathBuf>,
    /// Or each file.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The client certificate.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its key.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// One call's settings: `[defaults]` in the file, with the route's
/// parameters over them for a call ([`CallSettings::new`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallSettings {
    /// The system prompt.
    pub system_prompt: String,
    /// Said when the call is answered (empty: the agent waits for the
    /// caller).
    pub greeting: String,
    /// The TTS voice (empty: the synthesiser's default).
    pub voice: String,
    /// The language, for STT and TTS (e.g. `en`).
    pub language: String,
    /// Words the caller is likely to say, handed to the recogniser with
    /// the audio (its `prompt` parameter: Whisper's initial prompt) —
    /// e.g. "A caller phones a restaurant to book a table." Empty: none.
    pub stt_prompt: String,
    /// The tools the LLM is offered: `hang_up`, `transfer`, `send_dtmf`,
    /// `set_cdr_tags`, and webhook names.
    pub tools: Vec<String>,
    /// URIs (prefixes) the `transfer` tool may send a call to; empty:
    /// none.
    pub transfer_allow: Vec<String>,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            system_prompt: "You are a helpful voice assistant on a phone call. Answer in one or \
                            two short sentences."
                .into(),
            greeting: String::new(),
            voice: String::new(),
            language: "en".into(),
            stt_prompt: String::new(),
            tools: vec!["hang_up".into()],
            transfer_allow: Vec::new(),
        }
    }
}

/// A webhook tool: the LLM's arguments POSTed as JSON, the answer's body
/// handed back to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://`.
    pub url: String,
    /// What it does, for the LLM.
    pub description: String,
    /// Its arguments as a JSON Schema object, as JSON text (default: no
    /// arguments).
    #[serde(default)]
    pub parameters: Option<String>,
    /// The environment variable holding a bearer token for it (never
    /// logged).
    #[serde(default)]
    pub token_env: Option<String>,
    /// How long it may take, ms.
    #[serde(default = "default_webhook_ms")]
    pub timeout_ms: u64,
}

fn default_webhook_ms() -> u64 {
    3_000
}

/// When STT or TTS fails during a call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Failure {
    /// A WAV file (16-bit PCM, mono or stereo, any rate) played to the
    /// caller before the call ends or is transferred.
    pub apology_wav: Option<PathBuf>,
    /// A SIP URI the call is transferred to instead of hung up.
    pub transfer_to: Option<String>,
}

impl CallSettings {
    /// `defaults` with `params` (`system_prompt`, `greeting`, `voice`,
    /// `language`, `stt_prompt`, `tools` and `transfer_allow` as
    /// comma-separated lists) over them.
    pub fn new(defaults: &CallSettings, params: &HashMap<String, String>) -> CallSettings {
        let text = |k: &str, d: &String| params.get(k).cloned().unwrap_or_else(|| d.clone());
        let list = |k: &str, d: &Vec<String>| match params.get(k) {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => d.clone(),
        };
        CallSettings {
            system_prompt: text("system_prompt", &defaults.system_prompt),
            greeting: text("greeting", &defaults.greeting),
            voice: text("voice", &defaults.voice),
            language: text("language", &defaults.language),
            stt_prompt: text("stt_prompt", &defaults.stt_prompt),
            tools: list("tools", &defaults.tools),
            transfer_allow: list("transfer_allow", &defaults.transfer_allow),
        }
    }
}

impl Config {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, w) in &config.webhooks {
            if BUILT_IN_TOOLS.contains(&name.as_str()) {
                return Err(format!("webhook {name}: a built-in tool's name"));
            }
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!("webhook {name}: url must be http:// or https://"));
            }
            if let Some(p) = &w.parameters {
                serde_json::from_str::<serde_json::Value>(p)
                    .map_err(|e| format!("webhook {name}: parameters: {e}"))?;
            }
        }
        for t in &config.defaults.tools {
            if !BUILT_IN_TOOLS.contains(&t.as_str()) && !config.webhooks.contains_key(t) {
                return Err(format!("defaults.tools: {t}: no such tool"));
            }
        }
        Ok(config)
    }

    /// The API key, from where the configuration says; `None` without one.
    pub fn api_key(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.llm.api_key_env {
            return std::env::var(var)
                .map(Some)
                .map_err(|_| format!("llm.api_key_env: {var} is not set"));
        }
        if let Some(path) = &self.llm.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("llm.api_key_file {}: {e}", path.display()))?;
            return Ok(text.lines().next().map(|l| l.trim().to_string()));
        }
        Ok(None)
    }

    /// The speech sidecars' TLS settings, read.
    pub fn speech_tls(&self) -> Result<sentiric_plugin_sdk::sidecar::Tls, String> {
        let t = &self.speech_tls;
        let pick = |own: &Option<PathBuf>, file: &str| {
            own.clone()
                .or_else(|| t.certs.as_ref().map(|d| d.join(file)))
        };
        let (Some(ca), Some(cert), Some(key)) = (
            pick(&t.ca, "ca.pem"),
            pick(&t.cert, "switch.pem"),
            pick(&t.key, "switch-key.pem"),
        ) else {
            return Err("speech_tls: certs, or ca, cert and key, are needed".into());
        };
        sentiric_plugin_sdk::sidecar::Tls::from_files(&ca, &cert, &key).map_err(|e| e.to_string())
    }
}

/// The tools the agent itself carries out.
pub const BUILT_IN_TOOLS: &[&str] = &["hang_up", "transfer", "send_dtmf", "set_cdr_tags"];

impl SidecarConfig {
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [llm]
        base_url = "http://127.0.0.1:9/v1"
        model = "m"
        [stt]
        address = "127.0.0.1:1"
        [tts]
        address = "127.0.0.1:2"
        [speech_tls]
        certs = "/nonexistent"
    "#;

    #[test]
    fn route_parameters_override_the_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        let params: HashMap<String, String> = [
            ("greeting".to_string(), "Hello".to_string()),
            ("tools".to_string(), "hang_up, transfer".to_string()),
            ("stt_prompt".to_string(), "A restaurant.".to_string()),
        ]
        .into();
        let s = CallSettings::new(&c.defaults, &params);
        assert_eq!(s.greeting, "Hello");
        assert_eq!(s.stt_prompt, "A restaurant.");
        assert_eq!(s.tools, ["hang_up", "transfer"]);
        assert_eq!(s.language, "en");
        assert!(s.system_prompt.contains("voice assistant"));
    }

    #[test]
    fn bad_webhooks_and_unknown_tools_are_refused() {
        let with = |extra: &str| Config::parse(&format!("{MINIMAL}\n{extra}"));
        assert!(with("[webhooks.hang_up]\nurl = \"http://x\"\ndescription = \"d\"").is_err());
        assert!(with("[webhooks.w]\nurl = \"ftp://x\"\ndescription = \"d\"").is_err());
        assert!(
            with("[webhooks.w]\nurl = \"http://x\"\ndescription = \"d\"\nparameters = \"{\"")
                .is_err()
        );
        assert!(with("[defaults]\ntools = [\"nope\"]").is_err());
        assert!(with(
            "[webhooks.w]\nurl = \"http://x\"\ndescription = \"d\"\n[defaults]\ntools = [\"w\"]"
        )
        .is_ok());
    }

    #[test]
    fn the_key_is_never_in_the_debug_text() {
        let mut c = Config::parse(MINIMAL).unwrap();
        c.llm.api_key_env = Some("SENTIRIC_TEST_NO_SUCH_VAR".into());
        assert!(c.api_key().is_err());
        let shown = format!("{:?}", c.llm);
        assert!(shown.contains("SENTIRIC_TEST_NO_SUCH_VAR"));
    }
}
