//! Plugins as gRPC sidecars over mTLS: the example dialplan served over
//! loopback gives the same decisions as the same library loaded in
//! process; clients without a certificate, with one from another CA or
//! an expired one are refused at the handshake, and each refusal is
//! logged.

#![cfg(all(feature = "sidecar", feature = "host"))]

mod common;

use std::time::{Duration, Instant};

use common::{built, certs, log, logged, request, start};
use sentiric_plugin_prefix_dialplan::PrefixDialplan;
use sentiric_plugin_sdk::certs::{Ca, Role};
use sentiric_plugin_sdk::host::Library;
use sentiric_plugin_sdk::sidecar::{DialplanClient, SidecarError, Tls};
use sentiric_plugin_sdk::{v1, Plugin};

const CONFIG: &str = "[[route]]\nprefix = \"+4930\"\ntargets = [\"sip:berlin@127.0.0.1:5070\"]\n\
    [[route]]\nprefix = \"+49\"\ntargets = [\"sip:de@127.0.0.1:5071\"]\nhours = \"08:00-18:00\"\n\
    closed_targets = [\"sip:vm@127.0.0.1:5072\"]\n[default]\ncode = 404\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_decides_as_the_cdylib_does() {
    log();
    let ca = Ca::new("test CA").unwrap();
    let c = certs(&ca);
    let addr = start(PrefixDialplan::new(CONFIG).unwrap(), &c.sidecar).await;
    let mut client = DialplanClient::connect(addr, "localhost", &c.switch, Duration::from_secs(5))
        .await
        .unwrap();
    let lib = Library::open(&built("sentiric_plugin_prefix_dialplan")).unwrap();
    lib.init(CONFIG).unwrap();
    let mut n = 0;
    for user in ["+4930123", "+4989123", "+1555", "0800"] {
        for hour in [3, 9, 17, 23] {
            let req = request(user, hour);
            let over_grpc = client
                .route(req.clone(), Duration::from_secs(2))
                .await
                .unwrap();
            assert_eq!(over_grpc, lib.route(&req).unwrap(), "{user} at {hour}:00");
            n += 1;
        }
    }
    assert_eq!(n, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_right_certificate_are_refused_and_logged() {
    log();
    let ca = Ca::new("test CA").unwrap();
    let c = certs(&ca);
    let addr = start(PrefixDialplan::new(CONFIG).unwrap(), &c.sidecar).await;
    let before = logged("handshake with 127.0.0.1");
    // Another CA's client certificate.
    let other = certs(&Ca::new("another CA").unwrap());
    let foreign = Tls {
        ca: ca.cert.clone(),
        ..other.switch
    };
    // The right CA, expired.
    let old = ca.issue(Role::Switch, "switch", &[], true).unwrap();
    let expired = Tls {
        ca: ca.cert.clone(),
        cert: old.cert,
        key: old.key,
        ca_file: None,
    };
    for (what, tls) in [("another CA", foreign), ("expired", expired)] {
        let answer =
            match DialplanClient::connect(addr, "localhost", &tls, Duration::from_secs(5)).await {
                Ok(mut client) => {
                    client
                        .route(request("+4930", 9), Duration::from_secs(2))
                        .await
                }
                Err(e) => Err(e),
            };
        assert!(
            matches!(
                answer,
                Err(SidecarError::Transport(_) | SidecarError::Status(..))
            ),
            "{what}: {answer:?}"
        );
    }
    // No client certificate at all.
    let bare = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca.cert))
                .domain_name("localhost"),
        )
        .unwrap();
    let answer = match bare.connect().await {
        Ok(ch) => v1::dialplan_client::DialplanClient::new(ch)
            .route(request("+4930", 9))
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(answer.is_err(), "no certificate: {answer:?}");
    // Each refusal is in the sidecar's log.
    let end = Instant::now() + Duration::from_secs(3);
    while logged("handshake with 127.0.0.1") < before + 3 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    assert!(logged("handshake with 127.0.0.1") >= before + 3, "{text}");
    assert!(text.contains("refused"), "{text}");
    // Said in words: the client's certificate and the CA.
    assert!(
        text.contains("the client's certificate is not signed by the CA given")
            || text.contains("the client's certificate has expired"),
        "{text}"
    );
}
