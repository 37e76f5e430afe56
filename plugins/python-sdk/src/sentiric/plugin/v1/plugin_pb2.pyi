from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("call_id", "trace_id", "from_uri", "to_uri", "request_uri", "user", "from_user", "headers", "source", "transport", "time_unix_us")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_URI_FIELD_NUMBER: _ClassVar[int]
    TO_URI_FIELD_NUMBER: _ClassVar[int]
    REQUEST_URI_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FROM_USER_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    trace_id: str
    from_uri: str
    to_uri: str
    request_uri: str
    user: str
    from_user: str
    headers: _containers.ScalarMap[str, str]
    source: str
    transport: str
    time_unix_us: int
    def __init__(self, call_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., from_uri: _Optional[str] = ..., to_uri: _Optional[str] = ..., request_uri: _Optional[str] = ..., user: _Optional[str] = ..., from_user: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., source: _Optional[str] = ..., transport: _Optional[str] = ..., time_unix_us: _Optional[int] = ...) -> None: ...

class RouteDecision(_message.Message):
    __slots__ = ("bridge", "answer", "reject", "redirect", "decline", "add_headers", "cdr_tags", "rule")
    class AddHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class CdrTagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_FIELD_NUMBER: _ClassVar[int]
    DECLINE_FIELD_NUMBER: _ClassVar[int]
    ADD_HEADERS_FIELD_NUMBER: _ClassVar[int]
    CDR_TAGS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    bridge: Bridge
    answer: Answer
    reject: Reject
    redirect: Redirect
    decline: Decline
    add_headers: _containers.ScalarMap[str, str]
    cdr_tags: _containers.ScalarMap[str, str]
    rule: str
    def __init__(self, bridge: _Optional[_Union[Bridge, _Mapping]] = ..., answer: _Optional[_Union[Answer, _Mapping]] = ..., reject: _Optional[_Union[Reject, _Mapping]] = ..., redirect: _Optional[_Union[Redirect, _Mapping]] = ..., decline: _Optional[_Union[Decline, _Mapping]] = ..., add_headers: _Optional[_Mapping[str, str]] = ..., cdr_tags: _Optional[_Mapping[str, str]] = ..., rule: _Optional[str] = ...) -> None: ...

class Bridge(_message.Message):
    __slots__ = ("targets", "ring_timeout_ms", "codecs")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    RING_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CODECS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedScalarFieldContainer[str]
    ring_timeout_ms: int
    codecs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, targets: _Optional[_Iterable[str]] = ..., ring_timeout_ms: _Optional[int] = ..., codecs: _Optional[_Iterable[str]] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("echo", "play", "conference", "agent")
    ECHO_FIELD_NUMBER: _ClassVar[int]
    PLAY_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    echo: Echo
    play: Play
    conference: Conference
    agent: ConnectAgent
    def __init__(self, echo: _Optional[_Union[Echo, _Mapping]] = ..., play: _Optional[_Union[Play, _Mapping]] = ..., conference: _Optional[_Union[Conference, _Mapping]] = ..., agent: _Optional[_Union[ConnectAgent, _Mapping]] = ...) -> None: ...

