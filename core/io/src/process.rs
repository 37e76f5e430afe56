//! Child processes the switch runs beside itself (its sidecars).
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the process `cmd` starts get SIGTERM when the thread that
/// starts it ends, the switch's exit or a kill included: a sidecar the
/// switch runs never outlives it (`PR_SET_PDEATHSIG`). Start it from a
/// thread that lives as long as the child should.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: prctl is a system call
    // that allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
