//! The switch's side of the [ABI](crate::abi): loading a plugin library,
//! refusing one of another ABI version, and calling it.
//!
//! [`Library::open`] loads the file as it is now (a private copy of it,
//! so that a new build renamed into place is loaded, not the one loaded
//! before from the same path) and checks its version before anything
//! else of it is used; [`Library::init`] makes the plugin from
//! its configuration; [`Library::route`] asks it for a decision, checked
//! with [`check_decision`](crate::check_decision); [`Library::converse`]
//! begins a conversation with its agent ([`LibraryConversation`]),
//! [`Library::recognize`] and [`Library::synthesize`] a recognition and a
//! synthesis by its speech services. Every failure is a
//! [`CallError`]: a panic in the plugin comes back as
//! [`CallError::Panicked`], and the switch goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use crate::abi::{self, Buffer};
use crate::{check_decision, v1, InvalidDecision};

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type CallFn = unsafe extern "C" fn(u32, *const u8, usize, *mut Buffer) -> i32;
type FreeFn = unsafe extern "C" fn(Buffer);

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be loaded as a shared library.
    #[error("{path}: {error}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        error: String,
    },
    /// It has no `sentiric_plugin_abi_version`: not a Sentiric plugin.
    #[error("{0}: not a Sentiric plugin (no sentiric_plugin_abi_version)")]
    NotAPlugin(PathBuf),
    /// It speaks another ABI version.
    #[error("{path}: plugin ABI version {found}, this switch speaks {expected}; rebuild the plugin against this switch's sentiric-plugin-sdk")]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// It lacks one of the ABI's functions.
    #[error("{path}: no {symbol}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The function.
        symbol: &'static str,
    },
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin panicked; the panic was caught in the plugin.
    #[error("plugin panicked: {0}")]
    Panicked(String),
    /// The plugin returned an error.
    #[error("plugin error: {0}")]
    Failed(String),
    /// The plugin's answer did not decode.
    #[error("plugin answer does not decode: {0}")]
    BadReply(String),
    /// The plugin's decision cannot be carried out.
    #[error("plugin decision refused: {0}")]
    Invalid(InvalidDecision),
    /// The plugin refused the request, the method, or was not initialised
    /// (the ABI status and the plugin's message).
    #[error("plugin refused the call (status {0}): {1}")]
    Refused(i32, String),
}

/// A loaded plugin library.
///
/// Each is loaded from a copy of its file made when it was opened (an
/// anonymous memory file, `/memfd:sentiric-plugin:NAME` in the process's
/// maps): the dynamic loader hands back a library it has loaded already
/// when asked for the same path or the same file again, so loading the
/// path itself would run the old code after a new build was renamed into
/// place (and the old plugin's state, its configuration included). Each
/// copy is its own library, with its own statics; the calls that hold an
/// older one finish on it, and it is unloaded when the last goes.
#[derive(Debug)]
pub struct Library {
    path: PathBuf,
    build_id: Option<String>,
    call: CallFn,
    free: FreeFn,
    // After the functions above (they point into it): unloaded when
    // dropped, before the copy is let go.
    lib: std::mem::ManuallyDrop<libloading::Library>,
    /// The copy it was loaded from, and the name it was loaded by.
    copy: std::mem::ManuallyDrop<std::fs::File>,
    loaded_as: PathBuf,
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; nothing of the library is used
        // after (its functions are only called through `self`).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.lib) };
        // The loader may keep a library loaded after its last close (one
        // whose threads' locals have destructors still to run). While it
        // does, it knows it by the name it was loaded by, the copy's
        // descriptor number: that number must not name another copy
        // later, so the descriptor stays open (the library's pages are
        // the copy's own: it costs no more memory).
        // SAFETY: RTLD_NOLOAD loads nothing: it only says whether the
        // library is still loaded, taking a reference if so, which the
        // handle's drop gives back.
        let resident = unsafe {
            libloading::os::unix::Library::open(
                Some(&self.loaded_as),
                libc::RTLD_NOLOAD | libc::RTLD_LAZY,
            )
        }
        .is_ok();
        if !resident {
            // SAFETY: dropped once, here, after the library was unloaded.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.copy) };
        }
    }
}

