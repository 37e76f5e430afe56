//! The io_uring backend: one multishot `recvmsg` per socket drawing from a
//! provided-buffer ring, every completion handled in one pass, and the
//! turn's sends submitted together.
//!
//! * **Receive.** Each socket has one `IORING_OP_RECVMSG` in multishot
//!   mode: the kernel picks a buffer from the ring for every datagram and
//!   keeps the operation armed. A buffer holds the kernel's
//!   `io_uring_recvmsg_out` header, the source address and the payload.
//!   Buffers go back to the ring once the handler has seen them.
//! * **Running dry.** When the ring has no buffer left the operation ends
//!   with `ENOBUFS`; it is counted and re-armed at the next turn (after the
//!   buffers of this turn are back). The ring is sized so this should not
//!   happen under the designed load; the counter says if it does.
//! * **Send.** What a turn's handlers and the worker queue (the worker
//!   between turns, with [`UringEngine::queue`]) becomes one
//!   `IORING_OP_SENDMSG` per datagram, submitted by the next turn's
//!   `io_uring_enter` — the same call that waits, for one completion
//!   beyond its own sends — so a steady loop makes one system call per
//!   turn, and a peer its sends wake runs while the worker sleeps rather
//!   than preempting it.
//!   The bytes stay in a second arena until their sends complete; a flush
//!   that finds the previous sends still in flight waits for them first
//!   (receive completions arriving meanwhile are kept for the next turn).
//! * **Task work.** On Linux 6.1+ the ring is set up for one issuer with
//!   deferred task work: the kernel's completion work for this worker runs
//!   when it waits, not by interrupting it, which measured 23% less CPU
//!   per relayed packet than the plain setup (`BENCHMARKS.md`). The thread
//!   that first polls becomes the issuer and must do every later poll.
//!   Older kernels get cooperative task work (5.19+) or the plain setup;
//!   [`UringEngine::setup`] says which.
#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, IoUring};

use crate::engine::{EngineStats, Outbox, PacketHandler, Pending, Token};
use crate::epoll::MAX_DATAGRAM;
use crate::sys;

const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_storage>();
/// `io_uring_recvmsg_out` (four u32) + source address + payload.
const BUF_LEN: usize = 16 + NAME_LEN + MAX_DATAGRAM;
/// The same for a socket added with [`UringEngine::add_large`]: a UDP
/// datagram of any size (SIP over UDP may be up to 65,535 bytes).
const LARGE_BUF_LEN: usize = 16 + NAME_LEN + crate::epoll::MAX_LARGE_DATAGRAM;
/// Large receive buffers: few sockets take them (SIP), and a buffer's
/// pages are touched only as far as its datagram reaches.
const LARGE_BUFFERS: u16 = 256;
const BGID: u16 = 0;
const LARGE_BGID: u16 = 1;
const SEND_BIT: u64 = 1 << 63;
/// In a receive's user data: its buffers come from the large ring.
const LARGE_BIT: u64 = 1 << 62;

/// Counters only this backend has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UringStats {
    /// Times the buffer ring ran dry (`ENOBUFS`) and a receive was re-armed.
    pub enobufs: u64,
    /// Multishot receives re-armed for any reason.
    pub rearms: u64,
}

/// The provided-buffer ring: page-aligned entries shared with the kernel,
/// and the slab the entries point into.
///
/// The slab is a raw allocation, not a `Vec`: the kernel writes into the
/// buffers it owns while the engine reads the ones it was handed, so no
/// reference to the whole slab may ever exist. Only a completed buffer is
/// turned into a slice, and only until it is pushed back.
struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    slab: *mut u8,
    slab_layout: Layout,
    mask: u16,
    tail: u16,
    /// Bytes of each buffer.
    len: usize,
}

