#!/usr/bin/env python3
"""A Sentiric dialplan sidecar in Python: routes by the called number's
prefix (bridge, reject or an app), served over gRPC with mTLS.

Built on the Python plugin SDK (`pip install plugins/python-sdk`): a
`Dialplan` class, its decisions made with the SDK's helpers, served by
`sentiric.plugin.main`.

    python3 sidecar.py --listen 127.0.0.1:7444 --certs /etc/sentiric/certs \
        --config routes.toml

routes.toml:

    [[route]]
    prefix = "+4930"                  # the longest matching prefix wins
    targets = ["sip:berlin@10.0.0.5"]  # bridge, in this order
    [[route]]
    prefix = "+1900"
    reject = 403                      # refuse with this code
    [[route]]
    prefix = "600"
    answer = "echo"                   # or "conference:ROOM", "play:PROMPT"
    [default]
    code = 404                        # nothing matches: refused
                                      # (or decline = true: the switch's
                                      # [dialplan] rules decide)

Once it listens, standard output gets one line:
`sidecar python-dialplan listening on ADDR`. SIGTERM or SIGINT stops it,
letting the calls being served finish (5 s at most).
"""

import sys
import tomllib

from sentiric.plugin import Dialplan, PluginError, bridge, conference, decline, echo, main, play, reject

NAME = "python-dialplan"


class PrefixDialplan(Dialplan):
    """The routing table: the longest matching prefix decides."""

    name = NAME

    def __init__(self, config=""):
        try:
            cfg = tomllib.loads(config) if config else {}
        except tomllib.TOMLDecodeError as e:
            raise PluginError(f"routes: {e}") from e
        self.routes = sorted(cfg.get("route", []), key=lambda r: -len(r["prefix"]))
        for r in self.routes:
            kinds = [k for k in ("targets", "reject", "answer") if k in r]
            if len(kinds) != 1:
                raise PluginError(f"route {r['prefix']!r}: one of targets, reject or answer")
            if "reject" in r and not 400 <= r["reject"] <= 699:
                raise PluginError(f"route {r['prefix']!r}: reject {r['reject']}: 400-699")
            if "answer" in r and r["answer"].partition(":")[0] not in ("echo", "conference", "play"):
                raise PluginError(f"route {r['prefix']!r}: answer {r['answer']!r}: echo, conference:ROOM or play:PROMPT")
        default = cfg.get("default", {})
        self.decline = default.get("decline", False)
        if self.decline and "code" in default:
            raise PluginError("default: decline = true or a code, not both")
        self.default = default.get("code", 404)

    def route(self, call):
        """The RouteDecision for a RouteRequest."""
        route = next((r for r in self.routes if call.user.startswith(r["prefix"])), None)
        if route is None and self.decline:
            # Not this dialplan's call: the switch's rules decide it.
            return decline("no prefix matched", rule="default")
        if route is None:
            return reject(self.default, "No Route", rule="default")
        how = {"rule": f"prefix {route['prefix']}", "tags": {"route_prefix": route["prefix"]}}
        if "targets" in route:
            return bridge(route["targets"], **how)
        if "reject" in route:
            return reject(route["reject"], "Refused", **how)
        app, _, arg = route["answer"].partition(":")
        if app == "echo":
            return echo(**how)
        if app == "conference":
            return conference(arg, **how)
        return play(arg, **how)


if __name__ == "__main__":
    sys.exit(main(PrefixDialplan, NAME))
