//! A deterministic OpenAI-compatible chat-completions server: a real HTTP
//! server on a loopback port speaking the streaming protocol (server-sent
//! events, `chat.completion.chunk`s, tool calls in parts, `[DONE]`), whose
//! answers come from a script. For the agent's tests and benchmarks, and
//! for trying the agent without a model.
//!
//! Each request is answered by the first [`Reply`] whose `when` is found
//! in its last message (any role: a tool's result too), ignoring case; an
//! empty `when` matches anything. Every request is kept for inspection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reply {
    /// Text that the request's last message must contain (empty: any).
    pub when: String,
    /// The answer's text, in the chunks it is streamed in.
    pub chunks: Vec<String>,
    /// Tool calls after the text: (name, arguments as JSON text).
    pub tools: Vec<(String, String)>,
    /// Time before the first chunk, ms (the model "thinking").
    pub first_token_ms: u64,
    /// Time between chunks, ms.
    pub chunk_ms: u64,
}

/// A script: its replies, in the order they are tried.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// See [`Reply`].
    pub reply: Vec<Reply>,
}

/// What a request asked, as kept.
#[derive(Debug, Clone)]
pub struct Asked {
    /// Its JSON body.
    pub body: Value,
    /// Its `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The server, running until dropped.
pub struct ScriptedLlm {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedLlm {
    /// Serves `script` on `listen` (port 0: any), on the current tokio
    /// runtime.
    pub async fn start(listen: SocketAddr, script: Script) -> std::io::Result<ScriptedLlm> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let asked = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let kept = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (script, kept) = (Arc::clone(&script), Arc::clone(&kept));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |r| {
                        answer(r, Arc::clone(&script), Arc::clone(&kept))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(ScriptedLlm { addr, asked, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure (`http://ADDR/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The requests so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    script: Arc<Script>,
    asked: Arc<Mutex<Vec<Asked>>>,
) -> Result<hyper::Response<Body>, Infallible> {
    let plain = |status: u16, text: &str| {
        let body = http_body_util::Full::new(Bytes::from(text.to_string()))
            .map_err(|e| match e {})
            .boxed();
        let mut r = hyper::Response::new(body);
        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
        Ok(r)
    };
    if request.method() != hyper::Method::POST
        || !request.uri().path().ends_with("/chat/completions")
    {
        return plain(404, "{\"error\":{\"message\":\"not found\"}}");
    }
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let Ok(bytes) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return plain(400, "{\"error\":{\"message\":\"unreadable body\"}}");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return plain(400, "{\"error\":{\"message\":\"not JSON\"}}");
    };
    let last = body
        .pointer("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    asked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Asked {
            body: body.clone(),
            authorization,
        });
    let Some(reply) = script
        .reply
        .iter()
        .find(|r| last.contains(&r.when.to_lowercase()))
        .cloned()
    else {
        return plain(500, "{\"error\":{\"message\":\"no reply scripted\"}}");
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted")
        .to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        let event = |delta: Value, finish: Value| {
            let chunk = json!({
                "id": "chatcmpl-scripted", "object": "chat.completion.chunk",
                "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            Ok(Frame::data(Bytes::from(format!("data: {chunk}\n\n"))))
        };
        tokio::time::sleep(Duration::from_millis(reply.first_token_ms)).await;
        if tx
            .send(event(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ))
            .await
            .is_err()
        {
            return;
        }
        for (i, c) in reply.chunks.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(reply.chunk_ms)).await;
            }
            if tx
                .send(event(json!({"content": c}), Value::Null))
                .await
                .is_err()
            {
                return;
            }
        }
        for (i, (name, args)) in reply.tools.iter().enumerate() {
            // Each call in two parts, as real endpoints stream them.
            let half = args.len() / 2;
            let half = (0..=half)
                .rev()
                .find(|&h| args.is_char_boundary(h))
                .unwrap_or(0);
            let parts = [
                json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                        "function": {"name": name, "arguments": &args[..half]}}]}),
                json!({"tool_calls": [{"index": i, "function": {"arguments": &args[half..]}}]}),
            ];
            for p in parts {
                if tx.send(event(p, Value::Null)).await.is_err() {
                    return;
                }
            }
        }
        let finish = if reply.tools.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        let _ = tx.send(event(json!({}), json!(finish))).await;
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
            .await;
    });
    let body = StreamBody::new(Channelled(rx)).boxed();
    let mut r = hyper::Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(r)
}

/// A channel's receiving end as a stream.
struct Channelled<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for Channelled<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
