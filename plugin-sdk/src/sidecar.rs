//! A plugin as a gRPC sidecar over mTLS, and the client the switch
//! reaches one with.
//!
//! [`serve`] runs a [`Plugin`]'s services (its dialplan, agent, speech
//! recogniser and synthesiser) on a TCP address. The sidecar accepts TLS itself: TLS 1.3 only, a client
//! certificate required and verified against the configured CA, so a
//! client without one, with one from another CA, or with an expired one
//! is refused at the handshake, and every refusal is logged (`tracing`,
//! with the peer's address). What passes is served by tonic over HTTP/2.
//! A plugin's code runs on tokio's blocking pool unless it says it never
//! blocks ([`Plugin::may_block`]). A panic in the plugin fails that
//! request (`INTERNAL`), not the sidecar.
//!
//! [`DialplanClient`] is the other side: TLS with the switch's client
//! certificate, a deadline per call, and the decision checked with
//! [`check_decision`](crate::check_decision) as an in-process plugin's.
//!
//! rustls runs on aws-lc-rs, the one crypto provider of the whole tree
//! (post-quantum key exchange, X25519MLKEM768, preferred).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{check_decision, v1, InvalidDecision, Plugin, PluginError, Recognition};

/// The gRPC crate the sidecars and clients are built on, for the
/// contract's generated clients and servers (`v1::agent_client` …).
pub use tonic;

/// PEM text of the CA the other side's certificate must chain to, and of
/// this side's own certificate and key.
#[derive(Clone)]
pub struct Tls {
    /// The CA, PEM.
    pub ca: String,
    /// This side's certificate, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
    /// The file the CA was read from, if it was: handshake errors name it.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the three PEM files.
    pub fn from_files(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> std::io::Result<Tls> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(Tls {
            ca: read(ca)?,
            cert: read(cert)?,
            key: read(key)?,
            ca_file: Some(ca.to_path_buf()),
        })
    }

    /// What a refused TLS handshake's error `message` means for a person,
    /// naming the CA file (`peer`: "sidecar" or "client"); empty when it
    /// is no certificate's fault.
    pub fn hint(&self, message: &str, peer: &str) -> String {
        let ca = self.ca_file.as_ref().map_or_else(
            || "the CA given".to_string(),
            |f| format!("the CA in {}", f.display()),
        );
        if message.contains("invalid peer certificate") {
            // rustls says these by name (`Expired`) or in words
            // (`certificate expired: verification time …`).
            let why = if message.contains("Expired") || message.contains("certificate expired") {
                "has expired".to_string()
            } else if message.contains("NotValidForName") || message.contains("not valid for name")
            {
                "does not carry the name asked for (server_name)".to_string()
            } else {
                format!("is not signed by {ca}")
            };
            format!(
                " (the {peer}'s certificate {why}; make both sides' certificates with one \
                 `sentiric certs init DIR`, or give each side the CA that signed the other's)"
            )
        } else if [
            "DecryptError",
            "BadCertificate",
            "UnknownCA",
            "CertificateExpired",
            "CertificateRequired",
        ]
        .iter()
        .any(|a| message.contains(&format!("received fatal alert: {a}")))
        {
            format!(
                " (the {peer} refused this side's certificate: it does not chain to the CA \
                 the {peer} trusts, or has expired)"
            )
        } else if message.contains("peer sent no certificates") {
            format!(" (the {peer} gave no certificate: mutual TLS needs one from the CA)")
        } else {
            String::new()
        }
    }
}

/// Why a sidecar could not start or a call to one failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// The certificates or keys given do not load.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Binding, accepting or connecting failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The gRPC transport failed (connection refused or lost, handshake
    /// refused).
    #[error("transport: {0}")]
    Transport(String),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The sidecar answered with an error status.
    #[error("sidecar: {0}: {1}")]
    Status(tonic::Code, String),
    /// The plugin refused its configuration.
    #[error("plugin: {0}")]
    Init(String),
    /// Its decision cannot be carried out.
    #[error("decision refused: {0}")]
    Invalid(InvalidDecision),
}

