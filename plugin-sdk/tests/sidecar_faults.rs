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
