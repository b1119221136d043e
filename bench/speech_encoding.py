"""``python -m bench.speech_encoding``: the CPU the proxy spends per second of speech audio
encoding fal's WAV into each of OpenAI's formats (docs/media.md, "Text to speech").

It runs the service's own path (`WavReader`, then `SpeechEncoder` a tenth of a second at a
time) over 30 s of a voice-like 24 kHz mono WAV, as Kokoro makes (docs/fal-protocol.md §12.4),
and reports the process CPU time of the best of five runs (the machine is shared: the best
run is the one least disturbed), and the median and longest single call of that run, which
say how long one call holds the event loop.
"""

from __future__ import annotations

import io
import math
import platform
import statistics
import struct
import time
import wave

from fal_openai_proxy.translate.speech_audio import SPEECH_FORMATS, SpeechEncoder, WavReader

SECONDS = 30.0
RATE = 24_000
SLICE = RATE // 10 * 2  # 0.1 s of s16 mono, as services/audio.py encodes
RUNS = 5


def voice_wav(seconds: float = SECONDS, rate: int = RATE) -> bytes:
    """Syllables of a 140 Hz voice with formants: closer to speech than a pure tone."""
    samples = []
    for i in range(int(seconds * rate)):
        t = i / rate
        envelope = max(0.0, math.sin(math.pi * t * 2)) ** 2
        voice = sum(math.sin(2 * math.pi * f * t) / n for n, f in enumerate((140, 280, 700), 1))
        samples.append(int(6000 * envelope * voice))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def measure(name: str, wav: bytes) -> tuple[float, float, float, int]:
    """(CPU ms per second of audio, median and longest call in ms, output bytes) of the
    best run."""
    best = (math.inf, 0.0, 0.0, 0)
    for _ in range(RUNS):
        started = time.process_time()
        reader = WavReader()
        samples = reader.feed(wav)
        assert reader.format is not None
        encoder = SpeechEncoder(SPEECH_FORMATS[name], reader.format)
        size = 0
        calls = []
        for start in range(0, len(samples), SLICE):
            began = time.process_time()
            size += len(encoder.encode(samples[start : start + SLICE]))
            calls.append(time.process_time() - began)
        size += len(encoder.finish())
        cpu = time.process_time() - started
        if cpu < best[0]:
            best = (cpu, statistics.median(calls), max(calls), size)
    cpu, median, longest, size = best
    return cpu * 1000 / SECONDS, median * 1000, longest * 1000, size


def main() -> None:
    wav = voice_wav()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| format | CPU ms per s of audio | call (0.1 s), median / longest ms | kbit/s |")
    print("|---|---|---|---|")
    for name in SPEECH_FORMATS:
        if name == "wav":
            continue  # fal's WAV is relayed as it is, never encoded
        per_second, median, longest, size = measure(name, wav)
        kbits = size * 8 / SECONDS / 1000
        print(f"| {name} | {per_second:.2f} | {median:.2f} / {longest:.2f} | {kbits:.0f} |")


if __name__ == "__main__":
    main()