impl SidecarError {
    /// The sidecar could not be reached: the connection was refused or
    /// lost (a client should open another), not a slow or wrong answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SidecarError::Transport(_) | SidecarError::Status(tonic::Code::Unavailable, _)
        )
    }
}

fn server_config(tls: &Tls) -> Result<rustls::ServerConfig, SidecarError> {
    let bad = |what: &str, e: String| SidecarError::Tls(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(tls.ca.as_bytes()) {
        roots
            .add(c.map_err(|e| bad("CA", e.to_string()))?)
            .map_err(|e| bad("CA", e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| bad("client verifier", e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(tls.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).map_err(|e| bad("key", e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS 1.3", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate and key", e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The dialplan service over the plugin.
struct DialplanService<P> {
    plugin: Arc<P>,
}

#[tonic::async_trait]
impl<P: Plugin> v1::dialplan_server::Dialplan for DialplanService<P> {
    async fn route(
        &self,
        request: tonic::Request<v1::RouteRequest>,
    ) -> Result<tonic::Response<v1::RouteDecision>, tonic::Status> {
        if self.plugin.dialplan().is_none() {
            return Err(tonic::Status::unimplemented("not a dialplan"));
        }
        // The plugin's code is synchronous: one that may block runs on
        // the blocking pool, not on the threads that serve connections;
        // one that says it never blocks runs here (a thread hop each way
        // less: p99 on loopback about half).
        let plugin = Arc::clone(&self.plugin);
        let request = request.into_inner();
        let decided = plugin_code(self.plugin.may_block(), move || {
            plugin.dialplan().map(|d| d.route(&request))
        })
        .await?;
        match decided {
            Some(Ok(d)) => Ok(tonic::Response::new(d)),
            Some(Err(e)) => Err(tonic::Status::internal(e.0)),
            None => Err(tonic::Status::unimplemented("not a dialplan")),
        }
    }
}

/// A channel's receiving end as a stream: accepted TLS connections for
/// tonic's incoming, an agent's actions for its response.
struct Received<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for Received<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// The agent service over the plugin: one [`Conversation`] a stream.
struct AgentService<P> {
    plugin: Arc<P>,
}

/// Runs `f` (plugin code) where the plugin says it may: on the blocking
/// pool, or here; a panic is an error.
async fn plugin_code<T: Send + 'static>(
    may_block: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tonic::Status> {
    let caught = move || catch_unwind(AssertUnwindSafe(f));
    let ran = if may_block {
        tokio::task::spawn_blocking(caught)
            .await
            .map_err(|_| tonic::Status::internal("the plugin panicked"))?
    } else {
        caught()
    };
    ran.map_err(|_| tonic::Status::internal("the plugin panicked"))
}

#[tonic::async_trait]
impl<P: Plugin> v1::agent_server::Agent for AgentService<P> {
    type ConverseStream = Conversing;

    async fn converse(
        &self,
        request: tonic::Request<tonic::Streaming<v1::CallInput>>,
    ) -> Result<tonic::Response<Self::ConverseStream>, tonic::Status> {
        if self.plugin.agent().is_none() {
            return Err(tonic::Status::unimplemented("not an agent"));
        }
        let mut inputs = request.into_inner();
        let Some(v1::call_input::Input::Start(start)) =
            inputs.message().await?.and_then(|m| m.input)
        else {
            return Err(tonic::Status::invalid_argument(
                "the first input must be start",
            ));
        };
        let (plugin, may_block) = (Arc::clone(&self.plugin), self.plugin.may_block());
        let (later_tx, later) = tokio::sync::mpsc::unbounded_channel();
        let later_tx = crate::Later::new(move |a| later_tx.send(Ok(a)).is_ok());
        let conversation = plugin_code(may_block, move || {
            plugin.agent().map(|a| a.start(&start, later_tx))
        })
        .await?
        .ok_or_else(|| tonic::Status::unimplemented("not an agent"))?
        .map_err(|e| tonic::Status::failed_precondition(e.0))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(pump(
            may_block,
            conversation,
            None,
            inputs,
            tx,
            |c: &mut Box<dyn crate::Conversation>, msg: v1::CallInput, out| match msg.input {
                Some(input) => c.input(input, out),
                None => Ok(()),
            },
            |_, _| Ok(()),
        ));
        Ok(tonic::Response::new(Conversing { rx, later }))
    }
}

/// A conversation's actions: those its inputs caused and those it took
/// on its own ([`Later`](crate::Later)), as each comes; over when the
/// conversation is.
struct Conversing {
    rx: tokio::sync::mpsc::Receiver<Result<v1::CallAction, tonic::Status>>,
    later: tokio::sync::mpsc::UnboundedReceiver<Result<v1::CallAction, tonic::Status>>,
}

impl futures_core::Stream for Conversing {
    type Item = Result<v1::CallAction, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(Some(a)) = self.later.poll_recv(cx) {
            return Poll::Ready(Some(a));
        }
        self.rx.poll_recv(cx)
    }
}

/// Feeds a stream's messages (`first`, then `inputs`) to `session` one at
/// a time, where the plugin says its code may run, and sends what each
/// makes (`feed`), then what `finish` makes when the client closes its
/// side, to `tx`. A failure or a panic ends the stream with its status; a
/// client that stops listening ends it quietly.
#[allow(clippy::too_many_arguments)]
async fn pump<S, I, O>(
    may_block: bool,
    mut session: S,
    first: Option<I>,
    mut inputs: tonic::Streaming<I>,
    tx: tokio::sync::mpsc::Sender<Result<O, tonic::Status>>,
    feed: fn(&mut S, I, &mut Vec<O>) -> Result<(), PluginError>,
    finish: fn(&mut S, &mut Vec<O>) -> Result<(), PluginError>,
) where
    S: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
{
    let mut first = first;
    loop {
        let next = match first.take() {
            Some(m) => Some(m),
            None => match inputs.message().await {
                Ok(m) => m,
                // The client went: nobody is listening.
                Err(_) => return,
            },
        };
        let over = next.is_none();
        let ran = plugin_code(may_block, move || {
            let mut out = Vec::new();
            let r = match next {
                Some(m) => feed(&mut session, m, &mut out),
                None => finish(&mut session, &mut out),
            };
            (session, r, out)
        })
        .await;
        let (back, result, out) = match ran {
            Ok(r) => r,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        session = back;
        for o in out {
            if tx.send(Ok(o)).await.is_err() {
                return;
            }
        }
        if let Err(e) = result {
            let _ = tx.send(Err(tonic::Status::internal(e.0))).await;
            return;
        }
        if over {
            return;
        }
    }
}

/// The speech recognition service over the plugin: one [`Recognition`] a
/// stream.
struct SpeechToTextService<P> {
    plugin: Arc<P>,
}

#[tonic::async_trait]
impl<P: Plugin> v1::speech_to_text_server::SpeechToText for SpeechToTextService<P> {
    type RecognizeStream = Received<Result<v1::Transcript, tonic::Status>>;

    async fn recognize(
        &self,
        request: tonic::Request<tonic::Streaming<v1::Audio>>,
    ) -> Result<tonic::Response<Self::RecognizeStream>, tonic::Status> {
        if self.plugin.speech_to_text().is_none() {
            return Err(tonic::Status::unimplemented("not a speech recogniser"));
        }
        let mut inputs = request.into_inner();
        let Some(first) = inputs.message().await? else {
            return Err(tonic::Status::invalid_argument("no audio"));
        };
        let (plugin, may_block) = (Arc::clone(&self.plugin), self.plugin.may_block());
        let opening = first.clone();
        let recognition = plugin_code(may_block, move || {
            plugin.speech_to_text().map(|s| s.start(&opening))
        })
        .await?
        .ok_or_else(|| tonic::Status::unimplemented("not a speech recogniser"))?
        .map_err(|e| tonic::Status::failed_precondition(e.0))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(pump(
            may_block,
            recognition,
            Some(first),
            inputs,
            tx,
            |r: &mut Box<dyn Recognition>, audio, out| r.audio(audio, out),
            |r, out| r.end(out),
        ));
        Ok(tonic::Response::new(Received(rx)))
    }
}

/// The speech synthesis service over the plugin: a [`Synthesis`] a
/// request, its chunks streamed as they are made.
struct TextToSpeechService<P> {
    plugin: Arc<P>,
}

#[tonic::async_trait]
impl<P: Plugin> v1::text_to_speech_server::TextToSpeech for TextToSpeechService<P> {
    type SynthesizeStream = Received<Result<v1::Audio, tonic::Status>>;

    async fn synthesize(
        &self,
        request: tonic::Request<v1::Text>,
    ) -> Result<tonic::Response<Self::SynthesizeStream>, tonic::Status> {
        if self.plugin.text_to_speech().is_none() {
            return Err(tonic::Status::unimplemented("not a speech synthesiser"));
        }
        let (plugin, may_block) = (Arc::clone(&self.plugin), self.plugin.may_block());
        let text = request.into_inner();
        let mut synthesis = plugin_code(may_block, move || {
            plugin.text_to_speech().map(|t| t.synthesize(&text))
        })
        .await?
        .ok_or_else(|| tonic::Status::unimplemented("not a speech synthesiser"))?
        .map_err(|e| tonic::Status::invalid_argument(e.0))?;
        // A few chunks ahead of the client at most: the synthesis runs
        // as the audio is taken.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let ran = plugin_code(may_block, move || {
                    let chunk = synthesis.next();
                    (synthesis, chunk)
                })
                .await;
                let chunk = match ran {
                    Ok((back, chunk)) => {
                        synthesis = back;
                        chunk
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let sent = match chunk {
                    None => return,
                    Some(Ok(audio)) => tx.send(Ok(audio)).await,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(tonic::Status::internal(e.0))).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Received(rx)))
    }
}

/// Serves `plugin`'s services on `listener` with mTLS until `shutdown`
/// completes.
pub async fn serve<P: Plugin>(
    plugin: P,
    listener: tokio::net::TcpListener,
    tls: &Tls,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(tls)?));
    // What a refusal's log line says of the CA (no key kept here).
    let hints = Arc::new(Tls {
        ca: String::new(),
        cert: String::new(),
        key: String::new(),
        ca_file: tls.ca_file.clone(),
    });
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let accepting = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("sidecar: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, tx, hints, local) = (
                acceptor.clone(),
                tx.clone(),
                Arc::clone(&hints),
                local.clone(),
            );
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let conn = stream.get_ref().1;
                        let version = conn.protocol_version().map_or_else(String::new, |v| {
                            v.as_str()
                                .unwrap_or("TLS")
                                .replace('v', " ")
                                .replace('_', ".")
                        });
                        let group = conn
                            .negotiated_key_exchange_group()
                            .map_or_else(String::new, |g| format!("{:?}", g.name()));
                        tracing::info!(
                            %peer,
                            "sidecar on {local}: client {peer} connected ({version}, {group})"
                        );
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Ok(Err(e)) => {
                        let hint = hints.hint(&e.to_string(), "client");
                        tracing::warn!(%peer, "sidecar: TLS handshake with {peer} refused: {e}{hint}")
                    }
                    Err(_) => tracing::warn!(%peer, "sidecar: TLS handshake with {peer} timed out"),
                }
            });
        }
    });
    let plugin = Arc::new(plugin);
    let dialplan = v1::dialplan_server::DialplanServer::new(DialplanService {
        plugin: Arc::clone(&plugin),
    });
    let agent = v1::agent_server::AgentServer::new(AgentService {
        plugin: Arc::clone(&plugin),
    });
    let stt = v1::speech_to_text_server::SpeechToTextServer::new(SpeechToTextService {
        plugin: Arc::clone(&plugin),
    });
    let tts = v1::text_to_speech_server::TextToSpeechServer::new(TextToSpeechService { plugin });
    let served = tonic::transport::Server::builder()
        .add_service(dialplan)
        .add_service(agent)
        .add_service(stt)
        .add_service(tts)
        .serve_with_incoming_shutdown(Received(rx), shutdown)
        .await;
    accepting.abort();
    served.map_err(|e| SidecarError::Transport(e.to_string()))
}

