//! What the plugin tests share: the plugin libraries cargo built, and for
//! the sidecar tests development certificates, the sidecars' log, a
//! sidecar on a loopback port, requests.
// Each test file uses part of this.
#![allow(dead_code)]

use std::path::PathBuf;
#[cfg(feature = "sidecar")]
use std::sync::{Arc, Mutex, OnceLock};

#[cfg(feature = "sidecar")]
use sentiric_plugin_sdk::certs::{Ca, Role};
#[cfg(feature = "sidecar")]
use sentiric_plugin_sdk::sidecar::{self, Tls};
use sentiric_plugin_sdk::v1;

#[cfg(feature = "sidecar")]
/// What the sidecars log, for the refusal checks.
pub(crate) fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Writer(Arc::clone(&sink)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

#[cfg(feature = "sidecar")]
pub(crate) struct Writer(Arc<Mutex<Vec<u8>>>);

#[cfg(feature = "sidecar")]
impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "sidecar")]
pub(crate) fn logged(needle: &str) -> usize {
    String::from_utf8_lossy(&log().lock().unwrap())
        .matches(needle)
        .count()
}

#[cfg(feature = "sidecar")]
pub(crate) struct Certs {
    pub(crate) sidecar: Tls,
    pub(crate) switch: Tls,
}

#[cfg(feature = "sidecar")]
pub(crate) fn certs(ca: &Ca) -> Certs {
    let s = ca.issue(Role::Sidecar, "sidecar", &[], false).unwrap();
    let c = ca.issue(Role::Switch, "switch", &[], false).unwrap();
    Certs {
        sidecar: Tls {
            ca: ca.cert.clone(),
            cert: s.cert,
            key: s.key,
            ca_file: None,
        },
        switch: Tls {
            ca: ca.cert.clone(),
            cert: c.cert,
            key: c.key,
            ca_file: None,
        },
    }
}

#[cfg(feature = "sidecar")]
/// Serves `plugin` on a loopback port; its address.
pub(crate) async fn start<P: sentiric_plugin_sdk::Plugin>(
    plugin: P,
    tls: &Tls,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tls.clone();
    tokio::spawn(async move {
        sidecar::serve(plugin, listener, &tls, std::future::pending())
            .await
            .unwrap();
    });
    addr
}

pub(crate) fn request(user: &str, hour: i64) -> v1::RouteRequest {
    v1::RouteRequest {
        call_id: format!("{user}-{hour}"),
        user: user.into(),
        request_uri: format!("sip:{user}@127.0.0.1"),
        time_unix_us: (1_764_547_200 + hour * 3600) * 1_000_000,
        ..v1::RouteRequest::default()
    }
}

pub(crate) fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let file = format!("lib{name}.so");
    [deps.join(&file), deps.parent().unwrap().join(&file)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not built next to {}", exe.display()))
}
