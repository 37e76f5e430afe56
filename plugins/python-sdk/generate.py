#!/usr/bin/env python3
"""Makes the package's stubs (src/sentiric/plugin/v1/plugin_pb2.py, its
typed .pyi, plugin_pb2_grpc.py) from the switch's contract,
proto/sentiric/plugin/v1/plugin.proto, with grpcio-tools' protoc.

    python generate.py           # write them (after a change to the .proto)
    python generate.py --check   # exit 1 if the committed ones differ

The stubs are committed, so the package installs and imports with no
code generator; the project's tests run --check, so they never fall
behind the .proto.
"""

import argparse
import filecmp
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO = "sentiric/plugin/v1/plugin.proto"
OUT = os.path.join(HERE, "src")
FILES = ["plugin_pb2.py", "plugin_pb2.pyi", "plugin_pb2_grpc.py"]


def generate(out):
    """Writes the stubs under `out` (as sentiric/plugin/v1/…)."""
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(PROTO_ROOT, PROTO),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {PROTO} ({code})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare, write nothing")
    args = p.parse_args(argv)
    v1 = os.path.join("sentiric", "plugin", "v1")
    if not args.check:
        generate(OUT)
        for f in FILES:
            print(os.path.join(OUT, v1, f))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        stale = [
            f
            for f in FILES
            if not filecmp.cmp(os.path.join(tmp, v1, f), os.path.join(OUT, v1, f), shallow=False)
        ]
    if stale:
        print(
            f"{', '.join(stale)} differ from {PROTO}: run python generate.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
