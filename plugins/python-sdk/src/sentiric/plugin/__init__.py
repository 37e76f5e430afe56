"""Call logic for the Sentiric switch in Python.

A plugin is a class made once from its configuration text. A `Dialplan`
decides each new call (`route`); an `Agent` holds a conversation on a
live call (`converse` → a `Conversation` per call). `main` serves one as
a gRPC sidecar over mutual TLS, with the command line every Sentiric
sidecar has (`--listen`, `--certs` or `--ca/--cert/--key`, `--config`):

    from sentiric.plugin import Dialplan, bridge, decline, main

    class MyDialplan(Dialplan):
        def __init__(self, config):
            self.trunk = config.strip() or "10.0.0.5"

        def route(self, call):
            if call.user.startswith("+49"):
                return bridge(f"sip:{call.user}@{self.trunk}", rule="germany")
            return decline("not German")

    if __name__ == "__main__":
        main(MyDialplan, "my-dialplan")

The contract's messages are `sentiric.plugin.pb` (generated from
proto/sentiric/plugin/v1/plugin.proto, typed); the switch checks every
decision as it does a Rust plugin's (`sentiric route-test --sidecar`
shows a decision as the switch sees it).
"""

from .decisions import (
    agent,
    bridge,
    cdr_tags,
    conference,
    decline,
    echo,
    hang_up,
    play,
    play_audio,
    play_then_bridge,
    redirect,
    reject,
    send_dtmf,
    stop_playback,
    transfer,
)
from .base import Agent, Conversation, Dialplan, Plugin, PluginError
from .sidecar import main, run, serve, start
from .v1 import plugin_pb2 as pb

__all__ = [
    "Agent",
    "Conversation",
    "Dialplan",
    "Plugin",
    "PluginError",
    "agent",
    "bridge",
    "cdr_tags",
    "conference",
    "decline",
    "echo",
    "hang_up",
    "main",
    "pb",
    "play",
    "play_audio",
    "play_then_bridge",
    "redirect",
    "reject",
    "run",
    "send_dtmf",
    "serve",
    "start",
    "stop_playback",
    "transfer",
]
