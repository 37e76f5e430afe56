//! The data plane's IO for the Sentiric switch.
//!
//! * [`affinity`]: pinning a worker thread to its core.
//! * [`limits`]: the open-file limit raised to what the host allows, and
//!   the allocator told to keep freed memory.
//! * [`process`]: child processes tied to the switch's life.
//! * [`ports`]: the RTP port pool — even/odd pairs or single rtcp-mux
//!   ports from a configured range, partitioned per worker, with a
//!   quarantine before reuse.
//! * [`socket`]: UDP sockets through `socket2` with `SO_REUSEPORT`, buffer
//!   sizes and DSCP marking, IPv4 and IPv6.
//! * [`timer`]: a hashed timing wheel for the deadlines of a worker's
//!   sans-IO objects, and the next one for the engine's wait.
//!
//! * [`engine`] and [`epoll`]: the packet engine — a worker's sockets, a
//!   handler called for every datagram, sends batched once per loop turn.
//!   Two backends pass the same tests: [`uring`] (multishot `recvmsg` on a
//!   provided-buffer ring, the turn's sends in one submission) and
//!   [`epoll`] (`recvmmsg`/`sendmmsg`), chosen by [`Engine::new`] — io_uring
//!   where the kernel allows it, epoll otherwise or by configuration.
//!
//! This is the one crate of the workspace with `unsafe` code: the system
//! calls in `affinity`, `epoll`, `limits`, `process`, `uring` and `sys`, each block with its `SAFETY:` comment.

#[cfg(target_os = "linux")]
pub mod affinity;
pub mod engine;
#[cfg(target_os = "linux")]
pub mod epoll;
#[cfg(target_os = "linux")]
pub mod limits;
pub mod ports;
#[cfg(target_os = "linux")]
pub mod process;
pub mod socket;
#[cfg(target_os = "linux")]
mod sys;
pub mod timer;
#[cfg(target_os = "linux")]
pub mod uring;

#[cfg(target_os = "linux")]
pub use engine::Engine;
pub use engine::{Backend, EngineStats, Outbox, PacketHandler, Token};