/// A sidecar process started from its binary on a loopback port it picks
/// itself (`--listen 127.0.0.1:0`): its address read from the line
/// [`main`] prints (`sidecar NAME listening on ADDR`). For tests of a
/// sidecar binary, and whoever runs sidecars beside the switch. Killed
/// when dropped.
#[derive(Debug)]
pub struct Spawned {
    child: std::process::Child,
    addr: SocketAddr,
    line: String,
}

impl Spawned {
    /// Runs `exe` with `--listen 127.0.0.1:0` and `args` (its
    /// certificates, its configuration), and waits for its line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        exe: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Spawned, SidecarError> {
        use std::io::BufRead;
        let exe = exe.as_ref();
        let failed = |e: String| SidecarError::Init(format!("{}: {e}", exe.to_string_lossy()));
        let mut child = std::process::Command::new(exe)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .filter(|_| line.contains(" listening on "));
        match (read, addr) {
            (Some(Ok(_)), Some(addr)) => Ok(Spawned { child, addr, line }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(failed(format!("no listening line (got {:?})", line.trim())))
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The line it printed.
    pub fn line(&self) -> &str {
        self.line.trim_end()
    }

    /// Its process id (to signal it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The switch's side of a dialplan sidecar.
#[derive(Debug, Clone)]
pub struct DialplanClient {
    inner: v1::dialplan_client::DialplanClient<tonic::transport::Channel>,
}

impl DialplanClient {
    /// Connects to `addr` (the sidecar's certificate must name
    /// `server_name`) with the switch's certificate from `tls`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: &Tls,
        connect_timeout: Duration,
    ) -> Result<DialplanClient, SidecarError> {
        let channel = channel(addr, server_name, tls, connect_timeout).await?;
        Ok(DialplanClient {
            inner: v1::dialplan_client::DialplanClient::new(channel),
        })
    }

    /// The client over a connection already open ([`channel`]).
    pub fn from_channel(channel: tonic::transport::Channel) -> DialplanClient {
        DialplanClient {
            inner: v1::dialplan_client::DialplanClient::new(channel),
        }
    }

    /// The sidecar's decision for `request` within `deadline`, checked.
    pub async fn route(
        &mut self,
        request: v1::RouteRequest,
        deadline: Duration,
    ) -> Result<v1::RouteDecision, SidecarError> {
        let mut req = tonic::Request::new(request);
        req.set_timeout(deadline);
        let t0 = tokio::time::Instant::now();
        let answer = tokio::time::timeout(deadline, self.inner.route(req))
            .await
            .map_err(|_| SidecarError::Timeout(deadline))?;
        let decision = match answer {
            Ok(r) => r.into_inner(),
            // The server's timer says DeadlineExceeded, the client's own
            // Cancelled (as does a connection the server refused, before
            // the deadline).
            Err(s)
                if s.code() == tonic::Code::DeadlineExceeded
                    || (s.code() == tonic::Code::Cancelled && t0.elapsed() >= deadline) =>
            {
                return Err(SidecarError::Timeout(deadline))
            }
            Err(s) => return Err(SidecarError::Status(s.code(), s.message().to_string())),
        };
        check_decision(&decision).map_err(SidecarError::Invalid)?;
        Ok(decision)
    }
}

/// A connection to the sidecar at `addr` (its certificate must name
/// `server_name`) with this side's certificate from `tls`, for any of the
/// contract's clients (`v1::agent_client::AgentClient::new(channel)`).
pub async fn channel(
    addr: SocketAddr,
    server_name: &str,
    tls: &Tls,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, SidecarError> {
    endpoint(addr, server_name, tls, connect_timeout)?
        .connect()
        .await
        .map_err(|e| {
            let chain = error_chain(&e);
            let hint = tls.hint(&chain, "sidecar");
            SidecarError::Transport(format!("{chain}{hint}"))
        })
}

/// The endpoint for a sidecar at `addr`: TLS with the switch's
/// certificate, the sidecar's verified against the CA and `server_name`.
fn endpoint(
    addr: SocketAddr,
    server_name: &str,
    tls: &Tls,
    connect_timeout: Duration,
) -> Result<Endpoint, SidecarError> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca))
        .identity(Identity::from_pem(&tls.cert, &tls.key))
        .domain_name(server_name);
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| SidecarError::Transport(e.to_string()))?
        .connect_timeout(connect_timeout)
        .tls_config(config)
        .map_err(|e| SidecarError::Tls(e.to_string()))
}

