"""What every Sentiric sidecar in Python shares: the contract's stubs
generated at start from the switch's own .proto, the gRPC server with
mTLS (TLS with a client certificate from the CA required), and the life
of the process (one line when it listens, SIGTERM drains and exits).

    import sentiric_sidecar as sc
    pb, grpc_pb = sc.stubs()
    server, addr = sc.start("127.0.0.1:0", "certs", lambda s: grpc_pb.add_...(..., s))
    sc.run("my-sidecar", server, addr)
"""

import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent import futures

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


def start(listen, certs, add, workers=8):
    """Starts a gRPC server on `listen` with mTLS (`certs`: ca.pem,
    sidecar.pem, sidecar-key.pem), its services added by `add(server)`;
    the server and the address it listens on."""
    import grpc

    def read(name):
        with open(os.path.join(certs, name), "rb") as f:
            return f.read()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    add(server)
    credentials = grpc.ssl_server_credentials(
        [(read("sidecar-key.pem"), read("sidecar.pem"))],
        root_certificates=read("ca.pem"),
        require_client_auth=True,
    )
    host, _, _ = listen.rpartition(":")
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    return server, f"{host}:{port}"


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