class Echo(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Play(_message.Message):
    __slots__ = ("prompt", "then_bridge")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    THEN_BRIDGE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    then_bridge: Bridge
    def __init__(self, prompt: _Optional[str] = ..., then_bridge: _Optional[_Union[Bridge, _Mapping]] = ...) -> None: ...

class Conference(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class ConnectAgent(_message.Message):
    __slots__ = ("plugin", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, plugin: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Reject(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Redirect(_message.Message):
    __slots__ = ("code", "contacts")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    code: int
    contacts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[int] = ..., contacts: _Optional[_Iterable[str]] = ...) -> None: ...

class Decline(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class CallInput(_message.Message):
    __slots__ = ("start", "audio", "dtmf", "speech_started", "speech_stopped", "playback_done", "ended")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DTMF_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STOPPED_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_DONE_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    start: ConverseStart
    audio: AudioFrame
    dtmf: Dtmf
    speech_started: SpeechStarted
    speech_stopped: SpeechStopped
    playback_done: PlaybackDone
    ended: CallEnded
    def __init__(self, start: _Optional[_Union[ConverseStart, _Mapping]] = ..., audio: _Optional[_Union[AudioFrame, _Mapping]] = ..., dtmf: _Optional[_Union[Dtmf, _Mapping]] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., speech_stopped: _Optional[_Union[SpeechStopped, _Mapping]] = ..., playback_done: _Optional[_Union[PlaybackDone, _Mapping]] = ..., ended: _Optional[_Union[CallEnded, _Mapping]] = ...) -> None: ...

class ConverseStart(_message.Message):
    __slots__ = ("call", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    call: RouteRequest
    params: _containers.ScalarMap[str, str]
    def __init__(self, call: _Optional[_Union[RouteRequest, _Mapping]] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AudioFrame(_message.Message):
    __slots__ = ("pcm", "time_ms")
    PCM_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    pcm: bytes
    time_ms: int
    def __init__(self, pcm: _Optional[bytes] = ..., time_ms: _Optional[int] = ...) -> None: ...

class Dtmf(_message.Message):
    __slots__ = ("digit", "duration_ms")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    digit: str
    duration_ms: int
    def __init__(self, digit: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("time_ms",)
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    def __init__(self, time_ms: _Optional[int] = ...) -> None: ...

class SpeechStopped(_message.Message):
    __slots__ = ("time_ms",)
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    def __init__(self, time_ms: _Optional[int] = ...) -> None: ...

class PlaybackDone(_message.Message):
    __slots__ = ("id", "interrupted")
    ID_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    interrupted: bool
    def __init__(self, id: _Optional[str] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: str
    def __init__(self, cause: _Optional[str] = ...) -> None: ...

class CallAction(_message.Message):
    __slots__ = ("play", "stop", "hang_up", "transfer", "send_dtmf", "cdr_tags", "turn")
    PLAY_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    HANG_UP_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    SEND_DTMF_FIELD_NUMBER: _ClassVar[int]
    CDR_TAGS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    play: PlayAudio
    stop: StopPlayback
    hang_up: HangUp
    transfer: Transfer
    send_dtmf: SendDtmf
    cdr_tags: SetCdrTags
    turn: ReportTurn
    def __init__(self, play: _Optional[_Union[PlayAudio, _Mapping]] = ..., stop: _Optional[_Union[StopPlayback, _Mapping]] = ..., hang_up: _Optional[_Union[HangUp, _Mapping]] = ..., transfer: _Optional[_Union[Transfer, _Mapping]] = ..., send_dtmf: _Optional[_Union[SendDtmf, _Mapping]] = ..., cdr_tags: _Optional[_Union[SetCdrTags, _Mapping]] = ..., turn: _Optional[_Union[ReportTurn, _Mapping]] = ...) -> None: ...

class PlayAudio(_message.Message):
    __slots__ = ("id", "pcm", "last")
    ID_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    id: str
    pcm: bytes
    last: bool
    def __init__(self, id: _Optional[str] = ..., pcm: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class StopPlayback(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HangUp(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("uri",)
    URI_FIELD_NUMBER: _ClassVar[int]
    uri: str
    def __init__(self, uri: _Optional[str] = ...) -> None: ...

class SendDtmf(_message.Message):
    __slots__ = ("digits",)
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    digits: str
    def __init__(self, digits: _Optional[str] = ...) -> None: ...

class SetCdrTags(_message.Message):
    __slots__ = ("tags",)
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReportTurn(_message.Message):
    __slots__ = ("transcript", "response", "transcript_ms", "first_token_ms", "first_audio_ms", "interrupted", "tools")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    response: str
    transcript_ms: int
    first_token_ms: int
    first_audio_ms: int
    interrupted: bool
    tools: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, transcript: _Optional[str] = ..., response: _Optional[str] = ..., transcript_ms: _Optional[int] = ..., first_token_ms: _Optional[int] = ..., first_audio_ms: _Optional[int] = ..., interrupted: _Optional[bool] = ..., tools: _Optional[_Iterable[str]] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("pcm", "sample_rate", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PCM_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    pcm: bytes
    sample_rate: int
    params: _containers.ScalarMap[str, str]
    def __init__(self, pcm: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("text", "final", "start_ms", "end_ms", "confidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    final: bool
    start_ms: int
    end_ms: int
    confidence: float
    def __init__(self, text: _Optional[str] = ..., final: _Optional[bool] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class Text(_message.Message):
    __slots__ = ("text", "voice", "language", "sample_rate")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    language: str
    sample_rate: int
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., language: _Optional[str] = ..., sample_rate: _Optional[int] = ...) -> None: ...

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "services")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    services: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., services: _Optional[_Iterable[str]] = ...) -> None: ...

class PluginError(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class SessionId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ConversationInput(_message.Message):
    __slots__ = ("conversation", "input")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    conversation: int
    input: CallInput
    def __init__(self, conversation: _Optional[int] = ..., input: _Optional[_Union[CallInput, _Mapping]] = ...) -> None: ...

class CallActions(_message.Message):
    __slots__ = ("actions",)
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[CallAction]
    def __init__(self, actions: _Optional[_Iterable[_Union[CallAction, _Mapping]]] = ...) -> None: ...

class RecognitionInput(_message.Message):
    __slots__ = ("recognition", "audio")
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    recognition: int
    audio: Audio
    def __init__(self, recognition: _Optional[int] = ..., audio: _Optional[_Union[Audio, _Mapping]] = ...) -> None: ...

class Transcripts(_message.Message):
    __slots__ = ("transcripts",)
    TRANSCRIPTS_FIELD_NUMBER: _ClassVar[int]
    transcripts: _containers.RepeatedCompositeFieldContainer[Transcript]
    def __init__(self, transcripts: _Optional[_Iterable[_Union[Transcript, _Mapping]]] = ...) -> None: ...

class SynthesisChunk(_message.Message):
    __slots__ = ("audio", "done")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    done: bool
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., done: _Optional[bool] = ...) -> None: ...