/// Makes aws-lc-rs the process's default rustls crypto provider, for whatever
/// builds a TLS configuration without naming one. The switch and
/// sidecars call it once at start-up; a second call changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An error with its causes, joined by `: ` (a transport error's own
/// text says only "transport error"); a cause that says what is said
/// already (hyper's "tcp connect error" under tonic's) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A sidecar binary's command line (`--help` says it; exit status 2 for
/// a wrong one).
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A Sentiric plugin served as a gRPC sidecar over mTLS",
    after_help = "Once it listens, standard output gets one line: `sidecar NAME listening on ADDR`. \
SIGTERM or SIGINT: it stops, letting calls being served finish (5 s at most). \
Exit status: 0 stopped; 1 failed; 2 a wrong command line or a file it cannot read."
)]
struct Cli {
    /// Where it serves (port 0: the kernel's choice, printed)
    #[arg(long, value_name = "IP:PORT", value_parser = ip_port)]
    listen: SocketAddr,
    /// A directory with ca.pem, sidecar.pem and sidecar-key.pem (as
    /// `sentiric certs init DIR` makes them)
    #[arg(long, value_name = "DIR", required_unless_present_all = ["ca", "cert", "key"])]
    certs: Option<std::path::PathBuf>,
    /// The CA clients' certificates must chain to (over --certs)
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// The sidecar's certificate (over --certs)
    #[arg(long, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// The sidecar's key (over --certs)
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// The plugin's configuration
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

/// An address with its port, said so when the port is missing.
fn ip_port(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("IP:PORT expected (an address and a port, e.g. 127.0.0.1:7443), got {s:?}")
    })
}

