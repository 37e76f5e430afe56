//! The C ABI between the switch and an in-process plugin, version
//! [`ABI_VERSION`].
//!
//! A plugin library exports three functions (the [`export_plugin!`]
//! macro writes them):
//!
//! ```c
//! uint32_t sentiric_plugin_abi_version(void);
//! int32_t  sentiric_plugin_call(uint32_t method, const uint8_t *input,
//!                               size_t len, SentiricBuffer *out);
//! void     sentiric_plugin_free(SentiricBuffer buf);
//! ```
//!
//! `sentiric_plugin_call` takes a method ([`METHOD_INFO`], [`METHOD_INIT`],
//! [`METHOD_ROUTE`]) and its request, a protobuf message of
//! `sentiric.plugin.v1`, and writes its answer into `out`: on [`OK`] the
//! method's reply message, on any other status a `PluginError`. What it
//! wrote is the plugin's memory, given back with `sentiric_plugin_free`.
//! The plugin catches its own panics: a panic is the status [`PANICKED`],
//! never an unwind into the switch. A host refuses a library whose
//! version is not its own.
//!
//! [`export_plugin!`]: crate::export_plugin

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use prost::Message;

use crate::{v1, Plugin, PluginError};

/// The version of this ABI. A change to the functions, the buffer or the
/// meaning of a method or status is a new version.
pub const ABI_VERSION: u32 = 1;

/// What the library holds, before it is made (the request is empty); the
/// reply is a `PluginInfo` with no services yet.
pub const METHOD_INFO: u32 = 0;
/// Makes the plugin from its configuration (the request is the config
/// text, UTF-8); the reply is a `PluginInfo`.
pub const METHOD_INIT: u32 = 1;
/// `Dialplan.Route`: a `RouteRequest` in, a `RouteDecision` out.
pub const METHOD_ROUTE: u32 = 2;

/// The call succeeded.
pub const OK: i32 = 0;
/// The request did not decode.
pub const BAD_REQUEST: i32 = 1;
/// The plugin returned an error.
pub const FAILED: i32 = 2;
/// The plugin panicked (the panic's message is the error).
pub const PANICKED: i32 = 3;
/// The plugin does not implement the method.
pub const UNKNOWN_METHOD: i32 = 4;
/// A method other than init before a successful init.
pub const NOT_INITIALISED: i32 = 5;

/// Bytes the plugin allocated for the host: a `Vec<u8>`'s parts.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    /// The first byte.
    pub ptr: *mut u8,
    /// The bytes in use.
    pub len: usize,
    /// The allocation's capacity.
    pub cap: usize,
}

