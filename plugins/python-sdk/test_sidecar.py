"""The Python SDK's own tests, on the package as pip installed it
(`scripts/python.sh`): its stubs against the .proto, the guide's Python
as written, its command line, a dialplan asked by `sentiric route-test`
through the SDK's entry point, an agent's conversation over gRPC with
mTLS, and a sidecar's life under signals. SENTIRIC_BIN names the switch
binary (default: the workspace's debug build).

    python3 -m unittest test_sidecar.py
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

import sentiric.plugin as sdk
from sentiric.plugin import pb
from sentiric.plugin.v1 import plugin_pb2_grpc as grpc_pb

import generate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("SENTIRIC_BIN", os.path.join(ROOT, "target", "debug", "sentiric"))
GUIDE = os.path.join(ROOT, "plugin-sdk", "README.md")


def guide_block(first_line):
    """The guide's ```python block that begins with `first_line`, as
    written (its list indentation taken off)."""
    with open(GUIDE, encoding="utf-8") as f:
        text = f.read()
    for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
        indent = len(m.group(1))
        code = "".join(line[indent:] + "\n" for line in m.group(2).splitlines())
        if code.startswith(first_line):
            return code
    raise AssertionError(f"no python block beginning {first_line!r} in {GUIDE}")


class Dir:
    """A temporary directory with development certificates."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="sentiric-python-sdk-")
        self.certs = os.path.join(self.path, "certs")
        subprocess.run([BIN, "certs", "init", self.certs], check=True, capture_output=True)

    def write(self, name, text):
        path = os.path.join(self.path, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Process:
    """A sidecar process: where it listens, from its line."""

    def __init__(self, args, cwd):
        self.p = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.p.kill()
            raise AssertionError(f"{args}: {line!r} {self.p.stderr.read()}")
        self.addr = m.group(1)
        self.line = line

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        code = self.p.wait(timeout=10)
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return code, err


def route_test(addr, certs, user):
    """`sentiric route-test --sidecar`: its exit status, decision, stderr."""
    out = subprocess.run(
        [BIN, "route-test", "--sidecar", addr, "--certs", certs, "--user", user],
        capture_output=True,
        text=True,
        timeout=30,
    )
    decision = json.loads(out.stdout)["decision"] if out.returncode == 0 else None
    return out.returncode, decision, out.stderr


class StubsTest(unittest.TestCase):
    def test_the_committed_stubs_are_what_the_proto_makes(self):
        self.assertEqual(generate.main(["--check"]), 0)

    def test_a_stub_behind_the_proto_is_found(self):
        tmp = tempfile.mkdtemp()
        try:
            shutil.copytree(generate.OUT, os.path.join(tmp, "src"))
            stub = os.path.join(tmp, "src", "sentiric", "plugin", "v1", "plugin_pb2.pyi")
            with open(stub, "a", encoding="utf-8") as f:
                f.write("# edited\n")
            old, generate.OUT = generate.OUT, os.path.join(tmp, "src")
            try:
                self.assertEqual(generate.main(["--check"]), 1)
            finally:
                generate.OUT = old
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_the_installed_package_is_the_one_tested(self):
        # Imported from site-packages, not from this directory's source.
        self.assertNotIn(os.path.join(HERE, "src"), sdk.__file__)
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(pb.__file__), "plugin_pb2.pyi")))


