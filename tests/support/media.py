"""Small real media files for the tests: PNG images and WAV audio, built in memory."""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib


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


def make_wav(seconds: float = 2.0, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        frames = (int(2000 * math.sin(i / 8)) for i in range(int(seconds * rate)))
        writer.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return out.getvalue()
