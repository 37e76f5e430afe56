"""A plugin served as a gRPC sidecar over mutual TLS, and the life of
its process: one line on standard output once it listens, SIGTERM or
SIGINT lets the calls being served finish (DRAIN_S at most) and exits.

`main(PluginClass, name)` is a sidecar's whole program; `serve` and
`run` are its two halves, and `start` the mTLS server under them for a
servicer of one's own (a speech-to-text sidecar adds its
SpeechToTextServicer so).
"""

import argparse
import importlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from concurrent import futures

from .base import Agent, Dialplan, PluginError
from .v1 import plugin_pb2 as pb

DRAIN_S = 5.0
# Threads serving requests at once: a conversation holds one for its
# call, a route for its answer.
WORKERS = 128

log = logging.getLogger("sentiric.plugin")


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def start(listen, add, *, certs=None, ca=None, cert=None, key=None, workers=WORKERS):
    """Starts a gRPC server on `listen` (HOST:PORT; port 0: any free one)
    with mTLS: TLS with a client certificate from the CA required. `certs`
    is a directory with ca.pem, sidecar.pem and sidecar-key.pem (as
    `sentiric certs init` makes them), or `ca`, `cert` and `key` name the
    files (PEM paths or bytes). `add(server)` adds the services. Returns
    the server and the address it listens on."""
    import grpc

    def pem(own, name):
        if own is None:
            if certs is None:
                raise ValueError("certs DIR, or ca, cert and key, are needed")
            own = os.path.join(certs, name)
        return own if isinstance(own, bytes) else _read(own)

    credentials = grpc.ssl_server_credentials(
        [(pem(key, "sidecar-key.pem"), pem(cert, "sidecar.pem"))],
        root_certificates=pem(ca, "ca.pem"),
        require_client_auth=True,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    add(server)
    host, _, _ = listen.rpartition(":")
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server, f"{host}:{port}"


def serve(plugin, listen, **tls):
    """Starts serving `plugin` (a Dialplan, an Agent, or both) on `listen`
    with mTLS (`tls`: as `start` takes them); the server and its address."""
    from .v1 import plugin_pb2_grpc as grpc_pb

    adds = []
    if isinstance(plugin, Dialplan):
        servicer = _dialplan_servicer(plugin, grpc_pb)
        adds.append(lambda s: grpc_pb.add_DialplanServicer_to_server(servicer, s))
    if isinstance(plugin, Agent):
        agent = _agent_servicer(plugin, grpc_pb)
        adds.append(lambda s: grpc_pb.add_AgentServicer_to_server(agent, s))
    if not adds:
        raise PluginError(f"{type(plugin).__name__} is neither a Dialplan nor an Agent")
    return start(listen, lambda s: [add(s) for add in adds], **tls)


def _dialplan_servicer(plugin, grpc_pb):
    import grpc

    class Servicer(grpc_pb.DialplanServicer):
        def Route(self, request, context):
            try:
                decision = plugin.route(request)
                failure = None
                if not isinstance(decision, pb.RouteDecision):
                    failure = f"route returned {type(decision).__name__}, not a RouteDecision"
            except Exception as e:  # this call fails, not the sidecar
                failure = f"{type(e).__name__}: {e}" if not isinstance(e, PluginError) else str(e)
            if failure is not None:
                log.warning("call_id=%s trace_id=%s route failed: %s",
                            request.call_id, request.trace_id, failure)
                context.abort(grpc.StatusCode.INTERNAL, failure)
            return decision

    return Servicer()


_END = object()


def _agent_servicer(plugin, grpc_pb):
    import grpc

    class Servicer(grpc_pb.AgentServicer):
        def Converse(self, requests, context):
            first = next(requests, None)
            if first is None:
                return
            if first.WhichOneof("input") != "start":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a conversation begins with start")
            call = first.start.call
            out = queue.SimpleQueue()
            lock = threading.Lock()
            open_ = [True]

            def send(action):
                if not isinstance(action, pb.CallAction):
                    raise TypeError(f"{type(action).__name__} is not a CallAction")
                with lock:
                    if open_[0]:
                        out.put(action)
                    return open_[0]

            def send_all(actions):
                if actions is None:
                    return
                for a in [actions] if isinstance(actions, pb.CallAction) else actions:
                    send(a)

            try:
                conversation = plugin.converse(first.start, send)
                refused = None
            except Exception as e:
                refused = str(e) if isinstance(e, PluginError) else f"{type(e).__name__}: {e}"
            if refused is not None:
                log.warning("call_id=%s trace_id=%s conversation refused: %s",
                            call.call_id, call.trace_id, refused)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, refused)

            def feed():
                # The inputs, in order, on this one thread; the actions
                # they cause go out as the conversation returns them.
                try:
                    send_all(conversation.begin())
                    for item in requests:
                        kind = item.WhichOneof("input")
                        if kind in (None, "start"):
                            continue
                        send_all(getattr(conversation, "on_" + kind)(getattr(item, kind)))
                        if kind == "ended":
                            break
                except Exception as e:
                    if context.is_active():
                        out.put(e)
                finally:
                    out.put(_END)

            threading.Thread(target=feed, name=f"conversation {call.call_id}", daemon=True).start()
            try:
                while True:
                    item = out.get()
                    if item is _END:
                        return
                    if isinstance(item, Exception):
                        failure = f"{type(item).__name__}: {item}"
                        log.warning("call_id=%s trace_id=%s conversation failed: %s",
                                    call.call_id, call.trace_id, failure)
                        context.abort(grpc.StatusCode.INTERNAL, failure)
                    yield item
            finally:
                with lock:
                    open_[0] = False

    return Servicer()


