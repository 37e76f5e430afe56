//! A plugin as a gRPC sidecar that misbehaves: a stalled one is cut off
//! at the caller's deadline, a panic fails that request only, an
//! out-of-range decision is refused, and the sidecar goes on.

#![cfg(feature = "sidecar")]

mod common;

use std::time::{Duration, Instant};

use common::{certs, log, request, start};
use sentiric_plugin_faulty::Faulty;
use sentiric_plugin_sdk::certs::Ca;
use sentiric_plugin_sdk::sidecar::{DialplanClient, SidecarError};
use sentiric_plugin_sdk::Plugin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sidecar_is_cut_off_at_the_deadline_and_a_panic_fails_one_request() {
    log();
    let ca = Ca::new("test CA").unwrap();
    let c = certs(&ca);
    let addr = start(Faulty::new("sip:ok@127.0.0.1:5070").unwrap(), &c.sidecar).await;
    let mut client = DialplanClient::connect(addr, "localhost", &c.switch, Duration::from_secs(5))
        .await
        .unwrap();
    // Connected and warm.
    client
        .route(request("someone", 9), Duration::from_secs(2))
        .await
        .unwrap();
    let deadline = Duration::from_millis(50);
    let t0 = Instant::now();
    let answer = client.route(request("stall", 9), deadline).await;
    let took = t0.elapsed();
    assert!(
        matches!(answer, Err(SidecarError::Timeout(_))),
        "{answer:?}"
    );
    // Well before the plugin's 300 ms stall ends.
    assert!(took < deadline + Duration::from_millis(150), "{took:?}");
    match client
        .route(request("panic", 9), Duration::from_secs(2))
        .await
    {
        Err(SidecarError::Status(tonic::Code::Internal, m)) => {
            assert!(m.contains("panicked"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client
            .route(request("bad-code", 9), Duration::from_secs(2))
            .await,
        Err(SidecarError::Invalid(_))
    ));
    client
        .route(request("someone", 9), Duration::from_secs(2))
        .await
        .unwrap();
}

/// A conversation's actions taken on its own, not in answer to an input,
/// go out on the stream as they are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_acts_on_its_own_between_inputs() {
    use sentiric_plugin_sdk::sidecar::{channel, tonic};
    use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};
    log();
    let ca = Ca::new("test CA").unwrap();
    let c = certs(&ca);
    let addr = start(Faulty::new("sip:ok@127.0.0.1:5070").unwrap(), &c.sidecar).await;
    let ch = channel(addr, "localhost", &c.switch, Duration::from_secs(5))
        .await
        .unwrap();
    let mut client = v1::agent_client::AgentClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let input = |i| v1::CallInput { input: Some(i) };
    tx.send(input(Input::Start(Box::default()))).await.unwrap();
    tx.send(input(Input::Dtmf(v1::Dtmf {
        digit: "4".into(),
        duration_ms: 100,
    })))
    .await
    .unwrap();
    let mut actions = client
        .converse(tonic::Request::new(Stream(rx)))
        .await
        .unwrap()
        .into_inner();
    // Nothing more is sent, and the answer comes.
    let a = tokio::time::timeout(Duration::from_secs(5), actions.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match a.action {
        Some(Action::CdrTags(t)) => assert_eq!(t.tags["later"], "4"),
        other => panic!("{other:?}"),
    }
    drop(tx);
}

/// Inputs from a channel, as a request stream.
struct Stream(tokio::sync::mpsc::Receiver<sentiric_plugin_sdk::v1::CallInput>);

impl futures_core::Stream for Stream {
    type Item = sentiric_plugin_sdk::v1::CallInput;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
