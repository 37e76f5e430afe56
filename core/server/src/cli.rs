//! The command line, as clap derives it: every subcommand's help on
//! standard output with exit status 0, unknown flags named, and the same
//! definition behind `sentiric completions SHELL` and `sentiric man`.
//!
//! Exit status: 0 done (a call answered); 1 it failed (a call not
//! answered, the switch stopped by an error); 2 the command line or the
//! config is wrong, or a file it names cannot be read; 130 a second
//! SIGINT.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What the exit statuses mean, shown under every help.
const EXIT_STATUS: &str = "Exit status: 0 done; 1 failed (a call not answered, the switch \
stopped by an error); 2 a wrong command line, config or file; 130 a second SIGINT.";

/// A SIP/RTP media switch: a B2BUA that anchors media on its own RTP
/// ports, with call logic in plugins.
#[derive(Debug, Parser)]
#[command(name = "sentiric", version, after_help = EXIT_STATUS, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the switch (with no config: the embedded default on loopback,
    /// the demo dialplan)
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// Check a config file, naming the bad key
    #[command(after_help = EXIT_STATUS)]
    CheckConfig {
        /// The TOML file (SENTIRIC_<SECTION>_<KEY> variables apply on top)
        file: PathBuf,
    },
    /// Place one call and print a JSON summary (a small user agent for
    /// people and tests)
    #[command(after_help = EXIT_STATUS)]
    Call(CallArgs),
    /// Read the event outbox
    #[command(subcommand, after_help = EXIT_STATUS)]
    Events(EventsCommand),
    /// The CDR consumer (events from the broker into [cdr] database), or
    /// `cdr list`
    #[command(after_help = EXIT_STATUS)]
    Cdr(CdrArgs),
    /// Development certificates for mTLS with plugin sidecars
    #[command(subcommand, after_help = EXIT_STATUS)]
    Certs(CertsCommand),
    /// Ask a dialplan plugin (a library, or a sidecar over mTLS) for its
    /// decision on a call, without SIP: the decision as JSON, checked as
    /// the switch checks it
    #[command(after_help = ROUTE_TEST_STATUS)]
    RouteTest(RouteTestArgs),
    /// Start a plugin of your own
    #[command(subcommand, after_help = EXIT_STATUS)]
    Plugin(PluginCommand),
    /// Print a shell completion script
    #[command(after_help = EXIT_STATUS)]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(after_help = EXIT_STATUS)]
    Man,
}

/// `sentiric run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The config file (TOML); without it, the embedded default
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where SIP listens, UDP and TCP (over [sip] listen)
    #[arg(long, value_name = "IP:PORT", value_parser = ip_port)]
    pub(crate) listen: Option<SocketAddr>,
    /// Where health and metrics are served (over [http] listen)
    #[arg(long, value_name = "IP:PORT", value_parser = ip_port)]
    pub(crate) http_listen: Option<SocketAddr>,
}

/// What `route-test`'s exit statuses mean.
const ROUTE_TEST_STATUS: &str = "Exit status: 0 a decision the switch would carry out \
(a decline included); 1 the plugin failed, or its decision would be refused; 2 a wrong \
command line, or a library or file that cannot be loaded or read.

Example: sentiric route-test --plugin target/release/libmy_dialplan.so --config trunk.conf \
--user +4930123 --header 'P-Asserted-Identity: <sip:+4930999@carrier.example>'";

/// `sentiric route-test`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("plugin_or_sidecar").required(true).args(["plugin", "sidecar"]))]
pub(crate) struct RouteTestArgs {
    /// A dialplan plugin library (a cdylib made with export_plugin!)
    #[arg(long, value_name = "LIB.so")]
    pub(crate) plugin: Option<PathBuf>,
    /// A dialplan sidecar to ask, over mTLS with the switch's certificate
    #[arg(long, value_name = "IP:PORT", value_parser = ip_port)]
    pub(crate) sidecar: Option<SocketAddr>,
    /// The library's configuration: the text its Plugin::new gets
    /// (without it, empty)
    #[arg(long, value_name = "FILE", requires = "plugin")]
    pub(crate) config: Option<PathBuf>,
    /// The sidecar's mTLS files: ca.pem, switch.pem, switch-key.pem, as
    /// `sentiric certs init` makes them
    #[arg(
        long,
        value_name = "DIR",
        default_value = "certs",
        requires = "sidecar"
    )]
    pub(crate) certs: PathBuf,
    /// The name the sidecar's certificate must carry
    #[arg(
        long,
        value_name = "NAME",
        default_value = "localhost",
        requires = "sidecar"
    )]
    pub(crate) server_name: String,
    /// How long the sidecar may take to answer, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1000, requires = "sidecar")]
    pub(crate) deadline_ms: u64,
    /// The called user: the Request-URI's user part
    #[arg(long, value_name = "USER")]
    pub(crate) user: String,
    /// The caller: the From URI (its user part becomes from_user)
    #[arg(long, value_name = "URI", default_value = "sip:caller@127.0.0.1")]
    pub(crate) from: String,
    /// A header of the INVITE passed to the dialplan, as `Name: value`
    /// (repeat it for more; the switch passes those [plugins]
    /// route_headers names)
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Where the INVITE came from
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:5060", value_parser = ip_port)]
    pub(crate) source: SocketAddr,
    /// Its transport
    #[arg(long, value_enum, default_value = "udp")]
    pub(crate) transport: TransportArg,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS
    Tls,
}

