//! `sentiric route-test`: a dialplan plugin asked for its decision on a
//! call made up from the command line, without SIP — a library loaded as
//! the switch loads one (from a private copy, made with its
//! configuration), or a sidecar reached as the switch reaches one (mTLS
//! with the switch's certificate). The decision is checked as the
//! switch checks it ([`sentiric_plugin_sdk::check_decision`]) and
//! printed as JSON with the request it answers.

use std::time::Duration;

use sentiric_plugin_sdk::host::{CallError, Library};
use sentiric_plugin_sdk::sidecar::{self, DialplanClient, Tls};
use sentiric_plugin_sdk::testing::Call;
use sentiric_plugin_sdk::v1;

use crate::cli::{RouteTestArgs, TransportArg};

/// How `route-test` went wrong.
pub(crate) enum Failed {
    /// The command line, or a library or file it names (exit status 2).
    Usage(String),
    /// The plugin: an error, a panic, a decision the switch would
    /// refuse, no answer (exit status 1).
    Plugin(String),
}

/// Asks the plugin `args` names and prints the request and its decision.
pub(crate) fn run(args: &RouteTestArgs) -> Result<(), Failed> {
    let request = request(args);
    let decision = match (&args.plugin, args.sidecar) {
        (Some(lib), _) => from_library(lib, args, &request)?,
        (None, Some(addr)) => from_sidecar(addr, args, &request)?,
        (None, None) => return Err(Failed::Usage("--plugin or --sidecar".into())),
    };
    let out = serde_json::json!({ "request": request, "decision": decision });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| Failed::Usage(e.to_string()))?
    );
    if let Some(v1::route_decision::Action::Decline(_)) = decision.action {
        eprintln!("declined: the switch's [dialplan] rules decide this call");
    }
    Ok(())
}

/// The call the arguments describe, as the switch would pass it (the
/// SDK's test call: what a plugin's own tests send).
fn request(args: &RouteTestArgs) -> v1::RouteRequest {
    let transport = match args.transport {
        TransportArg::Udp => "udp",
        TransportArg::Tcp => "tcp",
        TransportArg::Tls => "tls",
    };
    let call = args.headers.iter().fold(
        Call::to(args.user.clone())
            .from(args.from.clone())
            .source(args.source.to_string())
            .transport(transport),
        |call, (name, value)| call.header(name, value.clone()),
    );
    call.into_request()
}

fn from_library(
    path: &std::path::Path,
    args: &RouteTestArgs,
    request: &v1::RouteRequest,
) -> Result<v1::RouteDecision, Failed> {
    let config = match &args.config {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Failed::Usage(format!("--config {}: {e}", p.display())))?,
        None => String::new(),
    };
    let lib = Library::open(path).map_err(|e| Failed::Usage(e.to_string()))?;
    let name = lib
        .info()
        .map_err(|e| Failed::Plugin(format!("{}: {e}", path.display())))?
        .name;
    // Made, it says what it serves.
    let info = lib.init(&config).map_err(|e| {
        Failed::Plugin(format!(
            "plugin {name} refused its configuration: {}",
            plain(e)
        ))
    })?;
    if !info.services.iter().any(|s| s == "dialplan") {
        return Err(Failed::Usage(format!(
            "{}: plugin {} serves {}, not dialplan",
            path.display(),
            info.name,
            if info.services.is_empty() {
                "nothing".to_string()
            } else {
                info.services.join(", ")
            }
        )));
    }
    eprintln!(
        "plugin {} {} (build id {}) from {}",
        info.name,
        info.version,
        lib.build_id().unwrap_or("none"),
        path.display()
    );
    lib.route(request)
        .map_err(|e| Failed::Plugin(format!("plugin {}: {e}", info.name)))
}

/// A plugin's error, without the host's words around it.
fn plain(e: CallError) -> String {
    match e {
        CallError::Failed(m) => m,
        other => other.to_string(),
    }
}

fn from_sidecar(
    addr: std::net::SocketAddr,
    args: &RouteTestArgs,
    request: &v1::RouteRequest,
) -> Result<v1::RouteDecision, Failed> {
    let file = |name: &str| args.certs.join(name);
    let tls = Tls::from_files(
        &file("ca.pem"),
        &file("switch.pem"),
        &file("switch-key.pem"),
    )
    .map_err(|e| Failed::Usage(format!("--certs {}: {e}", args.certs.display())))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::Usage(e.to_string()))?;
    let deadline = Duration::from_millis(args.deadline_ms);
    rt.block_on(async {
        let channel = sidecar::channel(addr, &args.server_name, &tls, Duration::from_secs(5))
            .await
            .map_err(|e| Failed::Plugin(format!("sidecar {addr}: cannot connect: {e}")))?;
        DialplanClient::from_channel(channel)
            .route(request.clone(), deadline)
            .await
            .map_err(|e| Failed::Plugin(format!("sidecar {addr}: {e}")))
    })
}
