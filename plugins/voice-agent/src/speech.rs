//! The speech sidecars, as the agent's client: a recognition streamed
//! while the caller speaks, and a synthesis per sentence, both over the
//! contract's gRPC services with mTLS.

use std::pin::Pin;
use std::task::{Context, Poll};

use sentiric_plugin_sdk::sidecar::{self, tonic, Tls};
use sentiric_plugin_sdk::v1;

use crate::config::SidecarConfig;

/// A speech sidecar: its connection made when first needed, and made
/// again after a failure.
pub(crate) struct Sidecar {
    config: SidecarConfig,
    tls: Tls,
    channel: tokio::sync::Mutex<Option<tonic::transport::Channel>>,
}

impl Sidecar {
    pub(crate) fn new(config: SidecarConfig, tls: Tls) -> Sidecar {
        Sidecar {
            config,
            tls,
            channel: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection, made if there is none.
    async fn channel(&self) -> Result<tonic::transport::Channel, String> {
        let mut held = self.channel.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = sidecar::channel(
            self.config.address,
            &self.config.server_name,
            &self.tls,
            self.config.connect_timeout(),
        )
        .await
        .map_err(|e| format!("{}: {e}", self.config.address))?;
        *held = Some(c.clone());
        Ok(c)
    }

    /// Forgets the connection (it failed): the next use makes a new one.
    async fn forget(&self) {
        *self.channel.lock().await = None;
    }

    /// Starts a recognition: `first` is its first audio (with the
    /// stream's params). What it hears comes to the returned receiver;
    /// it ends (the sender dropped) when the recognition is over: `Ok`
    /// after the last transcript, or why it failed.
    pub(crate) async fn recognize(
        self: &std::sync::Arc<Self>,
        first: v1::Audio,
    ) -> Result<Recognizing, String> {
        let channel = self.channel().await?;
        let (audio, rx) = tokio::sync::mpsc::channel::<v1::Audio>(256);
        let (heard_tx, heard) = tokio::sync::mpsc::unbounded_channel();
        audio
            .send(first)
            .await
            .map_err(|_| "recognition closed".to_string())?;
        let me = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let mut client = v1::speech_to_text_client::SpeechToTextClient::new(channel);
            let result = async {
                let mut stream = client
                    .recognize(tonic::Request::new(Channelled(rx)))
                    .await
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))?
                    .into_inner();
                while let Some(t) = stream
                    .message()
                    .await
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))?
                {
                    let _ = heard_tx.send(Ok(t));
                }
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = result {
                me.forget().await;
                let _ = heard_tx.send(Err(e));
            }
        });
        Ok(Recognizing { audio, heard })
    }

    /// Synthesises `text`: its audio chunks as they come.
    pub(crate) async fn synthesize(
        &self,
        text: v1::Text,
    ) -> Result<tonic::Streaming<v1::Audio>, String> {
        let channel = self.channel().await?;
        let mut client = v1::text_to_speech_client::TextToSpeechClient::new(channel);
        match client.synthesize(tonic::Request::new(text)).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => {
                self.forget().await;
                Err(format!("{}: {}", s.code(), s.message()))
            }
        }
    }
}

/// A recognition under way.
pub(crate) struct Recognizing {
    /// More audio; dropped: the audio is over.
    pub(crate) audio: tokio::sync::mpsc::Sender<v1::Audio>,
    /// What it hears; closed once it is over.
    pub(crate) heard: tokio::sync::mpsc::UnboundedReceiver<Result<v1::Transcript, String>>,
}

/// A channel's receiving end as a request stream.
struct Channelled<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for Channelled<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