impl BufRing {
    fn new(count: u16, len: usize) -> io::Result<BufRing> {
        let size = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        let layout = Layout::from_size_align(size.max(4096), 4096)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let slab_layout = Layout::from_size_align(usize::from(count) * len, 64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the layout has a non-zero size (count ≥ 8).
        let slab = unsafe { alloc_zeroed(slab_layout) };
        if slab.is_null() {
            // SAFETY: allocated just above with this layout.
            unsafe { dealloc(entries.cast(), layout) };
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut ring = BufRing {
            entries,
            layout,
            slab,
            slab_layout,
            mask: count - 1,
            tail: 0,
            len,
        };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Puts buffer `bid` back (visible to the kernel after `publish`).
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & self.mask);
        // SAFETY: `bid` is below the buffer count, so the offset stays
        // inside the slab allocation.
        let addr = unsafe { self.slab.add(usize::from(bid) * self.len) } as u64;
        // SAFETY: `slot` is below the entry count the allocation holds.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(addr);
        e.set_len(self.len as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry; its tail field is a
        // u16 the kernel reads, written here only, with release order so
        // the entries written before are seen first.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both allocated in `new` with these layouts; the ring
        // using them is dropped first (field order of `UringEngine`).
        unsafe {
            dealloc(self.entries.cast(), self.layout);
            dealloc(self.slab, self.slab_layout);
        }
    }
}

/// A per-core packet engine on io_uring.
pub struct UringEngine {
    ring: IoUring,
    bufs: BufRing,
    /// Buffers of [`LARGE_BUF_LEN`] for sockets added with `add_large`.
    large_bufs: BufRing,
    /// Per slot: its socket takes large buffers.
    large: Vec<bool>,
    /// The msghdr template of every multishot receive (name length only);
    /// boxed so its address stays fixed while operations are armed.
    recv_hdr: Box<libc::msghdr>,
    sockets: Vec<Option<UdpSocket>>,
    /// Per slot, bumped when a socket leaves it: completions of a removed
    /// socket's receive carry the old generation and are ignored.
    generations: Vec<u32>,
    to_arm: Vec<Token>,
    deferred: Vec<cqueue::Entry>,
    send_hdrs: Vec<libc::msghdr>,
    send_iovs: Vec<libc::iovec>,
    send_names: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    /// The datagrams of the sends in flight; their bytes stay put until
    /// every one has completed.
    sending: Outbox,
    inflight: usize,
    outbox: Outbox,
    stats: EngineStats,
    uring_stats: UringStats,
    /// Built disabled for a single issuer: enabled by the first poll.
    disabled: bool,
    setup: &'static str,
}

impl std::fmt::Debug for UringEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringEngine")
            .field("sockets", &self.sockets.len())
            .field("stats", &self.stats)
            .field("uring_stats", &self.uring_stats)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers (buffer ring, msghdrs) point into memory this
// engine owns; the engine is used from one thread at a time (`&mut self`).
unsafe impl Send for UringEngine {}

impl UringEngine {
    /// An engine with `buffers` receive buffers (rounded up to a power of
    /// two, at most 32768). Fails where io_uring is unavailable or refused
    /// (old kernel, seccomp, `io_uring_disabled`): use epoll there.
    pub fn new(buffers: u16) -> io::Result<UringEngine> {
        let count = buffers.clamp(8, 1 << 15).next_power_of_two();
        let cq = (u32::from(count) * 2).max(1024);
        // Linux 6.1+: completions' task work runs only when the worker
        // waits (DEFER_TASKRUN, one issuer), not by interrupting it. The
        // ring starts disabled so that the thread that first polls, not
        // the one that built the engine, becomes its issuer. Older
        // kernels: task work without interrupts (COOP_TASKRUN, 5.19+),
        // or plain.
        let (ring, setup) = match IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .build(256)
        {
            Ok(ring) => (ring, "defer_taskrun"),
            Err(_) => match IoUring::builder()
                .setup_cqsize(cq)
                .setup_coop_taskrun()
                .build(256)
            {
                Ok(ring) => (ring, "coop_taskrun"),
                Err(_) => (IoUring::builder().setup_cqsize(cq).build(256)?, "plain"),
            },
        };
        let bufs = BufRing::new(count, BUF_LEN)?;
        let large_bufs = BufRing::new(LARGE_BUFFERS, LARGE_BUF_LEN)?;
        // SAFETY: the entries and slabs live in `bufs` and `large_bufs`,
        // which the engine keeps until after the ring is dropped.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.entries as u64, count, BGID, 0)?;
            ring.submitter().register_buf_ring_with_flags(
                large_bufs.entries as u64,
                LARGE_BUFFERS,
                LARGE_BGID,
                0,
            )?;
        }
        // SAFETY: msghdr is plain old data; zero is a valid start.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = NAME_LEN as libc::socklen_t;
        Ok(UringEngine {
            ring,
            bufs,
            large_bufs,
            large: Vec::new(),
            recv_hdr,
            sockets: Vec::new(),
            generations: Vec::new(),
            to_arm: Vec::new(),
            deferred: Vec::new(),
            send_hdrs: Vec::new(),
            send_iovs: Vec::new(),
            send_names: Vec::new(),
            sending: Outbox::default(),
            inflight: 0,
            outbox: Outbox::default(),
            stats: EngineStats::default(),
            uring_stats: UringStats::default(),
            disabled: setup == "defer_taskrun",
            setup,
        })
    }

    /// Registers a socket for receiving; its receive is armed at the next
    /// turn. A datagram longer than [`MAX_DATAGRAM`] is dropped (and
    /// counted as truncated): for RTP.
    pub fn add(&mut self, sock: UdpSocket) -> io::Result<Token> {
        self.add_with(sock, false)
    }

    /// Registers a socket whose datagrams may be of any size (SIP over
    /// UDP): they are received into the large buffers.
    pub fn add_large(&mut self, sock: UdpSocket) -> io::Result<Token> {
        self.add_with(sock, true)
    }

    fn add_with(&mut self, sock: UdpSocket, large: bool) -> io::Result<Token> {
        sock.set_nonblocking(true)?;
        let slot = self.sockets.iter().position(Option::is_none);
        let token = Token(slot.unwrap_or(self.sockets.len()));
        match slot {
            Some(i) => {
                self.sockets[i] = Some(sock);
                self.large[i] = large;
            }
            None => {
                self.sockets.push(Some(sock));
                self.generations.push(0);
                self.large.push(large);
            }
        }
        self.to_arm.push(token);
        Ok(token)
    }

    /// Unregisters and returns a socket. Its armed receive ends when the
    /// socket is closed; completions for the token after that are ignored.
    pub fn remove(&mut self, token: Token) -> Option<UdpSocket> {
        let sock = self.sockets.get_mut(token.0)?.take()?;
        let armed = self.user_data(token);
        // The slot's next socket gets a new generation: what completes
        // for this one from now on is not taken for the next one's.
        self.generations[token.0] = self.generations[token.0].wrapping_add(1);
        let cancel = opcode::AsyncCancel::new(armed).build().user_data(u64::MAX);
        // SAFETY: the cancel entry carries no pointers.
        let _ = unsafe { self.ring.submission().push(&cancel) };
        if !self.disabled {
            let _ = self.ring.submit();
        }
        Some(sock)
    }

    /// What a receive's completions carry: slot, generation, and which
    /// ring its buffers come from.
    fn user_data(&self, token: Token) -> u64 {
        let large = if self.large[token.0] { LARGE_BIT } else { 0 };
        large | u64::from(self.generations[token.0] & 0x3fff_ffff) << 32 | token.0 as u64
    }

    /// Queues a datagram, sent by the next turn's `io_uring_enter`, the
    /// one that then waits.
    pub fn queue(&mut self, token: Token, to: std::net::SocketAddr, bytes: &[u8]) {
        self.outbox.push(token, to, bytes);
    }

    /// The socket behind a token.
    pub fn socket(&self, token: Token) -> Option<&UdpSocket> {
        self.sockets.get(token.0)?.as_ref()
    }

    /// The common counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// How the ring was set up: `defer_taskrun` (Linux 6.1+),
    /// `coop_taskrun` (5.19+) or `plain`.
    pub fn setup(&self) -> &'static str {
        self.setup
    }