/// What a sidecar binary is started with:
///
/// ```text
/// --listen ADDR      where it serves (e.g. 127.0.0.1:7443)
/// --certs DIR        ca.pem, sidecar.pem, sidecar-key.pem (as
///                    `sentiric certs init DIR` makes them), or:
/// --ca FILE --cert FILE --key FILE
/// --config FILE      the plugin's configuration (optional)
/// ```
#[derive(Debug, Clone)]
pub struct Args {
    /// Where it serves.
    pub listen: SocketAddr,
    /// Its certificate and key, and the CA clients' must chain to.
    pub tls: Tls,
    /// The plugin's configuration text (empty without `--config`).
    pub config: String,
}

impl Args {
    /// Parses `args` (the program's name left out).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(std::iter::once("sidecar".to_string()).chain(args))
            .map_err(|e| e.to_string())?;
        Args::from_cli(cli)
    }

    fn from_cli(cli: Cli) -> Result<Args, String> {
        let pick = |own: Option<std::path::PathBuf>, file: &str| {
            own.or_else(|| cli.certs.as_ref().map(|d| d.join(file)))
        };
        let (Some(ca), Some(cert), Some(key)) = (
            pick(cli.ca.clone(), "ca.pem"),
            pick(cli.cert.clone(), "sidecar.pem"),
            pick(cli.key.clone(), "sidecar-key.pem"),
        ) else {
            return Err("--certs DIR, or --ca, --cert and --key, are needed".into());
        };
        let tls = Tls::from_files(&ca, &cert, &key).map_err(|e| e.to_string())?;
        let config = match &cli.config {
            Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            None => String::new(),
        };
        Ok(Args {
            listen: cli.listen,
            tls,
            config,
        })
    }
}

