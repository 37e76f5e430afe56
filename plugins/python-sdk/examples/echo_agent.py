#!/usr/bin/env python3
"""An agent in Python on the SDK: the caller hears themself until the
call ends. Each digit the caller presses is sent back as a digit and the
digits so far set as the CDR tag `echo_digits`; `#` hangs up.

    python echo_agent.py --listen 127.0.0.1:7445 --certs certs

The switch connects a call to it by a rule or a dialplan's decision
(`[[dialplan.rule]] action = "agent"`, `agent = "NAME"`, with the sidecar
as `[plugins.sidecars.NAME]`).
"""

import sys

from sentiric.plugin import Agent, Conversation, cdr_tags, hang_up, main, play_audio, send_dtmf


class Echo(Conversation):
    """One call's echo."""

    def __init__(self, start, send):
        super().__init__(start, send)
        self.digits = ""

    def on_audio(self, frame):
        # 20 ms of the caller, straight back (one play that never ends).
        return play_audio("echo", frame.pcm, last=False)

    def on_dtmf(self, dtmf):
        if dtmf.digit == "#":
            return hang_up("caller pressed #")
        self.digits += dtmf.digit
        return [send_dtmf(dtmf.digit), cdr_tags({"echo_digits": self.digits})]


class EchoAgent(Agent):
    name = "python-echo-agent"

    def converse(self, start, send):
        return Echo(start, send)


if __name__ == "__main__":
    sys.exit(main(EchoAgent))
