"""A dialplan's decisions and an agent's actions, one helper each.

Every decision helper takes `rule` (named in the CallRouted event and the
logs), `tags` (written into the call's CDR) and `headers` (added to the
targets' INVITEs; a decline may add none).
"""

from collections.abc import Iterable, Mapping

from .v1 import plugin_pb2 as pb


def _decision(rule="", tags=None, headers=None, **action):
    return pb.RouteDecision(
        rule=rule, cdr_tags=dict(tags or {}), add_headers=dict(headers or {}), **action
    )


def _bridge(targets, ring_timeout_ms=0, codecs=()):
    targets = [targets] if isinstance(targets, str) else list(targets)
    return pb.Bridge(targets=targets, ring_timeout_ms=ring_timeout_ms, codecs=list(codecs))


def bridge(
    targets: str | Iterable[str],
    *,
    ring_timeout_ms: int = 0,
    codecs: Iterable[str] = (),
    rule: str = "",
    tags: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> pb.RouteDecision:
    """Bridge to the first of `targets` (SIP URIs, tried in order) that
    answers; each rings `ring_timeout_ms` at most (0: the switch's
    default); `codecs` ("PCMU", "PCMA", "opus") in order of preference."""
    return _decision(rule, tags, headers, bridge=_bridge(targets, ring_timeout_ms, codecs))


def reject(code: int, reason: str = "", *, rule="", tags=None, headers=None) -> pb.RouteDecision:
    """Refuse the call with `code` (400-699) and `reason` (empty: the
    code's usual phrase)."""
    return _decision(rule, tags, headers, reject=pb.Reject(code=code, reason=reason))


def decline(reason: str = "", *, rule="", tags=None) -> pb.RouteDecision:
    """Not this dialplan's call: the switch's [dialplan] rules decide it.
    An answer, not a failure (never toward the circuit breaker)."""
    return _decision(rule, tags, None, decline=pb.Decline(reason=reason))


def echo(*, rule="", tags=None, headers=None) -> pb.RouteDecision:
    """Answer with the echo test: the caller hears themself."""
    return _decision(rule, tags, headers, answer=pb.Answer(echo=pb.Echo()))


def play(prompt: str, *, rule="", tags=None, headers=None) -> pb.RouteDecision:
    """Answer, play the [prompts] entry `prompt`, hang up."""
    return _decision(rule, tags, headers, answer=pb.Answer(play=pb.Play(prompt=prompt)))


def play_then_bridge(
    prompt: str, targets: str | Iterable[str], *, rule="", tags=None, headers=None
) -> pb.RouteDecision:
    """Play `prompt` in early media, then bridge to `targets`."""
    p = pb.Play(prompt=prompt, then_bridge=_bridge(targets))
    return _decision(rule, tags, headers, answer=pb.Answer(play=p))


def conference(room: str, *, rule="", tags=None, headers=None) -> pb.RouteDecision:
    """Answer and join the conference room `room`."""
    return _decision(rule, tags, headers, answer=pb.Answer(conference=pb.Conference(room=room)))


def agent(
    plugin: str, params: Mapping[str, str] | None = None, *, rule="", tags=None, headers=None
) -> pb.RouteDecision:
    """Answer and connect the agent plugin `plugin`, with its per-route
    `params` (greeting, system prompt, voice …)."""
    a = pb.ConnectAgent(plugin=plugin, params=dict(params or {}))
    return _decision(rule, tags, headers, answer=pb.Answer(agent=a))


def redirect(
    contacts: str | Iterable[str], code: int = 0, *, rule="", tags=None, headers=None
) -> pb.RouteDecision:
    """Send the caller elsewhere: a 3xx (`code`, 0: 302) with `contacts`."""
    contacts = [contacts] if isinstance(contacts, str) else list(contacts)
    return _decision(rule, tags, headers, redirect=pb.Redirect(code=code, contacts=contacts))


# ------------------------------------------------------- an agent's actions


def play_audio(id: str, pcm: bytes, last: bool = True) -> pb.CallAction:
    """Play `pcm` (16 kHz, 16-bit signed little-endian mono) to the caller;
    chunks of one play share its `id`, `last` ends it."""
    return pb.CallAction(play=pb.PlayAudio(id=id, pcm=pcm, last=last))


def stop_playback() -> pb.CallAction:
    """Stop what is playing."""
    return pb.CallAction(stop=pb.StopPlayback())


def hang_up(reason: str = "") -> pb.CallAction:
    """End the call (`reason` goes to the CDR)."""
    return pb.CallAction(hang_up=pb.HangUp(reason=reason))


def transfer(uri: str) -> pb.CallAction:
    """Blind transfer: the caller is bridged to `uri`, the agent leaves."""
    return pb.CallAction(transfer=pb.Transfer(uri=uri))


def send_dtmf(digits: str) -> pb.CallAction:
    """Send `digits` (0-9, *, #, A-D) to the caller as RFC 4733 events."""
    return pb.CallAction(send_dtmf=pb.SendDtmf(digits=digits))


def cdr_tags(tags: Mapping[str, str]) -> pb.CallAction:
    """Write `tags` into the call's CDR."""
    return pb.CallAction(cdr_tags=pb.SetCdrTags(tags=dict(tags)))
