//! The data plane's IO for the Sentiric switch.
//!
//! * [`ports`]: the RTP port pool — even/odd pairs or single rtcp-mux
//!   ports from a configured range, partitioned per worker, with a
//!   quarantine before reuse.
//! * [`socket`]: UDP sockets through `socket2` with `SO_REUSEPORT`, buffer
//!   sizes and DSCP marking, IPv4 and IPv6.
//!
//! This is the crate that will hold the io_uring and epoll packet engines,
//! the only `unsafe` code of the workspace; what is here so far needs none.

pub mod ports;
pub mod socket;
