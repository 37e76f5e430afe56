//! The epoll backend: level-triggered `epoll_wait`, `recvmmsg` to drain
//! each ready socket in batches, `sendmmsg` to send each socket's queued
//! datagrams in batches once per loop turn.
//!
//! It is the fallback where io_uring is unavailable or refused, and the
//! reference the io_uring backend is tested against.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::engine::{EngineStats, Outbox, PacketHandler, Token};
use crate::sys;

/// Largest datagram the receive buffers take whole.
pub const MAX_DATAGRAM: usize = 2048;

/// Largest datagram a socket added with `add_large` takes whole: any UDP
/// datagram (SIP over UDP may be up to 65,535 bytes).
pub const MAX_LARGE_DATAGRAM: usize = 65_535;

const NAME_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// A per-core packet engine on epoll.
#[derive(Debug)]
pub struct EpollEngine {
    epfd: OwnedFd,
    sockets: Vec<Option<UdpSocket>>,
    /// Per slot: its socket's datagrams may be of any size (read one by
    /// one into `large_buf`).
    large: Vec<bool>,
    large_buf: Vec<u8>,
    batch: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    /// Receive headers and their iovecs, pointing into `bufs` and `names`
    /// once and for all (set up in `new`).
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// How many receive headers the last `recvmmsg` wrote into (their
    /// name lengths and flags need resetting before the next call).
    dirty: usize,
    events: Vec<libc::epoll_event>,
    send_iovs: Vec<libc::iovec>,
    send_hdrs: Vec<libc::mmsghdr>,
    send_names: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    outbox: Outbox,
    stats: EngineStats,
}

// SAFETY: the raw pointers inside the iovecs and headers point into this
// engine's own heap buffers, which never move or shrink, and are only
// dereferenced by the kernel during calls made through `&mut self`.
unsafe impl Send for EpollEngine {}

impl EpollEngine {
    /// An engine that receives and sends up to `batch` datagrams per
    /// system call.
    pub fn new(batch: usize) -> io::Result<EpollEngine> {
        let batch = batch.clamp(1, 1024);
        // SAFETY: epoll_create1 takes no pointers; a negative return is
        // an error, anything else a new descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is plain old data; all-zero is a valid value
        // (null pointers, zero lengths), filled in before any use.
        let hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut e = EpollEngine {
            epfd,
            sockets: Vec::new(),
            large: Vec::new(),
            large_buf: Vec::new(),
            batch,
            bufs: vec![0; batch * MAX_DATAGRAM],
            names: vec![sys::zeroed_storage(); batch],
            iovs: vec![iov; batch],
            hdrs: vec![hdr; batch],
            dirty: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
            send_iovs: vec![iov; batch],
            send_hdrs: vec![hdr; batch],
            send_names: vec![(sys::zeroed_storage(), 0); batch],
            outbox: Outbox::default(),
            stats: EngineStats::default(),
        };
        // Receive headers point at their buffer, iovec and name for good:
        // a receive then only resets what the kernel wrote.
        let (bufs, names, iovs) = (
            e.bufs.as_mut_ptr(),
            e.names.as_mut_ptr(),
            e.iovs.as_mut_ptr(),
        );
        for i in 0..batch {
            // SAFETY: `i < batch`, and each Vec holds `batch` elements
            // (`bufs` holds `batch` buffers of MAX_DATAGRAM bytes).
            unsafe {
                *iovs.add(i) = libc::iovec {
                    iov_base: bufs.add(i * MAX_DATAGRAM).cast(),
                    iov_len: MAX_DATAGRAM,
                };
                let h = &mut e.hdrs[i].msg_hdr;
                h.msg_name = names.add(i).cast();
                h.msg_namelen = NAME_LEN;
                h.msg_iov = iovs.add(i);
                h.msg_iovlen = 1;
            }
        }
        Ok(e)
    }

    /// Registers a socket (it should be non-blocking) for receiving. A
    /// datagram longer than [`MAX_DATAGRAM`] is dropped (and counted as
    /// truncated): for RTP.
    pub fn add(&mut self, sock: UdpSocket) -> io::Result<Token> {
        self.add_with(sock, false)
    }

    /// Registers a socket whose datagrams may be of any size (SIP over
    /// UDP), received one by one.
    pub fn add_large(&mut self, sock: UdpSocket) -> io::Result<Token> {
        if self.large_buf.is_empty() {
            self.large_buf = vec![0; MAX_LARGE_DATAGRAM];
        }
        self.add_with(sock, true)
    }