/// A private copy of the library `bytes` (read from `path`) as an
/// anonymous memory file, for the loader to load as a file of its own.
fn private_copy(path: &Path, bytes: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // A memory file's name is at most 249 bytes and has no NUL (a path's
    // file name has none).
    let name: String = format!("sentiric-plugin:{file_name}")
        .chars()
        .take(200)
        .collect();
    let name = std::ffi::CString::new(name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    Ok(file)
}

/// The GNU build id (`readelf -n` says it too) of the ELF file `bytes`,
/// as hex; `None` when it has none.
fn build_id(bytes: &[u8]) -> Option<String> {
    use object::Object;
    let id = object::File::parse(bytes).ok()?.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

impl Library {
    /// Loads the library at `path`, as the file is now, and checks its
    /// ABI version.
    ///
    /// Loading runs the library's initialisers: the plugin directory is
    /// code the switch trusts, as its own binary.
    pub fn open(path: &Path) -> Result<Library, LoadError> {
        let open_error = |error: String| LoadError::Open {
            path: path.to_path_buf(),
            error,
        };
        let bytes = std::fs::read(path).map_err(|e| open_error(e.to_string()))?;
        let build_id = build_id(&bytes);
        let copy = private_copy(path, &bytes)
            .map_err(|e| open_error(format!("a private copy to load: {e}")))?;
        drop(bytes);
        let loaded_as = PathBuf::from(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            copy.as_raw_fd()
        }));
        // SAFETY: loading a library runs its initialisers; the plugin
        // directory holds code the operator installed for the switch to
        // run (as trusted as the binary). Nothing else of it is used
        // before its ABI version is checked.
        let lib = unsafe { libloading::Library::new(&loaded_as) }
            .map_err(|e| open_error(e.to_string()))?;
        // SAFETY: the symbol is looked up with the ABI's signature for it;
        // a library that exports the name with another one is not a
        // plugin of any version of this ABI.
        let version = unsafe { lib.get::<AbiVersionFn>(b"sentiric_plugin_abi_version\0") }
            .map_err(|_| LoadError::NotAPlugin(path.to_path_buf()))?;
        // SAFETY: the function takes nothing and returns a number (the
        // ABI's first function, the same in every version).
        let found = unsafe { version() };
        if found != abi::ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                path: path.to_path_buf(),
                found,
                expected: abi::ABI_VERSION,
            });
        }
        let missing = |symbol| LoadError::Missing {
            path: path.to_path_buf(),
            symbol,
        };
        // SAFETY: version 1 of the ABI gives these names these signatures;
        // the pointers are kept no longer than `lib` (same struct, dropped
        // after them).
        let call = unsafe { lib.get::<CallFn>(b"sentiric_plugin_call\0") }
            .map(|s| *s)
            .map_err(|_| missing("sentiric_plugin_call"))?;
        // SAFETY: as above.
        let free = unsafe { lib.get::<FreeFn>(b"sentiric_plugin_free\0") }
            .map(|s| *s)
            .map_err(|_| missing("sentiric_plugin_free"))?;
        Ok(Library {
            path: path.to_path_buf(),
            build_id,
            call,
            free,
            lib: std::mem::ManuallyDrop::new(lib),
            copy: std::mem::ManuallyDrop::new(copy),
            loaded_as,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GNU build id of the file as it was loaded (hex, as `readelf
    /// -n` or `file` print it); `None` when it was linked without one.
    pub fn build_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }

    /// The plugin's name and version (before [`Library::init`]).
    pub fn info(&self) -> Result<v1::PluginInfo, CallError> {
        self.invoke(abi::METHOD_INFO, &[])
    }

    /// Makes the plugin from `config` (once; later calls return its info
    /// again); what it says of itself.
    pub fn init(&self, config: &str) -> Result<v1::PluginInfo, CallError> {
        self.invoke(abi::METHOD_INIT, config.as_bytes())
    }

    /// The plugin's decision for `request`, checked.
    pub fn route(&self, request: &v1::RouteRequest) -> Result<v1::RouteDecision, CallError> {
        let decision: v1::RouteDecision =
            self.invoke(abi::METHOD_ROUTE, &request.encode_to_vec())?;
        check_decision(&decision).map_err(CallError::Invalid)?;
        Ok(decision)
    }

    /// The plugin's decision for a request already encoded (see
    /// [`RouteRequestRef`](crate::RouteRequestRef)), checked.
    pub fn route_encoded(&self, request: &[u8]) -> Result<v1::RouteDecision, CallError> {
        let decision: v1::RouteDecision = self.invoke(abi::METHOD_ROUTE, request)?;
        check_decision(&decision).map_err(CallError::Invalid)?;
        Ok(decision)
    }

    /// Begins a conversation with the plugin's agent for the call
    /// `start` describes; it ends when dropped.
    pub fn converse(
        self: &Arc<Self>,
        start: &v1::ConverseStart,
    ) -> Result<LibraryConversation, CallError> {
        let session = self.begin(abi::METHOD_CONVERSE_START, start)?;
        Ok(LibraryConversation(session))
    }

    /// Begins recognising the stream `first` opens (send `first` itself
    /// with [`LibraryRecognition::audio`]); dropped before its end, it is
    /// abandoned.
    pub fn recognize(self: &Arc<Self>, first: &v1::Audio) -> Result<LibraryRecognition, CallError> {
        let session = self.begin(abi::METHOD_RECOGNIZE_START, first)?;
        Ok(LibraryRecognition(session))
    }

    /// Begins speaking `text`: its chunks as an iterator; dropped before
    /// its end, it is abandoned.
    pub fn synthesize(self: &Arc<Self>, text: &v1::Text) -> Result<LibrarySynthesis, CallError> {
        let session = self.begin(abi::METHOD_SYNTHESIZE_START, text)?;
        Ok(LibrarySynthesis(session))
    }

    /// A session the library begins with `method` on `first`.
    fn begin(self: &Arc<Self>, method: u32, first: &impl Message) -> Result<Session, CallError> {
        let v1::SessionId { id } = self.invoke(method, &first.encode_to_vec())?;
        Ok(Session {
            lib: Arc::clone(self),
            id,
            buf: Vec::new(),
            over: false,
        })
    }

    /// One call through the ABI: the reply decoded from the plugin's
    /// buffer (before it is freed: no copy), or the error.
    fn invoke<T: Message + Default>(&self, method: u32, input: &[u8]) -> Result<T, CallError> {
        let mut out = Buffer::empty();
        // SAFETY: `input` is readable for its length and `out` writable
        // for the call, as the ABI asks; the library stays loaded while
        // `self` lives.
        let status = unsafe { (self.call)(method, input.as_ptr(), input.len(), &mut out) };
        let bytes: &[u8] = if out.ptr.is_null() || out.len == 0 {
            &[]
        } else {
            // SAFETY: on return the plugin has written a buffer of `len`
            // initialised bytes at `ptr`, valid until freed below; the
            // slice is not used after that.
            unsafe { std::slice::from_raw_parts(out.ptr, out.len) }
        };
        let message = || {
            v1::PluginError::decode(bytes)
                .map(|e| e.message)
                .unwrap_or_default()
        };
        let result = match status {
            abi::OK => T::decode(bytes).map_err(|e| CallError::BadReply(e.to_string())),
            abi::PANICKED => Err(CallError::Panicked(message())),
            abi::FAILED => Err(CallError::Failed(message())),
            other => Err(CallError::Refused(other, message())),
        };
        // SAFETY: the buffer is the plugin's, from this call, freed once
        // by the library that allocated it; nothing borrows it now.
        unsafe { (self.free)(out) };
        result
    }
}