class DecisionsTest(unittest.TestCase):
    def test_each_helper_makes_its_decision(self):
        self.assertEqual(list(sdk.bridge("sip:a@b").bridge.targets), ["sip:a@b"])
        b = sdk.bridge(["sip:a@b", "sip:c@d"], ring_timeout_ms=5000, codecs=["PCMA"]).bridge
        self.assertEqual((list(b.targets), b.ring_timeout_ms, list(b.codecs)),
                         (["sip:a@b", "sip:c@d"], 5000, ["PCMA"]))
        self.assertEqual((sdk.reject(486, "Busy").reject.code, sdk.reject(486).reject.reason), (486, ""))
        self.assertEqual(sdk.decline("no").decline.reason, "no")
        self.assertTrue(sdk.echo().answer.HasField("echo"))
        self.assertEqual(sdk.play("welcome").answer.play.prompt, "welcome")
        p = sdk.play_then_bridge("ringback", "sip:desk@h").answer.play
        self.assertEqual((p.prompt, list(p.then_bridge.targets)), ("ringback", ["sip:desk@h"]))
        self.assertEqual(sdk.conference("sales").answer.conference.room, "sales")
        a = sdk.agent("voice", {"greeting": "Hello"}).answer.agent
        self.assertEqual((a.plugin, dict(a.params)), ("voice", {"greeting": "Hello"}))
        r = sdk.redirect("sip:x@y", 301).redirect
        self.assertEqual((r.code, list(r.contacts)), (301, ["sip:x@y"]))
        d = sdk.bridge("sip:a@b", rule="r", tags={"t": "1"}, headers={"X-A": "b"})
        self.assertEqual((d.rule, dict(d.cdr_tags), dict(d.add_headers)), ("r", {"t": "1"}, {"X-A": "b"}))

    def test_each_action_helper_makes_its_action(self):
        self.assertEqual(sdk.play_audio("p", b"\0\0", last=False).play.pcm, b"\0\0")
        self.assertTrue(sdk.stop_playback().HasField("stop"))
        self.assertEqual(sdk.hang_up("bye").hang_up.reason, "bye")
        self.assertEqual(sdk.transfer("sip:a@b").transfer.uri, "sip:a@b")
        self.assertEqual(sdk.send_dtmf("12").send_dtmf.digits, "12")
        self.assertEqual(dict(sdk.cdr_tags({"a": "b"}).cdr_tags.tags), {"a": "b"})