/// A sidecar binary's whole `main`: parses [`Args`] from the command
/// line, logs to standard error, makes the plugin from its configuration
/// and serves it until SIGTERM or SIGINT.
///
/// ```no_run
/// # struct MyPlugin;
/// # impl sentiric_plugin_sdk::Plugin for MyPlugin {
/// #     fn new(_: &str) -> Result<Self, sentiric_plugin_sdk::PluginError> { Ok(MyPlugin) }
/// # }
/// fn main() -> std::process::ExitCode {
///     sentiric_plugin_sdk::sidecar::main::<MyPlugin>(env!("CARGO_PKG_NAME"))
/// }
/// ```
pub fn main<P: Plugin>(name: &str) -> std::process::ExitCode {
    // Colours only for a person's terminal: a switch that runs the
    // sidecar logs its lines as they are.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(tracing::Level::INFO)
        .try_init();
    // Help and the version on standard output (exit 0); a wrong command
    // line named on standard error (exit 2).
    // The help names the binary as it was started.
    let bin = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| name.to_string());
    let matches = <Cli as clap::CommandFactory>::command()
        .name(bin.clone())
        .bin_name(bin.clone())
        .about(format!(
            "The Sentiric plugin {} served as a gRPC sidecar over mTLS (--config FILE: the text the plugin is made from)",
            name.strip_prefix("sentiric-plugin-").unwrap_or(name)
        ))
        .get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let args = match Args::from_cli(cli) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{bin}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run::<P>(name, args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sidecar: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How long a stopping sidecar waits for the calls it is serving (and
/// its clients' goodbyes) before it exits anyway.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Makes the plugin `name` from `args.config` and serves it on
/// `args.listen` until SIGTERM or SIGINT, then lets the calls being
/// served finish ([`DRAIN`] at most). Once it listens, standard output
/// gets one line: `sidecar NAME listening on ADDR`.
pub fn run<P: Plugin>(name: &str, args: Args) -> Result<(), SidecarError> {
    install_crypto_provider();
    let plugin = P::new(&args.config).map_err(|e| SidecarError::Init(e.0))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("sidecar")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        // Said once, on standard output (a log line would say it again).
        tracing::debug!("sidecar {name} listening on {addr} (mTLS)");
        println!("sidecar {name} listening on {addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut serving = tokio::spawn(async move {
            serve(plugin, listener, &args.tls, async {
                let _ = stopped.await;
            })
            .await
        });
        let served = tokio::select! {
            served = &mut serving => Some(served),
            _ = term.recv() => None,
            _ = tokio::signal::ctrl_c() => None,
        };
        let served = match served {
            Some(served) => served,
            None => {
                tracing::info!("sidecar {name}: stopping ({} s at most)", DRAIN.as_secs());
                let _ = stop.send(());
                match tokio::time::timeout(DRAIN, &mut serving).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!("sidecar {name}: connections still open; exiting");
                        serving.abort();
                        return Ok(());
                    }
                }
            }
        };
        served.map_err(|e| SidecarError::Io(std::io::Error::other(e)))?
    })
}

