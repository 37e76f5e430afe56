#!/usr/bin/env python3
"""A Sentiric dialplan sidecar in Python: routes by the called number's
prefix (bridge, reject or an app), served over gRPC with mTLS.

The stubs are generated at start from the switch's own contract
(proto/sentiric/plugin/v1/plugin.proto) with grpcio-tools, so the
sidecar always speaks the .proto it ships beside.

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

import argparse
import os
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python-sdk"))
import sentiric_sidecar  # noqa: E402  (the path above first)
from sentiric_sidecar import stubs  # noqa: E402,F401  (the tests use it)

NAME = "python-dialplan"


class Routes:
    """The routing table: the longest matching prefix decides."""

    def __init__(self, text):
        cfg = tomllib.loads(text) if text else {}
        self.routes = sorted(cfg.get("route", []), key=lambda r: -len(r["prefix"]))
        for r in self.routes:
            kinds = [k for k in ("targets", "reject", "answer") if k in r]
            if len(kinds) != 1:
                raise ValueError(
                    f"route {r['prefix']!r}: one of targets, reject or answer"
                )
            if "reject" in r and not 400 <= r["reject"] <= 699:
                raise ValueError(f"route {r['prefix']!r}: reject {r['reject']}: 400-699")
        default = cfg.get("default", {})
        self.decline = default.get("decline", False)
        if self.decline and "code" in default:
            raise ValueError("default: decline = true or a code, not both")
        self.default = default.get("code", 404)

    def decide(self, pb, request):
        """The RouteDecision for a RouteRequest."""
        route = next((r for r in self.routes if request.user.startswith(r["prefix"])), None)
        if route is None and self.decline:
            # Not this dialplan's call: the switch's rules decide it.
            return pb.RouteDecision(decline=pb.Decline(reason="no prefix matched"), rule="default")
        if route is None:
            return pb.RouteDecision(
                reject=pb.Reject(code=self.default, reason="No Route"), rule="default"
            )
        rule = f"prefix {route['prefix']}"
        tags = {"route_prefix": route["prefix"]}
        if "targets" in route:
            return pb.RouteDecision(
                bridge=pb.Bridge(targets=route["targets"]), rule=rule, cdr_tags=tags
            )
        if "reject" in route:
            return pb.RouteDecision(
                reject=pb.Reject(code=route["reject"], reason="Refused"),
                rule=rule,
                cdr_tags=tags,
            )
        app, _, arg = route["answer"].partition(":")
        if app == "echo":
            answer = pb.Answer(echo=pb.Echo())
        elif app == "conference":
            answer = pb.Answer(conference=pb.Conference(room=arg))
        elif app == "play":
            answer = pb.Answer(play=pb.Play(prompt=arg))
        else:
            raise ValueError(f"route {route['prefix']!r}: answer {app!r}")
        return pb.RouteDecision(answer=answer, rule=rule, cdr_tags=tags)


def serve(listen, certs, routes, pb, grpc_pb):
    """Starts the gRPC server on `listen` with mTLS; the server and the
    address it listens on."""
    import grpc

    class Dialplan(grpc_pb.DialplanServicer):
        def Route(self, request, context):
            try:
                return routes.decide(pb, request)
            except Exception as e:  # a bad route fails this call only
                context.abort(grpc.StatusCode.INTERNAL, str(e))

    return sentiric_sidecar.start(
        listen, certs, lambda s: grpc_pb.add_DialplanServicer_to_server(Dialplan(), s)
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="address, e.g. 127.0.0.1:7444")
    p.add_argument("--certs", required=True, help="ca.pem, sidecar.pem, sidecar-key.pem")
    p.add_argument("--config", help="the routes (TOML)")
    args = p.parse_args(argv)
    text = ""
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            text = f.read()
    routes = Routes(text)
    pb, grpc_pb = stubs()
    server, addr = serve(args.listen, args.certs, routes, pb, grpc_pb)
    sentiric_sidecar.run(NAME, server, addr)


if __name__ == "__main__":
    sys.exit(main())