/// A `Name: value` header, its name lower case as the switch passes it.
fn header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("NAME: VALUE expected, got {s:?}"))?;
    let name = name.trim();
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    if !token {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

/// `sentiric call`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CallArgs {
    /// The SIP URI to call (sip:USER@IP[:PORT]; UDP only)
    pub(crate) uri: String,
    /// A WAV file to send (8 kHz mono, 16-bit); without it, a 440 Hz
    /// test tone, half a second on and off
    #[arg(long, value_name = "FILE.wav")]
    pub(crate) play: Option<PathBuf>,
    /// Where to record what is heard (checked before dialling)
    #[arg(long, value_name = "FILE.wav")]
    pub(crate) record: Option<PathBuf>,
    /// DTMF digits to send as RFC 4733 events once answered
    #[arg(long, value_name = "DIGITS", default_value = "", value_parser = dtmf_digits)]
    pub(crate) dtmf: String,
    /// Hang up after this many seconds (without it: half a second after
    /// the --play file ends, or after 5 s of test tone; sooner when the
    /// far end hangs up)
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub(crate) duration: Option<std::time::Duration>,
    /// The local address to call from
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// Offer only this codec (both G.711 laws without it)
    #[arg(long, value_enum)]
    pub(crate) codec: Option<CodecArg>,
}

/// `--codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CodecArg {
    /// G.711 µ-law
    Pcmu,
    /// G.711 A-law
    Pcma,
    /// Opus (48 kHz RTP clock)
    Opus,
}

/// An address with its port, said so when the port is missing.
pub(crate) fn ip_port(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("IP:PORT expected (an address and a port, e.g. 127.0.0.1:5060), got {s:?}")
    })
}

fn dtmf_digits(s: &str) -> Result<String, String> {
    match s
        .chars()
        .find(|c| sentiric_rtp::dtmf::char_event(*c).is_none())
    {
        Some(c) => Err(format!("{c:?} is not a DTMF digit (0-9, *, #, A-D)")),
        None => Ok(s.to_string()),
    }
}

fn seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s}: not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s}: 0 to 86400 seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

/// `sentiric events …`.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Print the outbox's last events, one JSON object a line, oldest first
    #[command(after_help = EXIT_STATUS)]
    Tail(TailArgs),
}

/// `sentiric events tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The switch's config file: its [events] outbox (a relative path is
    /// the config file's directory's)
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The outbox directory itself
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub(crate) dir: Option<PathBuf>,
    /// How many of the last events
    #[arg(short = 'n', default_value_t = 20)]
    pub(crate) n: usize,
    /// Keep printing events as the switch writes them
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
}

/// `sentiric cdr`.
#[derive(Debug, Args)]
pub(crate) struct CdrArgs {
    #[command(subcommand)]
    pub(crate) list: Option<CdrCommand>,
    /// The config file: [cdr] database, [events] broker and exchange
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
}

/// `sentiric cdr list`.
#[derive(Debug, Subcommand)]
pub(crate) enum CdrCommand {
    /// Print the CDRs of the last `--since` seconds, newest first, one JSON
    /// object a line
    #[command(after_help = EXIT_STATUS)]
    List {
        /// How far back, in seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        since: u64,
        /// At most this many
        #[arg(short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        n: u32,
    },
}

/// `sentiric plugin …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Make a dialplan plugin crate in DIR/NAME: the library the switch
    /// loads, the same plugin as a sidecar binary (feature `sidecar`),
    /// its tests, and a README with the commands
    #[command(after_help = EXIT_STATUS)]
    New {
        /// The plugin's name, its crate's (e.g. my-dialplan)
        name: String,
        /// Where to make it
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The plugin SDK's source (without it: the one this binary was
        /// built from)
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

/// `sentiric certs …`.
#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Make a development CA, a sidecar and a switch certificate in DIR
    #[command(after_help = EXIT_STATUS)]
    Init {
        /// The directory (made if missing; refused if it holds a CA already)
        dir: PathBuf,
    },
}

/// The man page of the whole command, from its definition.
pub(crate) fn man() -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())
}

/// A completion script for `shell`, from the definition.
pub(crate) fn completions(shell: clap_complete::Shell) {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "sentiric", &mut std::io::stdout().lock());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