impl Buffer {
    /// Gives up `v` to the host.
    pub fn from_vec(v: Vec<u8>) -> Buffer {
        let mut v = std::mem::ManuallyDrop::new(v);
        Buffer {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }

    /// An empty buffer (nothing to free).
    pub fn empty() -> Buffer {
        Buffer {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }
}

/// The plugin a library holds, made by its first successful init.
#[doc(hidden)]
pub type Instance = OnceLock<Box<dyn Plugin>>;

/// `sentiric_plugin_call` for the plugin `P` in `instance`: the body the
/// [`export_plugin!`](crate::export_plugin) macro gives the export.
///
/// # Safety
///
/// `input` must point to `len` readable bytes (or `len` be 0), and `out`
/// to a writable [`Buffer`], for the length of the call: the host's side
/// of the ABI guarantees both.
#[doc(hidden)]
pub unsafe fn call<P: Plugin>(
    instance: &Instance,
    name: &str,
    version: &str,
    method: u32,
    input: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32 {
    let input: &[u8] = if len == 0 || input.is_null() {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `input`
        // for the call; they are only read, and not kept after it.
        unsafe { std::slice::from_raw_parts(input, len) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        dispatch::<P>(instance, name, version, method, input)
    }));
    let (status, bytes) = match result {
        Ok(Ok(reply)) => (OK, reply),
        Ok(Err((status, message))) => (status, v1::PluginError { message }.encode_to_vec()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            (
                PANICKED,
                v1::PluginError {
                    message: format!("panicked: {message}"),
                }
                .encode_to_vec(),
            )
        }
    };
    if !out.is_null() {
        // SAFETY: the caller guarantees `out` is writable for the call;
        // what was there is not read (the host passes an empty buffer).
        unsafe { out.write(Buffer::from_vec(bytes)) };
    }
    status
}

fn dispatch<P: Plugin>(
    instance: &Instance,
    name: &str,
    version: &str,
    method: u32,
    input: &[u8],
) -> Result<Vec<u8>, (i32, String)> {
    if method == METHOD_INFO {
        return Ok(v1::PluginInfo {
            name: name.into(),
            version: version.into(),
            services: Vec::new(),
        }
        .encode_to_vec());
    }
    if method == METHOD_INIT {
        let config = std::str::from_utf8(input)
            .map_err(|_| (BAD_REQUEST, "the configuration is not UTF-8".to_string()))?;
        if instance.get().is_none() {
            let plugin = P::new(config).map_err(|PluginError(e)| (FAILED, e))?;
            let _ = instance.set(Box::new(plugin));
        }
        let plugin = instance.get().ok_or((NOT_INITIALISED, String::new()))?;
        let mut services = Vec::new();
        if plugin.dialplan().is_some() {
            services.push("dialplan".to_string());
        }
        return Ok(v1::PluginInfo {
            name: name.into(),
            version: version.into(),
            services,
        }
        .encode_to_vec());
    }
    let plugin = instance
        .get()
        .ok_or((NOT_INITIALISED, "not initialised".to_string()))?;
    match method {
        METHOD_ROUTE => {
            let dialplan = plugin
                .dialplan()
                .ok_or((UNKNOWN_METHOD, "not a dialplan".to_string()))?;
            // Decoded into the thread's request of the last call: its
            // strings keep their capacity, so no call allocates for them
            // once the first has.
            REQUEST.with_borrow_mut(|request| {
                request.clear();
                request
                    .merge(input)
                    .map_err(|e| (BAD_REQUEST, format!("RouteRequest: {e}")))?;
                dialplan
                    .route(request)
                    .map(|d| d.encode_to_vec())
                    .map_err(|PluginError(e)| (FAILED, e))
            })
        }
        other => Err((UNKNOWN_METHOD, format!("method {other}"))),
    }
}

thread_local! {
    /// The request of the thread's last route call, reused.
    static REQUEST: std::cell::RefCell<v1::RouteRequest> =
        std::cell::RefCell::new(v1::RouteRequest::default());
}

/// `sentiric_plugin_free`: takes back a buffer `call` gave out.
///
/// # Safety
///
/// `buf` must be a buffer this library's `sentiric_plugin_call` wrote,
/// freed once.
#[doc(hidden)]
pub unsafe fn free(buf: Buffer) {
    if !buf.ptr.is_null() {
        // SAFETY: the buffer is a Vec<u8>'s parts as `Buffer::from_vec`
        // gave them up, in this library's allocator, freed once (the
        // caller's guarantee).
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }
}

/// Makes the crate an in-process plugin: exports the [ABI](self)'s three
/// functions for the [`Plugin`] type given. The crate is built as a
/// `cdylib` (`[lib] crate-type = ["cdylib"]`, with `"rlib"` too to test
/// it as a library).
///
/// ```ignore
/// sentiric_plugin_sdk::export_plugin!(MyDialplan);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        static __SENTIRIC_PLUGIN: $crate::abi::Instance = $crate::abi::Instance::new();

        /// The plugin ABI version this library speaks.
        #[no_mangle]
        pub extern "C" fn sentiric_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// Calls the plugin (see the SDK's `abi` module).
        ///
        /// # Safety
        ///
        /// As `sentiric_plugin_sdk::abi::call`.
        #[no_mangle]
        pub unsafe extern "C" fn sentiric_plugin_call(
            method: u32,
            input: *const u8,
            len: usize,
            out: *mut $crate::abi::Buffer,
        ) -> i32 {
            // SAFETY: the host's side of the ABI gives what `call` needs.
            unsafe {
                $crate::abi::call::<$plugin>(
                    &__SENTIRIC_PLUGIN,
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    method,
                    input,
                    len,
                    out,
                )
            }
        }

        /// Frees what `sentiric_plugin_call` wrote.
        ///
        /// # Safety
        ///
        /// As `sentiric_plugin_sdk::abi::free`.
        #[no_mangle]
        pub unsafe extern "C" fn sentiric_plugin_free(buf: $crate::abi::Buffer) {
            // SAFETY: the host frees what this library gave it, once.
            unsafe { $crate::abi::free(buf) }
        }
    };
}
