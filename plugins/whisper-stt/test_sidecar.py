"""The faster-whisper sidecar's own tests: speech made by espeak-ng
(Debian's package) streamed to it over gRPC with mTLS (certificates from
`sentiric certs init`; SENTIRIC_BIN names the binary, default the
workspace's debug build), its partial and final transcripts checked for
the words.

    python3 -m unittest test_sidecar.py
"""

import os
import shutil
import subprocess
import tempfile
import unittest
import wave

import grpc
from sentiric.plugin import pb as PB
from sentiric.plugin.v1 import plugin_pb2_grpc as GRPC_PB

import sidecar


def spoken(text, rate=8000):
    """`text` said by espeak-ng: 16-bit mono PCM bytes at `rate`."""
    import numpy as np

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-w", f.name, text], check=True)
        with wave.open(f.name) as w:
            src = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = int(len(x) * rate / src)
    y = np.interp(np.arange(n) * src / rate, np.arange(len(x)), x)
    return y.astype("<i2").tobytes()


class SettingsTest(unittest.TestCase):
    def test_unknown_and_bad_settings_are_refused(self):
        with self.assertRaises(ValueError):
            sidecar.Settings('modle = "x"')
        with self.assertRaises(ValueError):
            sidecar.Settings("threads = 0")
        s = sidecar.Settings('partial_ms = 0\nprompt = "A restaurant."')
        self.assertEqual(s.prompt, "A restaurant.")
        self.assertTrue(os.path.isfile(os.path.join(s.model, "model.bin")))


class RecognizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        here = os.path.dirname(os.path.abspath(__file__))
        binary = os.environ.get(
            "SENTIRIC_BIN", os.path.join(here, "..", "..", "target", "debug", "sentiric")
        )
        cls.dir = tempfile.mkdtemp(prefix="sentiric-whisper-")
        cls.certs = os.path.join(cls.dir, "certs")
        subprocess.run([binary, "certs", "init", cls.certs], check=True, capture_output=True)
        cls.recognizer = sidecar.Recognizer(sidecar.Settings("partial_ms = 500"))
        cls.server, cls.addr = sidecar.serve(
            "127.0.0.1:0", cls.certs, cls.recognizer, PB, GRPC_PB
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def channel(self, with_cert=True):
        def read(name):
            with open(os.path.join(self.certs, name), "rb") as f:
                return f.read()

        creds = grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"),
            private_key=read("switch-key.pem") if with_cert else None,
            certificate_chain=read("switch.pem") if with_cert else None,
        )
        return grpc.secure_channel(
            self.addr, creds, options=[("grpc.ssl_target_name_override", "localhost")]
        )

    def stream(self, pcm, rate, **params):
        """The audio in 20 ms messages, the first with the params."""
        step = rate // 50 * 2
        for i in range(0, len(pcm), step):
            first = {"language": "en", **params} if i == 0 else {}
            yield PB.Audio(pcm=pcm[i : i + step], sample_rate=rate, params=first)

    def final(self, pcm, rate, **params):
        with self.channel() as ch:
            got = GRPC_PB.SpeechToTextStub(ch).Recognize(
                self.stream(pcm, rate, **params), timeout=60
            )
            return [t for t in got if t.final][0].text

    def test_speech_is_transcribed_with_partials_then_a_final(self):
        pcm = spoken("Can I book a table for two people?", 8000)
        with self.channel() as ch:
            got = list(GRPC_PB.SpeechToTextStub(ch).Recognize(self.stream(pcm, 8000), timeout=60))
        finals = [t for t in got if t.final]
        self.assertEqual(len(finals), 1, got)
        self.assertTrue(any(not t.final for t in got), "a partial on the way")
        words = finals[0].text.lower()
        for w in ("table", "two people"):
            self.assertIn(w, words)
        self.assertGreater(finals[0].confidence, 0.3)
        self.assertGreater(finals[0].end_ms, 1000)

    def test_the_streams_prompt_steers_the_words(self):
        # Without a prompt tiny.en hears "two- my data clock" here; the
        # stream's prompt (Whisper's initial prompt) sets it right.
        pcm = spoken("I want a table for two at eight o'clock.", 8000)
        plain = self.final(pcm, 8000)
        steered = self.final(pcm, 8000, prompt="A caller phones a restaurant to book a table.")
        self.assertIn("two at eight o'clock", steered.lower())
        self.assertNotEqual(plain, steered)

    def test_silence_and_a_refused_client(self):
        with self.channel() as ch:
            got = list(
                GRPC_PB.SpeechToTextStub(ch).Recognize(
                    self.stream(bytes(16000 * 2), 16000), timeout=60
                )
            )
        # A second of silence still ends in one final transcript (Whisper
        # may hear a word or two in it, never a sentence).
        finals = [t for t in got if t.final]
        self.assertEqual(len(finals), 1, got)
        self.assertEqual(finals[0].end_ms, 1000, got)
        self.assertTrue(all(len(t.text) < 20 for t in got), got)
        with self.channel(with_cert=False) as ch:
            with self.assertRaises(grpc.RpcError) as e:
                list(GRPC_PB.SpeechToTextStub(ch).Recognize(self.stream(b"\0" * 640, 16000)))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    unittest.main()