#[cfg(test)]
mod tests {
    /// An error whose cause is `inner`.
    #[derive(Debug)]
    struct Wraps(&'static str, Option<Box<Wraps>>);

    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|w| w as _)
        }
    }

    #[test]
    fn a_refused_handshake_is_said_in_words() {
        let tls = super::Tls {
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            ca_file: Some("certs/ca.pem".into()),
        };
        for (message, said) in [
            (
                "invalid peer certificate: UnknownIssuer",
                "the client's certificate is not signed by the CA in certs/ca.pem",
            ),
            (
                "invalid peer certificate: certificate expired: verification time 1796688235 \
                 (UNIX), but certificate is not valid after 978220800",
                "the client's certificate has expired",
            ),
            (
                "invalid peer certificate: certificate not valid for name \"sidecar.example\"",
                "does not carry the name asked for (server_name)",
            ),
            (
                "peer sent no certificates",
                "the client gave no certificate",
            ),
            (
                "received fatal alert: UnknownCA",
                "the client refused this side's certificate",
            ),
        ] {
            let hint = tls.hint(message, "client");
            assert!(hint.contains(said), "{message}: {hint}");
        }
        assert_eq!(tls.hint("connection reset", "client"), "");
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let os = Wraps("Connection refused (os error 111)", None);
        let connect = Wraps("tcp connect error", Some(Box::new(os)));
        let hyper = Wraps("tcp connect error", Some(Box::new(connect)));
        let tonic = Wraps("transport error", Some(Box::new(hyper)));
        assert_eq!(
            super::error_chain(&tonic),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
    }
}