/// A stream the library holds for the host (see the [ABI](crate::abi)):
/// its calls, and its end when dropped.
#[derive(Debug)]
struct Session {
    lib: Arc<Library>,
    id: u64,
    /// The last request's encoding, reused.
    buf: Vec<u8>,
    /// Ended: by its last message, or by the plugin's error.
    over: bool,
}

impl Session {
    /// `message` to the session with `method`; an error ends it.
    fn call<T: Message + Default>(
        &mut self,
        method: u32,
        message: &impl Message,
    ) -> Result<T, CallError> {
        if self.over {
            return Err(CallError::Failed("the stream has ended".into()));
        }
        self.buf.clear();
        message
            .encode(&mut self.buf)
            .map_err(|e| CallError::BadReply(e.to_string()))?;
        let reply = self.lib.invoke(method, &self.buf);
        if reply.is_err() {
            self.over = true;
        }
        reply
    }

    /// The session's id as the ABI's message.
    fn id(&self) -> v1::SessionId {
        v1::SessionId { id: self.id }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.over {
            let id = self.id().encode_to_vec();
            let _ = self
                .lib
                .invoke::<v1::PluginInfo>(abi::METHOD_SESSION_END, &id);
        }
    }
}

/// A conversation with an in-process agent: what the `Conversation` trait
/// is on the plugin's side, through the ABI. Dropped, it ends.
#[derive(Debug)]
pub struct LibraryConversation(Session);