def run(name, server, addr):
    """Says where it listens (`sidecar NAME listening on ADDR`), then
    serves until SIGTERM or SIGINT, lets the calls being served finish
    (DRAIN_S at most) and exits."""
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # A plain flag, no lock: a handler runs on the main thread between
        # any two of its bytecodes, so one taking a lock (Event.set) can
        # interrupt another holding it and wait for itself for ever — a
        # burst of signals (the switch's SIGTERM and the parent-death
        # one) once left a sidecar hung so.
        signal.signal(sig, lambda *_: stopping.append(True))
    # Said once a signal would stop it cleanly.
    print(f"sidecar {name} listening on {addr}", flush=True)
    # Waits in short steps: Python runs signal handlers on the main thread
    # only, and a signal the kernel hands to one of grpc's threads does not
    # wake a main thread blocked for good.
    while not stopping:
        time.sleep(0.2)
    try:
        print(f"sidecar {name}: stopping", file=sys.stderr, flush=True)
    except OSError:
        # Whoever read our output is gone (the switch that ran us): stop
        # all the same.
        pass
    server.stop(grace=DRAIN_S).wait(DRAIN_S + 1)
    # Nothing may keep the process past its drain (grpc's threads can,
    # when a client went away without closing its connection).
    os._exit(0)


def _parser(prog, name):
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"The Sentiric plugin {name} served as a gRPC sidecar over mTLS "
        "(--config FILE: the text the plugin is made from)",
    )
    p.add_argument("--listen", required=True, metavar="ADDR",
                   help="where to serve, e.g. 127.0.0.1:7443 (port 0: any free one; "
                   "the line on standard output says which)")
    p.add_argument("--certs", metavar="DIR",
                   help="ca.pem, sidecar.pem and sidecar-key.pem, as `sentiric certs init` makes them")
    p.add_argument("--ca", metavar="FILE", help="the CA a client's certificate must chain to")
    p.add_argument("--cert", metavar="FILE", help="this sidecar's certificate")
    p.add_argument("--key", metavar="FILE", help="its private key")
    p.add_argument("--config", metavar="FILE", help="the text the plugin is made from")
    return p


def main(plugin_class, name=None, argv=None):
    """A sidecar's whole program: parses the command line (`--help` says
    it), makes the plugin from `--config`, serves it until SIGTERM or
    SIGINT. A wrong command line, an unreadable file or a configuration
    the plugin refuses exit 2, saying why; a port it cannot listen on 1."""
    name = name or getattr(plugin_class, "name", None) or plugin_class.__name__
    prog = os.path.basename(sys.argv[0]) or name
    p = _parser(prog, name)
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    picked = {
        k: own or (args.certs and os.path.join(args.certs, f))
        for k, own, f in [
            ("ca", args.ca, "ca.pem"),
            ("cert", args.cert, "sidecar.pem"),
            ("key", args.key, "sidecar-key.pem"),
        ]
    }
    if not all(picked.values()):
        p.error("--certs DIR, or --ca, --cert and --key, are needed")
    try:
        tls = {k: _read(path) for k, path in picked.items()}
        text = ""
        if args.config:
            with open(args.config, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        print(f"{prog}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        plugin = plugin_class(text)
    except (PluginError, ValueError) as e:
        print(f"{prog}: {name}: {e}", file=sys.stderr)
        return 2
    try:
        server, addr = serve(plugin, args.listen, **tls)
    except (OSError, RuntimeError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    run(name, server, addr)
    return 0


def cli(argv=None):
    """`sentiric-python-sidecar MODULE:CLASS [options]`: the plugin class
    CLASS of MODULE (importable from the working directory) served as
    `main` serves it."""
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: sentiric-python-sidecar MODULE:CLASS --listen ADDR --certs DIR [--config FILE]"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage + "\n\nServes the plugin class MODULE:CLASS as a Sentiric sidecar; "
              "MODULE:CLASS --help lists the options.",
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    module, _, attr = argv[0].partition(":")
    if not module or not attr:
        print(f"{usage}\nsentiric-python-sidecar: {argv[0]!r}: MODULE:CLASS", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    try:
        plugin_class = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        print(
            f"sentiric-python-sidecar: {argv[0]}: {e} (run it from the module's directory, "
            "or put that directory on PYTHONPATH)",
            file=sys.stderr,
        )
        return 2
    except AttributeError as e:
        print(f"sentiric-python-sidecar: {argv[0]}: {e}", file=sys.stderr)
        return 2
    sys.argv[0] = f"sentiric-python-sidecar {argv[0]}"
    # Named by its `name`, else by its module (my_dialplan: my-dialplan).
    name = getattr(plugin_class, "name", None) or module.rpartition(".")[2].replace("_", "-")
    return main(plugin_class, name, argv[1:])
