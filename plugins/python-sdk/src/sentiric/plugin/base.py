"""The plugin classes: Plugin, Dialplan, Agent and its Conversation."""

from collections.abc import Callable, Iterable

from .v1 import plugin_pb2 as pb

Actions = pb.CallAction | Iterable[pb.CallAction] | None


class PluginError(Exception):
    """A plugin's refusal in words: a bad configuration at start (the
    sidecar exits 2 saying it), or one call it cannot serve (that call
    fails: the switch applies its on_failure)."""


class Plugin:
    """What every plugin is: made once, from its configuration text (the
    sidecar's `--config FILE`, empty without one). Raise PluginError (or
    ValueError) to refuse it."""

    def __init__(self, config: str = ""):
        self.config = config


class Dialplan(Plugin):
    """Decides what happens to each new call."""

    def route(self, call: pb.RouteRequest) -> pb.RouteDecision:
        """The decision for `call` (a helper's: bridge, reject, decline,
        echo, play, play_then_bridge, conference, agent, redirect). May
        block; called on a pool of threads, so concurrently."""
        raise NotImplementedError


class Conversation:
    """One call's conversation with an Agent. The `on_*` methods get the
    switch's inputs in order, one at a time, on one thread; each returns
    what to do: a CallAction, several, or None. `send(action)` sends one
    at any time from any thread (an answer made elsewhere, speech as it
    is synthesised); it says False once the call is over."""

    def __init__(self, start: pb.ConverseStart, send: Callable[[pb.CallAction], bool]):
        self.call = start.call
        self.params = dict(start.params)
        self.send = send

    def begin(self) -> Actions:
        """At the start of the call (a greeting)."""

    def on_audio(self, frame: pb.AudioFrame) -> Actions:
        """20 ms of the caller: 16 kHz, 16-bit little-endian mono PCM."""

    def on_dtmf(self, dtmf: pb.Dtmf) -> Actions:
        """A key the caller pressed (RFC 4733)."""

    def on_speech_started(self, event: pb.SpeechStarted) -> Actions:
        """The switch heard the caller start speaking."""

    def on_speech_stopped(self, event: pb.SpeechStopped) -> Actions:
        """… and stop."""

    def on_playback_done(self, event: pb.PlaybackDone) -> Actions:
        """A play ended, or was stopped (`interrupted`: barge-in)."""

    def on_ended(self, event: pb.CallEnded) -> Actions:
        """The call ended (`cause`); nothing more comes."""


class Agent(Plugin):
    """Holds conversations on live calls: the switch answers a call whose
    route names this agent and streams it to `converse`."""

    def converse(
        self, start: pb.ConverseStart, send: Callable[[pb.CallAction], bool]
    ) -> Conversation:
        """The conversation for the call `start` describes (its route's
        `params` too). Raise PluginError to refuse the call."""
        raise NotImplementedError
