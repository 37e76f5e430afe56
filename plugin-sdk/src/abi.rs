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
//! [`METHOD_ROUTE`], the streams' methods below) and its request, a
//! protobuf message of
//! `sentiric.plugin.v1`, and writes its answer into `out`: on [`OK`] the
//! method's reply message, on any other status a `PluginError`. What it
//! wrote is the plugin's memory, given back with `sentiric_plugin_free`.
//! The plugin catches its own panics: a panic is the status [`PANICKED`],
//! never an unwind into the switch. A host refuses a library whose
//! version is not its own. Methods are only ever added within a version:
//! a library answers one it does not know with [`UNKNOWN_METHOD`], and a
//! host asks only for the services the library's `PluginInfo` names.
//!
//! The contract's streams live in the library as sessions, numbered
//! (`SessionId`): an agent's conversation ([`METHOD_CONVERSE_START`] with
//! a `ConverseStart`, then [`METHOD_CONVERSE_INPUT`]s, each a
//! `ConversationInput` answered with the `CallActions` it causes), a
//! recognition ([`METHOD_RECOGNIZE_START`] with the stream's first
//! `Audio`, then [`METHOD_RECOGNIZE_AUDIO`]s, each a `RecognitionInput`
//! answered with `Transcripts`, the first message's audio included, and
//! [`METHOD_RECOGNIZE_END`] for the last ones), a synthesis
//! ([`METHOD_SYNTHESIZE_START`] with a `Text`, then
//! [`METHOD_SYNTHESIZE_NEXT`]s, each answered with a `SynthesisChunk`,
//! until one is done). [`METHOD_SESSION_END`] drops one before its end
//! (the call is over). A session's error or panic drops it too (later
//! calls to it fail). Sessions are independent: calls to different ones
//! may come from different threads at once, and to one never do.
//!
//! [`export_plugin!`]: crate::export_plugin

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prost::Message;

use crate::{v1, Conversation, Plugin, PluginError, Recognition, Synthesis};

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
/// `Agent.Converse` begins: a `ConverseStart` in, the new conversation's
/// `SessionId` out.
pub const METHOD_CONVERSE_START: u32 = 3;
/// One input to a conversation: a `ConversationInput` in, the
/// `CallActions` it causes out.
pub const METHOD_CONVERSE_INPUT: u32 = 4;
/// Drops a session (a conversation whose call is over, a recognition or
/// synthesis no longer wanted): a `SessionId` in, nothing out.
pub const METHOD_SESSION_END: u32 = 5;
/// `SpeechToText.Recognize` begins: the stream's first `Audio` in (its
/// audio is not taken: send it with the next method), a `SessionId` out.
pub const METHOD_RECOGNIZE_START: u32 = 6;
/// More audio: a `RecognitionInput` in, the `Transcripts` it completes
/// out.
pub const METHOD_RECOGNIZE_AUDIO: u32 = 7;
/// The audio is over: a `SessionId` in, the last `Transcripts` out; the
/// session is dropped.
pub const METHOD_RECOGNIZE_END: u32 = 8;
/// `TextToSpeech.Synthesize` begins: a `Text` in, a `SessionId` out.
pub const METHOD_SYNTHESIZE_START: u32 = 9;
/// The next chunk: a `SessionId` in, a `SynthesisChunk` out (done: the
/// session is dropped).
pub const METHOD_SYNTHESIZE_NEXT: u32 = 10;

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

/// A stream the library holds for the host.
enum Session {
    /// With what it sent on its own since its last input.
    Conversation(
        Box<dyn Conversation>,
        std::sync::mpsc::Receiver<v1::CallAction>,
    ),
    Recognition(Box<dyn Recognition>),
    Synthesis(Synthesis),
}

/// One session, shared between the table and the call using it.
type Held = Arc<Mutex<Session>>;

/// What a library holds: the plugin, made by its first successful init,
/// and its sessions.
#[doc(hidden)]
pub struct Instance {
    plugin: OnceLock<Box<dyn Plugin>>,
    sessions: Mutex<BTreeMap<u64, Held>>,
    next: AtomicU64,
}

impl Instance {
    /// Nothing made yet (a `static`'s initialiser).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Instance {
        Instance {
            plugin: OnceLock::new(),
            sessions: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// The session table (a panic elsewhere never leaves it half
    /// changed: each change is one map operation).
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Held>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `session`: its id, encoded.
    fn begin(&self, session: Session) -> Vec<u8> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.table().insert(id, Arc::new(Mutex::new(session)));
        v1::SessionId { id }.encode_to_vec()
    }

    /// Runs `f` on the session `id`, its lock held and its panics caught:
    /// the reply, and whether the session is over. An error, a panic or
    /// the end drops the session (outside the table's lock: the plugin's
    /// drop holds up no other session).
    fn on(
        &self,
        id: u64,
        f: impl FnOnce(&mut Session) -> Result<(Vec<u8>, bool), (i32, String)>,
    ) -> Result<Vec<u8>, (i32, String)> {
        let held = self
            .table()
            .get(&id)
            .cloned()
            .ok_or((FAILED, format!("no session {id}")))?;
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let mut session = held
                .lock()
                .map_err(|_| (FAILED, "the session panicked before".to_string()))?;
            f(&mut session)
        }));
        let (result, over) = match ran {
            Ok(Ok((reply, over))) => (Ok(reply), over),
            Ok(Err(e)) => (Err(e), true),
            Err(panic) => (Err((PANICKED, panicked(panic.as_ref()))), true),
        };
        if over {
            let gone = self.table().remove(&id);
            drop(gone);
        }
        result
    }
}

