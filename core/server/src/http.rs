//! The control plane's HTTP endpoints, on a small tokio runtime in a
//! thread of its own (nothing on the data plane waits on it):
//!
//! * `GET /healthz` — 200 while the process runs.
//! * `GET /readyz` — 200 while the switch takes calls, 503 once draining.
//! * `GET /metrics` — Prometheus text. With `[http] token` set (or
//!   `SENTIRIC_HTTP_TOKEN`), only with `Authorization: Bearer <token>`.
//!
//! It binds loopback by default: expose it to a scraper on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

/// What the endpoints report.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// The switch takes new calls.
    pub(crate) ready: AtomicBool,
}

struct Endpoints {
    metrics: PrometheusHandle,
    process: crate::families::ProcessCollector,
    status: Arc<Status>,
    token: Option<String>,
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r
}

impl Endpoints {
    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if req.method() != Method::GET {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET"),
            );
            return r;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.status.ready.load(Ordering::Relaxed) => {
                text(StatusCode::OK, "ready\n")
            }
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            _ => {
                if let Some(token) = &self.token {
                    let given = req
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "));
                    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                        let mut r = text(StatusCode::UNAUTHORIZED, "bearer token required\n");
                        r.headers_mut().insert(
                            hyper::header::WWW_AUTHENTICATE,
                            hyper::header::HeaderValue::from_static("Bearer"),
                        );
                        return r;
                    }
                }
                self.process.collect();
                let mut r = text(StatusCode::OK, self.metrics.render());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
        }
    }
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds `listen` and serves the endpoints from a new thread; returns the
/// bound address.
pub(crate) fn spawn(
    listen: SocketAddr,
    (metrics, process): (PrometheusHandle, crate::families::ProcessCollector),
    status: Arc<Status>,
    token: Option<String>,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let endpoints = Arc::new(Endpoints {
        metrics,
        process,
        status,
        token,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("sentiric-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("http: {e}");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let endpoints = Arc::clone(&endpoints);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let r = endpoints.respond(&req);
                            async move { Ok::<_, Infallible>(r) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(addr)
}
