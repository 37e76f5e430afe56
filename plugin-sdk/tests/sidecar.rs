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
        text.contains("the client's certificate is not signed by the CA given"),
        "{text}"
    );
    assert!(
        text.contains("the client's certificate has expired"),
        "{text}"
    );
}

/// The link between the switch and a sidecar is agreed with a
/// post-quantum key exchange (X25519MLKEM768, hybrid with X25519) when
/// the client offers it, as rustls' own default client does; a client
/// with the classical X25519 only is served too (grpcio's, in Python).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_agrees_a_post_quantum_key_exchange() {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    use rustls::NamedGroup;
    let ca = Ca::new("test CA").unwrap();
    let c = certs(&ca);
    let addr = start(PrefixDialplan::new(CONFIG).unwrap(), &c.sidecar).await;
    // The switch's own client: the sidecar says what it agreed.
    log();
    let mut client = DialplanClient::connect(addr, "localhost", &c.switch, Duration::from_secs(5))
        .await
        .unwrap();
    client
        .route(request("+4930", 9), Duration::from_secs(2))
        .await
        .unwrap();
    let said = format!("sidecar on {addr}: client ");
    let end = Instant::now() + Duration::from_secs(3);
    while logged(&said) == 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&said)).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("connected (TLS 1.3, X25519MLKEM768)"),
        "{}",
        lines[0]
    );
    // rustls' own client, and one with the classical X25519 only.
    let default = default_provider();
    assert_eq!(default.kx_groups[0].name(), NamedGroup::X25519MLKEM768);
    assert_eq!(
        agreed(addr, &c.switch, default).await,
        NamedGroup::X25519MLKEM768
    );
    let classical = rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519],
        ..default_provider()
    };
    assert_eq!(agreed(addr, &c.switch, classical).await, NamedGroup::X25519);
}

/// The key exchange a TLS 1.3 client on `provider` with the certificate
/// in `tls` agrees with the sidecar at `addr`.
async fn agreed(
    addr: std::net::SocketAddr,
    tls: &Tls,
    provider: rustls::crypto::CryptoProvider,
) -> rustls::NamedGroup {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(tls.ca.as_bytes()).unwrap())
        .unwrap();
    let chain: Vec<_> = CertificateDer::pem_slice_iter(tls.cert.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    stream
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .expect("a key exchange")
        .name()
}
