"""The shared sidecar code's own tests: a sidecar's life under signals.

    python3 -m unittest test_sidecar.py
"""

import os
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# A sidecar of nothing: `run` with a server that stops at once.
CHILD = r"""
import sys, threading
sys.path.insert(0, sys.argv[1])
import sentiric_sidecar

class Server:
    def stop(self, grace):
        done = threading.Event()
        done.set()
        return done

sentiric_sidecar.run("test", Server(), "127.0.0.1:0")
"""


class RunTest(unittest.TestCase):
    def test_a_burst_of_sigterms_stops_it(self):
        # The switch's SIGTERM and the parent-death one come together; a
        # handler interrupting another once hung a sidecar for good.
        for _ in range(20):
            p = subprocess.Popen(
                [sys.executable, "-c", CHILD, HERE],
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