    fn add_with(&mut self, sock: UdpSocket, large: bool) -> io::Result<Token> {
        sock.set_nonblocking(true)?;
        let slot = self.sockets.iter().position(Option::is_none);
        let token = Token(slot.unwrap_or(self.sockets.len()));
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token.0 as u64,
        };
        // SAFETY: both descriptors are open (the socket is owned by the
        // caller until we store it below); `ev` is a valid epoll_event.
        let r = unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        match slot {
            Some(i) => {
                self.sockets[i] = Some(sock);
                self.large[i] = large;
            }
            None => {
                self.sockets.push(Some(sock));
                self.large.push(large);
            }
        }
        Ok(token)
    }

    /// Unregisters and returns a socket.
    pub fn remove(&mut self, token: Token) -> Option<UdpSocket> {
        let sock = self.sockets.get_mut(token.0)?.take()?;
        // SAFETY: both descriptors are open; EPOLL_CTL_DEL ignores the event.
        unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                sock.as_raw_fd(),
                std::ptr::null_mut(),
            );
        }
        Some(sock)
    }

    /// Sends what is queued now (a worker that is about to exit).
    pub fn send_queued(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// Queues a datagram, sent by the next turn before it waits.
    pub fn queue(&mut self, token: Token, to: std::net::SocketAddr, bytes: &[u8]) {
        self.outbox.push(token, to, bytes);
    }

    /// The socket behind a token.
    pub fn socket(&self, token: Token) -> Option<&UdpSocket> {
        self.sockets.get(token.0)?.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// One loop turn: waits up to `timeout` (forever with `None`) for a
    /// socket to be readable, hands every datagram waiting on every ready
    /// socket to `handler`, then sends what it queued. Returns the number
    /// of datagrams received.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut impl PacketHandler,
    ) -> io::Result<usize> {
        // What was queued between turns goes out before the wait.
        self.flush()?;
        let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `events` is a valid buffer of `len` epoll_event entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.stats.turns += 1;
        let now = Instant::now();
        let mut received = 0;
        for i in 0..n as usize {
            let token = Token(self.events[i].u64 as usize);
            let Some(fd) = self.socket(token).map(AsRawFd::as_raw_fd) else {
                continue;
            };
            received += if self.large[token.0] {
                self.drain_large(token, now, handler)?
            } else {
                self.drain(fd, token, now, handler)?
            };
        }
        self.flush()?;
        Ok(received)
    }

    /// Receives from a large socket until it would block, a datagram at
    /// a time.
    fn drain_large(
        &mut self,
        token: Token,
        now: Instant,
        handler: &mut impl PacketHandler,
    ) -> io::Result<usize> {
        let Some(sock) = self.sockets.get(token.0).and_then(Option::as_ref) else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            match sock.recv_from(&mut self.large_buf) {
                Ok((n, from)) => {
                    self.stats.receive_calls += 1;
                    self.stats.received += 1;
                    total += 1;
                    handler.on_packet(token, from, &mut self.large_buf[..n], now, &mut self.outbox);
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(total),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused => {}
                    _ => return Err(e),
                },
            }
        }
    }

    /// Receives from one socket until it would block.
    fn drain(
        &mut self,
        fd: RawFd,
        token: Token,
        now: Instant,
        handler: &mut impl PacketHandler,
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            for h in &mut self.hdrs[..self.dirty] {
                h.msg_hdr.msg_namelen = NAME_LEN;
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: every header points at this engine's buffers with
            // their true lengths (set up in `new`); they outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(total),
                    io::ErrorKind::Interrupted => continue,
                    // An ICMP error queued on the socket: not ours to stop for.
                    io::ErrorKind::ConnectionRefused => continue,
                    _ => Err(e),
                };
            }
            self.stats.receive_calls += 1;
            let n = n as usize;
            self.dirty = n;
            for i in 0..n {
                let h = &self.hdrs[i];
                if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    self.stats.truncated += 1;
                    continue;
                }
                let Some(from) = sys::to_socket_addr(&self.names[i], h.msg_hdr.msg_namelen) else {
                    continue;
                };
                let len = (h.msg_len as usize).min(MAX_DATAGRAM);
                // SAFETY: buffer `i` lies inside `bufs`, the kernel has
                // finished writing it, and no other reference to it exists
                // (the iovecs hold raw pointers, used only inside system
                // calls); the slice is gone before the next call.
                let data = unsafe {
                    std::slice::from_raw_parts_mut(
                        self.bufs.as_mut_ptr().add(i * MAX_DATAGRAM),
                        len,
                    )
                };
                handler.on_packet(token, from, data, now, &mut self.outbox);
            }
            self.stats.received += n as u64;
            total += n;
            if n < self.batch {
                return Ok(total);
            }
        }
    }

    /// Sends the outbox, consecutive datagrams of one socket per call.
    fn flush(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.outbox.pending);
        let mut i = 0;
        while i < pending.len() {
            let token = pending[i].token;
            let mut j = i;
            while j < pending.len() && pending[j].token == token && j - i < self.batch {
                j += 1;
            }
            match self.socket(token).map(AsRawFd::as_raw_fd) {
                Some(fd) => self.send_run(fd, &pending[i..j]),
                None => self.stats.send_dropped += (j - i) as u64,
            }
            i = j;
        }
        self.outbox.pending = pending;
        self.outbox.clear();
        Ok(())
    }

    fn send_run(&mut self, fd: RawFd, run: &[crate::engine::Pending]) {
        for (k, p) in run.iter().enumerate() {
            self.send_names[k] = sys::from_socket_addr(&p.to);
            self.send_iovs[k] = libc::iovec {
                iov_base: self.outbox.data[p.start..].as_mut_ptr().cast(),
                iov_len: p.len,
            };
        }
        for k in 0..run.len() {
            let h = &mut self.send_hdrs[k].msg_hdr;
            h.msg_name = (&mut self.send_names[k].0 as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.send_names[k].1;
            h.msg_iov = &mut self.send_iovs[k];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut done = 0;
        while done < run.len() {
            // SAFETY: headers `done..run.len()` point at `send_names` and at
            // outbox bytes of the stated lengths, all owned by `self` and
            // unchanged during the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdrs[done..].as_mut_ptr(),
                    (run.len() - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            self.stats.send_calls += 1;
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram failed (buffer full, unreachable):
                // drop it and carry on with the rest.
                self.stats.send_dropped += 1;
                done += 1;
                continue;
            }
            self.stats.sent += n as u64;
            done += n as usize;
        }
    }
}
