"""The Python dialplan sidecar's own tests: its routing table, and a
round trip over gRPC with mTLS (certificates from `sentiric certs init`;
SENTIRIC_BIN names the binary, default the workspace's debug build).

    python3 -m unittest test_sidecar.py
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import grpc
from sentiric.plugin import PluginError, pb as PB, serve
from sentiric.plugin.v1 import plugin_pb2_grpc as GRPC_PB

import sidecar

ROUTES = """
[[route]]
prefix = "+49"
targets = ["sip:de@127.0.0.2"]
[[route]]
prefix = "+4930"
targets = ["sip:berlin@127.0.0.2", "sip:backup@127.0.0.3"]
[[route]]
prefix = "+1900"
reject = 403
[[route]]
prefix = "600"
answer = "echo"
[[route]]
prefix = "7"
answer = "conference:sales"
[default]
code = 484
"""


def request(user):
    return PB.RouteRequest(user=user, call_id="c1", trace_id="t1")


class RoutesTest(unittest.TestCase):
    def setUp(self):
        self.routes = sidecar.PrefixDialplan(ROUTES)

    def test_the_longest_prefix_wins(self):
        d = self.routes.route(request("+4930123"))
        self.assertEqual(list(d.bridge.targets), ["sip:berlin@127.0.0.2", "sip:backup@127.0.0.3"])
        self.assertEqual(d.rule, "prefix +4930")
        self.assertEqual(d.cdr_tags["route_prefix"], "+4930")
        self.assertEqual(list(self.routes.route(request("+4989")).bridge.targets), ["sip:de@127.0.0.2"])

    def test_reject_apps_and_the_default(self):
        self.assertEqual(self.routes.route(request("+1900555")).reject.code, 403)
        self.assertTrue(self.routes.route(request("600")).answer.HasField("echo"))
        self.assertEqual(self.routes.route(request("71")).answer.conference.room, "sales")
        d = self.routes.route(request("0800"))
        self.assertEqual((d.reject.code, d.rule), (484, "default"))

    def test_a_declining_default_leaves_the_call_to_the_rules(self):
        routes = sidecar.PrefixDialplan('[[route]]\nprefix = "600"\nanswer = "echo"\n[default]\ndecline = true\n')
        d = routes.route(request("0800"))
        self.assertEqual((d.WhichOneof("action"), d.rule), ("decline", "default"))
        self.assertTrue(routes.route(request("600")).answer.HasField("echo"))

    def test_a_bad_table_is_refused(self):
        for bad in (
            '[default]\ncode = 404\ndecline = true\n',
            '[[route]]\nprefix = "1"\n',
            '[[route]]\nprefix = "1"\nreject = 700\n',
            '[[route]]\nprefix = "1"\nreject = 486\ntargets = ["sip:a@b"]\n',
            '[[route]]\nprefix = "1"\nanswer = "dance"\n',
            'not toml',
        ):
            with self.assertRaises(PluginError, msg=bad):
                sidecar.PrefixDialplan(bad)


class MtlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        here = os.path.dirname(os.path.abspath(__file__))
        binary = os.environ.get(
            "SENTIRIC_BIN", os.path.join(here, "..", "..", "target", "debug", "sentiric")
        )
        cls.dir = tempfile.mkdtemp(prefix="sentiric-py-sidecar-")
        cls.certs = os.path.join(cls.dir, "certs")
        subprocess.run([binary, "certs", "init", cls.certs], check=True, capture_output=True)
        cls.routes = sidecar.PrefixDialplan(ROUTES)
        cls.server, cls.addr = serve(cls.routes, "127.0.0.1:0", certs=cls.certs)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def read(self, name):
        with open(os.path.join(self.certs, name), "rb") as f:
            return f.read()

    def channel(self, with_cert):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.read("ca.pem"),
            private_key=self.read("switch-key.pem") if with_cert else None,
            certificate_chain=self.read("switch.pem") if with_cert else None,
        )
        return grpc.secure_channel(
            self.addr, creds, options=[("grpc.ssl_target_name_override", "localhost")]
        )

    def test_the_switch_certificate_gets_the_tables_decisions(self):
        with self.channel(True) as ch:
            stub = GRPC_PB.DialplanStub(ch)
            for user in ("+4930123", "+1900555", "600", "0800"):
                got = stub.Route(request(user), timeout=5)
                self.assertEqual(got, self.routes.route(request(user)), user)

    def test_a_client_without_a_certificate_is_refused(self):
        with self.channel(False) as ch:
            with self.assertRaises(grpc.RpcError) as e:
                GRPC_PB.DialplanStub(ch).Route(request("600"), timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    unittest.main()
