//! Process limits a switch needs raised: every RTP port is a socket, so
//! the open-file limit bounds the calls a host can carry. And the C
//! allocator told to keep what is freed.
#![allow(unsafe_code)]

use std::io;

/// Raises the soft limit on open files to the hard limit; returns the
/// limit now in force.
pub fn raise_open_files() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit, read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// Has glibc's allocator keep freed memory for the next allocations
/// instead of giving the top of its heaps back to the kernel after frees
/// and growing them again (a system call and page faults each time): at
/// high call rates a worker's messages come and go by the thousand, and
/// perf at 200 calls/s found that trimming and growing at about a
/// twentieth of the switch's CPU. The heaps stay at their high-water
/// mark. `false` where the C library is not glibc.
pub fn keep_freed_memory() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets the allocator's tuning parameters;
        // any value is valid for M_TRIM_THRESHOLD and M_TOP_PAD.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) == 1
                && libc::mallopt(libc::M_TOP_PAD, 16 << 20) == 1
        }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_keeps_freed_memory_when_asked() {
        assert_eq!(super::keep_freed_memory(), cfg!(target_env = "gnu"));
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let n = super::raise_open_files().unwrap();
        let hard = {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: as above.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
            assert_eq!(lim.rlim_cur, lim.rlim_max);
            lim.rlim_max
        };
        assert_eq!(n, hard);
    }
}
