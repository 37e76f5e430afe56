//! An OpenAI-compatible chat-completions client, streaming: the answer's
//! text as its tokens come (server-sent events), and the tool calls it
//! asks for once they are complete. Also the webhooks' POST.
//!
//! The API key goes in the `Authorization` header and nowhere else: not
//! in errors, not in logs, not in `Debug` output.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use sentiric_plugin_sdk::sidecar::error_chain;
use serde_json::{json, Value};

use crate::config::LlmConfig;

/// HTTP and HTTPS, with connections kept for the next request.
pub(crate) type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP client over rustls with the system's roots (none found: only
/// plain HTTP works, and HTTPS requests fail with a clear error).
pub(crate) fn http() -> Http {
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("voice agent: no system root certificates ({e}); HTTPS will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Why a completion failed (never with the key in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmError {
    /// No connection, or it broke.
    Transport(String),
    /// Not 200: the status and the start of the body.
    Status(u16, String),
    /// Slower than the configured timeout.
    Timeout,
    /// The stream said something that is not a completion.
    Protocol(String),
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmError::Transport(e) => write!(f, "LLM endpoint: {e}"),
            LlmError::Status(s, body) => write!(f, "LLM endpoint answered {s}: {body}"),
            LlmError::Timeout => write!(f, "LLM endpoint: timed out"),
            LlmError::Protocol(e) => write!(f, "LLM endpoint: {e}"),
        }
    }
}

/// A tool call the LLM asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    /// Its id, for the tool's answer.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, JSON text.
    pub arguments: String,
}

/// What a streamed completion gives, as it comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// More of the answer's text.
    Text(String),
}

/// The chat-completions endpoint.
pub struct Llm {
    http: Http,
    url: hyper::Uri,
    model: String,
    key: Option<String>,
    timeout: Duration,
    max_tokens: u32,
    temperature: Option<f32>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// The endpoint `config` names, with `key`.
    pub fn new(config: &LlmConfig, key: Option<String>, http: Http) -> Result<Llm, String> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| format!("llm.base_url {}: {e}", config.base_url))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "llm.base_url {}: http:// or https:// needed",
                config.base_url
            ));
        }
        Ok(Llm {
            http,
            url,
            model: config.model.clone(),
            key,
            timeout: Duration::from_millis(config.timeout_ms),
            max_tokens: config.max_tokens,
            temperature: config.temperature,
        })
    }

    /// Streams the answer to `messages` (with `tools` offered, OpenAI's
    /// function format): its text to `on_text` as it comes; the tool
    /// calls it asked for returned at its end.
    pub async fn complete(
        &self,
        messages: &[Value],
        tools: &[Value],
        mut on_text: impl FnMut(Delta),
    ) -> Result<Vec<ToolCall>, LlmError> {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
        });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.to_vec());
        }
        if self.max_tokens > 0 {
            body["max_tokens"] = json!(self.max_tokens);
        }
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        let mut request = hyper::Request::post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "text/event-stream");
        if let Some(key) = &self.key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| LlmError::Protocol(e.to_string()))?;
        let response = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| LlmError::Timeout)?
            .map_err(|e| LlmError::Transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let text = read_some(&mut body, 512).await;
            return Err(LlmError::Status(status, text));
        }
        let mut events = SseLines::default();
        let mut calls = ToolCalls::default();
        loop {
            let frame = tokio::time::timeout(self.timeout, body.frame())
                .await
                .map_err(|_| LlmError::Timeout)?;
            let Some(frame) = frame else {
                // The stream ended without [DONE]: what came counts.
                return Ok(calls.done());
            };
            let frame = frame.map_err(|e| LlmError::Transport(error_chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for line in events.push(&data) {
                if line == "[DONE]" {
                    return Ok(calls.done());
                }
                let chunk: Value = serde_json::from_str(&line)
                    .map_err(|e| LlmError::Protocol(format!("a chunk that is not JSON: {e}")))?;
                if let Some(e) = chunk.get("error") {
                    return Err(LlmError::Protocol(format!("error in the stream: {e}")));
                }
                let Some(delta) = chunk.pointer("/choices/0/delta") else {
                    continue;
                };
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        on_text(Delta::Text(text.to_string()));
                    }
                }
                if let Some(parts) = delta.get("tool_calls").and_then(Value::as_array) {
                    for p in parts {
                        calls.push(p);
                    }
                }
            }
        }
    }
}

/// The data lines of a server-sent event stream, as bytes come.
#[derive(Debug, Default)]
pub(crate) struct SseLines {
    pending: Vec<u8>,
}

impl SseLines {
    /// The `data:` lines `bytes` completes (without `data:`).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(data) = line.strip_prefix("data:") {
                out.push(data.trim_start().to_string());
            }
        }
        out
    }
}

/// Tool calls put together from their streamed parts (by index).
#[derive(Debug, Default)]
struct ToolCalls {
    calls: Vec<ToolCall>,
}

impl ToolCalls {
    fn push(&mut self, part: &Value) {
        let index = part
            .get("index")
            .and_then(Value::as_u64)
            .map_or(self.calls.len().saturating_sub(1), |i| i as usize)
            .min(63);
        while self.calls.len() <= index {
            self.calls.push(ToolCall::default());
        }
        let call = &mut self.calls[index];
        if let Some(id) = part.get("id").and_then(Value::as_str) {
            call.id = id.to_string();
        }
        if let Some(name) = part.pointer("/function/name").and_then(Value::as_str) {
            call.name.push_str(name);
        }
        if let Some(args) = part.pointer("/function/arguments").and_then(Value::as_str) {
            call.arguments.push_str(args);
        }
    }

    fn done(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .enumerate()
            .map(|(i, mut c)| {
                if c.id.is_empty() {
                    c.id = format!("call_{i}");
                }
                c
            })
            .collect()
    }
}

/// POSTs `arguments` (JSON) to a webhook: its answer's body (16 KiB at
/// most), or why not.
pub(crate) async fn post_json(
    http: &Http,
    url: &str,
    token: Option<&str>,
    arguments: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(Full::new(Bytes::from(arguments.to_string())))
        .map_err(|e| e.to_string())?;
    let answer = async {
        let response = http.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        let mut body = response.into_body();
        let text = read_some(&mut body, 16 * 1024).await;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("answered {}: {text}", status.as_u16()))
        }
    };
    tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Up to `limit` bytes of `body`, as text.
async fn read_some(body: &mut hyper::body::Incoming, limit: usize) -> String {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            _ => break,
        }
    }
    out.truncate(limit);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_are_found_across_any_split() {
        let stream = b"data: {\"a\":1}\r\n\r\n: comment\n\ndata:[DONE]\n\n";
        for cut in 0..stream.len() {
            let mut s = SseLines::default();
            let mut got = s.push(&stream[..cut]);
            got.extend(s.push(&stream[cut..]));
            assert_eq!(got, ["{\"a\":1}", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn tool_calls_are_put_together_from_their_parts() {
        let mut t = ToolCalls::default();
        for p in [
            json!({"index": 0, "id": "c1", "function": {"name": "hang_", "arguments": ""}}),
            json!({"index": 0, "function": {"name": "up", "arguments": "{\"reason\":"}}),
            json!({"index": 1, "id": "c2", "function": {"name": "send_dtmf", "arguments": "{}"}}),
            json!({"index": 0, "function": {"arguments": "\"bye\"}"}}),
        ] {
            t.push(&p);
        }
        let calls = t.done();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "hang_up");
        assert_eq!(calls[0].arguments, "{\"reason\":\"bye\"}");
        assert_eq!(calls[1].id, "c2");
    }
}