class GuideTest(unittest.TestCase):
    """plugin-sdk/README.md's "Python from nothing", as written."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Dir()
        cls.dir.write("my_dialplan.py", guide_block("# my_dialplan.py\n"))
        cls.dir.write("trunk.conf", "10.0.0.5\n")

    @classmethod
    def tearDownClass(cls):
        cls.dir.remove()

    def test_the_guides_dialplan_serves_what_route_test_asks(self):
        s = Process(
            [sys.executable, "my_dialplan.py", "--listen", "127.0.0.1:0", "--certs", "certs",
             "--config", "trunk.conf"],
            self.dir.path,
        )
        try:
            self.assertTrue(s.line.startswith("sidecar my-dialplan listening on 127.0.0.1:"), s.line)
            code, d, err = route_test(s.addr, self.dir.certs, "+4930123")
            self.assertEqual(code, 0, err)
            self.assertEqual(d["action"], {"Bridge": {"targets": ["sip:+4930123@10.0.0.5"],
                                                      "ring_timeout_ms": 0, "codecs": []}})
            self.assertEqual((d["rule"], d["cdr_tags"]), ("germany", {"country": "de"}))
            code, d, err = route_test(s.addr, self.dir.certs, "600")
            self.assertEqual((code, d["action"], d["rule"]), (0, {"Answer": {"app": {"Echo": {}}}}, "echo test"))
            code, d, err = route_test(s.addr, self.dir.certs, "0800")
            self.assertEqual(code, 0, err)
            self.assertEqual(d["action"], {"Decline": {"reason": "not a German number"}})
            self.assertIn("declined", err)
        finally:
            self.assertEqual(s.stop()[0], 0)

    def test_the_guides_dialplan_refuses_an_empty_configuration(self):
        out = subprocess.run(
            [sys.executable, "my_dialplan.py", "--listen", "127.0.0.1:0", "--certs", "certs"],
            cwd=self.dir.path, capture_output=True, text=True, timeout=30,
        )
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("my-dialplan: configure the trunk's host", out.stderr)

    def test_the_guides_agent_echoes_and_hangs_up_on_hash(self):
        scope = {}
        exec(guide_block("from sentiric.plugin import Agent, Conversation"), scope)
        sent = []
        start = pb.ConverseStart(call=pb.RouteRequest(call_id="c", user="agent"))
        conv = scope["EchoAgent"]().converse(start, sent.append)
        self.assertEqual(conv.on_audio(pb.AudioFrame(pcm=b"\1\2")).play.pcm, b"\1\2")
        self.assertIsNone(conv.on_dtmf(pb.Dtmf(digit="1")))
        self.assertEqual(conv.on_dtmf(pb.Dtmf(digit="#")).hang_up.reason, "caller pressed #")


PLUGINS = '''
import threading, time
from sentiric.plugin import Agent, Conversation, Dialplan, PluginError, hang_up, play_audio, reject, bridge

class Picky(Dialplan):
    name = "picky"
    def __init__(self, config=""):
        if config.strip() == "refuse":
            raise ValueError("refused on purpose")
    def route(self, call):
        if call.user == "boom":
            raise RuntimeError("no route for boom")
        if call.user == "wrong":
            return "not a decision"
        return bridge(f"sip:{call.user}@10.0.0.5", rule="picky")

class Talk(Conversation):
    def begin(self):
        # Sent from a thread of its own, between inputs.
        threading.Timer(0.05, lambda: self.send(play_audio("hello", b"hi", last=True))).start()
    def on_audio(self, frame):
        if frame.pcm == b"crash":
            raise RuntimeError("cannot take this")
        return [play_audio("echo", frame.pcm, last=False)]
    def on_dtmf(self, dtmf):
        return hang_up("dtmf " + dtmf.digit)
    def on_ended(self, event):
        return play_audio("last", event.cause.encode(), last=True)

class Talker(Agent):
    def converse(self, start, send):
        if start.params.get("refuse"):
            raise PluginError("not today")
        return Talk(start, send)
'''


class CommandLineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Dir()
        cls.dir.write("plugins_under_test.py", PLUGINS)
        cls.entry = shutil.which("sentiric-python-sidecar", path=os.path.dirname(sys.executable))

    @classmethod
    def tearDownClass(cls):
        cls.dir.remove()

    def run_entry(self, *args):
        return subprocess.run([self.entry, *args], cwd=self.dir.path, capture_output=True,
                              text=True, timeout=30)

    def test_the_entry_point_is_installed_and_says_how_to_use_it(self):
        self.assertIsNotNone(self.entry, "sentiric-python-sidecar beside the venv's python")
        out = self.run_entry("--help")
        self.assertEqual((out.returncode, "MODULE:CLASS" in out.stdout), (0, True), out)
        out = self.run_entry()
        self.assertEqual((out.returncode, "MODULE:CLASS" in out.stderr), (2, True), out)
        out = self.run_entry("plugins_under_test:Picky", "--help")
        self.assertEqual(out.returncode, 0, out)
        for flag in ("--listen", "--certs", "--ca", "--cert", "--key", "--config"):
            self.assertIn(flag, out.stdout)
        self.assertIn("The Sentiric plugin picky", out.stdout)
        # Without a name of its own: its module's.
        out = self.run_entry("plugins_under_test:Talker", "--help")
        self.assertIn("The Sentiric plugin plugins-under-test", out.stdout)

    def test_a_wrong_command_line_or_plugin_exits_2_saying_why(self):
        for args, said in (
            (["plugins_under_test:Picky"], "--listen"),
            (["plugins_under_test:Picky", "--listen", "127.0.0.1:0"], "--certs DIR, or --ca, --cert and --key"),
            (["plugins_under_test:Picky", "--listen", "127.0.0.1:0", "--certs", "nowhere"], "nowhere/ca.pem"),
            (["plugins_under_test:Picky", "--listen", "127.0.0.1:0", "--certs", "certs",
              "--config", "missing.conf"], "missing.conf"),
            (["plugins_under_test:Nothing", "--listen", "127.0.0.1:0"], "Nothing"),
            (["no_such_module:X", "--listen", "127.0.0.1:0"], "no_such_module"),
            (["no_such_module:X", "--listen", "127.0.0.1:0"], "PYTHONPATH"),
            (["Picky"], "MODULE:CLASS"),
        ):
            out = self.run_entry(*args)
            self.assertEqual(out.returncode, 2, (args, out))
            self.assertIn(said, out.stderr, args)
        self.dir.write("refuse.conf", "refuse\n")
        out = self.run_entry("plugins_under_test:Picky", "--listen", "127.0.0.1:0", "--certs", "certs",
                             "--config", "refuse.conf")
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("picky: refused on purpose", out.stderr)

    def test_a_route_that_fails_fails_its_call_only(self):
        s = Process([self.entry, "plugins_under_test:Picky", "--listen", "127.0.0.1:0", "--certs", "certs"],
                    self.dir.path)
        try:
            code, d, err = route_test(s.addr, self.dir.certs, "42")
            self.assertEqual((code, d["rule"]), (0, "picky"), err)
            code, _, err = route_test(s.addr, self.dir.certs, "boom")
            self.assertEqual(code, 1, err)
            self.assertIn("no route for boom", err)
            code, _, err = route_test(s.addr, self.dir.certs, "wrong")
            self.assertEqual(code, 1, err)
            self.assertIn("not a RouteDecision", err)
            code, d, err = route_test(s.addr, self.dir.certs, "43")
            self.assertEqual((code, d["action"]["Bridge"]["targets"]), (0, ["sip:43@10.0.0.5"]), err)
        finally:
            code, err = s.stop()
        self.assertEqual(code, 0, err)
        self.assertRegex(err, r"call_id=\S+ trace_id=\S+ route failed: RuntimeError: no route for boom")


class AgentTest(unittest.TestCase):
    """A conversation over gRPC with mTLS, the test in the switch's place."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Dir()
        sys.path.insert(0, cls.dir.path)
        cls.dir.write("agents_under_test.py", PLUGINS)
        import agents_under_test

        cls.server, cls.addr = sdk.serve(agents_under_test.Talker(), "127.0.0.1:0", certs=cls.dir.certs)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=None)
        cls.dir.remove()

    def converse(self, inputs, with_cert=True):
        def read(name):
            with open(os.path.join(self.dir.certs, name), "rb") as f:
                return f.read()

        creds = grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"),
            private_key=read("switch-key.pem") if with_cert else None,
            certificate_chain=read("switch.pem") if with_cert else None,
        )
        with grpc.secure_channel(self.addr, creds,
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
            return list(grpc_pb.AgentStub(ch).Converse(iter(inputs), timeout=10))

    @staticmethod
    def start(**params):
        return pb.CallInput(start=pb.ConverseStart(call=pb.RouteRequest(call_id="c1", user="agent"),
                                                   params=params))

    @staticmethod
    def paced(items, pause=0.2):
        # Inputs as a call gives them: over time, not all at once.
        for item in items:
            yield item
            time.sleep(pause)

    def test_inputs_in_order_get_their_actions_and_what_it_sends_on_its_own(self):
        got = self.converse(self.paced([
            self.start(),
            pb.CallInput(audio=pb.AudioFrame(pcm=b"abcd", time_ms=20)),
            pb.CallInput(dtmf=pb.Dtmf(digit="5")),
            pb.CallInput(ended=pb.CallEnded(cause="caller hung up")),
        ]))
        plays = [(a.play.id, a.play.pcm) for a in got if a.HasField("play")]
        self.assertIn(("hello", b"hi"), plays)  # sent from its timer thread
        self.assertEqual([p for p in plays if p[0] != "hello"],
                         [("echo", b"abcd"), ("last", b"caller hung up")])
        self.assertEqual([a.hang_up.reason for a in got if a.HasField("hang_up")], ["dtmf 5"])

    def test_a_conversation_that_fails_ends_its_stream_saying_why(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.converse(self.paced([self.start(), pb.CallInput(audio=pb.AudioFrame(pcm=b"crash"))]))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("cannot take this", e.exception.details())
        # The next call is served.
        got = self.converse(self.paced([self.start(), pb.CallInput(dtmf=pb.Dtmf(digit="1"))]))
        self.assertEqual([a.hang_up.reason for a in got if a.HasField("hang_up")], ["dtmf 1"])

    def test_a_refused_call_and_a_stream_without_start_are_refused(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.converse([self.start(refuse="yes")])
        self.assertEqual((e.exception.code(), e.exception.details()),
                         (grpc.StatusCode.FAILED_PRECONDITION, "not today"))
        with self.assertRaises(grpc.RpcError) as e:
            self.converse([pb.CallInput(dtmf=pb.Dtmf(digit="1"))])
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_a_client_without_a_certificate_is_refused(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.converse([self.start()], with_cert=False)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)


# A sidecar of nothing: `run` with a server that stops at once.
CHILD = r"""
import threading
from sentiric.plugin import run

class Server:
    def stop(self, grace):
        done = threading.Event()
        done.set()
        return done

run("test", Server(), "127.0.0.1:0")
"""


class RunTest(unittest.TestCase):
    def test_a_burst_of_sigterms_stops_it(self):
        # The switch's SIGTERM and the parent-death one come together; a
        # handler interrupting another once hung a sidecar for good.
        for _ in range(20):
            p = subprocess.Popen(
                [sys.executable, "-c", CHILD],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self.assertIn(b"listening", p.stdout.readline())
            for _ in range(200):
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    break
            try:
                self.assertEqual(p.wait(timeout=5), 0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail("still running 5 s after SIGTERM")
            finally:
                p.stdout.close()


if __name__ == "__main__":
    unittest.main()
