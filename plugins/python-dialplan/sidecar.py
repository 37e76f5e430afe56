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

Once it listens, standard output gets one line:
`sidecar python-dialplan listening on ADDR`. SIGTERM or SIGINT stops it,
letting the calls being served finish (5 s at most).
"""

import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import tomllib
from concurrent import futures

NAME = "python-dialplan"
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
PROTO = "sentiric/plugin/v1/plugin.proto"
DRAIN_S = 5.0


def stubs(proto_root=PROTO_ROOT):
    """The contract's messages and services, generated from the .proto."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="sentiric-stubs-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        [
            "protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(proto_root, PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} ({code})")
    sys.path.insert(0, out)
    try:
        pb = importlib.import_module("sentiric.plugin.v1.plugin_pb2")
        grpc_pb = importlib.import_module("sentiric.plugin.v1.plugin_pb2_grpc")
    finally:
        # Loaded: the generated files are not needed any more.
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)
    return pb, grpc_pb


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
        self.default = cfg.get("default", {}).get("code", 404)

    def decide(self, pb, request):
        """The RouteDecision for a RouteRequest."""
        route = next((r for r in self.routes if request.user.startswith(r["prefix"])), None)
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

    def read(name):
        with open(os.path.join(certs, name), "rb") as f:
            return f.read()

    class Dialplan(grpc_pb.DialplanServicer):
        def Route(self, request, context):
            try:
                return routes.decide(pb, request)
            except Exception as e:  # a bad route fails this call only
                context.abort(grpc.StatusCode.INTERNAL, str(e))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    grpc_pb.add_DialplanServicer_to_server(Dialplan(), server)
    credentials = grpc.ssl_server_credentials(
        [(read("sidecar-key.pem"), read("sidecar.pem"))],
        root_certificates=read("ca.pem"),
        require_client_auth=True,
    )
    host, _, port = listen.rpartition(":")
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server, f"{host}:{port}"


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
    print(f"sidecar {NAME} listening on {addr}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Waits in short steps: Python runs signal handlers on the main thread
    # only, and a signal the kernel hands to one of grpc's threads does not
    # wake a main thread blocked for good.
    while not stop.wait(0.2):
        pass
    try:
        print(f"sidecar {NAME}: stopping", file=sys.stderr, flush=True)
    except OSError:
        # Whoever read our output is gone (the switch that ran us): stop
        # all the same.
        pass
    server.stop(grace=DRAIN_S).wait(DRAIN_S + 1)
    # Nothing may keep the process past its drain (grpc's threads can,
    # when a client went away without closing its connection).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