/// A request message decoded, or the status that says it did not.
fn decoded<M: Message + Default>(input: &[u8], what: &str) -> Result<M, (i32, String)> {
    M::decode(input).map_err(|e| (BAD_REQUEST, format!("{what}: {e}")))
}

/// The plugin's error as the ABI's.
fn failed(PluginError(e): PluginError) -> (i32, String) {
    (FAILED, e)
}

/// A session of another kind than the method's.
fn not(kind: &str) -> (i32, String) {
    (BAD_REQUEST, format!("not a {kind}"))
}

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
        Err(panic) => (
            PANICKED,
            v1::PluginError {
                message: panicked(panic.as_ref()),
            }
            .encode_to_vec(),
        ),
    };
    if !out.is_null() {
        // SAFETY: the caller guarantees `out` is writable for the call;
        // what was there is not read (the host passes an empty buffer).
        unsafe { out.write(Buffer::from_vec(bytes)) };
    }
    status
}

/// A caught panic's message.
fn panicked(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("panicked: {message}")
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
        if instance.plugin.get().is_none() {
            let plugin = P::new(config).map_err(|PluginError(e)| (FAILED, e))?;
            let _ = instance.plugin.set(Box::new(plugin));
        }
        let plugin = instance
            .plugin
            .get()
            .ok_or((NOT_INITIALISED, String::new()))?;
        let mut services = Vec::new();
        if plugin.dialplan().is_some() {
            services.push("dialplan".to_string());
        }
        for (service, has) in [
            ("agent", plugin.agent().is_some()),
            ("speech_to_text", plugin.speech_to_text().is_some()),
            ("text_to_speech", plugin.text_to_speech().is_some()),
        ] {
            if has {
                services.push(service.to_string());
            }
        }
        return Ok(v1::PluginInfo {
            name: name.into(),
            version: version.into(),
            services,
        }
        .encode_to_vec());
    }
    let plugin = instance
        .plugin
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
        METHOD_CONVERSE_START => {
            let agent = plugin
                .agent()
                .ok_or((UNKNOWN_METHOD, "not an agent".to_string()))?;
            let start: v1::ConverseStart = decoded(input, "ConverseStart")?;
            let (tx, later) = std::sync::mpsc::channel();
            let conversation = agent
                .start(&start, crate::Later::new(move |a| tx.send(a).is_ok()))
                .map_err(failed)?;
            Ok(instance.begin(Session::Conversation(conversation, later)))
        }
        METHOD_CONVERSE_INPUT => {
            let v1::ConversationInput {
                conversation: id,
                input,
            } = decoded(input, "ConversationInput")?;
            let Some(input) = input.and_then(|i| i.input) else {
                return Ok(Vec::new());
            };
            instance.on(id, |session| {
                let Session::Conversation(c, later) = session else {
                    return Err(not("conversation"));
                };
                // What it did on its own first: it came before.
                let mut actions: Vec<v1::CallAction> = later.try_iter().collect();
                c.input(input, &mut actions).map_err(failed)?;
                Ok((v1::CallActions { actions }.encode_to_vec(), false))
            })
        }
        METHOD_SESSION_END => {
            let v1::SessionId { id } = decoded(input, "SessionId")?;
            instance.on(id, |_| Ok((Vec::new(), true)))
        }
        METHOD_RECOGNIZE_START => {
            let stt = plugin
                .speech_to_text()
                .ok_or((UNKNOWN_METHOD, "not a speech recogniser".to_string()))?;
            let first: v1::Audio = decoded(input, "Audio")?;
            let recognition = stt.start(&first).map_err(failed)?;
            Ok(instance.begin(Session::Recognition(recognition)))
        }
        METHOD_RECOGNIZE_AUDIO => {
            let v1::RecognitionInput {
                recognition: id,
                audio,
            } = decoded(input, "RecognitionInput")?;
            instance.on(id, |session| {
                let Session::Recognition(r) = session else {
                    return Err(not("recognition"));
                };
                let mut transcripts = Vec::new();
                r.audio(audio.unwrap_or_default(), &mut transcripts)
                    .map_err(failed)?;
                Ok((v1::Transcripts { transcripts }.encode_to_vec(), false))
            })
        }
        METHOD_RECOGNIZE_END => {
            let v1::SessionId { id } = decoded(input, "SessionId")?;
            instance.on(id, |session| {
                let Session::Recognition(r) = session else {
                    return Err(not("recognition"));
                };
                let mut transcripts = Vec::new();
                r.end(&mut transcripts).map_err(failed)?;
                Ok((v1::Transcripts { transcripts }.encode_to_vec(), true))
            })
        }
        METHOD_SYNTHESIZE_START => {
            let tts = plugin
                .text_to_speech()
                .ok_or((UNKNOWN_METHOD, "not a speech synthesiser".to_string()))?;
            let text: v1::Text = decoded(input, "Text")?;
            let synthesis = tts.synthesize(&text).map_err(failed)?;
            Ok(instance.begin(Session::Synthesis(synthesis)))
        }
        METHOD_SYNTHESIZE_NEXT => {
            let v1::SessionId { id } = decoded(input, "SessionId")?;
            instance.on(id, |session| {
                let Session::Synthesis(s) = session else {
                    return Err(not("synthesis"));
                };
                let audio = s.next().transpose().map_err(failed)?;
                let done = audio.is_none();
                Ok((v1::SynthesisChunk { audio, done }.encode_to_vec(), done))
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
///
/// The exports are unmangled symbols: one binary links at most one crate
/// that uses the macro (a test or sidecar using two plugins' `rlib`s
/// fails to link with duplicate symbols).
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