    /// The io_uring counters.
    pub fn uring_stats(&self) -> UringStats {
        self.uring_stats
    }

    fn arm(&mut self) -> io::Result<()> {
        while let Some(token) = self.to_arm.pop() {
            let Some(fd) = self.socket(token).map(AsRawFd::as_raw_fd) else {
                continue;
            };
            let group = if self.large[token.0] {
                LARGE_BGID
            } else {
                BGID
            };
            let e = opcode::RecvMsgMulti::new(Fd(fd), &*self.recv_hdr, group)
                .build()
                .user_data(self.user_data(token));
            // SAFETY: `recv_hdr` is boxed and lives as long as the engine;
            // the socket stays open while registered.
            if unsafe { self.ring.submission().push(&e) }.is_err() {
                self.ring.submit()?;
                // SAFETY: as above; the queue was just drained.
                unsafe { self.ring.submission().push(&e) }
                    .map_err(|_| io::Error::other("submission queue full"))?;
            }
        }
        Ok(())
    }

    /// One loop turn: waits up to `timeout` (forever with `None`) for a
    /// completion, hands every received datagram to `handler`, then sends
    /// what it queued. Returns the number of datagrams received. With the
    /// `defer_taskrun` setup, the first poll makes its thread the ring's
    /// issuer: poll from that thread only (the kernel refuses others).
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut impl PacketHandler,
    ) -> io::Result<usize> {
        if self.disabled {
            self.ring.submitter().register_enable_rings()?;
            self.disabled = false;
        }
        self.arm()?;
        // What the last turn's handlers and the worker since queued.
        self.flush()?;
        if self.deferred.is_empty() {
            // UDP sends complete as they are submitted and post their
            // completions before the wait begins: wait for one more, so
            // that the call that sends also sleeps. (A peer woken by a send
            // then runs while this thread waits, instead of preempting it
            // on its way back from a system call of its own.)
            let want = self.inflight + 1;
            let r = match timeout {
                Some(d) => {
                    let ts = Timespec::from(d);
                    let args = SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(want, &args)
                }
                None => self.ring.submit_and_wait(want),
            };
            match r {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        } else {
            self.ring.submit()?;
        }
        self.stats.turns += 1;
        let now = Instant::now();
        let mut completions = std::mem::take(&mut self.deferred);
        completions.extend(self.ring.completion());
        let mut received = 0;
        for cqe in &completions {
            received += self.complete(cqe, now, handler);
        }
        completions.clear();
        self.deferred = completions;
        self.bufs.publish();
        self.large_bufs.publish();
        Ok(received)
    }

    /// Handles one completion; returns 1 for a datagram handed over.
    fn complete(
        &mut self,
        cqe: &cqueue::Entry,
        now: Instant,
        handler: &mut impl PacketHandler,
    ) -> usize {
        let data = cqe.user_data();
        if data == u64::MAX {
            return 0;
        }
        if data & SEND_BIT != 0 {
            self.send_completed(cqe.result());
            return 0;
        }
        let token = Token((data & 0xffff_ffff) as usize);
        let res = cqe.result();
        let flags = cqe.flags();
        let live = self.socket(token).is_some() && self.user_data(token) == data;
        if !cqueue::more(flags) && live {
            // The multishot receive ended: arm it again next turn.
            if res == -libc::ENOBUFS {
                self.uring_stats.enobufs += 1;
                metrics::counter!("sentiric_uring_enobufs_total").increment(1);
            }
            self.uring_stats.rearms += 1;
            self.to_arm.push(token);
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            return 0;
        };
        let mut handed = 0;
        // The ring the buffer came from: the receive's own (its user
        // data says), whatever the slot holds now.
        let ring = if data & LARGE_BIT != 0 {
            &mut self.large_bufs
        } else {
            &mut self.bufs
        };
        if res >= 0 && live {
            let len = (res as usize).min(ring.len);
            // SAFETY: the completion hands buffer `bid` of `ring` to us:
            // the kernel has finished writing its first `len` bytes and
            // will not touch it again until it is pushed back below, after
            // the last use of this slice; no other reference to it exists.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(ring.slab.add(usize::from(bid) * ring.len), len)
            };
            let parsed = RecvMsgOut::parse(buf, &self.recv_hdr).ok().map(|m| {
                (
                    m.is_payload_truncated(),
                    m.payload_data().len(),
                    m.name_data().len(),
                )
            });
            if let Some((truncated, plen, nlen)) = parsed {
                self.stats.received += 1;
                if truncated {
                    self.stats.truncated += 1;
                } else {
                    let name = &buf[16..16 + nlen];
                    let mut storage = sys::zeroed_storage();
                    // SAFETY: `name` holds `nlen` ≤ NAME_LEN bytes of a
                    // socket address the kernel wrote; storage has room.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            name.as_ptr(),
                            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                            nlen.min(NAME_LEN),
                        );
                    }
                    if let Some(from) = sys::to_socket_addr(&storage, nlen as libc::socklen_t) {
                        let start = 16 + NAME_LEN;
                        let payload = &mut buf[start..start + plen];
                        handler.on_packet(token, from, payload, now, &mut self.outbox);
                        handed = 1;
                    }
                }
            }
        }
        ring.push(bid);
        handed
    }

    /// Sends what is queued now, and returns once the kernel has taken it
    /// (a worker that is about to exit).
    pub fn send_queued(&mut self) -> io::Result<()> {
        self.flush()?;
        self.wait_sends()
    }

    /// Waits until every send in flight has completed. Receives completed
    /// meanwhile wait in `deferred`, in order, for the next turn.
    fn wait_sends(&mut self) -> io::Result<()> {
        while self.inflight > 0 {
            self.ring.submit_and_wait(1)?;
            let start = self.deferred.len();
            self.deferred.extend(self.ring.completion());
            let (stats, inflight) = (&mut self.stats, &mut self.inflight);
            let mut k = 0;
            self.deferred.retain(|cqe| {
                k += 1;
                let send =
                    k > start && cqe.user_data() != u64::MAX && cqe.user_data() & SEND_BIT != 0;
                if send {
                    *inflight = inflight.saturating_sub(1);
                    if cqe.result() < 0 {
                        stats.send_dropped += 1;
                    } else {
                        stats.sent += 1;
                    }
                }
                !send
            });
        }
        Ok(())
    }

    fn send_completed(&mut self, res: i32) {
        self.inflight = self.inflight.saturating_sub(1);
        if res < 0 {
            self.stats.send_dropped += 1;
        } else {
            self.stats.sent += 1;
        }
    }

    /// Queues the outbox: one SENDMSG per datagram, submitted by the next
    /// turn's single system call (which then waits), so a steady loop makes
    /// one `io_uring_enter` per turn. The previous turn's sends must have
    /// completed first (UDP sends complete at once; waiting is rare).
    fn flush(&mut self) -> io::Result<()> {
        if self.outbox.pending.is_empty() {
            return Ok(());
        }
        self.wait_sends()?;
        std::mem::swap(&mut self.outbox, &mut self.sending);
        self.outbox.clear();
        let pending = std::mem::take(&mut self.sending.pending);
        let n = pending.len();
        // SAFETY: msghdr is plain old data; zero is a valid start.
        self.send_hdrs.resize(n, unsafe { std::mem::zeroed() });
        self.send_iovs.resize(
            n,
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
        );
        self.send_names.resize(n, (sys::zeroed_storage(), 0));
        for (k, p) in pending.iter().enumerate() {
            let Some(fd) = self.socket(p.token).map(AsRawFd::as_raw_fd) else {
                self.stats.send_dropped += 1;
                continue;
            };
            self.prepare(k, p);
            let e = opcode::SendMsg::new(Fd(fd), &self.send_hdrs[k])
                .build()
                .user_data(SEND_BIT | k as u64);
            // SAFETY: the header, its iovec and name, and the bytes in
            // `sending` stay untouched until every send has completed:
            // the next flush waits for that before reusing them.
            while unsafe { self.ring.submission().push(&e) }.is_err() {
                self.ring.submit()?;
            }
            self.inflight += 1;
        }
        self.stats.send_calls += 1;
        self.sending.pending = pending;
        Ok(())
    }

    fn prepare(&mut self, k: usize, p: &Pending) {
        self.send_names[k] = sys::from_socket_addr(&p.to);
        self.send_iovs[k] = libc::iovec {
            iov_base: self.sending.data[p.start..].as_mut_ptr().cast(),
            iov_len: p.len,
        };
        let h = &mut self.send_hdrs[k];
        h.msg_name = (&mut self.send_names[k].0 as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = self.send_names[k].1;
        h.msg_iov = &mut self.send_iovs[k];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
    }
}