impl LibraryConversation {
    /// What the agent does on `input`, pushed to `actions` in order. An
    /// error ends the conversation: later inputs fail.
    pub fn input(
        &mut self,
        input: v1::call_input::Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), CallError> {
        let message = v1::ConversationInput {
            conversation: self.0.id,
            input: Some(v1::CallInput { input: Some(input) }),
        };
        let v1::CallActions { actions: more } =
            self.0.call(abi::METHOD_CONVERSE_INPUT, &message)?;
        actions.extend(more);
        Ok(())
    }
}

/// A recognition by an in-process speech recogniser: the `Recognition`
/// trait through the ABI.
#[derive(Debug)]
pub struct LibraryRecognition(Session);

impl LibraryRecognition {
    /// More audio; the transcripts it completes pushed to `out`. An error
    /// ends the recognition.
    pub fn audio(
        &mut self,
        audio: v1::Audio,
        out: &mut Vec<v1::Transcript>,
    ) -> Result<(), CallError> {
        let message = v1::RecognitionInput {
            recognition: self.0.id,
            audio: Some(audio),
        };
        let v1::Transcripts { transcripts } = self.0.call(abi::METHOD_RECOGNIZE_AUDIO, &message)?;
        out.extend(transcripts);
        Ok(())
    }

    /// The audio is over: the last transcripts.
    pub fn end(mut self) -> Result<Vec<v1::Transcript>, CallError> {
        let id = self.0.id();
        let v1::Transcripts { transcripts } = self.0.call(abi::METHOD_RECOGNIZE_END, &id)?;
        self.0.over = true;
        Ok(transcripts)
    }
}

/// A synthesis by an in-process speech synthesiser: its chunks, each
/// made as it is taken.
#[derive(Debug)]
pub struct LibrarySynthesis(Session);

impl Iterator for LibrarySynthesis {
    type Item = Result<v1::Audio, CallError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.over {
            return None;
        }
        let id = self.0.id();
        match self
            .0
            .call::<v1::SynthesisChunk>(abi::METHOD_SYNTHESIZE_NEXT, &id)
        {
            Ok(v1::SynthesisChunk { done: true, .. }) => {
                self.0.over = true;
                None
            }
            Ok(chunk) => Some(Ok(chunk.audio.unwrap_or_default())),
            Err(e) => Some(Err(e)),
        }
    }
}
