"""Small real media files for the tests: PNG images and WAV audio, built in memory."""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib

import av


def make_png(width: int = 16, height: int = 16, noise: bool = False) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    def row(y: int) -> bytes:
        pixels = bytes((x * 7 + y * 13 + (x * y if noise else 0)) % 256 for x in range(width * 3))
        return b"\x00" + pixels

    raw = b"".join(row(y) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 0))
        + chunk(b"IEND", b"")
    )


def make_wav(
    seconds: float = 2.0, rate: int = 16000, channels: int = 1, language: str | None = None
) -> bytes:
    """A tone; `language` tags it (RIFF `LIST`/`INFO` `ILNG`) with the language the
    simulator's speech-to-text apps then "hear" when asked to detect it."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        frames = (int(2000 * math.sin(i / 8)) for i in range(int(seconds * rate)))
        writer.writeframes(b"".join(struct.pack("<h", f) * channels for f in frames))
    data = out.getvalue()
    if language is None:
        return data
    value = language.encode() + b"\0"
    entry = b"ILNG" + struct.pack("<I", len(value)) + value + b"\0" * (len(value) % 2)
    info = b"LIST" + struct.pack("<I", 4 + len(entry)) + b"INFO" + entry
    return b"RIFF" + struct.pack("<I", len(data) - 8 + len(info)) + data[8:] + info


def decoded_seconds(data: bytes, speech_format: str) -> float:
    """How long audio in one of OpenAI's speech formats plays, decoded by FFmpeg (PyAV)."""
    if speech_format == "pcm":  # raw 24 kHz s16le mono: no header to decode
        return len(data) / 48000
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate
